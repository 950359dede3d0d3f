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
import type { Snapshot, Task } from '../collector/task.js';
import { ImageError } from '../errors.js';
import { groupProcesses, isDead, pbToHeader, pbToTask, pstreeEntry } from './codec.js';
import { decodeImage, decodeMessage, splitEntries, KIND, type Decoded, type ImageKind, type RawEntry, type UnknownField } from './framing.js';
import { schemas } from './schema.js';
import type protobuf from 'protobufjs';

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
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    if (code === 'ENOENT') throw new ImageError(path, 0, 'missing', 'no such image file');
    throw new ImageError(path, 0, 'io', `cannot read: ${code}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function decodeFile(path: string, kind: ImageKind, type: protobuf.Type): { entry: RawEntry; msg: Decoded }[] {
  return decodeImage(path, readImageFile(path), kind, type);
}

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

/** Read tasks.img alone. */
export function readTasksImage(dir: string): TasksImage {
  const s = schemas();
  const path = join(dir, 'tasks.img');
  const buf = readImageFile(path);
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
function checkTaskSet(path: string, tasks: readonly Task[], offsets: readonly number[], root: number): void {
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

/** tid of a core-<tid>.img name, or undefined */
function coreTid(name: string): number | undefined {
  if (!name.startsWith(CORE_PREFIX) || !name.endsWith(IMG_SUFFIX)) return undefined;
  const digits = name.slice(CORE_PREFIX.length, name.length - IMG_SUFFIX.length);
  if (digits.length === 0 || digits.length > 10) return undefined;
  let n = 0;
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return undefined;
    n = n * 10 + c;
  }
  return n;
}

/**
 * Decode inventory.img, pstree.img and every core-<tid>.img of a directory strictly, as CRIU's own decoder
 * would (also works on dumps CRIU wrote; their fields outside tdcollect's schemas land in `unknown`).
 */
export function readCriuImages(dir: string): CriuImages {
  const s = schemas();
  const unknown: UnknownFieldAt[] = [];
  const invPath = join(dir, 'inventory.img');
  const inventory = decodeFile(invPath, KIND.inventory, s.inventory)[0].msg;
  collectUnknown(invPath, inventory, unknown);
  if (inventory.img_version !== 2) {
    throw new ImageError(invPath, 8, 'corrupt', `img_version ${inventory.img_version} is not supported (expected 2)`);
  }
  const psPath = join(dir, 'pstree.img');
  const pstree = decodeFile(psPath, KIND.pstree, s.pstree).map(({ entry, msg }) => {
    collectUnknown(psPath, msg, unknown);
    return { offset: entry.offset, entry: msg };
  });
  const cores = new Map<number, Decoded>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new ImageError(dir, 0, 'io', `cannot list: ${(e as NodeJS.ErrnoException).code ?? 'EIO'}`);
  }
  for (const name of names) {
    const tid = coreTid(name);
    if (tid === undefined) continue;
    const p = join(dir, name);
    const core = decodeFile(p, KIND.core, s.core)[0].msg;
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
export function verifyCriuImages(dir: string, snapshot: Snapshot, criu: CriuImages): void {
  const psPath = join(dir, 'pstree.img');
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
      const p = join(dir, `core-${t.pid}.img`);
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
  /** also decode and cross-check the CRIU images (default true) */
  verify?: boolean;
}

/** Read an image directory back into the Snapshot it was written from. */
export function readImages(dir: string, opts: ReadOptions = {}): Snapshot {
  const { snapshot } = readTasksImage(dir);
  if (opts.verify !== false) verifyCriuImages(dir, snapshot, readCriuImages(dir));
  return snapshot;
}
