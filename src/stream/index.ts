/**
 * A snapshot as a stream of records, for tooling that wants tasks as they are written rather than a
 * directory of images: `tdcollect dump --stdout --format msgpack|json`, `tdcollect ps --stdout ...`.
 *
 * Grammar (version 1):
 *
 *   STREAM := HEADER TASK* END
 *   HEADER := { type: "header", format: "tdcollect-stream", version: 1, info: DumpInfo (what the producer knows) }
 *   TASK   := { type: "task", task: Task }          one per thread, pstree order (leader, its threads, ...)
 *   END    := { type: "end", processes: P, threads: T }   T = number of TASK records; absent => truncated
 *
 * msgpack: each record is one top-level MessagePack map, written back to back with no framing (what
 * msgpackr's unpackMultiple / any "unpack many" API reads); plain maps and arrays only (no msgpackr
 * records or extensions), fields that are undefined are left out. Numbers above 2^32 (e.g. futexRla) may
 * be written as float 64, which holds them exactly.
 * json: JSON Lines — each record is one JSON object on its own line ("\n" terminated).
 *
 * Readers must ignore record types and fields they do not know (a newer producer may add them).
 * The writer flushes the header at once and then batches tasks into chunks of about 64 KiB, so a consumer
 * can start before the last task is written; it honours back-pressure of a Writable and stops quietly
 * when the consumer goes away (EPIPE).
 */
import { writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { Packr, Unpackr } from 'msgpackr';
import { ImageError } from '../errors.js';
import type { DumpInfo, RecordedTask, Snapshot, Task } from '../collector/task.js';

export const STREAM_FORMAT = 'tdcollect-stream';
export const STREAM_VERSION = 1;
export type StreamFormat = 'msgpack' | 'json';
export const STREAM_FORMATS: readonly StreamFormat[] = ['msgpack', 'json'];

export interface HeaderRecord {
  type: 'header';
  format: typeof STREAM_FORMAT;
  version: number;
  info: Partial<DumpInfo>;
}
export interface TaskRecord {
  type: 'task';
  task: RecordedTask;
}
export interface EndRecord {
  type: 'end';
  processes: number;
  threads: number;
}
export type StreamRecord = HeaderRecord | TaskRecord | EndRecord;

// skipValues (leave out members whose value is undefined) is a msgpackr option its typings do not list
const packr = new Packr({ useRecords: false, variableMapSize: true, skipValues: [undefined] } as ConstructorParameters<typeof Packr>[0]);

/** Drop undefined members (JSON does this itself; for msgpack skipValues does it). */
function encodeRecord(r: StreamRecord, format: StreamFormat): Buffer {
  if (format === 'msgpack') return packr.pack(r);
  return Buffer.from(JSON.stringify(r) + '\n');
}

export interface StreamOptions {
  /** flush when this many bytes are buffered (default 64 KiB) */
  chunkBytes?: number;
}

export interface StreamResult {
  processes: number;
  threads: number;
  bytes: number;
  /** the consumer closed its end before the stream was complete */
  closed: boolean;
}

/** Where records go: a Writable (honours back-pressure) or a file descriptor (written synchronously). */
class Sink {
  closed = false;
  bytes = 0;
  private error: Error | undefined;
  private readonly onError = (e: Error) => {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') this.closed = true;
    else this.error = e;
  };
  constructor(private readonly out: Writable | number) {
    if (typeof out !== 'number') out.on('error', this.onError);
  }
  async write(buf: Buffer): Promise<void> {
    if (this.closed) return;
    if (this.error) throw this.error;
    this.bytes += buf.length;
    if (typeof this.out === 'number') {
      let off = 0;
      while (off < buf.length) {
        try {
          off += writeSync(this.out, buf, off, buf.length - off);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN') { await new Promise((r) => setTimeout(r, 1)); continue; }
          if (code === 'EPIPE') { this.closed = true; return; }
          throw e;
        }
      }
      return;
    }
    const out = this.out;
    if (out.destroyed || out.writableEnded) { this.closed = true; return; }
    if (!out.write(buf)) {
      await new Promise<void>((resolve) => {
        const done = () => { out.off('drain', done); out.off('close', done); out.off('error', done); resolve(); };
        out.on('drain', done); out.on('close', done); out.on('error', done);
      });
      if (out.destroyed && !out.writableFinished) this.closed = true;
    }
    if (this.error) throw this.error;
  }
  release(): void {
    if (typeof this.out !== 'number') {
      // keep swallowing a late EPIPE from data still queued
      this.out.off('error', this.onError);
      this.out.on('error', () => {});
    }
  }
}

/**
 * Write a snapshot as a stream: the header record, one record per task, the end record.
 * `tasks` may be an async iterable, so a producer can stream tasks as it reads them.
 * Does not end `out` (process.stdout cannot be ended); the caller does when it owns the stream.
 */
export async function streamSnapshot(
  out: Writable | number,
  info: Partial<DumpInfo>,
  tasks: Iterable<RecordedTask> | AsyncIterable<RecordedTask>,
  format: StreamFormat,
  opts: StreamOptions = {},
): Promise<StreamResult> {
  if (format !== 'msgpack' && format !== 'json') throw new TypeError(`unknown stream format ${String(format)}`);
  const limit = opts.chunkBytes ?? 1 << 16;
  const sink = new Sink(out);
  let processes = 0, threads = 0;
  try {
    await sink.write(encodeRecord({ type: 'header', format: STREAM_FORMAT, version: STREAM_VERSION, info }, format));
    let parts: Buffer[] = [];
    let size = 0;
    for await (const task of tasks) {
      if (sink.closed) break;
      const b = encodeRecord({ type: 'task', task }, format);
      parts.push(b);
      size += b.length;
      threads++;
      if (task.pid === task.tgid) processes++;
      if (size >= limit) {
        await sink.write(Buffer.concat(parts, size));
        parts = [];
        size = 0;
      }
    }
    parts.push(encodeRecord({ type: 'end', processes, threads }, format));
    await sink.write(Buffer.concat(parts));
  } finally {
    sink.release();
  }
  return { processes, threads, bytes: sink.bytes, closed: sink.closed };
}

export interface ReadStreamOptions {
  /** 'auto' (default) tells msgpack from JSON Lines by the first byte ('{' is JSON) */
  format?: StreamFormat | 'auto';
  /** a record larger than this is an error rather than a reason to buffer forever (default 16 MiB) */
  maxRecordBytes?: number;
  /** name used in error messages (default "stream") */
  name?: string;
  /** tolerate a stream with no end record (default false: a missing end record is an 'eof' ImageError) */
  allowTruncated?: boolean;
}

type Chunk = Buffer | Uint8Array | string;

/** Check a decoded value is a record of ours; unknown types are passed through for the caller to skip. */
function checkRecord(v: unknown, index: number, name: string, offset: number): StreamRecord {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || typeof (v as { type?: unknown }).type !== 'string') {
    throw new ImageError(name, offset, 'corrupt', `record ${index} is not a tdcollect stream record`);
  }
  const r = v as StreamRecord;
  if (index === 0) {
    if (r.type !== 'header' || (r as HeaderRecord).format !== STREAM_FORMAT) {
      throw new ImageError(name, offset, 'corrupt', `not a ${STREAM_FORMAT} (first record is not its header)`);
    }
    if ((r as HeaderRecord).version !== STREAM_VERSION) {
      throw new ImageError(name, offset, 'corrupt',
        `stream version ${String((r as HeaderRecord).version)} is not supported (this reader knows ${STREAM_VERSION})`);
    }
  } else if (r.type === 'header') {
    throw new ImageError(name, offset, 'corrupt', `record ${index}: a second header`);
  } else if (r.type === 'task') {
    const t = (r as TaskRecord).task;
    if (t === null || typeof t !== 'object' || typeof t.pid !== 'number' || typeof t.tgid !== 'number') {
      throw new ImageError(name, offset, 'corrupt', `record ${index}: task record without pid/tgid`);
    }
  }
  return r;
}

/**
 * Read a stream written by streamSnapshot: yields each record as soon as its bytes have arrived.
 * Errors are ImageError naming the stream and the byte offset: 'corrupt' for bad content, 'eof' when the
 * data ends inside a record or before the end record. Memory is bounded by maxRecordBytes.
 */
