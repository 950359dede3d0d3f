/**
 * Snapshot -> image directory, atomically.
 *
 * Everything is written into a temporary directory beside the target (`.<name>.tmp-<pid>-<rand>` in the same
 * parent, so the final rename cannot cross filesystems); the files and the directory are made durable (one
 * syncfs(2), or an fsync each for a few files while much else is waiting to be written; see syncStaged); then
 * the temporary directory is renamed into place and the parent fsynced. A reader never sees a half-written
 * dump: the target either does not exist, holds the previous dump (--force), or holds the complete new one.
 *
 * - target missing or an empty directory: rename(tmp, target) (Linux replaces an empty directory atomically)
 * - target a non-empty directory: refused with OutputError unless `force`; with force the old directory is
 *   renamed away (`.<name>.old-<pid>-<rand>`), the new one renamed in, and the old one removed
 * - target exists and is not a directory: refused with OutputError
 * Any failure removes the temporary directory and reports one OutputError naming the path and errno code.
 *
 * A large dump (WORKER_MIN_FILES image files or more) is staged by a worker thread and the calling thread
 * together: the worker is started (by prepareWrite, before the freeze, or by beginWrite) and handed the core
 * images in parts as beginWrite encodes them, which a dump calls while the tree is still frozen, so its
 * writing overlaps whatever the caller does next (thawing the tree); finish() takes the caller's share of
 * the files still unwritten; when the worker has no file left to claim it starts the write-back of the
 * directory (syncfs), during which finish() encodes and writes tasks.img (with the final header),
 * pstree.img and inventory.img, then makes everything durable as above (its syncfs has only those to wait
 * for). When no thread can be started the calling thread writes every file; a worker that dies
 * without reporting has the files it did not finish rewritten. The temporary directory, the durability and the
 * rename are the same on both paths; on a failure in either thread the other stops, and the directory is
 * removed only once no thread writes into it any more.
 *
 * Leftovers: a writer killed with SIGKILL leaves its `.<name>.tmp-…` (killed while staging) or
 * `.<name>.old-…` (killed between moving the previous dump aside and removing it) behind. Their names are
 * `.<name>.{tmp,old}-<pid>-<tag>-<rand>`, tag identifying the writer beyond its pid (WriteOptions.owner: its
 * start time and pid namespace). The next write to the same target removes the leftovers of that target whose
 * writer is certainly gone (owner.gone), and nothing else: not another target's, not a live writer's, not a
 * file, not a name of another form.
 */
import {
  closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync,
  rmSync, unlinkSync, writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Writer } from './pbwriter.js';
import type { DumpInfo, RecordedTask, Snapshot } from '../collector/task.js';
import { OutputError, TdError } from '../errors.js';
import {
  checkSnapshot, groupProcesses, headerToPb, hostMarch, ImageWriteError, inventoryEntry, writeCore, writePstree, writeTask,
  type ProcessGroup,
} from './codec.js';
import { frameImage, KIND } from './framing.js';
import { schemas } from './schema.js';
// the one system call Node lacks for durable writes; image/ still reads nothing from the kernel's task state
import { fileCalls, O_CLOEXEC, syncfs, type FileCalls } from '../sys/fs.js';
import { errnoName, koffi, KOFFI_PATH, libc, VARIADIC_AS_FIXED } from '../sys/libc.js';
import { now } from '../sys/clock.js';

/** Who writes: embedded in the temporary names, and asked about the writers of leftovers. */
export interface WriteOwner {
  /** identity of this writer beyond its pid ([0-9A-Za-z.]+), e.g. start time and pid namespace */
  readonly tag: string;
  /**
   * True only when the writer (pid, and tag when the name has one) is certainly not running: a leftover of
   * it may be removed. Undecidable (another pid namespace, a live process) is false.
   */
  gone(pid: number, tag: string | undefined): boolean;
}

export interface WriteOptions {
  /** replace a non-empty target directory */
  force?: boolean;
  /** the writer's identity; with it, leftovers of dead writers of the same target are removed first */
  owner?: WriteOwner;
  /** core_entry.mtype; defaults to this host's architecture */
  mtype?: number;
  /**
   * beginWrite only: the staging prepareWrite started for this target before the tree was frozen, used (or,
   * for a dump that turns out small, released) instead of starting one
   */
  prepared?: PreparedWrite;
}

