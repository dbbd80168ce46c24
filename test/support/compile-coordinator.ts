// The coordinator and what it imports, compiled to plain JS that a child `node` can run (the kill tests
// start a snapshot in a process of its own and kill it with SIGKILL).
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');

/** Compiles src/coordinator into `node_modules/.cache/<name>` (inside the repository, so the output resolves ceph-rbd-napi and undici); returns the directory. */
export async function compileCoordinator(name: string): Promise<string> {
  const buildDir = join(root, 'node_modules', '.cache', name);
  await promisify(execFile)(
    'npx',
    ['tsc', '--outDir', buildDir, '--rootDir', 'src', '--module', 'NodeNext', '--moduleResolution', 'NodeNext',
      '--target', 'ES2022', '--skipLibCheck', '--strict', '--types', 'node', 'src/coordinator/index.ts'],
    { cwd: root },
  );
  return buildDir;
}
