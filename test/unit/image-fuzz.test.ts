/**
 * Fuzzing the image reader: every mutation of a valid image directory (truncation at every offset, wrong
 * magics, entry lengths past EOF, huge declared lengths at the framing and the protobuf level, garbage
 * protobuf, random byte and bit flips) must end in either a Snapshot or ONE ImageError whose one-line
 * message names the file and the byte offset — never another exception, a crash, a hang (the test timeout)
 * or an unbounded allocation (a RangeError from a huge Buffer/array would surface as "another exception").
 * Seeded, so a failure is reproducible; failures are collected and listed together.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Snapshot, Task } from '../../src/collector/task.js';
import { ImageError } from '../../src/errors.js';
import { prng } from '../helpers/random.js';
import {
  encodeImages, encodeMessage, frameImage, headerToPb, KIND, readImages, schemas, taskToPb,
} from '../../src/image/index.js';

const task = (pid: number, tgid: number, ppid: number, extra: Partial<Task> = {}): Task => ({
  pid, tgid, ppid, tpid: 0, sid: 100, pgid: 100, state: 'S', comm: `t${pid}`,
  uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0,
  capInh: [0, 0], capPrm: [0xffffffff, 0x1ff], capEff: [0xffffffff, 0x1ff], capBnd: [0xffffffff, 0x1ff],
  ...extra,
});

function snapshot(): Snapshot {
  return {
    info: {
      formatVersion: 1, tool: 'tdcollect 0.1.0', source: 'procfs', freeze: 'ptrace', live: false, kernel: '6.18.0',
      hostname: 'h', root: 100, createdAt: 1764151138123, processes: 3, threads: 4,
      timings: { freeze: 1.25, collect: 3.5 }, missing: [],
    },
    tasks: [
      task(100, 100, 1, { groups: [0, 27], startTime: 5000, sigBlk: [0x200, 0], futexRla: 0x7ffff7d8ea20, futexRlaLen: 24 }),
      task(101, 100, 1, { startTime: 5001 }),
      task(102, 102, 100, { state: 'T', startTime: 5002 }),
      task(103, 103, 100, { state: 'Z', exitCode: 9, startTime: 5003 }),
    ],
  };
}


let dir: string;
let files: Map<string, Buffer>;
const failures: string[] = [];
let outcomes = { ok: 0, error: 0 };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tdc-fuzz-'));
  files = encodeImages(snapshot());
  for (const [name, buf] of files) writeFileSync(join(dir, name), buf);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Put `bytes` in place of `name`, read the directory, restore. Records anything but a Snapshot or a good ImageError. */
