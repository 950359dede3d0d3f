/**
 * The bpf source: a BPF task iterator (iter/task, task_iter.bpf.c) that emits one 320-byte record per task,
 * read with 32 KiB read(2) calls and decoded into Task records (record.ts).
 *
 * Two ways to reach the iterator:
 * - pinned: `tdcollect bpf pin` left an iterator link in bpffs (PIN_PATH). Opening it starts an
 *   iteration; no load, no bpf(2) call, and readable by whoever the file mode allows. A pinned iterator runs
 *   in all-tasks mode (its filter is never set), so subtrees are cut out in user space from the ppid links.
 * - loaded: this process loads the object with libbpf (25–60 ms on a 6.18 kernel, see task_iter.bpf.c;
 *   CAP_BPF + CAP_PERFMON or CAP_SYS_ADMIN), attaches it once and, per collection, writes the root into the
 *   program's mmap'ed .bss so that the kernel filters the subtree itself.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { NoProcessError, PermissionError, UnavailableError } from '../../../errors.js';
import { drainIter, openPinnedIter } from '../../../sys/bpfiter.js';
// libbpf bindings (koffi) are loaded only when this process loads the program itself: reading a pinned
// iterator needs neither
import type { BpfObject, BpfLink } from '../../../sys/bpf.js';
type SysBpf = typeof import('../../../sys/bpf.js');
let sysBpf: SysBpf | undefined;
async function loadSysBpf(): Promise<SysBpf> {
  sysBpf ??= await import('../../../sys/bpf.js');
  return sysBpf;
}
/** What loading and attaching BPF iterators needs, for messages. */
export const BPF_CAPS = 'CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)';
import type { OptionalField, Task, TaskScan, TaskState } from '../../task.js';
import type { Probe, Source, SourceFactory, SourceStats, TreeOptions } from '../source.js';
import { readNsPid } from '../../nsread.js';
import { effectiveCaps, hasCap } from '../../caps.js';
import { kernelRelease } from '../../../sys/uts.js';
import { ProcFile } from '../../procfile.js';
import {
  BIT_UNDECIDED, MAX_GROUPS, decodeRecord, recBits, recNgroups, recPid, recPpid, recTgid,
  recNsDepth, recNsIds, recNsPid, RAW_NUMBERS, rawState,
  viewRecords, type RecordView,
} from './record.js';

export const OBJECT_FILE = 'task_iter.bpf.o';
/** the program that selects the subtree in the kernel (its ancestor walk is a bpf_loop: 5.17+) */
export const PROGRAM_NAME = 'td_task_iter';
/** the same without the in-kernel filter, for kernels without bpf_loop (5.11-5.16) */
export const PROGRAM_NAME_ALL = 'td_task_iter_all';

/** Does the running kernel have the bpf_loop helper (Linux 5.17+)? */
export function kernelHasBpfLoop(release = kernelRelease()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const major = Number(m[1]), minor = Number(m[2]);
  return major > 5 || (major === 5 && minor >= 17);
}
export { DEFAULT_PIN_PATH, pinPath, pinnedReadable } from './pin.js';
import { pinPath, pinnedReadable } from './pin.js';

/** Locate the built BPF object: beside this file (src/) or, when running from dist/ or the CLI bundle
 * (dist/bin/), in src/. */
export function objectPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, OBJECT_FILE), join(here, '../../../../src/collector/sources/bpf', OBJECT_FILE),
    join(here, '../../src/collector/sources/bpf', OBJECT_FILE)];
  for (const c of candidates) if (existsSync(c)) return c;
  throw new UnavailableError('bpf', `BPF object ${OBJECT_FILE} not found (looked in ${candidates.join(', ')}); run npm run build:bpf`);
}

const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

/** Whether this process's effective capabilities allow loading a BPF iterator. */
export function hasBpfCaps(): boolean {
  const caps = effectiveCaps();
  return hasCap(caps, CAP_SYS_ADMIN) || (hasCap(caps, CAP_BPF) && hasCap(caps, CAP_PERFMON));
}

