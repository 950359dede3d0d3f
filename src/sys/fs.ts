/** File-system calls Node does not offer. */
import { EINTR, libc, lastErrno } from './libc.js';

const syncfsFn = libc.func('int syncfs(int fd)');

/**
 * Flush every dirty page and inode of the file system holding fd (syncfs(2)): one call instead of an
 * fsync per file when a directory of many new files must reach the disk. Returns 0 or a negative errno;
 * since Linux 5.8 a write-back error on that file system is reported here.
 */
export function syncfs(fd: number): number {
  return syncfsFn(fd) < 0 ? -lastErrno() : 0;
}

const isattyFn = libc.func('int isatty(int fd)');

/** Whether fd is a terminal, without making Node's stream for it (process.stderr.isTTY loads tty and net). */
export function isatty(fd: number): boolean {
  return isattyFn(fd) === 1;
}

/** O_CLOEXEC (Linux's generic value, which x86-64 and arm64 use); Node's fs.constants does not list it. */
export const O_CLOEXEC = 0o2000000;

/**
 * openat(2)'s mode argument is variadic. On x86-64 and arm64 Linux a variadic callee reads integer
 * arguments from the registers a fixed-arity call fills (see sys/ptrace.ts), so there it is declared with
 * fixed arity, which koffi calls without parsing argument types on every call.
 */
/** Whether openat is declared with fixed arity here (the image writer's worker declares it the same way). */
export const FIXED_OPENAT = process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64');
const openatFixed = FIXED_OPENAT ? libc.func('int openat(int dirfd, const char *path, int flags, uint32_t mode)') : undefined;
const openatVar = FIXED_OPENAT ? undefined : libc.func('int openat(int dirfd, const char *path, int flags, ...)');
const writeFn = libc.func('intptr_t write(int fd, const void *buf, size_t n)');
const closeFn = libc.func('int close(int fd)');

/**
 * openat(dirfd, path, flags, mode): a descriptor, or a negative errno. For the image writer's many small
 * files: a name relative to an open directory, no path to resolve from / each time, and no error object
 * made per call as Node's fs.openSync makes one.
 */
export function openAt(dirfd: number, path: string, flags: number, mode: number): number {
  const fd = openatFixed ? openatFixed(dirfd, path, flags, mode) : openatVar!(dirfd, path, flags, 'uint32_t', mode);
  return fd < 0 ? -lastErrno() : fd;
}

/** Write all of data to fd (again after a short write or EINTR): 0, or a negative errno. */
export function writeAll(fd: number, data: Uint8Array): number {
  for (let off = 0; off < data.length;) {
    const n = Number(writeFn(fd, off ? data.subarray(off) : data, data.length - off));
    if (n < 0) {
      const e = lastErrno();
      if (e === EINTR) continue;
      return -e;
    }
    off += n;
  }
  return 0;
}

/** close(2): 0, or a negative errno. */
export function closeFd(fd: number): number {
  return closeFn(fd) < 0 ? -lastErrno() : 0;
}
