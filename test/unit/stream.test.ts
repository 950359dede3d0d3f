/** streamSnapshot / readStream: record grammar, both formats, incremental reading, bad input. */
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readSnapshotStream, readStream, streamSnapshot, type StreamRecord } from '../../src/stream/index.js';
import type { DumpInfo, Task } from '../../src/collector/task.js';
import { ImageError } from '../../src/errors.js';
import { decodeAll } from '../helpers/msgpack-decode.js';

function task(pid: number, tgid = pid): Task {
  return {
    pid, tgid, ppid: 1, tpid: 0, sid: 1, pgid: 1, state: 'S', comm: `proc-${pid}`,
    uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0,
    capInh: [0, 0], capPrm: [0xffffffff, 0x1ff], capEff: [0xffffffff, 0x1ff], capBnd: [0xffffffff, 0x1ff],
    groups: [0, 27], startTime: 123456 + pid, futexRla: 0x7f12_3456_7890, securebits: undefined,
  };
}
const info: Partial<DumpInfo> = { formatVersion: 1, source: 'procfs', freeze: 'none', root: 100, processes: 2, threads: 3 };
const tasks = [task(100), task(101, 100), task(200)];
const clean = (t: Task) => JSON.parse(JSON.stringify(t)) as Task; // undefined members dropped

/** Collect what is written to a Writable. */
function sink(): { w: Writable; data: () => Buffer } {
  const parts: Buffer[] = [];
  const w = new Writable({ write(c, _e, cb) { parts.push(c as Buffer); cb(); } });
  return { w, data: () => Buffer.concat(parts) };
}

