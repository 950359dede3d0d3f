/**
 * A scripted netlink socket for unit tests: records what the client sends and answers each request with the
 * datagrams a handler returns (or a fixed queue). An empty queue behaves like SO_RCVTIMEO expiring: recv()
 * throws SysError EAGAIN, so a test can never hang.
 */
import type { NetlinkSocket } from '../../src/netlink/transport.js';
import { SysError } from '../../src/sys/libc.js';

export type Handler = (request: Buffer, sock: FakeSocket) => Buffer[];

export class FakeSocket implements NetlinkSocket {
  readonly port: number;
  readonly sent: Buffer[] = [];
  readonly queue: Buffer[] = [];
  closed = false;
  syscalls = 0;
  constructor(private readonly handler?: Handler, port = 4242) {
    this.port = port;
  }
  send(dgram: Buffer): void {
    this.syscalls++;
    this.sent.push(Buffer.from(dgram));
    if (this.handler) this.queue.push(...this.handler(dgram, this));
  }
  recv(): Buffer {
    this.syscalls++;
    const d = this.queue.shift();
    if (!d) throw new SysError('recvfrom', 11 /* EAGAIN: the receive timeout */);
    return d;
  }
  close(): void {
    this.syscalls++;
    this.closed = true;
  }
}

/** Bytes from a hex string with spaces, newlines and // comments. */
export function hex(s: string): Buffer {
  const clean = s.split('\n').map((l) => l.replace(/\/\/.*$/, '')).join(' ').replace(/\s+/g, '');
  if (clean.length % 2) throw new Error(`odd hex length ${clean.length}`);
  return Buffer.from(clean, 'hex');
}

/** A little-endian u32 as 4 hex bytes. */
export const u32 = (n: number): string => {
  const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0, 0); return b.toString('hex');
};

export { prng } from './random.js';
