/**
 * Generic netlink: the controller (family lookup by name, family list) and typed `request` / `dump` on a
 * resolved family. Controller replies are parsed by attribute type, never by position.
 */
import { ENOENT } from '../sys/libc.js';
import { NETLINK_GENERIC, nlClose, nlRecv, nlSend, nlSocket } from '../sys/netlink.js';
import {
  attrString, decodeAttrs, decodeGenl, encodeGenl, encodeMessage, findAttr, NLM_F_REQUEST, NLMSG_ERROR, readNested,
  readString, readU16, readU32, type GenlHeader, type NlAttr, type NlMessage,
} from './codec.js';
import { NetlinkDecodeError } from './errors.js';
import { Conn, KernelSocket, type NetlinkSocket, type SocketOptions } from './transport.js';

export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_VERSION = 2;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_HDRSIZE = 4;
export const CTRL_ATTR_MAXATTR = 5;
export const CTRL_ATTR_OPS = 6;
export const CTRL_ATTR_MCAST_GROUPS = 7;
export const CTRL_ATTR_OP_ID = 1;
export const CTRL_ATTR_OP_FLAGS = 2;
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
export const CTRL_ATTR_MCAST_GRP_ID = 2;

export interface GenlOp { id: number; flags: number }
export interface GenlGroup { name: string; id: number }

export interface GenlFamily {
  id: number;
  name: string;
  version: number;
  hdrSize: number;
  maxAttr: number;
  ops: GenlOp[];
  groups: GenlGroup[];
  /** controller attributes this code does not interpret, kept */
  unknown: NlAttr[];
}

export interface GenlMessage {
  header: GenlHeader;
  /** the message's attributes (after the genl header), decoded one level */
  attrs: NlAttr[];
  /** the raw netlink message */
  message: NlMessage;
}

/** Decode a generic-netlink message: genl header + attributes. */
export function decodeGenlMessage(m: NlMessage): GenlMessage {
  const { header, attrs } = decodeGenl(m.payload);
  return { header, attrs: decodeAttrs(attrs, 20), message: m };
}

/** Parse a CTRL_CMD_NEWFAMILY message's attributes. */
export function decodeFamily(attrs: readonly NlAttr[]): GenlFamily {
  const f: GenlFamily = { id: -1, name: '', version: 0, hdrSize: 0, maxAttr: 0, ops: [], groups: [], unknown: [] };
  for (const a of attrs) {
    switch (a.type) {
      case CTRL_ATTR_FAMILY_ID: f.id = readU16(a); break;
      case CTRL_ATTR_FAMILY_NAME: f.name = readString(a); break;
      case CTRL_ATTR_VERSION: f.version = readU32(a); break;
      case CTRL_ATTR_HDRSIZE: f.hdrSize = readU32(a); break;
      case CTRL_ATTR_MAXATTR: f.maxAttr = readU32(a); break;
      case CTRL_ATTR_OPS:
        for (const op of readNested(a)) {
          const inner = readNested(op);
          const id = findAttr(inner, CTRL_ATTR_OP_ID);
          const fl = findAttr(inner, CTRL_ATTR_OP_FLAGS);
          if (id) f.ops.push({ id: readU32(id), flags: fl ? readU32(fl) : 0 });
        }
        break;
      case CTRL_ATTR_MCAST_GROUPS:
        for (const g of readNested(a)) {
          const inner = readNested(g);
          const name = findAttr(inner, CTRL_ATTR_MCAST_GRP_NAME);
          const id = findAttr(inner, CTRL_ATTR_MCAST_GRP_ID);
          if (name && id) f.groups.push({ name: readString(name), id: readU32(id) });
        }
        break;
      default: f.unknown.push(a);
    }
  }
  if (f.id < 0 || f.name === '') {
    throw new NetlinkDecodeError('corrupt', 'CTRL_CMD_NEWFAMILY', 20, 'family id or name attribute missing');
  }
  return f;
}

/** The message bytes of CTRL_CMD_GETFAMILY for a name (after the nlmsghdr). */
export function encodeGetFamily(name: string): Buffer {
  return encodeGenl(CTRL_CMD_GETFAMILY, 1, [attrString(CTRL_ATTR_FAMILY_NAME, name)]);
}

