/**
 * NETLINK_SOCK_DIAG inet sockets (include/uapi/linux/inet_diag.h): a dump of TCP (or UDP) sockets with
 * inet_diag_req_v2. Used to prove the transport on a second netlink protocol and by `tdcollect check`.
 *
 *   inet_diag_req_v2 (56 bytes): family u8 @0, protocol u8 @1, ext u8 @2, pad u8 @3, states u32 @4,
 *                                inet_diag_sockid @8
 *   inet_diag_sockid (48 bytes): sport be16 @0, dport be16 @2, src be32[4] @4, dst be32[4] @20, if u32 @36,
 *                                cookie u32[2] @40
 *   inet_diag_msg    (72 bytes): family u8 @0, state u8 @1, timer u8 @2, retrans u8 @3, sockid @4,
 *                                expires u32 @52, rqueue u32 @56, wqueue u32 @60, uid u32 @64, inode u32 @68
 *   attributes follow the message (INET_DIAG_*), kept undecoded.
 */
import { NETLINK_SOCK_DIAG } from '../sys/netlink.js';
import { decodeAttrs, type NlAttr, type NlMessage } from './codec.js';
import { NetlinkDecodeError, NetlinkProtocolError } from './errors.js';
import { Conn, KernelSocket, type SocketOptions } from './transport.js';

export const SOCK_DIAG_BY_FAMILY = 20;
export const INET_DIAG_REQ_V2_SIZE = 56;
export const INET_DIAG_MSG_SIZE = 72;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
/** TCP states (include/net/tcp_states.h) */
export const TCP_ESTABLISHED = 1;
export const TCP_LISTEN = 10;

export interface InetDiagReq {
  family: number;
  protocol: number;
  /** INET_DIAG_* extensions wanted (bit n-1 for attribute n) */
  ext?: number;
  /** bit mask of TCP states (1 << state) */
  states: number;
}

export function encodeInetDiagReq(r: InetDiagReq): Buffer {
  const b = Buffer.alloc(INET_DIAG_REQ_V2_SIZE);
  b[0] = r.family;
  b[1] = r.protocol;
  b[2] = r.ext ?? 0;
  b.writeUInt32LE(r.states >>> 0, 4);
  // sockid left zero: no filtering on addresses, cookie 0 (INET_DIAG_NOCOOKIE not needed for dumps)
  return b;
}

export interface InetDiagMsg {
  family: number;
  state: number;
  timer: number;
  retrans: number;
  sport: number;
  dport: number;
  /** the address words as raw bytes (4 for IPv4, 16 for IPv6) */
  src: Buffer;
  dst: Buffer;
  ifindex: number;
  cookie: [number, number];
  expires: number;
  rqueue: number;
  wqueue: number;
  uid: number;
  inode: number;
  attrs: NlAttr[];
}

export function decodeInetDiagMsg(m: NlMessage): InetDiagMsg {
  const p = m.payload;
  if (p.length < INET_DIAG_MSG_SIZE) {
    throw new NetlinkDecodeError('eof', 'inet_diag_msg', 16, `need ${INET_DIAG_MSG_SIZE} bytes, have ${p.length}`);
  }
  const family = p[0];
  const alen = family === AF_INET6 ? 16 : 4;
  return {
    family,
    state: p[1],
    timer: p[2],
    retrans: p[3],
    sport: p.readUInt16BE(4),
    dport: p.readUInt16BE(6),
    src: Buffer.from(p.subarray(8, 8 + alen)),
    dst: Buffer.from(p.subarray(24, 24 + alen)),
    ifindex: p.readUInt32LE(40),
    cookie: [p.readUInt32LE(44), p.readUInt32LE(48)],
    expires: p.readUInt32LE(52),
    rqueue: p.readUInt32LE(56),
    wqueue: p.readUInt32LE(60),
    uid: p.readUInt32LE(64),
    inode: p.readUInt32LE(68),
    attrs: decodeAttrs(p.subarray(INET_DIAG_MSG_SIZE), 16 + INET_DIAG_MSG_SIZE),
  };
}

/** Dump inet sockets of one family/protocol in the given states. */
export function dumpInetSockets(req: InetDiagReq, opts?: SocketOptions): { sockets: InetDiagMsg[]; stats: Conn['stats'] } {
  const conn = new Conn(new KernelSocket(NETLINK_SOCK_DIAG, opts));
  try {
    const out: InetDiagMsg[] = [];
    for (const m of conn.dumpSync({ type: SOCK_DIAG_BY_FAMILY, payload: encodeInetDiagReq(req) }, 'sock_diag inet dump')) {
      if (m.header.type !== SOCK_DIAG_BY_FAMILY) {
        throw new NetlinkProtocolError('unexpected', 'sock_diag inet dump', `message type ${m.header.type}`);
      }
      out.push(decodeInetDiagMsg(m));
    }
    return { sockets: out, stats: conn.stats };
  } finally {
    conn.close();
  }
}
