/**
 * A tree that changes on command (test/fixtures/diffgen.c), for the diff tests:
 *
 *   const g = await spawnDiffgen();
 *   const child = await g.spawn();          // a child in pause()
 *   await g.kill(child);                    // SIGKILL + reap
 *   await g.spawnAt(child);                 // a new child with that very pid (clone3 set_tid)
 *   await g.setpriv(child);                 // child execs setpriv --reuid=1000 ... sleep
 *   await g.close();                        // kills the process group, waits until every pid is gone
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fixtureBin } from './cfixture.js';


export function diffgenPath(): string {
  return fixtureBin('diffgen', 'tdcollect-diffgen');
}

export interface Diffgen {
  root: number;
  /** every pid this tree has had (for teardown checks) */
  pids: Set<number>;
  spawn(): Promise<number>;
  spawnAt(pid: number): Promise<number>;
  kill(pid: number): Promise<void>;
  setpriv(pid: number): Promise<void>;
  thread(): Promise<number>;
  close(): Promise<void>;
}

export async function spawnDiffgen(): Promise<Diffgen> {
  const child: ChildProcess = spawn(diffgenPath(), [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const root = child.pid!;
  let buf = '';
  const waiters: ((line: string) => void)[] = [];
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      waiters.shift()?.(line);
    }
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const pids = new Set<number>([root]);
  const ask = (cmd: string) => new Promise<string>((resolve) => {
    waiters.push(resolve);
    child.stdin!.write(cmd + '\n');
  });
  const expectWord = async (cmd: string, word: string): Promise<number> => {
    const line = await ask(cmd);
    const [w, v] = line.split(' ');
    if (w !== word) throw new Error(`diffgen ${cmd}: ${line}`);
    return Number(v);
  };
  // wait until the root has made itself a group leader (it does so before reading stdin)
  await expectWord('spawn', 'pid').then((p) => { pids.add(p); return ask(`kill ${p}`); });
  let closed = false;
  return {
    root,
    pids,
    async spawn() { const p = await expectWord('spawn', 'pid'); pids.add(p); return p; },
    async spawnAt(pid) { const p = await expectWord(`spawnat ${pid}`, 'pid'); pids.add(p); return p; },
    async kill(pid) { await expectWord(`kill ${pid}`, 'ok'); },
    async setpriv(pid) {
      await expectWord(`setpriv ${pid}`, 'ok');
      // diffgen answers once the uid changed; the exec of sleep (new comm, capabilities recomputed) can
      // still be under way: wait until it is done so both dumps see settled processes
      for (let i = 0; ; i++) {
        const comm = readFileSync(`/proc/${pid}/comm`, 'latin1');
        const status = readFileSync(`/proc/${pid}/status`, 'latin1');
        if (comm === 'sleep\n' && status.includes('\nCapEff:\t0000000000000000\n')) break;
        if (i >= 500) throw new Error(`diffgen: ${pid} did not finish its exec under setpriv`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async thread() { return expectWord('thread', 'tid'); },
    async close() {
      if (closed) return;
      closed = true;
      try { process.kill(-root, 'SIGKILL'); } catch { /* already gone */ }
      child.stdin!.end();
      await exited;
      for (let i = 0; i < 500 && [...pids].some((p) => existsSync(`/proc/${p}`)); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}
