/**
 * TASKDIAG v1 byte vectors (spec §1.3–§2.3, §7.1) and the client's conversation over a scripted socket:
 * the requests it sends (including the v1 selftest's nla_len + 1 quirk), the replies it parses (attribute 64,
 * attribute type 0 creds, extension attribute 65), dumps across datagrams with v1's flags-0 messages, and
 * errors (NLMSG_ERROR for single tasks, a negative NLMSG_DONE payload for dumps).
 */
import { describe, expect, it } from 'vitest';
import { decodeMessages, encodeAttr, encodeGenl, encodeMessage, NLMSG_DONE, NLMSG_ERROR, NLM_F_MULTI } from '../../src/netlink/codec.js';
import { NetlinkDecodeError, NetlinkError, NetlinkProtocolError } from '../../src/netlink/errors.js';
import { GenlConn, GENL_ID_CTRL } from '../../src/netlink/genl.js';
import {
  TASK_DIAG_DUMP_ALL, TASK_DIAG_DUMP_CHILDREN, TASK_DIAG_SHOW_CRED, TaskDiagClient, decodeTaskDiagCreds,
  decodeTaskDiagExt, decodeTaskDiagMsg, decodeTaskDiagPayload, decodeTaskDiagPid, encodeGetPayload, encodeTaskDiagPid,
} from '../../src/netlink/taskdiag.js';
import { FakeSocket, hex, u32 } from '../helpers/netlink-fake.js';

const FAMILY = 0x1a;
const PORT = 4242;

/** task_diag_msg for tgid/pid/ppid..., hand-laid (44 bytes, padding 0xAA as the RFC kernel left it). */
function msgBytes(o: { tgid: number; pid: number; ppid: number; tpid?: number; sid?: number; pgid?: number; state?: number; comm: string }): Buffer {
  const b = Buffer.alloc(44, 0);
  b.writeUInt32LE(o.tgid, 0); b.writeUInt32LE(o.pid, 4); b.writeUInt32LE(o.ppid, 8); b.writeUInt32LE(o.tpid ?? 0, 12);
  b.writeUInt32LE(o.sid ?? 1, 16); b.writeUInt32LE(o.pgid ?? 1, 20); b[24] = o.state ?? 1;
  b.write(o.comm, 25, 'latin1');
  b.fill(0xaa, 41, 44);
  return b;
}
const credsBytes = (uid: number): Buffer => {
  const b = Buffer.alloc(64);
  for (let i = 0; i < 8; i++) b.writeUInt32LE(uid + i, 32 + 4 * i);
  b.writeUInt32LE(0xffffffff, 24); b.writeUInt32LE(0x1ff, 28); // cap_bset
  return b;
};
function reply(seq: number, flags: number, m: Buffer, creds?: Buffer): Buffer {
  const attrs = [encodeAttr(64, m)];
  if (creds) attrs.push(encodeAttr(0, creds));
  return encodeMessage({ type: FAMILY, flags, seq, pid: PORT }, encodeGenl(1, 1, attrs));
}
const done = (seq: number, err = 0): Buffer => {
  const p = Buffer.alloc(4); p.writeInt32LE(err, 0);
  return encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq, pid: PORT }, p);
};
const nlerr = (req: Buffer, errno: number): Buffer => {
  const p = Buffer.alloc(4); p.writeInt32LE(-errno, 0);
  return encodeMessage({ type: NLMSG_ERROR, flags: 0x100 /* CAPPED */, seq: req.readUInt32LE(8), pid: PORT }, Buffer.concat([p, req.subarray(0, 16)]));
};
/** A controller reply naming TASKDIAG = FAMILY. */
function familyReply(req: Buffer): Buffer {
  return encodeMessage({ type: GENL_ID_CTRL, flags: 0, seq: req.readUInt32LE(8), pid: PORT }, encodeGenl(1, 2, [
    encodeAttr(1, hex('1a00')), encodeAttr(2, Buffer.from('TASKDIAG\0')), encodeAttr(3, hex(u32(1))),
  ]));
}

