/**
 * Image directory -> Snapshot (from tasks.img, the lossless form) and strict decoding of the CRIU images.
 *
 * readImages() reads tasks.img and, unless `verify: false`, also decodes inventory.img, pstree.img and every
 * core-<tid>.img strictly (magics, lengths, wire format, every proto2 required field at every level) and
 * checks they agree with tasks.img: the pstree entries are the ones tasks.img implies, and every thread has
 * a core with tc exactly for leaders. Any problem is an ImageError naming the file and the byte offset.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RecordedTask, Snapshot } from '../collector/task.js';
import { ImageError } from '../errors.js';
import { groupProcesses, isDead, pbToHeader, pbToTask, pstreeEntry } from './codec.js';
import { decodeImage, decodeMessage, splitEntries, KIND, type Decoded, type ImageKind, type RawEntry, type UnknownField } from './framing.js';
import { schemas } from './schema.js';
import { decodeCriuSet, type CriuSetInfo } from './criu.js';
import type protobuf from 'protobufjs/light.js';

/**
 * A failed stat, open or readdir as an ImageError: 'missing' (with `missing` as the message) when the path
 * does not exist, 'io' with "`verb`: ERRNO" for anything else.
 */
export function fsImageError(path: string, e: unknown, missing: string, verb: string): ImageError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
  if (code === 'ENOENT' || code === 'ENOTDIR') return new ImageError(path, 0, 'missing', missing);
  return new ImageError(path, 0, 'io', `${verb}: ${code}`);
}

/** Read a whole image file; only regular files (a FIFO or /dev/zero would never end). */
function readImageFile(path: string): Buffer {
  let fd: number | undefined;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; a regular file ignores the flag
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ImageError(path, 0, 'io', 'not a regular file');
    return readFileSync(fd);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw fsImageError(path, e, 'no such image file', 'cannot read');
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function decodeFile(files: ImageFiles, name: string, kind: ImageKind, type: protobuf.Type): { entry: RawEntry; msg: Decoded }[] {
  return decodeImage(files.label(name), files.read(name), kind, type);
}

/**
 * An image set as named files: a directory, or the image directory of an archive. The only thing the
 * decoders see; where the bytes came from matters only to `label` (how errors name a file).
 */
export interface ImageFiles {
  /** the set as the user named it (a directory or an archive path) */
  readonly path: string;
  /** names of the files the set holds (plain names, no directories) */
  names(): readonly string[];
  has(name: string): boolean;
  /** bytes of one file; ImageError 'missing' when absent */
  read(name: string): Buffer;
  /** how errors name a file: the path in a directory, ARCHIVE:MEMBER in an archive */
  label(name: string): string;
}

/** The files of an image directory, read on demand (regular files only). */
export function dirFiles(dir: string): ImageFiles {
  let listed: string[] | undefined;
  const names = (): string[] => {
    if (!listed) {
      try {
        listed = readdirSync(dir);
      } catch (e) {
        throw fsImageError(dir, e, 'no such image directory', 'cannot list');
      }
    }
    return listed;
  };
  return {
    path: dir,
    names,
    has: (name) => names().includes(name),
    read: (name) => readImageFile(join(dir, name)),
    label: (name) => join(dir, name),
  };
}

const asFiles = (x: string | ImageFiles): ImageFiles => (typeof x === 'string' ? dirFiles(x) : x);

export interface UnknownFieldAt extends UnknownField {
  file: string;
}

export interface TasksImage {
  snapshot: Snapshot;
  /** fields this tdcollect does not know (written by a newer one): kept, reported, not dropped silently */
  unknown: UnknownFieldAt[];
}

function collectUnknown(file: string, m: Decoded, out: UnknownFieldAt[]): void {
  if (m.$unknown) for (const u of m.$unknown) out.push({ file, ...u });
  for (const v of Object.values(m)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v)) collectUnknown(file, v as Decoded, out);
    else if (Array.isArray(v)) for (const x of v) if (x && typeof x === 'object' && !Buffer.isBuffer(x)) collectUnknown(file, x as Decoded, out);
  }
}

