/**
 * The bpf source from inside a pid namespace (`unshare -pf --mount-proc`): a tree spawned inside the
 * namespace is collected by a collector that also runs inside it (nsenter), and every field is compared
 * with that namespace's /proc. Pids are the namespace's numbers; tasks outside it are not listed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { treegenPath } from '../helpers/tree.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Ready {
  keeper: number; root: number; sid: number; error?: string;
  procs: Array<{ pid: number; ppid: number; pgid: number; sid: number; role: string }>;
  threads: Array<{ tid: number; tgid: number }>;
}

let child: ChildProcess;
let ready: Ready;
let nsInit: number;

beforeAll(async () => {
  child = spawn('unshare', ['-pf', '--mount-proc', '--kill-child', treegenPath(), '--until-eof', '--timeout', '600', '--all', '--procs', '3', '--threads', '1'],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  ready = await new Promise<Ready>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as Ready);
    });
    child.on('exit', (code) => reject(new Error(`unshare exited ${code}`)));
  });
  expect(ready.error).toBeUndefined();
  // the namespace's pid 1 (treegen's keeper) seen from here: unshare's only child
  nsInit = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim());
});

afterAll(async () => {
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.stdin!.end(); // treegen tears the tree down at EOF; unshare --kill-child kills what is left
  const t = setTimeout(() => { try { process.kill(nsInit, 'SIGKILL'); } catch { /* gone */ } }, 20_000);
  await gone;
  clearTimeout(t);
});

/** Run a script with node inside the namespace (its pid and mount namespaces) and parse its JSON. */
function inNamespace(body: string): any {
  const script = `
    const { BpfSource } = await import(${JSON.stringify(join(ROOT, 'dist/collector/sources/bpf/bpf.js'))});
    const { procTask, comparable } = await import(${JSON.stringify(join(ROOT, 'test/integration/bpf-procread.mjs'))});
    ${body}`;
  const r = spawnSync('nsenter', ['-t', String(nsInit), '-p', '-m', process.execPath, '--input-type=module', '-e', script],
    { encoding: 'utf8', env: { ...process.env, TDCOLLECT_BPF_PIN: 'none' }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`script in namespace failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('bpf source inside a pid namespace', () => {
  it('the tree has namespace pids (keeper is pid 1)', () => {
    expect(ready.keeper).toBe(1);
    expect(ready.procs.find((p) => p.pid === ready.root)!.ppid).toBe(1);
  });

  it('collects the tree with namespace pids, every field equal to the namespace\'s /proc and to the procfs source', () => {
    const out = inNamespace(`
      const s = await BpfSource.open({ pinPath: undefined });
      const tasks = s.collectTreeSync(${ready.root});
      s.close();
      const { procfsFactory } = await import(${JSON.stringify(join(ROOT, 'dist/collector/sources/procfs.js'))});
      const p = await procfsFactory.open();
      const viaProcfs = await p.collectTree(${ready.root});
      p.close();
      const strip = (t) => { const c = { ...t }; for (const f of p.missing) delete c[f]; return c; };
      const byPid = (a, b) => a.pid - b.pid;
      console.log(JSON.stringify({ tasks: tasks.map(comparable), proc: tasks.map((t) => procTask(t.tgid, t.pid)),
        bpfFull: tasks.sort(byPid).map(strip), procfsFull: viaProcfs.sort(byPid).map(strip) }));`);
    const tids = ready.threads.map((t) => t.tid).sort((a, b) => a - b);
    expect(out.tasks.map((t: { pid: number }) => t.pid).sort((a: number, b: number) => a - b)).toEqual(tids);
    expect(out.tasks).toEqual(out.proc);
    // the procfs source, also run inside the namespace, gives the same records
    expect(out.bpfFull).toEqual(out.procfsFull);
    const root = out.tasks.find((t: { pid: number }) => t.pid === ready.root);
    expect([root.ppid, root.sid, root.pgid]).toEqual([1, ready.root, ready.root]);
  });

  it('lists only the namespace\'s tasks; ppid of its pid 1 is 0', () => {
    const out = inNamespace(`
      const s = await BpfSource.open({ pinPath: undefined });
      const all = s.collectAllSync({ threads: false });
      s.close();
      const { readdirSync } = await import('node:fs');
      const proc = readdirSync('/proc').filter((n) => n >= '0' && n <= '9').map(Number);
      console.log(JSON.stringify({ all, proc, self: process.pid }));`);
    const ours = out.all.map((t: { pid: number }) => t.pid).filter((p: number) => p !== out.self).sort((a: number, b: number) => a - b);
    const proc = out.proc.filter((p: number) => p !== out.self).sort((a: number, b: number) => a - b);
    expect(ours).toEqual(proc);
    expect(ours).toEqual(ready.procs.map((p) => p.pid).concat(1).sort((a, b) => a - b));
    const init = out.all.find((t: { pid: number }) => t.pid === 1);
    expect([init.ppid, init.comm]).toEqual([0, readFileSync(`/proc/${nsInit}/comm`, 'utf8').trim()]);
  });
});

describe('images from inside the namespace', () => {
  it('bpf and procfs dumps of the frozen tree (namespace pids) are equal for tdcollect diff', () => {
    const dir = mkdtempSync(join(tmpdir(), 'td-pidns-eq-'));
    try {
      const inNs = (args: string[]) => spawnSync('nsenter', ['-t', String(nsInit), '-p', '-m', process.execPath, join(ROOT, 'bin/tdcollect.js'), ...args],
        { encoding: 'utf8', env: { ...process.env, TDCOLLECT_BPF_PIN: 'none' } });
      for (const source of ['bpf', 'procfs']) {
        const r = inNs(['dump', '-r', String(ready.root), '-s', source, '-f', 'ptrace', '-o', join(dir, source)]);
        expect(r.stderr, `dump --source ${source}`).toBe('');
        expect(r.status, `dump --source ${source}`).toBe(0);
      }
      const d = inNs(['diff', join(dir, 'bpf'), join(dir, 'procfs')]);
      expect(d.stdout + d.stderr).toBe('note: not compared where one side did not record them: securebits\n');
      expect(d.status).toBe(0);
      const show = JSON.parse(inNs(['show', join(dir, 'bpf'), '--json']).stdout) as { tasks: { pid: number; ppid: number }[] };
      expect(show.tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual(ready.threads.map((t) => t.tid).sort((a, b) => a - b));
      expect(show.tasks.find((t) => t.pid === ready.root)!.ppid).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the same tree seen from the parent namespace', () => {
  it('has other pid numbers there', () => {
    const r = spawnSync('grep', ['^NSpid:', `/proc/${nsInit}/status`], { encoding: 'utf8' });
    expect(r.stdout.trim().split(/\s+/).slice(1).map(Number)).toEqual([nsInit, 1]);
  });
});
