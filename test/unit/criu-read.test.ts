/**
 * Decoding an image set CRIU wrote, from hand-built byte vectors commented field by field: a root process
 * 200 with a second thread 201, and a zombie child 202 (with the garbage thread id CRIU 3.x/4.x leaves for
 * dead tasks). Every Task field is checked, fields CRIU does not record must be absent, and damage to a known
 * image is an ImageError naming the file and the byte offset. The CRIU images a real criu 3.17.1 writes are
 * read in the guest suite (test/vm/guest/criu-read.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageError } from '../../src/errors.js';
import { readImages, readImageSet } from '../../src/image/index.js';
import { diffSnapshots } from '../../src/image/diff.js';
import type { RecordedTask, Snapshot } from '../../src/collector/task.js';

/** Hex bytes; everything from `#` to the end of a line is a comment. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

const INVENTORY = hex(`
  16 31 31 58                 # INVENTORY_MAGIC 0x58313116 (inventory.img has no head magic)
  10 00 00 00                 # entry length 16
  08 02                       # 1 img_version = 2
  10 01                       # 2 fdinfo_per_id = true
  1a 08                       # 3 root_ids, 8 bytes:
    08 01 10 01 18 01 20 01   #   vm_id 1, files_id 1, fs_id 1, sighand_id 1
  20 01                       # 4 ns_per_id = true
`);

const PSTREE = hex(`
  19 43 56 54                 # IMG_COMMON_MAGIC
  30 30 27 50                 # PSTREE_MAGIC 0x50273030
  11 00 00 00                 # entry 0 (offset 8), 17 bytes:
  08 c8 01                    #   1 pid = 200
  10 00                       #   2 ppid = 0 (the root)
  18 c8 01                    #   3 pgid = 200
  20 c8 01                    #   4 sid = 200
  28 c8 01                    #   5 threads: 200
  28 c9 01                    #   5 threads: 201
  12 00 00 00                 # entry 1 (offset 29), 18 bytes:
  08 ca 01                    #   1 pid = 202
  10 c8 01                    #   2 ppid = 200
  18 c8 01                    #   3 pgid = 200
  20 c8 01                    #   4 sid = 200
  28 ff ff ff ff 0f           #   5 threads: 0xffffffff (CRIU leaves a dead task's thread id unset)
`);

const CAPS_FULL = `ff ff ff ff 0f   ff 03`; // [0xffffffff, 0x1ff]

const CORE_200 = hex(`
  19 43 56 54                 # IMG_COMMON_MAGIC
  47 38 05 55                 # CORE_MAGIC 0x55053847
  6f 00 00 00                 # entry length 111
  08 01                       # 1 mtype = X86_64
  1a 13                       # 3 tc (task_core_entry), 19 bytes:
    08 01                     #   1 task_state = 1 (alive)
    10 00                     #   2 exit_code = 0 (CRIU's placeholder for a live task: not recorded)
    18 00                     #   3 personality = 0
    20 c0 82 80 02            #   4 flags = 0x400140 (PF_*)
    28 00                     #   5 blk_sigset = 0
    32 04 6d 61 69 6e         #   6 comm = "main"
  2a 56                       # 5 thread_core (thread_core_entry), 86 bytes:
    08 a0 d4 e3 be ff ff 1f   #   1 futex_rla = 0x7ffff7d8ea20
    10 18                     #   2 futex_rla_len = 24
    18 02                     #   3 sched_nice = 1 (sint32, zigzag 2)
    20 00                     #   4 sched_policy = 0 (SCHED_OTHER)
    30 80 04                  #   6 blk_sigset = 0x200 (SIGUSR1)
    52 3b                     #   10 creds (creds_entry), 59 bytes:
      08 00 10 00 18 00 20 00 #     1 uid 0, 2 gid 0, 3 euid 0, 4 egid 0
      28 00 30 00 38 00 40 00 #     5 suid 0, 6 sgid 0, 7 fsuid 0, 8 fsgid 0
      48 00 48 00             #     9 cap_inh [0, 0] (unpacked, two words)
      50 ${CAPS_FULL.replace('   ', ' 50 ')} #     10 cap_prm [0xffffffff, 0x1ff]
      58 ${CAPS_FULL.replace('   ', ' 58 ')} #     11 cap_eff
      60 ${CAPS_FULL.replace('   ', ' 60 ')} #     12 cap_bnd
      68 01                   #     13 secbits = 1 (SECBIT_NOROOT)
      70 00 70 1b             #     14 groups 0, 27
      98 01 00 98 01 00       #     19 cap_amb [0, 0] (a CRIU that writes cap_amb: absent no_new_privs = 0)
    58 02                     #   11 seccomp_mode = filter
    6a 04 6d 61 69 6e         #   13 comm = "main"
`);

const CORE_201 = hex(`
  19 43 56 54 47 38 05 55     # IMG_COMMON_MAGIC, CORE_MAGIC
  51 00 00 00                 # entry length 81
  08 01                       # 1 mtype = X86_64 (no tc: not a leader)
  2a 4d                       # 5 thread_core, 77 bytes:
    08 00 10 00               #   1 futex_rla = 0, 2 futex_rla_len = 0
    30 00                     #   6 blk_sigset = 0
    52 3d                     #   10 creds, 61 bytes:
      08 00 10 00             #     1 uid 0, 2 gid 0
      18 fe ff 03             #     3 euid = 65534
      20 00 28 00 30 00 38 00 40 00   # 4 egid, 5 suid, 6 sgid, 7 fsuid, 8 fsgid = 0
      48 00 48 00             #     9 cap_inh [0, 0]
      50 ${CAPS_FULL.replace('   ', ' 50 ')} #     10 cap_prm
      58 ${CAPS_FULL.replace('   ', ' 58 ')} #     11 cap_eff
      60 ${CAPS_FULL.replace('   ', ' 60 ')} #     12 cap_bnd
      68 01                   #     13 secbits = 1
      70 00 70 1b             #     14 groups 0, 27
      98 01 00 98 01 00       #     19 cap_amb [0, 0]
    6a 06 77 6f 72 6b 65 72   #   13 comm = "worker"
`);

const CORE_202 = hex(`
  19 43 56 54 47 38 05 55     # IMG_COMMON_MAGIC, CORE_MAGIC
  1a 00 00 00                 # entry length 26
  08 01                       # 1 mtype = X86_64
  1a 16                       # 3 tc, 22 bytes (a zombie: no thread_core, no creds):
    08 02                     #   1 task_state = 2 (dead)
    10 80 0e                  #   2 exit_code = 1792 (exit status 7, as waitpid reports it)
    18 00                     #   3 personality = 0 (a placeholder: CRIU does not read it for zombies)
    20 c0 82 80 02            #   4 flags = 0x400140 (likewise not recorded for a zombie, whatever it holds)
    28 00                     #   5 blk_sigset = 0 (placeholder)
    32 06 7a 6f 6d 62 69 65   #   6 comm = "zombie"
`);

const IDS_200 = hex(`
  19 43 56 54                 # IMG_COMMON_MAGIC
  30 20 43 54                 # IDS_MAGIC 0x54432030
  0e 00 00 00                 # entry length 14
  08 01 10 01 18 01 20 01     # 1 vm_id, 2 files_id, 3 fs_id, 4 sighand_id = 1
  28 05                       # 5 pid_ns_id = 5 (CRIU's numbering, not an inode)
  30 06                       # 6 net_ns_id = 6
  48 07                       # 9 mnt_ns_id = 7
`);

const caps = { capInh: [0, 0], capPrm: [0xffffffff, 0x1ff], capEff: [0xffffffff, 0x1ff], capBnd: [0xffffffff, 0x1ff], capAmb: [0, 0] };
const ids0 = { uid: 0, gid: 0, euid: 0, egid: 0, suid: 0, sgid: 0, fsuid: 0, fsgid: 0 };
const WANT: RecordedTask[] = [
  {
    pid: 200, tgid: 200, sid: 200, pgid: 200, criuState: 'alive', comm: 'main', personality: 0, flags: 0x400140,
    ns: { pid: 5, net: 6, mnt: 7 }, sigBlk: [0x200, 0], nice: 1, policy: 0, futexRla: 0x7ffff7d8ea20, futexRlaLen: 24, ...ids0, ...caps,
    groups: [0, 27], securebits: 1, noNewPrivs: false, seccomp: 2,
  } as RecordedTask,
  {
    pid: 201, tgid: 200, sid: 200, pgid: 200, criuState: 'alive', comm: 'worker', ns: { pid: 5, net: 6, mnt: 7 }, sigBlk: [0, 0], futexRla: 0,
    futexRlaLen: 0, ...ids0, euid: 65534, ...caps, groups: [0, 27], securebits: 1, noNewPrivs: false,
  } as RecordedTask,
  {
    pid: 202, tgid: 202, ppid: 200, sid: 200, pgid: 200, criuState: 'dead', comm: 'zombie', exitCode: 1792,
  } as RecordedTask,
];

let dir: string;
const files: Record<string, Buffer> = {
  'inventory.img': INVENTORY, 'pstree.img': PSTREE, 'core-200.img': CORE_200, 'core-201.img': CORE_201,
  'core-202.img': CORE_202, 'ids-200.img': IDS_200,
};
const put = (name: string, b: Buffer): void => writeFileSync(join(dir, name), b);
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), `tdc-criu-read-${process.pid}-`));
  for (const [n, b] of Object.entries(files)) put(n, b);
  // images tdcollect does not read are ignored, whatever they hold
  put('pages-1.img', Buffer.alloc(4096, 0xa5));
  put('mm-200.img', Buffer.from('not an image'));
  put('stats-dump', Buffer.from([0x40, 0x59, 0x10, 0x55]));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a CRIU directory from byte vectors', () => {
  it('decodes every recorded field, and leaves the rest undefined', () => {
    const s = readImages(dir);
    expect(s.tasks).toStrictEqual(WANT);
    expect(s.info).toStrictEqual({ live: false, root: 200, processes: 2, threads: 3, timings: {}, missing: ['startTime', 'priority'] });
    for (const t of s.tasks) {
      for (const f of ['startTime', 'tpid', 'state', 'priority'] as const) expect(t[f], `${f} of ${t.pid}`).toBeUndefined();
    }
  });

  it('readImageSet names it a CRIU directory', async () => {
    const s = await readImageSet(dir);
    expect(s.origin).toStrictEqual({ path: dir, form: 'directory', writer: 'criu', criu: { imgVersion: 2, march: 1 } });
    expect(s.tasks).toStrictEqual(WANT);
  });

  it('a /proc letter compares with CRIU\'s coarse state; unrecorded fields are notes, not differences', () => {
    const c: Snapshot = readImages(dir);
    const ours: Snapshot = {
      info: { ...c.info, source: 'procfs', freeze: 'ptrace', createdAt: 1, missing: [] },
      tasks: c.tasks.map((t) => {
        const { criuState, ...rest } = t;
        return { ...rest, tpid: 0, ppid: t.ppid ?? 1, startTime: 9, state: criuState === 'dead' ? 'Z' : 'S' } as RecordedTask;
      }),
    };
    let d = diffSnapshots(ours, c);
    expect(d.equal).toBe(true);
    expect(d.matchedByPidOnly).toBe(true);
    expect(d.notCompared).toEqual(['ppid', 'tpid']);
    ours.tasks[0] = { ...ours.tasks[0], state: 'T' };
    d = diffSnapshots(ours, c);
    expect(d.processes[0].changes).toEqual([{ field: 'state', kind: 'value', old: 'T (stopped)', new: 'alive' }]);
  });

  it('namespaces compare as a partition: who shares one, never the raw ids', () => {
    const c = readImages(dir);
    const withNs = (s: Snapshot, ids: Record<number, Record<string, number>>): Snapshot =>
      ({ ...s, tasks: s.tasks.map((t) => ({ ...t, ns: ids[t.tgid] })) });
    // CRIU numbers 5/6 on one side, inode numbers on the other: the same partition, equal
    const a = withNs(c, { 200: { pid: 5, net: 6 }, 202: { pid: 5, net: 6 } });
    const b = withNs(c, { 200: { pid: 4026531836, net: 4026531840 }, 202: { pid: 4026531836, net: 4026531840 } });
    expect(diffSnapshots(a, b).equal).toBe(true);
    // 202 moved to a network namespace of its own: reported on 202 only (on a two-way split the task first
    // in pstree order keeps the namespace), with each side's ids
    const moved = withNs(c, { 200: { pid: 4026531836, net: 4026531840 }, 202: { pid: 4026531836, net: 4026532999 } });
    const d = diffSnapshots(a, moved);
    expect(d.processes.map((p) => [p.pid, p.changes])).toEqual([
      [202, [{ field: 'ns.net', kind: 'namespace', old: 6, new: 4026532999 }]],
    ]);
    expect(diffSnapshots(a, moved, { ignore: ['ns'] }).equal).toBe(true);
    // one side without namespace ids: a note, not a difference
    const none = diffSnapshots(a, c.tasks.some((t) => t.tgid === 202 && t.ns) ? c : withNs(c, {}));
    expect(none.notCompared).toEqual(expect.arrayContaining(['ns.net', 'ns.pid']));
  });

  it('a malformed known image is an ImageError naming the file and the offset', () => {
    const cases: [string, Buffer, string][] = [
      // pstree entry 1 without sid: the payload starts at offset 33
      ['pstree.img', Buffer.concat([PSTREE.subarray(0, 29), hex('0f 00 00 00 08 ca 01 10 c8 01 18 c8 01 28 ff ff ff ff 0f')]),
        'pstree.img: offset 33: pstree_entry: required field sid (4) is missing'],
      ['pstree.img', PSTREE.subarray(0, 40), 'pstree.img: offset 29: premature end of file: entry declares 18 bytes, 7 remain'],
      ['inventory.img', Buffer.concat([INVENTORY.subarray(0, 9), hex('03'), INVENTORY.subarray(10)]),
        'inventory.img: offset 8: img_version 3 is not supported (expected 2)'],
      ['core-201.img', Buffer.concat([CORE_201.subarray(0, 12), hex('08 63'), CORE_201.subarray(14)]),
        'core-201.img: offset 12: core_entry: field mtype (1): 99 is not a value of enum march'],
      ['core-202.img', Buffer.concat([CORE_202.subarray(0, 16), hex('08 04'), CORE_202.subarray(18)]),
        'core-202.img: offset 8: task_state 4 is not alive (1), dead (2) or stopped (3)'],
      ['ids-200.img', IDS_200.subarray(0, 4), 'ids-200.img: offset 4: premature end of file in image magic (0 of 4 bytes)'],
    ];
    for (const [name, bytes, want] of cases) {
      put(name, bytes);
      let err: unknown;
      try { readImages(dir); } catch (e) { err = e; }
      put(name, files[name]);
      expect(err, want).toBeInstanceOf(ImageError);
      expect((err as ImageError).message).toBe(`${join(dir, want)}`);
    }
    expect(readImages(dir).tasks).toStrictEqual(WANT);
  });

  it('a missing core of a listed thread is named', () => {
    rmSync(join(dir, 'core-201.img'));
    try {
      expect(() => readImages(dir)).toThrow(`${join(dir, 'core-201.img')}: no such image file`);
    } finally {
      put('core-201.img', CORE_201);
    }
  });
});
