/** diffSnapshots / formatDiff / parseIgnore on constructed Snapshots. */
import { describe, expect, it } from 'vitest';
import {
  CAPABILITY_NAMES, DIFF_SCHEMA_VERSION, capabilityName, diffSnapshots, formatDiff, maskBits, parseIgnore,
} from '../../src/image/diff.js';
import type { DumpInfo, Snapshot, Task } from '../../src/collector/task.js';
import { UsageError } from '../../src/errors.js';

const FULL: [number, number] = [0xffffffff, 0x1ff]; // bits 0..40

function task(pid: number, over: Partial<Task> = {}): Task {
  return {
    pid, tgid: pid, ppid: 1, tpid: 0, sid: 1, pgid: 1, state: 'S', comm: `p${pid}`,
    uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0,
    capInh: [0, 0], capPrm: FULL, capEff: FULL, capBnd: FULL, capAmb: [0, 0],
    groups: [0], startTime: 1000 + pid, nice: 0, sigBlk: [0, 0], flags: 0x400100,
    ...over,
  };
}

function info(over: Partial<DumpInfo> = {}): DumpInfo {
  return {
    formatVersion: 1, tool: 'tdcollect 0.1.0', source: 'procfs', freeze: 'ptrace', live: false,
    kernel: '6.18', hostname: 'h', root: 10, createdAt: 1, processes: 0, threads: 0,
    timings: { freeze: 1, collect: 2 }, missing: [], ...over,
  };
}

function snap(tasks: Task[], over: Partial<DumpInfo> = {}): Snapshot {
  return { info: info(over), tasks };
}

const base = (): Task[] => [
  task(10, { ppid: 1 }),
  task(11, { tgid: 10, comm: 'worker' }),
  task(20, { ppid: 10 }),
  task(30, { ppid: 20 }),
];

describe('capability names', () => {
  it('names bits 0..40 and falls back to bit N', () => {
    expect(CAPABILITY_NAMES).toHaveLength(41);
    expect(capabilityName(0)).toBe('CAP_CHOWN');
    expect(capabilityName(21)).toBe('CAP_SYS_ADMIN');
    expect(capabilityName(40)).toBe('CAP_CHECKPOINT_RESTORE');
    expect(capabilityName(41)).toBe('bit 41');
    expect(maskBits([0x5, 0x100])).toEqual([0, 2, 40]);
    expect(maskBits([0x80000000, 0x80000000])).toEqual([31, 63]);
  });
});

