#!/usr/bin/env node
// Helper of bench/bpf.mjs: open the bpf source (pinned if $TDCOLLECT_BPF_PIN names one, else load it),
// print "ready PID", wait for one line on stdin, take ONE snapshot of the tree rooted at argv[2], print
// "done N", exit. The bench attaches `strace -c -f` between "ready" and the line, so the count covers
// one snapshot and nothing of start-up or the one-time load.
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = Number(process.argv[2]);
const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const { BpfSource, pinPath } = await import(pathToFileURL(join(dist, 'collector/sources/bpf/bpf.js')).href);
const src = await BpfSource.open({ pinPath: pinPath() });
src.collectTreeSync(root); // warm up (JIT, buffers) outside the traced window
process.stdout.write(`ready ${process.pid} ${src.mode}\n`);
const rl = createInterface({ input: process.stdin });
rl.once('line', () => {
  const before = src.stats();
  const tasks = src.collectTreeSync(root);
  const after = src.stats();
  process.stdout.write(`done ${tasks.length} ${after.syscalls - before.syscalls} ${after.roundTrips - before.roundTrips}\n`);
  src.close();
  process.exit(0);
});
