/**
 * CRIU framing and entry encoding, checked against hand-built byte vectors (commented field by field),
 * decode -> encode -> byte-compare round trips, and every reader error with its file and byte offset.
 */
import { describe, expect, it } from 'vitest';
import { ImageError } from '../../src/errors.js';
import type { Task } from '../../src/collector/task.js';
import {
  coreEntry, credsEntry, decodeImage, decodeMessage, encodeMessage, frameImage, groupProcesses, inventoryEntry,
  KIND, MAGIC, pstreeEntry, schemas, splitEntries,
} from '../../src/image/index.js';

/** Bytes from hex text; `//` starts a comment running to the end of the line. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/\/\/[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
const show = (b: Uint8Array): string => Buffer.from(b).toString('hex').replace(/(..)/g, '$1 ').trim();

/** Expect fn to throw an ImageError with this file, offset and reason; return it. */
function imageError(fn: () => unknown, file: string, offset: number, reason: ImageError['reason']): ImageError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ImageError);
  const ie = err as ImageError;
  expect({ file: ie.file, offset: ie.offset, reason: ie.reason }).toEqual({ file, offset, reason });
  expect(ie.message).toContain(file);
  if (reason !== 'missing') expect(ie.message).toContain(`offset ${offset}`);
  expect(ie.message.includes('\n')).toBe(false);
  expect(ie.exitCode).toBe(2);
  return ie;
}

// pstree.img of one single-threaded process, exactly as CRIU 4.1.1 wrote it (spec §1.2)
const PSTREE_393 = hex(`
  19 43 56 54   30 30 27 50          // IMG_COMMON, PSTREE
  0e 00 00 00                        // entry length 14
  08 89 03                           // 1 pid     = 393 (varint 0x189)
  10 00                              // 2 ppid    = 0   (required: emitted even when 0)
  18 89 03                           // 3 pgid    = 393
  20 89 03                           // 4 sid     = 393
  28 89 03                           // 5 threads = [393] (unpacked: one tag per element)
`);

const base: Task = {
  pid: 1000, tgid: 1000, ppid: 1, tpid: 0, sid: 1000, pgid: 1000, state: 'S', comm: 'a',
  uid: 1000, euid: 1000, suid: 1000, fsuid: 1000, gid: 1000, egid: 1000, sgid: 1000, fsgid: 1000,
  capInh: [0, 0], capPrm: [0xfeffffff, 0x1ff], capEff: [0, 0], capBnd: [0xfeffffff, 0x1ff], capAmb: [0, 0],
  groups: [27], seccomp: 0, personality: 0, flags: 0x40, sigBlk: [1, 0], nice: -5, policy: 0,
};

