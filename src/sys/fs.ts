/** File-system calls Node does not offer. */
import { libc, lastErrno } from './libc.js';

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

/** The file calls of the image writer's threads (fileCalls): each returns a negative errno on failure. */
export interface FileCalls {
  /** create `name` in the directory (the open flags given to fileCalls, mode 0644): a descriptor */
  create(name: string): number;
  /** write all of data to fd, again after a short write or EINTR: 0 */
  write(fd: number, data: Uint8Array): number;
  /** close(2): 0 */
  close(fd: number): number;
}

/**
 * openat(dirfd, name, flags, 0644), write(2) until all is written, close(2), declared on `lib` (koffi's
 * libc): for the image writer's many small files, a name relative to an open directory (no path resolved
 * from / each time) and no error object made per call, as Node's fs makes one. It uses its arguments and
 * globals only: the image writer's worker evaluates its source text with its own koffi, so both threads
 * run these lines, and the calls are declared only by a dump that writes that many files. openat's mode is
 * variadic: declared with fixed arity where `fixedArity` (VARIADIC_AS_FIXED) says it may be.
 */
export function fileCalls(
  k: { errno(): number }, lib: { func(proto: string): (...args: unknown[]) => unknown },
  dirfd: number, flags: number, fixedArity: boolean,
): FileCalls {
  const openat = lib.func(fixedArity ? 'int openat(int, const char *, int, uint32_t)' : 'int openat(int, const char *, int, ...)');
  const write = lib.func('intptr_t write(int, const void *, size_t)');
  const close = lib.func('int close(int)');
  return {
    create: (name) => {
      const fd = (fixedArity ? openat(dirfd, name, flags, 0o644) : openat(dirfd, name, flags, 'uint32_t', 0o644)) as number;
      return fd < 0 ? -k.errno() : fd;
    },
    write: (fd, data) => {
      for (let off = 0; off < data.length;) {
        const n = Number(write(fd, off ? data.subarray(off) : data, data.length - off));
        if (n < 0) {
          const e = k.errno();
          if (e === 4) continue; // EINTR (a literal: the worker evaluates this source, which can import nothing)
          return -e;
        }
        off += n;
      }
      return 0;
    },
    close: (fd) => ((close(fd) as number) < 0 ? -k.errno() : 0),
  };
}