type Script = (req: Buffer, seq: number) => Buffer[];
function client(script: Script): { c: TaskDiagClient; sock: FakeSocket } {
  const sock = new FakeSocket((req) => {
    const seq = req.readUInt32LE(8);
    if (req.readUInt16LE(4) === GENL_ID_CTRL) return [familyReply(req)];
    return script(req, seq);
  }, PORT);
  return { c: TaskDiagClient.over(new GenlConn(sock)), sock };
}

describe('task_diag_pid and the request message', () => {
  it('encodes the 24-byte struct with zero padding', () => {
    expect(encodeTaskDiagPid({ showFlags: TASK_DIAG_SHOW_CRED, strategy: TASK_DIAG_DUMP_CHILDREN, pid: 0x1234 })).toEqual(hex(`
      01 00 00 00 00 00 00 00   // show_flags = TASK_DIAG_SHOW_CRED (u64)
      01 00 00 00 00 00 00 00   // dump_stratagy = TASK_DIAG_DUMP_CHILDREN (u64)
      34 12 00 00               // pid 0x1234
      00 00 00 00               // padding, zero
    `));
    expect(decodeTaskDiagPid(encodeTaskDiagPid({ showFlags: 3, strategy: 1, pid: 9 }))).toEqual({ showFlags: 3, strategy: 1, pid: 9 });
  });

  it('single-task request: nla_len 28, nlmsg_len 48, NLM_F_REQUEST only', () => {
    const { c, sock } = client((req) => [reply(req.readUInt32LE(8), 0, msgBytes({ tgid: 7, pid: 7, ppid: 1, comm: 'x' }), credsBytes(0))]);
    c.get(7);
    const sent = sock.sent[1]; // [0] is the family lookup
    expect(sent).toEqual(hex(`
      30 00 00 00   // nlmsg_len 48 = 16 + 4 + 28
      1a 00         // nlmsg_type = resolved TASKDIAG id
      01 00         // NLM_F_REQUEST
      ${u32(sent.readUInt32LE(8))}  // seq (the connection's counter)
      92 10 00 00   // nlmsg_pid = our port 4242
      01 01 00 00   // genl cmd TASKDIAG_CMD_GET 1, version 1, reserved 0
      1c 00 01 00   // nla_len 28, TASKDIAG_CMD_ATTR_GET 1
      01 00 00 00 00 00 00 00  // show_flags SHOW_CRED
      00 00 00 00 00 00 00 00  // dump_stratagy 0 (ignored by doit)
      07 00 00 00 00 00 00 00  // pid 7, padding
    `));
  });

  it('the v1 selftest quirk: nla_len 29 and nlmsg_len 52 for a DUMP_ALL', () => {
    // send_cmd() in the v1 selftest: NLA_HDRLEN + payload + 1, nlmsg_len = 20 + NLMSG_ALIGN(29)
    const payload = encodeGetPayload({ showFlags: 0, strategy: TASK_DIAG_DUMP_ALL, pid: 1 }, { quirk: true });
    const msg = encodeMessage({ type: FAMILY, flags: 0x301, seq: 0, pid: 1234 }, payload);
    expect(msg).toEqual(hex(`
      34 00 00 00   // nlmsg_len 52 = 16 + 4 + NLA_ALIGN(29)
      1a 00         // family id
      01 03         // NLM_F_REQUEST | NLM_F_DUMP
      00 00 00 00   // seq 0 (selftest)
      d2 04 00 00   // nlmsg_pid = getpid() 1234 (selftest)
      01 01 00 00   // cmd 1, version 1
      1d 00 01 00   // nla_len 29 (the +1 quirk), type 1
      00 00 00 00 00 00 00 00  // show_flags 0
      00 00 00 00 00 00 00 00  // TASK_DIAG_DUMP_ALL
      01 00 00 00 00 00 00 00  // pid 1, padding
      00 00 00 00              // the extra byte of nla_len and alignment
    `));
    expect(msg.length).toBe(52);
  });
});

