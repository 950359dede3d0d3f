/**
 * Netlink wire codec: pure functions over Buffer, no kernel access.
 *
 * Grammar (all integers host byte order = little endian on the platforms tdcollect supports):
 *
 *   datagram   := message*                                  (each message starts at a 4-byte boundary)
 *   message    := nlmsghdr payload pad                      nlmsghdr.len = 16 + |payload| (pad not counted)
 *   nlmsghdr   := len:u32 type:u16 flags:u16 seq:u32 pid:u32
 *   genl       := cmd:u8 version:u8 reserved:u16 attr*      (the payload of a generic-netlink message)
 *   attr       := len:u16 type:u16 value pad                len = 4 + |value|; pad to 4 (not counted)
 *                 type bit 15 = NLA_F_NESTED (value is attr*), bit 14 = NLA_F_NET_BYTEORDER
 *   NLMSG_ERROR payload := error:i32 request-nlmsghdr [request-payload unless NLM_F_CAPPED] [attr* if NLM_F_ACK_TLVS]
 *   NLMSG_DONE  payload := error:i32 [attr* if NLM_F_ACK_TLVS]   (error < 0: the dump failed with -error)
 *
 * Attribute type 0 is ordinary data (TASKDIAG's creds use it), never "unspecified". Unknown attributes are
 * returned like known ones: the caller decides, nothing is dropped here.
 */
import { NetlinkDecodeError, type ExtAck } from './errors.js';

export const NLMSG_ALIGNTO = 4;
export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const GENL_HDRLEN = 4;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP_FILTERED = 0x20;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
/** flags of an NLMSG_ERROR message */
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
/** message types below this are netlink control messages */
export const NLMSG_MIN_TYPE = 0x10;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = 0x3fff;

export const NLMSGERR_ATTR_MSG = 1;
export const NLMSGERR_ATTR_OFFS = 2;
export const NLMSGERR_ATTR_COOKIE = 3;
export const NLMSGERR_ATTR_POLICY = 4;
export const NLMSGERR_ATTR_MISS_TYPE = 5;
export const NLMSGERR_ATTR_MISS_NEST = 6;

export const align4 = (n: number): number => (n + 3) & ~3;

export interface NlMsgHdr {
  /** total length including the 16-byte header (not including trailing alignment padding) */
  len: number;
  type: number;
  flags: number;
  seq: number;
  /** port id: sender's on requests, requester's on kernel replies */
  pid: number;
}

export interface NlMessage {
  header: NlMsgHdr;
  /** bytes after the header, exactly len - 16 of them */
  payload: Buffer;
}

export interface NlAttr {
  /** type without the NESTED / NET_BYTEORDER bits */
  type: number;
  nested: boolean;
  netByteOrder: boolean;
  /** the value, exactly nla_len - 4 bytes */
  payload: Buffer;
}

export interface GenlHeader {
  cmd: number;
  version: number;
  reserved: number;
}

// ---------------------------------------------------------------------------------------------------------
// nlmsghdr

export function decodeHeader(buf: Buffer, off = 0): NlMsgHdr {
  if (buf.length - off < NLMSG_HDRLEN) {
    throw new NetlinkDecodeError('eof', 'nlmsghdr', off, `need ${NLMSG_HDRLEN} bytes, have ${buf.length - off}`);
  }
  return {
    len: buf.readUInt32LE(off),
    type: buf.readUInt16LE(off + 4),
    flags: buf.readUInt16LE(off + 6),
    seq: buf.readUInt32LE(off + 8),
    pid: buf.readUInt32LE(off + 12),
  };
}

export function writeHeader(buf: Buffer, off: number, h: NlMsgHdr): void {
  buf.writeUInt32LE(h.len >>> 0, off);
  buf.writeUInt16LE(h.type, off + 4);
  buf.writeUInt16LE(h.flags, off + 6);
  buf.writeUInt32LE(h.seq >>> 0, off + 8);
  buf.writeUInt32LE(h.pid >>> 0, off + 12);
}

/**
 * One message: header + payload, padded to 4. nlmsg_len = 16 + payload length, unless `len` overrides it
 * (tests reproduce clients that set their own length).
 */
export function encodeMessage(h: Omit<NlMsgHdr, 'len'> & { len?: number }, payload: Buffer): Buffer {
  const out = Buffer.alloc(align4(NLMSG_HDRLEN + payload.length));
  writeHeader(out, 0, { ...h, len: h.len ?? NLMSG_HDRLEN + payload.length });
  payload.copy(out, NLMSG_HDRLEN);
  return out;
}

