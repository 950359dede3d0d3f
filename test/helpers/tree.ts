/**
 * Real process trees for tests and benchmarks, spawned by test/fixtures/treegen.c.
 *
 *   import { spawnTree } from '../helpers/tree.js';
 *   const tree = await spawnTree({ procs: 10, threads: 2, stopped: true, zombie: true });
 *   try {
 *     tree.root;               // root pid (a session and process-group leader)
 *     tree.role('zombie');     // pids of the processes in that role
 *     tree.pids;               // every process of the tree, root included
 *     tree.tids;               // every thread (leaders included)
 *     tree.procs.get(pid);     // { pid, ppid, pgid, sid, role, index, securebits?, tids }
 *     tree.threads.get(tid);   // { tid, tgid, leader, robustHead, robustLen, sigBlk }
 *   } finally {
 *     await tree.kill();       // kills and reaps the whole tree; resolves once every pid is gone
 *   }
 *
 * spawnTree resolves only once the tree is fully built: every process and thread exists, the stopped
 * child is in state T, the zombie is Z and no thread is still running towards its pause().
 *
 * Options map one to one onto treegen's flags (see the comment at the top of treegen.c for what each
 * role looks like): procs, fanout (1 = chain, >= procs = wide), threads (per bulk process),
 * rootThreads, stopped, zombie, creds, pgid, session, threadChild, sched, all.
 *
 * The treegen binary is compiled with gcc once per source version into
 * $TMPDIR/tdcollect-treegen/treegen-<hash of treegen.c> (`treegenPath()`); concurrent builds are safe.
 *
 * Teardown is robust: treegen's first process (the "keeper", parent of the root) is a child
 * subreaper; it tears the tree down when its stdin closes, so even a crashed test runner leaks nothing.
 * kill() sends SIGCONT + SIGKILL to the root's process group, closes the keeper's stdin (the keeper then
 * kills the rest, reaps everything and exits) and waits until no pid of the tree exists any more.
 * Every spawned tree is also killed at process exit, and `killAllTrees()` kills every live one (for
 * afterAll hooks).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureBin, FIXTURES } from './cfixture.js';

export type Role = 'root' | 'bulk' | 'stopped' | 'zombie' | 'creds' | 'pgid' | 'session' | 'thread-child' | 'sched';

export interface TreeOptions {
  /** plain processes below the root */
  procs?: number;
  /** bulk process i is a child of bulk process floor((i-1)/fanout), 0 = root; 1 = chain; default wide */
  fanout?: number;
  /** extra threads in every bulk process */
  threads?: number;
  /** extra threads in the root */
  rootThreads?: number;
  stopped?: boolean;
  zombie?: boolean;
  creds?: boolean;
  pgid?: boolean;
  session?: boolean;
  threadChild?: boolean;
  sched?: boolean;
  /** every special role */
  all?: boolean;
  /** treegen tears itself down after this many seconds (default 1800) */
  timeoutSec?: number;
  /** how long to wait for the ready line (default 300 s) */
  readyTimeoutMs?: number;
}

export interface TreeProc {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  role: Role;
  /** bulk index (1..procs), 0 for the special roles and the root */
  index: number;
  /** PR_GET_SECUREBITS, reported by the creds role only */
  securebits?: number;
  /** every thread of this process, leader first then ascending */
  tids: number[];
}

export interface TreeThread {
  tid: number;
  tgid: number;
  leader: boolean;
  /** get_robust_list(0) inside that thread */
  robustHead: number;
  robustLen: number;
  /** blocked signals of the thread, 16 hex digits (bit n-1 = signal n) */
  sigBlk: string;
}

export interface Tree {
  /** the keeper: treegen's first process, parent of the root, not part of the tree */
  keeper: number;
  root: number;
  sid: number;
  /** every process, root first then ascending */
  pids: number[];
  /** every thread of every process, ascending */
  tids: number[];
  procs: Map<number, TreeProc>;
  threads: Map<number, TreeThread>;
  /** pids of the processes in a role, ascending */
  role(r: Role): number[];
  /** the single process of a special role (throws if there is not exactly one) */
  one(r: Role): number;
  /** kill and reap the whole tree; resolves once none of its pids exists. Idempotent. */
  kill(): Promise<void>;
}

export const TREEGEN_SOURCE = join(FIXTURES, 'treegen.c');

/** Compile treegen.c (once per source version) and return the binary's path. */
export function treegenPath(): string {
  return fixtureBin('treegen', 'tdcollect-treegen');
}

export function treegenArgs(o: TreeOptions): string[] {
  const a: string[] = ['--until-eof', '--timeout', String(o.timeoutSec ?? 1800)];
  if (o.procs) a.push('--procs', String(o.procs));
  if (o.fanout) a.push('--fanout', String(o.fanout));
  if (o.threads) a.push('--threads', String(o.threads));
  if (o.rootThreads) a.push('--root-threads', String(o.rootThreads));
  if (o.all) a.push('--all');
  if (o.stopped) a.push('--stopped');
  if (o.zombie) a.push('--zombie');
  if (o.creds) a.push('--creds');
  if (o.pgid) a.push('--pgid');
  if (o.session) a.push('--session');
  if (o.threadChild) a.push('--thread-child');
  if (o.sched) a.push('--sched');
  return a;
}

const live = new Set<Tree>();
let exitHook = false;

/** Kill every tree this process spawned and has not killed yet. */
export async function killAllTrees(): Promise<void> {
  await Promise.all([...live].map((t) => t.kill()));
}

