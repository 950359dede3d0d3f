/**
 * Cross-source equivalence on a real kernel with the TASKDIAG family: the same frozen tree dumped with the
 * taskdiag source, the procfs source and (ptrace freeze) the bpf source; `tdcollect diff` of the image
 * directories finds nothing.
 * Uses the compiled CLI (bin/tdcollect.js -> dist/).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startTree, tdc, type Fixture, type TreeInfo } from './lib.js';


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

describe('taskdiag vs procfs (and bpf)', () => {
  const cases: [freeze: string, others: string[]][] = [['ptrace', ['procfs', 'bpf']], ['cgroup', ['procfs']]];
  for (const [freeze, others] of cases) {
    it(`frozen with ${freeze}: taskdiag = ${others.join(' = ')} for tdcollect diff`, () => {
      const dump = (source: string): string => {
        const out = join(dir, `${source}-${freeze}`);
        const r = tdc(['dump', '-r', String(tree.info.leader), '-s', source, '-f', freeze, '-o', out]);
        expect(r.stderr, `dump --source ${source}`).toBe('');
        expect(r.status, `dump --source ${source}`).toBe(0);
        return out;
      };
      const a = dump('taskdiag');
      for (const source of others) {
        const b = dump(source);
        const d = tdc(['diff', a, b]);
        expect(d.stdout + d.stderr, `diff taskdiag ${source}`).not.toMatch(/changed|added|removed/);
        expect(d.status, `diff taskdiag ${source}`).toBe(0);
      }
      // the whole fixture tree was seen: 7 processes, 10 threads
      const show = execFileSync(process.execPath, [CLI, 'show', a, '--json'], { encoding: 'utf8' });
      const snap = JSON.parse(show) as { tasks: { pid: number }[] };
      expect(snap.tasks.length).toBe(10);
    });
  }
});
