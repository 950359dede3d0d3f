/**
 * A minimal CO-RE BTF for the BPF object, cached per kernel build: the few kernel types and members the
 * object's CO-RE relocations name, cut out of /sys/kernel/btf/vmlinux by `bpftool gen min_core_btf`.
 * Passed to libbpf as btf_custom_path, it spares libbpf the candidate search through the kernel's whole BTF
 * (about 127,000 types) for every relocated type: 12-18 ms of CPU per load on this project's 6.18 machines.
 *
 * The cache key is the kernel's GNU build id (/sys/kernel/notes) and the object's bytes, so a new kernel or a
 * rebuilt object never meets an old file. Without bpftool, a readable build id or a writable cache directory,
 * nothing is cached and libbpf reads the kernel's BTF as before.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';

/** The cache directory: $TDCOLLECT_CACHE_DIR, else $XDG_CACHE_HOME/tdcollect, else ~/.cache/tdcollect. */
export function cacheDir(): string {
  const env = process.env.TDCOLLECT_CACHE_DIR;
  if (env) return env;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'tdcollect');
}

/** The cached file's path for this kernel build and object, or undefined when the build id is unreadable. */
export function minBtfPath(elf: Buffer): string | undefined {
  let notes: Buffer;
  try {
    notes = readFileSync('/sys/kernel/notes');
  } catch {
    return undefined;
  }
  const h = createHash('sha256').update(notes).update(elf).digest('hex').slice(0, 24);
  return join(cacheDir(), `min-core-${h}.btf`);
}

function findBpftool(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/')), '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = join(d, 'bpftool');
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * The minimal BTF for elf (the object file at objPath) on this kernel: the cached file, or one generated now
 * with bpftool (once per kernel build and object) and cached; undefined when that cannot be done.
 */
export function minCoreBtf(elf: Buffer, objPath: string): { path: string; generated: boolean } | undefined {
  if (process.env.TDCOLLECT_BTF_CACHE === 'none') return undefined;
  const path = minBtfPath(elf);
  if (!path) return undefined;
  if (existsSync(path)) return { path, generated: false };
  const bpftool = findBpftool();
  if (!bpftool || !existsSync(VMLINUX_BTF)) return undefined;
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(cacheDir(), { recursive: true, mode: 0o700 });
    const r = spawnSync(bpftool, ['gen', 'min_core_btf', VMLINUX_BTF, tmp, objPath], { stdio: 'ignore', timeout: 30_000 });
    if (r.status !== 0 || !existsSync(tmp)) return undefined;
    renameSync(tmp, path);
    return { path, generated: true };
  } catch {
    return undefined;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Remove a cached file that libbpf could not use. */
export function dropMinCoreBtf(path: string): void {
  rmSync(path, { force: true });
}
