/**
 * Large dumps are staged by a worker thread beside the calling thread (src/image/write.ts, WORKER_MIN_FILES):
 * the files it writes carry the same bytes as the single-thread writer's, and the atomicity holds on that
 * path too: a failure in either thread (a full file system, a refused snapshot) or an abandoned write leaves
 * nothing behind, and --force replaces the previous dump whole.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RecordedTask, Snapshot } from '../../src/collector/task.js';
import { ImageWriteError, OutputError } from '../../src/errors.js';
import {
  beginWrite, encodeImages, prepareWrite, readImages, WORKER_MIN_FILES, writeImages, writeImagesSync,
} from '../../src/image/index.js';

let work: string;
beforeAll(() => { work = mkdtempSync(join(tmpdir(), `tdc-write-worker-${process.pid}-`)); });
afterAll(() => { rmSync(work, { recursive: true, force: true }); });

/** n tasks: processes of 1 to 3 threads, every other one with a different comm and creds, so files differ. */
function bigSnapshot(n: number): Snapshot {
  const tasks: RecordedTask[] = [];
  let pid = 1000;
  while (tasks.length < n) {
    const tgid = pid;
    const threads = 1 + (tgid % 3);
    for (let k = 0; k < threads && tasks.length < n; k++, pid++) {
      tasks.push({
        pid, tgid, ppid: tgid === 1000 ? 1 : 1000, tpid: 0, sid: 1000, pgid: 1000, state: k ? 'S' : 'R',
        comm: `w${pid % 97}`, uid: pid % 5, euid: pid % 5, suid: 0, fsuid: pid % 5, gid: pid % 7, egid: 0, sgid: 0, fsgid: 0,
        capInh: [0, 0], capPrm: [pid, 0x1ff], capEff: [pid, 0x1ff], capBnd: [0xffffffff, 0x1ff], capAmb: [0, 0],
        groups: [pid % 11], startTime: 1000 + pid, sigBlk: [pid, 0], nice: (pid % 40) - 20,
      });
    }
  }
  return {
    info: {
      formatVersion: 1, tool: 'tdcollect test', source: 'procfs', freeze: 'ptrace', live: false, kernel: '6.18.0',
      hostname: 'h', root: 1000, createdAt: 1764151138123, processes: tasks.filter((t) => t.pid === t.tgid).length,
      threads: tasks.length, timings: { freeze: 1, collect: 2, thaw: 3 }, missing: [],
    },
    tasks,
  };
}

const N = WORKER_MIN_FILES + 500;
const dots = (d: string) => readdirSync(d).filter((x) => x.startsWith('.'));

