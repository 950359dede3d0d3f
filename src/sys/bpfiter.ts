/**
 * Reading BPF iterators without libbpf: a pinned iterator is a file in bpffs, and every open(2) of it starts
 * a new iteration; an iterator fd (pinned or from bpf_iter_create) is drained with 32 KiB read(2) calls.
 * Only node:fs is used here, so reading a pinned iterator loads neither koffi nor libbpf.
 */
import { closeSync, openSync, readSync, statfsSync, unlinkSync } from 'node:fs';
import { PermissionError, UnavailableError } from '../errors.js';

/** read(2) on a seq_file iterator returns at most this much per call, whatever the buffer size. */
export const ITER_READ_SIZE = 32 * 1024;
export const BPFFS = '/sys/fs/bpf';
const BPF_FS_MAGIC = 0xcafe4a11;

/** Is path on a bpf filesystem? */
export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Open a pinned iterator link for reading: each open(2) of it starts a new iteration. */
export function openPinnedIter(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EACCES' || err.code === 'EPERM') {
      throw new PermissionError('CAP_BPF', undefined, `cannot open pinned iterator ${path}: ${err.code}`);
    }
    throw new UnavailableError('bpf', `cannot open pinned iterator ${path}: ${err.code ?? err.message}`);
  }
}

/** Remove a pin (a link file in bpffs); false when there was none. */
export function unpin(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return false;
    if (err.code === 'EACCES' || err.code === 'EPERM') {
      throw new PermissionError('CAP_SYS_ADMIN', undefined, `cannot remove ${path}: ${err.code}`);
    }
    throw e;
  }
}

/** Result of draining an iterator fd. */
export interface IterRead {
  buf: Buffer;
  length: number;
  /** read(2) calls made, the final 0 included */
  reads: number;
}

// 4 MiB holds 10,000 tasks without growing; the pages are only touched as the reads fill them. Made on the
// first drain: a command that never reads an iterator does not carry 4 MiB of external memory (which counts
// towards V8's garbage-collection pressure).
let scratch = Buffer.alloc(0);

/**
 * Read an iterator fd to its end with 32 KiB read(2) calls into one growing buffer, then close the fd.
 * The returned buffer is shared scratch space: decode it before the next call.
 */
export function drainIter(fd: number): IterRead {
  let len = 0;
  let reads = 0;
  try {
    for (;;) {
      if (scratch.length - len < ITER_READ_SIZE) {
        const bigger = Buffer.allocUnsafe(Math.max(4 << 20, scratch.length * 2));
        scratch.copy(bigger, 0, 0, len);
        scratch = bigger;
      }
      let n: number;
      try {
        n = readSync(fd, scratch, len, ITER_READ_SIZE, null);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'EAGAIN' || err.code === 'EINTR') continue;
        throw new UnavailableError('bpf', `reading the BPF task iterator: ${err.code ?? err.message}`);
      }
      reads++;
      if (n === 0) break;
      len += n;
    }
  } finally {
    closeSync(fd);
  }
  return { buf: scratch, length: len, reads };
}
