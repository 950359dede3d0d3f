#!/usr/bin/env node
/**
 * procfs source benchmark: the baseline every other source is compared with.
 *
 * Spawns a treegen tree of N plain processes (N = $BENCH_PROCS, default 1000; each just pause()s), then
 *   1. collectTree(root) in-process: one warm-up, then RUNS timed walks ($BENCH_RUNS, default 15);
 *      median and min wall time, µs per task, system calls per task (the source's own count);
 *   2. collectAll({threads:false}) in-process (every process on the machine) against
 *      `ps ax -o pid,ppid` (a whole new process each time, spawnSync wall time), medians of RUNS;
 *      both per process listed.
 * Run: npm run build && node bench/procfs.mjs   (or npm run bench -- procfs). Needs gcc; root for
 * full field coverage (personality and get_robust_list need ptrace access).
 */
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fixtureBin, readyLine, spawnTreegen } from './lib-fixture.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

export async function run(opts = {}) {
  const procs = Number(opts.procs ?? process.env.BENCH_PROCS ?? 1000);
  const runs = Number(opts.runs ?? process.env.BENCH_RUNS ?? 15);
  const { procfsFactory } = await import(pathToFileURL(join(ROOT, 'dist/collector/sources/procfs.js')).href);
  const tree = await spawnTreegen(procs);
  try {
    const src = await procfsFactory.open();
    // 1. the tree walk
    let tasks = await src.collectTree(tree.root); // warm-up (JIT, page cache of /proc dentries)
    if (tasks.length !== tree.tasks) throw new Error(`walk found ${tasks.length} tasks, treegen made ${tree.tasks}`);
    const times = [];
    let syscalls = 0;
    for (let i = 0; i < runs; i++) {
      const s0 = src.stats().syscalls;
      const t0 = process.hrtime.bigint();
      tasks = await src.collectTree(tree.root);
      const t1 = process.hrtime.bigint();
      times.push(Number(t1 - t0) / 1e6);
      syscalls = src.stats().syscalls - s0;
    }
    const med = median(times);
    const walk = {
      procs, tasks: tasks.length, runs,
      medianMs: med, minMs: Math.min(...times),
      usPerTask: (med * 1000) / tasks.length,
      syscallsPerTask: syscalls / tasks.length,
    };

    // 2. every process of the machine: collectAll against ps ax -o pid,ppid
    const allTimes = [];
    let listed = 0;
    await src.collectAll({ threads: false });
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      listed = (await src.collectAll({ threads: false })).length;
      allTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const psTimes = [];
    let psLines = 0;
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      const r = spawnSync('ps', ['ax', '-o', 'pid=,ppid='], { encoding: 'utf8', maxBuffer: 64 << 20 });
      psTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
      psLines = r.stdout.split('\n').length - 1;
    }
    const nodeTimes = [];
    for (let i = 0; i < Math.min(runs, 7); i++) {
      const t0 = process.hrtime.bigint();
      spawnSync('true');
      nodeTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const all = {
      collectAllMs: median(allTimes), collectAllProcs: listed, usPerProc: (median(allTimes) * 1000) / listed,
      psMs: median(psTimes), psLines, psUsPerProc: (median(psTimes) * 1000) / psLines,
      spawnTrueMs: median(nodeTimes),
    };
    src.close();

    console.log(`procfs collectTree, ${procs}-process tree (${walk.tasks} tasks), ${runs} runs:`);
    console.log(`  median ${walk.medianMs.toFixed(2)} ms (min ${walk.minMs.toFixed(2)}), ${walk.usPerTask.toFixed(1)} µs/task, ${walk.syscallsPerTask.toFixed(1)} syscalls/task`);
    console.log(`whole machine (${listed} processes), medians of ${runs}:`);
    console.log(`  procfs collectAll({threads:false}) in-process  ${all.collectAllMs.toFixed(2)} ms  (${all.usPerProc.toFixed(1)} µs/process, all fields)`);
    console.log(`  ps ax -o pid,ppid (spawned)                   ${all.psMs.toFixed(2)} ms  (${all.psUsPerProc.toFixed(1)} µs/process, 2 fields; spawning 'true' alone: ${all.spawnTrueMs.toFixed(2)} ms)`);
    console.log(`  ratio collectAll / ps: ${(all.collectAllMs / all.psMs).toFixed(2)}`);
    return { walk, all };
  } finally {
    await tree.kill();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
