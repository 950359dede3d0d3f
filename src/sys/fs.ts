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

/**
 * syncfs(2) on a thread of libuv's pool: starts (and waits for) the write-back of what is dirty now while
 * the caller goes on writing. Resolves when the call returns; its result is not reported, since the errno of
 * a pool thread is not ours to read: a caller that needs the outcome calls syncfs() on an fd of its own
 * afterwards (each open file description sees a write-back error once, so that later call still reports it).
 */
export function syncfsStart(fd: number): Promise<void> {
  return new Promise((resolve) => { syncfsFn.async(fd, () => resolve()); });
}
