/**
 * A container-like tree dumped by CRIU 3.17.1 and by tdcollect with every source: the same pid-namespace
 * tree (`unshare -pf setsid`: init a session leader with a thread, a child in its own process group with
 * a thread, a grandchild), dumped from outside the namespace. Ours must equal CRIU's pid for pid: the
 * pstree.img entries (pid, ppid, pgid, sid, threads), the core-TID.img names, and the contents of every
 * core-TID.img field by field, decoded twice: with the project's own decoder and with crit's (pycriu).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { criuDump, criuVersion, type CriuDump } from './criu.js';
import { tdc } from './lib.js';
import { KIND, decodeImage, readImages, schemas } from '../../../src/image/index.js';

const NSTREE = join(process.cwd(), 'test/fixtures/nstree.py');
const SOURCES = ['taskdiag', 'procfs', 'bpf'] as const;
/** core fields each source cannot fill (its `missing` list): procfs has no securebits in /proc */
const NOT_READ: Record<(typeof SOURCES)[number], string[]> = {
  taskdiag: [], procfs: ['creds.secbits'], bpf: [],
};

let child: ChildProcess;
let nsInit: number;
let criu: CriuDump;
let work: string;
let ready: { procs: { role: string; pid: number; threads: number[] }[] };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), `td-criu-pidns-${process.pid}-`));
  // CRIU needs the tree's stdio on pipes or /dev/null: Node's 'pipe' stdio is a socketpair (an external unix
  // socket to CRIU), so the tree sits between two cats, on real pipes; no mount namespace of its own
  const q = (x: string): string => `'${x}'`;
  child = spawn('sh', ['-c', `cat | unshare -pf --kill-child setsid /usr/bin/python3 ${q(NSTREE)} 2>/dev/null | cat`],
    { stdio: ['pipe', 'pipe', 'ignore'] });
  ready = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)));
    });
    child.on('exit', (code) => reject(new Error(`the fixture's shell exited ${code}`)));
  });
  const kids = (p: number): number[] =>
    readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
  const unshare = kids(child.pid!).find((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'unshare')!;
  nsInit = kids(unshare)[0];
  // init leads its own session inside the namespace: no --shell-job needed
  criu = criuDump(nsInit, { shellJob: false });
});