describe('diffSnapshots', () => {
  it('equal trees are equal even when headers differ', () => {
    const d = diffSnapshots(snap(base()), snap(base(), { createdAt: 99, timings: { freeze: 7 }, source: 'bpf' }));
    expect(d.equal).toBe(true);
    expect(d.version).toBe(DIFF_SCHEMA_VERSION);
    expect(d.processes).toEqual([]);
    expect(formatDiff(d)).toBe('');
  });

  it('a removed child names its pid', () => {
    const b = base().filter((t) => t.pid !== 30);
    const d = diffSnapshots(snap(base()), snap(b));
    expect(d.equal).toBe(false);
    expect(d.processes).toEqual([{ status: 'removed', pid: 30, comm: 'p30', startTime: 1030, ppid: 20, threads: [30] }]);
    expect(formatDiff(d)).toContain('process 30 (p30): removed (ppid 20, start 1030)');
  });

  it('a reused pid is one removed and one added', () => {
    const b = base();
    b[3] = task(30, { ppid: 20, startTime: 5555, comm: 'other' });
    const d = diffSnapshots(snap(base()), snap(b));
    expect(d.processes.map((e) => [e.pid, e.status, e.comm])).toEqual([[30, 'removed', 'p30'], [30, 'added', 'other']]);
    expect(d.summary).toEqual({ added: 1, removed: 1, changed: 0 });
  });

  it('without a start time on one side matches by pid alone and says so', () => {
    const b = base();
    b[3] = task(30, { ppid: 20, startTime: undefined, comm: 'other' });
    const d = diffSnapshots(snap(base()), snap(b));
    expect(d.matchedByPidOnly).toBe(true);
    expect(d.processes).toHaveLength(1);
    expect(d.processes[0]).toMatchObject({ status: 'changed', pid: 30, matchedBy: 'pid' });
    expect(d.processes[0].changes).toEqual([{ field: 'comm', kind: 'value', old: 'p30', new: 'other' }]);
    const text = formatDiff(d);
    expect(text).toContain('matched by pid only');
    expect(text).toContain('comm: "p30" -> "other"');
  });

  it('reparenting, session and process group', () => {
    const b = base();
    b[3] = { ...b[3], ppid: 1, sid: 30, pgid: 30 };
    const d = diffSnapshots(snap(base()), snap(b));
    expect(d.processes[0].changes).toEqual([
      { field: 'ppid', kind: 'reparent', old: 20, new: 1 },
      { field: 'sid', kind: 'session', old: 1, new: 30 },
      { field: 'pgid', kind: 'pgroup', old: 1, new: 30 },
    ]);
    const text = formatDiff(d);
    expect(text).toContain('  ppid: 20 -> 1 (reparented)\n');
    expect(text).toContain('  sid: 1 -> 30 (session changed)\n');
    expect(text).toContain('  pgid: 1 -> 30 (process group changed)\n');
  });

  it('creds: ids, capabilities by name (incl. unknown bits), groups', () => {
    const b = base();
    // drop CAP_SYS_ADMIN (21) and CAP_CHECKPOINT_RESTORE (40) from capEff; add bit 42 to capBnd
    b[2] = { ...b[2], uid: 1000, euid: 1000, capEff: [0xffffffff & ~(1 << 21), 0xff], capBnd: [0xffffffff, 0x5ff],
      groups: [0, 27, 100] };
    const d = diffSnapshots(snap(base()), snap(b));
    const ch = d.processes[0].changes!;
    expect(ch.map((c) => c.field)).toEqual(['uid', 'euid', 'capEff', 'capBnd', 'groups']);
    expect(ch[2]).toMatchObject({ kind: 'caps', added: [], removed: ['CAP_SYS_ADMIN', 'CAP_CHECKPOINT_RESTORE'] });
    expect(ch[3]).toMatchObject({ kind: 'caps', added: ['bit 42'], removed: [] });
    expect(ch[4]).toMatchObject({ kind: 'groups', added: [27, 100], removed: [] });
    const text = formatDiff(d);
    expect(text).toContain('process 20 (p20):\n  uid: 0 -> 1000\n  euid: 0 -> 1000\n');
    expect(text).toContain('  capEff: -CAP_SYS_ADMIN -CAP_CHECKPOINT_RESTORE\n');
    expect(text).toContain('  capBnd: +bit 42\n');
    expect(text).toContain('  groups: +27 +100\n');
  });

  it('threads added, removed and changed per process', () => {
    const b = base().filter((t) => t.pid !== 11);
    b.push(task(12, { tgid: 10, comm: 'worker2' }));
    const a = base();
    a.push(task(13, { tgid: 10, comm: 'w3' }));
    b.push(task(13, { tgid: 10, comm: 'w3', state: 'T', sigBlk: [1 << 9, 0] }));
    const d = diffSnapshots(snap(a), snap(b));
    expect(d.processes).toHaveLength(1);
    const e = d.processes[0];
    expect(e.changes).toEqual([]);
    expect(e.threadsRemoved).toEqual([{ tid: 11, comm: 'worker', startTime: 1011 }]);
    expect(e.threadsAdded).toEqual([{ tid: 12, comm: 'worker2', startTime: 1012 }]);
    expect(e.threadChanges).toEqual([{ tid: 13, comm: 'w3', startTime: 1013, matchedBy: 'pid+startTime', changes: [
      { field: 'state', kind: 'value', old: 'S', new: 'T' },
      { field: 'sigBlk', kind: 'signals', old: [0, 0], new: [512, 0], added: ['SIGUSR1'], removed: [] },
    ] }]);
    const text = formatDiff(d);
    expect(text).toContain('  threads removed: 11 (worker)\n  threads added: 12 (worker2)\n');
    expect(text).toContain('  thread 13 (w3): state: "S" -> "T"\n  thread 13 (w3): sigBlk: +SIGUSR1\n');
  });

  it('--ignore fields and groups; unknown names are a usage error', () => {
    const b = base();
    b[2] = { ...b[2], state: 'T', uid: 5, capEff: [0, 0] };
    b[1] = { ...b[1], pid: 14 }; // thread 11 replaced by 14
    expect(diffSnapshots(snap(base()), snap(b), { ignore: ['state', 'creds', 'threads'] }).equal).toBe(true);
    const d = diffSnapshots(snap(base()), snap(b), { ignore: ['STATE', 'caps'] });
    expect(d.ignored.sort()).toEqual(['capAmb', 'capBnd', 'capEff', 'capInh', 'capPrm', 'state']);
    expect(d.processes.map((e) => e.pid)).toEqual([10, 20]);
    expect(d.processes[1].changes!.map((c) => c.field)).toEqual(['uid']);
    expect(() => parseIgnore(['state', 'colour'])).toThrow(UsageError);
    expect(() => parseIgnore(['colour'])).toThrow(/unknown field for --ignore: colour/);
  });

  it('a field one side did not record is not a difference but a note', () => {
    const a = base().map((t) => ({ ...t, securebits: 0 }));
    const b = base().map((t) => ({ ...t, securebits: undefined }));
    const d = diffSnapshots(snap(a), snap(b));
    expect(d.equal).toBe(true);
    expect(d.notCompared).toEqual(['securebits']);
    expect(formatDiff(d)).toContain('note: not compared where one side did not record them: securebits');
  });

  it('fields unknown to this version are compared as values', () => {
    const a = base().map((t) => ({ ...t, cgroupId: 7 }) as Task);
    const b = base().map((t) => ({ ...t, cgroupId: t.pid === 30 ? 8 : 7 }) as Task);
    const d = diffSnapshots(snap(a), snap(b));
    expect(d.processes[0].changes).toEqual([{ field: 'cgroupId', kind: 'value', old: 7, new: 8 }]);
  });

  it('hex for flags, JSON round trip of the document', () => {
    const b = base();
    b[0] = { ...b[0], flags: 0x400140 };
    const d = diffSnapshots(snap(base()), snap(b));
    expect(formatDiff(d)).toContain('  flags: 0x400100 -> 0x400140\n');
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
    expect(d.a).toEqual({ root: 10, source: 'procfs', freeze: 'ptrace', live: false, createdAt: 1, processes: 0, threads: 0 });
  });
});