export interface WriteResult {
  dir: string;
  files: number;
  bytes: number;
  /** wall time of writeImages, ms (for beginWrite: of beginWrite and finish together, on the calling thread) */
  ms: number;
  /** worker threads that staged files (0: the calling thread wrote them all) */
  workers: number;
}

/**
 * The core-TID.img files of a run of processes (no I/O), each a view of one arena (`shared`: an arena on a
 * SharedArrayBuffer, which a worker thread can read without a copy).
 */
interface CoreChunk {
  arena: Buffer;
  /** core-TID.img names, and each file's end in arena (file i is arena[ends[i-1] or 0, ends[i])) */
  names: string[];
  ends: number[];
}

/** inventory.img and pstree.img of a snapshot's processes (no I/O). */
function encodeHeads(groups: readonly ProcessGroup[]): { inventory: Buffer; pstree: Buffer } {
  const s = schemas();
  const inventory = frameImage(KIND.inventory, [s.inventory.encode(inventoryEntry()).finish()]);
  // pstree.img: its magics, then each process's entry after its u32 length, written in place
  const pw = new Writer(64 + 48 * groups.length);
  pw.fixed32(KIND.pstree.head).fixed32(KIND.pstree.magic);
  for (let i = 0; i < groups.length; i++) {
    const at = pw.reserve32();
    writePstree(pw, groups[i], i === 0);
    pw.patch32(at, pw.len - at - 4);
  }
  return { inventory, pstree: pw.finish() };
}

/**
 * The core-TID.img of every thread of groups[from, to) (its magics, its entry's u32 length, the entry), back
 * to back in one arena, in group order, each group's leader first.
 */
function encodeCores(groups: readonly ProcessGroup[], from: number, to: number, mtype: number, shared: boolean): CoreChunk {
  const core = KIND.core;
  let n = 0;
  for (let i = from; i < to; i++) n += 1 + groups[i].threads.length;
  const w = new Writer(256 + 256 * n, shared);
  const names: string[] = new Array(n);
  const ends: number[] = new Array(n);
  let k = 0;
  const one = (t: RecordedTask, g: ProcessGroup): void => {
    w.fixed32(core.head).fixed32(core.magic);
    const at = w.reserve32();
    writeCore(w, t, g, mtype);
    w.patch32(at, w.len - at - 4);
    names[k] = `core-${t.pid}.img`;
    ends[k++] = w.len;
  };
  for (let i = from; i < to; i++) {
    const g = groups[i];
    one(g.leader, g);
    for (let j = 0; j < g.threads.length; j++) one(g.threads[j], g);
  }
  return { arena: w.finish(), names, ends };
}

/** tasks.img: its magics, then the header and one entry per task, each after its u32 length. */
function encodeTasksImage(info: DumpInfo, tasks: readonly RecordedTask[]): Buffer {
  const s = schemas();
  const w = new Writer(256 + 192 * tasks.length);
  w.fixed32(KIND.tasks.head).fixed32(KIND.tasks.magic);
  let at = w.reserve32();
  s.header.encode(headerToPb(info), w);
  w.patch32(at, w.len - at - 4);
  for (const t of tasks) {
    at = w.reserve32();
    writeTask(w, t);
    w.patch32(at, w.len - at - 4);
  }
  return w.finish();
}

/** The image files of a snapshot, file name -> bytes (no I/O). */
export function encodeImages(snapshot: Snapshot, opts: { mtype?: number } = {}): Map<string, Buffer> {
  checkSnapshot(snapshot);
  const groups = groupProcesses(snapshot.tasks);
  const h = encodeHeads(groups);
  const c = encodeCores(groups, 0, groups.length, opts.mtype ?? hostMarch(), false);
  const files = new Map<string, Buffer>();
  files.set('inventory.img', h.inventory);
  files.set('pstree.img', h.pstree);
  for (let i = 0; i < c.names.length; i++) files.set(c.names[i], c.arena.subarray(i ? c.ends[i - 1] : 0, c.ends[i]));
  files.set('tasks.img', encodeTasksImage(snapshot.info, snapshot.tasks));
  return files;
}

