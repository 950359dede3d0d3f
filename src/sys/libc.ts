/**
 * The one place that loads libc with koffi. Other files of src/sys/ declare their functions on `libc`
 * and turn failures into SysError with `sysFail`.
 */
import type koffiModule from 'koffi';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import { TdError, EXIT } from '../errors.js';

type Koffi = typeof koffiModule;

/**
 * koffi's prebuilt binary for this platform, loaded directly, else koffi as its package loads it.
 *
 * koffi's package entry (koffi/index.cjs) finds its binary through the package's "exports" (Node's ES module
 * resolver, loaded for it), compiles two files of loader that no code cache holds, reads Node's own ELF
 * headers to tell glibc from musl and wraps a few deprecated functions: 8-12 ms of every command's start,
 * for a binary that is always node_modules/@koromix/koffi-<platform>-<arch>/<platform>_<arch>/koffi.node.
 * That file is required here first; on musl its load fails and the musl one is tried, as koffi's own loader
 * does when its detection fails. Anything else (another layout, an architecture whose binary name carries
 * an ABI, a major version this code was not written for) takes koffi's package entry.
 */
function loadKoffi(): { koffi: Koffi; path: string } {
  // the CommonJS bundle of the command line has a require (and node:module is not loaded for it); the ES
  // module build makes one
  const req = typeof require === 'function' ? require : createRequire(import.meta.url);
  const { platform, arch } = process;
  if (platform === 'linux' && (arch === 'x64' || arch === 'arm64' || arch === 'ia32')) {
    for (const libcName of ['linux', 'musl']) {
      const spec = `@koromix/koffi-${platform}-${arch}/${libcName}_${arch}/koffi.node`;
      try {
        const native = req(spec) as Koffi & { version?: string };
        if (typeof native.version === 'string' && native.version.startsWith('3.')) return { koffi: native, path: req.resolve(spec) };
        break;
      } catch { /* not this one */ }
    }
  }
  return { koffi: req('koffi') as Koffi, path: req.resolve('koffi') };
}

const loaded = loadKoffi();
export const koffi: Koffi = loaded.koffi;
/** The file koffi was loaded from: a worker thread requires the same (write.ts's worker, for its file calls and syncfs). */
export const KOFFI_PATH: string = loaded.path;
export const libc = koffi.load('libc.so.6');

/**
 * Whether a variadic libc function may be declared with fixed arity (ptrace's addr and data, openat's mode):
 * on x86-64 and arm64 Linux a variadic callee reads integer arguments from the same registers a fixed-arity
 * call fills (x86-64's %al only tells it how many vector registers to save), and koffi calls a fixed-arity
 * declaration without parsing argument types on every call.
 */
export const VARIADIC_AS_FIXED = process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64');

/** errno values of asm-generic/errno-base.h, the same on every Linux architecture */
export const EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, ECHILD = 10, EACCES = 13;

// made on first use: a command that meets no error does not load node:os for them
let errnoNames: Map<number, string> | undefined;

export function errnoName(errno: number): string {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [name, value] of Object.entries(os.constants.errno)) {
      if (!errnoNames.has(value)) errnoNames.set(value, name);
    }
  }
  return errnoNames.get(errno) ?? `E${errno}`;
}
export function errnoValue(name: string): number {
  const v = (os.constants.errno as Record<string, number>)[name];
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