describe('reply decoding', () => {
  // one v1 reply with creds: 16 + 4 + 48 + 68 = 136 bytes
  const vector = hex(`
    88 00 00 00   // nlmsg_len 136
    1a 00 00 00   // type TASKDIAG, flags 0
    05 00 00 00   // seq 5
    92 10 00 00   // port 4242
    01 01 00 00   // genl: cmd 1, version 1
    30 00 40 00   // nla_len 48, type 64 TASK_DIAG_MSG
      e8 03 00 00  // tgid 1000
      e9 03 00 00  // pid 1001 (a thread)
      01 00 00 00  // ppid 1
      00 00 00 00  // tpid 0
      e8 03 00 00  // sid 1000
      e8 03 00 00  // pgid 1000
      04           // state 4 = t (tracing stop)
      73 6c 65 65 70 65 72 00 00 00 00 00 00 00 00 00  // comm "sleeper"
      aa bb cc     // tail padding, not zeroed by the RFC kernel: ignored
    44 00 00 00   // nla_len 68, type 0 TASK_DIAG_CRED (type 0 is real data)
      00 00 00 00 00 00 00 00  // cap_inheritable
      00 00 00 00 00 00 00 00  // cap_permitted
      00 00 00 00 00 00 00 00  // cap_effective
      ff ff ff ff ff 01 00 00  // cap_bset: low word 0xffffffff, high word 0x1ff
      e8 03 00 00  e9 03 00 00  ea 03 00 00  eb 03 00 00  // uid 1000 euid 1001 suid 1002 fsuid 1003
      64 00 00 00  65 00 00 00  66 00 00 00  67 00 00 00  // gid 100 egid 101 sgid 102 fsgid 103
  `);
  it('decodes attribute 64 and the type-0 creds', () => {
    expect(vector.length).toBe(136);
    const [m] = decodeMessages(vector);
    const r = decodeTaskDiagPayload(m.payload);
    expect(r.msg).toEqual({ tgid: 1000, pid: 1001, ppid: 1, tpid: 0, sid: 1000, pgid: 1000, stateIndex: 4, state: 't', comm: 'sleeper' });
    expect(r.creds).toEqual({
      capInh: [0, 0], capPrm: [0, 0], capEff: [0, 0], capBnd: [0xffffffff, 0x1ff],
      uid: 1000, euid: 1001, suid: 1002, fsuid: 1003, gid: 100, egid: 101, sgid: 102, fsgid: 103,
    });
    expect(r.unknown).toEqual([]);
  });
  it('re-encodes to the same bytes (padding aside)', () => {
    const [m] = decodeMessages(vector);
    const r = decodeTaskDiagPayload(m.payload);
    // creds value: message offset 16 + 4 + 48 + 4 = 72, i.e. payload offset 56..120
    const again = reply(5, 0, msgBytes({ tgid: 1000, pid: 1001, ppid: 1, sid: 1000, pgid: 1000, state: 4, comm: 'sleeper' }), m.payload.subarray(56, 120));
    const r2 = decodeTaskDiagPayload(decodeMessages(again)[0].payload);
    expect(r2).toEqual(r);
    const expected = Buffer.from(vector);
    expected.fill(0xaa, 16 + 4 + 4 + 41, 16 + 4 + 4 + 44); // msgBytes() writes the tail padding as aa aa aa
    expect(again).toEqual(expected);
  });
  it('keeps unknown attributes and accepts a longer task_diag_msg', () => {
    const long = Buffer.concat([msgBytes({ tgid: 5, pid: 5, ppid: 1, comm: 'a' }), hex('01020304')]);
    const p = encodeGenl(1, 1, [encodeAttr(64, long), encodeAttr(77, hex('beef'))]);
    const r = decodeTaskDiagPayload(p);
    expect(r.msg.comm).toBe('a');
    expect(r.unknown.map((u) => [u.type, u.payload.toString('hex')])).toEqual([[77, 'beef']]);
  });
  it('typed errors: short msg/creds → eof, unknown state → corrupt, no attribute 64 → corrupt', () => {
    const reason = (f: () => unknown): string => {
      try { f(); } catch (e) { expect(e).toBeInstanceOf(NetlinkDecodeError); return (e as NetlinkDecodeError).reason; }
      return 'ok';
    };
    expect(reason(() => decodeTaskDiagMsg(Buffer.alloc(43)))).toBe('eof');
    expect(reason(() => decodeTaskDiagCreds(Buffer.alloc(63)))).toBe('eof');
    const m = msgBytes({ tgid: 1, pid: 1, ppid: 0, comm: 'init' }); m[24] = 9;
    expect(reason(() => decodeTaskDiagMsg(m))).toBe('corrupt');
    expect(reason(() => decodeTaskDiagPayload(encodeGenl(1, 1, [encodeAttr(0, credsBytes(0))])))).toBe('corrupt');
  });
  it('extension attribute 65: fixed part + groups', () => {
    const x = hex(`
      00 ca 9a 3b 00 00 00 00   // start_time_ns 1e9
      64 00 00 00 00 00 00 00   // start_time 100 ticks
      10 20 30 40 00 7f 00 00   // robust_list 0x7f0040302010
      00 00 00 00 00 00 00 00   // cap_ambient
      00 00 01 00 00 00 00 00   // sigblk: signal 17 (bit 16)
      40 01 40 00               // flags PF_* 0x00400140
      00 00 00 00               // personality
      00 00 00 00               // securebits
      02 00 00 00               // seccomp 2 (filter)
      fb ff ff ff               // nice -5
      00 00 00 00               // policy SCHED_OTHER
      0f 00 00 00               // prio 15
      00 00 00 00               // rt_priority
      00 00 00 00               // exit_code
      01                        // no_new_privs
      00                        // ext_flags
      58 00                     // fixed_len 88
      02 00 00 00               // ngroups 2
      02 00 00 00               // ngroups_sent 2
      0a 00 00 00 14 00 00 00   // groups 10, 20
    `);
    const e = decodeTaskDiagExt(x);
    expect(e).toMatchObject({ startTime: 100, capAmb: [0, 0], sigBlk: [0x10000, 0], flags: 0x400140, seccomp: 2, nice: -5,
      prio: 15, noNewPrivs: true, fixedLen: 88, ngroups: 2, groups: [10, 20] });
    expect(e.robustList).toBe(0x7f0040302010n);
    const cut = x.subarray(0, 92); // announces 2 groups, carries 1
    expect(() => decodeTaskDiagExt(cut)).toThrow(NetlinkDecodeError);
  });
});

