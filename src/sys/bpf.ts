/**
 * libbpf (Debian's libbpf1, ABI 1.x) through koffi: open an ELF object from memory, load it, attach an
 * iterator program, pin/unpin links in bpffs, create iterator fds, and the 32 KiB read loop.
 *
 * libbpf is loaded lazily, on first use, so that importing this module costs nothing on machines without it.
 * libbpf's own log printing is switched off (the CLI prints one line per error); the kernel verifier log of a
 * failed load is captured into a buffer and its last line is put in the error.
 */
import { mkdirSync, existsSync } from 'node:fs';
import { isBpffs, BPFFS } from './bpfiter.js';
import { koffi, libc, SysError, errnoName, EACCES, EPERM } from './libc.js';
import { PermissionError, UnavailableError } from '../errors.js';

/** What loading and attaching BPF iterators needs, for messages. */
export const BPF_CAPS = 'CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)';
export { BPFFS, isBpffs, openPinnedIter, unpin, drainIter, ITER_READ_SIZE, type IterRead } from './bpfiter.js';

interface Lib {
  open_mem: (buf: Buffer, size: number, opts: Buffer | null) => unknown;
  load: (obj: unknown) => number;
  close: (obj: unknown) => void;
  find_prog: (obj: unknown, name: string) => unknown;
  set_autoload: (prog: unknown, autoload: boolean) => number;
  find_map: (obj: unknown, name: string) => unknown;
  next_map: (obj: unknown, prev: unknown) => unknown;
  map_name: (map: unknown) => string;
  initial_value: (map: unknown, psize: [number] | null) => unknown;
  map_fd: (map: unknown) => number;
  mmap: (addr: null, len: number, prot: number, flags: number, fd: number, off: number) => unknown;
  munmap: (addr: unknown, len: number) => number;
  attach_iter: (prog: unknown, opts: null) => unknown;
  link_fd: (link: unknown) => number;
  link_pin: (link: unknown, path: string) => number;
  link_destroy: (link: unknown) => number;
  iter_create: (fd: number) => number;
  mount: (src: string, target: string, type: string, flags: number, data: null) => number;
}

let lib: Lib | undefined;
let libError: string | undefined;

