/**
 * Pid views and namespace identities as data: the collector's one translation step (translatePids), the
 * view selection show and diff use (selectPidView), tasks.img keeping both views and the namespace ids
 * (byte vectors commented field by field, and round trips), and diff's partition comparison of namespaces.
 * The same on real trees: test/integration/pidns-views.test.ts and, against CRIU, test/vm/guest/criu-pidns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { translatePids } from '../../src/collector/collect.js';
import { parseNsPid } from '../../src/collector/nsread.js';
import type { Snapshot, Task } from '../../src/collector/task.js';
import { diffSnapshots, formatDiff } from '../../src/image/diff.js';
import { encodeImages, readImages, schemas, taskToPb, pbToTask, writeImages, snapshotToJson } from '../../src/image/index.js';
import { decodeMessage } from '../../src/image/framing.js';
import { parsePidView, selectPidView } from '../../src/image/view.js';

let work: string;
beforeAll(() => { work = mkdtempSync(join(tmpdir(), `tdc-pidviews-${process.pid}-`)); });
afterAll(() => { rmSync(work, { recursive: true, force: true }); });

const task = (pid: number, tgid: number, ppid: number, sid: number, pgid: number, extra: Partial<Task> = {}): Task => ({
  pid, tgid, ppid, tpid: 0, sid, pgid, state: 'S', comm: `t${pid}`,
  uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0,
  capInh: [0, 0], capPrm: [0, 0], capEff: [0, 0], capBnd: [0, 0],
  ...extra,
});

const hex = (s: string): Buffer => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

describe('translatePids: the collector\'s one translation step', () => {
  // host view: the container's init 500 (a session leader: sid 500), its thread 501, a child 502 in its own
  // process group, and 502's child 503 in a nested pid namespace (its pid at the root's level is 4)
  const hostTree = (): Task[] => [
    task(500, 500, 400, 500, 500, { nsPid: 1 }),
    task(501, 500, 400, 500, 500, { nsPid: 2 }),
    task(502, 502, 500, 500, 502, { nsPid: 3 }),
    task(503, 503, 502, 500, 502, { nsPid: 4 }),
  ];

  it('puts every pid field in the root\'s view and keeps the collector\'s', () => {
    const tasks = hostTree();
    translatePids(tasks, 500, 1);
    expect(tasks.map((t) => [t.pid, t.tgid, t.ppid, t.sid, t.pgid])).toEqual([
      [1, 1, 0, 1, 1], // the root's parent is outside its namespace: ppid 0, as getppid() there and CRIU say
      [2, 1, 0, 1, 1], // a thread of the root: the same ppid
      [3, 3, 1, 1, 3],
      [4, 4, 3, 1, 3],
    ]);
    expect(tasks[2].collectorView).toEqual({ pid: 502, tgid: 502, ppid: 500, sid: 500, pgid: 502 });
    for (const t of tasks) expect('nsPid' in t).toBe(false);
  });

  it('a leader outside the root\'s namespace becomes 0 (what getsid/getpgid return inside it)', () => {
    const tasks = [task(600, 600, 1, 1, 1, { nsPid: 1 })];
    translatePids(tasks, 600, 1);
    // pid 1 (init of the reader's namespace) has no number in the root's namespace
    expect([tasks[0].sid, tasks[0].pgid]).toEqual([0, 0]);
    expect(tasks[0].collectorView).toEqual({ pid: 600, tgid: 600, ppid: 1, sid: 1, pgid: 1 });
  });

  it('refuses a task whose source gave no pid at the root\'s level', () => {
    expect(() => translatePids([task(7, 7, 1, 7, 7)], 7, 1)).toThrow(/task 7: the source gave no pid/);
  });
});

describe('parseNsPid', () => {
  it('reads the chain, outermost first', () => {
    expect(parseNsPid('Name:\tsh\nTgid:\t1234\nNSpid:\t1234\t7\t1\nNSpgid:\t1\n')).toEqual([1234, 7, 1]);
    expect(parseNsPid('Name:\tsh\nNSpid:\t42\n')).toEqual([42]);
    expect(parseNsPid('Name:\tsh\n')).toBeUndefined();
  });
});

function containerSnapshot(): Snapshot {
  const ns = { pid: 4026532300, mnt: 4026532298, net: 4026531840, ipc: 4026531839, uts: 4026531838, user: 4026531837, cgroup: 4026531835, time: 4026531834 };
  return {
    info: {
      formatVersion: 1, tool: 'tdcollect 0.1.0', source: 'procfs', freeze: 'ptrace', live: false, kernel: '6.18.0',
      hostname: 'h', root: 500, rootNsPid: 1, createdAt: 1764151138123, processes: 2, threads: 3, timings: {}, missing: [],
    },
    tasks: [
      task(1, 1, 0, 1, 1, { collectorView: { pid: 500, tgid: 500, ppid: 400, sid: 500, pgid: 500 }, ns: { ...ns } }),
      task(2, 1, 0, 1, 1, { collectorView: { pid: 501, tgid: 500, ppid: 400, sid: 500, pgid: 500 }, ns: { ...ns } }),
      task(3, 3, 1, 1, 3, { collectorView: { pid: 502, tgid: 502, ppid: 500, sid: 500, pgid: 502 }, ns: { ...ns } }),
    ],
  };
}

describe('tasks.img keeps both views and the namespace ids', () => {
  it('the new fields on the wire, byte for byte', () => {
    const t = task(3, 3, 1, 1, 3, {
      collectorView: { pid: 502, tgid: 502, ppid: 500, sid: 500, pgid: 502 },
      ns: { pid: 4026532300, net: 4026531840 },
    });
    const all = Buffer.from(schemas().task.encode(taskToPb(t)).finish());
    const { collectorView: _v, ns: _n, ...without } = t;
    const base = Buffer.from(schemas().task.encode(taskToPb(without)).finish());
    expect(all.subarray(0, base.length).equals(base)).toBe(true);
    const tail = all.subarray(base.length); // fields 37 and 38 come last, in field order
    expect(tail.toString('hex')).toBe(hex(`
      aa 02 0f            # field 37 collector_view, length-delimited (tag 37<<3|2 = 0x12a as varint), 15 bytes
        08 f6 03          #   pid  = 502
        10 f6 03          #   tgid = 502
        18 f4 03          #   ppid = 500
        20 f4 03          #   sid  = 500
        28 f6 03          #   pgid = 502
      b2 02 0c            # field 38 ns (tag 38<<3|2 = 0x132), 12 bytes
        08 cc 83 80 80 0f #   pid = 4026532300 (0xf00001cc)
        18 80 80 80 80 0f #   net = 4026531840 (0xf0000000)
    `).toString('hex'));
    // and back
    const back = pbToTask('tasks.img', 0, decodeMessage('tasks.img', all, 0, all.length, schemas().task));
    expect(back.collectorView).toEqual(t.collectorView);
    expect(back.ns).toEqual(t.ns);
  });

  it('a task record without them (as every earlier tdcollect wrote) reads with both absent', () => {
    const old = hex(`
      08 07 10 07 18 01 20 00 28 07 30 07   # pid 7, tgid 7, ppid 1, tpid 0, sid 7, pgid 7
      3a 01 53                              # state "S"
      42 02 73 68                           # comm "sh"
      48 00 50 00 58 00 60 00               # uid euid suid fsuid = 0
      68 00 70 00 78 00 80 01 00            # gid egid sgid fsgid = 0 (field 16 needs a two-byte tag)
      89 01 0000000000000000                # cap_inh (fixed64)
      91 01 0000000000000000                # cap_prm
      99 01 0000000000000000                # cap_eff
      a1 01 0000000000000000                # cap_bnd
    `);
    const t = pbToTask('tasks.img', 0, decodeMessage('tasks.img', old, 0, old.length, schemas().task));
    expect(t.pid).toBe(7);
    expect('collectorView' in t).toBe(false);
    expect('ns' in t).toBe(false);
  });

  it('round-trips losslessly through a directory; pstree and core names carry the root\'s view', async () => {
    const s = containerSnapshot();
    const dir = join(work, 'container');
    await writeImages(s, dir);
    expect(readImages(dir)).toStrictEqual(s);
    const files = [...encodeImages(s).keys()].sort();
    expect(files).toEqual(['core-1.img', 'core-2.img', 'core-3.img', 'inventory.img', 'pstree.img', 'tasks.img']);
  });

  it('refuses a malformed view or namespace record', () => {
    const s = containerSnapshot();
    (s.tasks[0] as unknown as Record<string, unknown>).collectorView = { pid: 1, tgid: 1, ppid: 0, sid: 1 };
    expect(() => encodeImages(s)).toThrow(/collectorView/);
    const s2 = containerSnapshot();
    (s2.tasks[0] as unknown as Record<string, unknown>).ns = { pid: 1, floppy: 2 };
    expect(() => encodeImages(s2)).toThrow(/field ns/);
  });

  it('the JSON form carries both as objects', () => {
    const j = snapshotToJson(containerSnapshot());
    expect(j.tasks[2].collectorView).toEqual({ pid: 502, tgid: 502, ppid: 500, sid: 500, pgid: 502 });
    expect((j.tasks[2].ns as Record<string, number>).net).toBe(4026531840);
  });
});

describe('selectPidView', () => {
  it('root is the snapshot as stored; collector swaps in the collector\'s view, losing nothing', () => {
    const s = containerSnapshot();
    expect(selectPidView(s, 'root')).toBe(s);
    const c = selectPidView(s, 'collector');
    expect(c.tasks.map((t) => [t.pid, t.tgid, t.ppid, t.sid, t.pgid])).toEqual([
      [500, 500, 400, 500, 500], [501, 500, 400, 500, 500], [502, 502, 500, 500, 502],
    ]);
    expect(c.tasks[2].collectorView).toEqual({ pid: 3, tgid: 3, ppid: 1, sid: 1, pgid: 3 });
    expect(s.tasks[2].pid).toBe(3); // input untouched
  });

  it('a snapshot with one view only is the same in both', () => {
    const s = containerSnapshot();
    for (const t of s.tasks) delete t.collectorView;
    expect(selectPidView(s, 'collector')).toBe(s);
  });

  it('parsePidView takes root or collector, any case', () => {
    expect(parsePidView('Root')).toBe('root');
    expect(parsePidView('collector')).toBe('collector');
    expect(() => parsePidView('host')).toThrow(/invalid pid view 'host': expected root or collector/);
  });
});

describe('diff compares namespaces as a partition', () => {
  it('the same partition under other numbers (another boot, or CRIU\'s ids) is equal', () => {
    const a = containerSnapshot();
    const b = containerSnapshot();
    for (const t of b.tasks) t.ns = { ...t.ns, net: 7, pid: 9 };
    const d = diffSnapshots(a, b);
    expect(d.equal).toBe(true);
  });

  it('a task that left its siblings\' namespace is reported, and only that task', () => {
    const a = containerSnapshot();
    const b = containerSnapshot();
    b.tasks[2].ns = { ...b.tasks[2].ns, net: 4026532999 };
    const d = diffSnapshots(a, b);
    expect(d.equal).toBe(false);
    expect(d.processes).toHaveLength(1);
    expect(d.processes[0].pid).toBe(3);
    expect(d.processes[0].changes).toEqual([{ field: 'ns.net', kind: 'namespace', old: 4026531840, new: 4026532999 }]);
    expect(formatDiff(d)).toContain('ns.net: 4026531840 -> 4026532999 (moved to another namespace)');
    expect(diffSnapshots(a, b, { ignore: ['ns'] }).equal).toBe(true);
    expect(diffSnapshots(a, b, { ignore: ['ns.net'] }).equal).toBe(true);
  });

  it('a thread that unshared its uts namespace is reported on the thread', () => {
    const a = containerSnapshot();
    const b = containerSnapshot();
    b.tasks[1].ns = { ...b.tasks[1].ns, uts: 1 };
    const d = diffSnapshots(a, b);
    expect(d.processes[0].threadChanges?.[0].changes[0]).toMatchObject({ field: 'ns.uts', kind: 'namespace' });
  });

  it('one side without namespace ids is a note, not a difference; the collector\'s view is never compared', () => {
    const a = containerSnapshot();
    const b = containerSnapshot();
    for (const t of b.tasks) { delete t.ns; delete t.collectorView; }
    const d = diffSnapshots(a, b);
    expect(d.equal).toBe(true);
    expect(d.notCompared).toEqual(['ns.cgroup', 'ns.ipc', 'ns.mnt', 'ns.net', 'ns.pid', 'ns.time', 'ns.user', 'ns.uts']);
  });
});