describe('client conversation', () => {
  it('a dump across two datagrams, v1 messages with flags 0, ending at NLMSG_DONE 0', async () => {
    const { c } = client((req, seq) => [
      Buffer.concat([reply(seq, 0, msgBytes({ tgid: 10, pid: 10, ppid: 1, comm: 'a' }), credsBytes(0)),
        reply(seq, 0, msgBytes({ tgid: 11, pid: 11, ppid: 10, comm: 'b' }), credsBytes(0))]),
      Buffer.concat([reply(seq, 0, msgBytes({ tgid: 12, pid: 12, ppid: 10, comm: 'c' }), credsBytes(0)), done(seq)]),
    ]);
    const got: number[] = [];
    for await (const r of c.dump(TASK_DIAG_DUMP_CHILDREN, 10)) got.push(r.msg.pid);
    expect(got).toEqual([10, 11, 12]);
    expect(c.stats()).toMatchObject({ datagrams: 3, requests: 2 }); // family lookup + dump
  });

  it('a dump error arrives in NLMSG_DONE: CHILDREN of a missing pid → ESRCH', () => {
    const { c } = client((req, seq) => [done(seq, -3)]);
    try {
      for (const _ of c.dumpSync(TASK_DIAG_DUMP_CHILDREN, 999999)) { /* nothing */ }
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(NetlinkError);
      expect((e as NetlinkError).code).toBe('ESRCH');
      expect((e as NetlinkError).errno).toBe(3);
      expect((e as NetlinkError).operation).toContain('TASKDIAG dump strategy 1 pid 999999');
    }
  });

  it('a single-task error is an NLMSG_ERROR: ESRCH', () => {
    const { c } = client((req) => [nlerr(req, 3)]);
    expect(() => c.get(999999)).toThrow(expect.objectContaining({ code: 'ESRCH', operation: 'TASKDIAG get 999999' }));
  });

  it('unknown strategy (EINVAL) means the extension is absent', () => {
    const { c } = client((req, seq) => [done(seq, -22)]);
    expect(c.supportsStrategy(2)).toBe(false);
  });

  it('skips a stale reply of an earlier request; rejects a future sequence number and a foreign port', () => {
    const { c, sock } = client((req, seq) => [
      Buffer.concat([reply(seq - 1, 0, msgBytes({ tgid: 1, pid: 1, ppid: 0, comm: 'old' }), credsBytes(0))]),
      reply(seq, 0, msgBytes({ tgid: 2, pid: 2, ppid: 0, comm: 'new' }), credsBytes(0)),
    ]);
    expect(c.get(2).msg.comm).toBe('new');
    expect(c.genl.conn.stats.stale).toBe(1);
    sock.queue.length = 0;
    const { c: c2 } = client((req, seq) => [reply(seq + 5, 0, msgBytes({ tgid: 2, pid: 2, ppid: 0, comm: 'x' }), credsBytes(0))]);
    expect(() => c2.get(2)).toThrow(NetlinkProtocolError);
    const { c: c3 } = client((req, seq) => [encodeMessage({ type: FAMILY, flags: 0, seq, pid: 777 }, encodeGenl(1, 1, [encodeAttr(64, msgBytes({ tgid: 2, pid: 2, ppid: 0, comm: 'x' }))]))]);
    expect(() => c3.get(2)).toThrow(expect.objectContaining({ fault: 'port' }));
  });

  it('leaving a dump early drains it, and the connection stays usable', () => {
    const { c, sock } = client((req, seq) => {
      if (req.readUInt16LE(6) & 0x300) {
        return [
          reply(seq, 0, msgBytes({ tgid: 10, pid: 10, ppid: 1, comm: 'a' }), credsBytes(0)),
          reply(seq, 0, msgBytes({ tgid: 11, pid: 11, ppid: 1, comm: 'b' }), credsBytes(0)),
          done(seq),
        ];
      }
      return [reply(seq, 0, msgBytes({ tgid: 5, pid: 5, ppid: 1, comm: 'single' }), credsBytes(0))];
    });
    for (const r of c.dumpSync(TASK_DIAG_DUMP_ALL, 0)) { expect(r.msg.pid).toBe(10); break; }
    expect(sock.queue).toHaveLength(0);
    expect(c.get(5).msg.comm).toBe('single');
  });

  it('breaking out of the async iterator (return()) drains the dump too', async () => {
    const { c, sock } = client((req, seq) => [
      reply(seq, 0, msgBytes({ tgid: 10, pid: 10, ppid: 1, comm: 'a' }), credsBytes(0)),
      Buffer.concat([reply(seq, 0, msgBytes({ tgid: 11, pid: 11, ppid: 1, comm: 'b' }), credsBytes(0)), done(seq)]),
    ]);
    for await (const r of c.dump(TASK_DIAG_DUMP_ALL, 0)) { expect(r.msg.pid).toBe(10); break; }
    expect(sock.queue).toHaveLength(0);
    expect(c.stats().datagrams).toBe(3); // family lookup + both datagrams of the dump
  });

  it('a missing family: the controller answers ENOENT', () => {
    const sock = new FakeSocket((req) => [nlerr(req, 2)], PORT);
    expect(() => TaskDiagClient.over(new GenlConn(sock))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
