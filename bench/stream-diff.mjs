// Throughput of the snapshot stream (msgpack / JSON Lines) and of diff() on 10,000 synthetic tasks.
// Medians of 7 runs, in-process (no kernel access). Run: npm run build && node bench/stream-diff.mjs

import { streamSnapshot, readStream, diffSnapshots, formatDiff } from '../dist/index.js';
const N = 10000;
const task = (pid) => ({ pid, tgid: pid, ppid: pid > 1000 ? 1000 : 1, tpid: 0, sid: 1000, pgid: 1000, state: 'S', comm: `worker-${pid % 100}`,
  uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0, capInh: [0, 0], capPrm: [0xffffffff, 0x1ff], capEff: [0xffffffff, 0x1ff],
  capBnd: [0xffffffff, 0x1ff], capAmb: [0, 0], groups: [0], startTime: 100000 + pid, personality: 0, flags: 0x400140, sigBlk: [0, 0], nice: 0,
  policy: 0, priority: 20, rtPriority: 0, exitCode: 0, futexRla: 0x7f1234567890, futexRlaLen: 24, noNewPrivs: false, seccomp: 0 });
const tasks = Array.from({ length: N }, (_, i) => task(1000 + i));
const info = { formatVersion: 1, source: 'procfs', freeze: 'ptrace', root: 1000, processes: N, threads: N };
const med = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];

for (const format of ['msgpack', 'json']) {
  const w = [], r = []; let bytes = 0;
  for (let k = 0; k < 7; k++) {
    let t = performance.now();
    const chunks = [];
    const sink = { write(b) { chunks.push(b); return true; }, on() {}, off() {}, destroyed: false, writableEnded: false };
    const res = await streamSnapshot(sink, info, tasks, format); bytes = res.bytes;
    w.push(performance.now() - t);
    t = performance.now();
    let n = 0; for await (const rec of readStream(chunks)) if (rec.type === 'task') n++;
    r.push(performance.now() - t);
  }
  console.log(`${format}: ${N} tasks, ${bytes} bytes (${(bytes / N).toFixed(0)} B/task); write median ${med(w).toFixed(1)} ms, read median ${med(r).toFixed(1)} ms`);
}
const b = tasks.map((t, i) => i % 100 === 0 ? { ...t, uid: 1000, capEff: [0, 0] } : t);
const d = [];
for (let k = 0; k < 7; k++) { const t = performance.now(); const x = diffSnapshots({ info, tasks }, { info, tasks: b }); formatDiff(x); d.push(performance.now() - t); }
console.log(`diff: ${N} vs ${N} tasks, 1% changed: median ${med(d).toFixed(1)} ms`);
