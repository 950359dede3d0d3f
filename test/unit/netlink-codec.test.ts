/**
 * Byte vectors for the netlink codec: nlmsghdr, nlattr (alignment, nesting, type 0), genlmsghdr, the
 * controller's family reply, NLMSG_ERROR with extended ack, NLMSG_DONE. Every vector is hand-built and
 * commented field by field; decode → compare, encode → byte-compare.
 */
import { describe, expect, it } from 'vitest';
import {
  NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_MULTI, NLM_F_REQUEST,
  attrString, attrU32, decodeAttrs, decodeDone, decodeError, decodeGenl, decodeMessages, encodeAttr,
  encodeGenl, encodeMessage, encodeNested, readNested, readString, readU16, readU32,
} from '../../src/netlink/codec.js';
import { NetlinkDecodeError } from '../../src/netlink/errors.js';
import { decodeFamily, decodeGenlMessage, encodeGetFamily, GENL_ID_CTRL } from '../../src/netlink/genl.js';
import { hex } from '../helpers/netlink-fake.js';

describe('nlmsghdr', () => {
  const bytes = hex(`
    18 00 00 00   // nlmsg_len 24 = 16 header + 8 payload
    10 00         // nlmsg_type 0x10 GENL_ID_CTRL
    01 03         // nlmsg_flags NLM_F_REQUEST | NLM_F_DUMP (0x301)
    07 00 00 00   // nlmsg_seq 7
    39 30 00 00   // nlmsg_pid 12345
    de ad be ef 01 02 03 04  // payload
  `);
  it('decodes', () => {
    const [m, ...rest] = decodeMessages(bytes);
    expect(rest).toHaveLength(0);
    expect(m.header).toEqual({ len: 24, type: 0x10, flags: NLM_F_REQUEST | NLM_F_DUMP, seq: 7, pid: 12345 });
    expect(m.payload.toString('hex')).toBe('deadbeef01020304');
  });
  it('encodes byte for byte', () => {
    expect(encodeMessage({ type: 0x10, flags: 0x301, seq: 7, pid: 12345 }, hex('deadbeef01020304'))).toEqual(bytes);
  });
  it('pads an unaligned payload but does not count the padding in nlmsg_len', () => {
    const m = encodeMessage({ type: 20, flags: 1, seq: 1, pid: 0 }, hex('aabbcc'));
    expect(m).toEqual(hex(`
      13 00 00 00  // nlmsg_len 19
      14 00 01 00  // type 20, flags REQUEST
      01 00 00 00  // seq 1
      00 00 00 00  // pid 0
      aa bb cc 00  // 3 payload bytes + 1 pad
    `));
  });
  it('splits a datagram of several aligned messages', () => {
    const d = Buffer.concat([
      encodeMessage({ type: 30, flags: 0, seq: 5, pid: 9 }, hex('01')),       // 17 bytes, padded to 20
      encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 5, pid: 9 }, hex('00000000')),
    ]);
    const ms = decodeMessages(d);
    expect(ms.map((m) => [m.header.type, m.header.len, m.payload.length])).toEqual([[30, 17, 1], [NLMSG_DONE, 20, 4]]);
  });
  it('premature end vs corrupt length', () => {
    expect(() => decodeMessages(bytes.subarray(0, 10))).toThrow(NetlinkDecodeError);
    try { decodeMessages(bytes.subarray(0, 20)); } catch (e) {
      expect((e as NetlinkDecodeError).reason).toBe('eof');       // nlmsg_len 24 > 20 bytes present
    }
    const bad = Buffer.from(bytes); bad.writeUInt32LE(8, 0);      // nlmsg_len 8 < 16
    try { decodeMessages(bad); expect.unreachable(); } catch (e) {
      expect(e).toBeInstanceOf(NetlinkDecodeError);
      expect((e as NetlinkDecodeError).reason).toBe('corrupt');
    }
  });
});

