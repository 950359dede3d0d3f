/**
 * `--source auto` picks the cheapest source for the job: a readable pin, TASKDIAG (not on the host: the guest
 * suite covers it), procfs for a small tree, else loading the BPF iterator; and says why, in --stats and check.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnTree, killAllTrees, type Tree } from '../helpers/tree.js';
import { estimateTree, SMALL_TREE } from '../../src/collector/sources/index.js';
import { openSource, planAuto } from '../../src/collector/collect.js';
import { pinIterator, unpinIterator } from '../../src/cli/bpf.js';

const BIN = join(__dirname, '../../bin/tdcollect.js');
const PIN = `/sys/fs/bpf/tdcollect-auto-${process.pid}/tasks`;
let tree: Tree;
const savedPin = process.env.TDCOLLECT_BPF_PIN;

beforeAll(async () => {
  tree = await spawnTree({ procs: 5 });
  process.env.TDCOLLECT_BPF_PIN = PIN; // nothing pinned there yet
});

afterAll(async () => {
  unpinIterator(PIN);
  if (savedPin === undefined) delete process.env.TDCOLLECT_BPF_PIN;
  else process.env.TDCOLLECT_BPF_PIN = savedPin;
  await killAllTrees();
});

describe('estimateTree', () => {
  it('counts the processes of a tree through the children lists, and gives up past the bound', () => {
    expect(estimateTree(tree.root)).toEqual({ processes: tree.pids.length, small: true });
    // past the bound after the root's children list alone: every process found so far counts (the root and
    // its children here, the whole tree), and nothing more is read
    expect(estimateTree(tree.root, 2)).toEqual({ processes: tree.pids.length, small: false });
    expect(estimateTree(0x3ffffff0)).toBeUndefined();
    // a bound on the reads: one children list (the root's) finds 6 processes, not past 100, and settles nothing
    expect(estimateTree(tree.root, 100, 1)).toBeUndefined();
    expect(estimateTree(tree.root, 2, 1)).toEqual({ processes: tree.pids.length, small: false });
  });

  it('counts every task of the system from /proc/loadavg', () => {
    const e = estimateTree(undefined)!;
    let tasks = 0;
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try { tasks += readdirSync(`/proc/${d}/task`).length; } catch { /* gone */ }
    }
    // the system's tasks come and go between the two readings
    expect(Math.abs(e.processes - tasks)).toBeLessThan(Math.max(50, tasks / 10));
    expect(e.small).toBe(e.processes <= SMALL_TREE);
  });
});

describe('--source auto', () => {
  it('reads a small tree from /proc, and says why', async () => {
    const s = await openSource('auto', { root: tree.root });
    try {
      expect(s.name).toBe('procfs');
      expect(s.autoReason).toBe(`a tree of ${tree.pids.length} processes (at most ${SMALL_TREE}): reading /proc costs less than loading the BPF iterator`);
      expect((await s.collectTree(tree.root)).map((t) => t.pid).sort((a, b) => a - b)).toEqual([...tree.pids].sort((a, b) => a - b));
    } finally {
      s.close();
    }
  });

  it('loads the BPF iterator for a tree larger than the bound', async () => {
    const s = await openSource('auto', { root: tree.root, smallTree: 2 });
    try {
      expect(s.name).toBe('bpf');
      expect(s.autoReason).toBe('a tree of more than 2 processes: loading the BPF iterator costs less than reading /proc');
      expect((await s.collectTree(tree.root)).map((t) => t.pid).sort((a, b) => a - b)).toEqual([...tree.pids].sort((a, b) => a - b));
    } finally {
      s.close();
    }
  });

  it('reads a readable pin first, whatever the size', async () => {
    await pinIterator(PIN, 0o600);
    try {
      const { plan } = await planAuto({ root: tree.root });
      expect(plan[0]).toEqual({ name: 'bpf', reason: `a pinned BPF iterator is readable at ${PIN} (no load)` });
      expect(plan.map((c) => c.name)).toEqual(['bpf', 'procfs', 'bpf', 'procfs']);
    } finally {
      unpinIterator(PIN);
    }
  });

  it('dump --stats and check name the choice and the reason', () => {
    const out = mkdtempSync(join(tmpdir(), `tdcollect-auto-${process.pid}-`));
    try {
      const dir = join(out, 'img');
      const r = spawnSync(BIN, ['dump', '-r', String(tree.root), '-o', dir, '--stats'], { encoding: 'utf8', env: process.env });
      expect(r.status, r.stderr).toBe(0);
      const stderr = r.stderr;
      expect(stderr).toContain(`source:           procfs (auto: a tree of ${tree.pids.length} processes (at most ${SMALL_TREE}): reading /proc costs less than loading the BPF iterator)`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const check = execFileSync(BIN, ['check'], { encoding: 'utf8', env: process.env });
    expect(check).toMatch(/^--source auto uses, for every task: (bpf|procfs) \(\d+ tasks in all/m);
    expect(check).toContain('--source auto uses, for a small tree: procfs (a tree of 1 process (at most');
    const json = JSON.parse(execFileSync(BIN, ['check', '--json'], { encoding: 'utf8', env: process.env })) as { autoSmallTree: { name: string } };
    expect(json.autoSmallTree.name).toBe('procfs');
  });
});