describe('byte vectors', () => {
  const s = schemas();

  it('the vector parses as CRIU wrote it', () => {
    expect(show(PSTREE_393)).toBe('19 43 56 54 30 30 27 50 0e 00 00 00 08 89 03 10 00 18 89 03 20 89 03 28 89 03');
  });

  it('pstree: pid 393, root (ppid 0 emitted), leader-only threads', () => {
    const t = { ...base, pid: 393, tgid: 393, pgid: 393, sid: 393, ppid: 77 };
    const g = groupProcesses([t])[0];
    const bytes = frameImage(KIND.pstree, [s.pstree.encode(pstreeEntry(g, true)).finish()]);
    expect(show(bytes)).toBe(show(PSTREE_393));
    expect(bytes.equals(PSTREE_393)).toBe(true);
  });

  it('pstree: threads listed leader first, unpacked', () => {
    const l = { ...base, pid: 2041, tgid: 2041, ppid: 2000, pgid: 2000, sid: 2000 };
    const g = groupProcesses([l, { ...l, pid: 2043 }, { ...l, pid: 2044 }])[0];
    expect(show(s.pstree.encode(pstreeEntry(g, false)).finish())).toBe(show(hex(`
      08 f9 0f          // pid 2041
      10 d0 0f          // ppid 2000
      18 d0 0f          // pgid 2000
      20 d0 0f          // sid 2000
      28 f9 0f          // threads 2041
      28 fb 0f          // threads 2043
      28 fc 0f          // threads 2044
    `)));
  });

  it('creds: caps as 2 words low first ([0xfeffffff, 0x1ff]), secbits 0, cap_amb last', () => {
    const bytes = s.creds.encode(credsEntry(base)).finish();
    expect(show(bytes)).toBe(show(hex(`
      08 e8 07  10 e8 07  18 e8 07  20 e8 07     // 1..4 uid gid euid egid = 1000 (varint e8 07)
      28 e8 07  30 e8 07  38 e8 07  40 e8 07     // 5..8 suid sgid fsuid fsgid = 1000
      48 00  48 00                               // 9  cap_inh = [0, 0]
      50 ff ff ff f7 0f  50 ff 03                // 10 cap_prm = [0xfeffffff, 0x1ff]
      58 00  58 00                               // 11 cap_eff = [0, 0]
      60 ff ff ff f7 0f  60 ff 03                // 12 cap_bnd = [0xfeffffff, 0x1ff]
      68 00                                      // 13 secbits = 0 (required; not in /proc)
      70 1b                                      // 14 groups = [27]
      98 01 00  98 01 00                         // 19 cap_amb = [0, 0] (tag 19<<3 = 0x98 -> varint 98 01)
    `)));
  });

  it('creds: no_new_privs written only when set', () => {
    const on = Buffer.from(s.creds.encode(credsEntry({ ...base, noNewPrivs: true })).finish());
    const off = Buffer.from(s.creds.encode(credsEntry({ ...base, noNewPrivs: false })).finish());
    // 18 no_new_privs = 1: tag 18<<3 = 0x90 -> varint 90 01, value 01; sits between groups (14) and cap_amb (19)
    expect(show(on)).toBe(show(off).replace('70 1b 98', '70 1b 90 01 01 98'));
  });

  it('core of a live leader: mtype, tc, thread_core with creds', () => {
    const g = groupProcesses([base])[0];
    const bytes = frameImage(KIND.core, [s.core.encode(coreEntry(base, g, 1)).finish()]);
    const creds = show(s.creds.encode(credsEntry(base)).finish());
    expect(show(bytes)).toBe(show(hex(`
      19 43 56 54  47 38 05 55       // IMG_COMMON, CORE
      60 00 00 00                    // entry length 96
      08 01                          // 1 mtype = X86_64
      1a 0d                          // 3 tc, 13 bytes:
        08 01                          // 1 task_state = 1 (alive; state S)
        10 00                          // 2 exit_code = 0
        18 00                          // 3 personality = 0
        20 40                          // 4 flags = 0x40
        28 01                          // 5 blk_sigset = 1
        32 01 61                       // 6 comm = "a"
      2a 4d                          // 5 thread_core, 77 bytes:
        08 00                          // 1 futex_rla = 0 (unknown -> 0; required)
        10 00                          // 2 futex_rla_len = 0
        18 09                          // 3 sched_nice = -5 (sint32 zigzag 9)
        20 00                          // 4 sched_policy = 0 (no sched_prio: not real-time)
        30 01                          // 6 blk_sigset = 1
        52 3c                          // 10 creds, 60 bytes (vector above)
    `)) + ' ' + creds + ' ' + show(hex(`
        58 00                          // 11 seccomp_mode = disabled
        6a 01 61                       // 13 comm = "a"
    `)));
  });

  it('core of a non-leader thread has no tc', () => {
    const t = { ...base, pid: 1001, comm: 'b' };
    const g = groupProcesses([base, t])[0];
    const d = decodeImage('core-1001.img', frameImage(KIND.core, [s.core.encode(coreEntry(t, g, 1)).finish()]), KIND.core, s.core)[0].msg;
    expect(d.tc).toBeUndefined();
    expect((d.thread_core as Record<string, unknown>).comm).toBe('b');
  });

  it('core of a zombie: mtype + tc only, task_state 2; stopped task_state 3', () => {
    const z = { ...base, state: 'Z' as const, exitCode: 0x700, comm: 'z' };
    const bytes = s.core.encode(coreEntry(z, groupProcesses([z])[0], 1)).finish();
    expect(show(bytes)).toBe(show(hex(`
      08 01                 // 1 mtype = X86_64
      1a 0e                 // 3 tc, 14 bytes:
        08 02                 // 1 task_state = 2 (dead)
        10 80 0e              // 2 exit_code = 0x700 (varint 80 0e)
        18 00                 // 3 personality = 0
        20 40                 // 4 flags = 0x40
        28 01                 // 5 blk_sigset = 1
        32 01 7a              // 6 comm = "z"
    `)));
    const st = { ...base, state: 'T' as const };
    const sb = Buffer.from(s.core.encode(coreEntry(st, groupProcesses([st])[0], 1)).finish());
    const d = decodeMessage('core-1000.img', sb, 0, sb.length, s.core);
    expect((d.tc as Record<string, unknown>).task_state).toBe(3);
    expect(d.thread_core).toBeDefined();
  });

  it('inventory: no head magic, img_version 2, root_ids, lsmtype', () => {
    const bytes = frameImage(KIND.inventory, [s.inventory.encode(inventoryEntry()).finish()]);
    expect(show(bytes)).toBe(show(hex(`
      16 31 31 58               // INVENTORY (no IMG_COMMON)
      12 00 00 00               // entry length 18
      08 02                     // 1 img_version = 2
      10 01                     // 2 fdinfo_per_id = true
      1a 08                     // 3 root_ids, 8 bytes:
        08 01 10 01 18 01 20 01   // vm_id files_id fs_id sighand_id = 1
      20 01                     // 4 ns_per_id = true
      30 00                     // 6 lsmtype = NO_LSM
    `)));
  });

  it('tasks.img magic is "TDC1" on disk and no CRIU magic', () => {
    expect(show(frameImage(KIND.tasks, []))).toBe('19 43 56 54 54 44 43 31');
    const criu = Object.entries(MAGIC).filter(([k]) => k !== 'TASKS').map(([, v]) => v);
    expect(criu).not.toContain(MAGIC.TASKS);
  });
});