describe('the worker path of a large write', () => {
  it('writes the bytes encodeImages gives and writeImagesSync writes, with a worker thread', async () => {
    const s = bigSnapshot(N);
    const parent = mkdtempSync(join(work, 'bytes-'));
    const r = await writeImages(s, join(parent, 'w'));
    expect(r.workers).toBe(1);
    expect(r.files).toBe(N + 3);
    const rs = writeImagesSync(s, join(parent, 's'));
    expect(rs.workers).toBe(0);
    const want = encodeImages(s);
    const names = readdirSync(join(parent, 'w')).sort();
    expect(names).toEqual([...want.keys()].sort());
    expect(readdirSync(join(parent, 's')).sort()).toEqual(names);
    let bytes = 0;
    for (const f of names) {
      const got = readFileSync(join(parent, 'w', f));
      expect(got.equals(want.get(f)!), f).toBe(true);
      expect(got.equals(readFileSync(join(parent, 's', f))), f).toBe(true);
      bytes += got.length;
    }
    expect(r.bytes).toBe(bytes);
    expect(readImages(join(parent, 'w')).tasks).toEqual(s.tasks);
    expect(dots(parent)).toEqual([]);
  });

  it('a small write stays on the calling thread', async () => {
    const parent = mkdtempSync(join(work, 'small-'));
    const r = await writeImages(bigSnapshot(10), join(parent, 'out'));
    expect(r.workers).toBe(0);
    expect(readdirSync(join(parent, 'out'))).toHaveLength(13);
  });

  it('begun before the header is final: tasks.img carries the header given to finish', async () => {
    const s = bigSnapshot(N);
    const parent = mkdtempSync(join(work, 'begin-'));
    const pending = await beginWrite(s.tasks, join(parent, 'out'));
    // while pending, only the temporary directory exists
    expect(existsSync(join(parent, 'out'))).toBe(false);
    expect(dots(parent)).toHaveLength(1);
    const info = { ...s.info, timings: { ...s.info.timings, thaw: 42.5 } };
    const r = await pending.finish(info);
    expect(r.workers).toBe(1);
    expect(readImages(join(parent, 'out')).info.timings.thaw).toBe(42.5);
    expect(dots(parent)).toEqual([]);
  });

  it('prepared before the freeze: beginWrite takes the staging over and writes the same bytes', async () => {
    const s = bigSnapshot(N);
    const parent = mkdtempSync(join(work, 'prepared-'));
    const dir = join(parent, 'out');
    const prepared = prepareWrite(dir);
    // the temporary directory is there from now on, the target not yet
    expect(dots(parent)).toHaveLength(1);
    expect(existsSync(dir)).toBe(false);
    const pending = await beginWrite(s.tasks, dir, { prepared });
    expect(dots(parent)).toHaveLength(1);
    const r = await pending.finish(s.info);
    expect(r.workers).toBe(1);
    const want = encodeImages(s);
    expect(readdirSync(dir).sort()).toEqual([...want.keys()].sort());
    for (const [f, bytes] of want) expect(readFileSync(join(dir, f)).equals(bytes), f).toBe(true);
    // taken over: releasing it now is a no-op
    await prepared.release();
    expect(readdirSync(parent)).toEqual(['out']);
  });

  it('prepared for a dump that turns out small, or not used at all: released, nothing left', async () => {
    const parent = mkdtempSync(join(work, 'prepared-small-'));
    const prepared = prepareWrite(join(parent, 'out'));
    const pending = await beginWrite(bigSnapshot(10).tasks, join(parent, 'out'), { prepared });
    // the worker and its directory are gone before anything is written
    expect(readdirSync(parent)).toEqual([]);
    const s = bigSnapshot(10);
    const r = await pending.finish(s.info);
    expect(r.workers).toBe(0);
    expect(readdirSync(join(parent, 'out'))).toHaveLength(13);
    expect(dots(parent)).toEqual([]);

    const unused = mkdtempSync(join(work, 'prepared-unused-'));
    const p2 = prepareWrite(join(unused, 'out'));
    expect(dots(unused)).toHaveLength(1);
    await p2.release();
    expect(readdirSync(unused)).toEqual([]);
  });

  it('prepared for a target it may not replace: refused at once, as beginWrite would', () => {
    const parent = mkdtempSync(join(work, 'prepared-full-'));
    mkdirSync(join(parent, 'out'));
    writeFileSync(join(parent, 'out', 'keep'), 'x');
    expect(() => prepareWrite(join(parent, 'out'))).toThrow(OutputError);
    expect(readdirSync(parent)).toEqual(['out']);
  });

  it('--force replaces a previous dump whole, and leaves nothing beside it', async () => {
    const parent = mkdtempSync(join(work, 'force-'));
    const dir = join(parent, 'out');
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep'), 'x');
    await expect(writeImages(bigSnapshot(N), dir)).rejects.toThrow(/exists and is not empty/);
    expect(readdirSync(dir)).toEqual(['keep']);
    const s = bigSnapshot(N);
    await writeImages(s, dir, { force: true });
    expect(readdirSync(dir)).not.toContain('keep');
    expect(readImages(dir).tasks).toHaveLength(N);
    expect(dots(parent)).toEqual([]);
  });

  it('an abandoned write (abort) stops the worker and removes the temporary directory', async () => {
    const parent = mkdtempSync(join(work, 'abort-'));
    const pending = await beginWrite(bigSnapshot(N).tasks, join(parent, 'out'));
    expect(dots(parent)).toHaveLength(1);
    await pending.abort();
    expect(readdirSync(parent)).toEqual([]);
  });

  it('a snapshot refused at finish (a value tasks.img cannot store) leaves nothing', async () => {
    const s = bigSnapshot(N);
    s.tasks[N - 1] = { ...s.tasks[N - 1], nice: 2 ** 40 };
    const parent = mkdtempSync(join(work, 'refused-'));
    const pending = await beginWrite(s.tasks, join(parent, 'out'));
    await expect(pending.finish(s.info)).rejects.toThrow(ImageWriteError);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('when no thread can be started (a full pids cgroup), the calling thread writes every file itself', () => {
    // the pids controller: cgroup v1's own hierarchy, or v2's root when it delegates pids to its children
    const v1 = '/sys/fs/cgroup/pids';
    const parent = existsSync(join(v1, 'cgroup.procs')) ? v1 : '/sys/fs/cgroup';
    if (parent !== v1) expect(readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8')).toContain('pids');
    const cg = join(parent, `tdc-write-nothread-${process.pid}`);
    mkdirSync(cg);
    try {
      const s = bigSnapshot(N);
      const dir = mkdtempSync(join(work, 'nothread-'));
      writeFileSync(join(dir, 'snapshot.json'), JSON.stringify(s));
      const r = spawnSync(process.execPath, [join(import.meta.dirname, '..', 'fixtures', 'write-nothread.mjs'), cg, join(dir, 'snapshot.json'), join(dir, 'out')],
        { encoding: 'utf8', timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      const line = JSON.parse(r.stdout);
      expect(line.error).toBeUndefined();
      expect(line.result.workers).toBe(0);
      expect(line.result.files).toBe(N + 3);
      const want = encodeImages(s);
      expect(readdirSync(join(dir, 'out')).sort()).toEqual([...want.keys()].sort());
      for (const [f, bytes] of want) expect(readFileSync(join(dir, 'out', f)).equals(bytes), f).toBe(true);
      expect(dots(dir)).toEqual([]);
    } finally {
      rmdirSync(cg);
    }
  });

  // a tmpfs of its own: the writing threads run out of space (blocks) or of inodes part way through
  for (const [what, opt] of [['space', 'size=1m'], ['inodes', `nr_inodes=${Math.floor(N / 2)}`]] as const) {
    it(`running out of ${what} in either thread: one OutputError naming the file and ENOSPC, nothing left`, async () => {
      const mnt = mkdtempSync(join(work, `full-${what}-`));
      execFileSync('mount', ['-t', 'tmpfs', '-o', `${opt},mode=755`, `tdc-test-${process.pid}`, mnt]);
      try {
        let err: unknown;
        try { await writeImages(bigSnapshot(N), join(mnt, 'out')); } catch (e) { err = e; }
        expect(err).toBeInstanceOf(OutputError);
        expect((err as OutputError).exitCode).toBe(5);
        expect((err as Error).message).toMatch(/^cannot write .*\/\.out\.tmp-\d+-[0-9a-f]{8}\/(core-\d+|tasks|pstree|inventory)\.img: ENOSPC$/);
        expect(readdirSync(mnt)).toEqual([]);
      } finally {
        execFileSync('umount', [mnt]);
      }
    });
  }
});
