/**
 * CRIU image framing and a strict, reflection-driven proto2 decoder.
 *
 * Grammar (all integers little-endian u32, as CRIU writes them on x86-64 / aarch64):
 *
 *   IMAGE   := [HEAD_MAGIC] TYPE_MAGIC ENTRY*          -- entries run to EOF; no count, no terminator
 *   ENTRY   := SIZE:u32 PAYLOAD                         -- SIZE counts the payload only
 *   PAYLOAD := proto2 message of SIZE bytes             -- standard protobuf wire format
 *
 *   HEAD_MAGIC is IMG_COMMON (0x54564319) on every image we handle except inventory.img, which starts
 *   directly with INVENTORY_MAGIC. core-<tid>.img and inventory.img hold exactly one entry; pstree.img one
 *   entry per process; tasks.img (ours) a dump_header entry followed by one task entry per thread.
 *
 * Writing: one static encoder per message (schemas.gen.ts: protobufjs's encoder, generated at build time) (proto2 repeated scalars come out unpacked, required fields
 * are always emitted, so pstree's root ppid 0 is on the wire as `10 00`), framed by frameImage().
 *
 * Reading: splitEntries() checks the magics and the entry lengths; decodeMessage() walks the wire format
 * against the fields of the expected message (schema.ts's MessageSchema, or a protobufjs Type) and fails
 * with an ImageError naming the file and the byte offset of the problem:
 *   - a declared entry length past end of file   -> reason 'eof'     (premature end of file)
 *   - bad magic, bad wire type, a field running past the end of its entry, an unknown enum value,
 *     a missing proto2 required field (checked at every nesting level, like protobuf-c) -> 'corrupt'
 * Nothing is allocated from a declared length: entries are views into the file buffer, and every length
 * is checked against the bytes that remain before it is used. Unknown fields are kept (`$unknown`), not
 * dropped. 64-bit integer fields decode to bigint.
 */
import { ImageError } from '../errors.js';
import type { EnumSchema, MessageSchema } from './schema.js';

/** Magic numbers (criu/include/magic.h), plus tdcollect's own TASKS magic. */
export const MAGIC = {
  IMG_COMMON: 0x54564319,
  IMG_SERVICE: 0x55105940,
  INVENTORY: 0x58313116,
  PSTREE: 0x50273030,
  CORE: 0x55053847,
  IDS: 0x54432030,
  CREDS: 0x54023547,
  FS: 0x51403912,
  /**
   * tasks.img, tdcollect's own image: bytes `54 44 43 31` ("TDC1") on disk. Not among CRIU's magic.h values
   * (checked against pycriu's generated magic.py), so crit reports "Unknown magic" instead of misreading it.
   */
  TASKS: 0x31434454,
} as const;

export interface ImageKind {
  /** name for messages */
  readonly name: string;
  /** head magic, or null when the image has none (inventory) */
  readonly head: number | null;
  readonly magic: number;
  /** exactly one entry (CRIU reads these with pb_read_one) */
  readonly single: boolean;
}

