/** The BPF iterator's binary record (struct td_task) and its decoding; the kernel's state decoding. */
import { describe, expect, it } from 'vitest';
import {
  BIT_NO_SECCOMP, BIT_UNDECIDED, FIELD_OFFSETS, HEADER_SIZE, MAX_GROUPS, MAX_RECORD_SIZE, decodeRecord,
  decodeState, recBits, recNgroups, recNsDepth, recNsIds, recNsPid, recPid, recPpid, recTgid, viewRecords,
} from '../../src/collector/sources/bpf/record.js';
import { sampleRecord } from '../helpers/bpfrecord.js';

describe('decodeState (as __task_state_index)', () => {
  const cases: Array<[number, number, string, string]> = [
    [0x0000, 0x00, 'R', 'TASK_RUNNING'],
    [0x0001, 0x00, 'S', 'TASK_INTERRUPTIBLE'],
    [0x0002, 0x00, 'D', 'TASK_UNINTERRUPTIBLE'],
    [0x0104, 0x00, 'T', 'TASK_STOPPED = TASK_WAKEKILL | __TASK_STOPPED'],
    [0x0008, 0x00, 't', 'TASK_TRACED (6.1+: __TASK_TRACED)'],
    [0x0108, 0x00, 't', 'TASK_TRACED with TASK_WAKEKILL (before 6.1)'],
    [0x0000, 0x20, 'Z', 'EXIT_ZOMBIE in exit_state'],
    [0x0000, 0x10, 'X', 'EXIT_DEAD in exit_state'],
    [0x0040, 0x00, 'P', 'TASK_PARKED'],
    [0x0402, 0x00, 'I', 'TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD'],
    [0x0400, 0x00, 'R', 'TASK_NOLOAD alone is not reported'],
    [0x8001, 0x00, 'D', 'TASK_FROZEN (cgroup v1 freezer) reports D, not S'],
    [0x8000, 0x00, 'D', 'TASK_FROZEN alone reports D, not R'],
    [0x1000, 0x00, 'D', 'TASK_RTLOCK_WAIT reports D'],
    [0x1402, 0x00, 'D', 'RTLOCK_WAIT wins over IDLE'],
    [0x0001, 0x20, 'Z', 'highest report bit wins'],
    [0x0080, 0x00, 'R', 'TASK_DEAD (0x80) is outside TASK_REPORT'],
  ];
  for (const [state, exit, letter, what] of cases) {
    it(`${what}: (0x${state.toString(16)}, 0x${exit.toString(16)}) -> ${letter}`, () => {
      expect(decodeState(state, exit)).toBe(letter);
    });
  }
});

const one = (b: Buffer) => viewRecords(b, b.length);

