/**
 * The protobuf writer the generated encoders of schemas.gen.ts run against: the part of protobufjs/minimal's
 * Writer API that protobufjs's encoder codegen calls, writing the same bytes the same way (one growing buffer;
 * a nested part, fork() ... ldelim(), keeps one byte for its length and is moved up when its length needs
 * more).
 *
 * Why not protobufjs/minimal itself: loading it costs every command that writes an image about 3 ms (its
 * util module loads long.js, which compiles a WebAssembly module, and about 100 KB of code to read and
 * compile), for the dozen methods below.
 *
 * Values as protobufjs takes them: 32-bit fields a number; 64-bit fields a number (safe integer, negative ones
 * as two's complement), a bigint, or protobufjs's {low, high} pair; bytes a Uint8Array.
 */

/** A 64-bit value as the generated code passes it. */
export type Long64 = number | bigint | { low: number; high: number };

// split64's result (module-level, not an array per value: the encoders write tens of thousands of these)
let lo64 = 0;
let hi64 = 0;

/** The low and high 32 bits of a 64-bit value into lo64 and hi64, as protobufjs's LongBits.from makes them. */
function split64(v: Long64): void {
  if (typeof v === 'number') {
    if (v === 0) {
      lo64 = 0;
      hi64 = 0;
      return;
    }
    const neg = v < 0;
    if (neg) v = -v;
    let lo = v >>> 0;
    let hi = ((v - lo) / 4294967296) >>> 0;
    if (neg) {
      hi = ~hi >>> 0;
      lo = ~lo >>> 0;
      if (++lo > 0xffffffff) {
        lo = 0;
        if (++hi > 0xffffffff) hi = 0;
      }
    }
    lo64 = lo;
    hi64 = hi;
  } else if (typeof v === 'bigint') {
    const u = BigInt.asUintN(64, v);
    lo64 = Number(u & 0xffffffffn);
    hi64 = Number(u >> 32n);
  } else if (v.low || v.high) {
    lo64 = v.low >>> 0;
    hi64 = v.high >>> 0;
  } else {
    lo64 = 0;
    hi64 = 0;
  }
}

/** Write v (an unsigned 32-bit value) as a varint at b[p]; returns the position after it. */
function putVarint32(b: Buffer, p: number, v: number): number {
  while (v > 127) {
    b[p++] = (v & 127) | 128;
    v >>>= 7;
  }
  b[p++] = v;
  return p;
}

/**
 * A little-endian u32 at b[p] (b has room), byte by byte: Buffer's writeUInt32LE checks its arguments in
 * JavaScript on every call, which a dump makes twice per image file.
 */
function put32(b: Buffer, p: number, v: number): void {
  b[p] = v & 255;
  b[p + 1] = (v >>> 8) & 255;
  b[p + 2] = (v >>> 16) & 255;
  b[p + 3] = (v >>> 24) & 255;
}

export class Writer {
  private buf: Buffer;
  private pos = 0;
  /** for each open fork(), where its length byte is */
  private readonly forks: number[] = [];

  /** `shared`: the buffer is a SharedArrayBuffer's (it grows into new ones), for bytes a worker thread reads */
  constructor(capacity = 256, private readonly shared = false) {
    this.buf = shared ? Buffer.from(new SharedArrayBuffer(capacity)) : Buffer.allocUnsafe(capacity);
  }

  static create(): Writer {
    return new Writer();
  }