/**
 * Split a datagram into messages. Throws NetlinkDecodeError: 'eof' when the datagram ends inside a header or
 * before nlmsg_len bytes, 'corrupt' when nlmsg_len < 16.
 */
export function decodeMessages(dgram: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off < dgram.length) {
    const h = decodeHeader(dgram, off);
    if (h.len < NLMSG_HDRLEN) {
      throw new NetlinkDecodeError('corrupt', 'nlmsghdr', off, `nlmsg_len ${h.len} is smaller than the header`);
    }
    if (h.len > dgram.length - off) {
      throw new NetlinkDecodeError('eof', 'nlmsghdr', off,
        `nlmsg_len ${h.len} runs past the end of the datagram (${dgram.length - off} bytes left)`);
    }
    out.push({ header: h, payload: dgram.subarray(off + NLMSG_HDRLEN, off + h.len) });
    off += align4(h.len);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// nlattr

/** Encode one attribute (header + value + zero padding). `lenDelta` adds to nla_len only (selftest quirk). */
export function encodeAttr(type: number, value: Buffer, opts: { nested?: boolean; lenDelta?: number } = {}): Buffer {
  const len = NLA_HDRLEN + value.length + (opts.lenDelta ?? 0);
  if (len > 0xffff) throw new RangeError(`attribute ${type} too long (${len} bytes)`);
  const out = Buffer.alloc(align4(Math.max(len, NLA_HDRLEN + value.length)));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE((type & NLA_TYPE_MASK) | (opts.nested ? NLA_F_NESTED : 0), 2);
  value.copy(out, NLA_HDRLEN);
  return out;
}

export function encodeNested(type: number, attrs: Buffer[]): Buffer {
  return encodeAttr(type, Buffer.concat(attrs), { nested: true });
}

export const attrU8 = (type: number, v: number): Buffer => encodeAttr(type, Buffer.from([v & 0xff]));
export function attrU16(type: number, v: number): Buffer {
  const b = Buffer.alloc(2); b.writeUInt16LE(v, 0); return encodeAttr(type, b);
}
export function attrU32(type: number, v: number): Buffer {
  const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0, 0); return encodeAttr(type, b);
}
/** A NUL-terminated string attribute (NLA_NUL_STRING / NLA_STRING as the kernel's own tools send it). */
export const attrString = (type: number, s: string): Buffer => encodeAttr(type, Buffer.from(`${s}\0`, 'utf8'));

/**
 * Split an attribute stream. 'eof' when the stream ends inside a header or before nla_len bytes,
 * 'corrupt' when nla_len < 4. `base` is added to reported offsets (position of buf in its message).
 */