export const KIND = {
  inventory: { name: 'inventory', head: null, magic: MAGIC.INVENTORY, single: true },
  pstree: { name: 'pstree', head: MAGIC.IMG_COMMON, magic: MAGIC.PSTREE, single: false },
  core: { name: 'core', head: MAGIC.IMG_COMMON, magic: MAGIC.CORE, single: true },
  /** ids-<pid>.img (CRIU): one task_kobj_ids_entry */
  ids: { name: 'ids', head: MAGIC.IMG_COMMON, magic: MAGIC.IDS, single: true },
  /** creds-<pid>.img (legacy CRIU): one creds_entry */
  creds: { name: 'creds', head: MAGIC.IMG_COMMON, magic: MAGIC.CREDS, single: true },
  tasks: { name: 'tasks', head: MAGIC.IMG_COMMON, magic: MAGIC.TASKS, single: false },
} as const satisfies Record<string, ImageKind>;

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** Magics followed by u32-length-prefixed payloads, in one buffer. */
export function frameImage(kind: ImageKind, payloads: readonly Uint8Array[]): Buffer {
  let size = kind.head === null ? 4 : 8;
  for (const p of payloads) size += 4 + p.length;
  const out = Buffer.allocUnsafe(size);
  let off = 0;
  if (kind.head !== null) off = out.writeUInt32LE(kind.head, off);
  off = out.writeUInt32LE(kind.magic, off);
  for (const p of payloads) {
    off = out.writeUInt32LE(p.length, off);
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** One entry of an image: the payload is buf[start, end); `offset` is where its length word sits. */
export interface RawEntry {
  offset: number;
  start: number;
  end: number;
}

/** Check the magics and split the file into entries. */
export function splitEntries(file: string, buf: Buffer, kind: ImageKind): RawEntry[] {
  let off = 0;
  const u32 = (what: string): number => {
    if (buf.length - off < 4) {
      throw new ImageError(file, off, 'eof', `premature end of file in ${what} (${buf.length - off} of 4 bytes)`);
    }
    const v = buf.readUInt32LE(off);
    off += 4;
    return v;
  };
  if (kind.head !== null) {
    const head = u32('head magic');
    if (head !== kind.head) {
      throw new ImageError(file, 0, 'corrupt', `head magic ${hex(head)} is not ${hex(kind.head)} (${kind.name} image)`);
    }
  }
  const at = off;
  const magic = u32('image magic');
  if (magic !== kind.magic) {
    const extra = kind.head === null && magic === MAGIC.IMG_COMMON ? ' (inventory.img must not have a head magic)' : '';
    throw new ImageError(file, at, 'corrupt', `magic ${hex(magic)} is not ${kind.name}'s ${hex(kind.magic)}${extra}`);
  }
  const entries: RawEntry[] = [];
  while (off < buf.length) {
    const offset = off;
    const size = u32('entry length');
    const left = buf.length - off;
    if (size > left) {
      throw new ImageError(file, offset, 'eof', `premature end of file: entry declares ${size} bytes, ${left} remain`);
    }
    entries.push({ offset, start: off, end: off + size });
    off += size;
    if (kind.single && entries.length > 1) {
      throw new ImageError(file, offset, 'corrupt', `${kind.name} image holds more than one entry`);
    }
  }
  if (kind.single && entries.length === 0) {
    throw new ImageError(file, off, 'eof', `premature end of file: ${kind.name} image has no entry`);
  }
  return entries;
}

/** A field the schema does not know, kept as raw wire bytes (tag included). */
export interface UnknownField {
  id: number;
  wireType: number;
  /** file offset of the tag */
  offset: number;
  raw: Buffer;
}

/** A decoded message: proto field names (snake_case, as crit prints them) to values. */
export type Decoded = { [field: string]: unknown; $unknown?: UnknownField[] };

type Scalar =
  | 'uint32' | 'int32' | 'sint32' | 'uint64' | 'int64' | 'sint64' | 'bool' | 'enum'
  | 'fixed32' | 'sfixed32' | 'fixed64' | 'sfixed64' | 'double' | 'float' | 'string' | 'bytes' | 'message';

interface FieldDesc {
  name: string;
  id: number;
  kind: Scalar;
  repeated: boolean;
  required: boolean;
  /** wire type of one unpacked element */
  wire: number;
  type?: MessageSchema;
  enumValues?: Set<number>;
  enumName?: string;
}

interface TypeDesc {
  name: string;
  byId: Map<number, FieldDesc>;
  required: FieldDesc[];
}

const WIRE: Record<Scalar, number> = {
  uint32: 0, int32: 0, sint32: 0, uint64: 0, int64: 0, sint64: 0, bool: 0, enum: 0,
  fixed64: 1, sfixed64: 1, double: 1,
  string: 2, bytes: 2, message: 2,
  fixed32: 5, sfixed32: 5, float: 5,
};

const descCache = new WeakMap<MessageSchema, TypeDesc>();

const isMessage = (t: MessageSchema | EnumSchema): t is MessageSchema => 'fieldsArray' in t;

function describe(type: MessageSchema): TypeDesc {
  let d = descCache.get(type);
  if (d) return d;
  const byId = new Map<number, FieldDesc>();
  const required: FieldDesc[] = [];
  for (const f of type.fieldsArray) {
    (f as { resolve?: () => unknown }).resolve?.(); // a protobufjs Field resolves its type lazily
    const rt = f.resolvedType;
    let kind: Scalar;
    const fd: FieldDesc = { name: f.name, id: f.id, kind: 'uint32', repeated: f.repeated, required: f.required, wire: 0 };
    if (rt && isMessage(rt)) {
      kind = 'message';
      fd.type = rt;
    } else if (rt) {
      kind = 'enum';
      fd.enumValues = new Set(Object.values(rt.values));
      fd.enumName = rt.name;
    } else if (f.type in WIRE) {
      kind = f.type as Scalar;
    } else {
      throw new Error(`unsupported field type ${f.type} in ${type.name}`);
    }
    fd.kind = kind;
    fd.wire = WIRE[kind];
    byId.set(f.id, fd);
    if (f.required) required.push(fd);
  }
  d = { name: type.name, byId, required };
  descCache.set(type, d);
  return d;
}

/** Wire-format cursor over buf[pos, end) of one message; errors carry absolute file offsets. */
class Cursor {
  constructor(readonly file: string, readonly buf: Buffer, public pos: number, readonly end: number, readonly what: string) {}

  fail(at: number, detail: string): never {
    throw new ImageError(this.file, at, 'corrupt', `${this.what}: ${detail}`);
  }

  /** varint as [lo, hi] 32-bit halves */
  varint(): [number, number] {
    const at = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(at, 'varint runs past the end of the entry');
      const b = this.buf[this.pos++];
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (b < 0x80) return [lo >>> 0, hi >>> 0];
    }
    return this.fail(at, 'varint longer than 10 bytes');
  }

  take(n: number, at: number): number {
    if (n > this.end - this.pos) this.fail(at, `field of ${n} bytes runs past the end of the entry`);
    const s = this.pos;
    this.pos += n;
    return s;
  }
}

const big64 = (lo: number, hi: number): bigint => (BigInt(hi) << 32n) | BigInt(lo);

function readScalar(c: Cursor, fd: FieldDesc, at: number): unknown {
  switch (fd.kind) {
    case 'uint32': return c.varint()[0];
    case 'int32': return c.varint()[0] | 0;
    case 'sint32': { const v = c.varint()[0]; return (v >>> 1) ^ -(v & 1); }
    case 'bool': { const [lo, hi] = c.varint(); return lo !== 0 || hi !== 0; }
    case 'enum': {
      const v = c.varint()[0] | 0;
      if (!fd.enumValues!.has(v)) c.fail(at, `field ${fd.name} (${fd.id}): ${v} is not a value of enum ${fd.enumName}`);
      return v;
    }
    case 'uint64': { const [lo, hi] = c.varint(); return big64(lo, hi); }
    case 'int64': { const [lo, hi] = c.varint(); return BigInt.asIntN(64, big64(lo, hi)); }
    case 'sint64': { const [lo, hi] = c.varint(); const u = big64(lo, hi); return (u >> 1n) ^ -(u & 1n); }
    case 'fixed32': return c.buf.readUInt32LE(c.take(4, at));
    case 'sfixed32': return c.buf.readInt32LE(c.take(4, at));
    case 'float': return c.buf.readFloatLE(c.take(4, at));
    case 'fixed64': return c.buf.readBigUInt64LE(c.take(8, at));
    case 'sfixed64': return c.buf.readBigInt64LE(c.take(8, at));
    case 'double': return c.buf.readDoubleLE(c.take(8, at));
    default: throw new Error(`not a scalar: ${fd.kind}`);
  }
}

function skip(c: Cursor, wire: number, at: number): void {
  switch (wire) {
    case 0: c.varint(); return;
    case 1: c.take(8, at); return;
    case 2: { const n = c.varint()[0]; c.take(n, at); return; }
    case 5: c.take(4, at); return;
    default: c.fail(at, `unsupported wire type ${wire}`);
  }
}

/**
 * Decode buf[start, end) as `type`, strictly. `what` names the message in errors (e.g. "core_entry").
 */
export function decodeMessage(file: string, buf: Buffer, start: number, end: number, type: MessageSchema): Decoded {
  const d = describe(type);
  const c = new Cursor(file, buf, start, end, d.name);
  const out: Decoded = {};
  while (c.pos < end) {
    const at = c.pos;
    const [tag, tagHi] = c.varint();
    const id = tag >>> 3;
    const wire = tag & 7;
    if (id === 0 || tagHi !== 0) c.fail(at, `invalid field tag ${tag}`);
    const fd = d.byId.get(id);
    if (!fd) {
      skip(c, wire, at);
      (out.$unknown ??= []).push({ id, wireType: wire, offset: at, raw: Buffer.from(buf.subarray(at, c.pos)) });
      continue;
    }
    if (wire === fd.wire) {
      let v: unknown;
      if (wire === 2) {
        const n = c.varint()[0];
        const s = c.take(n, at);
        if (fd.kind === 'message') v = decodeMessage(file, buf, s, s + n, fd.type!);
        else if (fd.kind === 'string') v = buf.toString('utf8', s, s + n);
        else v = Buffer.from(buf.subarray(s, s + n));
      } else {
        v = readScalar(c, fd, at);
      }
      if (fd.repeated) ((out[fd.name] as unknown[] | undefined) ?? (out[fd.name] = []) as unknown[]).push(v);
      else out[fd.name] = v;
    } else if (wire === 2 && fd.repeated && fd.wire !== 2) {
      // packed repeated scalars: accepted on input, never written
      const n = c.varint()[0];
      const s = c.take(n, at);
      const sub = new Cursor(file, buf, s, s + n, d.name);
      const arr = (out[fd.name] as unknown[] | undefined) ?? (out[fd.name] = []) as unknown[];
      while (sub.pos < sub.end) arr.push(readScalar(sub, fd, sub.pos));
    } else {
      c.fail(at, `field ${fd.name} (${fd.id}) has wire type ${wire}, expected ${fd.wire}`);
    }
  }
  for (const fd of d.required) {
    if (!(fd.name in out)) c.fail(start, `required field ${fd.name} (${fd.id}) is missing`);
  }
  return out;
}

/** Read every entry of an image strictly: magics, lengths, wire format, required fields. */
export function decodeImage(file: string, buf: Buffer, kind: ImageKind, type: MessageSchema): { entry: RawEntry; msg: Decoded }[] {
  return splitEntries(file, buf, kind).map((entry) => ({ entry, msg: decodeMessage(file, buf, entry.start, entry.end, type) }));
}

/** A decoded value made encodable by the encoders: bigint -> {low, high}; `$unknown` removed. */
function encodable(v: unknown): unknown {
  if (typeof v === 'bigint') {
    const u = BigInt.asUintN(64, v);
    return { low: Number(u & 0xffffffffn), high: Number(u >> 32n), unsigned: true };
  }
  if (Array.isArray(v)) return v.map(encodable);
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (k !== '$unknown') o[k] = encodable(x);
    return o;
  }
  return v;
}

/**
 * Encode a decoded message again (decode -> encode round trips). Unknown fields of the top level are
 * appended after the known ones, byte for byte; nested unknown fields are not re-emitted.
 */
export function encodeMessage(type: MessageSchema, msg: Decoded): Buffer {
  const known = Buffer.from(type.encode(encodable(msg) as object).finish());
  if (!msg.$unknown?.length) return known;
  return Buffer.concat([known, ...msg.$unknown.map((u) => u.raw)]);
}
