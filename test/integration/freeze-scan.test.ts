/**
 * The ptrace freezer reading levels of the tree from one scan (FreezeOptions.scan, the bpf source's
 * scanTree) instead of a children list per thread and a stat file per task: the scan itself field by field
 * against /proc, and freezes with scanMin 1 (every level from a scan) against an independent /proc reading
 * and against the same freeze without a scan, on still, churning and thread-creating trees.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { ptraceFreezer, PtraceSession } from '../../src/collector/freeze/ptrace.js';
import { BpfSource } from '../../src/collector/sources/bpf/bpf.js';
import { NoProcessError } from '../../src/errors.js';
import { killAllTrees, spawnTree } from '../helpers/tree.js';
import { spawnChurn } from '../helpers/churn.js';
import { procState, sleep, stoppedOrTraced, tracerPid, walkTree } from '../helpers/freeze.js';

let bpf: BpfSource;

beforeAll(async () => {
  bpf = await BpfSource.open({ pinPath: undefined });
});

afterAll(async () => {
  bpf?.close();
  await killAllTrees();
});

/** pid, tgid, ppid and state of a thread, from its own /proc/TGID/task/TID/stat and status text */
function procRow(tgid: number, tid: number): { pid: number; tgid: number; ppid: number; state: string } {
  const stat = readFileSync(`/proc/${tgid}/task/${tid}/stat`, 'latin1');
  const status = readFileSync(`/proc/${tgid}/task/${tid}/status`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    pid: Number(/\nPid:\t(\d+)/.exec(status)![1]),
    tgid: Number(/\nTgid:\t(\d+)/.exec(status)![1]),
    ppid: Number(fields[1]),
    state: fields[0],
  };
}

describe('bpf source scanTree', () => {
  it('gives every thread of the tree, pid, tgid, ppid and state equal to /proc', async () => {
    const tree = await spawnTree({ procs: 8, threads: 2, rootThreads: 1, all: true });
    try {
      const scan = bpf.scanTree(tree.root);
      expect(scan.count).toBe(tree.tids.length);
      const seen: number[] = [];
      for (let k = 0; k < scan.count; k++) {
        const row = { pid: scan.pid[k], tgid: scan.tgid[k], ppid: scan.ppid[k], state: scan.state[k] };
        expect(row, `task ${row.pid}`).toEqual(procRow(row.tgid, row.pid));
        seen.push(row.pid);
      }
      expect(seen.sort((a, b) => a - b)).toEqual(tree.tids);
      // the roles whose state is not a plain sleep
      const stateOf = (tid: number) => scan.state[[...scan.pid.subarray(0, scan.count)].indexOf(tid)];
      expect(stateOf(tree.one('stopped'))).toBe('T');
      expect(stateOf(tree.one('zombie'))).toBe('Z');
      expect(() => bpf.scanTree(0x3ffffff0)).toThrow(NoProcessError);
    } finally {
      await tree.kill();
    }
  });
});