/** Load libbpf.so.1 once; throws UnavailableError when it is not installed. */
function libbpf(): Lib {
  if (lib) return lib;
  if (libError) throw new UnavailableError('libbpf', libError);
  let so: ReturnType<typeof koffi.load>;
  try {
    so = koffi.load('libbpf.so.1');
  } catch (e) {
    libError = `libbpf.so.1 cannot be loaded (install libbpf1): ${(e as Error).message}`;
    throw new UnavailableError('libbpf', libError);
  }
  const set_print = so.func('void *libbpf_set_print(void *fn)');
  set_print(null);
  lib = {
    open_mem: so.func('void *bpf_object__open_mem(const void *buf, size_t size, const void *opts)'),
    load: so.func('int bpf_object__load(void *obj)'),
    close: so.func('void bpf_object__close(void *obj)'),
    find_prog: so.func('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    set_autoload: so.func('int bpf_program__set_autoload(void *prog, bool autoload)'),
    find_map: so.func('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    next_map: so.func('void *bpf_object__next_map(void *obj, void *prev)'),
    map_name: so.func('const char *bpf_map__name(void *map)'),
    initial_value: so.func('void *bpf_map__initial_value(void *map, _Out_ size_t *psize)'),
    map_fd: so.func('int bpf_map__fd(void *map)'),
    mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, intptr_t off)'),
    munmap: libc.func('int munmap(void *addr, size_t len)'),
    attach_iter: so.func('void *bpf_program__attach_iter(void *prog, const void *opts)'),
    link_fd: so.func('int bpf_link__fd(void *link)'),
    link_pin: so.func('int bpf_link__pin(void *link, const char *path)'),
    link_destroy: so.func('int bpf_link__destroy(void *link)'),
    iter_create: so.func('int bpf_iter_create(int link_fd)'),
    mount: libc.func('int mount(const char *src, const char *target, const char *type, unsigned long flags, const void *data)'),
  } as unknown as Lib;
  return lib;
}

/** Can libbpf be loaded at all? Never throws. */
export function libbpfAvailable(): { ok: true } | { ok: false; reason: string } {
  try {
    libbpf();
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

function permissionOrUnavailable(what: string, errno: number, detail?: string): never {
  if (errno === EPERM || errno === EACCES) {
    throw new PermissionError('CAP_BPF', undefined, `${what}: ${errnoName(errno)}: needs ${BPF_CAPS}`);
  }
  throw new UnavailableError('bpf', `${what}: ${errnoName(errno)}${detail ? `: ${detail}` : ''}`);
}

const LOG_SIZE = 1 << 20;

/** A loaded BPF object (bpf_object). */
export class BpfObject {
  private obj: unknown;
  /** the ELF image must stay alive until load */
  private elf: Buffer | undefined;
  private readonly opts: Buffer;
  private readonly log: Buffer;
  /** strings opts points to (object name, BTF path): alive as long as the object */
  private readonly strings: (Buffer | undefined)[];
  private mappings: { ptr: unknown; len: number }[] = [];

  private constructor(obj: unknown, elf: Buffer, opts: Buffer, log: Buffer, strings: (Buffer | undefined)[]) {
    this.obj = obj;
    this.elf = elf;
    this.opts = opts;
    this.log = log;
    this.strings = strings;
  }

  /**
   * bpf_object__open_mem: parse the ELF object (no kernel calls yet). btfPath: the BTF that CO-RE relocates
   * against instead of the kernel's (btf_custom_path; a minimal one, see bpf-btf.ts).
   */
  static open(elf: Buffer, name: string, btfPath?: string): BpfObject {
    const l = libbpf();
    // struct bpf_object_open_opts (libbpf 1.1, 80 bytes): sz@0, object_name@8, btf_custom_path@48,
    // kernel_log_buf@56, kernel_log_size@64, kernel_log_level@72
    const opts = Buffer.alloc(80);
    const log = Buffer.alloc(LOG_SIZE);
    const nameBuf = Buffer.from(`${name}\0`, 'latin1');
    opts.writeBigUInt64LE(80n, 0);
    opts.writeBigUInt64LE(koffi.address(nameBuf), 8);
    opts.writeBigUInt64LE(koffi.address(log), 56);
    opts.writeBigUInt64LE(BigInt(LOG_SIZE), 64);
    opts.writeUInt32LE(0, 72);
    const btfBuf = btfPath ? Buffer.from(`${btfPath}\0`, 'latin1') : undefined;
    if (btfBuf) opts.writeBigUInt64LE(koffi.address(btfBuf), 48);
    const obj = l.open_mem(elf, elf.length, opts);
    if (!obj) permissionOrUnavailable('bpf_object__open_mem', koffi.errno());
    return new BpfObject(obj, elf, opts, log, [nameBuf, btfBuf]);
  }

  /** bpf_object__load: CO-RE relocation, map creation, verification. */
  load(): void {
    const ret = libbpf().load(this.live());
    this.elf = undefined;
    if (ret < 0) {
      const logText = this.log.toString('latin1', 0, Math.max(0, this.log.indexOf(0)));
      const lines = logText.split('\n').filter((s) => s.length > 0 && !s.startsWith('processed') && !s.startsWith('--'));
      permissionOrUnavailable('loading the BPF task iterator (bpf_object__load)', -ret, lines[lines.length - 1]);
    }
  }

  /** bpf_program__set_autoload (before load): a program switched off is neither verified nor loaded. */
  setAutoload(name: string, on: boolean): void {
    const p = libbpf().find_prog(this.live(), name);
    if (!p) throw new UnavailableError('bpf', `BPF program ${name} is not in the object`);
    libbpf().set_autoload(p, on);
  }

  program(name: string): BpfProgram {
    const p = libbpf().find_prog(this.live(), name);
    if (!p) throw new UnavailableError('bpf', `BPF program ${name} is not in the object`);
    return new BpfProgram(p);
  }

  /**
   * Map the value of a loaded global-data map (".bss", ".data") into this process, shared with the kernel:
   * writes reach the program without a system call (these maps are BPF_F_MMAPABLE). libbpf 1.1 remaps
   * only for skeletons, so the mapping is made here; unmap it with unmapGlobalData.
   */
  mapGlobalData(section: string): { ptr: unknown; size: number } {
    const l = libbpf();
    let map = l.find_map(this.live(), section);
    if (!map) {
      for (let m = l.next_map(this.obj, null); m; m = l.next_map(this.obj, m)) {
        if (l.map_name(m).endsWith(section)) { map = m; break; }
      }
    }
    if (!map) throw new UnavailableError('bpf', `BPF map ${section} is not in the object`);
    const size: [number] = [0];
    if (!l.initial_value(map, size)) throw new UnavailableError('bpf', `BPF map ${section} is not mmap-able`);
    const fd = l.map_fd(map);
    if (fd < 0) throw new UnavailableError('bpf', `BPF map ${section} is not loaded`);
    const len = Math.ceil(size[0] / 4096) * 4096;
    const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;
    const ptr = l.mmap(null, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const addr = typeof ptr === 'bigint' ? ptr : ptr ? koffi.address(ptr) : 0n;
    if (addr === 0n || addr === 0xffff_ffff_ffff_ffffn) throw new SysError('mmap', koffi.errno(), undefined, `BPF map ${section}`);
    this.mappings.push({ ptr, len });
    return { ptr, size: size[0] };
  }

  close(): void {
    for (const m of this.mappings) libbpf().munmap(m.ptr, m.len);
    this.mappings = [];
    if (this.obj) {
      libbpf().close(this.obj);
      this.obj = undefined;
    }
    void this.opts; void this.strings;
  }

  private live(): unknown {
    if (!this.obj) throw new Error('BPF object already closed');
    return this.obj;
  }
}

/** Write a u32 into a global-data map value (see BpfObject.globalData). */
export function writeU32(ptr: unknown, offset: number, value: number): void {
  koffi.encode(ptr, offset, 'uint32_t', value >>> 0);
}

export class BpfProgram {
  constructor(private readonly prog: unknown) {}
  /** bpf_program__attach_iter with no link options (every task) */
  attachIter(): BpfLink {
    const link = libbpf().attach_iter(this.prog, null);
    if (!link) permissionOrUnavailable('attaching the BPF task iterator', koffi.errno());
    return new BpfLink(link);
  }
}

export class BpfLink {
  constructor(private link: unknown) {}
  get fd(): number {
    return libbpf().link_fd(this.live());
  }
  /** A new iterator instance: read it to the end, then close it. */
  createIter(): number {
    const fd = libbpf().iter_create(this.fd);
    if (fd < 0) permissionOrUnavailable('bpf_iter_create', -fd);
    return fd;
  }
  /** bpf_link__pin: keep the link (and its program) alive in bpffs after this process exits. */
  pin(path: string): void {
    const ret = libbpf().link_pin(this.live(), path);
    if (ret < 0) {
      if (-ret === EPERM || -ret === EACCES) permissionOrUnavailable(`pinning at ${path}`, -ret);
      throw new SysError('bpf_link__pin', -ret, undefined, path);
    }
  }
  destroy(): void {
    if (this.link) {
      libbpf().link_destroy(this.link);
      this.link = undefined;
    }
  }
  private live(): unknown {
    if (!this.link) throw new Error('BPF link already destroyed');
    return this.link;
  }
}

/** Mount bpffs at dir (default /sys/fs/bpf) unless one is there already. */
export function ensureBpffs(dir = BPFFS): void {
  if (isBpffs(dir)) return;
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  libbpf();
  const ret = lib!.mount('bpf', dir, 'bpf', 0, null);
  if (ret < 0) {
    const errno = koffi.errno();
    if (errno === EPERM) throw new PermissionError('CAP_SYS_ADMIN', undefined, `mounting bpffs at ${dir}: EPERM: needs CAP_SYS_ADMIN`);
    throw new SysError('mount', errno, undefined, `bpf on ${dir}`);
  }
}

