/**
 * ptrace(2), waitpid(2) and kill(2) through koffi, for the ptrace freezer.
 *
 * All calls are synchronous koffi calls on the calling JS thread. ptrace ties a tracee to the *thread* that
 * attached it, so every call for one frozen tree must come from the same thread (Node's main thread when
 * collect() runs there). glibc's ptrace() is variadic; it is declared as such where the ABI needs it, and
 * with fixed integer arguments on x86-64 and aarch64, where both pass them alike (see ptraceI).
 *
 * These wrappers return -errno instead of throwing where a failure is an ordinary outcome for a freezer
 * (ESRCH: the task is gone; EPERM: zombie, already traced, or not permitted). The caller decides.
 */
import { libc, lastErrno, VARIADIC_AS_FIXED } from './libc.js';

// <linux/ptrace.h>
export const PTRACE_CONT = 7;
export const PTRACE_DETACH = 17;
export const PTRACE_GETEVENTMSG = 0x4201;
export const PTRACE_GETSIGINFO = 0x4202;
export const PTRACE_SEIZE = 0x4206;
export const PTRACE_INTERRUPT = 0x4207;
export const PTRACE_LISTEN = 0x4208;
export const PTRACE_EVENT_CLONE = 3;
export const PTRACE_EVENT_STOP = 128;
export const PTRACE_O_TRACECLONE = 0x8;

// <sys/wait.h>
export const WNOHANG = 1;
export const __WALL = 0x40000000;

// signals (x86-64 / generic numbering used by Linux on every arch tdcollect supports)
export const SIGHUP = 1;
export const SIGINT = 2;
export const SIGKILL = 9;
export const SIGTERM = 15;
export const SIGCHLD = 17;
export const SIGCONT = 18;
export const SIGSTOP = 19;
export const SIGTSTP = 20;
export const SIGTTIN = 21;
export const SIGTTOU = 22;
export const SIGTRAP = 5;

const ptraceV = libc.func('long ptrace(int request, ...)');
const ptraceBuf = libc.func('long ptrace(int request, ...)');
// the hot requests (seize, interrupt, detach, cont: integer arguments only) through a fixed-arity declaration
const ptraceI = VARIADIC_AS_FIXED ? libc.func('long ptrace(int request, int pid, intptr_t addr, intptr_t data)') : undefined;
const waitpidF = libc.func('int waitpid(int pid, void *status, int options)');
const killF = libc.func('int kill(int pid, int sig)');
const tgkillF = libc.func('int tgkill(int tgid, int tid, int sig)');

/** ptrace(request, pid, addr, data) with integer addr/data. Returns the result, or -errno. */
export function ptrace(request: number, pid: number, addr = 0, data = 0): number {
  const r = ptraceI ? Number(ptraceI(request, pid, addr, data)) : Number(ptraceV(request, 'int', pid, 'intptr_t', addr, 'intptr_t', data));
  return r < 0 ? -lastErrno() : r;
}

export const seize = (tid: number, options = 0): number => ptrace(PTRACE_SEIZE, tid, 0, options);
export const interrupt = (tid: number): number => ptrace(PTRACE_INTERRUPT, tid);
export const detach = (tid: number, sig = 0): number => ptrace(PTRACE_DETACH, tid, 0, sig);
export const cont = (tid: number, sig = 0): number => ptrace(PTRACE_CONT, tid, 0, sig);

/** siginfo_t is 128 bytes; si_signo at 0, si_errno at 4, si_code at 8. */
const siginfo = Buffer.alloc(128);

/** PTRACE_GETSIGINFO: { signo, code } of the current ptrace-stop, or -errno. */
export function getSigInfo(tid: number): { signo: number; code: number } | number {
  const r = Number(ptraceBuf(PTRACE_GETSIGINFO, 'int', tid, 'intptr_t', 0, 'void *', siginfo));
  if (r < 0) return -lastErrno();
  return { signo: siginfo.readInt32LE(0), code: siginfo.readInt32LE(8) };
}

const eventMsg = Buffer.alloc(8);

/** PTRACE_GETEVENTMSG: e.g. the new tid after a PTRACE_EVENT_CLONE stop, or -errno. */
export function getEventMsg(tid: number): number {
  const r = Number(ptraceBuf(PTRACE_GETEVENTMSG, 'int', tid, 'intptr_t', 0, 'void *', eventMsg));
  if (r < 0) return -lastErrno();
  return Number(eventMsg.readBigUInt64LE(0));
}

const statusBuf = new Int32Array(1);

/** Result of waitpid: the pid (0 with WNOHANG when nothing changed) and the raw status, or -errno in pid. */
export interface WaitResult {
  pid: number;
  status: number;
}

/** waitpid(pid, &status, options). pid is -errno on failure. */
export function waitpid(pid: number, options: number): WaitResult {
  statusBuf[0] = 0;
  const r = waitpidF(pid, statusBuf, options) as number;
  if (r < 0) return { pid: -lastErrno(), status: 0 };
  return { pid: r, status: statusBuf[0] };
}

// <bits/waitstatus.h>
export const WIFEXITED = (s: number): boolean => (s & 0x7f) === 0;
export const WIFSIGNALED = (s: number): boolean => (s & 0x7f) !== 0 && (s & 0x7f) !== 0x7f;
export const WIFSTOPPED = (s: number): boolean => (s & 0xff) === 0x7f;
export const WSTOPSIG = (s: number): number => (s >> 8) & 0xff;
/** The PTRACE_EVENT_* of a ptrace-stop status (status >> 16), 0 for a signal-delivery-stop. */
export const WPTRACEEVENT = (s: number): number => (s >>> 16) & 0xff;

/** kill(pid, sig): 0 or -errno. */
export function kill(pid: number, sig: number): number {
  return (killF(pid, sig) as number) < 0 ? -lastErrno() : 0;
}

/** tgkill(tgid, tid, sig): 0 or -errno. */
export function tgkill(tgid: number, tid: number, sig: number): number {
  return (tgkillF(tgid, tid, sig) as number) < 0 ? -lastErrno() : 0;
}

export { errnoName, errnoValue } from './libc.js';
