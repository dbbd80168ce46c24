// A value made once, on first use (a connection, a store); a failed attempt is retried on the next use.

export class Lazy<T> {
  private value: Promise<T> | null = null;

  constructor(private readonly make: () => Promise<T>) {}

  get(): Promise<T> {
    if (!this.value) {
      const p = this.make();
      this.value = p;
      p.catch(() => {
        if (this.value === p) this.value = null;
      });
    }
    return this.value;
  }

  /** The value if it was made successfully, else null (for close()). */
  async settled(): Promise<T | null> {
    if (!this.value) return null;
    try {
      return await this.value;
    } catch {
      return null;
    }
  }
}
