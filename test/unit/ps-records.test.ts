/**
 * tdcollect ps rendered straight from BPF records (ps-records.ts) against the reference path: decodeRecord
 * into Task records, then renderPs. Every column, on records built byte by byte with the values that take the
 * renderer's other paths (numbers wider than their column, negative numbers, 64-bit numbers, a missing
 * seccomp, UTF-8 and invalid UTF-8 comm, an unknown policy), must give the same bytes.
 */
import { describe, expect, it } from 'vitest';
import {
  BIT_NO_SECCOMP, FIELD_OFFSETS as O, RAW_MASK_WORDS, RAW_NUMBERS, RAW_U32_WORDS, decodeRecord, rawComm,
  rawNoNewPrivs, rawState, viewRecords, type RecordView,
} from '../../src/collector/sources/bpf/record.js';
import { COLUMNS, parseFields, renderPs } from '../../src/cli/ps-columns.js';
import { compileRecordColumns, renderRecords, sortRecords } from '../../src/cli/ps-records.js';
import { sampleRecord } from '../helpers/bpfrecord.js';
import { prng } from '../helpers/random.js';
import type { Task } from '../../src/collector/task.js';

/** Every column but groups (past 32 groups, they come from /proc), in COLUMNS order. */
const RECORD_FIELDS = Object.keys(COLUMNS).filter((k) => k !== 'groups');

function setComm(b: Buffer, bytes: Buffer): void {
  b.fill(0, O.comm, O.comm + 16);
  bytes.copy(b, O.comm, 0, Math.min(16, bytes.length));
}

/** Records that exercise every branch of the generated code. */
function edgeRecords(): Buffer[] {
  return [
    sampleRecord(),
    sampleRecord((b) => { // ids wider than their columns, the highest u32s
      b.writeUInt32LE(4294967295, O.euid);
      b.writeUInt32LE(4294967294, O.egid);
      b.writeUInt32LE(4194304, O.tgid);
      b.writeUInt32LE(4194304, O.pid);
      b.writeUInt32LE(0xffffffff, O.flags);
      b.writeUInt32LE(0xffffffff, O.securebits);
    }),
    sampleRecord((b) => { // negative nice and priority (a real-time task), start time past 2^32
      b.writeInt32LE(100, O.static_prio); // nice -20
      b.writeInt32LE(0, O.prio);          // priority -100
      b.writeUInt32LE(99, O.rt_priority);
      b.writeUInt32LE(1, O.policy);       // SCHED_FIFO
      b.writeBigUInt64LE(0x1_2345_6789n, O.start_time);
    }),
    sampleRecord((b) => { // exited: zombie with a negative exit code, no seccomp field, unknown policy
      b.writeUInt32LE(0, O.state);
      b.writeUInt32LE(0x20, O.exit_state);
      b.writeInt32LE(-1, O.exit_code);
      b.writeUInt32LE(BIT_NO_SECCOMP, O.bits);
      b.writeUInt32LE(9, O.policy);
      b.writeBigUInt64LE(0n, O.robust_list);
    }),
    sampleRecord((b) => setComm(b, Buffer.from('zürich-ñ', 'utf8'))),       // UTF-8
    sampleRecord((b) => setComm(b, Buffer.from([0x61, 0xff, 0xfe, 0x62]))), // not UTF-8
    sampleRecord((b) => setComm(b, Buffer.from('abcdefghijklmnop', 'latin1'))), // 16 bytes, no NUL
    sampleRecord((b) => setComm(b, Buffer.alloc(0))),                        // empty
    sampleRecord((b) => { // zeros everywhere a pid can be 0 (not visible in the reader's namespace)
      for (const f of ['ppid', 'tpid', 'sid', 'pgid'] as const) b.writeUInt32LE(0, O[f]);
      b.writeUInt32LE(0, O.ngroups);
    }),
  ];
}

/** n records with random values in every field, the edge records among them. */
function randomRecords(n: number, seed: number): Buffer {
  const rnd = prng(seed);
  const u32 = () => (rnd() * 0x1_0000_0000) >>> 0;
  const small = () => Math.floor(rnd() * 70000);
  const out: Buffer[] = edgeRecords();
  for (let i = 0; i < n; i++) {
    out.push(sampleRecord((b) => {
      for (const f of ['tgid', 'pid', 'ppid', 'tpid', 'sid', 'pgid'] as const) b.writeUInt32LE(small(), O[f]);
      for (const f of ['uid', 'euid', 'suid', 'fsuid', 'gid', 'egid', 'sgid', 'fsgid'] as const) {
        b.writeUInt32LE(rnd() < 0.1 ? u32() : small(), O[f]);
      }
      b.writeUInt32LE(u32(), O.flags);
      b.writeUInt32LE(u32(), O.personality);
      b.writeUInt32LE(rnd() < 0.5 ? 0 : 1, O.ptrace);
      b.writeUInt32LE([0, 1, 2, 0x402, 0x104, 0x8][Math.floor(rnd() * 6)], O.state);
      b.writeUInt32LE(rnd() < 0.1 ? 0x20 : 0, O.exit_state);
      b.writeInt32LE(Math.floor(rnd() * 140), O.prio);
      b.writeInt32LE(100 + Math.floor(rnd() * 40), O.static_prio);
      b.writeUInt32LE(Math.floor(rnd() * 8), O.policy);
      b.writeUInt32LE(Math.floor(rnd() * 8), O.bits);
      for (const f of ['cap_inh', 'cap_prm', 'cap_eff', 'cap_bnd', 'cap_amb', 'blocked', 'start_time', 'robust_list'] as const) {
        b.writeUInt32LE(u32(), O[f]);
        b.writeUInt32LE(f === 'start_time' || f === 'robust_list' ? u32() & 0x1fff : u32(), O[f] + 4);
      }
      const len = Math.floor(rnd() * 16);
      setComm(b, Buffer.from(Array.from({ length: len }, () => 32 + Math.floor(rnd() * 95))));
      b.writeUInt32LE(Math.floor(rnd() * 4), O.ngroups);
    }));
  }
  return Buffer.concat(out);
}

