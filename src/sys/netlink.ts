/**
 * AF_NETLINK sockets through koffi: socket, bind, getsockname, setsockopt, sendto, recvfrom, close.
 * Every call is counted (see `netlinkSyscalls`) so sources can report the system calls they issued.
 * Failures throw SysError (errno code and name, the call).
 */
import { libc, koffi, SysError, EINTR } from './libc.js';

export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_SNDBUF = 7;
export const SO_RCVTIMEO = 20; // struct timeval (x86_64: two longs)
export const SOL_NETLINK = 270;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;
export const MSG_PEEK = 0x2;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;

/** Netlink protocols used by tdcollect. */
export const NETLINK_SOCK_DIAG = 4;
export const NETLINK_GENERIC = 16;

/** sizeof(struct sockaddr_nl): u16 nl_family, u16 nl_pad, u32 nl_pid, u32 nl_groups. */
export const SOCKADDR_NL_SIZE = 12;

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
  getsockname: libc.func('int getsockname(int fd, void *addr, _Inout_ uint32_t *len)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
  sendto: libc.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)'),
  recvfrom: libc.func('intptr_t recvfrom(int fd, void *buf, size_t len, int flags, void *addr, _Inout_ uint32_t *alen)'),
  close: libc.func('int close(int fd)'),
};

let calls = 0;
/** Number of netlink system calls issued by this process so far (monotonic). */
export function netlinkSyscalls(): number {
  return calls;
}

function fail(syscall: string): never {
  throw new SysError(syscall, koffi.errno());
}

/** socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, protocol) */
export function nlSocket(protocol: number): number {
  calls++;
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol) as number;
  if (fd < 0) fail('socket');
  return fd;
}

function sockaddrNl(pid: number, groups: number): Buffer {
  const a = Buffer.alloc(SOCKADDR_NL_SIZE);
  a.writeUInt16LE(AF_NETLINK, 0);
  a.writeUInt32LE(pid >>> 0, 4);
  a.writeUInt32LE(groups >>> 0, 8);
  return a;
}

/** bind with port 0 (kernel-assigned) and no groups. */
export function nlBind(fd: number, pid = 0, groups = 0): void {
  calls++;
  if ((c.bind(fd, sockaddrNl(pid, groups), SOCKADDR_NL_SIZE) as number) < 0) fail('bind');
}

/** The port id the kernel assigned (getsockname → nl_pid). */
export function nlGetPort(fd: number): number {
  const a = Buffer.alloc(SOCKADDR_NL_SIZE);
  const len = [SOCKADDR_NL_SIZE];
  calls++;
  if ((c.getsockname(fd, a, len) as number) < 0) fail('getsockname');
  if (a.readUInt16LE(0) !== AF_NETLINK) throw new SysError('getsockname', 0, undefined, 'not an AF_NETLINK socket');
  return a.readUInt32LE(4);
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value, 0);
  calls++;
  if ((c.setsockopt(fd, level, name, v, 4) as number) < 0) fail('setsockopt');
}

/** SO_RCVTIMEO: a blocking recv returns EAGAIN after `ms` instead of hanging forever. */
export function setRecvTimeout(fd: number, ms: number): void {
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  calls++;
  if ((c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16) as number) < 0) fail('setsockopt');
}

const KERNEL_ADDR = sockaddrNl(0, 0);

/** sendto the kernel (port 0). Returns the bytes sent. */
export function nlSend(fd: number, buf: Buffer): number {
  for (;;) {
    calls++;
    const n = Number(c.sendto(fd, buf, buf.length, 0, KERNEL_ADDR, SOCKADDR_NL_SIZE));
    if (n >= 0) return n;
    const e = koffi.errno();
    if (e === EINTR) continue;
    throw new SysError('sendto', e);
  }
}

export interface RecvResult {
  /** the real length of the datagram (may exceed the buffer when truncated) */
  length: number;
  /** the sender's port id (0 = the kernel) */
  port: number;
}

const addrBuf = Buffer.alloc(SOCKADDR_NL_SIZE);

/**
 * recvfrom into buf. `flags` usually includes MSG_TRUNC so the datagram's real length is returned even if it
 * did not fit (the caller compares it with buf.length). Blocks (up to SO_RCVTIMEO).
 */
export function nlRecv(fd: number, buf: Buffer, flags: number): RecvResult {
  for (;;) {
    const alen = [SOCKADDR_NL_SIZE];
    calls++;
    const n = Number(c.recvfrom(fd, buf, buf.length, flags, addrBuf, alen));
    if (n >= 0) return { length: n, port: addrBuf.readUInt32LE(4) };
    const e = koffi.errno();
    if (e === EINTR) continue;
    throw new SysError('recvfrom', e);
  }
}

export function nlClose(fd: number): void {
  calls++;
  c.close(fd);
}
