#!/usr/bin/env node
// Dump a process tree with the library, write CRIU-format images, read them back and print them.
//
//   node examples/dump-and-decode.mjs [PID] [--freeze ptrace|none] [--source auto|procfs|bpf|taskdiag]
//
// Without PID it starts a small tree of its own (sh with two sleeping children) and removes it at the end.
// Needs the package built (npm run build); run as root (or with CAP_SYS_PTRACE) for other users' trees.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { collect, writeImages, readImages, diff, capabilityName, maskBits, TdError } from 'tdcollect';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args.splice(i, 2)[1] : dflt; };
const freeze = opt('--freeze', 'ptrace');
const source = opt('--source', 'auto');

let own;
let root = Number(args[0]);
if (!args[0]) {
  own = spawn('sh', ['-c', 'sleep 600 & sleep 600 & wait'], { stdio: 'ignore', detached: true });
  root = own.pid;
  await sleep(200); // let sh fork its children
}

const dir = mkdtempSync(join(tmpdir(), 'tdcollect-example-'));
try {
  const snap = await collect({ root, freeze, source });
  const { files, bytes } = await writeImages(snap, join(dir, 'img'));
  console.log(`dumped ${snap.info.processes} processes / ${snap.info.threads} threads with ${snap.info.source} ` +
    `(freeze ${snap.info.freeze}) into ${files} files, ${bytes} bytes`);

  const back = await readImages(join(dir, 'img'));
  console.log('PID     PPID    TGID    S  UID    CAPS(eff)  COMM');
  for (const t of back.tasks) {
    const caps = maskBits(t.capEff);
    const capText = caps.length === 0 ? '-' : caps.length > 3 ? `${caps.length} caps` : caps.map(capabilityName).join(',');
    console.log(`${String(t.pid).padEnd(8)}${String(t.ppid).padEnd(8)}${String(t.tgid).padEnd(8)}${t.state}  ` +
      `${String(t.uid).padEnd(7)}${capText.padEnd(11)}${t.comm}`);
  }
  // what was written is what is read back
  const d = diff(snap, back);
  console.log(d.equal ? 'read back: identical' : 'read back: DIFFERENT');
  process.exitCode = d.equal ? 0 : 1;
} catch (e) {
  // typed errors: no message matching needed
  if (e instanceof TdError) {
    console.error(`${e.name} (${e.kind}): ${e.message}`);
    process.exitCode = e.exitCode;
  } else throw e;
} finally {
  rmSync(dir, { recursive: true, force: true });
  if (own) process.kill(-own.pid, 'SIGKILL');
}