function decodedAll(v: RecordView): Task[] {
  return Array.from({ length: v.count }, (_, i) => decodeRecord(v, i));
}

/** The bytes ps writes from decoded tasks (renderPs's text, as UTF-8), as a hex string for readable diffs. */
function viaTasks(v: RecordView, rows: number[], fields: string, headers: boolean): string {
  let out = '';
  renderPs(rows.map((i) => decodeRecord(v, i)), parseFields([fields]), headers, { write: (s) => { out += s; } });
  return Buffer.from(out, 'utf8').toString('hex');
}

/** The bytes renderRecords writes, as a hex string, and in how many writes. */
function viaRecords(v: RecordView, rows: number[], fields: string, headers: boolean): { text: string; writes: number } {
  const rc = compileRecordColumns(parseFields([fields]));
  expect(rc, fields).toBeDefined();
  const chunks: Buffer[] = [];
  renderRecords(v, rows, rc!, headers, (b, n) => chunks.push(Buffer.from(b.subarray(0, n))));
  return { text: Buffer.concat(chunks).toString('hex'), writes: chunks.length };
}

describe('raw readers', () => {
  it('read exactly the fields decodeRecord gives', () => {
    const buf = randomRecords(500, 7);
    const v = viewRecords(buf, buf.length);
    const tasks = decodedAll(v);
    for (let i = 0; i < v.count; i++) {
      const w = v.start[i];
      const t = tasks[i];
      for (const [f, read] of Object.entries(RAW_NUMBERS)) expect(read(v, w), `${f} of record ${i}`).toBe(t[f as keyof Task]);
      for (const [f, word] of Object.entries(RAW_U32_WORDS)) expect(v.u32[w + word!], `${f} of record ${i}`).toBe(t[f as keyof Task]);
      for (const [f, word] of Object.entries(RAW_MASK_WORDS)) {
        expect([v.u32[w + word], v.u32[w + word + 1]], `${f} of record ${i}`).toEqual(t[f as keyof Task]);
      }
      expect(rawState(v, w)).toBe(t.state);
      expect(rawComm(v, w)).toBe(t.comm);
      expect(rawNoNewPrivs(v, w)).toBe(t.noNewPrivs);
    }
  });
});

describe('renderRecords', () => {
  it('writes, for every column alone, the bytes renderPs writes for the decoded tasks', () => {
    const buf = randomRecords(300, 11);
    const v = viewRecords(buf, buf.length);
    const rows = Array.from({ length: v.count }, (_, i) => i);
    for (const f of RECORD_FIELDS) {
      for (const headers of [true, false]) {
        expect(viaRecords(v, rows, f, headers).text, `-o ${f}`).toBe(viaTasks(v, rows, f, headers));
      }
    }
  });

  it('writes every column together, in several orders, across many 256 KiB chunks', () => {
    const buf = randomRecords(6000, 12);
    const v = viewRecords(buf, buf.length);
    const rows = Array.from({ length: v.count }, (_, i) => i);
    const rnd = prng(13);
    const orders = [RECORD_FIELDS, [...RECORD_FIELDS].reverse(), [...RECORD_FIELDS].sort(() => rnd() - 0.5)];
    for (const order of orders) {
      const fields = order.join(',');
      const ours = viaRecords(v, rows, fields, true);
      expect(ours.writes).toBeGreaterThan(3); // about 2 MB of output
      expect(ours.text).toBe(viaTasks(v, rows, fields, true));
    }
  });

  it('keeps custom headers (non-ASCII too), aliases and a right-aligned last column', () => {
    const buf = randomRecords(50, 14);
    const v = viewRecords(buf, buf.length);
    const rows = Array.from({ length: v.count }, (_, i) => i);
    for (const fields of ['pid,comm=NAMÉ', 'comm,pid', 'lwp,sess,s,ucmd', 'comm,ni', `capeff=${'X'.repeat(300)}`]) {
      expect(viaRecords(v, rows, fields, true).text, fields).toBe(viaTasks(v, rows, fields, true));
    }
  });

  it('renders only the rows asked for, in their order', () => {
    const buf = randomRecords(20, 15);
    const v = viewRecords(buf, buf.length);
    const rows = [5, 3, 3, 0];
    expect(viaRecords(v, rows, 'pid,tid,comm', false).text).toBe(viaTasks(v, rows, 'pid,tid,comm', false));
    expect(viaRecords(v, [], 'pid', true).text).toBe(Buffer.from('    PID\n').toString('hex'));
  });

  it('is not used for groups, which may need /proc', () => {
    expect(compileRecordColumns(parseFields(['pid,groups']))).toBeUndefined();
  });
});

describe('sortRecords', () => {
  it('orders like sortTasks: by process, leader first, then threads', () => {
    const rec = (tgid: number, pid: number) => sampleRecord((b) => {
      b.writeUInt32LE(tgid, O.tgid);
      b.writeUInt32LE(pid, O.pid);
    });
    const buf = Buffer.concat([rec(10, 12), rec(5, 5), rec(10, 10), rec(10, 11), rec(3, 40)]);
    const v = viewRecords(buf, buf.length);
    expect(sortRecords(v, [0, 1, 2, 3, 4]).map((i) => v.u32[v.start[i] + 1])).toEqual([40, 5, 10, 11, 12]);
    const sorted = [1, 2, 3, 0];
    expect(sortRecords(v, sorted)).toBe(sorted); // already in order: the same array
  });
});