async function all(it: AsyncIterable<StreamRecord>): Promise<StreamRecord[]> {
  const out: StreamRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

function* bytes(b: Buffer, step: number): Generator<Buffer> {
  for (let i = 0; i < b.length; i += step) yield b.subarray(i, i + step);
}

async function encoded(format: 'msgpack' | 'json'): Promise<Buffer> {
  const s = sink();
  await streamSnapshot(s.w, info, tasks, format);
  return s.data();
}

describe('streamSnapshot', () => {
  it('msgpack: header, one map per task, end — read by an independent decoder', async () => {
    const buf = await encoded('msgpack');
    const vals = decodeAll(buf);
    expect(vals).toHaveLength(5);
    expect(vals[0]).toEqual({ type: 'header', format: 'tdcollect-stream', version: 1, info });
    expect(vals.slice(1, 4)).toEqual(tasks.map((t) => ({ type: 'task', task: clean(t) })));
    expect(vals[4]).toEqual({ type: 'end', processes: 2, threads: 3 });
    // first byte: a map (fixmap 0x84: 4 members)
    expect(buf[0]).toBe(0x84);
    // undefined members are left out, not encoded as msgpackr's undefined extension (0xd4 00 00)
    expect(Object.keys((vals[1] as { task: object }).task)).not.toContain('securebits');
  });

  it('json: JSON Lines', async () => {
    const buf = await encoded('json');
    const lines = buf.toString().split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[5]).toBe('');
    expect(JSON.parse(lines[0])).toEqual({ type: 'header', format: 'tdcollect-stream', version: 1, info });
    expect(JSON.parse(lines[2])).toEqual({ type: 'task', task: clean(tasks[1]) });
    expect(JSON.parse(lines[4])).toEqual({ type: 'end', processes: 2, threads: 3 });
  });

  it('writes to a file descriptor too, and chunks tasks', async () => {
    const { mkdtempSync, openSync, closeSync, readFileSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/tdstream-');
    const fd = openSync(`${dir}/s`, 'w');
    const many = Array.from({ length: 2000 }, (_, i) => task(1000 + i));
    const res = await streamSnapshot(fd, info, many, 'msgpack', { chunkBytes: 4096 });
    closeSync(fd);
    const buf = readFileSync(`${dir}/s`);
    expect(res).toEqual({ processes: 2000, threads: 2000, bytes: buf.length, closed: false });
    expect(decodeAll(buf)).toHaveLength(2002);
  });

  it('a consumer starts before the last task is written', async () => {
    const pipe = new PassThrough();
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    async function* slow(): AsyncGenerator<Task> {
      yield task(100);
      seen.push('producer waiting');
      await gate;
      yield task(200);
    }
    const producing = streamSnapshot(pipe, info, slow(), 'json', { chunkBytes: 1 }).then(() => pipe.end());
    const got: StreamRecord[] = [];
    for await (const r of readStream(pipe)) {
      got.push(r);
      if (r.type === 'task' && r.task.pid === 100) {
        seen.push('consumer got 100');
        release();
      }
    }
    await producing;
    expect(seen).toEqual(['producer waiting', 'consumer got 100']);
    expect(got.map((r) => r.type)).toEqual(['header', 'task', 'task', 'end']);
  });

  it('stops quietly when the consumer goes away', async () => {
    const w = new Writable({ write(_c, _e, cb) { const e = new Error('EPIPE') as NodeJS.ErrnoException; e.code = 'EPIPE'; cb(e); } });
    const many = Array.from({ length: 500 }, (_, i) => task(1000 + i));
    const res = await streamSnapshot(w, info, many, 'msgpack', { chunkBytes: 1024 });
    expect(res.closed).toBe(true);
  });
});

describe('readStream', () => {
  for (const format of ['msgpack', 'json'] as const) {
    it(`${format}: reads back what was written, fed one byte at a time`, async () => {
      const buf = await encoded(format);
      const recs = await all(readStream(bytes(buf, 1)));
      expect(recs.map((r) => r.type)).toEqual(['header', 'task', 'task', 'task', 'end']);
      const snap = await readSnapshotStream(bytes(buf, 7));
      expect(snap.tasks).toEqual(tasks.map(clean));
      expect(snap.info).toMatchObject({ root: 100, source: 'procfs', processes: 2, threads: 3 });
    });

    it(`${format}: every truncation is an 'eof' ImageError with an offset`, async () => {
      const buf = await encoded(format);
      // (JSON Lines: a last line missing only its newline is complete, hence buf.length - 1 for json)
      const stop = format === 'json' ? buf.length - 1 : buf.length;
      for (let n = 0; n < stop; n++) {
        const err = await all(readStream([buf.subarray(0, n)], { name: 'in' })).then(() => undefined, (e) => e);
        expect(err, `truncated at ${n}`).toBeInstanceOf(ImageError);
        expect((err as ImageError).reason, `truncated at ${n}: ${(err as Error).message}`).toBe('eof');
        expect((err as ImageError).message.startsWith('in: ')).toBe(true);
      }
    });
  }

  it('rejects what is not a tdcollect stream', async () => {
    const cases: [Buffer, RegExp][] = [
      [Buffer.from('{"type":"task"}\n'), /first record is not its header/],
      [Buffer.from('{"type":"header","format":"tdcollect-stream","version":9,"info":{}}\n'), /version 9 is not supported/],
      [Buffer.from('{nope\n'), /offset 0: record 0: bad JSON/],
      [Buffer.from([0x01, 0x02]), /record 0 is not a tdcollect stream record/],
      // header, then a task record without pid
      [Buffer.from('{"type":"header","format":"tdcollect-stream","version":1,"info":{}}\n{"type":"task","task":{}}\n'),
        /offset 68: record 1: task record without pid/],
      // end record that miscounts
      [Buffer.from('{"type":"header","format":"tdcollect-stream","version":1,"info":{}}\n{"type":"end","threads":2}\n'),
        /end record counts 2 tasks, the stream holds 0/],
      // fixext 1 of extension type 5, which nothing defines
      [Buffer.from([0xd4, 0x05, 0x00]), /offset 0: record 0: bad MessagePack: Unknown extension 5/],
    ];
    for (const [buf, re] of cases) {
      await expect(all(readStream([buf])), re.source).rejects.toThrow(re);
    }
  });

  it('data after the end record is an error', async () => {
    const buf = Buffer.concat([await encoded('json'), Buffer.from('{"type":"task","task":{"pid":1,"tgid":1}}\n')]);
    await expect(all(readStream([buf]))).rejects.toThrow(/data after the end record/);
  });

  it('a huge declared length does not make it buffer forever', async () => {
    // header, then str32 declaring 0xfffffff0 bytes, then 2 MiB of filler fed in 64 KiB chunks
    const hdr = await encoded('msgpack');
    const firstLen = hdr.indexOf(Buffer.from([0x82, 0xa4])); // first task record begins with a 2-member map
    expect(firstLen).toBeGreaterThan(0);
    function* feed(): Generator<Buffer> {
      yield hdr.subarray(0, firstLen);
      yield Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xf0]);
      for (let i = 0; i < 32; i++) yield Buffer.alloc(1 << 16, 0x41);
    }
    const err = await all(readStream(feed(), { maxRecordBytes: 1 << 20 })).then(() => undefined, (e) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as Error).message).toMatch(/offset \d+: record 1 is longer than 1048576 bytes/);
  });
});