describe('decodeRecord', () => {
  it('decodes every field of a record', () => {
    const rec = sampleRecord();
    expect(rec.length).toBe(244); // header + 3 groups
    const v = one(rec);
    expect(v.count).toBe(1);
    expect(decodeRecord(v, 0)).toEqual({
      pid: 4243, tgid: 4242, ppid: 4200, tpid: 4100, sid: 4000, pgid: 4001, state: 'T', comm: 'tg) (p g',
      uid: 1001, euid: 1005, suid: 1006, fsuid: 1007, gid: 1002, egid: 1003, sgid: 1004, fsgid: 1008,
      capInh: [0x420, 0], capPrm: [0x4e1, 0], capEff: [0xc0, 0], capBnd: [0xfbbfffff, 0x1ff], capAmb: [0x420, 0],
      groups: [2000, 2001, 2019], securebits: 4, noNewPrivs: true, seccomp: 2, startTime: 123456789,
      personality: 0x0440000, flags: 0x00400040, sigBlk: [0x200, 1], nice: 7, policy: 3, priority: 30,
      rtPriority: 0, exitCode: 0, futexRla: 0x7f12345678a0, futexRlaLen: 24,
    });
  });

  it('reports exit_code only once the task has exited, and tpid only when traced', () => {
    const b = sampleRecord((b) => {
      b.writeUInt32LE(0, FIELD_OFFSETS.state);
      b.writeUInt32LE(0x20, FIELD_OFFSETS.exit_state); // EXIT_ZOMBIE
      b.writeUInt32LE(0, FIELD_OFFSETS.ptrace);
    });
    const t = decodeRecord(one(b), 0);
    expect(t.state).toBe('Z');
    expect(t.exitCode).toBe(0x700);
    expect(t.tpid).toBe(0);
  });

  it('leaves seccomp undefined when the kernel has no seccomp field', () => {
    const b = sampleRecord((b) => b.writeUInt32LE(BIT_NO_SECCOMP, FIELD_OFFSETS.bits));
    const t = decodeRecord(one(b), 0);
    expect(t.seccomp).toBeUndefined();
    expect(t.noNewPrivs).toBe(false);
  });

  it('keeps the first 32 groups and the true count when there are more', () => {
    const b = sampleRecord((b) => {
      b.writeUInt32LE(40, FIELD_OFFSETS.ngroups);
      for (let i = 0; i < MAX_GROUPS; i++) b.writeUInt32LE(3000 + i, FIELD_OFFSETS.groups + 4 * i);
    });
    expect(b.length).toBe(MAX_RECORD_SIZE);
    const v = one(b);
    expect(recNgroups(v, 0)).toBe(40);
    expect(decodeRecord(v, 0).groups).toEqual(Array.from({ length: 32 }, (_, i) => 3000 + i));
  });

  it('indexes records of different lengths and reads filter fields without decoding', () => {
    const noGroups = sampleRecord((b) => {
      b.writeUInt32LE(0, FIELD_OFFSETS.ngroups); // 232 bytes
      b.writeUInt32LE(77, FIELD_OFFSETS.tgid);
      b.writeUInt32LE(78, FIELD_OFFSETS.pid);
      b.writeUInt32LE(1, FIELD_OFFSETS.ppid);
      b.writeUInt32LE(BIT_UNDECIDED, FIELD_OFFSETS.bits);
    });
    expect(noGroups.length).toBe(HEADER_SIZE);
    const all = Buffer.concat([sampleRecord(), noGroups, sampleRecord()]); // 244 + 232 + 244
    const v = viewRecords(all, all.length);
    expect(v.count).toBe(3);
    expect([recTgid(v, 1), recPid(v, 1), recPpid(v, 1), recBits(v, 1), recNgroups(v, 1)]).toEqual([77, 78, 1, BIT_UNDECIDED, 0]);
    expect(decodeRecord(v, 1).groups).toEqual([]);
    expect(decodeRecord(v, 0).tgid).toBe(4242);
    expect(decodeRecord(v, 2).groups).toEqual([2000, 2001, 2019]);
  });

  it('reads the pid-namespace depth, the own pid and the namespace identities (0 = none)', () => {
    const v = viewRecords(sampleRecord(), sampleRecord().length);
    expect([recNsDepth(v, 0), recNsPid(v, 0)]).toEqual([1, 7]);
    expect(recNsIds(v, 0)).toEqual({
      pid: 0xf00001cc, mnt: 0xf0000001, net: 0xf0000002, ipc: 0xf0000003, uts: 0xf0000004, user: 0xf0000005,
      cgroup: 0xf0000006, // no time: the record holds 0 there
    });
    const none = sampleRecord((b) => b.fill(0, FIELD_OFFSETS.ns, FIELD_OFFSETS.ns + 32));
    expect(recNsIds(viewRecords(none, none.length), 0)).toBeUndefined();
    // decodeRecord leaves them to the caller (the collector asks for them)
    expect('ns' in decodeRecord(v, 0)).toBe(false);
  });

  it('works on a buffer that is not 4-byte aligned', () => {
    const rec = sampleRecord();
    const big = Buffer.alloc(rec.length + 1);
    rec.copy(big, 1);
    const v = viewRecords(big.subarray(1), rec.length);
    expect(decodeRecord(v, 0).comm).toBe('tg) (p g');
  });

  it('refuses output that does not end at a record boundary', () => {
    const rec = sampleRecord();
    expect(() => viewRecords(Buffer.concat([rec, Buffer.alloc(8)]), rec.length + 8)).toThrow(RangeError);
    expect(() => viewRecords(rec, rec.length - 4)).toThrow(RangeError); // a group cut off
    expect(viewRecords(Buffer.alloc(0), 0).count).toBe(0);
  });

  it('decodes a non-ASCII comm as UTF-8', () => {
    const b = sampleRecord((b) => {
      b.fill(0, FIELD_OFFSETS.comm, FIELD_OFFSETS.comm + 16);
      Buffer.from('zürich-ñ', 'utf8').copy(b, FIELD_OFFSETS.comm); // 10 bytes: z, ü (2), r, i, c, h, -, ñ (2)
    });
    expect(decodeRecord(one(b), 0).comm).toBe('zürich-ñ');
  });

  it('decodes a full 15-byte comm without a NUL', () => {
    const b = sampleRecord((b) => {
      b.fill(0, FIELD_OFFSETS.comm, FIELD_OFFSETS.comm + 16);
      b.write('abcdefghijklmno', FIELD_OFFSETS.comm, 'latin1');
    });
    expect(decodeRecord(one(b), 0).comm).toBe('abcdefghijklmno');
  });
});