/** A loaded and attached iterator owned by this process. */
export class LoadedIterator {
  private constructor(
    private readonly sys: SysBpf,
    private readonly obj: BpfObject,
    readonly link: BpfLink,
    private readonly bss: { ptr: unknown; size: number },
    /** true when the program selects the subtree itself (td_task_iter); false: every task, cut in user space */
    readonly filters: boolean,
  ) {}

  /** Open, load and attach the task iterator (the one-time cost: 25 to 60 ms on this project's 6.18 machines). */
  static async load(opts: { inKernelFilter?: boolean; minCoreBtf?: boolean } = {}): Promise<LoadedIterator> {
    if (!hasBpfCaps()) {
      throw new PermissionError('CAP_BPF', undefined,
        `loading the BPF task iterator needs ${BPF_CAPS} (or read a pinned one: tdcollect bpf pin)`);
    }
    const sys = await loadSysBpf();
    const path = objectPath();
    const elf = readFileSync(path);
    const btf = opts.minCoreBtf === false ? undefined : (await import('../../../sys/bpf-btf.js')).minCoreBtf(elf, path);
    try {
      return LoadedIterator.loadWith(sys, elf, btf?.path, opts);
    } catch (e) {
      // a cached BTF libbpf could not use: drop it and relocate against the kernel's own BTF
      if (!btf || e instanceof PermissionError) throw e;
      (await import('../../../sys/bpf-btf.js')).dropMinCoreBtf(btf.path);
      return LoadedIterator.loadWith(sys, elf, undefined, opts);
    }
  }

