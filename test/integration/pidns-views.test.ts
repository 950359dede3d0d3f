/**
 * A container-like tree (`unshare -pf --fork setsid`: its own pid namespace, init a session leader, a
 * thread, a child in its own process group, a grandchild) dumped from outside it, with procfs and bpf:
 * every pid field is in the namespace's own view (checked against NSpid/NSpgid/NSsid of /proc/PID/status,
 * read here independently, and against what the tasks themselves reported from inside), tasks.img keeps
 * the collector's view too, pstree.img and the core-TID.img names carry the namespace's pids, every
 * namespace identity equals readlink(/proc/PID/task/TID/ns/KIND), and a task that moves to another
 * namespace is reported by diff.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collect } from '../../src/collector/collect.js';
import { NS_KINDS, type NsIds, type Snapshot } from '../../src/collector/task.js';
import { readCriuImages, readImages, writeImages } from '../../src/image/index.js';
import { diffSnapshots } from '../../src/image/diff.js';
import { selectPidView } from '../../src/image/view.js';
import { procStat, procStatus } from '../helpers/procread.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'tdcollect.js');
const NSTREE = join(ROOT, 'test', 'fixtures', 'nstree.py');

interface Proc { role: string; pid: number; ppid: number; pgid: number; sid: number; threads: number[] }

let child: ChildProcess;
let procs: Proc[];
let nsInit: number;
let work: string;
const lines: string[] = [];
let waiters: Array<(l: string) => void> = [];

function nextLine(): Promise<string> {
  if (lines.length) return Promise.resolve(lines.shift()!);
  return new Promise((r) => waiters.push(r));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), `tdc-pidns-${process.pid}-`));
  child = spawn('unshare', ['-pf', '--kill-child', 'setsid', '/usr/bin/python3', NSTREE], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buf = '';
  child.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(l); else lines.push(l);
    }
  });
  const exited = new Promise<never>((_, reject) => child.on('exit', (code) => reject(new Error(`unshare exited ${code}`))));
  procs = (JSON.parse(await Promise.race([nextLine(), exited])) as { procs: Proc[] }).procs;
  nsInit = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim());
});

afterAll(async () => {
  rmSync(work, { recursive: true, force: true });
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.stdin!.end(); // nstree kills its children and exits at EOF; unshare --kill-child covers the rest
  const t = setTimeout(() => { try { process.kill(nsInit, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
  await gone;
  clearTimeout(t);
});

/** Every task of the tree as /proc shows it from here: host ids, and the namespace's from the NS* lines. */
interface Seen {
  host: { pid: number; tgid: number; ppid: number; sid: number; pgid: number };
  ns: { pid: number; tgid: number; ppid: number; sid: number; pgid: number };
  nsIds: NsIds;
}
function readTree(): Seen[] {
  const out: Seen[] = [];
  const nsPidOf = (hostPid: number): number => Number(procStatus(hostPid, hostPid).NSpid.split(/\s+/)[1]);
  const stack = [nsInit];
  while (stack.length) {
    const tgid = stack.pop()!;
    for (const name of readdirSync(`/proc/${tgid}/task`)) {
      const tid = Number(name);
      const st = procStatus(tgid, tid);
      const stat = procStat(tgid, tid);
      const nspid = st.NSpid.split(/\s+/).map(Number);
      expect(nspid).toHaveLength(2); // one level below ours
      const nsIds: NsIds = {};
      for (const k of NS_KINDS) {
        const link = readlinkSync(`/proc/${tgid}/task/${tid}/ns/${k}`);
        nsIds[k] = Number(/\[(\d+)\]/.exec(link)![1]);
      }
      out.push({
        host: { pid: tid, tgid, ppid: Number(stat[4]), pgid: Number(stat[5]), sid: Number(stat[6]) },
        ns: {
          pid: nspid[1], tgid: nsPidOf(tgid), ppid: tgid === nsInit ? 0 : nsPidOf(Number(stat[4])),
          sid: Number(st.NSsid.split(/\s+/)[1]), pgid: Number(st.NSpgid.split(/\s+/)[1]),
        },
        nsIds,
      });
      for (const c of readFileSync(`/proc/${tgid}/task/${tid}/children`, 'utf8').trim().split(' ')) if (c) stack.push(Number(c));
    }
  }
  return out.sort((a, b) => a.ns.pid - b.ns.pid);
}

