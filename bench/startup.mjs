#!/usr/bin/env node
/**
 * Start-up benchmark: every figure of a cold command against Node's own start, in one run.
 *
 *  1. `node -e 0` (without NODE_EXTRA_CA_CERTS, as the launcher starts Node), `tdcollect --version`,
 *     `tdcollect dump` of a 5-process tree (cold: no pin, --source auto; -s procfs; auto with a pinned
 *     iterator) and `tdcollect show` of that dump;
 *  2. with BENCH_PROCS (10,000) extra processes: cold `tdcollect ps -o pid,ppid` (no pin) against
 *     `ps ax -o pid,ppid`, the same with a pinned iterator, and 8 columns pinned against
 *     `ps ax -o pid,ppid,pgid,sid,stat,comm,uid,gid`;
 *  3. in process: the BPF iterator's load + attach (libbpf open, CO-RE, verifier, attach).
 *
 * Whole commands run as an installed command runs (bin/tdcollect.js through its #! line, BENCH_BIN to bench
 * another build), started directly (no shell, like hyperfine -N), in alternating order (one run of each
 * command per round, so load on the machine falls on all of them alike); medians of BENCH_RUNS (15) rounds
 * after 2 warm-up rounds. The minimal CO-RE BTF cache (~/.cache/tdcollect) is left as it is: it is made once
 * per kernel build. The launcher's code cache (bin/tdcollect.js, in the same directory) is measured both
 * ways: the rows without a note run with it warm (made by the warm-up rounds if it was not there: what
 * every run after a command's first one sees), the rows marked "no code cache" with
 * TDCOLLECT_CODE_CACHE=none (what the first run of a command after an install or a new Node costs, without
 * the cache's writing).
 * On a shared machine run it alone: flock /tmp/tdc-coord/heavy.lock npm run bench -- startup
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnTreegen } from './lib-fixture.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const BIN = process.env.BENCH_BIN ?? join(ROOT, 'bin/tdcollect.js');
/** the installation BIN belongs to: its dist/ gives the in-process figures */
const BUILD = join(dirname(BIN), '..');
const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const PROCS = Number(process.env.BENCH_PROCS ?? 10000);

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmt = (x, d = 1) => (x === undefined ? 'n/a' : x.toFixed(d));

/**
 * Run every command once per round, in turn, RUNS rounds after 2 warm-up rounds; each command is
 * { name, argv: string[] | (round) => string[], env }. Returns name -> { median, min } in ms.
 */