function pidExists(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

interface ReadyLine {
  keeper: number;
  root: number;
  sid: number;
  error?: string;
  procs: Array<Omit<TreeProc, 'tids'>>;
  threads: TreeThread[];
}

/** Spawn a tree and resolve once it is fully built. */
export async function spawnTree(opts: TreeOptions = {}): Promise<Tree> {
  const bin = treegenPath();
  const child = spawn(bin, treegenArgs(opts), { stdio: ['pipe', 'pipe', 'pipe'] });
  if (!exitHook) {
    exitHook = true;
    // last resort: a tree whose test forgot kill() dies with us (closing stdin alone would do it too)
    process.on('exit', () => {
      for (const t of live) {
        try { process.kill(-t.sid, 'SIGKILL'); } catch { /* gone */ }
        try { process.kill(t.keeper, 'SIGTERM'); } catch { /* gone */ }
      }
    });
  }
  let ready: ReadyLine;
  try {
    ready = await readReady(child, opts.readyTimeoutMs ?? 300_000);
  } catch (e) {
    await stopKeeper(child);
    throw e;
  }
  if (ready.error !== undefined) {
    await stopKeeper(child);
    throw new Error(`treegen failed: ${ready.error}`);
  }
  await rootSettled(ready.root);
  return makeTree(ready, child);
}

/**
 * The root prints the ready line and only then goes to pause(): on a loaded machine it can still be
 * running (state R) when the line arrives. Wait (at most 5 s) until it sleeps, so tests that compare a
 * live reading with a later one do not see it move.
 */
async function rootSettled(root: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    let state = '';
    try {
      const stat = readFileSync(`/proc/${root}/stat`, 'latin1');
      state = stat.charAt(stat.lastIndexOf(')') + 2);
    } catch {
      return;
    }
    if (state !== 'R' && state !== 'D') return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

function readReady(child: ChildProcess, timeoutMs: number): Promise<ReadyLine> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let stderr = '';
    const timer = setTimeout(() => done(new Error(`treegen: no ready line after ${timeoutMs} ms`)), timeoutMs);
    const onData = (b: Buffer) => {
      chunks.push(b);
      if (b.includes(10)) {
        const text = Buffer.concat(chunks).toString('utf8');
        const line = text.slice(0, text.indexOf('\n'));
        try {
          done(undefined, JSON.parse(line) as ReadyLine);
        } catch (e) {
          done(new Error(`treegen: bad ready line: ${line.slice(0, 200)}`));
        }
      }
    };
    const onErr = (b: Buffer) => { stderr += b.toString(); };
    const onExit = (code: number | null, sig: string | null) =>
      done(new Error(`treegen exited (${code ?? sig}) before the tree was ready: ${stderr.trim()}`));
    const done = (err?: Error, v?: ReadyLine) => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      // keep draining so the pipe never blocks
      child.stdout!.resume();
      if (err) reject(err); else resolve(v!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onErr);
    child.on('exit', onExit);
  });
}

async function stopKeeper(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.stdin!.end();
  const t = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 30_000);
  await exited;
  clearTimeout(t);
}

function makeTree(r: ReadyLine, child: ChildProcess): Tree {
  const procs = new Map<number, TreeProc>();
  for (const p of r.procs) procs.set(p.pid, { ...p, tids: [] });
  const threads = new Map<number, TreeThread>();
  for (const t of r.threads) {
    threads.set(t.tid, t);
    procs.get(t.tgid)?.tids.push(t.tid);
  }
  for (const p of procs.values()) p.tids.sort((a, b) => (a === p.pid ? -1 : b === p.pid ? 1 : a - b));
  const pids = [...procs.keys()].sort((a, b) => (a === r.root ? -1 : b === r.root ? 1 : a - b));
  const tids = [...threads.keys()].sort((a, b) => a - b);
  const byRole = new Map<Role, number[]>();
  for (const p of procs.values()) {
    const l = byRole.get(p.role) ?? [];
    l.push(p.pid);
    byRole.set(p.role, l);
  }
  for (const l of byRole.values()) l.sort((a, b) => a - b);
  let killing: Promise<void> | undefined;
  const tree: Tree = {
    keeper: r.keeper,
    root: r.root,
    sid: r.sid,
    pids,
    tids,
    procs,
    threads,
    role: (role) => byRole.get(role) ?? [],
    one(role) {
      const l = byRole.get(role) ?? [];
      if (l.length !== 1) throw new Error(`tree has ${l.length} processes in role ${role}`);
      return l[0];
    },
    kill() {
      killing ??= (async () => {
        const groups = new Set<number>([r.sid]);
        for (const p of procs.values()) groups.add(p.pgid);
        for (const g of groups) {
          try { process.kill(-g, 'SIGCONT'); } catch { /* gone */ }
          try { process.kill(-g, 'SIGKILL'); } catch { /* gone */ }
        }
        await stopKeeper(child);
        // the keeper reaped every descendant before exiting; make sure none is left
        const deadline = Date.now() + 30_000;
        let left = pids.filter(pidExists);
        while (left.length && Date.now() < deadline) {
          await new Promise((res) => setTimeout(res, 20));
          left = left.filter(pidExists);
        }
        live.delete(tree);
        if (left.length) throw new Error(`treegen: processes ${left.slice(0, 10).join(',')} survived kill()`);
      })();
      return killing;
    },
  };
  live.add(tree);
  return tree;
}