describe('nlattr', () => {
  it('type 0 is data, payload is padded to 4, nla_len excludes the padding', () => {
    const a = encodeAttr(0, hex('0102030405'));
    expect(a).toEqual(hex(`
      09 00 00 00     // nla_len 9 (4 + 5), nla_type 0
      01 02 03 04 05  // value
      00 00 00        // padding to 12
    `));
    const [d] = decodeAttrs(a);
    expect(d).toMatchObject({ type: 0, nested: false, netByteOrder: false });
    expect(d.payload.toString('hex')).toBe('0102030405');
  });
  it('nesting sets NLA_F_NESTED and decodes recursively', () => {
    const n = encodeNested(6, [attrU32(1, 3), attrU32(2, 0x0a)]);
    expect(n).toEqual(hex(`
      14 00 06 80     // nla_len 20, type 6 | NLA_F_NESTED (0x8000)
      08 00 01 00  03 00 00 00   // nla_len 8, type 1, u32 3
      08 00 02 00  0a 00 00 00   // nla_len 8, type 2, u32 10
    `));
    const [outer] = decodeAttrs(n);
    expect(outer.type).toBe(6);
    expect(outer.nested).toBe(true);
    expect(readNested(outer).map((x) => [x.type, readU32(x)])).toEqual([[1, 3], [2, 10]]);
  });
  it('NLA_F_NET_BYTEORDER is split off the type', () => {
    const [a] = decodeAttrs(hex('06 00 05 40  12 34 00 00'));  // len 6, type 5 | 0x4000, be16 0x1234
    expect(a).toMatchObject({ type: 5, netByteOrder: true, nested: false });
    expect(a.payload.readUInt16BE(0)).toBe(0x1234);
  });
  it('errors: header cut → eof, nla_len < 4 → corrupt, nla_len past the end → eof', () => {
    const reason = (b: Buffer): string => {
      try { decodeAttrs(b); } catch (e) { expect(e).toBeInstanceOf(NetlinkDecodeError); return (e as NetlinkDecodeError).reason; }
      return 'ok';
    };
    expect(reason(hex('08 00'))).toBe('eof');
    expect(reason(hex('03 00 01 00'))).toBe('corrupt');
    expect(reason(hex('10 00 01 00 00 00 00 00'))).toBe('eof');
  });
  it('string attributes are NUL-terminated', () => {
    expect(attrString(2, 'TASKDIAG')).toEqual(hex(`
      0d 00 02 00                 // nla_len 13 = 4 + "TASKDIAG\\0", type 2 CTRL_ATTR_FAMILY_NAME
      54 41 53 4b 44 49 41 47 00  // "TASKDIAG" NUL
      00 00 00                    // pad
    `));
    expect(readString(decodeAttrs(attrString(2, 'TASKDIAG'))[0])).toBe('TASKDIAG');
  });
});

describe('genlmsghdr and the controller', () => {
  it('CTRL_CMD_GETFAMILY "TASKDIAG" request, byte for byte', () => {
    const msg = encodeMessage({ type: GENL_ID_CTRL, flags: NLM_F_REQUEST, seq: 1, pid: 100 }, encodeGetFamily('TASKDIAG'));
    expect(msg).toEqual(hex(`
      24 00 00 00   // nlmsg_len 36 = 16 header + 4 genl + 16 (the 13-byte attribute padded to 16)
      10 00         // GENL_ID_CTRL
      01 00         // NLM_F_REQUEST
      01 00 00 00   // seq 1
      64 00 00 00   // port 100
      03 01 00 00   // cmd CTRL_CMD_GETFAMILY 3, version 1, reserved
      0d 00 02 00 54 41 53 4b 44 49 41 47 00 00 00 00  // CTRL_ATTR_FAMILY_NAME "TASKDIAG"
    `));
  });
  it('family reply parsed by attribute type (not position), unknown attributes kept', () => {
    // attributes deliberately out of the kernel's order; ID after NAME, an unknown type 99 in the middle
    const payload = encodeGenl(1 /* CTRL_CMD_NEWFAMILY */, 2, [
      attrString(2, 'TASKDIAG'),                                // CTRL_ATTR_FAMILY_NAME
      encodeAttr(99, hex('cafebabe')),                          // unknown
      attrU32(5, 1),                                            // CTRL_ATTR_MAXATTR
      encodeNested(6, [encodeNested(1, [attrU32(1, 1), attrU32(2, 0x0e)])]), // CTRL_ATTR_OPS: op 1 flags 0xe
      encodeAttr(1, hex('2100')),                               // CTRL_ATTR_FAMILY_ID 0x21 (u16)
      attrU32(3, 1),                                            // CTRL_ATTR_VERSION 1
      attrU32(4, 0),                                            // CTRL_ATTR_HDRSIZE 0
    ]);
    const m = decodeMessages(encodeMessage({ type: GENL_ID_CTRL, flags: 0, seq: 1, pid: 100 }, payload))[0];
    const g = decodeGenlMessage(m);
    expect(g.header).toEqual({ cmd: 1, version: 2, reserved: 0 });
    const f = decodeFamily(g.attrs);
    expect(f).toMatchObject({ id: 0x21, name: 'TASKDIAG', version: 1, hdrSize: 0, maxAttr: 1, ops: [{ id: 1, flags: 0x0e }] });
    expect(f.unknown.map((a) => [a.type, a.payload.toString('hex')])).toEqual([[99, 'cafebabe']]);
    expect(readU16(g.attrs[4])).toBe(0x21);
  });
  it('genl header decode needs 4 bytes', () => {
    expect(decodeGenl(hex('01 01 00 00 aa')).header).toEqual({ cmd: 1, version: 1, reserved: 0 });
    expect(() => decodeGenl(hex('01 01'))).toThrow(NetlinkDecodeError);
  });
});

