/**
 * The one place that loads libc with koffi. Other files of src/sys/ declare their functions on `libc`
 * and turn failures into SysError with `sysFail`.
 */
import koffi from 'koffi';
import { constants } from 'node:os';
import { TdError, EXIT } from '../errors.js';

export { koffi };
export const libc = koffi.load('libc.so.6');

const ERRNO_NAMES: Map<number, string> = new Map();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);
}
const ERRNO_VALUES: Record<string, number> = { ...constants.errno };

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}
export function errnoValue(name: string): number {
  const v = ERRNO_VALUES[name];
  if (v === undefined) throw new Error(`unknown errno name ${name}`);
  return v;
}

/** A failed system call: errno as number and name, the call, and the pid it concerned if any. */
export class SysError extends TdError {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  readonly pid: number | undefined;
  constructor(syscall: string, errno: number, pid?: number, detail?: string) {
    const code = errnoName(errno);
    super('sys', EXIT.INTERNAL,
      `${syscall}${pid !== undefined ? ` (pid ${pid})` : ''}: ${code}${detail ? `: ${detail}` : ''}`);
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
    this.pid = pid;
  }
}

/** The errno of the last koffi call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Throw a SysError for the current errno. */
export function sysFail(syscall: string, pid?: number): never {
  throw new SysError(syscall, koffi.errno(), pid);
}

/** Return ret when >= 0, else throw a SysError carrying errno. */
export function check(ret: number, syscall: string, pid?: number): number {
  if (ret < 0) sysFail(syscall, pid);
  return ret;
}