/** Read tasks.img alone (of a directory, or of any image set). */
export function readTasksImage(set: string | ImageFiles): TasksImage {
  const files = asFiles(set);
  const s = schemas();
  const path = files.label('tasks.img');
  const buf = files.read('tasks.img');
  // the first entry is a dump_header, the rest are tasks
  const raw = splitEntries(path, buf, KIND.tasks);
  if (raw.length === 0) throw new ImageError(path, buf.length, 'eof', 'premature end of file: tasks image has no dump header');
  const unknown: UnknownFieldAt[] = [];
  const hm = decodeMessage(path, buf, raw[0].start, raw[0].end, s.header);
  collectUnknown(path, hm, unknown);
  const info = pbToHeader(path, raw[0].offset, hm);
  const tasks = [];
  for (let i = 1; i < raw.length; i++) {
    const m = decodeMessage(path, buf, raw[i].start, raw[i].end, s.task);
    collectUnknown(path, m, unknown);
    tasks.push(pbToTask(path, raw[i].offset, m));
  }
  // entries end at EOF with no count: a file cut exactly between entries is only caught by the header's counts
  let processes = 0;
  for (const t of tasks) if (t.pid === t.tgid) processes++;
  if (tasks.length !== info.threads || processes !== info.processes) {
    throw new ImageError(path, buf.length, tasks.length < info.threads ? 'eof' : 'corrupt',
      `holds ${processes} processes and ${tasks.length} threads, its header says ${info.processes} and ${info.threads}`);
  }
  // the tasks are in the root's pid-namespace view: the root is rootNsPid there when that is not ours
  checkTaskSet(path, tasks, raw.slice(1).map((r) => r.offset), info.rootNsPid ?? info.root);
  return { snapshot: { info, tasks }, unknown };
}

/**
 * A tasks image must describe one tree: no task twice, every thread's process present, the root first.
 * Errors name the offset of the offending entry.
 */
function checkTaskSet(path: string, tasks: readonly RecordedTask[], offsets: readonly number[], root: number): void {
  const leaders = new Set<number>();
  const seen = new Set<number>();
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i];
    if (seen.has(t.pid)) throw new ImageError(path, offsets[i], 'corrupt', `task ${t.pid} appears twice`);
    seen.add(t.pid);
    if (t.pid === t.tgid) leaders.add(t.pid);
  }
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i];
    if (!leaders.has(t.tgid)) {
      throw new ImageError(path, offsets[i], 'corrupt', `thread ${t.pid} belongs to process ${t.tgid}, which is not in the image`);
    }
  }
  if (tasks.length > 0 && tasks[0].pid !== root) {
    throw new ImageError(path, offsets[0], 'corrupt', `the first task is ${tasks[0].pid}, not the root process ${root}`);
  }
}

export interface CriuImages {
  inventory: Decoded;
  /** pstree entries, with the file offset of each */
  pstree: { offset: number; entry: Decoded }[];
  /** core_entry by thread id */
  cores: Map<number, Decoded>;
  unknown: UnknownFieldAt[];
}

const CORE_PREFIX = 'core-';
const IMG_SUFFIX = '.img';

/** N of a <prefix>N.img name (core-TID.img, ids-PID.img, creds-PID.img), or undefined */
export function imageNumber(name: string, prefix: string): number | undefined {
  if (!name.startsWith(prefix) || !name.endsWith(IMG_SUFFIX)) return undefined;
  const digits = name.slice(prefix.length, name.length - IMG_SUFFIX.length);
  if (digits.length === 0 || digits.length > 10) return undefined;
  let n = 0;
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return undefined;
    n = n * 10 + c;
  }
  return n;
}

const coreTid = (name: string): number | undefined => imageNumber(name, CORE_PREFIX);

/**
 * Decode inventory.img, pstree.img and every core-<tid>.img of a directory strictly, as CRIU's own decoder
 * would (also works on dumps CRIU wrote; their fields outside tdcollect's schemas land in `unknown`).
 */
export function readCriuImages(set: string | ImageFiles): CriuImages {
  const files = asFiles(set);
  const s = schemas();
  const unknown: UnknownFieldAt[] = [];
  const invPath = files.label('inventory.img');
  const inventory = decodeFile(files, 'inventory.img', KIND.inventory, s.inventory)[0].msg;
  collectUnknown(invPath, inventory, unknown);
  if (inventory.img_version !== 2) {
    throw new ImageError(invPath, 8, 'corrupt', `img_version ${inventory.img_version} is not supported (expected 2)`);
  }
  const psPath = files.label('pstree.img');
  const pstree = decodeFile(files, 'pstree.img', KIND.pstree, s.pstree).map(({ entry, msg }) => {
    collectUnknown(psPath, msg, unknown);
    return { offset: entry.offset, entry: msg };
  });
  const cores = new Map<number, Decoded>();
  for (const name of files.names()) {
    const tid = coreTid(name);
    if (tid === undefined) continue;
    const p = files.label(name);
    const core = decodeFile(files, name, KIND.core, s.core)[0].msg;
    collectUnknown(p, core, unknown);
    cores.set(tid, core);
  }
  return { inventory, pstree, cores, unknown };
}