export function decodeAttrs(buf: Buffer, base = 0): NlAttr[] {
  const out: NlAttr[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < NLA_HDRLEN) {
      throw new NetlinkDecodeError('eof', 'nlattr', base + off, `need ${NLA_HDRLEN} bytes, have ${buf.length - off}`);
    }
    const len = buf.readUInt16LE(off);
    const rawType = buf.readUInt16LE(off + 2);
    if (len < NLA_HDRLEN) {
      throw new NetlinkDecodeError('corrupt', 'nlattr', base + off, `nla_len ${len} is smaller than the header`);
    }
    if (len > buf.length - off) {
      throw new NetlinkDecodeError('eof', 'nlattr', base + off,
        `nla_len ${len} runs past the end (${buf.length - off} bytes left)`);
    }
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      netByteOrder: (rawType & NLA_F_NET_BYTEORDER) !== 0,
      payload: buf.subarray(off + NLA_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** The first attribute of a type, or undefined. */
export function findAttr(attrs: readonly NlAttr[], type: number): NlAttr | undefined {
  for (const a of attrs) if (a.type === type) return a;
  return undefined;
}

function need(a: NlAttr, n: number, what: string): void {
  if (a.payload.length < n) {
    throw new NetlinkDecodeError('eof', what, 0, `attribute ${a.type}: need ${n} bytes, have ${a.payload.length}`);
  }
}
export function readU8(a: NlAttr): number { need(a, 1, 'u8 attribute'); return a.payload[0]; }
export function readU16(a: NlAttr): number { need(a, 2, 'u16 attribute'); return a.payload.readUInt16LE(0); }
export function readU32(a: NlAttr): number { need(a, 4, 'u32 attribute'); return a.payload.readUInt32LE(0); }
/** A string attribute: up to the first NUL (or the whole value when there is none). */
export function readString(a: NlAttr): string {
  const z = a.payload.indexOf(0);
  return a.payload.toString('utf8', 0, z < 0 ? a.payload.length : z);
}
export function readNested(a: NlAttr): NlAttr[] { return decodeAttrs(a.payload); }

/** A fixed-size NUL-padded char array (comm). */
export function readCString(buf: Buffer, off: number, size: number): string {
  const end = off + size;
  let z = off;
  while (z < end && buf[z] !== 0) z++;
  return buf.toString('latin1', off, z);
}

// ---------------------------------------------------------------------------------------------------------
// genlmsghdr

export function encodeGenl(cmd: number, version: number, attrs: readonly Buffer[]): Buffer {
  const h = Buffer.alloc(GENL_HDRLEN);
  h[0] = cmd;
  h[1] = version;
  return Buffer.concat([h, ...attrs]);
}

export function decodeGenl(payload: Buffer): { header: GenlHeader; attrs: Buffer } {
  if (payload.length < GENL_HDRLEN) {
    throw new NetlinkDecodeError('eof', 'genlmsghdr', NLMSG_HDRLEN, `need ${GENL_HDRLEN} bytes, have ${payload.length}`);
  }
  return {
    header: { cmd: payload[0], version: payload[1], reserved: payload.readUInt16LE(2) },
    attrs: payload.subarray(GENL_HDRLEN),
  };
}

// ---------------------------------------------------------------------------------------------------------
// NLMSG_ERROR and NLMSG_DONE

export interface NlError {
  /** 0 for an acknowledgement, else a negative errno */
  error: number;
  /** the header of the request this answers, when present */
  request?: NlMsgHdr;
  extAck?: ExtAck;
}

export function decodeExtAck(buf: Buffer, base: number): ExtAck {
  const ack: ExtAck = { other: [] };
  for (const a of decodeAttrs(buf, base)) {
    switch (a.type) {
      case NLMSGERR_ATTR_MSG: ack.msg = readString(a); break;
      case NLMSGERR_ATTR_OFFS: ack.offset = readU32(a); break;
      case NLMSGERR_ATTR_MISS_TYPE: ack.missingType = readU32(a); break;
      case NLMSGERR_ATTR_MISS_NEST: ack.missingNest = readU32(a); break;
      case NLMSGERR_ATTR_COOKIE: ack.cookie = Buffer.from(a.payload); break;
      default: ack.other.push({ type: a.type, payload: Buffer.from(a.payload) });
    }
  }
  return ack;
}

/** Decode the payload of an NLMSG_ERROR message (flags from its header: CAPPED, ACK_TLVS). */
export function decodeError(m: NlMessage): NlError {
  const p = m.payload;
  if (p.length < 4) throw new NetlinkDecodeError('eof', 'nlmsgerr', NLMSG_HDRLEN, `need 4 bytes, have ${p.length}`);
  const error = p.readInt32LE(0);
  if (error > 0) throw new NetlinkDecodeError('corrupt', 'nlmsgerr', NLMSG_HDRLEN, `positive error ${error}`);
  const out: NlError = { error };
  if (p.length < 4 + NLMSG_HDRLEN) return out; // old kernels / minimal acks may stop after the errno
  const req = decodeHeader(p, 4);
  out.request = req;
  let off = 4 + NLMSG_HDRLEN;
  if (!(m.header.flags & NLM_F_CAPPED)) {
    if (req.len < NLMSG_HDRLEN) {
      throw new NetlinkDecodeError('corrupt', 'nlmsgerr', NLMSG_HDRLEN + 4, `echoed nlmsg_len ${req.len}`);
    }
    // the kernel echoes the request payload in full
    const end = 4 + align4(req.len);
    if (4 + req.len > p.length) {
      throw new NetlinkDecodeError('eof', 'nlmsgerr', NLMSG_HDRLEN + p.length,
        `echoed request of ${req.len} bytes does not fit in ${p.length - 4}`);
    }
    off = Math.min(end, p.length);
  }
  if (m.header.flags & NLM_F_ACK_TLVS) out.extAck = decodeExtAck(p.subarray(off), NLMSG_HDRLEN + off);
  return out;
}

/** Decode the payload of an NLMSG_DONE message: an int (negative = the dump failed) and optional TLVs. */
export function decodeDone(m: NlMessage): NlError {
  const p = m.payload;
  if (p.length < 4) throw new NetlinkDecodeError('eof', 'NLMSG_DONE', NLMSG_HDRLEN, `need 4 bytes, have ${p.length}`);
  const error = p.readInt32LE(0);
  const out: NlError = { error: error > 0 ? 0 : error };
  if (m.header.flags & NLM_F_ACK_TLVS) out.extAck = decodeExtAck(p.subarray(4), NLMSG_HDRLEN + 4);
  return out;
}
