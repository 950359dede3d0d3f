/**
 * Snapshot <-> image directory: tasks.img is lossless (absent optional fields stay absent), the CRIU images
 * are cross-checked on read, and writing is atomic (refuse / --force / failures leave nothing behind).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPTIONAL_FIELDS, REQUIRED_FIELDS, type Snapshot, type Task } from '../../src/collector/task.js';
import { ImageError, OutputError } from '../../src/errors.js';
import {
  encodeImages, readCriuImages, readImages, readTasksImage, schemas, snapshotToJson, TASK_FIELD_MAP, writeImages,
  writeImagesSync,
} from '../../src/image/index.js';

let work: string;
beforeAll(() => { work = mkdtempSync(join(tmpdir(), 'tdc-image-')); });
afterAll(() => { rmSync(work, { recursive: true, force: true }); });

const task = (pid: number, tgid: number, ppid: number, extra: Partial<Task> = {}): Task => ({
  pid, tgid, ppid, tpid: 0, sid: 100, pgid: 100, state: 'S', comm: `t${pid}`,
  uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0,
  capInh: [0, 0], capPrm: [0xffffffff, 0x1ff], capEff: [0xffffffff, 0x1ff], capBnd: [0xffffffff, 0x1ff],
  ...extra,
});

/** Every optional field set, with edge values (all-ones masks, negative numbers, > 2^32 start time, UTF-8 comm). */
const full: Partial<Task> = {
  capAmb: [0xffffffff, 0xffffffff], groups: [0, 4294967294, 27], securebits: 0x2f, noNewPrivs: false, seccomp: 2,
  startTime: 2 ** 40 + 7, personality: 0x0040000, flags: 0x40400140, sigBlk: [0xfffffeff, 0xffffffff], nice: -20,
  policy: 1, priority: -100, rtPriority: 99, exitCode: -1, futexRla: 0x7ffff7d8ea20, futexRlaLen: 24,
};

function sampleSnapshot(): Snapshot {
  const tasks: Task[] = [
    task(100, 100, 1, { ...full, comm: 'root é ☃', state: 'S' }),
    task(101, 100, 1, { groups: [], noNewPrivs: true }), // empty groups must stay [] (not undefined)
    task(102, 102, 100, { state: 'T', capAmb: [0, 0] }), // no other optional field
    task(103, 103, 102, { state: 'Z', exitCode: 0x700 }),
    task(104, 104, 100, { state: 'R', uid: 1001, euid: 1005, suid: 1006, fsuid: 1007, gid: 1002, egid: 1003, sgid: 1004, fsgid: 1008 }),
    task(105, 104, 100, { state: 'D', sigBlk: [0, 0] }),
  ];
  return {
    info: {
      formatVersion: 1, tool: 'tdcollect 0.1.0', source: 'procfs', freeze: 'ptrace', live: false, kernel: '6.18.0',
      hostname: 'h', root: 100, createdAt: 1764151138123, processes: 4, threads: 6,
      timings: { freeze: 1.25, collect: 3.5 }, syscalls: 123, missing: ['securebits', 'futexRla'],
    },
    tasks,
  };
}

describe('tasks.img is lossless', () => {
  it('maps every Task field, and only those', async () => {
    const keys = TASK_FIELD_MAP.map((f) => f[0]).sort();
    // collectorView is set by the collector, not by a source (so it is in neither list)
    expect(keys).toEqual([...REQUIRED_FIELDS, ...OPTIONAL_FIELDS, 'collectorView'].sort());
    const pb = schemas().task.fieldsArray.map((f) => f.name).sort();
    expect(TASK_FIELD_MAP.map((f) => f[1]).sort()).toEqual(pb);
  });

  it('readImages(writeImages(s)) deep-equals s, absent fields absent', async () => {
    const s = sampleSnapshot();
    const dir = join(work, 'lossless');
    const r = await writeImages(s, dir);
    expect(r.files).toBe(2 + 6 + 1); // inventory, pstree, 6 cores, tasks
    const back = readImages(dir);
    expect(back).toStrictEqual(s);
    expect('capAmb' in back.tasks[1]).toBe(false);
    expect('groups' in back.tasks[2]).toBe(false);
    expect(back.tasks[1].groups).toEqual([]);
    expect('cgroup' in back.info).toBe(false);
    expect('roundTrips' in back.info).toBe(false);
    expect(back.info.timings).toStrictEqual({ freeze: 1.25, collect: 3.5 });
  });

  it('a header with every optional field round-trips too', async () => {
    const s = sampleSnapshot();
    s.info = { ...s.info, roundTrips: 9, rootNsPid: 100, cgroup: '/sys/fs/cgroup/x', live: true, freeze: 'cgroup', timings: { freeze: 0, collect: 1, write: 2, thaw: 3 } };
    const dir = join(work, 'header');
    await writeImages(s, dir);
    expect(readImages(dir)).toStrictEqual(s);
  });

  it('the JSON form has a version and hex masks', async () => {
    const j = snapshotToJson(sampleSnapshot());
    expect(j.version).toBe(2);
    expect('origin' in j).toBe(false);
    expect(j.tasks[0].capAmb).toBe('ffffffffffffffff');
    expect(j.tasks[0].sigBlk).toBe('fffffffffffffeff');
    expect(j.tasks[0].capPrm).toBe('000001ffffffffff');
    expect('capAmb' in j.tasks[1]).toBe(false);
    expect(JSON.parse(JSON.stringify(j))).toEqual(j);
  });

  it('refuses values it cannot store losslessly', async () => {
    const s = sampleSnapshot();
    s.tasks[0] = { ...s.tasks[0], uid: -1 };
    expect(() => encodeImages(s)).toThrow(/field uid = -1/);
    const s2 = sampleSnapshot();
    (s2.tasks[0] as unknown as Record<string, unknown>).mystery = 1;
    expect(() => encodeImages(s2)).toThrow(/mystery has no place/);
  });
});

