/**
 * Build a C test fixture from test/fixtures/NAME.c into $TMPDIR/CACHE/NAME-<hash of the source>, once per
 * source version and process; concurrent builds are safe (each compiles to its own temporary name, then
 * renames). bench/lib-fixture.mjs does the same for the benchmarks, which run without TypeScript.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

const built = new Map<string, string>();

export function fixtureBin(name: string, cache: string): string {
  const done = built.get(name);
  if (done) return done;
  const src = join(FIXTURES, `${name}.c`);
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), cache);
  const bin = join(dir, `${name}-${hash}`);
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}.tmp`;
    try {
      execFileSync('gcc', ['-O2', '-Wall', '-pthread', '-o', tmp, src], { stdio: ['ignore', 'ignore', 'pipe'] });
      renameSync(tmp, bin);
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  built.set(name, bin);
  return bin;
}