export async function* readStream(
  input: AsyncIterable<Chunk> | Iterable<Chunk>,
  opts: ReadStreamOptions = {},
): AsyncGenerator<StreamRecord> {
  const name = opts.name ?? 'stream';
  const max = opts.maxRecordBytes ?? 1 << 24;
  let format: StreamFormat | undefined = opts.format === 'auto' ? undefined : opts.format;
  const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
  let pending: Buffer = Buffer.alloc(0);
  let base = 0; // stream offset of pending[0]
  let index = 0;
  let ended = false;
  let taskCount = 0;

  const afterEnd = (offset: number) => {
    throw new ImageError(name, offset, 'corrupt', 'data after the end record');
  };

  for await (const chunk of input as AsyncIterable<Chunk>) {
    const c = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (c.length === 0) continue;
    pending = pending.length ? Buffer.concat([pending, c]) : c;
    if (format === undefined) format = pending[0] === 0x7b ? 'json' : 'msgpack';
    const out: { v: unknown; off: number }[] = [];
    let used = 0;
    if (format === 'json') {
      for (;;) {
        const nl = pending.indexOf(0x0a, used);
        if (nl < 0) break;
        const line = pending.subarray(used, nl);
        if (line.length) {
          let v: unknown;
          try {
            v = JSON.parse(line.toString('utf8'));
          } catch (e) {
            throw new ImageError(name, base + used, 'corrupt', `record ${index + out.length}: bad JSON: ${(e as Error).message}`);
          }
          out.push({ v, off: base + used });
        }
        used = nl + 1;
      }
    } else {
      try {
        unpackr.unpackMultiple(pending, (v: unknown, start?: number, end?: number) => {
          out.push({ v, off: base + (start ?? 0) });
          used = end ?? pending.length;
        });
      } catch (e) {
        const err = e as { incomplete?: boolean; lastPosition?: number; message?: string };
        if (!err || !err.incomplete) {
          throw new ImageError(name, base + (err?.lastPosition ?? used), 'corrupt',
            `record ${index + out.length}: bad MessagePack: ${err?.message ?? String(e)}`);
        }
        used = err.lastPosition ?? used;
      }
    }
    for (const { v, off } of out) {
      if (ended) afterEnd(off);
      const r = checkRecord(v, index++, name, off);
      if (r.type === 'task') taskCount++;
      else if (r.type === 'end') {
        ended = true;
        if (r.threads !== taskCount) {
          throw new ImageError(name, off, 'corrupt', `end record counts ${String(r.threads)} tasks, the stream holds ${taskCount}`);
        }
      }
      yield r;
    }
    base += used;
    pending = used >= pending.length ? Buffer.alloc(0) : pending.subarray(used);
    if (pending.length > max) {
      throw new ImageError(name, base, 'corrupt', `record ${index} is longer than ${max} bytes`);
    }
  }
  if (pending.length) {
    if (ended) afterEnd(base);
    if (format === 'json' && pending.indexOf(0x0a) < 0) {
      // a last line without its newline: accept it if it is complete JSON
      let v: unknown;
      try { v = JSON.parse(pending.toString('utf8')); } catch {
        throw new ImageError(name, base, 'eof', `stream ends inside record ${index}`);
      }
      const r = checkRecord(v, index++, name, base);
      if (r.type === 'end') ended = true;
      yield r;
    } else {
      throw new ImageError(name, base, 'eof', `stream ends inside record ${index}`);
    }
  }
  if (index === 0) throw new ImageError(name, 0, 'eof', 'empty stream (no header record)');
  if (!ended && !opts.allowTruncated) throw new ImageError(name, base, 'eof', 'stream ends before its end record');
}

/** Read a whole stream into a Snapshot (header info completed with the counts of the end record). */
export async function readSnapshotStream(
  input: AsyncIterable<Chunk> | Iterable<Chunk>,
  opts: ReadStreamOptions = {},
): Promise<Snapshot> {
  let info: Partial<DumpInfo> = {};
  const tasks: RecordedTask[] = [];
  let end: EndRecord | undefined;
  for await (const r of readStream(input, opts)) {
    if (r.type === 'header') info = r.info;
    else if (r.type === 'task') tasks.push(r.task);
    else if (r.type === 'end') end = r;
  }
  let processes = 0;
  for (const t of tasks) if (t.pid === t.tgid) processes++;
  return {
    info: { ...info, processes: end?.processes ?? processes, threads: end?.threads ?? tasks.length } as DumpInfo,
    tasks,
  };
}
