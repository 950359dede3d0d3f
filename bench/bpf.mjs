#!/usr/bin/env node
/**
 * bpf source benchmark, 10,000 extra processes (treegen --procs N, N = $BENCH_PROCS or 10000):
 *  1. in-process snapshot of the tree: bpf (loaded iterator, in-kernel filter), bpf (pinned iterator,
 *     user-space filter), the procfs source (when built in) — medians of >= 11 runs, µs per task, ratios;
 *  2. system calls of one snapshot (strace -c -f attached after the one-time load);
 *  3. whole process: `tdcollect ps` (pinned iterator), run as an installed command is, against
 *     `ps ax -o pid,ppid` and `ps ax -o pid,ppid,pgid,sid,stat,comm,uid,gid` (hyperfine medians);
 *     `node -e 0` with and without NODE_EXTRA_CA_CERTS, and `node bin/tdcollect.js ps`, for reference.
 * Run: npm run build && node bench/bpf.mjs   (or npm run bench -- bpf). Needs root, strace, hyperfine, gcc.
 */
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fixtureBin, readyLine, spawnTreegen } from './lib-fixture.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const DIST = join(ROOT, 'dist');
const BIN = join(ROOT, 'bin/tdcollect.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 15);

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmt = (x, d = 1) => (x === undefined ? 'n/a' : x.toFixed(d));

function timeRuns(fn, runs = RUNS) {
  fn(); fn(); // warm-up
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return { median: median(ms), min: Math.min(...ms) };
}

async function timeRunsAsync(fn, runs = RUNS) {
  await fn();
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return { median: median(ms), min: Math.min(...ms) };
}

/** strace -c -f attached to a process that is about to take one snapshot; returns {total, bySyscall}. */
async function straceOneSnapshot(root, env) {
  const out = join(mkdtempSync(join(tmpdir(), 'tdcollect-bench-')), 'strace.txt');
  const child = spawn(process.execPath, [join(HERE, 'lib-bpf-snapshot.mjs'), String(root)], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const lines = [];
  let wake;
  child.stdout.on('data', (b) => { for (const l of b.toString().split('\n')) if (l) { lines.push(l); wake?.(); } });
  const waitLine = async (prefix) => { while (!lines.some((l) => l.startsWith(prefix))) await new Promise((r) => { wake = r; }); return lines.find((l) => l.startsWith(prefix)); };
  const [, pid, mode] = (await waitLine('ready')).split(' ');
  const st = spawn('strace', ['-c', '-f', '-o', out, '-p', pid], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stErr = '';
  st.stderr.on('data', (b) => { stErr += b; });
  // strace prints "Process N attached" per thread once attached
  for (let i = 0; i < 200 && !stErr.includes('attached'); i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 100));
  child.stdin.write('go\n');
  const [, , own, reads] = (await waitLine('done')).split(' ');
  await new Promise((r) => st.once('exit', r));
  const text = readFileSync(out, 'utf8');
  rmSync(dirname(out), { recursive: true, force: true });
  const bySyscall = {};
  let total = 0;
  for (const l of text.split('\n')) {
    const f = l.trim().split(/\s+/);
    if (f.length >= 5 && /^[0-9.]+$/.test(f[0]) && f[f.length - 1] !== 'total') {
      const calls = Number(f[3]);
      bySyscall[f[f.length - 1]] = calls;
    }
    if (f[f.length - 1] === 'total') total = Number(f[3]);
  }
  return { total, bySyscall, mode, sourceSyscalls: Number(own), reads: Number(reads) };
}

function hyperfine(cmds, env) {
  const dir = mkdtempSync(join(tmpdir(), 'tdcollect-bench-'));
  const json = join(dir, 'h.json');
  const args = ['-N', '--runs', String(RUNS), '--warmup', '2', '--export-json', json, ...cmds];
  const r = spawnSync('hyperfine', args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`hyperfine failed: ${r.stderr}`);
  const res = JSON.parse(readFileSync(json, 'utf8')).results;
  rmSync(dir, { recursive: true, force: true });
  return res.map((x) => ({ command: x.command, median: x.median * 1000, min: x.min * 1000 }));
}

export async function run() {
  if (!existsSync(join(DIST, 'collector/sources/bpf/bpf.js'))) execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  const { BpfSource } = await import(pathToFileURL(join(DIST, 'collector/sources/bpf/bpf.js')).href);
  const { pinIterator, unpinIterator } = await import(pathToFileURL(join(DIST, 'cli/bpf.js')).href);
  const { SOURCES } = await import(pathToFileURL(join(DIST, 'collector/sources/index.js')).href);
  const procs = Number(process.env.BENCH_PROCS ?? 10000);
  const pin = `/sys/fs/bpf/tdcollect-bench-${process.pid}/tasks`;
  console.log(`spawning ${procs} processes ...`);
  const tree = await spawnTreegen(procs);
  const result = { procs, tasks: tree.tasks, runs: RUNS };
  try {
    // 1. in-process snapshots
    let t0 = performance.now();
    const loaded = await BpfSource.open({ pinPath: undefined });
    result.loadMs = performance.now() - t0;
    let n = 0;
    const bpfLoaded = timeRuns(() => { n = loaded.collectTreeSync(tree.root).length; });
    if (n !== tree.tasks) throw new Error(`bpf returned ${n} tasks, the tree has ${tree.tasks}`);
    // read only (no decoding), for reference
    const { drainIter } = await import(pathToFileURL(join(DIST, 'sys/bpf.js')).href);
    const it = await (await import(pathToFileURL(join(DIST, 'collector/sources/bpf/bpf.js')).href)).LoadedIterator.load();
    it.configure(tree.root, false);
    const readOnly = timeRuns(() => drainIter(it.open()));
    it.close();
    await pinIterator(pin, 0o600);
    const pinnedSrc = await BpfSource.open({ pinPath: pin });
    const bpfPinned = timeRuns(() => { n = pinnedSrc.collectTreeSync(tree.root).length; });
    if (n !== tree.tasks) throw new Error(`pinned bpf returned ${n} tasks`);
    pinnedSrc.close();
    loaded.close();
    let procfs;
    const pf = SOURCES.procfs;
    const probe = pf ? await pf.probe() : { ok: false, reason: 'not built in' };
    if (probe.ok) {
      const s = await pf.open();
      procfs = await timeRunsAsync(async () => { n = (await s.collectTree(tree.root)).length; }, Math.max(11, Math.min(RUNS, 11)));
      s.close();
    }
    // reference: a plain /proc reader (stat, status, comm per thread), as the tests use
    const { procTask } = await import(pathToFileURL(join(ROOT, 'test/integration/bpf-procread.mjs')).href);
    const tids = tree.tids;
    const procRef = timeRuns(() => { for (const [tgid, tid] of tids) procTask(tgid, tid); }, 11);
    result.inProcess = {
      procReference: { ...procRef, usPerTask: (procRef.median * 1000) / tree.tasks },
      bpfLoaded: { ...bpfLoaded, usPerTask: (bpfLoaded.median * 1000) / tree.tasks },
      bpfReadOnly: { ...readOnly, usPerTask: (readOnly.median * 1000) / tree.tasks },
      bpfPinned: { ...bpfPinned, usPerTask: (bpfPinned.median * 1000) / tree.tasks },
      procfs: procfs ? { ...procfs, usPerTask: (procfs.median * 1000) / tree.tasks } : { unavailable: probe.reason },
      ratioProcfsOverBpf: procfs ? procfs.median / bpfLoaded.median : undefined,
      ratioReferenceOverBpf: procRef.median / bpfLoaded.median,
    };

    // 2. syscalls of one snapshot, after the load
    const envNone = { ...process.env, TDCOLLECT_BPF_PIN: 'none' };
    const envPin = { ...process.env, TDCOLLECT_BPF_PIN: pin };
    result.syscalls = {
      loaded: await straceOneSnapshot(tree.root, envNone),
      pinned: await straceOneSnapshot(tree.root, envPin),
    };

    // 3. whole process: tdcollect run as an installed command is (its launcher's #! line drops
    // NODE_EXTRA_CA_CERTS, which Node parses before starting), and through `node bin/tdcollect.js` for reference
    const ps2 = 'ps ax -o pid,ppid';
    const ps8 = 'ps ax -o pid,ppid,pgid,sid,stat,comm,uid,gid';
    const td2 = `${BIN} ps --source bpf -o pid,ppid`;
    const td8 = `${BIN} ps --source bpf -o pid,ppid,pgid,sid,stat,comm,uid,gid`;
    const td8Node = `${process.execPath} ${BIN} ps --source bpf -o pid,ppid,pgid,sid,stat,comm,uid,gid`;
    const node0 = `${process.execPath} -e 0`;
    const node0Clean = `env -u NODE_EXTRA_CA_CERTS ${process.execPath} -e 0`;
    const h = hyperfine([node0, node0Clean, ps2, ps8, td2, td8, td8Node], envPin);
    const hLoad = hyperfine([td2], envNone);
    const get = (c) => h.find((x) => x.command === c);
    result.wholeProcess = {
      caCerts: process.env.NODE_EXTRA_CA_CERTS !== undefined,
      nodeStart: get(node0), nodeStartClean: get(node0Clean),
      ps2: get(ps2), ps8: get(ps8), td2Pinned: get(td2), td8Pinned: get(td8), td8ThroughNode: get(td8Node), td2Loaded: hLoad[0],
      speedup2: get(ps2).median / get(td2).median,
      speedup8: get(ps8).median / get(td8).median,
    };
  } finally {
    unpinIterator(pin);
    await tree.kill();
  }
  print(result);
  return result;
}

function print(r) {
  const ip = r.inProcess;
  const w = r.wholeProcess;
  const rows = [
    ['in-process snapshot, bpf loaded (kernel filter)', fmt(ip.bpfLoaded.median, 2), fmt(ip.bpfLoaded.min, 2), fmt(ip.bpfLoaded.usPerTask, 3)],
    ['  of which iterate+read only (no decoding)', fmt(ip.bpfReadOnly.median, 2), fmt(ip.bpfReadOnly.min, 2), fmt(ip.bpfReadOnly.usPerTask, 3)],
    ['in-process snapshot, bpf pinned (user filter)', fmt(ip.bpfPinned.median, 2), fmt(ip.bpfPinned.min, 2), fmt(ip.bpfPinned.usPerTask, 3)],
    ['in-process snapshot, procfs source', ip.procfs.median !== undefined ? fmt(ip.procfs.median, 2) : `n/a (${ip.procfs.unavailable})`, fmt(ip.procfs.min, 2), fmt(ip.procfs.usPerTask, 3)],
    ['reference: /proc stat+status+comm per task (test reader)', fmt(ip.procReference.median, 2), fmt(ip.procReference.min, 2), fmt(ip.procReference.usPerTask, 3)],
    ['one-time load+attach (libbpf)', fmt(r.loadMs, 1), '', ''],
  ];
  console.log(`${r.procs} extra processes, ${r.tasks} tasks in the tree, ${r.runs} runs each\n`);
  console.log('| measurement | median ms | min ms | µs/task |\n|---|---:|---:|---:|');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  console.log(`\nprocfs source / bpf: ${ip.ratioProcfsOverBpf === undefined ? 'n/a' : `${fmt(ip.ratioProcfsOverBpf, 1)}x`}; reference /proc reader / bpf: ${fmt(ip.ratioReferenceOverBpf, 1)}x`);
  const sc = (s) => `${s.total} in all, ${s.sourceSyscalls} by the source (${s.reads} reads) (${Object.entries(s.bySyscall).sort((a, b) => b[1] - a[1]).slice(0, 5).map(([k, v]) => `${k} ${v}`).join(', ')})`;
  console.log(`syscalls per snapshot (strace -c -f): loaded ${sc(r.syscalls.loaded)}; pinned ${sc(r.syscalls.pinned)}`);
  console.log('\n| whole process | median ms | min ms |\n|---|---:|---:|');
  for (const [name, x] of [['node -e 0', w.nodeStart], ['node -e 0 without NODE_EXTRA_CA_CERTS', w.nodeStartClean],
    ['ps ax -o pid,ppid', w.ps2], ['ps ax -o pid,ppid,pgid,sid,stat,comm,uid,gid', w.ps8],
    ['tdcollect ps -o pid,ppid (pinned)', w.td2Pinned], ['tdcollect ps -o pid,ppid,pgid,sid,stat,comm,uid,gid (pinned)', w.td8Pinned],
    ['tdcollect ps -o pid,ppid (loads the iterator)', w.td2Loaded],
    ['node bin/tdcollect.js ps, 8 columns, pinned (NODE_EXTRA_CA_CERTS kept)', w.td8ThroughNode]]) {
    console.log(`| ${name} | ${fmt(x.median)} | ${fmt(x.min)} |`);
  }
  console.log(`\nNODE_EXTRA_CA_CERTS is ${w.caCerts ? 'set' : 'not set'} in this environment`);
  console.log(`speed-up of tdcollect ps (as installed): ${fmt(w.speedup2, 2)}x over ps ax -o pid,ppid; ${fmt(w.speedup8, 2)}x over the 8-column ps`);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  run().catch((e) => { console.error(e); process.exitCode = 1; });
}