describe('reading cross-checks the CRIU images', () => {
  it('every CRIU image decodes strictly and matches the snapshot', async () => {
    const dir = join(work, 'criu');
    await writeImages(sampleSnapshot(), dir);
    const c = readCriuImages(dir);
    expect(c.pstree.map((p) => [p.entry.pid, p.entry.ppid, p.entry.threads])).toEqual([
      [100, 0, [100, 101]], [102, 100, [102]], [103, 102, [103]], [104, 100, [104, 105]],
    ]);
    expect([...c.cores.keys()].sort()).toEqual([100, 101, 102, 103, 104, 105]);
    expect(c.cores.get(103)).toEqual({ mtype: 1, tc: { task_state: 2, exit_code: 0x700, personality: 0, flags: 0, blk_sigset: 0n, comm: 't103' } });
    expect(c.unknown).toEqual([]);
  });

  it('a truncated core is reported with file and offset', async () => {
    const dir = join(work, 'trunc');
    await writeImages(sampleSnapshot(), dir);
    const p = join(dir, 'core-101.img');
    writeFileSync(p, readFileSync(p).subarray(0, 20));
    expect(() => readImages(dir)).toThrow(ImageError);
    expect(() => readImages(dir)).toThrow(`${p}: offset 8: premature end of file`);
    // tasks.img alone still reads
    expect(readTasksImage(dir).snapshot.tasks).toHaveLength(6);
    expect(readImages(dir, { verify: false }).tasks).toHaveLength(6);
  });

  it('tasks.img cut exactly between entries is caught by the header counts', async () => {
    const dir = join(work, 'boundary');
    await writeImages(sampleSnapshot(), dir);
    const p = join(dir, 'tasks.img');
    const buf = readFileSync(p);
    // walk the framing: 8 bytes of magics, then u32 length + payload; keep all but the last entry
    let off = 8;
    let last = off;
    while (off < buf.length) { last = off; off += 4 + buf.readUInt32LE(off); }
    writeFileSync(p, buf.subarray(0, last));
    expect(() => readTasksImage(dir)).toThrow(`${p}: offset ${last}: holds 4 processes and 5 threads, its header says 4 and 6`);
    try { readTasksImage(dir); } catch (e) { expect((e as ImageError).reason).toBe('eof'); }
  });

  it('an image that is not a regular file is refused, not read forever', async () => {
    const dir = join(work, 'fifo');
    await writeImages(sampleSnapshot(), dir);
    rmSync(join(dir, 'tasks.img'));
    execFileSync('mkfifo', [join(dir, 'tasks.img')]);
    expect(() => readImages(dir)).toThrow(`${join(dir, 'tasks.img')}: offset 0: not a regular file`);
  });

  it('a pstree.img that disagrees with tasks.img is corrupt', async () => {
    const a = join(work, 'disagree-a');
    const b = join(work, 'disagree-b');
    const s = sampleSnapshot();
    await writeImages(s, a);
    s.tasks[2] = { ...s.tasks[2], sid: 555 };
    await writeImages(s, b);
    writeFileSync(join(a, 'pstree.img'), readFileSync(join(b, 'pstree.img')));
    expect(() => readImages(a)).toThrow(/pstree\.img: offset \d+: entry 1: sid 555 disagrees with tasks\.img \(100\)/);
  });

  it('a missing core or tasks.img names the file', async () => {
    const dir = join(work, 'missing');
    await writeImages(sampleSnapshot(), dir);
    rmSync(join(dir, 'core-105.img'));
    expect(() => readImages(dir)).toThrow(`${join(dir, 'core-105.img')}: no core image for thread 105`);
    // without tasks.img the directory is read as the CRIU image set it also is: the missing core is named
    rmSync(join(dir, 'tasks.img'));
    expect(() => readImages(dir)).toThrow(`${join(dir, 'core-105.img')}: no such image file`);
    rmSync(join(dir, 'inventory.img'));
    rmSync(join(dir, 'pstree.img'));
    expect(() => readImages(dir)).toThrow(`${join(dir, 'tasks.img')}: no such image file (nor inventory.img and pstree.img: not an image set)`);
  });
});