function alternate(cmds) {
  const times = new Map(cmds.map((c) => [c.name, []]));
  for (let round = -2; round < RUNS; round++) {
    for (const c of cmds) {
      const argv = typeof c.argv === 'function' ? c.argv(round) : c.argv;
      const t0 = performance.now();
      const r = spawnSync(argv[0], argv.slice(1), { env: c.env, stdio: ['ignore', 'ignore', 'pipe'] });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`${c.name}: ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
      if (round >= 0) times.get(c.name).push(ms);
    }
  }
  return Object.fromEntries([...times].map(([k, v]) => [k, { median: median(v), min: Math.min(...v) }]));
}

const noCa = () => { const e = { ...process.env }; delete e.NODE_EXTRA_CA_CERTS; return e; };

export async function run() {
  if (BUILD === ROOT && !existsSync(join(ROOT, 'dist/bin/all.cjs'))) spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  const { pinIterator, unpinIterator } = await import(pathToFileURL(join(BUILD, 'dist/cli/bpf.js')).href);
  const { LoadedIterator } = await import(pathToFileURL(join(BUILD, 'dist/collector/sources/bpf/bpf.js')).href);
  const pin = `/sys/fs/bpf/tdcollect-bench-${process.pid}/tasks`;
  const tmp = mkdtempSync(join(tmpdir(), `tdcollect-bench-startup-${process.pid}-`));
  const envNone = { ...noCa(), TDCOLLECT_BPF_PIN: 'none' };
  const envPin = { ...noCa(), TDCOLLECT_BPF_PIN: pin };
  const envTd = noCa();
  const noCodeCache = (e) => ({ ...e, TDCOLLECT_CODE_CACHE: 'none' });
  const node0 = { name: 'node -e 0', argv: [process.execPath, '-e', '0'], env: noCa() };
  const result = { runs: RUNS, bin: BIN };
  let small;
  let big;
  try {
    // 3. in process: load + attach, median of RUNS loads (the first pays dlopen of libbpf as well)
    const loads = [];
    for (let i = 0; i <= RUNS; i++) {
      const t0 = performance.now();
      const it = await LoadedIterator.load();
      const ms = performance.now() - t0;
      it.close();
      if (i > 0) loads.push(ms);
    }
    result.loadAttach = { median: median(loads), min: Math.min(...loads) };

    // 1. a 5-process tree
    small = await spawnTreegen(5);
    const root = String(small.root);
    let n = 0;
    const dumpTo = (tag) => () => ['dump', '-r', root, '-o', join(tmp, `${tag}-${n++}`)];
    const showDir = join(tmp, 'show');
    const first = spawnSync(BIN, ['dump', '-r', root, '-o', showDir], { env: noCodeCache(envNone), encoding: 'utf8' });
    if (first.status !== 0) throw new Error(`dump: ${first.stderr}`);
    await pinIterator(pin, 0o600);
    const cmds1 = [
      node0,
      { name: 'tdcollect --version', argv: [BIN, '--version'], env: noCa() },
      { name: 'dump, cold (auto, no pin)', argv: (r) => [BIN, ...dumpTo('auto')(r)], env: envNone },
      { name: 'dump -s procfs', argv: (r) => [BIN, ...dumpTo('procfs')(r), '-s', 'procfs'], env: envNone },
      { name: 'dump, pinned (auto)', argv: (r) => [BIN, ...dumpTo('pinned')(r)], env: envPin },
      { name: 'show of that dump', argv: [BIN, 'show', showDir], env: envTd },
      { name: 'dump, cold, no code cache', argv: (r) => [BIN, ...dumpTo('nocache')(r)], env: noCodeCache(envNone) },
      { name: 'show, no code cache', argv: [BIN, 'show', showDir], env: noCodeCache(envTd) },
    ];
    result.small = { tasks: small.tasks, times: alternate(cmds1) };
    unpinIterator(pin);
    await small.kill();
    small = undefined;

    // 2. BENCH_PROCS extra processes
    console.log(`spawning ${PROCS} processes ...`);
    big = await spawnTreegen(PROCS);
    await pinIterator(pin, 0o600);
    const c2 = 'pid,ppid';
    const c8 = 'pid,ppid,pgid,sid,stat,comm,uid,gid';
    const cmds2 = [
      node0,
      { name: `ps ax -o ${c2}`, argv: ['ps', 'ax', '-o', c2], env: noCa() },
      { name: `tdcollect ps -o ${c2}, cold (no pin)`, argv: [BIN, 'ps', '-o', c2], env: envNone },
      { name: `tdcollect ps -o ${c2}, pinned`, argv: [BIN, 'ps', '-o', c2], env: envPin },
      { name: `ps ax -o ${c8}`, argv: ['ps', 'ax', '-o', c8], env: noCa() },
      { name: `tdcollect ps -o ${c8}, pinned`, argv: [BIN, 'ps', '-o', c8], env: envPin },
    ];
    result.big = { procs: PROCS, tasks: big.tasks, times: alternate(cmds2) };
  } finally {
    unpinIterator(pin);
    await small?.kill();
    await big?.kill();
    rmSync(tmp, { recursive: true, force: true });
  }
  print(result);
  return result;
}

function print(r) {
  const s = r.small.times;
  const b = r.big.times;
  const base = s['node -e 0'].median;
  console.log(`${r.bin}, ${r.runs} alternating rounds, medians (ms); code cache warm unless noted`);
  console.log(`\nBPF iterator load + attach, in process: ${fmt(r.loadAttach.median)} ms (min ${fmt(r.loadAttach.min)}); target <= 40`);
  console.log(`\n${r.small.tasks}-task tree                      median    min   / node -e 0   target`);
  const target1 = { 'tdcollect --version': '<= 1.3', 'dump, cold (auto, no pin)': '<= 2.0', 'show of that dump': '<= 1.6' };
  for (const [k, v] of Object.entries(s)) {
    console.log(`  ${k.padEnd(30)} ${fmt(v.median).padStart(7)} ${fmt(v.min).padStart(6)}   ${(v.median / base).toFixed(2).padStart(8)}x   ${target1[k] ?? ''}`);
  }
  console.log(`\n${r.big.procs} extra processes (${r.big.tasks} tasks in the tree)`);
  for (const [k, v] of Object.entries(b)) console.log(`  ${k.padEnd(62)} ${fmt(v.median).padStart(7)} ${fmt(v.min).padStart(6)}`);
  const c2 = 'pid,ppid';
  const c8 = 'pid,ppid,pgid,sid,stat,comm,uid,gid';
  const ratio = (ps, td) => b[ps].median / b[td].median;
  console.log('  speed-ups over ps (ps median / tdcollect median):');
  console.log(`    cold, ${c2}:     ${ratio(`ps ax -o ${c2}`, `tdcollect ps -o ${c2}, cold (no pin)`).toFixed(2)}x   target >= 1.5`);
  console.log(`    pinned, ${c2}:   ${ratio(`ps ax -o ${c2}`, `tdcollect ps -o ${c2}, pinned`).toFixed(2)}x   target >= 3`);
  console.log(`    pinned, 8 columns: ${ratio(`ps ax -o ${c8}`, `tdcollect ps -o ${c8}, pinned`).toFixed(2)}x   target >= 5`);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await run();