  private static loadWith(sys: SysBpf, elf: Buffer, btfPath: string | undefined, opts: { inKernelFilter?: boolean }): LoadedIterator {
    const obj = sys.BpfObject.open(elf, 'tdcollect', btfPath);
    try {
      const filters = opts.inKernelFilter ?? kernelHasBpfLoop();
      const name = filters ? PROGRAM_NAME : PROGRAM_NAME_ALL;
      obj.setAutoload(filters ? PROGRAM_NAME_ALL : PROGRAM_NAME, false);
      obj.load();
      const bss = obj.mapGlobalData('.bss');
      if (bss.size < 8) throw new UnavailableError('bpf', `BPF object ${OBJECT_FILE} has a ${bss.size}-byte .bss, expected 8`);
      const link = obj.program(name).attachIter();
      return new LoadedIterator(sys, obj, link, bss, filters);
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /** Set the in-kernel filter: root tgid (0 = every task), leaders only. */
  configure(root: number, leadersOnly: boolean): void {
    this.sys.writeU32(this.bss.ptr, 0, root);
    this.sys.writeU32(this.bss.ptr, 4, leadersOnly ? 1 : 0);
  }

  /** A new iteration's fd. */
  open(): number {
    return this.link.createIter();
  }

  close(): void {
    this.link.destroy();
    this.obj.close();
  }
}

/** Keep only the records of root's subtree, using the leaders' ppid links (user-space filtering). */
function subtreeIndexes(v: RecordView, root: number, threads: boolean): number[] {
  const parentOf = new Map<number, number>();
  for (let i = 0; i < v.count; i++) {
    const tgid = recTgid(v, i);
    if (recPid(v, i) === tgid) parentOf.set(tgid, recPpid(v, i));
  }
  const member = new Map<number, boolean>([[root, true]]);
  const path: number[] = [];
  const isMember = (tgid: number): boolean => {
    let t = tgid;
    let known: boolean | undefined;
    path.length = 0;
    for (;;) {
      known = member.get(t);
      if (known !== undefined) break;
      path.push(t);
      const p = parentOf.get(t);
      if (p === undefined || p === 0 || path.length > parentOf.size) { known = false; break; }
      t = p;
    }
    for (const x of path) member.set(x, known);
    return known;
  };
  const out: number[] = [];
  for (let i = 0; i < v.count; i++) {
    const tgid = recTgid(v, i);
    if (!threads && recPid(v, i) !== tgid) continue;
    if (isMember(tgid)) out.push(i);
  }
  return out;
}

let statusFile: ProcFile | undefined;

/** Groups beyond the record's MAX_GROUPS come from /proc/TGID/task/TID/status (rare). */
function fullGroups(task: Task): number[] | undefined {
  const f = (statusFile ??= new ProcFile(4096));
  return f.read(`/proc/${task.tgid}/task/${task.pid}/status`) > 0 ? f.keyNumbers('Groups') : undefined;
}

function decodeAt(v: RecordView, i: number): Task {
  const t = decodeRecord(v, i);
  if (recNgroups(v, i) > MAX_GROUPS) t.groups = fullGroups(t);
  return t;
}

/** The Task records of the selected records, in their order. */
function decodeRows({ view, rows }: { view: RecordView; rows: readonly number[] }): Task[] {
  const tasks: Task[] = new Array(rows.length);
  for (let k = 0; k < rows.length; k++) tasks[k] = decodeAt(view, rows[k]);
  return tasks;
}

export interface BpfSourceOptions {
  /** pinned iterator to use when present; undefined = never use one */
  pinPath?: string | undefined;
  /** use the pinned iterator when readable (default true) */
  usePinned?: boolean;
  /** when loading: the program that selects the subtree in the kernel (default: where the kernel has bpf_loop) */
  inKernelFilter?: boolean;
  /** when loading: relocate against the cached minimal CO-RE BTF (default true; false: the kernel's BTF) */
  minCoreBtf?: boolean;
}

export class BpfSource implements Source {
  readonly name = 'bpf' as const;
  /** every optional field is filled (seccomp only on kernels with CONFIG_SECCOMP) */
  readonly missing: readonly OptionalField[] = [];
  private reads = 0;
  private syscalls = 0;
  /** the records of the last scanTree, valid until the next read */
  private last: { root: number; view: RecordView; rows: number[] } | undefined;
  private constructor(private readonly loaded: LoadedIterator | undefined, readonly pinned: string | undefined) {}

  /** Use the pinned iterator when one is readable at opts.pinPath, else load one (needs the capabilities). */
  static async open(opts: BpfSourceOptions = { pinPath: pinPath() }): Promise<BpfSource> {
    const path = opts.pinPath;
    if ((opts.usePinned ?? true) && pinnedReadable(path)) return new BpfSource(undefined, path);
    return new BpfSource(await LoadedIterator.load({ inKernelFilter: opts.inKernelFilter, minCoreBtf: opts.minCoreBtf }), undefined);
  }

  /** The pinned iterator at path, or undefined when there is none this user may read. */
  static openPinned(path: string | undefined = pinPath()): BpfSource | undefined {
    return pinnedReadable(path) ? new BpfSource(undefined, path) : undefined;
  }

  /** 'pinned' when reading a pinned iterator, 'loaded' when this process loaded its own */
  get mode(): 'pinned' | 'loaded' {
    return this.loaded ? 'loaded' : 'pinned';
  }

  private read(root: number, leadersOnly: boolean): RecordView {
    this.last = undefined;
    let fd: number;
    if (this.loaded) {
      this.loaded.configure(root, leadersOnly);
      fd = this.loaded.open();
    } else {
      fd = openPinnedIter(this.pinned!);
    }
    const r = drainIter(fd);
    this.reads += r.reads;
    this.syscalls += r.reads + 2; // iter_create/open, reads, close
    return viewRecords(r.buf, r.length);
  }

  async collectTree(root: number, opts: TreeOptions = {}): Promise<Task[]> {
    return this.collectTreeSync(root, opts);
  }

  /**
   * Namespace identities come with every record. The pid at the root's level (opts.rootLevel) is the
   * record's own-namespace pid for every task that lives in the root's namespace; a task in a namespace
   * nested deeper has its NSpid read from /proc.
   */
  collectTreeSync(root: number, opts: TreeOptions = {}): Task[] {
    const sel = opts.lastScan && this.last?.root === root ? this.last : this.records({ root, threads: true });
    this.last = undefined;
    const tasks = decodeRows(sel);
    const { view, rows } = sel;
    const level = opts.rootLevel ?? 0;
    if (opts.namespaces) for (let k = 0; k < rows.length; k++) tasks[k].ns = recNsIds(view, rows[k]);
    if (level > 0) {
      for (let k = 0; k < rows.length; k++) {
        const t = tasks[k];
        if (recNsDepth(view, rows[k]) === level) t.nsPid = recNsPid(view, rows[k]);
        else {
          t.nsPid = readNsPid(t.tgid, t.pid, level);
          this.syscalls += 3;
        }
      }
    }
    return tasks;
  }

  /** The subtree's pid, tgid, ppid and state, from one iteration, without building Task records. */
  scanTree(root: number): TaskScan {
    const { view, rows } = this.records({ root, threads: true });
    this.last = { root, view, rows };
    const n = rows.length;
    const pid = new Uint32Array(n), tgid = new Uint32Array(n), ppid = new Uint32Array(n);
    const state: TaskState[] = new Array(n);
    for (let k = 0; k < n; k++) {
      const w = view.start[rows[k]];
      pid[k] = RAW_NUMBERS.pid(view, w)!;
      tgid[k] = RAW_NUMBERS.tgid(view, w)!;
      ppid[k] = RAW_NUMBERS.ppid(view, w)!;
      state[k] = rawState(view, w);
    }
    return { count: n, pid, tgid, ppid, state };
  }

  async collectAll(opts: { threads: boolean }): Promise<Task[]> {
    return this.collectAllSync(opts);
  }

  collectAllSync(opts: { threads: boolean }): Task[] {
    return decodeRows(this.records({ threads: opts.threads }));
  }

  /**
   * The records of every task, or of root's subtree, without decoding them: the view and the indexes of
   * the selected records, in iterator order. For readers that take fields straight from the view
   * (record.ts RAW_NUMBERS); decodeRecord(view, rows[k]) is the k-th Task collectTreeSync/collectAllSync
   * give, except that groups are cut at MAX_GROUPS (recNgroups has the true count). The view is valid
   * until the next read. Throws NoProcessError when root is not there.
   */
  records(opts: { root?: number; threads: boolean }): { view: RecordView; rows: number[] } {
    const root = opts.root;
    if (root === undefined) {
      const v = this.read(0, !opts.threads);
      const rows: number[] = [];
      for (let i = 0; i < v.count; i++) {
        // a pinned iterator also gives threads: keep the leaders (pid = tgid)
        if (opts.threads || recPid(v, i) === recTgid(v, i)) rows.push(i);
      }
      return { view: v, rows };
    }
    let v: RecordView;
    let rows: number[] | undefined;
    if (this.loaded?.filters) {
      v = this.read(root, !opts.threads);
      for (let i = 0; i < v.count; i++) {
        if (recBits(v, i) & BIT_UNDECIDED) { rows = []; break; }
      }
      if (rows) { // a branch deeper than the in-kernel walk: filter everything here instead
        v = this.read(0, !opts.threads);
        rows = subtreeIndexes(v, root, opts.threads);
      } else {
        rows = [];
        for (let i = 0; i < v.count; i++) rows.push(i);
      }
    } else {
      v = this.read(0, false);
      rows = subtreeIndexes(v, root, opts.threads);
    }
    let found = false;
    for (const i of rows) if (recPid(v, i) === root) { found = true; break; }
    if (!found) throw new NoProcessError(root);
    return { view: v, rows };
  }

  stats(): SourceStats {
    return { syscalls: this.syscalls, roundTrips: this.reads };
  }

  close(): void {
    this.loaded?.close();
  }
}

export const bpfFactory: SourceFactory = {
  name: 'bpf',
  async probe(): Promise<Probe> {
    const path = pinPath();
    if (pinnedReadable(path)) return { ok: true, detail: `pinned iterator ${path}` };
    if (!existsSync('/sys/kernel/btf/vmlinux')) {
      return { ok: false, reason: 'kernel without BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)' };
    }
    const lib = (await loadSysBpf()).libbpfAvailable();
    if (!lib.ok) return { ok: false, reason: lib.reason };
    if (!hasBpfCaps()) return { ok: false, reason: `loading the BPF task iterator needs ${BPF_CAPS}` };
    return { ok: true, detail: 'loads the iterator' };
  },
  async open(): Promise<Source> {
    return BpfSource.open();
  },
};
