/**
 * Snapshot -> image directory, atomically.
 *
 * Everything is written into a temporary directory beside the target (`.<name>.tmp-<pid>-<rand>` in the same
 * parent, so the final rename cannot cross filesystems); the files and the directory are made durable (an
 * fsync each, or one syncfs(2) when there are many); then the temporary directory is renamed into place and
 * the parent fsynced. A reader never sees a half-written dump: the target either does not exist, holds the previous dump (--force), or holds the complete new one.
 *
 * - target missing or an empty directory: rename(tmp, target) (Linux replaces an empty directory atomically)
 * - target a non-empty directory: refused with OutputError unless `force`; with force the old directory is
 *   renamed away (`.<name>.old-<pid>-<rand>`), the new one renamed in, and the old one removed
 * - target exists and is not a directory: refused with OutputError
 * Any failure removes the temporary directory and reports one OutputError naming the path and errno code.
 *
 * Leftovers: a writer killed with SIGKILL leaves its `.<name>.tmp-…` (killed while staging) or
 * `.<name>.old-…` (killed between moving the previous dump aside and removing it) behind. Their names are
 * `.<name>.{tmp,old}-<pid>-<tag>-<rand>`, tag identifying the writer beyond its pid (WriteOptions.owner: its
 * start time and pid namespace). The next write to the same target removes the leftovers of that target whose
 * writer is certainly gone (owner.gone), and nothing else: not another target's, not a live writer's, not a
 * file, not a name of another form.
 */
import {
  closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmdirSync, rmSync,
  unlinkSync, writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import protobuf from 'protobufjs/minimal.js';
import type { Snapshot } from '../collector/task.js';
import { OutputError, TdError } from '../errors.js';
import {
  checkSnapshot, coreEntry, groupProcesses, headerToPb, hostMarch, inventoryEntry, pstreeEntry, taskToPb,
} from './codec.js';
import { frameImage, KIND } from './framing.js';
import { schemas } from './schema.js';
// the one system call Node lacks for durable writes; image/ still reads nothing from the kernel's task state
import { syncfs } from '../sys/fs.js';
import { errnoName } from '../sys/libc.js';

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
}

export interface WriteResult {
  dir: string;
  files: number;
  bytes: number;
  /** wall time of writeImages, ms */
  ms: number;
}

/** The image files of a snapshot, file name -> bytes (no I/O). */
export function encodeImages(snapshot: Snapshot, opts: { mtype?: number } = {}): Map<string, Buffer> {
  checkSnapshot(snapshot);
  const s = schemas();
  const mtype = opts.mtype ?? hostMarch();
  const files = new Map<string, Buffer>();
  const groups = groupProcesses(snapshot.tasks);

  files.set('inventory.img', frameImage(KIND.inventory, [s.inventory.encode(inventoryEntry()).finish()]));
  files.set('pstree.img', frameImage(KIND.pstree, groups.map((g, i) => s.pstree.encode(pstreeEntry(g, i === 0)).finish())));
  // every core-TID.img: the messages encoded back to back into one protobufjs writer (one allocation for
  // all), then framed into one arena; each file is a view of it
  const w = protobuf.Writer.create();
  const names: string[] = [];
  const ends: number[] = [];
  for (const g of groups) {
    for (const t of [g.leader, ...g.threads]) {
      s.core.encode(coreEntry(t, g, mtype), w);
      names.push(`core-${t.pid}.img`);
      ends.push(w.len);
    }
  }
  const cores = w.finish();
  const core = KIND.core;
  const arena = Buffer.allocUnsafe(cores.length + 12 * names.length);
  let off = 0;
  let start = 0;
  for (let i = 0; i < names.length; i++) {
    const len = ends[i] - start;
    const at = off;
    arena.writeUInt32LE(core.head, off);
    arena.writeUInt32LE(core.magic, off + 4);
    arena.writeUInt32LE(len, off + 8);
    arena.set(cores.subarray(start, ends[i]), off + 12);
    off += 12 + len;
    start = ends[i];
    files.set(names[i], arena.subarray(at, off));
  }
  // tasks.img: the header and one entry per task, each after its u32 length, encoded the same way
  const tw = protobuf.Writer.create();
  const tends: number[] = [];
  s.header.encode(headerToPb(snapshot.info), tw);
  tends.push(tw.len);
  for (const t of snapshot.tasks) {
    s.task.encode(taskToPb(t), tw);
    tends.push(tw.len);
  }
  const entries = tw.finish();
  const tasks = Buffer.allocUnsafe(8 + 4 * tends.length + entries.length);
  tasks.writeUInt32LE(KIND.tasks.head, 0);
  tasks.writeUInt32LE(KIND.tasks.magic, 4);
  off = 8;
  start = 0;
  for (const end of tends) {
    tasks.writeUInt32LE(end - start, off);
    tasks.set(entries.subarray(start, end), off + 4);
    off += 4 + end - start;
    start = end;
  }
  files.set('tasks.img', tasks);
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
  files: Map<string, Buffer>;
}

/** Refuse early (before encoding anything), then encode. */
function plan(snapshot: Snapshot, dir: string, opts: WriteOptions): Plan {
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
  return { target, parent, name, existing, owner: opts.owner, files: encodeImages(snapshot, opts) };
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
function stage(p: Plan, tmp: string): number {
  let bytes = 0;
  const base = tmp + '/';
  for (const [file, data] of p.files) {
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

/** Up to this many files an fsync each is cheaper than a syncfs, which flushes everything dirty on the file system. */
const FSYNC_EACH_MAX = 64;

/**
 * Make every staged file durable: an fsync per file for a small dump; for a large one (a 1,000-task dump
 * writes over 1,000 files) one syncfs(2) on the file system of the temporary directory, which reports
 * write-back errors on Linux >= 5.8.
 */
function syncStaged(p: Plan, tmp: string): void {
  if (p.files.size <= FSYNC_EACH_MAX) {
    for (const file of p.files.keys()) {
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
    const r = syncfs(fd);
    if (r < 0) throw Object.assign(new Error(`syncfs: ${errnoName(-r)}`), { code: errnoName(-r) });
  } catch (e) {
    throw outputError(tmp, 'write', e);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
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
 * Write a snapshot as CRIU images + tasks.img into `dir`, atomically (see the module comment).
 * The files reach the disk (an fsync each, or one syncfs(2) for a large dump) before the rename.
 */
export function writeImagesSync(snapshot: Snapshot, dir: string, opts: WriteOptions = {}): WriteResult {
  const t0 = performance.now();
  const p = plan(snapshot, dir, opts);
  const tmp = makeTemp(p);
  let bytes: number;
  try {
    bytes = stage(p, tmp);
    syncStaged(p, tmp);
    commit(p, tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir: p.target, files: p.files.size, bytes, ms: performance.now() - t0 };
}

/** writeImagesSync behind a Promise (the library's and the CLI's entry point). */
export async function writeImages(snapshot: Snapshot, dir: string, opts: WriteOptions = {}): Promise<WriteResult> {
  return writeImagesSync(snapshot, dir, opts);
}
