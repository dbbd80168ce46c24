// Where the Debian 13 root cannot be made, the Glance 30 tests fail naming what is missing (not skipped):
// here a root that is not made yet and a PATH without debootstrap (/usr/sbin), as on a machine without it.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ensureTrixieRoot } from './helpers.js';

it('fails with what is missing when the trixie root cannot be made', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'g30-noroot-'));
  try {
    const env = { ...process.env, PATH: '/usr/bin:/bin', SNAPSTORE_TRIXIE_ROOT: join(dir, 'trixie') };
    const err = await ensureTrixieRoot(env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^Glance 30 tests need the Debian 13 root \(scripts\/trixie-root\.sh\): .*(debootstrap is not installed|needs root)/);
    // Nothing was made: only the lock file beside where the root would be.
    expect(await readdir(dir)).toEqual(['trixie.lock']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
