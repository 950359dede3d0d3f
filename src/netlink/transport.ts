/**
 * Netlink transport: a socket (the kernel's, or a scripted fake for tests) and a connection that sends one
 * request and validates what comes back (sequence numbers, port ids, truncation, NLMSG_ERROR / NLMSG_DONE).
 *
 * Receiving is blocking (synchronous koffi calls on the calling thread), bounded by SO_RCVTIMEO so a silent
 * kernel cannot hang the process. Each datagram is copied out of the receive buffer, so messages handed to
 * callers stay valid.
 */
import {
  MSG_PEEK, MSG_TRUNC, NETLINK_CAP_ACK, NETLINK_EXT_ACK, SOL_NETLINK, SOL_SOCKET, SO_RCVBUF,
  nlBind, nlClose, nlGetPort, nlRecv, nlSend, nlSocket, setRecvTimeout, setsockoptInt,
} from '../sys/netlink.js';
import { SysError } from '../sys/libc.js';
import {
  NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR,
  NLM_F_MULTI, NLM_F_REQUEST, decodeDone, decodeError, decodeMessages, encodeMessage, type NlMessage,
} from './codec.js';
import { NetlinkError, NetlinkProtocolError } from './errors.js';

/** One datagram socket talking to the kernel. */
export interface NetlinkSocket {
  /** our port id (nl_pid) */
  readonly port: number;
  send(dgram: Buffer): void;
  /** Block for the next datagram; returns a buffer the caller owns. */
  recv(): Buffer;
  close(): void;
  /** system calls issued on this socket so far */
  readonly syscalls: number;
}

export interface SocketOptions {
  /** receive buffer size; a datagram larger than this is an error unless `peek` is set (default 64 KiB) */
  bufferSize?: number;
  /** peek at each datagram's size first (MSG_PEEK|MSG_TRUNC) and grow the buffer: never truncates, 2 recvs */
  peek?: boolean;
  /** SO_RCVTIMEO in ms (default 30 s) */
  timeoutMs?: number;
  /** SO_RCVBUF (default: the kernel's) */
  socketRcvBuf?: number;
}

/** An AF_NETLINK socket bound to a kernel-assigned port, with NETLINK_EXT_ACK and NETLINK_CAP_ACK set. */
export class KernelSocket implements NetlinkSocket {
  readonly port: number;
  readonly protocol: number;
  private fd: number;
  private buf: Buffer;
  private readonly peek: boolean;
  private count = 0;
  /** whether the kernel accepted NETLINK_EXT_ACK */
  readonly extAck: boolean;

