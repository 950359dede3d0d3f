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

/** The low and high 32 bits of a 64-bit value, as protobufjs's LongBits.from makes them. */
function split64(v: Long64): [number, number] {
  if (typeof v === 'number') {
    if (v === 0) return [0, 0];
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
    return [lo, hi];
  }
  if (typeof v === 'bigint') {
    const u = BigInt.asUintN(64, v);
    return [Number(u & 0xffffffffn), Number(u >> 32n)];
  }
  return v.low || v.high ? [v.low >>> 0, v.high >>> 0] : [0, 0];
}

export class Writer {
  private buf: Buffer;
  private pos = 0;
  /** for each open fork(), where its length byte is */
  private readonly forks: number[] = [];

  constructor(capacity = 256) {
    this.buf = Buffer.allocUnsafe(capacity);
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
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  uint32(value: number): this {
    let v = value >>> 0;
    this.room(5);
    const b = this.buf;
    let p = this.pos;
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
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
    const [lo, hi] = split64(value);
    return this.varint64(lo, hi);
  }

  int64(value: Long64): this {
    return this.uint64(value);
  }

  sint64(value: Long64): this {
    const [lo, hi] = split64(value);
    const mask = hi >> 31;
    return this.varint64(((lo << 1) ^ mask) >>> 0, (((hi << 1) | (lo >>> 31)) ^ mask) >>> 0);
  }

  bool(value: boolean): this {
    return this.uint32(value ? 1 : 0);
  }

  fixed32(value: number): this {
    this.room(4);
    this.buf.writeUInt32LE(value >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  sfixed32(value: number): this {
    return this.fixed32(value);
  }

  fixed64(value: Long64): this {
    const [lo, hi] = split64(value);
    this.room(8);
    this.buf.writeUInt32LE(lo, this.pos);
    this.buf.writeUInt32LE(hi, this.pos + 4);
    this.pos += 8;
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
    const n = Buffer.byteLength(value, 'utf8');
    this.uint32(n);
    if (!n) return this;
    this.room(n);
    this.pos += this.buf.write(value, this.pos, n, 'utf8');
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
    let n = this.pos - at - 1;
    if (n < 128) {
      this.buf[at] = n;
      return this;
    }
    let size = 1;
    for (let v = n >>> 7; v; v >>>= 7) size++;
    this.room(size - 1);
    this.buf.copyWithin(at + size, at + 1, this.pos);
    this.pos += size - 1;
    let p = at;
    while (n > 127) {
      this.buf[p++] = (n & 127) | 128;
      n >>>= 7;
    }
    this.buf[p] = n;
    return this;
  }

  /** The bytes written (a view of this writer's buffer, which it leaves); the writer starts over empty. */
  finish(): Buffer {
    if (this.forks.length) throw new Error('finish() inside a fork()');
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(256);
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
    while (lo > 127) {
      b[p++] = (lo & 127) | 128;
      lo >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
    return this;
  }
}

/** What the generated encoders read of protobufjs's util: the nesting limit of a message. */
export const util = { recursionLimit: 100 };
