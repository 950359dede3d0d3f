/**
 * The one /proc reader: every /proc file the freezers and the procfs source read goes through ProcFile, so
 * the rules for reading /proc live here and nowhere else.
 *
 *   - A file is read whole, whatever its length: the buffer grows (doubling) until read(2) says the file
 *     has ended. Nothing is ever cut short, so no number is ever parsed from half its digits.
 *   - When read(2) has ended, without the extra read(2) that returns 0 where the kernel guarantees it:
 *       'single'  single_open files (stat, status, personality, comm, wchan): the kernel formats the whole
 *                 file into its seq buffer and copies as much as fits, so a read shorter than the room we
 *                 offered is the end;
 *       'records' seq_files of records (task/TID/children): the kernel hands out at most one seq page
 *                 (PAGE_SIZE, at least 4,096 bytes) per read, stopping before the first record that does not
 *                 fit; a record is at most 8 bytes (a pid below PID_MAX_LIMIT, 4,194,304, and a space). We
 *                 always offer at least RECORD_ROOM bytes, so a read shorter than 4,096 - 8 bytes is the end.
 *   - A vanished task (ENOENT, ESRCH) is GONE; a refusal (EACCES, EPERM) is DENIED; anything else throws.
 *
 * Numbers are parsed from the bytes in place (no split, no regex, no strings), with a cursor `pos`.
 */
import { closeSync, openSync, readSync, constants as fsc } from 'node:fs';
import type { Mask64 } from './task.js';

/** read() came back with a task that no longer exists (ENOENT, ESRCH) */
export const GONE = -1;
/** the file exists but may not be read (EACCES, EPERM) */
export const DENIED = -2;

export type ProcFileKind = 'single' | 'records';

/** the smallest seq page a kernel uses */
const SEQ_PAGE = 4096;
/** the longest record of a records file: a 7-digit pid and its separator */
const MAX_RECORD = 8;
/** room offered to every read of a records file: more than one seq page, so a short read means the end */
const RECORD_ROOM = 2 * SEQ_PAGE;

const C_SPACE = 0x20, C_MINUS = 0x2d, C_0 = 0x30, C_9 = 0x39;

export const HEX: Int8Array = (() => {
  const h = new Int8Array(256).fill(-1);
  for (let i = 0; i < 10; i++) h[0x30 + i] = i;
  for (let i = 0; i < 6; i++) { h[0x61 + i] = 10 + i; h[0x41 + i] = 10 + i; }
  return h;
})();

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

export class ProcFile {
  buf: Buffer;
  /** length of the file last read */
  len = 0;
  /** parse cursor */
  pos = 0;
  /** open + read + close calls made, for --stats */
  syscalls = 0;
  /** errno code of the last GONE or DENIED */
  code = '';

  constructor(initial = 1 << 16) {
    this.buf = Buffer.allocUnsafe(Math.max(initial, 2 * RECORD_ROOM));
  }

  /** Read `path` whole into buf. Returns its length, GONE or DENIED. */
  read(path: string, kind: ProcFileKind = 'single'): number {
    let fd: number;
    this.syscalls++;
    try {
      fd = openSync(path, fsc.O_RDONLY);
    } catch (e) {
      return this.failed(e);
    }
    let n = 0;
    try {
      for (;;) {
        if (this.buf.length - n < RECORD_ROOM) this.grow(n);
        this.syscalls++;
        const room = this.buf.length - n;
        const r = readSync(fd, this.buf, n, room, null);
        n += r;
        if (r === 0) break;
        if (kind === 'records' ? r < SEQ_PAGE - MAX_RECORD : r < room) break;
      }
    } catch (e) {
      return this.failed(e);
    } finally {
      this.syscalls++;
      closeSync(fd);
    }
    this.len = n;
    this.pos = 0;
    return n;
  }

  private grow(keep: number): void {
    const bigger = Buffer.allocUnsafe(this.buf.length * 2);
    this.buf.copy(bigger, 0, 0, keep);
    this.buf = bigger;
  }

  private failed(e: unknown): number {
    const code = errCode(e);
    if (code === 'ENOENT' || code === 'ESRCH') { this.code = code; return GONE; }
    if (code === 'EACCES' || code === 'EPERM') { this.code = code; return DENIED; }
    throw e;
  }

  /** The file last read as latin1 text (rare paths and messages only). */
  text(): string {
    return this.buf.toString('latin1', 0, this.len);
  }

