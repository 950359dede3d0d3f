#!/usr/bin/env node
/**
 * What recording namespace identities costs a tree walk (Task.ns: readlink of /proc/PID/task/TID/ns/*,
 * pid/user/time once per process, mnt/net/ipc/uts/cgroup per thread), per source that reads them from /proc.
 *
 * Spawns a treegen tree of N processes with T extra threads each (BENCH_PROCS, default 1000; BENCH_THREADS,
 * default 1), then for procfs and bpf alternates collectTree(root) without and with namespaces
 * (TreeOptions.namespaces), RUNS times each (BENCH_RUNS, default 11), and reports medians, the ratio
 * with/without (the baseline measured in the same run) and the added µs per task.
 * Run: npm run build && flock /tmp/tdc-coord/heavy.lock node bench/nsids.mjs   (root, for bpf)
 */
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnTreegenThreads } from './lib-fixture.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

export async function run(opts = {}) {
  const procs = Number(opts.procs ?? process.env.BENCH_PROCS ?? 1000);
  const threads = Number(opts.threads ?? process.env.BENCH_THREADS ?? 1);
  const runs = Number(opts.runs ?? process.env.BENCH_RUNS ?? 11);
  const { SOURCES } = await import(pathToFileURL(join(ROOT, 'dist/collector/sources/index.js')).href);
  const tree = await spawnTreegenThreads(procs, threads);
  const out = {};
  try {
    for (const name of ['procfs', 'bpf']) {
      const f = SOURCES[name];
      const p = await f.probe();
      if (!p.ok) { console.log(`${name}: skipped (${p.reason})`); continue; }
      const src = await f.open();
      try {
        const without = [], withNs = [];
        let n = 0;
        await src.collectTree(tree.root, { namespaces: true }); // warm-up
        for (let i = 0; i < runs; i++) {
          for (const ns of [false, true]) {
            const t0 = process.hrtime.bigint();
            const tasks = await src.collectTree(tree.root, { namespaces: ns });
            (ns ? withNs : without).push(Number(process.hrtime.bigint() - t0) / 1e6);
            n = tasks.length;
          }
        }
        const a = median(without), b = median(withNs);
        out[name] = { tasks: n, withoutMs: a, withMs: b, ratio: b / a, addedUsPerTask: ((b - a) * 1000) / n };
        console.log(`${name}: ${n} tasks; walk ${a.toFixed(1)} ms, with namespace ids ${b.toFixed(1)} ms ` +
          `(x${(b / a).toFixed(2)}, +${(((b - a) * 1000) / n).toFixed(1)} µs per task), medians of ${runs}`);
      } finally {
        src.close();
      }
    }
  } finally {
    await tree.kill();
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await run();
