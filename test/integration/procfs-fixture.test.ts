/**
 * The treegen fixture itself: the trees it reports are the trees the kernel shows (ps), and kill()
 * leaves nothing behind. Every other real-tree test relies on this.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { killAllTrees, spawnTree } from '../helpers/tree.js';

afterAll(killAllTrees);

interface PsRow { pid: number; tid: number; ppid: number; pgid: number; sid: number; stat: string; }

function psThreads(pids: number[]): Map<number, PsRow> {
  const out = execFileSync('ps', ['-L', '-o', 'pid=,tid=,ppid=,pgid=,sid=,stat=', '-p', pids.join(',')], {
    encoding: 'utf8', maxBuffer: 64 << 20,
  });
  const m = new Map<number, PsRow>();
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    const [pid, tid, ppid, pgid, sid] = f.slice(0, 5).map(Number);
    m.set(tid, { pid, tid, ppid, pgid, sid, stat: f[5] });
  }
  return m;
}

describe('treegen fixture', () => {
  it('builds every role as documented and kill() reaps it all', async () => {
    const tree = await spawnTree({ procs: 4, threads: 2, rootThreads: 1, all: true });
    try {
      const ps = psThreads(tree.pids);
      // every reported thread exists, and ps sees no thread we were not told about
      expect([...ps.keys()].sort((a, b) => a - b)).toEqual(tree.tids);
      for (const pid of tree.pids) {
        const p = tree.procs.get(pid)!;
        const row = ps.get(pid)!;
        expect(row.ppid).toBe(p.ppid);
        expect(row.pgid).toBe(p.pgid);
        expect(row.sid).toBe(p.sid);
      }
      expect(tree.procs.get(tree.root)!.ppid).toBe(tree.keeper);
      expect(tree.sid).toBe(tree.root);
      expect(ps.get(tree.one('stopped'))!.stat[0]).toBe('T');
      expect(ps.get(tree.one('zombie'))!.stat[0]).toBe('Z');
      expect(tree.procs.get(tree.one('pgid'))!.pgid).toBe(tree.one('pgid'));
      expect(tree.procs.get(tree.one('session'))!.sid).toBe(tree.one('session'));
      // the thread-child was forked by the root's non-leader thread: it hangs off that thread
      const tc = tree.one('thread-child');
      expect(tree.procs.get(tc)!.ppid).toBe(tree.root);
      const hangsOff = tree.procs.get(tree.root)!.tids.filter((tid) =>
        readFileSync(`/proc/${tree.root}/task/${tid}/children`, 'utf8').split(' ').includes(String(tc)));
      expect(hangsOff).toHaveLength(1);
      expect(hangsOff[0]).not.toBe(tree.root);
      expect(tree.role('bulk')).toHaveLength(4);
      for (const b of tree.role('bulk')) expect(tree.procs.get(b)!.tids).toHaveLength(3);
      expect(tree.procs.get(tree.one('creds'))!.securebits).toBe(4);
    } finally {
      await tree.kill();
    }
    for (const pid of tree.pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(existsSync(`/proc/${tree.keeper}`)).toBe(false);
  });

  it('builds a 300-deep chain', async () => {
    const tree = await spawnTree({ procs: 300, fanout: 1 });
    try {
      const bulk = tree.role('bulk').map((p) => tree.procs.get(p)!).sort((a, b) => a.index - b.index);
      expect(bulk).toHaveLength(300);
      expect(bulk[0].ppid).toBe(tree.root);
      for (let i = 1; i < bulk.length; i++) expect(bulk[i].ppid).toBe(bulk[i - 1].pid);
    } finally {
      await tree.kill();
    }
    for (const pid of tree.pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
  });
});
