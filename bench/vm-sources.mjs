// Guest benchmark of the collector sources at N processes (run by bench/vm-bench.sh inside QEMU).
//   node bench/vm-sources.mjs ROOT RUNS [PS_MS]
// Prints a markdown table: case, median ms, ratio to PS_MS (`ps ax -o pid,ppid` in the same guest), tasks,
// syscalls and round trips as the source counts them (SourceStats).
import { procfsFactory } from '../dist/collector/sources/procfs.js';
import { TaskDiagClient } from '../dist/netlink/taskdiag.js';
import { TaskDiagSource } from '../dist/collector/sources/taskdiag.js';

const root = Number(process.argv[2]);
const runs = Number(process.argv[3] ?? 3);
const psMs = Number(process.argv[4] ?? 0);
console.log('| source call | median ms | x faster than ps | tasks | syscalls | round trips |');
console.log('|---|---:|---:|---:|---:|---:|');

async function measure(name, open, fn) {
  const times = [];
  let last;
  for (let i = 0; i < runs; i++) {
    const src = await open();
    const t0 = process.hrtime.bigint();
    const tasks = await fn(src);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    times.push(ms);
    last = { tasks: tasks.length, ...src.stats() };
    src.close();
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  const ratio = psMs ? (psMs / ms).toFixed(1) : '';
  console.log(`| ${name} | ${ms.toFixed(0)} | ${ratio} | ${last.tasks} | ${last.syscalls ?? ''} | ${last.roundTrips ?? ''} |`);
}

const procfs = () => procfsFactory.open();
const tdV1 = () => new TaskDiagSource(TaskDiagClient.open(), { extensions: false });
const tdExt = () => new TaskDiagSource(TaskDiagClient.open());

await measure('procfs collectAll', procfs, (s) => s.collectAll({ threads: false }));
await measure('taskdiag collectAll v1 (DUMP_ALL + /proc extras)', tdV1, (s) => s.collectAll({ threads: false }));
await measure('taskdiag collectAll ext (DUMP_ALL + attr 65)', tdExt, (s) => s.collectAll({ threads: false }));
await measure('procfs collectTree', procfs, (s) => s.collectTree(root));
await measure('taskdiag collectTree v1 (DUMP_CHILDREN walk)', tdV1, (s) => s.collectTree(root));
await measure('taskdiag collectTree ext (DUMP_SUBTREE)', tdExt, (s) => s.collectTree(root));