function outputError(path: string, what: string, e: unknown): OutputError {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? 'EIO';
  return new OutputError(path, `cannot ${what} ${path}: ${code}`, { cause: e });
}

function isEmptyDir(path: string): boolean {
  return readdirSync(path).length === 0;
}

const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;

function writeFile(path: string, data: Buffer): void {
  const fd = openSync(path, CREATE, 0o644);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
  } finally {
    closeSync(fd);
  }
}

/** fsync a file or directory by path. */
function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const TAG_RE = /^[0-9A-Za-z.]+$/;

// 8 random hex digits: Math.random's, not node:crypto's (loading node:crypto costs a small dump about 4 ms of
// CPU); the names need only differ, mkdir refuses one that exists
const rand8 = (): string => ((Math.random() * 0x100000000) >>> 0).toString(16).padStart(8, '0');

function suffix(owner: WriteOwner | undefined): string {
  const tag = owner && TAG_RE.test(owner.tag) ? `${owner.tag}-` : '';
  return `${process.pid}-${tag}${rand8()}`;
}

/** A leftover's writer, parsed from `.<name>.{tmp,old}-<pid>[-<tag>]-<8 hex>`; undefined for any other name. */
export function leftoverOwner(entry: string, name: string): { pid: number; tag: string | undefined } | undefined {
  let rest: string | undefined;
  for (const kind of ['tmp', 'old']) {
    const prefix = `.${name}.${kind}-`;
    if (entry.startsWith(prefix)) rest = entry.slice(prefix.length);
  }
  if (rest === undefined) return undefined;
  const parts = rest.split('-');
  if (parts.length < 2 || parts.length > 3) return undefined;
  const [pidText, tag] = parts.length === 3 ? [parts[0], parts[1]] : [parts[0], undefined];
  if (!/^[1-9][0-9]{0,9}$/.test(pidText) || !/^[0-9a-f]{8}$/.test(parts[parts.length - 1])) return undefined;
  if (tag !== undefined && !TAG_RE.test(tag)) return undefined;
  return { pid: Number(pidText), tag };
}

/**
 * Remove the leftovers of target `name` in `parent` whose writer is gone (best effort: a leftover that
 * cannot be removed stays, and the write goes on). Returns the names removed.
 */
export function removeLeftovers(parent: string, name: string, owner: WriteOwner): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return removed;
  }
  for (const entry of entries) {
    const who = leftoverOwner(entry, name);
    if (!who || who.pid === process.pid) continue;
    const path = join(parent, entry);
    try {
      if (!lstatSync(path).isDirectory()) continue;
      if (!owner.gone(who.pid, who.tag)) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(entry);
    } catch {
      /* stays */
    }
  }
  return removed;
}

interface Plan {
  target: string;
  parent: string;
  name: string;
  existing: 'none' | 'empty' | 'full';
  owner: WriteOwner | undefined;
}