describe('decode -> encode round trips', () => {
  const s = schemas();
  it('pstree vector', () => {
    const entries = decodeImage('pstree.img', PSTREE_393, KIND.pstree, s.pstree);
    expect(entries.map((e) => e.msg)).toEqual([{ pid: 393, ppid: 0, pgid: 393, sid: 393, threads: [393] }]);
    const again = frameImage(KIND.pstree, entries.map((e) => encodeMessage(s.pstree, e.msg)));
    expect(again.equals(PSTREE_393)).toBe(true);
  });

  it('core with 64-bit values above 2^53 and unknown fields kept', () => {
    const t = { ...base, sigBlk: [0xffffffff, 0xfffffffe] as const, futexRla: 0x7ffff7d8ea20, futexRlaLen: 24 };
    const g = groupProcesses([t])[0];
    const payload = Buffer.concat([s.core.encode(coreEntry(t, g, 1)).finish(), hex('f8 06 2a')]); // field 111 = 42
    const file = frameImage(KIND.core, [payload]);
    const [{ msg }] = decodeImage('core-1000.img', file, KIND.core, s.core);
    expect((msg.tc as Record<string, unknown>).blk_sigset).toBe(0xfffffffeffffffffn);
    expect((msg.thread_core as Record<string, unknown>).futex_rla).toBe(0x7ffff7d8ea20n);
    expect(msg.$unknown?.map((u) => [u.id, u.wireType, u.offset, show(u.raw)])).toEqual([[111, 0, 12 + payload.length - 3, 'f8 06 2a']]);
    expect(frameImage(KIND.core, [encodeMessage(s.core, msg)]).equals(file)).toBe(true);
  });

  it('packed repeated scalars are accepted on input', () => {
    const packed = hex('08 01 10 00 18 01 20 01 2a 02 01 02'); // threads packed: 2a len 2 [1, 2]
    const m = decodeMessage('p', packed, 0, packed.length, s.pstree);
    expect(m.threads).toEqual([1, 2]);
    // re-encoded unpacked, as CRIU writes
    expect(show(encodeMessage(s.pstree, m))).toBe('08 01 10 00 18 01 20 01 28 01 28 02');
  });
});