  /** Bytes written so far, in all (as protobufjs's len). */
  get len(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = this.shared ? Buffer.from(new SharedArrayBuffer(size)) : Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  uint32(value: number): this {
    this.room(5);
    this.pos = putVarint32(this.buf, this.pos, value >>> 0);
    return this;
  }

  /** A negative value takes ten bytes, as a 64-bit one would. */
  int32(value: number): this {
    return value < 0 ? this.varint64(value, -1) : this.uint32(value);
  }

  sint32(value: number): this {
    return this.uint32(((value << 1) ^ (value >> 31)) >>> 0);
  }

  uint64(value: Long64): this {
    split64(value);
    return this.varint64(lo64, hi64);
  }

  int64(value: Long64): this {
    return this.uint64(value);
  }

  sint64(value: Long64): this {
    split64(value);
    const lo = lo64;
    const hi = hi64;
    const mask = hi >> 31;
    return this.varint64(((lo << 1) ^ mask) >>> 0, (((hi << 1) | (lo >>> 31)) ^ mask) >>> 0);
  }

  bool(value: boolean): this {
    return this.uint32(value ? 1 : 0);
  }

  fixed32(value: number): this {
    this.room(4);
    put32(this.buf, this.pos, value);
    this.pos += 4;
    return this;
  }

  sfixed32(value: number): this {
    return this.fixed32(value);
  }

  fixed64(value: Long64): this {
    split64(value);
    return this.fixed64Words(lo64, hi64);
  }

  /** A uint64 from its two 32-bit halves (not in protobufjs's API: for encoders that hold the halves). */
  uint64Words(lo: number, hi: number): this {
    return this.varint64(lo, hi);
  }

  /** A fixed64 from its two 32-bit halves (not in protobufjs's API: for encoders that hold the halves). */
  fixed64Words(lo: number, hi: number): this {
    this.room(8);
    const b = this.buf;
    let p = this.pos;
    b[p++] = lo & 255; b[p++] = (lo >>> 8) & 255; b[p++] = (lo >>> 16) & 255; b[p++] = lo >>> 24;
    b[p++] = hi & 255; b[p++] = (hi >>> 8) & 255; b[p++] = (hi >>> 16) & 255; b[p++] = hi >>> 24;
    this.pos = p;
    return this;
  }

  sfixed64(value: Long64): this {
    return this.fixed64(value);
  }

  float(value: number): this {
    this.room(4);
    this.buf.writeFloatLE(value, this.pos);
    this.pos += 4;
    return this;
  }

  double(value: number): this {
    this.room(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
    return this;
  }

  bytes(value: Uint8Array): this {
    const n = value.length >>> 0;
    this.uint32(n);
    if (!n) return this;
    this.room(n);
    this.buf.set(value, this.pos);
    this.pos += n;
    return this;
  }

  string(value: string): this {
    // a short ASCII string (a comm, a state letter) byte by byte: cheaper than the two native calls below
    if (value.length < 64) {
      const len = value.length;
      this.room(len + 1);
      const b = this.buf;
      const start = this.pos;
      b[start] = len;
      let i = 0;
      for (; i < len; i++) {
        const c = value.charCodeAt(i);
        if (c > 0x7f) break;
        b[start + 1 + i] = c;
      }
      if (i === len) {
        this.pos = start + 1 + len;
        return this;
      }
    }
    const n = Buffer.byteLength(value, 'utf8');
    this.uint32(n);
    if (!n) return this;
    this.room(n);
    this.pos += this.buf.write(value, this.pos, n, 'utf8');
    return this;
  }

  /** Append bytes as they are (bytes an earlier call wrote; see since). Not in protobufjs's API. */
  raw(bytes: Uint8Array): this {
    const n = bytes.length;
    this.room(n);
    this.buf.set(bytes, this.pos);
    this.pos += n;
    return this;
  }

  /** A copy of what was written from position `start` on (start: an earlier len). Not in protobufjs's API. */
  since(start: number): Buffer {
    return Buffer.from(this.buf.subarray(start, this.pos));
  }

  /**
   * Keep four bytes for a little-endian u32 written later with patch32 (a CRIU image's entry length, known
   * once the entry is written); returns where they are. Not in protobufjs's API.
   */
  reserve32(): number {
    this.room(4);
    const at = this.pos;
    this.pos += 4;
    return at;
  }

  /** Write a little-endian u32 at `at` (a reserve32 position, or any earlier one). */
  patch32(at: number, value: number): this {
    put32(this.buf, at, value);
    return this;
  }

  /** Begin a length-delimited part (a nested message); ldelim() ends it. */
  fork(): this {
    this.room(1);
    this.forks.push(this.pos++);
    return this;
  }

  /** End the part fork() began: its length before it. */
  ldelim(): this {
    const at = this.forks.pop();
    if (at === undefined) throw new Error('ldelim() without fork()');
    const n = this.pos - at - 1;
    if (n < 128) {
      this.buf[at] = n;
      return this;
    }
    let size = 1;
    for (let v = n >>> 7; v; v >>>= 7) size++;
    this.room(size - 1);
    this.buf.copyWithin(at + size, at + 1, this.pos);
    this.pos += size - 1;
    putVarint32(this.buf, at, n);
    return this;
  }

  /** The bytes written (a view of this writer's buffer, which it leaves); the writer starts over empty. */
  finish(): Buffer {
    if (this.forks.length) throw new Error('finish() inside a fork()');
    const out = this.buf.subarray(0, this.pos);
    this.buf = this.shared ? Buffer.from(new SharedArrayBuffer(256)) : Buffer.allocUnsafe(256);
    this.pos = 0;
    return out;
  }

  private varint64(lo: number, hi: number): this {
    this.room(10);
    const b = this.buf;
    let p = this.pos;
    lo >>>= 0;
    hi >>>= 0;
    while (hi) {
      b[p++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.pos = putVarint32(b, p, lo);
    return this;
  }
}

/** What the generated encoders read of protobufjs's util: the nesting limit of a message. */
export const util = { recursionLimit: 100 };
