// Paths of the Image API v2 that several modules build.

export function imagePath(id: string): string {
  return `/v2/images/${encodeURIComponent(id)}`;
}
