/**
 * get_robust_list(2) for another thread, through libc's syscall(): the robust futex list head and
 * length CRIU records as futex_rla / futex_rla_len. The kernel requires PTRACE_MODE_READ on the target
 * (CAP_SYS_PTRACE for other users' tasks). glibc exposes no wrapper, so the raw syscall is used.
 */
import { libc, lastErrno } from './libc.js';

/** x86_64 syscall number of get_robust_list */
export const NR_GET_ROBUST_LIST = 274;

// glibc's syscall() is variadic, but it is written in assembly and only moves integer registers,
// so a fixed integer/pointer prototype is safe on x86_64 and much cheaper to call through koffi.
const syscall4 = libc.func('long syscall(long nr, int pid, _Out_ void *head, _Out_ void *len)');

const head = Buffer.alloc(8);
const len = Buffer.alloc(8);

export interface RobustList {
  /** user address of the robust_list_head (0 when the thread set none, e.g. after exit) */
  head: number;
  len: number;
}

/**
 * The robust list of thread `tid`, or the errno (a negative number) when the kernel refused
 * (ESRCH: gone, EPERM: no PTRACE_MODE_READ). Never throws, allocates nothing on success.
 */
export function getRobustList(tid: number, out: RobustList): number {
  const r = syscall4(NR_GET_ROBUST_LIST, tid, head, len) as number;
  if (r < 0) return -lastErrno();
  // user-space addresses are below 2^47, so a double holds them exactly
  out.head = head.readUInt32LE(0) + head.readUInt32LE(4) * 0x1_0000_0000;
  out.len = len.readUInt32LE(0) + len.readUInt32LE(4) * 0x1_0000_0000;
  return 0;
}