  /** Parse a signed decimal at pos and step over one separator. */
  int(): number {
    const b = this.buf;
    let p = this.pos;
    let neg = false;
    if (b[p] === C_MINUS) { neg = true; p++; }
    let v = 0;
    let c = b[p];
    while (c >= C_0 && c <= C_9) { v = v * 10 + (c - C_0); c = b[++p]; }
    this.pos = p + 1;
    return neg ? -v : v;
  }

  /** Step over `n` space-separated fields. */
  skip(n: number): void {
    const b = this.buf;
    const end = this.len;
    let p = this.pos;
    while (n > 0 && p < end) {
      while (p < end && b[p] !== C_SPACE) p++;
      p++;
      n--;
    }
    this.pos = p;
  }

  /** Parse hex digits at pos into [lo, hi] (the low 8 digits into lo). */
  mask64(): Mask64 {
    const b = this.buf;
    let p = this.pos;
    let hi = 0, lo = 0;
    let end = p;
    while (end < this.len && HEX[b[end]] >= 0) end++;
    const split = end - 8 > p ? end - 8 : p;
    for (; p < split; p++) hi = hi * 16 + HEX[b[p]];
    for (; p < end; p++) lo = lo * 16 + HEX[b[p]];
    this.pos = end + 1;
    return [lo >>> 0, hi >>> 0];
  }

  /** bytes [p, colon) equal key */
  isKey(key: Uint8Array, p: number, colon: number): boolean {
    if (colon - p !== key.length) return false;
    const b = this.buf;
    for (let i = 0; i < key.length; i++) if (b[p + i] !== key[i]) return false;
    return true;
  }

  /** Append every decimal number of the file last read (a children list) to out. */
  numbers(out: number[]): void {
    const b = this.buf;
    const end = this.len;
    let p = 0;
    while (p < end) {
      let c = b[p];
      if (c < C_0 || c > C_9) { p++; continue; }
      let v = 0;
      while (p < end && c >= C_0 && c <= C_9) { v = v * 10 + (c - C_0); c = b[++p]; }
      out.push(v);
    }
  }

  /** The hexadecimal mask on the line `key:` of the file last read ("CapEff:\t000001ffffffffff"), as mask64. */
  keyMask64(key: string): Mask64 | undefined {
    const b = this.buf;
    let q = keyValueAt(b, this.len, key);
    if (q < 0) return undefined;
    while (q < this.len && (b[q] === 0x09 || b[q] === C_SPACE)) q++;
    this.pos = q;
    return this.mask64();
  }

  /** The decimals of the line `key:` of the file last read (see statusNumbers). */
  keyNumbers(key: string): number[] | undefined {
    return statusNumbers(this.buf, this.len, key);
  }

  /**
   * Read /proc/PID/task/TID/children (or any list of pids) whole and append its pids to out. Returns the
   * file's length, GONE or DENIED.
   */
  readPids(path: string, out: number[]): number {
    const n = this.read(path, 'records');
    if (n > 0) this.numbers(out);
    return n;
  }
}

/**
 * Where the value of the line `key:` starts in b[0, len) (just after the colon), or -1 when there is no such
 * line: the key matches only a whole key at the start of a line.
 */
function keyValueAt(b: Uint8Array, len: number, key: string): number {
  const k = key.length;
  let p = 0;
  for (;;) {
    let match = p + k < len && b[p + k] === 0x3a;
    for (let i = 0; match && i < k; i++) if (b[p + i] !== key.charCodeAt(i)) match = false;
    if (match) return p + k + 1;
    while (p < len && b[p] !== 0x0a) p++;
    if (++p >= len) return -1;
  }
}

/**
 * The decimals on the line `key:` of a status-style /proc file held in b[0, len), in order: "NSpid:\t1234\t7"
 * gives [1234, 7], "Groups:\t4 24 27 " gives [4, 24, 27], an empty "Groups:" line gives []. The key matches
 * only a whole key at the start of a line; undefined when the file has no such line.
 */
export function statusNumbers(b: Uint8Array, len: number, key: string): number[] | undefined {
  let p = keyValueAt(b, len, key);
  if (p < 0) return undefined;
  const out: number[] = [];
  let v = -1;
  for (; p < len; p++) {
    const c = b[p];
    if (c >= C_0 && c <= C_9) v = (v < 0 ? 0 : v * 10) + (c - C_0);
    else {
      if (v >= 0) { out.push(v); v = -1; }
      if (c === 0x0a) break;
    }
  }
  if (v >= 0) out.push(v);
  return out;
}