describe('reader errors name the file and the byte offset', () => {
  const s = schemas();
  const read = (b: Buffer, kind = KIND.pstree, type = s.pstree) => () => decodeImage('pstree.img', b, kind, type);

  it('empty file: premature EOF at 0', () => {
    imageError(read(Buffer.alloc(0)), 'pstree.img', 0, 'eof');
  });
  it('cut inside the type magic: EOF at 4', () => {
    imageError(read(PSTREE_393.subarray(0, 6)), 'pstree.img', 4, 'eof');
  });
  it('cut inside an entry length word: EOF at 8', () => {
    imageError(read(PSTREE_393.subarray(0, 10)), 'pstree.img', 8, 'eof');
  });
  it('declared length past end of file: EOF at the entry, no allocation', () => {
    const e = imageError(read(PSTREE_393.subarray(0, 20)), 'pstree.img', 8, 'eof');
    expect(e.message).toContain('14 bytes, 8 remain');
    const huge = Buffer.concat([PSTREE_393.subarray(0, 8), hex('ff ff ff ff 08 01')]);
    imageError(read(huge), 'pstree.img', 8, 'eof');
  });
  it('wrong head magic: corrupt at 0', () => {
    const b = Buffer.from(PSTREE_393);
    b[0] = 0x18;
    imageError(read(b), 'pstree.img', 0, 'corrupt');
    imageError(read(PSTREE_393.subarray(4)), 'pstree.img', 0, 'corrupt'); // missing head magic, as CRIU refuses
  });
  it('wrong type magic: corrupt at 4', () => {
    imageError(() => decodeImage('core-1.img', PSTREE_393, KIND.core, s.core), 'core-1.img', 4, 'corrupt');
  });
  it('inventory with a head magic: corrupt at 0', () => {
    const inv = frameImage(KIND.inventory, [s.inventory.encode(inventoryEntry()).finish()]);
    const withHead = Buffer.concat([hex('19 43 56 54'), inv]);
    const e = imageError(() => decodeImage('inventory.img', withHead, KIND.inventory, s.inventory), 'inventory.img', 0, 'corrupt');
    expect(e.message).toContain('must not have a head magic');
  });
  it('missing required field (pstree sid): corrupt at the entry payload', () => {
    const b = hex('19 43 56 54 30 30 27 50  08 00 00 00  08 89 03 10 00 18 89 03');
    const e = imageError(read(b), 'pstree.img', 12, 'corrupt');
    expect(e.message).toContain('required field sid (4) is missing');
  });
  it('missing required field in a nested message (thread_core.futex_rla_len)', () => {
    // core: 08 01 mtype, 2a 02 thread_core { 08 00 futex_rla } -> futex_rla_len missing, nested payload at 12+4
    const b = frameImage(KIND.core, [hex('08 01 2a 02 08 00')]);
    const e = imageError(() => decodeImage('core-5.img', b, KIND.core, s.core), 'core-5.img', 16, 'corrupt');
    expect(e.message).toContain('thread_core_entry: required field futex_rla_len (2) is missing');
    // creds inside thread_core missing secbits
    const creds = hex('08 00 10 00 18 00 20 00 28 00 30 00 38 00 40 00'); // uid..fsgid, no secbits (13)
    const tc = Buffer.concat([hex('08 00 10 00 52'), Buffer.from([creds.length]), creds]);
    const core = Buffer.concat([hex('08 01 2a'), Buffer.from([tc.length]), tc]);
    imageError(() => decodeImage('core-6.img', frameImage(KIND.core, [core]), KIND.core, s.core), 'core-6.img', 12 + 4 + 6, 'corrupt'); // core hdr 08 01 2a len, thread_core 08 00 10 00 52 len
  });
  it('garbage: an endless varint is corrupt at its offset', () => {
    const b = frameImage(KIND.pstree, [hex('08 89 03 ff ff ff ff ff ff ff ff ff ff ff')]);
    imageError(read(b), 'pstree.img', 15, 'corrupt');
  });
  it('wrong wire type: corrupt at the tag', () => {
    const b = frameImage(KIND.pstree, [hex('08 89 03 12 01 41')]); // ppid as length-delimited
    const e = imageError(read(b), 'pstree.img', 15, 'corrupt');
    expect(e.message).toContain('ppid (2) has wire type 2, expected 0');
  });
  it('a field running past the end of its entry is corrupt (the entry itself is complete)', () => {
    const core = frameImage(KIND.core, [hex('08 01 1a 10 08 01')]); // tc declares 16 bytes, 2 follow
    imageError(() => decodeImage('core-7.img', core, KIND.core, s.core), 'core-7.img', 14, 'corrupt');
  });
  it('unknown enum value (mtype 99) is corrupt, as protobuf-c would find mtype missing', () => {
    const core = frameImage(KIND.core, [hex('08 63')]);
    const e = imageError(() => decodeImage('core-8.img', core, KIND.core, s.core), 'core-8.img', 12, 'corrupt');
    expect(e.message).toContain('99 is not a value of enum march');
  });
  it('a single-entry image with two entries, or none', () => {
    const one = s.core.encode({ mtype: 1 }).finish();
    imageError(() => decodeImage('c.img', frameImage(KIND.core, [one, one]), KIND.core, s.core), 'c.img', 8 + 4 + one.length, 'corrupt');
    imageError(() => decodeImage('c.img', frameImage(KIND.core, []), KIND.core, s.core), 'c.img', 8, 'eof');
  });
  it('an image with magics and no entries is valid (multi-entry kinds)', () => {
    expect(splitEntries('pstree.img', frameImage(KIND.pstree, []), KIND.pstree)).toEqual([]);
  });
});
