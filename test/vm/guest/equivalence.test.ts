/**
 * Cross-source equivalence on a real kernel with the TASKDIAG family: the same frozen tree dumped with the
 * taskdiag source and the procfs source, then `tdcollect diff` of the two image directories finds nothing.
 * Uses the compiled CLI (bin/tdcollect.js -> dist/).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTree, type Fixture, type TreeInfo } from './lib.js';

const CLI = join(process.cwd(), 'bin/tdcollect.js');
const tdc = (args: string[]): { status: number | null; stdout: string; stderr: string } => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

let tree: Fixture<TreeInfo>;
let dir: string;
const CG = '/sys/fs/cgroup/td-equivalence';
beforeAll(async () => {
  // the cgroup freezer needs the tree in a cgroup of its own: start the fixture inside one
  mkdirSync(CG, { recursive: true });
  tree = await startTree<TreeInfo>(['tree'], ['sh', '-c', `echo $$ > ${CG}/cgroup.procs && exec "$0" "$@"`]);
  dir = mkdtempSync(join(tmpdir(), 'td-eq-'));
});
afterAll(async () => {
  await tree?.stop();
  rmSync(dir, { recursive: true, force: true });
  try { rmdirSync(CG); } catch { /* still populated if the fixture did not exit */ }
});

describe('taskdiag vs procfs', () => {
  for (const freeze of ['ptrace', 'cgroup']) {
    it(`frozen with ${freeze}: the two snapshots are equal for tdcollect diff`, () => {
      const a = join(dir, `taskdiag-${freeze}`);
      const b = join(dir, `procfs-${freeze}`);
      const ra = tdc(['dump', '-r', String(tree.info.leader), '-s', 'taskdiag', '-f', freeze, '-o', a]);
      expect(ra.stderr).toBe('');
      expect(ra.status).toBe(0);
      const rb = tdc(['dump', '-r', String(tree.info.leader), '-s', 'procfs', '-f', freeze, '-o', b]);
      expect(rb.stderr).toBe('');
      expect(rb.status).toBe(0);
      const d = tdc(['diff', a, b]);
      expect(d.stdout + d.stderr, 'diff output').not.toMatch(/changed|added|removed/);
      expect(d.status).toBe(0);
      // both saw the whole fixture tree: 7 processes, 10 threads
      const show = execFileSync(process.execPath, [CLI, 'show', a, '--json'], { encoding: 'utf8' });
      const snap = JSON.parse(show) as { tasks: { pid: number }[] };
      expect(snap.tasks.length).toBe(10);
    });
  }
});