function sameThreads(a: unknown, b: number[]): boolean {
  const x = (a as number[] | undefined) ?? [];
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

/** Check the CRIU images agree with the snapshot read from tasks.img. */
export function verifyCriuImages(set: string | ImageFiles, snapshot: Snapshot, criu: CriuImages): void {
  const files = asFiles(set);
  const psPath = files.label('pstree.img');
  const groups = groupProcesses(snapshot.tasks);
  if (criu.pstree.length !== groups.length) {
    const at = criu.pstree[Math.min(criu.pstree.length, groups.length)]?.offset ?? 8;
    throw new ImageError(psPath, at, 'corrupt', `pstree.img has ${criu.pstree.length} entries, tasks.img ${groups.length} processes`);
  }
  groups.forEach((g, i) => {
    const want = pstreeEntry(g, i === 0);
    const { offset, entry } = criu.pstree[i];
    for (const k of ['pid', 'ppid', 'pgid', 'sid'] as const) {
      if (entry[k] !== want[k]) {
        throw new ImageError(psPath, offset, 'corrupt', `entry ${i}: ${k} ${String(entry[k])} disagrees with tasks.img (${String(want[k])})`);
      }
    }
    if (!sameThreads(entry.threads, want.threads as number[])) {
      throw new ImageError(psPath, offset, 'corrupt', `entry ${i}: threads disagree with tasks.img`);
    }
    for (const t of [g.leader, ...g.threads]) {
      const p = files.label(`core-${t.pid}.img`);
      const core = criu.cores.get(t.pid);
      if (!core) throw new ImageError(p, 0, 'missing', `no core image for thread ${t.pid}`);
      const leader = t === g.leader;
      if (leader !== (core.tc !== undefined)) {
        throw new ImageError(p, 8, 'corrupt', leader ? 'leader core has no tc' : 'non-leader core has a tc');
      }
      if (!isDead(g) && core.thread_core === undefined) throw new ImageError(p, 8, 'corrupt', 'live thread core has no thread_core');
    }
  });
}

export interface ReadOptions {
  /** also decode and cross-check the CRIU images beside tasks.img (default true) */
  verify?: boolean;
}

/**
 * Read an image directory back into a Snapshot: a tdcollect dump (from tasks.img, cross-checked with its
 * CRIU images unless `verify: false`) or a directory CRIU wrote (decoded from its images; see criu.ts).
 * Archives are read by readImageSet(), which is asynchronous (they are streamed).
 */
export function readImages(dir: string, opts: ReadOptions = {}): Snapshot {
  return decodeImageSet(dirFiles(dir), opts).snapshot;
}

/** Which writer an image set comes from: tasks.img means tdcollect, inventory + pstree without it CRIU. */
export function imageSetWriter(files: ImageFiles): 'tdcollect' | 'criu' {
  if (files.has('tasks.img')) return 'tdcollect';
  if (files.has('pstree.img') || files.has('inventory.img')) return 'criu';
  throw new ImageError(files.label('tasks.img'), 0, 'missing', 'no such image file (nor inventory.img and pstree.img: not an image set)');
}

/** One decoder for every image set: tdcollect's (tasks.img) or CRIU's (inventory, pstree, core, ids). */
export function decodeImageSet(files: ImageFiles, opts: ReadOptions = {}): { snapshot: Snapshot; writer: 'tdcollect' | 'criu'; criu?: CriuSetInfo } {
  const writer = imageSetWriter(files);
  if (writer === 'tdcollect') {
    const { snapshot } = readTasksImage(files);
    if (opts.verify !== false) verifyCriuImages(files, snapshot, readCriuImages(files));
    return { snapshot, writer };
  }
  const { snapshot, info } = decodeCriuSet(files);
  return { snapshot, writer, criu: info };
}