function attempt(name: string, bytes: Buffer, label: string): 'ok' | ImageError | undefined {
  writeFileSync(join(dir, name), bytes);
  try {
    readImages(dir);
    outcomes.ok++;
    return 'ok';
  } catch (e) {
    if (!(e instanceof ImageError)) {
      failures.push(`${label}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
      return undefined;
    }
    const msg = e.message;
    if (msg.includes('\n')) failures.push(`${label}: multi-line message: ${JSON.stringify(msg)}`);
    if (!msg.startsWith(`${e.file}: `)) failures.push(`${label}: message does not start with its file: ${msg}`);
    if (!e.file.startsWith(dir)) failures.push(`${label}: file is not a path in the image directory: ${e.file}`);
    if (e.reason !== 'missing' && !msg.includes(`offset ${e.offset}: `)) failures.push(`${label}: no offset: ${msg}`);
    if (!Number.isInteger(e.offset) || e.offset < 0 || e.offset > bytes.length + 8) {
      failures.push(`${label}: offset ${e.offset} outside the file (${bytes.length} bytes): ${msg}`);
    }
    outcomes.error++;
    return e;
  } finally {
    writeFileSync(join(dir, name), files.get(name)!);
  }
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

/** Where the first entry's length word sits: after the magics (one for inventory, two otherwise). */
const firstEntry = (name: string) => (name === 'inventory.img' ? 4 : 8);

describe('image reader fuzz', () => {
  it('the unmutated directory reads back', () => {
    expect(readImages(dir)).toStrictEqual(snapshot());
  });

  it('truncation at every offset of every file', () => {
    for (const [name, buf] of files) {
      for (let n = 0; n < buf.length; n++) {
        const r = attempt(name, buf.subarray(0, n), `${name} truncated to ${n}`);
        // a shorter file is never a valid image of the same snapshot: every cut must fail
        if (r === 'ok') failures.push(`${name} truncated to ${n}: accepted`);
      }
    }
  });

  it('wrong magics', () => {
    for (const [name, buf] of files) {
      for (let i = 0; i < firstEntry(name); i++) {
        for (const x of [0x01, 0x80, 0xff]) {
          const b = Buffer.from(buf);
          b[i] ^= x;
          const r = attempt(name, b, `${name} magic byte ${i} ^ 0x${x.toString(16)}`);
          if (!(r instanceof ImageError) || r.reason !== 'corrupt' || r.file !== join(dir, name)) {
            failures.push(`${name} magic byte ${i} ^ 0x${x.toString(16)}: expected a corrupt error on ${name}, got ${String(r)}`);
          }
        }
      }
    }
  });

  it('entry lengths past EOF and huge lengths', () => {
    for (const [name, buf] of files) {
      const at = firstEntry(name);
      for (const len of [buf.length, buf.length - at - 3, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]) {
        const b = Buffer.concat([buf.subarray(0, at), u32(len), buf.subarray(at + 4)]);
        const r = attempt(name, b, `${name} first length = ${len}`);
        if (!(r instanceof ImageError) || r.reason !== 'eof' || r.offset !== at) {
          failures.push(`${name} first length = ${len}: expected eof at offset ${at}, got ${String(r)}`);
        }
      }
      // a trailing length word with nothing after it
      const r = attempt(name, Buffer.concat([buf, u32(1000)]), `${name} + dangling length`);
      if (!(r instanceof ImageError)) failures.push(`${name} + dangling length: accepted`);
    }
  });

  it('huge declared lengths inside protobuf payloads', () => {
    // field 1..15 with wire type 2 (length-delimited) declaring 2^32-1 / 2^35 bytes, and a 10-byte varint
    const payloads = [
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
      Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
      Buffer.from([0x7a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
      Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // 11-byte varint
      Buffer.from([0x0b]), // start group (wire type 3) without end
      Buffer.from([0x0f]), // wire type 7: invalid
      Buffer.from([0x00]), // field number 0: invalid
    ];
    for (const [name, buf] of files) {
      const at = firstEntry(name);
      for (const [i, p] of payloads.entries()) {
        // replace the first entry
        const oldLen = buf.readUInt32LE(at);
        const b = Buffer.concat([buf.subarray(0, at), u32(p.length), p, buf.subarray(at + 4 + oldLen)]);
        const r = attempt(name, b, `${name} payload #${i}`);
        if (r === 'ok') failures.push(`${name} payload #${i}: accepted`);
        // and as an extra entry after the last one
        attempt(name, Buffer.concat([buf, u32(p.length), p]), `${name} extra payload #${i}`);
      }
    }
  });

  it('garbage protobuf and random byte/bit flips (seeded)', () => {
    const rand = prng(0x7dc011ec);
    for (const [name, buf] of files) {
      const at = firstEntry(name);
      for (let k = 0; k < 80; k++) {
        // garbage entry of random length in place of the whole body
        const len = Math.floor(rand() * 64);
        const g = Buffer.alloc(len);
        for (let i = 0; i < len; i++) g[i] = Math.floor(rand() * 256);
        attempt(name, Buffer.concat([buf.subarray(0, at), u32(len), g]), `${name} garbage #${k}`);
        // 1..4 random byte flips anywhere after the magics
        const b = Buffer.from(buf);
        const flips = 1 + Math.floor(rand() * 4);
        const where: number[] = [];
        for (let f = 0; f < flips; f++) {
          const i = at + Math.floor(rand() * (b.length - at));
          b[i] ^= 1 << Math.floor(rand() * 8);
          where.push(i);
        }
        attempt(name, b, `${name} bit flips at ${where.join(',')}`);
      }
    }
  });

  it('well-formed records that do not make a tree (a thread of a missing process, a process twice)', () => {
    // tasks.img re-encoded from edited records, header counts kept consistent, CRIU images untouched
    const tasksImg = (tasks: Task[]) => {
      const s = snapshot();
      let processes = 0;
      for (const t of tasks) if (t.pid === t.tgid) processes++;
      const info = { ...s.info, processes, threads: tasks.length };
      const sc = schemas();
      return frameImage(KIND.tasks, [
        encodeMessage(sc.header, headerToPb(info)),
        ...tasks.map((t) => encodeMessage(sc.task, taskToPb(t))),
      ]);
    };
    const base = snapshot().tasks;
    const cases: [string, Task[]][] = [
      ['thread 101 of missing process 108', base.map((t) => (t.pid === 101 ? { ...t, tgid: 108 } : t))],
      ['process 102 twice', [...base, { ...base[2] }]],
      ['no root process', base.filter((t) => t.pid !== 100 && t.pid !== 101)],
    ];
    for (const [label, tasks] of cases) {
      const r = attempt('tasks.img', tasksImg(tasks), `tasks.img: ${label}`);
      if (!(r instanceof ImageError)) failures.push(`tasks.img: ${label}: expected an ImageError, got ${String(r)}`);
    }
  });

  it('no mutation produced anything but a Snapshot or a one-line ImageError with file and offset', () => {
    expect(outcomes.error).toBeGreaterThan(1000);
    expect(failures, failures.slice(0, 40).join('\n')).toEqual([]);
  });
});
