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
