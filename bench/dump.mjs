#!/usr/bin/env node
/**
 * `tdcollect dump` end to end, as a user runs it: the installed bin (bin/tdcollect.js run directly, a cold
 * process each time, default source and freezer, --stats), on a wide treegen tree (a root with N-1 children
 * that pause()), beside `ps ax -o pid,ppid,pgid,sid,stat,comm,uid,gid` measured in the same run.
 *
 * For each size (1,000, 10,000 and 30,000 tasks) the commands run in turns, the order rotating every
 * round: ps, dump with the BPF iterator pinned (TDCOLLECT_BPF_PIN, so the BPF load does not mask the
 * phases), dump unpinned (TDCOLLECT_BPF_PIN=none, the program loaded by each run), a plain create loop (the
 * file system's own pace: as many 600-byte files as the dump writes, open/write/close each, one syncfs;
 * the write figures are read against it), and dump --force over a dump of a round before (below). Reported: medians of
 * whole-process wall time, peak RSS (GNU time's %M), the phases --stats prints (per task and, for writing,
 * per image file), the ratio dump/ps, and the growth from the smallest to the largest size (a cost that
 * grows linearly with the number of tasks grows by the size ratio, 30× from 1k to 30k).
 *
 * What the write figure measures, and what it must not. On ext4 without a journal the kernel will not reuse
 * an inode freed less than 60 s ago, or 360 s while its inode-table block is not yet written back
 * (recently_deleted() in fs/ext4/ialloc.c): every create scans past all such inodes of its
 * block group first, so creating 10,000 files just after deleting 10,000 costs 10 to 20 times as much as
 * creating them on a fresh file system, all of it kernel time. A benchmark that removes each dump before the
 * next one measures that scan, not the writer. So every dump written here is kept until the end of the run
 * (the space is checked first) and only then removed, outside any timing; no dump's creates meet inodes
 * this run freed (what other processes free on the same file system they still meet, and a run started
 * within minutes of the previous run's removal meets that: leave a few minutes between runs, or point
 * BENCH_DUMP_DIR at a file system with a journal). What a user who replaces a large dump with --force (within
 * minutes of the previous replacement) pays is measured on request (BENCH_DUMP_FORCE=1), as its own row:
 * `dump --force (replacing)` writes each round over the previous round's dump of that row, so its creates meet
 * the inodes of the dump it replaced a round before, as the user's would. It is off by default because the
 * inodes it frees are met by the other rows' creates too, in the rounds that follow it.
 *
 * Run with nothing else heavy on the machine (a 30,000-task tree takes most of a 32,768 pid space): npm run bench -- dump
 * Needs root, gcc and /usr/bin/time. BENCH_DUMP_SIZES=1000,10000 picks the sizes; BENCH_RUNS the rounds
 * (default 7; BENCH_RUNS_30K, default 3, at 30,000); BENCH_DUMP_DIR where images are written (default $TMPDIR;
 * a directory in which nothing else deletes many files meanwhile, for the reason above). BENCH_DUMP_BASELINE=OTHER/bin/tdcollect.js
 * adds another build (an earlier commit) to the same rounds, for before/after figures under the same load.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, spawnTreegen } from './lib-fixture.mjs';

const BIN = join(ROOT, 'bin/tdcollect.js');
const PS_ARGS = ['ax', '-o', 'pid,ppid,pgid,sid,stat,comm,uid,gid'];
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmt = (x, d = 1) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d));

/** Run argv under GNU time; returns { ms, rssKiB, status, stderr }. */
function timed(argv, env) {
  const dir = mkdtempSync(join(tmpdir(), 'tdc-bench-time-'));
  const out = join(dir, 'time');
  try {
    const t0 = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-o', out, '-f', '%M', ...argv], {
      env, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20,
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const rssKiB = Number(readFileSync(out, 'latin1').trim().split('\n').pop());
    return { ms, rssKiB, status: r.status, stderr: r.stderr.toString() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The phase times of `--stats` (ms). */
function phases(stderr) {
  const get = (label) => {
    const m = new RegExp(`^\\s*${label}:\\s+([0-9.]+) ms`, 'm').exec(stderr);
    return m ? Number(m[1]) : undefined;
  };
  return { freeze: get('freezing time'), collect: get('collecting time'), write: get('writing time'), thaw: get('thawing time') };
}

/**
 * One dump into a new directory of outDir, kept until the end of the run (see the header); with `replace`,
 * into that directory with --force, replacing what the previous call wrote there.
 */
function dumpOnce(root, env, outDir, bin = BIN, replace = undefined) {
  const out = replace ?? join(outDir, `d${process.hrtime.bigint()}`);
  // the bin itself, through its #! line, as an installed command runs (the launcher drops NODE_EXTRA_CA_CERTS,
  // which `node bin/tdcollect.js` would make Node parse first: about 90 ms on a machine that sets it)
  const r = timed([bin, 'dump', '-r', String(root), '-o', out, '-q', '--stats', ...(replace ? ['--force'] : [])], env);
  // the dump's write-back is complete (it synced before its rename); a replaced dump's removal is not:
  // finish it outside the timing, as a user's next dump would find it some seconds later
  if (replace) spawnSync('sync', ['-f', outDir]);
  if (r.status !== 0) return { ...r, failed: r.stderr.trim().split('\n').pop() };
  return { ...r, ...phases(r.stderr) };
}

/**
 * What the file system allows at that moment: a plain loop in a fresh directory beside the dumps, creating
 * n files of 600 bytes (a core image's size) with one open/write/close each, then one syncfs (what the
 * dump does for durability). Returns { ms } of the loop and the sync, in-process (no start-up), kept too.
 */
function plainLoop(n, outDir) {
  const dir = join(outDir, `plain${process.hrtime.bigint()}`);
  const script = `
    const fs = require('node:fs');
    const { syncfs } = await import(${JSON.stringify(join(ROOT, 'dist/sys/fs.js'))});
    const [dir, n] = [process.argv[1], Number(process.argv[2])];
    fs.mkdirSync(dir);
    const data = Buffer.alloc(600, 1);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const fd = fs.openSync(dir + '/core-' + i + '.img', fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
      fs.writeSync(fd, data);
      fs.closeSync(fd);
    }
    const fd = fs.openSync(dir, 'r');
    if (syncfs(fd) < 0) process.exit(1);
    process.stdout.write(String(performance.now() - t0));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);${script}`, dir, String(n)], { encoding: 'utf8' });
  if (r.status !== 0) return { failed: `plain loop failed: ${r.stderr.trim().split('\n').pop()}` };
  const ms = Number(r.stdout);
  return { ms, write: ms };
}

/** Refuse to start when the dumps kept until the end would not fit (blocks and inodes, with a margin). */
function checkSpace(dir, sizes, dumpsPerSize) {
  const st = statfsSync(dir);
  let files = 0;
  for (const n of sizes) files += (n + 3) * dumpsPerSize(n);
  // a core image is ~600 bytes, one block each; tasks.img ~200 bytes per task
  const bytes = files * (st.bsize + 200);
  const freeBytes = st.bavail * st.bsize;
  if (files * 2 > st.ffree || bytes * 2 > freeBytes) {
    throw new Error(`${dir}: the dumps of this run need ~${files} inodes and ~${(bytes / 2 ** 20).toFixed(0)} MiB ` +
      `(kept until the end); free: ${st.ffree} inodes, ${(freeBytes / 2 ** 20).toFixed(0)} MiB (set BENCH_DUMP_DIR, fewer BENCH_RUNS or sizes)`);
  }
}

export async function run() {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('run `npm run build` first');
  const sizes = (process.env.BENCH_DUMP_SIZES ?? '1000,10000,30000').split(',').map(Number);
  const outDir = mkdtempSync(join(process.env.BENCH_DUMP_DIR ?? tmpdir(), 'tdc-bench-dump-'));
  const pinDir = `/sys/fs/bpf/tdc-bench-dump-${process.pid}`;
  const pin = `${pinDir}/tasks`;
  const baseEnv = { ...process.env };
  delete baseEnv.NODE_OPTIONS;
  const pinned = spawnSync(process.execPath, [BIN, 'bpf', 'pin', '-p', pin], { env: baseEnv, encoding: 'utf8' });
  const havePin = pinned.status === 0;
  if (!havePin) console.log(`(no pinned iterator: ${pinned.stderr.trim()})`);
  const variants = [
    { name: 'ps', run: () => { const r = timed(['ps', ...PS_ARGS], baseEnv); return r.status === 0 ? r : { ...r, failed: 'ps failed' }; } },
    ...(havePin ? [{ name: 'dump (pinned)', run: (root) => dumpOnce(root, { ...baseEnv, TDCOLLECT_BPF_PIN: pin }, outDir) }] : []),
    { name: 'dump (unpinned)', run: (root) => dumpOnce(root, { ...baseEnv, TDCOLLECT_BPF_PIN: 'none' }, outDir) },
    // the user's `--force` over the dump of a round before (see the header); the first call of each size
    // (a warm-up, or the first round at 30,000) writes the dump the next one replaces
    // the file system's own pace in the same rounds: the write figures are read against it
    { name: 'plain create loop (in-process)', run: (root, n) => plainLoop(n + 3, outDir) },
    ...(havePin && process.env.BENCH_DUMP_FORCE === '1' ? [{ name: 'dump --force (replacing)', run: (root, n) => dumpOnce(root, { ...baseEnv, TDCOLLECT_BPF_PIN: pin }, outDir, BIN, join(outDir, `force-${n}`)) }] : []),
  ];
  // BENCH_DUMP_BASELINE=path/to/other/bin/tdcollect.js: another build (e.g. an earlier commit) in the same
  // rounds, pinned, for a before/after comparison under the same load
  const other = process.env.BENCH_DUMP_BASELINE;
  if (other && havePin) {
    variants.push({ name: 'baseline build (pinned)', run: (root) => dumpOnce(root, { ...baseEnv, TDCOLLECT_BPF_PIN: pin }, outDir, other) });
  }
  const runsOf = (n) => (n >= 30000 ? Number(process.env.BENCH_RUNS_30K ?? 3) : Number(process.env.BENCH_RUNS ?? 7));
  const results = {};
  const cleanup = () => {
    if (havePin) spawnSync(process.execPath, [BIN, 'bpf', 'unpin', '-p', pin], { env: baseEnv });
    rmSync(pinDir, { recursive: true, force: true });
    rmSync(outDir, { recursive: true, force: true });
  };
  // refused for want of space: the pin made above goes too
  try {
    checkSpace(outDir, sizes, (n) => (runsOf(n) + 1) * (variants.length - 1));
  } catch (e) {
    cleanup();
    throw e;
  }
  // interrupted: leave no pin and no images behind (the tree's keeper tears the tree down when we die)
  const onSignal = (sig) => { cleanup(); process.kill(process.pid, sig); };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, onSignal);
  console.log(`images: ${outDir} (every dump kept until the end of the run, then removed)`);
  try {
    for (const n of sizes) {
      const rounds = runsOf(n);
      const tree = await spawnTreegen(n - 1);
      const by = Object.fromEntries(variants.map((v) => [v.name, []]));
      try {
        // one untimed warm-up of each (not at 30,000, where a run is long enough), then rounds in a rotating order
        if (n < 30000) for (const v of variants) v.run(tree.root, n);
        else variants.find((v) => v.name.startsWith('dump --force'))?.run(tree.root, n);
        for (let i = 0; i < rounds; i++) {
          for (let k = 0; k < variants.length; k++) {
            const v = variants[(i + k) % variants.length];
            by[v.name].push(v.run(tree.root, n));
          }
        }
      } finally {
        await tree.kill();
      }
      const files = tree.tasks + 3; // core-TID.img per thread, inventory, pstree, tasks
      const psMs = median(by.ps.map((r) => r.ms));
      console.log(`\n${tree.tasks} tasks (${rounds} rounds, medians; ps ${fmt(psMs)} ms, ${fmt(median(by.ps.map((r) => r.rssKiB)) / 1024)} MiB)`);
      console.log('| command | whole ms | ×ps | peak RSS MiB | freeze µs/task | collect µs/task | write µs/file | thaw µs/task |');
      console.log('|---|---|---|---|---|---|---|---|');
      results[n] = { tasks: tree.tasks, ps: { ms: psMs, rssKiB: median(by.ps.map((r) => r.rssKiB)) } };
      for (const v of variants.slice(1)) {
        const runs = by[v.name];
        const failed = runs.filter((r) => r.failed);
        const ok = runs.filter((r) => !r.failed);
        if (!ok.length) {
          console.log(`| ${v.name} | failed ${failed.length}/${runs.length}: ${failed[0].failed} | | | | | | |`);
          results[n][v.name] = { failed: failed.length, runs: runs.length, error: failed[0].failed };
          continue;
        }
        const m = (k) => median(ok.map((r) => r[k]));
        const row = { ms: m('ms'), rssKiB: m('rssKiB'), freeze: m('freeze'), collect: m('collect'), write: m('write'), thaw: m('thaw'), failed: failed.length };
        results[n][v.name] = row;
        const per = (x, d) => fmt((x * 1000) / d);
        console.log(`| ${v.name}${failed.length ? ` (${failed.length} failed: ${failed[0].failed})` : ''} | ${fmt(row.ms)} | ${fmt(row.ms / psMs, 2)} | ${fmt(row.rssKiB / 1024)} | ` +
          `${per(row.freeze, tree.tasks)} | ${per(row.collect, tree.tasks)} | ${per(row.write, files)} | ${per(row.thaw, tree.tasks)} |`);
        console.log(`|   phases ms | freeze ${fmt(row.freeze)} · collect ${fmt(row.collect)} · write ${fmt(row.write)} · thaw ${fmt(row.thaw)} | | | | | | |`);
      }
    }
    const lo = sizes[0], hi = sizes[sizes.length - 1];
    if (sizes.length > 1 && results[lo] && results[hi]) {
      console.log(`\ngrowth ${lo} → ${hi} tasks (×${fmt(results[hi].tasks / results[lo].tasks, 0)} tasks; linear cost grows by that much):`);
      for (const name of variants.map((v) => v.name)) {
        const a = name === 'ps' ? results[lo].ps : results[lo][name];
        const b = name === 'ps' ? results[hi].ps : results[hi][name];
        if (!a?.ms || !b?.ms) continue;
        const g = (k) => (a[k] && b[k] ? `×${fmt(b[k] / a[k])}` : 'n/a');
        console.log(`  ${name}: whole ${g('ms')}, peak RSS ${g('rssKiB')}` +
          (name === 'ps' ? '' : `, freeze ${g('freeze')}, collect ${g('collect')}, write ${g('write')}, thaw ${g('thaw')}`));
      }
    }
  } finally {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.removeListener(sig, onSignal);
    cleanup();
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