/** Refuse early (before encoding anything): a target that is a file, or a non-empty one without force. */
function plan(dir: string, opts: WriteOptions): Plan {
  const target = resolve(dir);
  const parent = dirname(target);
  const name = basename(target);
  let existing: Plan['existing'] = 'none';
  try {
    const st = lstatSync(target);
    if (!st.isDirectory()) throw new OutputError(target, `cannot write images to ${target}: it exists and is not a directory`);
    existing = isEmptyDir(target) ? 'empty' : 'full';
  } catch (e) {
    if (e instanceof TdError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw outputError(target, 'inspect', e);
  }
  if (existing === 'full' && !opts.force) {
    throw new OutputError(target, `output directory ${target} exists and is not empty (use --force to replace it)`);
  }
  if (opts.owner) removeLeftovers(parent, name, opts.owner);
  return { target, parent, name, existing, owner: opts.owner };
}

function makeTemp(p: Plan): string {
  const tmp = join(p.parent, `.${p.name}.tmp-${suffix(p.owner)}`);
  try {
    mkdirSync(tmp, { mode: 0o755 });
  } catch (e) {
    throw outputError(p.parent, 'create a directory in', e);
  }
  return tmp;
}

/** Write every file (no fsync yet); returns the byte count. */
function stage(files: Map<string, Buffer>, tmp: string): number {
  let bytes = 0;
  const base = tmp + '/';
  for (const [file, data] of files) {
    const path = base + file;
    try {
      writeFile(path, data);
    } catch (e) {
      throw outputError(path, 'write', e);
    }
    bytes += data.length;
  }
  return bytes;
}

/**
 * Remove a previous dump moved aside: a flat directory of image files, so one unlink per file and no stat
 * (what a generic recursive removal would add per entry); anything else in it falls back to rmSync.
 */
function removeDump(dir: string): void {
  try {
    const base = dir + '/';
    for (const name of readdirSync(dir)) unlinkSync(base + name);
    rmdirSync(dir);
  } catch {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Up to this many files an fsync each can be cheaper than a syncfs, which flushes everything dirty on the file system. */
const FSYNC_EACH_MAX = 64;
/** Above this much dirty or in-flight page cache (KiB, system-wide), a dump of few files fsyncs each instead. */
const SYNCFS_DIRTY_MAX_KIB = 1024;

/** Dirty plus Writeback of /proc/meminfo, in KiB; Infinity when unreadable. */
function dirtyKiB(): number {
  try {
    const text = readFileSync('/proc/meminfo', 'latin1');
    const dirty = /\nDirty: +(\d+) kB/.exec(text);
    const back = /\nWriteback: +(\d+) kB/.exec(text);
    return dirty && back ? Number(dirty[1]) + Number(back[1]) : Infinity;
  } catch {
    return Infinity;
  }
}

/**
 * Make every staged file durable, on Linux >= 5.8 with write-back errors reported: one syncfs(2) on the file
 * system of the temporary directory, unless the dump has few files (FSYNC_EACH_MAX) and the system has
 * more than SYNCFS_DIRTY_MAX_KIB of other data waiting to be written, which a syncfs would have to wait for;
 * then an fsync per file. On this project's test machines (ext4) the 9 files of a 6-task dump took 4.7-7 ms
 * with an fsync each and 2.2-3 ms with one syncfs; a syncfs with 4 MiB of other dirty data took 7 ms.
 */
function syncStaged(files: Map<string, Buffer>, tmp: string): void {
  if (files.size <= FSYNC_EACH_MAX && dirtyKiB() > SYNCFS_DIRTY_MAX_KIB) {
    for (const file of files.keys()) {
      const path = join(tmp, file);
      try {
        fsyncPath(path);
      } catch (e) {
        throw outputError(path, 'write', e);
      }
    }
    return;
  }
  let fd: number | undefined;
  try {
    fd = openSync(tmp, constants.O_RDONLY | constants.O_DIRECTORY);
    syncDir(fd, tmp);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** syncfs(2) on fd (a directory of the file system to flush), failures as the OutputError of a write to tmp. */
function syncDir(fd: number, tmp: string): void {
  const r = syncfs(fd);
  if (r < 0) throw outputError(tmp, 'write', Object.assign(new Error(`syncfs: ${errnoName(-r)}`), { code: errnoName(-r) }));
}

/** fsync the temp dir, rename it into place (moving a non-empty target aside), fsync the parent. */
function commit(p: Plan, tmp: string): void {
  try {
    fsyncPath(tmp);
  } catch (e) {
    throw outputError(tmp, 'write', e);
  }
  let old: string | undefined;
  if (p.existing === 'full') {
    old = join(p.parent, `.${p.name}.old-${suffix(p.owner)}`);
    try {
      renameSync(p.target, old);
    } catch (e) {
      throw outputError(p.target, 'move aside', e);
    }
  }
  try {
    renameSync(tmp, p.target);
  } catch (e) {
    if (old !== undefined) {
      try { renameSync(old, p.target); old = undefined; } catch { /* the old dump stays at `old` */ }
    }
    throw outputError(p.target, 'rename into place', e);
  }
  try {
    if (old !== undefined) removeDump(old);
    fsyncPath(p.parent);
  } catch (e) {
    throw outputError(p.parent, 'sync', e);
  }
}

/**
 * Write a snapshot as CRIU images + tasks.img into `dir`, atomically (see the module comment), on the
 * calling thread alone. The files reach the disk (an fsync each, or one syncfs(2) for a large dump) before
 * the rename.
 */
export function writeImagesSync(snapshot: Snapshot, dir: string, opts: WriteOptions = {}): WriteResult {
  const t0 = now();
  const p = plan(dir, opts);
  const files = encodeImages(snapshot, opts);
  const tmp = makeTemp(p);
  let bytes: number;
  try {
    bytes = stage(files, tmp);
    syncStaged(files, tmp);
    commit(p, tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir: p.target, files: files.size, bytes, ms: now() - t0, workers: 0 };
}

/**
 * Write a snapshot as CRIU images + tasks.img into `dir`, atomically (see the module comment); a large
 * dump is staged by a worker thread and the calling thread together.
 */
export async function writeImages(snapshot: Snapshot, dir: string, opts: WriteOptions = {}): Promise<WriteResult> {
  checkSnapshot(snapshot);
  const pending = await beginWrite(snapshot.tasks, dir, opts);
  return pending.finish(snapshot.info);
}

// ---------------------------------------------------------------------------------------------------------
// Large dumps: a worker thread stages the core images beside the calling thread.

/**
 * From this many image files on, a worker thread stages them beside the calling thread. Creates in one
 * directory take that directory's lock, so two threads creating at once gain little; what pays is the
 * writing the worker does while the caller is busy elsewhere (thawing a 10,000-task tree takes ~100 ms) and
 * the write-back started early. Measured in-process on ext4 (writeImages against writeImagesSync, no thaw to
 * overlap, medians of 5): 500 files 1.8-2.2x slower with the worker (its start-up, 20-40 ms, is most of
 * the cost), 1,000 files 1.3-1.5x slower, 2,100 files 0.87-0.89x, 4,000 files 0.85-0.87x. At 10,000 tasks,
 * written after 110 ms of the caller's own work (a thaw), cold processes, 7 alternating rounds: the calling
 * thread alone 1,181 ms; the worker and the calling thread sharing the files with an early syncfs 707 ms,
 * without it 765 ms. That early syncfs ran on the calling thread after tasks.img was encoded (180 ms of
 * write-back it waited for, in a 10,000-task dump); run by the worker as soon as it has no file left to
 * claim, it overlaps the thaw and tasks.img instead: the dump's end came 100-200 ms sooner (1,050-1,150 ms
 * after the start instead of 1,250-1,300, same tree, same file system).
 */
export const WORKER_MIN_FILES = 2048;

/** Files a thread claims at a time from a part's counter. */
const SHARE_CHUNK = 32;

/**
 * The core images are encoded and handed to the worker in parts of growing size, the first of this many
 * files, so that the worker starts writing while the calling thread encodes the rest (encoding 10,000 core
 * images takes the calling thread 60-100 ms, while the tree is still frozen).
 */
const FIRST_PART = 512;

/** One part of a dump's core images, as the worker is handed it: one arena shared with the calling thread. */
interface WriteJob {
  dir: string;
  names: string[];
  /** file i is arena[ends[i - 1] (0 for i = 0), ends[i]) */
  ends: number[];
  arena: SharedArrayBuffer;
  /** Int32Array over it: [0] the next unclaimed file of this part */
  ctl: SharedArrayBuffer;
  /** Int32Array over it, one for every part of the dump: [0] non-zero once a thread has failed or was stopped */
  stop: SharedArrayBuffer;
  /** Uint8Array over it: 1 for each file written whole (and closed) */
  written: SharedArrayBuffer;
}

/** A thread's share of the writing: why it stopped, when a file could not be written. */
interface ShareResult {
  error?: { path: string; code: string };
}

/**
 * How a thread creates and writes the files of a part: sys/fs.ts's fileCalls on the thread's own koffi (the
 * calling thread's from sys/libc.ts, the worker's its own), and errno names.
 */
interface FileIo extends FileCalls {
  /** an errno's name (ENOSPC) */
  code(errno: number): string;
}

/**
 * Write the files of `job`, claiming SHARE_CHUNK at a time from its counter, until none is left or a
 * thread has failed (then stop, and say why if it was this one). The calling thread and the worker run this
 * same function; the worker evaluates its source text, so it uses only its arguments and globals.
 */
function writeShare(io: FileIo, job: WriteJob, chunk: number): ShareResult {
  const ctl = new Int32Array(job.ctl);
  const stop = new Int32Array(job.stop);
  const written = new Uint8Array(job.written);
  const arena = new Uint8Array(job.arena);
  const n = job.names.length;
  while (Atomics.load(stop, 0) === 0) {
    const from = Atomics.add(ctl, 0, chunk);
    if (from >= n) break;
    const to = Math.min(n, from + chunk);
    for (let i = from; i < to && Atomics.load(stop, 0) === 0; i++) {
      const start = i === 0 ? 0 : job.ends[i - 1];
      const end = job.ends[i];
      const fd = io.create(job.names[i]);
      let r = fd < 0 ? fd : io.write(fd, arena.subarray(start, end));
      if (fd >= 0) {
        const c = io.close(fd);
        if (r === 0) r = c;
      }
      if (r < 0) {
        Atomics.store(stop, 0, 1);
        return { error: { path: job.dir + '/' + job.names[i], code: io.code(-r) } };
      }
      written[i] = 1;
    }
  }
  return {};
}

/**
 * After a worker thread that died without reporting (it cannot have failed to write: that it reports): write
 * every file of `job` not written whole, truncating what the worker may have left half-written.
 */
function writeLost(job: WriteJob): ShareResult {
  const written = new Uint8Array(job.written);
  const arena = Buffer.from(job.arena);
  for (let i = 0; i < job.names.length; i++) {
    if (written[i]) continue;
    const path = job.dir + '/' + job.names[i];
    const start = i === 0 ? 0 : job.ends[i - 1];
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
      try {
        for (let off = start; off < job.ends[i];) off += writeSync(fd, arena, off, job.ends[i] - off);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      return { error: { path, code: (e as NodeJS.ErrnoException)?.code ?? 'EIO' } };
    }
    written[i] = 1;
  }
  return {};
}

/**
 * The worker's script: CommonJS, node:fs and koffi (workerData.koffi, the file this process loaded it from)
 * only, no module of ours to locate, inside the bundle or out. It is handed the parts of the dump (WriteJob)
 * as the calling thread encodes them, then `{ end: true }`; it writes its share of each part in turn, then,
 * unless a write failed or the dump was stopped, starts the write-back of everything written so far (syncfs)
 * while the calling thread writes its last three files, whose own syncfs then has only those to wait for;
 * then it answers (with why it stopped, if a write failed) and ends.
 */
const WORKER_SOURCE = `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const writeShare = (${writeShare.toString()});
const dirfd = fs.openSync(workerData.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
const CREATE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | ${O_CLOEXEC};
let names;
const code = (e) => {
  if (!names) names = new Map(Object.entries(require('node:os').constants.errno).map(([k, v]) => [v, k]));
  return names.get(e) || 'E' + e;
};
// koffi is what the calling thread loaded (a worker that cannot load it dies at once, and the calling thread
// writes every file itself, as when no thread can be had)
const koffi = require(workerData.koffi);
const libc = koffi.load('libc.so.6');
const syncfs = libc.func('int syncfs(int)');
const io = { ...(${fileCalls.toString()})(koffi, libc, dirfd, CREATE, workerData.fixedArity), code };
const queue = [];
const share = {};
let ended = false;
let stop;
function onMessage(m) {
  if (m.end) ended = true;
  else queue.push(m);
  while (queue.length && !share.error) {
    const job = queue.shift();
    stop = job.stop;
    const r = writeShare(io, job, ${SHARE_CHUNK});
    if (r.error) share.error = r.error;
  }
  if (!ended && !share.error) return;
  parentPort.off('message', onMessage);
  if (!share.error && stop && Atomics.load(new Int32Array(stop), 0) === 0) syncfs(dirfd); // only a head start
  fs.closeSync(dirfd);
  parentPort.postMessage(share);
}
parentPort.on('message', onMessage);
`;

/** A write begun by beginWrite: finish it once the header is final, or abort it. */
export interface PendingWrite {
  /**
   * Write tasks.img with this header, stage what is left, make it durable and rename it into place. On
   * failure nothing is left behind and the error is one OutputError (or an ImageWriteError for a snapshot
   * that cannot be stored), as writeImages.
   */
  finish(info: DumpInfo): Promise<WriteResult>;
  /** Give the write up: stop the worker, remove the temporary directory. */
  abort(): Promise<void>;
}

/** The temporary directory of a large dump and the worker thread that writes into it. */
interface Staging {
  p: Plan;
  tmp: string;
  /** opened before anything is written: its syncfs reports every write-back error from here on */
  syncFd: number | undefined;
  worker: Worker | undefined;
  /** the worker's share; `lost`: it ended without reporting (it could not start, or died), its files are redone */
  done: Promise<ShareResult & { lost?: boolean }>;
  /** the stop word shared by every part, and whether a part has been posted (the worker may be writing) */
  stop: Int32Array;
  posted: boolean;
}

/**
 * Check the target, create the temporary directory and start the worker, whose start-up then runs beside
 * what the caller does next; when no thread can be had (EAGAIN: the pid space or a pids cgroup is full) the
 * calling thread writes everything.
 */
function openStaging(dir: string, opts: WriteOptions): Staging {
  const p = plan(dir, opts);
  const tmp = makeTemp(p);
  let syncFd: number;
  try {
    syncFd = openSync(tmp, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw outputError(tmp, 'write', e);
  }
  let worker: Worker | undefined;
  try {
    worker = new Worker(WORKER_SOURCE, { eval: true, stdout: false, stderr: false, workerData: { koffi: KOFFI_PATH, dir: tmp, fixedArity: VARIADIC_AS_FIXED } });
    worker.unref();
  } catch {
    worker = undefined;
  }
  const w = worker;
  const done = !w ? Promise.resolve<ShareResult & { lost?: boolean }>({}) :
    new Promise<ShareResult & { lost?: boolean }>((resolve) => {
      w.once('message', resolve);
      w.once('error', () => resolve({ lost: true }));
      w.once('exit', () => resolve({ lost: true }));
    });
  return { p, tmp, syncFd, worker: w, done, stop: new Int32Array(new SharedArrayBuffer(4)), posted: false };
}

/** Stop the worker (waiting for it while it may still write into the directory), then remove the directory. */
async function stopStaging(st: Staging): Promise<void> {
  Atomics.store(st.stop, 0, 1);
  const w = st.worker;
  if (w) {
    w.ref();
    // the worker stops at its next file: wait for it before removing the directory it writes into
    if (st.posted) {
      w.postMessage({ end: true });
      await st.done;
    } else {
      await w.terminate();
    }
  }
  if (st.syncFd !== undefined) closeSync(st.syncFd);
  st.syncFd = undefined;
  rmSync(st.tmp, { recursive: true, force: true });
}

/**
 * The staging of a large dump started early (prepareWrite): check the target, create the temporary directory
 * and start the worker thread before the tree is frozen, so that the worker's start-up (its own V8 and
 * Node, 20-40 ms of a CPU) runs beside the source's set-up and not on the path from the freeze to the first
 * file. Handed to beginWrite (WriteOptions.prepared), which uses it, or releases it for a dump that turns out
 * small; a prepared write that is not handed on must be released.
 */
export interface PreparedWrite {
  /** stop the worker and remove the temporary directory, unless beginWrite took them over */
  release(): Promise<void>;
}

class Prepared implements PreparedWrite {
  private staging: Staging | undefined;
  constructor(staging: Staging) { this.staging = staging; }
  /** The staging, once: beginWrite's from now on. */
  take(): Staging | undefined {
    const st = this.staging;
    this.staging = undefined;
    return st;
  }
  async release(): Promise<void> {
    const st = this.take();
    if (st) await stopStaging(st);
  }
}

/** Start the staging of a large dump into `dir` now (see PreparedWrite); throws OutputError as beginWrite would. */
export function prepareWrite(dir: string, opts: WriteOptions = {}): PreparedWrite {
  return new Prepared(openStaging(dir, opts));
}

/**
 * Begin writing the images of `tasks` (final: in tree order, in the root's pid view) into `dir`: for a
 * large dump (WORKER_MIN_FILES files or more) check the target, create the temporary directory, start a
 * worker thread, and encode the core images in parts (FIRST_PART files, then twice as many each time),
 * handing each to the worker as it is done, so that the worker writes while the rest is encoded; finish(info)
 * does the rest. A small dump does it all in finish, on the calling thread, as writeImagesSync. The caller
 * must call finish or abort (a pending write that is dropped keeps nothing alive, and its temporary
 * directory is a leftover that the next write to `dir` removes, as a killed writer's).
 */
export async function beginWrite(tasks: readonly RecordedTask[], dir: string, opts: WriteOptions = {}): Promise<PendingWrite> {
  const pre = opts.prepared instanceof Prepared ? opts.prepared.take() : undefined;
  if (!Array.isArray(tasks) || tasks.length + 3 < WORKER_MIN_FILES) {
    if (pre) await stopStaging(pre);
    return {
      finish: async (info) => writeImagesSync({ info, tasks: tasks as RecordedTask[] }, dir, opts),
      abort: async () => {},
    };
  }
  const t0 = now();
  const staged = pre ?? openStaging(dir, opts);
  const { p, worker: w, done } = staged;
  const staging = staged.tmp;
  const mtype = opts.mtype ?? hostMarch();
  const jobs: WriteJob[] = [];
  let groups: ProcessGroup[];
  try {
    groups = groupProcesses(tasks);
    for (let from = 0, size = FIRST_PART; from < groups.length; size *= 2) {
      let to = from;
      for (let n = 0; to < groups.length && n < size; to++) n += 1 + groups[to].threads.length;
      const c = encodeCores(groups, from, to, mtype, true);
      const job: WriteJob = {
        dir: staging, names: c.names, ends: c.ends, arena: c.arena.buffer as SharedArrayBuffer,
        ctl: new SharedArrayBuffer(4), stop: staged.stop.buffer as SharedArrayBuffer,
        written: new SharedArrayBuffer(c.names.length),
      };
      jobs.push(job);
      w?.postMessage(job);
      staged.posted = true;
      from = to;
    }
    w?.postMessage({ end: true });
  } catch (e) {
    await stopStaging(staged);
    throw e;
  }
  const beginMs = now() - t0;
  const stop = () => stopStaging(staged);

  return {
    abort: stop,
    finish: async (info: DumpInfo): Promise<WriteResult> => {
      const t1 = now();
      try {
        checkSnapshot({ info, tasks: tasks as RecordedTask[] });
        // first this thread's share of the core images, beside the worker; once every one is claimed the
        // worker starts the write-back of what is written (its syncfs, see WORKER_SOURCE), and this thread
        // encodes and writes tasks.img, pstree.img and inventory.img meanwhile, while that write-back waits on
        // the device. An error that write-back meets is reported by the syncfs on syncFd below (each open
        // directory sees a write-back error once). Not on a pool thread of this one: starting libuv's pool can
        // abort the process when no thread can be had, and this must not.
        const io: FileIo = { ...fileCalls(koffi, libc, staged.syncFd!, CREATE | O_CLOEXEC, VARIADIC_AS_FIXED), code: errnoName };
        for (const job of jobs) {
          const mine = writeShare(io, job, SHARE_CHUNK);
          if (mine.error) throw outputError(mine.error.path, 'write', mine.error);
        }
        const heads = encodeHeads(groups);
        const own = new Map<string, Buffer>([
          ['inventory.img', heads.inventory], ['pstree.img', heads.pstree], ['tasks.img', encodeTasksImage(info, tasks)],
        ]);
        let bytes = stage(own, staging);
        w?.ref();
        const theirs = await done;
        if (theirs.error) throw outputError(theirs.error.path, 'write', theirs.error);
        if (theirs.lost) {
          for (const job of jobs) {
            const redone = writeLost(job);
            if (redone.error) throw outputError(redone.error.path, 'write', redone.error);
          }
        }
        let missing = 0;
        for (const job of jobs) {
          missing += new Uint8Array(job.written).reduce((n, x) => n + (x ? 0 : 1), 0);
          bytes += job.ends[job.ends.length - 1];
        }
        if (missing) throw new ImageWriteError(`cannot write images to ${staging}: ${missing} files were not written`);
        syncDir(staged.syncFd!, staging);
        closeSync(staged.syncFd!);
        staged.syncFd = undefined;
        commit(p, staging);
        let files = own.size;
        for (const job of jobs) files += job.names.length;
        return { dir: p.target, files, bytes, ms: beginMs + now() - t1, workers: w && !theirs.lost ? 1 : 0 };
      } catch (e) {
        await stop();
        throw e;
      }
    },
  };
}
