#!/usr/bin/env node
// Diff two dumps with the library.
//
//   node examples/diff-two-dumps.mjs DIR_A DIR_B [--ignore state,sched]   compare two image directories
//   node examples/diff-two-dumps.mjs                                      demo: dump a tree, kill a child, dump, diff
//
// Exit status as `tdcollect diff`: 0 equal, 1 different, 2 trouble.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { collect, readImages, diff, formatDiff, TdError } from 'tdcollect';

const args = process.argv.slice(2);
const i = args.indexOf('--ignore');
const ignore = i >= 0 ? args.splice(i, 2)[1].split(',') : [];

try {
  let a, b;
  if (args.length === 2) {
    a = await readImages(args[0]);
    b = await readImages(args[1]);
  } else {
    // demo: a shell with three sleeping children; one of them is killed between the two snapshots
    const sh = spawn('sh', ['-c', 'sleep 600 & sleep 600 & sleep 600 & wait'], { stdio: 'ignore', detached: true });
    try {
      await sleep(200);
      a = await collect({ root: sh.pid, freeze: 'ptrace' });
      const victim = a.tasks.find((t) => t.pid !== sh.pid).pid;
      process.kill(victim, 'SIGKILL');
      // wait until the shell has reaped it
      for (let n = 0; n < 200; n++) {
        try { readFileSync(`/proc/${victim}/stat`); } catch { break; }
        await sleep(10);
      }
      console.log(`killed ${victim}`);
      b = await collect({ root: sh.pid, freeze: 'ptrace' });
    } finally {
      process.kill(-sh.pid, 'SIGKILL');
    }
  }
  const d = diff(a, b, { ignore });
  process.stdout.write(d.equal ? 'no differences\n' : formatDiff(d));
  // the same result as data: what a tool would use
  for (const p of d.processes) {
    if (p.status === 'removed') console.log(`-> pid ${p.pid} is gone`);
    if (p.status === 'added') console.log(`-> pid ${p.pid} is new`);
    for (const c of p.changes ?? []) if (c.kind === 'caps') console.log(`-> pid ${p.pid} ${c.field} lost ${c.removed.join(' ')}`);
  }
  process.exitCode = d.equal ? 0 : 1;
} catch (e) {
  if (!(e instanceof TdError)) throw e;
  console.error(`diff-two-dumps: ${e.message}`);
  process.exitCode = 2;
}