afterAll(async () => {
  criu?.remove();
  rmSync(work, { recursive: true, force: true });
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.stdin!.end();
  const t = setTimeout(() => { try { process.kill(nsInit, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
  await gone;
  clearTimeout(t);
});

type Rec = Record<string, unknown>;

/** What both sides record of one thread's core image, by the project's decoder (bigints as decimal text). */
function pick(core: Rec): Rec {
  const tc = core.tc as Rec | undefined;
  const th = core.thread_core as Rec | undefined;
  const creds = th?.creds as Rec | undefined;
  const out: Rec = { mtype: core.mtype };
  if (tc) {
    for (const k of ['task_state', 'exit_code', 'personality', 'flags', 'blk_sigset', 'comm']) out[`tc.${k}`] = tc[k];
  }
  if (th) {
    for (const k of ['futex_rla', 'futex_rla_len', 'sched_nice', 'sched_policy', 'sched_prio', 'blk_sigset', 'seccomp_mode', 'comm']) {
      out[`thread_core.${k}`] = th[k];
    }
  }
  if (creds) {
    for (const k of ['uid', 'gid', 'euid', 'egid', 'suid', 'sgid', 'fsuid', 'fsgid', 'cap_inh', 'cap_prm', 'cap_eff',
      'cap_bnd', 'cap_amb', 'secbits', 'groups', 'no_new_privs']) out[`creds.${k}`] = creds[k];
  }
  return JSON.parse(JSON.stringify(out, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

function ourDecode(dir: string): { pstree: Rec[]; cores: Map<number, Rec> } {
  const s = schemas();
  const pstree = decodeImage('pstree.img', readFileSync(join(dir, 'pstree.img')), KIND.pstree, s.pstree)
    .map(({ msg }) => ({ pid: msg.pid, ppid: msg.ppid, pgid: msg.pgid, sid: msg.sid, threads: [...(msg.threads as number[])].sort((a, b) => a - b) }))
    .sort((a, b) => (a.pid as number) - (b.pid as number));
  const cores = new Map<number, Rec>();
  for (const f of readdirSync(dir)) {
    const m = /^core-(\d+)\.img$/.exec(f);
    if (!m) continue;
    cores.set(Number(m[1]), pick(decodeImage(f, readFileSync(join(dir, f)), KIND.core, s.core)[0].msg));
  }
  return { pstree, cores };
}

/** The same through pycriu (what crit decode prints), one python run per directory. */
function critDecode(dir: string): { pstree: Rec[]; cores: Map<number, Rec> } {
  const script = `
import json, os, sys, pycriu
d = sys.argv[1]
out = {}
for f in sorted(os.listdir(d)):
    if f == 'pstree.img' or (f.startswith('core-') and f.endswith('.img')):
        with open(os.path.join(d, f), 'rb') as fh:
            out[f] = pycriu.images.load(fh)['entries']
print(json.dumps(out))`;
  const all = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8', maxBuffer: 16 << 20 })) as Record<string, Rec[]>;
  const pstree = all['pstree.img'].map((e) => ({ pid: e.pid, ppid: e.ppid, pgid: e.pgid, sid: e.sid, threads: [...(e.threads as number[])].sort((a, b) => a - b) }))
    .sort((a, b) => (a.pid as number) - (b.pid as number));
  const cores = new Map<number, Rec>();
  for (const [f, entries] of Object.entries(all)) {
    const m = /^core-(\d+)\.img$/.exec(f);
    if (m) cores.set(Number(m[1]), pick(entries[0]));
  }
  return { pstree, cores };
}

/** The core fields a Task field the source could not read (tasks.img's `missing`) is written to. */
const MISSING_CORE_FIELDS: Record<string, string[]> = {
  securebits: ['creds.secbits'], personality: ['tc.personality'], futexRla: ['thread_core.futex_rla'],
  futexRlaLen: ['thread_core.futex_rla_len'],
};

/**
 * a proto2 optional field written as zero on one side and left out on the other: the same value (crit
 * prints the zero of the seccomp_mode enum as "disabled")
 */
const isZero = (v: unknown): boolean =>
  v === 0 || v === '0' || v === 'disabled' || (Array.isArray(v) && v.every((x) => x === 0));

/**
 * Every field where ours differs from CRIU's, as "core-N.img field: ours -> criu" lines. Two rules, and
 * only these, relax exact equality: an optional field one side leaves out and the other writes as zero
 * (CRIU writes seccomp_mode and cap_amb only when non-zero, and a leader's blocked signals only in tc) is
 * equal; a field the source says it could not read (`skip`) is not compared.
 */
function differences(ours: { pstree: Rec[]; cores: Map<number, Rec> }, theirs: { pstree: Rec[]; cores: Map<number, Rec> },
  skip: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  expect(ours.pstree).toEqual(theirs.pstree);
  expect([...ours.cores.keys()].sort((a, b) => a - b)).toEqual([...theirs.cores.keys()].sort((a, b) => a - b));
  for (const [tid, c] of theirs.cores) {
    const o = ours.cores.get(tid)!;
    for (const k of new Set([...Object.keys(c), ...Object.keys(o)])) {
      if (skip.has(k)) continue;
      if ((o[k] === undefined && isZero(c[k])) || (c[k] === undefined && isZero(o[k]))) continue;
      if (JSON.stringify(o[k]) !== JSON.stringify(c[k])) out.push(`core-${tid}.img ${k}: ${JSON.stringify(o[k])} -> ${JSON.stringify(c[k])}`);
    }
  }
  return out;
}

describe(`CRIU ${criuVersion()} and tdcollect dump the same pid-namespace tree`, () => {
  it('CRIU wrote the namespace\'s pids (init 1, the pids the tasks saw from inside)', () => {
    const c = ourDecode(criu.dir);
    expect(c.pstree.map((e) => e.pid)).toEqual(ready.procs.map((p) => p.pid).sort((a, b) => a - b));
    expect(c.pstree[0]).toMatchObject({ pid: 1, ppid: 0, pgid: 1, sid: 1 });
    const tids = ready.procs.flatMap((p) => [p.pid, ...p.threads]).sort((a, b) => a - b);
    expect([...c.cores.keys()].sort((a, b) => a - b)).toEqual(tids);
  });

  for (const source of SOURCES) {
    it(`${source}: pstree.img, core-TID.img names and every compared core field equal CRIU's, by our decoder and by crit`, () => {
      const dir = join(work, source);
      const r = tdc(['dump', '-r', String(nsInit), '-s', source, '-o', dir]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const missing = readImages(dir).info.missing as string[];
      const skip = new Set(missing.flatMap((f) => MISSING_CORE_FIELDS[f] ?? []));
      // not compared, because the source says it could not read them (everything else pick() takes is)
      expect([...skip]).toEqual(NOT_READ[source]);
      expect(differences(ourDecode(dir), ourDecode(criu.dir), skip)).toEqual([]);
      expect(differences(critDecode(dir), critDecode(criu.dir), skip)).toEqual([]);
      // and tdcollect's own reading of both sets: equal for diff, in both directions
      for (const [x, y] of [[dir, criu.dir], [criu.dir, dir]]) {
        const d = tdc(['diff', x, y]);
        expect(d.stdout + d.stderr, `diff ${x} ${y}`).not.toMatch(/changed|added|removed/);
        expect(d.status, `diff ${x} ${y}`).toBe(0);
      }
    }, 400_000); // a dump, two diffs and two decodes, each a cold Node or Python under TCG
  }

  it('a changed tree makes tdcollect diff against CRIU\'s images exit 1, naming the change', async () => {
    // the grandchild leaves its siblings' uts namespace (nstree: SIGUSR1 -> unshare(CLONE_NEWUTS))
    const gc = ready.procs.find((p) => p.role === 'grandchild')!;
    const before = join(work, 'procfs');
    const hostGc = readImages(before).tasks.find((t) => t.pid === gc.pid)!.collectorView!.pid;
    const moved = new Promise<void>((resolve) => {
      child.stdout!.on('data', (b: Buffer) => { if (b.toString().includes('moved')) resolve(); });
    });
    process.kill(hostGc, 'SIGUSR1');
    await moved;
    const after = join(work, 'after');
    const r = tdc(['dump', '-r', String(nsInit), '-s', 'procfs', '-o', after]);
    expect(r.status).toBe(0);
    const d = tdc(['diff', '--ignore', 'flags', criu.dir, after]);
    expect(d.status).toBe(1);
    expect(d.stdout).toContain(`process ${gc.pid} (python3):`);
    expect(d.stdout).toMatch(/ns\.uts: \d+ -> \d+ \(moved to another namespace\)/);
    expect(d.stdout).toContain('1 process differ');
  }, 400_000);
});
