/**
 * Trees for the freezer tests and benchmark, spawned by test/fixtures/freeze-churn.c: a large idle tree
 * (`idle`, `fanout`), or one that forks and reaps workers and grandchildren forever (`churn`), optionally
 * started inside a cgroup. kill() closes the keeper's stdin; the keeper kills the root's process group,
 * reaps every descendant and exits, and kill() resolves once it has. A task of the tree still traced by this
 * process (a freezer that did not let go) keeps its parent from reaping it: kill() then fails after
 * TEARDOWN_MS naming those tasks, instead of leaving the test to time out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fixtureBin } from './cfixture.js';
import { tracedByUs } from './freeze.js';

/** How long kill() waits for the keeper to reap the tree before it fails, naming what holds it. */
const TEARDOWN_MS = 30_000;

export function churnPath(): string {
  return fixtureBin('freeze-churn', 'tdcollect-freeze');
}

export interface ChurnOptions {
  idle?: number;
  fanout?: number;
  churn?: number;
  /** threads in the root that create and join short-lived threads forever */
  threads?: number;
  counter?: string;
  cgroup?: string;
}

export interface ChurnTree {
  root: number;
  keeper: number;
  child: ChildProcess;
  kill(): Promise<void>;
}

const live = new Set<ChurnTree>();
let hooked = false;

export async function spawnChurn(o: ChurnOptions): Promise<ChurnTree> {
  const args: string[] = [];
  if (o.idle) args.push('--idle', String(o.idle));
  if (o.fanout) args.push('--fanout', String(o.fanout));
  if (o.churn) args.push('--churn', String(o.churn));
  if (o.threads) args.push('--threads', String(o.threads));
  if (o.counter) args.push('--counter', o.counter);
  if (o.cgroup) args.push('--cgroup', o.cgroup);
  const child = spawn(churnPath(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const t of live) {
        try { process.kill(-t.root, 'SIGKILL'); } catch { /* gone */ }
        try { process.kill(t.keeper, 'SIGTERM'); } catch { /* gone */ }
      }
    });
  }
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (b) => { err += b; });
    child.stdout!.on('data', (b) => {
      out += b;
      const i = out.indexOf('\n');
      if (i >= 0) resolve(out.slice(0, i));
    });
    child.once('exit', (c) => reject(new Error(`freeze-churn exited ${c}: ${err.trim()}`)));
  });
  child.stdout!.resume();
  const [, root, keeper] = line.split(' ').map(Number);
  let killing: Promise<void> | undefined;
  const t: ChurnTree = {
    root,
    keeper,
    child,
    kill() {
      killing ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) { live.delete(t); return; }
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        try { process.kill(-root, 'SIGCONT'); } catch { /* gone */ }
        child.stdin!.end();
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((r) => { timer = setTimeout(() => r('late'), TEARDOWN_MS); });
        const how = await Promise.race([exited, late]);
        clearTimeout(timer);
        if (how === 'late') {
          throw new Error(`freeze-churn keeper ${keeper} has not reaped the tree of ${root} ${TEARDOWN_MS} ms after ` +
            `its teardown; tasks still traced by this process: ${tracedByUs().join(' ') || 'none'}`);
        }
        live.delete(t);
      })();
      return killing;
    },
  };
  live.add(t);
  return t;
}
