/**
 * `tdcollect dump --stdout` and `tdcollect ps --stdout`: the stream, parsed back by independent consumers
 * (the spec-written decoder in test/helpers/msgpack-decode.ts, and msgpackr's unpackMultiple in a separate
 * process), equals tasks.img of a dump of the same (quiescent) tree and agrees with /proc.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllTrees, spawnTree, type Tree } from '../helpers/tree.js';
import { decodeAll } from '../helpers/msgpack-decode.js';
import { readImages } from '../../src/image/index.js';
import type { Task } from '../../src/collector/task.js';

const REPO = process.env.TDCOLLECT_ROOT ?? join(import.meta.dirname, '..', '..');
const BIN = join(REPO, 'bin', 'tdcollect.js');

type Rec = { type: string; format?: string; version?: number; info?: Record<string, unknown>; task?: Task; processes?: number; threads?: number };

let tree: Tree;
let work: string;
let fromImage: Task[];
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tdcollect-stream-'));
  tree = await spawnTree({ procs: 4, threads: 2, rootThreads: 1, all: true });
  const dir = join(work, 'img');
  execFileSync(process.execPath, [BIN, 'dump', '-r', String(tree.root), '-o', dir, '--freeze', 'none']);
  fromImage = readImages(dir).tasks.map((t) => JSON.parse(JSON.stringify(t)) as Task);
});
afterAll(async () => {
  await killAllTrees();
  rmSync(work, { recursive: true, force: true });
});

function stream(...args: string[]): Buffer {
  const r = spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 1 << 28 });
  expect(r.stderr.toString()).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

function checkDumpRecords(recs: Rec[]): void {
  expect(recs[0]).toMatchObject({ type: 'header', format: 'tdcollect-stream', version: 1 });
  expect(recs[0].info).toMatchObject({ root: tree.root, processes: tree.pids.length, threads: tree.tids.length });
  expect(recs.at(-1)).toEqual({ type: 'end', processes: tree.pids.length, threads: tree.tids.length });
  expect(recs.slice(1, -1).every((r) => r.type === 'task')).toBe(true);
  expect(recs.slice(1, -1).map((r) => r.task)).toEqual(fromImage);
}

describe('dump --stdout', () => {
  it('msgpack: the independent decoder reads what tasks.img holds', () => {
    const raw = stream('dump', '-r', String(tree.root), '--stdout', '--format', 'msgpack', '--freeze', 'none');
    checkDumpRecords(decodeAll(raw) as Rec[]);
  });

  it('msgpack: msgpackr unpackMultiple in another process reads the same', () => {
    const raw = stream('dump', '-r', String(tree.root), '--stdout', '--freeze', 'none');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e',
      "import { unpackMultiple } from 'msgpackr'; import { readFileSync } from 'node:fs';" +
      'process.stdout.write(JSON.stringify(unpackMultiple(readFileSync(0))));'], { input: raw, cwd: REPO });
    checkDumpRecords(JSON.parse(out.toString()) as Rec[]);
  });

  it('json: JSON Lines', () => {
    const raw = stream('dump', '-r', String(tree.root), '--stdout', '--format', 'json', '--freeze', 'none').toString();
    expect(raw.endsWith('\n')).toBe(true);
    checkDumpRecords(raw.trimEnd().split('\n').map((l) => JSON.parse(l) as Rec));
  });

  it('a consumer gets the first records before the producer is done', async () => {
    const big = await spawnTree({ procs: 600 });
    try {
      const p = spawn(process.execPath, [BIN, 'dump', '-r', String(big.root), '--stdout', '--format', 'json', '--freeze', 'none']);
      const events: string[] = [];
      let chunks = 0;
      let text = '';
      p.stdout.on('data', (d: Buffer) => { if (chunks++ === 0) events.push('data'); text += d.toString(); });
      await new Promise<void>((r) => p.on('close', () => { events.push('close'); r(); }));
      expect(p.exitCode).toBe(0);
      expect(events).toEqual(['data', 'close']);
      expect(chunks).toBeGreaterThan(1); // written in several chunks, not one buffer at the end
      const lines = text.trimEnd().split('\n');
      expect(lines).toHaveLength(big.tids.length + 2);
    } finally {
      await big.kill();
    }
  });
});

describe('ps --stdout', () => {
  it('lists this tree, matching /proc', () => {
    const raw = stream('ps', '--stdout', '--format', 'msgpack');
    const recs = decodeAll(raw) as Rec[];
    expect(recs[0]).toMatchObject({ type: 'header', format: 'tdcollect-stream', version: 1 });
    const end = recs.at(-1)!;
    expect(end.type).toBe('end');
    const tasks = recs.filter((r) => r.type === 'task').map((r) => r.task!);
    expect(end.threads).toBe(tasks.length);
    const byPid = new Map(tasks.map((t) => [t.pid, t]));
    for (const pid of tree.pids) {
      const t = byPid.get(pid);
      expect(t, `pid ${pid}`).toBeDefined();
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      expect(t!.ppid, `ppid of ${pid}`).toBe(Number(f[1]));
      expect(t!.pgid, `pgid of ${pid}`).toBe(Number(f[2]));
      expect(t!.sid, `sid of ${pid}`).toBe(Number(f[3]));
    }
  });
});
