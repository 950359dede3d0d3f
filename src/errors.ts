/**
 * Typed errors and the exit codes the CLI maps them to. Library users tell failures apart with
 * `instanceof` or `err.kind`, never by matching message text.
 */

export const EXIT = {
  OK: 0,
  /** diff: the snapshots differ */
  DIFFERENT: 1,
  /** bad usage or argument, unreadable or corrupt image, diff trouble */
  USAGE: 2,
  /** the target process does not exist or cannot be the root (kernel thread) */
  NO_PROCESS: 3,
  /** a privilege is missing (the message names the capability and the pid) */
  PERMISSION: 4,
  /** the output directory exists and is not empty, or cannot be written */
  OUTPUT: 5,
  /** the requested source, freezer or kernel feature is not available here */
  UNAVAILABLE: 6,
  /** the tree could not be frozen or changed under us in a way we cannot record consistently */
  FREEZE: 7,
  /** a bug in tdcollect */
  INTERNAL: 70,
} as const;

export type ErrorKind =
  | 'usage' | 'image' | 'no-process' | 'permission' | 'output' | 'unavailable' | 'freeze' | 'sys' | 'internal';

export class TdError extends Error {
  readonly kind: ErrorKind;
  readonly exitCode: number;
  constructor(kind: ErrorKind, exitCode: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.exitCode = exitCode;
    this.name = new.target.name;
  }
}

export class UsageError extends TdError {
  constructor(message: string) { super('usage', EXIT.USAGE, message); }
}

/** A corrupt, truncated or unexpected image file. */
export class ImageError extends TdError {
  readonly file: string;
  readonly offset: number;
  /** 'eof' for premature end of data, 'corrupt' for bad content */
  readonly reason: 'eof' | 'corrupt' | 'missing' | 'io';
  constructor(file: string, offset: number, reason: 'eof' | 'corrupt' | 'missing' | 'io', detail: string) {
    super('image', EXIT.USAGE, `${file}: ${reason === 'missing' ? '' : `offset ${offset}: `}${detail}`);
    this.file = file;
    this.offset = offset;
    this.reason = reason;
  }
}

export class NoProcessError extends TdError {
  readonly pid: number;
  constructor(pid: number, message?: string) {
    super('no-process', EXIT.NO_PROCESS, message ?? `no such process: ${pid}`);
    this.pid = pid;
  }
}

/** A missing privilege: names the capability and the pid it was needed for. */
export class PermissionError extends TdError {
  readonly capability: string;
  readonly pid: number | undefined;
  constructor(capability: string, pid: number | undefined, message: string) {
    super('permission', EXIT.PERMISSION, message);
    this.capability = capability;
    this.pid = pid;
  }
}

export class OutputError extends TdError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('output', EXIT.OUTPUT, message, options);
    this.path = path;
  }
}

/** A source, freezer or kernel feature that this kernel or these privileges do not offer. */
export class UnavailableError extends TdError {
  readonly feature: string;
  constructor(feature: string, message: string, options?: { cause?: unknown }) {
    super('unavailable', EXIT.UNAVAILABLE, message, options);
    this.feature = feature;
  }
}

export class FreezeError extends TdError {
  readonly pid: number | undefined;
  constructor(message: string, pid?: number, options?: { cause?: unknown }) {
    super('freeze', EXIT.FREEZE, message, options);
    this.pid = pid;
  }
}