  constructor(protocol: number, opts: SocketOptions = {}) {
    this.protocol = protocol;
    this.buf = Buffer.alloc(opts.bufferSize ?? 65536);
    this.peek = opts.peek ?? false;
    this.fd = nlSocket(protocol);
    this.count++;
    try {
      let ext = true;
      try {
        setsockoptInt(this.fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
      } catch (e) {
        if (!(e instanceof SysError) || e.code !== 'ENOPROTOOPT') throw e;
        ext = false;
      }
      this.count++;
      try {
        setsockoptInt(this.fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
      } catch (e) {
        if (!(e instanceof SysError) || e.code !== 'ENOPROTOOPT') throw e;
      }
      this.count++;
      this.extAck = ext;
      if (opts.socketRcvBuf !== undefined) { setsockoptInt(this.fd, SOL_SOCKET, SO_RCVBUF, opts.socketRcvBuf); this.count++; }
      setRecvTimeout(this.fd, opts.timeoutMs ?? 30_000);
      this.count++;
      nlBind(this.fd);
      this.count++;
      this.port = nlGetPort(this.fd);
      this.count++;
    } catch (e) {
      nlClose(this.fd);
      this.fd = -1;
      throw e;
    }
  }

  get syscalls(): number { return this.count; }

  private live(op: string): number {
    if (this.fd < 0) throw new NetlinkProtocolError('closed', op, 'socket is closed');
    return this.fd;
  }

  send(dgram: Buffer): void {
    const fd = this.live('send');
    this.count++;
    const n = nlSend(fd, dgram);
    if (n !== dgram.length) throw new NetlinkProtocolError('truncated', 'send', `sent ${n} of ${dgram.length} bytes`);
  }

  recv(): Buffer {
    const fd = this.live('recv');
    for (;;) {
      if (this.peek) {
        this.count++;
        const p = nlRecv(fd, this.buf, MSG_PEEK | MSG_TRUNC);
        if (p.length > this.buf.length) this.buf = Buffer.alloc(align(p.length, 4096));
      }
      this.count++;
      const r = nlRecv(fd, this.buf, MSG_TRUNC);
      if (r.length > this.buf.length) {
        throw new NetlinkProtocolError('truncated', 'recv',
          `datagram of ${r.length} bytes truncated to the ${this.buf.length}-byte buffer`);
      }
      if (r.port !== 0) continue; // not from the kernel: ignore
      return Buffer.from(this.buf.subarray(0, r.length));
    }
  }

  close(): void {
    if (this.fd >= 0) {
      nlClose(this.fd);
      this.count++;
      this.fd = -1;
    }
  }
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

export interface ConnStats {
  /** requests sent */
  requests: number;
  /** datagrams received (each is one kernel crossing that brought data back) */
  datagrams: number;
  /** messages received */
  messages: number;
  /** messages of an earlier, abandoned request that were skipped */
  stale: number;
  /** dumps the kernel flagged NLM_F_DUMP_INTR (changed while being dumped) */
  interrupted: number;
}

export interface RequestInit {
  type: number;
  /** added to NLM_F_REQUEST */
  flags?: number;
  payload: Buffer;
  /** override nlmsg_len (tests of quirky clients) */
  len?: number;
}

/**
 * A netlink connection: numbered requests over one socket. `request` returns the reply messages of a
 * non-dump request; `dump` iterates the messages of a dump until NLMSG_DONE.
 */
export class Conn {
  readonly sock: NetlinkSocket;
  private seq: number;
  private busy = false;
  readonly stats: ConnStats = { requests: 0, datagrams: 0, messages: 0, stale: 0, interrupted: 0 };

  constructor(sock: NetlinkSocket, firstSeq = 1) {
    this.sock = sock;
    this.seq = firstSeq >>> 0;
  }

  get port(): number { return this.sock.port; }

  close(): void { this.sock.close(); }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    if (this.seq === 0) this.seq = 1;
    return this.seq;
  }

  /** Send one request; returns its sequence number. */
  send(req: RequestInit): number {
    if (this.busy) throw new NetlinkProtocolError('unexpected', 'send', 'a dump is still being read on this connection');
    const seq = this.nextSeq();
    const msg = encodeMessage(
      { type: req.type, flags: NLM_F_REQUEST | (req.flags ?? 0), seq, pid: this.sock.port, ...(req.len !== undefined ? { len: req.len } : {}) },
      req.payload);
    this.sock.send(msg);
    this.stats.requests++;
    return seq;
  }

  /** Next datagram's messages that belong to `seq` (stale ones skipped; others are a protocol error). */
  private receive(seq: number, op: string): NlMessage[] {
    for (;;) {
      const dgram = this.sock.recv();
      this.stats.datagrams++;
      const all = decodeMessages(dgram);
      const mine: NlMessage[] = [];
      for (const m of all) {
        this.stats.messages++;
        if (m.header.seq !== seq) {
          // a reply to an earlier request that was abandoned: skip it
          if (isOlder(m.header.seq, seq)) { this.stats.stale++; continue; }
          throw new NetlinkProtocolError('seq', op, `reply has sequence number ${m.header.seq}, expected ${seq}`);
        }
        if (m.header.pid !== this.sock.port && m.header.pid !== 0) {
          throw new NetlinkProtocolError('port', op, `reply is addressed to port ${m.header.pid}, ours is ${this.sock.port}`);
        }
        mine.push(m);
      }
      if (mine.length || all.length === 0) return mine;
    }
  }

  /**
   * A non-dump request: returns the data messages of the reply. Ends at the first datagram holding a reply
   * without NLM_F_MULTI, an NLMSG_ERROR (error 0 = ack), or NLMSG_DONE. A negative errno throws NetlinkError.
   */
  request(req: RequestInit, op: string): NlMessage[] {
    const seq = this.send(req);
    const wantAck = ((req.flags ?? 0) & NLM_F_ACK) !== 0;
    const out: NlMessage[] = [];
    for (;;) {
      let done = false;
      for (const m of this.receive(seq, op)) {
        const t = m.header.type;
        if (t === NLMSG_ERROR) {
          const e = decodeError(m);
          if (e.error < 0) throw new NetlinkError(op, -e.error, e.extAck);
          done = true;
        } else if (t === NLMSG_DONE) {
          const e = decodeDone(m);
          if (e.error < 0) throw new NetlinkError(op, -e.error, e.extAck);
          done = true;
        } else if (t === NLMSG_NOOP) {
          continue;
        } else if (t === NLMSG_OVERRUN) {
          throw new NetlinkProtocolError('overrun', op, 'the kernel reported NLMSG_OVERRUN');
        } else {
          out.push(m);
          if (!(m.header.flags & NLM_F_MULTI) && !wantAck) done = true;
        }
      }
      if (done) return out;
    }
  }

  /**
   * A dump: NLM_F_REQUEST|NLM_F_DUMP, then every data message until NLMSG_DONE (whose negative int payload is
   * the dump's error, as in TASKDIAG v1) or NLMSG_ERROR. Data messages are accepted with or without
   * NLM_F_MULTI (v1 sends flags 0). Leaving the loop early reads the rest of the dump so the connection stays
   * usable.
   */
  *dumpSync(req: RequestInit, op: string): Generator<NlMessage, void, undefined> {
    const seq = this.send({ ...req, flags: (req.flags ?? 0) | NLM_F_DUMP });
    this.busy = true;
    let finished = false;
    try {
      for (;;) {
        for (const m of this.receive(seq, op)) {
          const t = m.header.type;
          if (t === NLMSG_DONE) {
            finished = true;
            const e = decodeDone(m);
            if (m.header.flags & NLM_F_DUMP_INTR) this.stats.interrupted++;
            if (e.error < 0) throw new NetlinkError(op, -e.error, e.extAck);
            return;
          }
          if (t === NLMSG_ERROR) {
            finished = true;
            const e = decodeError(m);
            if (e.error < 0) throw new NetlinkError(op, -e.error, e.extAck);
            return;
          }
          if (t === NLMSG_NOOP) continue;
          if (t === NLMSG_OVERRUN) {
            finished = true;
            throw new NetlinkProtocolError('overrun', op, 'the kernel reported NLMSG_OVERRUN');
          }
          if (m.header.flags & NLM_F_DUMP_INTR) this.stats.interrupted++;
          yield m;
        }
      }
    } finally {
      this.busy = false;
      if (!finished) this.drain(seq, op);
    }
  }

  /** The same as dumpSync, as an async iterator (`for await`); return() drains the dump. */
  async *dump(req: RequestInit, op: string): AsyncGenerator<NlMessage, void, undefined> {
    yield* this.dumpSync(req, op);
  }

  /** Read and discard the rest of dump `seq`. */
  private drain(seq: number, op: string): void {
    for (;;) {
      let msgs: NlMessage[];
      try {
        msgs = this.receive(seq, op);
      } catch {
        return; // the socket is unusable or closed; the caller is already leaving
      }
      for (const m of msgs) {
        if (m.header.type === NLMSG_DONE || m.header.type === NLMSG_ERROR || m.header.type === NLMSG_OVERRUN) return;
      }
    }
  }
}

/** Whether sequence number a was issued before b (mod 2^32, within half the range). */
function isOlder(a: number, b: number): boolean {
  const d = (b - a) >>> 0;
  return d !== 0 && d < 0x80000000;
}

export { NLMSG_HDRLEN };
