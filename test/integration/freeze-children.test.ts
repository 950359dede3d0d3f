/**
 * Children lists longer than any fixed buffer, on the real kernel.
 *
 * /proc/PID/task/TID/children is a seq_file handed out a page per read(2); a process with 30,000 children
 * prints about 180 KB of pids (and, with the pid space of 32,768 shared with the rest of the machine, the
 * pids wrap past pid_max). Every reader of /proc goes through one reader (src/collector/procfile.ts): here
 * it must return the exact list of children the tree's own report names, and `tdcollect dump` (installed
 * bin, ptrace freezer, with the default source and with the procfs source, which reads the same file) must
 * dump every task of the tree, every time.
 *
 * The 30,000-children tree takes most of a 32,768 pid space for a minute or two: on a shared machine run
 * this file when nothing else spawns large trees.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAllTrees, spawnTree, type Tree } from '../helpers/tree.js';
import { ProcFile } from '../../src/collector/procfile.js';
import { readChildren } from '../../src/collector/freeze/procread.js';
import { readImages } from '../../src/image/read.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'tdcollect.js');
// tmpfs when there is one: 30,000-file dumps are about completeness here, and removing them from a disk
// mounted with online discard takes minutes
const work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tdc-children-'));
afterAll(async () => {
  await killAllTrees();
  rmSync(work, { recursive: true, force: true });
});

/** The root's children as the tree reports them, ascending. */
function childrenOf(tree: Tree): number[] {
  return tree.pids.filter((p) => p !== tree.root && tree.procs.get(p)!.ppid === tree.root).sort((a, b) => a - b);
}

const ascending = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);

/** Dump with the installed bin; check every task of the tree is in the images and nothing else is. */
function dumpAll(tree: Tree, source: string): void {
  const out = join(work, `dump-${source}-${Date.now()}`);
  const r = spawnSync(process.execPath, [BIN, 'dump', '-r', String(tree.root), '-o', out, '-q', '-s', source],
    { encoding: 'utf8', timeout: 300_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const snap = readImages(out);
  const pids = snap.tasks.map((t) => t.pid).sort((a, b) => a - b);
  expect(pids.length).toBe(tree.tids.length);
  expect(pids).toEqual([...tree.tids].sort((a, b) => a - b));
  for (const t of snap.tasks) {
    expect(t.ppid).toBe(tree.procs.get(t.tgid)!.ppid);
    // every child pause()s: the state before the freeze, not the stop the freeze caused
    if (t.pid !== tree.root) expect(t.state).toBe('S');
  }
  rmSync(out, { recursive: true, force: true });
  expect(readdirSync(work).filter((n) => n.startsWith('.'))).toEqual([]);
}

describe('children lists of any length', () => {
  it('reads a 2,500-children list (several seq pages) exactly', async () => {
    const tree = await spawnTree({ procs: 2500 });
    try {
      const kids: number[] = [];
      readChildren(tree.root, tree.root, kids);
      expect(ascending(kids)).toEqual(childrenOf(tree));
      const f = new ProcFile();
      expect(f.read(`/proc/${tree.root}/task/${tree.root}/children`, 'records')).toBeGreaterThan(2 * 4096);
      dumpAll(tree, 'auto');
    } finally {
      await tree.kill();
    }
  }, 300_000);

  it('dumps a process with 30,000 children completely, every time (a 180 KB children list, pids wrapped)', async () => {
    const tree = await spawnTree({ procs: 30000, readyTimeoutMs: 600_000 });
    try {
      const kids: number[] = [];
      readChildren(tree.root, tree.root, kids);
      expect(kids.length).toBe(30000);
      expect(ascending(kids)).toEqual(childrenOf(tree));
      const f = new ProcFile();
      expect(f.read(`/proc/${tree.root}/task/${tree.root}/children`, 'records')).toBeGreaterThan(65536);
      // wrapped: a pid smaller than the one before it in fork order (usual with 30,000 of 32,768 pids)
      const wraps = kids.filter((p, i) => i > 0 && p < kids[i - 1]).length;
      console.log(`30,000 children: ${wraps} wrap(s) in the list, pids ${Math.min(...kids)}..${Math.max(...kids)}`);
      for (let run = 0; run < 2; run++) dumpAll(tree, 'auto');
      dumpAll(tree, 'procfs');
    } finally {
      await tree.kill();
    }
  }, 900_000);
});
