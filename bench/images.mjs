// Image writing and reading: a synthetic snapshot (4 threads per process, every Task field set) written
// with writeImages (one syncfs before the rename) and read back with readImages. Needs `npm run build`.
// Every run writes a new directory, and all are removed at the end, outside the timing: on ext4 without a
// journal a create right after many deletes scans past the freed inodes first (see bench/dump.mjs), and
// removing each dump before the next measured that.
// Standalone: node bench/images.mjs [tasks] [runs]
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

function snapshot(n) {
  const tasks = [];
  for (let i = 0; i < n; i++) {
    const pid = 10000 + i, tgid = pid - (i % 4);
    tasks.push({ pid, tgid, ppid: tgid === 10000 ? 1 : 10000, tpid: 0, sid: 10000, pgid: 10000, state: 'S', comm: 'bench',
      uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0, capInh: [0, 0], capPrm: [0xffffffff, 0x1ff],
      capEff: [0xffffffff, 0x1ff], capBnd: [0xffffffff, 0x1ff], capAmb: [0, 0], groups: [], noNewPrivs: false, seccomp: 0,
      startTime: 123456, personality: 0, flags: 0x400140, sigBlk: [0, 0], nice: 0, policy: 0, priority: 20, rtPriority: 0,
      exitCode: 0, futexRla: 0x7ffff7d8ea20, futexRlaLen: 24 });
  }
  return { info: { formatVersion: 1, tool: 'bench', source: 'procfs', freeze: 'none', live: true, kernel: 'k', hostname: 'h',
    root: 10000, createdAt: Date.now(), processes: n / 4, threads: n, timings: {}, missing: [] }, tasks };
}

export async function run({ sizes = [1000, 10000], runs = 5, dir = process.env.BENCH_DIR ?? join(process.cwd(), '.bench-images') } = {}) {
  const { writeImages, readImages } = await import('../dist/image/index.js');
  const rows = [];
  for (const n of sizes) {
    const s = snapshot(n);
    const w = [], r = [];
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (let k = 0; k < runs; k++) {
      const out = join(dir, `${n}-${k}`);
      let t = performance.now();
      await writeImages(s, out);
      w.push(performance.now() - t);
      t = performance.now();
      readImages(out);
      r.push(performance.now() - t);
    }
    rmSync(dir, { recursive: true, force: true });
    rows.push({ tasks: n, writeMs: median(w), readMs: median(r), writeUsPerTask: (median(w) * 1000) / n });
  }
  console.log(`image directory: ${dir} (median of ${runs})`);
  console.log('tasks    write ms   read ms   write µs/task');
  for (const x of rows) {
    console.log(`${String(x.tasks).padStart(6)} ${x.writeMs.toFixed(1).padStart(10)} ${x.readMs.toFixed(1).padStart(9)} ${x.writeUsPerTask.toFixed(1).padStart(14)}`);
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const n = Number(process.argv[2] ?? 1000), runs = Number(process.argv[3] ?? 5);
  await run({ sizes: [n], runs });
}