describe('ptrace freezer with a scan', () => {
  it('freezes exactly the tree, with the pre-freeze states, as the /proc-only freeze does; releases everything', async () => {
    const tree = await spawnTree({ procs: 40, fanout: 4, threads: 2, rootThreads: 1, all: true });
    try {
      const before = new Map(tree.tids.map((t) => [t, procState(t)]));
      const plain = new PtraceSession(tree.root);
      plain.run();
      const plainSeized = [...plain.seized.keys()].sort((a, b) => a - b);
      const plainStates = new Map(plain.states);
      plain.release();
      await sleep(20);
      const s = new PtraceSession(tree.root, { scan: () => bpf.scanTree(tree.root), scanMin: 1 });
      s.run();
      try {
        // every level came from a scan: the root's children, each level below, and the last empty one
        expect(s.stats.scans).toBeGreaterThanOrEqual(3);
        const seized = [...s.seized.keys()].sort((a, b) => a - b);
        expect(seized).toEqual(plainSeized);
        expect(seized).toEqual(tree.tids.filter((t) => before.get(t) !== 'Z'));
        for (const t of tree.tids) {
          expect(s.states.get(t), `state of ${t}`).toBe(before.get(t));
          expect(plainStates.get(t), `state of ${t} (no scan)`).toBe(before.get(t));
          if (before.get(t) === 'Z') continue;
          expect(procState(t), `task ${t} while frozen`).toBe('t');
          expect(tracerPid(t)).toBe(process.pid);
        }
      } finally {
        s.release();
      }
      await sleep(50);
      for (const t of tree.tids) expect(procState(t), `task ${t} after the thaw`).toBe(before.get(t));
      expect(stoppedOrTraced(tree.tids, new Set([tree.one('stopped'), ...tree.procs.get(tree.one('stopped'))!.tids])))
        .toEqual([]);
    } finally {
      await tree.kill();
    }
  });

  it('a churning tree: every task of the frozen tree is seized and stopped, states from before, all released', async () => {
    const tree = await spawnChurn({ churn: 6, idle: 20, fanout: 4 });
    try {
      for (let i = 0; i < 15; i++) {
        const s = new PtraceSession(tree.root, { scan: () => bpf.scanTree(tree.root), scanMin: 1 });
        s.run();
        let frozen: number[];
        try {
          frozen = [...s.seized.keys()];
          // the tree cannot change while frozen: an independent walk of /proc finds exactly what we hold
          const live = walkTree(tree.root).tids.filter((t) => procState(t) !== 'Z');
          expect([...live].sort((a, b) => a - b)).toEqual([...frozen].sort((a, b) => a - b));
          for (const tid of frozen) expect(procState(tid)).toBe('t');
          for (const st of s.states.values()) expect(st).not.toBe('t');
        } finally {
          s.release();
        }
        await sleep(5);
        expect(stoppedOrTraced(frozen.filter((t) => procState(t) !== '-'))).toEqual([]);
      }
    } finally {
      await tree.kill();
    }
  }, 120_000);

  it('threads created between the scan and the seize are frozen too', async () => {
    const tree = await spawnChurn({ threads: 4, churn: 2 });
    try {
      for (let i = 0; i < 30; i++) {
        const s = new PtraceSession(tree.root, { scan: () => bpf.scanTree(tree.root), scanMin: 1 });
        s.run();
        try {
          for (const pid of walkTree(tree.root).pids) {
            if (procState(pid) === 'Z') continue;
            for (const t of readdirSync(`/proc/${pid}/task`).map(Number)) {
              expect(s.seized.has(t), `thread ${t} of ${pid} not seized`).toBe(true);
              expect(procState(t)).toBe('t');
            }
          }
        } finally {
          s.release();
        }
        await sleep(2);
      }
    } finally {
      await tree.kill();
    }
  }, 120_000);

  it('the last scan of a settled freeze gives the same tasks as a new iteration of the frozen tree, field by field', async () => {
    const tree = await spawnTree({ procs: 300, fanout: 150, threads: 1, all: true });
    const other = await BpfSource.open({ pinPath: undefined });
    try {
      const fr = await ptraceFreezer.freeze(tree.root, { scan: () => bpf.scanTree(tree.root) });
      try {
        expect(fr.scanned).toBe(true);
        const reads = bpf.stats().roundTrips!;
        const fromScan = bpf.collectTreeSync(tree.root, { namespaces: true, lastScan: true });
        // no new iteration was read
        expect(bpf.stats().roundTrips).toBe(reads);
        const fresh = other.collectTreeSync(tree.root, { namespaces: true });
        const byPid = (ts: typeof fresh) => [...ts].sort((a, b) => a.pid - b.pid);
        expect(fromScan.length).toBe(tree.tids.length);
        expect(byPid(fromScan)).toEqual(byPid(fresh));
        // asked again, it reads anew (the scan is used once)
        bpf.collectTreeSync(tree.root, { lastScan: true });
        expect(bpf.stats().roundTrips).toBeGreaterThan(reads);
      } finally {
        await fr.thaw();
      }
      // a freeze without a scan, or one whose last step was not a scan, never offers one
      const plain = await ptraceFreezer.freeze(tree.root);
      expect(plain.scanned).toBe(false);
      await plain.thaw();
    } finally {
      other.close();
      await tree.kill();
    }
  });
});
