/**
 * The same frozen tree dumped with the bpf source and with the procfs source, through the CLI as a user runs
 * it: `tdcollect diff` of the two image directories finds nothing. The tree has every role treegen makes:
 * threads, a stopped task, a zombie, split credentials with 20 supplementary groups and ambient
 * capabilities, no_new_privs and seccomp, a child in its own process group and session, a child forked by a
 * non-leader thread, scheduling policies. Each dump freezes the tree with ptrace and thaws it; the tree does
 * not change between the two (its tasks sleep, stay stopped, or are zombies).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnTree, killAllTrees, type Tree } from '../helpers/tree.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'tdcollect.js');
const tdc = (args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8', env: { ...process.env, TDCOLLECT_BPF_PIN: 'none' }, maxBuffer: 64 << 20,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

let tree: Tree;
let dir: string;
beforeAll(async () => {
  tree = await spawnTree({ procs: 5, threads: 2, rootThreads: 1, all: true });
  dir = mkdtempSync(join(tmpdir(), 'td-bpf-eq-'));
});
afterAll(async () => {
  await killAllTrees();
  rmSync(dir, { recursive: true, force: true });
});

describe('bpf and procfs sources, images of the same frozen tree', () => {
  it('ptrace freeze: tdcollect diff finds nothing, and both hold every thread', () => {
    const dump = (source: string): string => {
      const out = join(dir, `${source}-ptrace`);
      const r = tdc(['dump', '-r', String(tree.root), '-s', source, '-f', 'ptrace', '-o', out]);
      expect(r.err, `dump --source ${source}`).toBe('');
      expect(r.code, `dump --source ${source}`).toBe(0);
      return out;
    };
    const bpf = dump('bpf');
    const procfs = dump('procfs');
    const d = tdc(['diff', bpf, procfs]);
    // only the note that what procfs cannot read (securebits) was left out of the comparison
    expect(d.out + d.err).toBe('note: not compared where one side did not record them: securebits\n');
    expect(d.code).toBe(0);
    for (const img of [bpf, procfs]) {
      const show = JSON.parse(tdc(['show', img, '--json']).out) as { tasks: { pid: number }[]; source: string };
      expect(show.tasks.map((t) => t.pid).sort((a, b) => a - b), img).toEqual(tree.tids);
    }
  });

  it('the diff is not blind: a dump of another tree differs', async () => {
    const other = await spawnTree({ procs: 2 });
    try {
      const a = join(dir, 'other');
      expect(tdc(['dump', '-r', String(other.root), '-s', 'bpf', '-f', 'ptrace', '-o', a]).code).toBe(0);
      const d = tdc(['diff', join(dir, 'bpf-ptrace'), a]);
      expect(d.code).toBe(1);
      expect(d.out).toMatch(/removed|added|changed/);
    } finally {
      await other.kill();
    }
  });
});