describe('atomic writes', () => {
  const entries = (d: string) => readdirSync(d).sort();
  const leftovers = (parent: string) => readdirSync(parent).filter((n) => n.startsWith('.'));

  it('a non-empty target is refused (exit 5) and left untouched', async () => {
    const parent = mkdtempSync(join(work, 'refuse-'));
    const dir = join(parent, 'out');
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep'), 'x');
    let err: unknown;
    try { await writeImages(sampleSnapshot(), dir); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(OutputError);
    expect((err as OutputError).exitCode).toBe(5);
    expect((err as OutputError).message).toContain(dir);
    expect(entries(dir)).toEqual(['keep']);
    expect(leftovers(parent)).toEqual([]);
  });

  it('--force replaces a non-empty target completely', async () => {
    const parent = mkdtempSync(join(work, 'force-'));
    const dir = join(parent, 'out');
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep'), 'x');
    await writeImages(sampleSnapshot(), dir, { force: true });
    expect(entries(dir)).not.toContain('keep');
    expect(entries(dir)).toContain('tasks.img');
    expect(leftovers(parent)).toEqual([]);
    expect(readImages(dir).tasks).toHaveLength(6);
  });

  it('an empty existing directory is fine; an existing file is refused', async () => {
    const parent = mkdtempSync(join(work, 'empty-'));
    mkdirSync(join(parent, 'out'));
    await writeImages(sampleSnapshot(), join(parent, 'out'));
    expect(entries(join(parent, 'out'))).toHaveLength(9);
    writeFileSync(join(parent, 'file'), 'x');
    await expect(writeImages(sampleSnapshot(), join(parent, 'file'), { force: true })).rejects.toThrow(/exists and is not a directory/);
    expect(leftovers(parent)).toEqual([]);
  });

  it('an unwritable parent gives one OutputError naming the path and errno, and leaves nothing', async () => {
    const parent = mkdtempSync(join(work, 'ro-'));
    const locked = join(parent, 'locked');
    mkdirSync(locked);
    execFileSync('chattr', ['+i', locked]); // immutable: even root gets EPERM
    try {
      let err: unknown;
      try { await writeImages(sampleSnapshot(), join(locked, 'out')); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(OutputError);
      expect((err as Error).message).toBe(`cannot create a directory in ${locked}: EPERM`);
      expect(entries(locked)).toEqual([]);
    } finally {
      execFileSync('chattr', ['-i', locked]);
    }
    let err: unknown;
    try { await writeImages(sampleSnapshot(), join(parent, 'nope', 'out')); } catch (e) { err = e; }
    expect((err as Error).message).toBe(`cannot create a directory in ${join(parent, 'nope')}: ENOENT`);
    chmodSync(parent, 0o755);
  });

  it('writeImagesSync writes the same bytes, atomically too', async () => {
    const parent = mkdtempSync(join(work, 'sync-'));
    await writeImages(sampleSnapshot(), join(parent, 'a'));
    const r = writeImagesSync(sampleSnapshot(), join(parent, 'b'));
    expect(r.files).toBe(9);
    for (const f of entries(join(parent, 'a'))) {
      expect(readFileSync(join(parent, 'b', f)).equals(readFileSync(join(parent, 'a', f)))).toBe(true);
    }
    expect(() => writeImagesSync(sampleSnapshot(), join(parent, 'a'))).toThrow(OutputError);
    expect(leftovers(parent)).toEqual([]);
  });

  it('running out of space mid-write removes the temporary directory', async () => {
    const mnt = mkdtempSync(join(work, 'full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32k', 'tmpfs', mnt]);
    try {
      const s = sampleSnapshot();
      // 60 single-thread processes: more files than 8 pages of tmpfs can hold
      for (let i = 0; i < 60; i++) s.tasks.push(task(1000 + i, 1000 + i, 100));
      let err: unknown;
      try { await writeImages(s, join(mnt, 'out')); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(OutputError);
      expect((err as Error).message).toMatch(/^cannot write .*\.out\.tmp-\d+-[0-9a-f]{8}\/core-\d+\.img: ENOSPC$/);
      expect(readdirSync(mnt)).toEqual([]);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it('bad input is refused before anything is created', async () => {
    const parent = mkdtempSync(join(work, 'bad-'));
    const s = sampleSnapshot();
    s.tasks.push(task(999, 998, 100)); // thread of a process that is not there
    await expect(writeImages(s, join(parent, 'out'))).rejects.toThrow(/thread 999 belongs to process 998/);
    expect(existsSync(join(parent, 'out'))).toBe(false);
    expect(readdirSync(parent)).toEqual([]);
  });
});