function checkSnapshot(s: Snapshot, seen: Seen[]): void {
  expect(s.info.root).toBe(nsInit);
  expect(s.info.rootNsPid).toBe(1);
  const tasks = [...s.tasks].sort((a, b) => a.pid - b.pid);
  expect(tasks.map((t) => t.pid)).toEqual(seen.map((x) => x.ns.pid));
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i], x = seen[i];
    expect({ pid: t.pid, tgid: t.tgid, ppid: t.ppid, sid: t.sid, pgid: t.pgid }, `task ${t.pid}`).toEqual(x.ns);
    expect(t.collectorView, `task ${t.pid}`).toEqual(x.host);
    expect(t.ns, `task ${t.pid}`).toEqual(x.nsIds);
  }
  // and as the tasks themselves saw it from inside (getpid, getppid, getpgid, getsid, gettid)
  for (const p of procs) {
    const t = tasks.find((y) => y.pid === p.pid)!;
    expect({ pid: t.pid, ppid: t.ppid, pgid: t.pgid, sid: t.sid }).toEqual({ pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid });
    for (const tid of p.threads) expect(tasks.find((y) => y.pid === tid)?.tgid).toBe(p.pid);
  }
}

const sources = ['procfs', 'bpf'] as const;

describe.each(sources)('a pid-namespace tree dumped from outside with %s', (source) => {
  it('the tree is what nstree built: init 1, a session leader, a child in its own group, a grandchild', () => {
    expect(procs.map((p) => [p.role, p.pid === 1 ? 1 : 'n', p.sid, p.pgid === p.pid])).toEqual([
      ['init', 1, 1, true], ['child', 'n', 1, true], ['grandchild', 'n', 1, false],
    ]);
  });

  it('collect() gives the root\'s view, the collector\'s view and every namespace identity', async () => {
    const s = await collect({ root: nsInit, source, freeze: 'ptrace' });
    expect(s.info.source).toBe(source);
    checkSnapshot(s, readTree());
    // the collector's view on demand
    const host = selectPidView(s, 'collector');
    expect(host.tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual(readTree().map((x) => x.host.pid).sort((a, b) => a - b));
  });

  it('tdcollect dump writes both views in tasks.img, the namespace\'s pids in pstree.img and core-TID.img names', () => {
    const dir = join(work, `dump-${source}`);
    const r = spawnSync(process.execPath, [BIN, 'dump', '--root', String(nsInit), '--source', source, '-o', dir], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const seen = readTree();
    checkSnapshot(readImages(dir), seen);
    const criu = readCriuImages(dir);
    const cores = readdirSync(dir).filter((f) => f.startsWith('core-')).map((f) => Number(f.slice(5, -4))).sort((a, b) => a - b);
    expect(cores).toEqual(seen.map((x) => x.ns.pid));
    const pstree = criu.pstree.map((p) => p.entry).sort((a, b) => (a.pid as number) - (b.pid as number));
    const leaders = seen.filter((x) => x.ns.pid === x.ns.tgid);
    expect(pstree.map((e) => [e.pid, e.ppid, e.pgid, e.sid, [...(e.threads as number[])].sort((a, b) => a - b)])).toEqual(
      leaders.map((l) => [l.ns.pid, l.ns.ppid, l.ns.pgid, l.ns.sid, seen.filter((x) => x.ns.tgid === l.ns.pid).map((x) => x.ns.pid)]));
  });
});

describe('a task that moves to another namespace', () => {
  it('is reported by diff (ns.uts), and only that task', async () => {
    const before = await collect({ root: nsInit, source: 'procfs', freeze: 'ptrace' });
    const a = join(work, 'before');
    await writeImages(before, a);
    const gc = procs.find((p) => p.role === 'grandchild')!;
    const hostGc = before.tasks.find((t) => t.pid === gc.pid)!.collectorView!.pid;
    process.kill(hostGc, 'SIGUSR1');
    expect(await nextLine()).toBe('moved');
    for (const source of sources) {
      const after = await collect({ root: nsInit, source, freeze: 'ptrace' });
      checkSnapshot(after, readTree());
      // unshare() itself sets a PF_* flag on the task (a used privilege): not what this test is about
      const d = diffSnapshots(before, after, { ignore: ['flags'] });
      expect(d.processes.map((p) => [p.pid, p.changes])).toEqual([
        [gc.pid, [{ field: 'ns.uts', kind: 'namespace', old: before.tasks.find((t) => t.pid === gc.pid)!.ns!.uts,
          new: Number(/\[(\d+)\]/.exec(readlinkSync(`/proc/${hostGc}/ns/uts`))![1]) }]],
      ]);
      const b = join(work, `after-${source}`);
      await writeImages(after, b);
      const r = spawnSync(process.execPath, [BIN, 'diff', '--ignore', 'flags', a, b], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stdout).toContain(`process ${gc.pid} (python3):`);
      expect(r.stdout).toMatch(/ns\.uts: \d+ -> \d+ \(moved to another namespace\)/);
    }
  });
});