/**
 * Whether the kernel certainly has no generic-netlink family of this name: one CTRL_CMD_GETFAMILY on a bare
 * socket, true when the controller answers ENOENT. Anything else (the family, another error, a reply this
 * does not expect) is false: ask through GenlConn.family(), which says what it is. A probe for a family most
 * kernels lack (TASKDIAG) thus costs four system calls and none of the connection machinery (about 1 ms of a
 * command's start).
 */
export function familyMissing(name: string): boolean {
  const fd = nlSocket(NETLINK_GENERIC);
  try {
    nlSend(fd, encodeMessage({ type: GENL_ID_CTRL, flags: NLM_F_REQUEST, seq: 1, pid: 0 }, encodeGetFamily(name)));
    const buf = Buffer.allocUnsafe(512);
    const r = nlRecv(fd, buf, 0);
    // nlmsghdr (16 bytes: len, type, flags, seq, pid), then for NLMSG_ERROR the error as a negative errno
    return r.port === 0 && r.length >= 20 && buf.readUInt16LE(4) === NLMSG_ERROR && buf.readUInt32LE(8) === 1 &&
      buf.readInt32LE(16) === -ENOENT;
  } finally {
    nlClose(fd);
  }
}

/** A generic-netlink connection. */
export class GenlConn {
  readonly conn: Conn;
  private readonly families = new Map<string, GenlFamily>();

  constructor(sock: NetlinkSocket) {
    this.conn = new Conn(sock);
  }

  /** A kernel NETLINK_GENERIC socket. */
  static open(opts?: SocketOptions): GenlConn {
    return new GenlConn(new KernelSocket(NETLINK_GENERIC, opts));
  }

  close(): void { this.conn.close(); }

  /** Resolve a family by name (cached). Unknown name: NetlinkError ENOENT. */
  family(name: string): GenlFamily {
    const cached = this.families.get(name);
    if (cached) return cached;
    const msgs = this.conn.request({ type: GENL_ID_CTRL, payload: encodeGetFamily(name) }, `nlctrl getfamily ${name}`);
    for (const m of msgs) {
      const g = decodeGenlMessage(m);
      const f = decodeFamily(g.attrs);
      if (f.name === name) {
        this.families.set(name, f);
        return f;
      }
    }
    throw new NetlinkDecodeError('corrupt', 'CTRL_CMD_NEWFAMILY', 0, `no reply names family ${name}`);
  }

  /** Every family the kernel has (a controller dump). */
  listFamilies(): GenlFamily[] {
    const out: GenlFamily[] = [];
    for (const m of this.conn.dumpSync({ type: GENL_ID_CTRL, payload: encodeGenl(CTRL_CMD_GETFAMILY, 1, []) }, 'nlctrl dump families')) {
      out.push(decodeFamily(decodeGenlMessage(m).attrs));
    }
    return out;
  }

  /** A non-dump request to family `f`: the decoded reply messages. */
  request(f: GenlFamily, cmd: number, attrs: readonly Buffer[], op: string, flags = 0): GenlMessage[] {
    return this.conn.request({ type: f.id, flags, payload: encodeGenl(cmd, f.version, attrs) }, op).map(decodeGenlMessage);
  }

  /** A dump request to family `f`: an async iterator of decoded messages, ending at NLMSG_DONE. */
  async *dump(f: GenlFamily, cmd: number, attrs: readonly Buffer[], op: string): AsyncGenerator<GenlMessage, void, undefined> {
    for (const m of this.conn.dumpSync({ type: f.id, payload: encodeGenl(cmd, f.version, attrs) }, op)) {
      yield decodeGenlMessage(m);
    }
  }

  /** The same as dump, synchronous. */
  *dumpSync(f: GenlFamily, cmd: number, attrs: readonly Buffer[], op: string): Generator<GenlMessage, void, undefined> {
    for (const m of this.conn.dumpSync({ type: f.id, payload: encodeGenl(cmd, f.version, attrs) }, op)) {
      yield decodeGenlMessage(m);
    }
  }
}

