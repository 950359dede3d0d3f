/** What every command shares: error reporting with documented exit codes, and buffered output. */
import { TdError, EXIT } from '../errors.js';

/** Print one line for an error and return its exit code. */
export function reportError(e: unknown): number {
  if (e instanceof TdError) {
    process.stderr.write(`tdcollect: ${e.message}\n`);
    return e.exitCode;
  }
  const err = e as NodeJS.ErrnoException;
  process.stderr.write(`tdcollect: internal error: ${err?.stack ?? String(e)}\n`);
  return EXIT.INTERNAL;
}

/**
 * Run a command body and exit with its code. Errors become one line on stderr and their exit code.
 * stdout is flushed before exiting.
 */
export function action<A extends unknown[]>(body: (...args: A) => Promise<number | void> | number | void) {
  return async (...args: A): Promise<void> => {
    let code: number;
    try {
      code = (await body(...args)) ?? EXIT.OK;
    } catch (e) {
      code = reportError(e);
    }
    process.exitCode = code;
  };
}

/** A writer that batches small writes into large ones (10,000 lines must not cost 10,000 syscalls). */
export class BufferedWriter {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly fd = 1, private readonly limit = 1 << 16) {}
  write(s: string): void {
    this.parts.push(s);
    this.size += s.length;
    if (this.size >= this.limit) this.flush();
  }
  flush(): void {
    if (!this.size) return;
    writeAllSync(this.fd, Buffer.from(this.parts.join('')));
    this.parts = [];
    this.size = 0;
  }
}

import { writeSync } from 'node:fs';
export function writeAllSync(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      if (code === 'EPIPE') return;
      throw e;
    }
  }
}
