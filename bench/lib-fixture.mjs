// What the benchmarks share: building a C fixture from test/fixtures/ (cached by a hash of its source, the
// same cache test/helpers/tree.ts uses for treegen), reading a fixture's one-line ready report, and
// spawning a treegen tree that is torn down by its own keeper.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Compile test/fixtures/NAME.c into $TMPDIR/CACHE/NAME-<hash> once per source version. */
export function fixtureBin(name, cache) {
  const src = join(ROOT, 'test/fixtures', `${name}.c`);
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), cache);
  const bin = join(dir, `${name}-${hash}`);
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}.tmp`;
    try {
      execFileSync('gcc', ['-O2', '-Wall', '-pthread', '-o', tmp, src]);
      renameSync(tmp, bin);
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  return bin;
}

/** The first line a spawned fixture prints (its ready report); rejects if it exits first. */
export function readyLine(child, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (b) => {
      buf += b.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) { child.stdout.resume(); resolve(buf.slice(0, nl)); }
    });
    child.once('exit', (c) => reject(new Error(`${what} exited ${c}`)));
  });
}

/** A treegen tree of `procs` processes: { root, tasks, tids: [tgid, tid][], kill() }. */
export async function spawnTreegen(procs) {
  return spawnTreegenThreads(procs, 0);
}

/** The same with `threads` extra threads in every process. */
export async function spawnTreegenThreads(procs, threads) {
  const child = spawn(fixtureBin('treegen', 'tdcollect-treegen'),
    ['--until-eof', '--timeout', '1800', '--procs', String(procs), '--threads', String(threads)],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const ready = JSON.parse(await readyLine(child, 'treegen'));
  const kill = async () => {
    if (child.exitCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    try { process.kill(-ready.sid, 'SIGKILL'); } catch { /* gone */ }
    child.stdin.end(); // the keeper tears the rest down and reaps it
    await gone;
  };
  if (ready.error) { await kill(); throw new Error(ready.error); }
  return { root: ready.root, tasks: ready.threads.length, tids: ready.threads.map((t) => [t.tgid, t.tid]), kill };
}