describe('NLMSG_ERROR and NLMSG_DONE', () => {
  it('an error with extended ack (capped, TLVs): errno, request header, message and offset', () => {
    const d = hex(`
      44 00 00 00   // nlmsg_len 68 = 16 + 4 + 16 + 16 + 8 + 8
      02 00         // NLMSG_ERROR
      00 03         // NLM_F_CAPPED | NLM_F_ACK_TLVS (0x300)
      09 00 00 00   // seq 9
      e8 03 00 00   // port 1000
      ea ff ff ff   // error -22 (EINVAL)
      30 00 00 00 1a 00 01 00 09 00 00 00 e8 03 00 00  // the request's header: len 48, type 26, REQUEST, seq 9, port 1000
      10 00 01 00 62 61 64 20 72 65 71 75 65 73 74 00  // NLMSGERR_ATTR_MSG "bad request" NUL (len 16)
      08 00 02 00 14 00 00 00                          // NLMSGERR_ATTR_OFFS 20
      08 00 07 00 01 00 00 00                          // unknown TLV 7 (kept)
    `);
    const [m] = decodeMessages(d);
    expect(m.header).toMatchObject({ type: NLMSG_ERROR, flags: NLM_F_CAPPED | NLM_F_ACK_TLVS });
    const e = decodeError(m);
    expect(e.error).toBe(-22);
    expect(e.request).toEqual({ len: 48, type: 26, flags: 1, seq: 9, pid: 1000 });
    expect(e.extAck?.msg).toBe('bad request');
    expect(e.extAck?.offset).toBe(20);
    expect(e.extAck?.other.map((o) => o.type)).toEqual([7]);
  });
  it('an uncapped error echoes the whole request before the TLVs', () => {
    const req = encodeMessage({ type: 26, flags: 1, seq: 3, pid: 5 }, hex('01010000'));     // 20-byte request
    const payload = Buffer.concat([hex('fd ff ff ff'), req, hex('08 00 01 00 78 79 7a 00')]); // -3 ESRCH, echo, MSG "xyz"
    const [m] = decodeMessages(encodeMessage({ type: NLMSG_ERROR, flags: NLM_F_ACK_TLVS, seq: 3, pid: 5 }, payload));
    const e = decodeError(m);
    expect(e).toMatchObject({ error: -3, request: { len: 20, type: 26, seq: 3 } });
    expect(e.extAck?.msg).toBe('xyz');
  });
  it('an acknowledgement is error 0', () => {
    const [m] = decodeMessages(hex('24 00 00 00 02 00 00 01 01 00 00 00 05 00 00 00  00 00 00 00  14 00 00 00 10 00 05 00 01 00 00 00 05 00 00 00'));
    expect(decodeError(m).error).toBe(0);
  });
  it('NLMSG_DONE carries the dump\'s result: 0, or -errno as in TASKDIAG v1', () => {
    const ok = decodeMessages(hex(`
      14 00 00 00 03 00 02 00 04 00 00 00 e8 03 00 00  // len 20, NLMSG_DONE, NLM_F_MULTI, seq 4, port 1000
      00 00 00 00                                      // int 0: finished
    `))[0];
    expect(decodeDone(ok).error).toBe(0);
    const bad = decodeMessages(hex(`
      14 00 00 00 03 00 02 00 04 00 00 00 e8 03 00 00  // len 20, NLMSG_DONE, NLM_F_MULTI
      fd ff ff ff                                      // int -3: ESRCH
    `))[0];
    expect(decodeDone(bad).error).toBe(-3);
    expect(() => decodeDone(decodeMessages(hex('10 00 00 00 03 00 02 00 04 00 00 00 e8 03 00 00'))[0])).toThrow(NetlinkDecodeError);
  });
});
