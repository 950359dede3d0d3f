#!/usr/bin/env node
// Consume a tdcollect stream task by task, as it arrives.
//
//   tdcollect dump -r PID --stdout --format msgpack | node examples/stream-consumer.mjs -
//   node examples/stream-consumer.mjs --produce PID [--format msgpack|json] | node examples/stream-consumer.mjs -
//   node examples/stream-consumer.mjs PID          both ends in one process, through a pipe
//
// The consumer prints one line per process as soon as its record has arrived, then a summary.
// --produce uses the library's writer: collect() then streamSnapshot(process.stdout, ...).
import { PassThrough } from 'node:stream';
import { collect, streamSnapshot, readStream, ImageError } from 'tdcollect';

const args = process.argv.slice(2);
const fi = args.indexOf('--format');
const format = fi >= 0 ? args.splice(fi, 2)[1] : 'msgpack';

async function produce(root, out) {
  const snap = await collect({ root, freeze: 'none' });
  return streamSnapshot(out, snap.info, snap.tasks, format);
}

async function consume(input) {
  let threads = 0;
  for await (const rec of readStream(input)) {
    if (rec.type === 'header') {
      console.log(`stream from ${rec.info.tool ?? 'tdcollect'}: source ${rec.info.source}, root ${rec.info.root ?? '-'}`);
    } else if (rec.type === 'task') {
      threads++;
      const t = rec.task;
      if (t.pid === t.tgid) console.log(`process ${t.pid} ppid ${t.ppid} state ${t.state} uid ${t.uid} ${t.comm}`);
    } else if (rec.type === 'end') {
      console.log(`end: ${rec.processes} processes, ${rec.threads} threads (counted ${threads})`);
    }
    // other record types (a newer producer) are skipped
  }
}

try {
  if (args[0] === '-') {
    await consume(process.stdin);
  } else if (args[0] === '--produce') {
    await produce(Number(args[1]), process.stdout);
  } else {
    const pipe = new PassThrough();
    const root = args[0] ? Number(args[0]) : process.pid;
    const producing = produce(root, pipe).finally(() => pipe.end());
    await Promise.all([producing, consume(pipe)]);
  }
} catch (e) {
  if (e instanceof ImageError) {
    // a truncated or corrupt stream: one line naming the byte offset
    console.error(`stream-consumer: ${e.message}`);
    process.exitCode = 2;
  } else {
    console.error(`stream-consumer: ${e.message}`);
    process.exitCode = e.exitCode ?? 1;
  }
}
