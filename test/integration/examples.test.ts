/**
 * The scripts in examples/ run against real trees (treegen), through the package's own name ('tdcollect'
 * resolves to dist/ via package.json "exports"). What they print is checked against treegen's own report
 * and against images dumped by the CLI.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllTrees, spawnTree, type Tree } from '../helpers/tree.js';
import { decodeAll } from '../helpers/msgpack-decode.js';
import { readImages } from '../../src/image/index.js';
import type { Task } from '../../src/collector/task.js';

/** TDCOLLECT_ROOT: run another build's bin/ and examples/ (default: this checkout, built by the global setup) */
const REPO = process.env.TDCOLLECT_ROOT ?? join(import.meta.dirname, '..', '..');
const example = (name: string) => join(REPO, 'examples', name);

function node(...args: string[]) {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', cwd: REPO });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

let tree: Tree;
let work: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tdcollect-examples-'));
  tree = await spawnTree({ procs: 3, threads: 2, rootThreads: 1, stopped: true, zombie: true });
});
afterAll(async () => {
  await killAllTrees();
  rmSync(work, { recursive: true, force: true });
});

function dump(dir: string): void {
  const r = node(join(REPO, 'bin', 'tdcollect.js'), 'dump', '-r', String(tree.root), '-o', dir, '--freeze', 'none');
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
}

const clean = (t: Task) => JSON.parse(JSON.stringify(t)) as Task;

describe('examples/', () => {
  it('dump-and-decode.mjs PID lists every thread of the tree and reads back identical', () => {
    const r = node(example('dump-and-decode.mjs'), String(tree.root), '--freeze', 'none');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^dumped ${tree.pids.length} processes / ${tree.tids.length} threads with `));
    expect(lines[1].startsWith('PID ')).toBe(true);
    const rows = lines.slice(2, -1).map((l) => l.split(/\s+/));
    expect(rows.map((c) => Number(c[0])).sort((a, b) => a - b)).toEqual(tree.tids);
    for (const c of rows) {
      const tid = Number(c[0]);
      expect(Number(c[2]), `tgid of ${tid}`).toBe(tree.threads.get(tid)!.tgid);
    }
    const states = new Map(rows.map((c) => [Number(c[0]), c[3]]));
    expect(states.get(tree.one('stopped'))).toBe('T');
    expect(states.get(tree.one('zombie'))).toBe('Z');
    expect(lines.at(-1)).toBe('read back: identical');
  });

  it('diff-two-dumps.mjs: two dumps of an unchanged tree are equal; the demo reports its killed child', () => {
    const a = join(work, 'a'), b = join(work, 'b');
    dump(a);
    dump(b);
    const same = node(example('diff-two-dumps.mjs'), a, b);
    expect(same).toEqual({ code: 0, out: 'no differences\n', err: '' });

    const demo = node(example('diff-two-dumps.mjs'));
    expect(demo.err).toBe('');
    expect(demo.code).toBe(1);
    const killed = Number(/^killed (\d+)$/m.exec(demo.out)![1]);
    expect(demo.out).toContain(`process ${killed} (sleep): removed`);
    expect(demo.out).toContain(`-> pid ${killed} is gone\n`);
  });

  it('stream-consumer.mjs: the produced msgpack stream holds what tasks.img holds', () => {
    const dir = join(work, 'c');
    dump(dir);
    const fromImage = readImages(dir);
    const raw = execFileSync(process.execPath, [example('stream-consumer.mjs'), '--produce', String(tree.root)], { cwd: REPO });
    const recs = decodeAll(raw) as { type: string; task?: Task; info?: object; threads?: number }[];
    expect(recs[0]).toMatchObject({ type: 'header', format: 'tdcollect-stream', version: 1, info: { root: tree.root } });
    expect(recs.at(-1)).toEqual({ type: 'end', processes: tree.pids.length, threads: tree.tids.length });
    const tasks = recs.filter((r) => r.type === 'task').map((r) => r.task!);
    expect(tasks).toEqual(fromImage.tasks.map(clean));
  });

  it('stream-consumer.mjs: producer | consumer through a real pipe, and its in-process demo', () => {
    const r = spawnSync('sh', ['-c',
      `"${process.execPath}" "${example('stream-consumer.mjs')}" --produce ${tree.root} --format json | ` +
      `"${process.execPath}" "${example('stream-consumer.mjs')}" -`], { encoding: 'utf8', cwd: REPO });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^stream from tdcollect .*, root ${tree.root}$`));
    const pids = lines.filter((l) => l.startsWith('process ')).map((l) => Number(l.split(' ')[1]));
    expect(pids.sort((a, b) => a - b)).toEqual([...tree.pids].sort((a, b) => a - b));
    expect(lines.at(-1)).toBe(`end: ${tree.pids.length} processes, ${tree.tids.length} threads (counted ${tree.tids.length})`);

    const self = node(example('stream-consumer.mjs'));
    expect(self.code).toBe(0);
    expect(self.out).toMatch(/^end: 1 processes, \d+ threads \(counted \d+\)$/m);
  });

  it('a truncated stream is one line naming the offset, exit 2', () => {
    const raw = execFileSync(process.execPath, [example('stream-consumer.mjs'), '--produce', String(tree.root)], { cwd: REPO });
    const r = spawnSync(process.execPath, [example('stream-consumer.mjs'), '-'], {
      input: raw.subarray(0, raw.length - 5), encoding: 'utf8', cwd: REPO,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^stream-consumer: stream: offset \d+: stream ends inside record \d+\n$/);
  });
});
