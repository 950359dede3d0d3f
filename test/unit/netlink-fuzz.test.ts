/**
 * Fuzzing the netlink decoders and the connection logic with a seeded PRNG: random bytes, mutated valid
 * datagrams, every truncation of valid datagrams, and oversized ones. Every decoder either returns or throws a
 * typed error (NetlinkDecodeError for bytes; NetlinkProtocolError / NetlinkError / SysError for the
 * conversation) — never a RangeError, TypeError or a hang.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeAttrs, decodeDone, decodeError, decodeMessages, encodeAttr, encodeGenl, encodeMessage, encodeNested,
  NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_MULTI, attrString, attrU32, type NlMessage,
} from '../../src/netlink/codec.js';
import { NetlinkDecodeError } from '../../src/netlink/errors.js';
import { decodeFamily, decodeGenlMessage, GenlConn, GENL_ID_CTRL } from '../../src/netlink/genl.js';
import { decodeTaskDiagExt, decodeTaskDiagPayload, decodeTaskDiagPid, TaskDiagClient } from '../../src/netlink/taskdiag.js';
import { decodeTaskStatsReply } from '../../src/netlink/taskstats.js';
import { decodeInetDiagMsg } from '../../src/netlink/sockdiag.js';
import { TdError } from '../../src/errors.js';
import { FakeSocket, prng } from '../helpers/netlink-fake.js';

const PORT = 4242;

function corpus(): Buffer[] {
  const msg = Buffer.alloc(44); msg.writeUInt32LE(100, 0); msg.writeUInt32LE(100, 4); msg[24] = 1; msg.write('proc', 25);
  const creds = Buffer.alloc(64, 1);
  const ext = Buffer.alloc(96); ext.writeUInt16LE(88, 78); ext.writeUInt32LE(2, 80); ext.writeUInt32LE(2, 84);
  const ts = Buffer.alloc(416); ts.writeUInt16LE(16, 0);
  const td = (attrs: Buffer[]): Buffer => encodeMessage({ type: 0x1a, flags: 0, seq: 2, pid: PORT }, encodeGenl(1, 1, attrs));
  const errPayload = Buffer.concat([Buffer.from([0xea, 0xff, 0xff, 0xff]), Buffer.alloc(16), attrString(1, 'bad thing'), attrU32(2, 20)]);
  errPayload.writeUInt32LE(16, 4);
  return [
    td([encodeAttr(64, msg), encodeAttr(0, creds)]),
    Buffer.concat([td([encodeAttr(64, msg), encodeAttr(0, creds), encodeAttr(65, ext)]), td([encodeAttr(64, msg)])]),
    encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 2, pid: PORT }, Buffer.from([0xfd, 0xff, 0xff, 0xff])),
    encodeMessage({ type: NLMSG_ERROR, flags: NLM_F_CAPPED | NLM_F_ACK_TLVS, seq: 2, pid: PORT }, errPayload),
    encodeMessage({ type: GENL_ID_CTRL, flags: 0, seq: 1, pid: PORT }, encodeGenl(1, 2, [
      encodeAttr(1, Buffer.from([0x1a, 0])), attrString(2, 'TASKDIAG'), attrU32(3, 1),
      encodeNested(6, [encodeNested(1, [attrU32(1, 1), attrU32(2, 0xe)])]),
      encodeNested(7, [encodeNested(1, [attrString(1, 'grp'), attrU32(2, 3)])]),
    ])),
    encodeMessage({ type: 31, flags: 0, seq: 2, pid: PORT }, encodeGenl(2, 1, [encodeNested(4, [attrU32(1, 100), encodeAttr(3, ts)])])),
    encodeMessage({ type: 20, flags: NLM_F_MULTI, seq: 2, pid: PORT }, Buffer.concat([Buffer.alloc(72, 2), encodeAttr(5, Buffer.alloc(8))])),
  ];
}

/** Apply every decoder to a datagram; returns the number of non-typed failures (must be 0). */
function decodeEverything(d: Buffer, bad: Buffer[]): void {
  const typed = (f: () => unknown): void => {
    try { f(); } catch (e) {
      if (!(e instanceof NetlinkDecodeError)) bad.push(Buffer.from(d));
    }
  };
  let ms: NlMessage[] = [];
  typed(() => { ms = decodeMessages(d); });
  typed(() => decodeAttrs(d));
  typed(() => decodeTaskDiagPid(d));
  typed(() => decodeTaskDiagExt(d));
  typed(() => decodeTaskDiagPayload(d));
  const fake: NlMessage = { header: { len: d.length + 16, type: 2, flags: NLM_F_ACK_TLVS, seq: 0, pid: 0 }, payload: d };
  ms.push(fake, { ...fake, header: { ...fake.header, flags: NLM_F_ACK_TLVS | NLM_F_CAPPED } });
  for (const m of ms) {
    typed(() => decodeError(m));
    typed(() => decodeDone(m));
    typed(() => decodeFamily(decodeGenlMessage(m).attrs));
    typed(() => decodeTaskDiagPayload(m.payload));
    typed(() => decodeTaskStatsReply(decodeGenlMessage(m)));
    typed(() => decodeInetDiagMsg(m));
    typed(() => { for (const a of decodeGenlMessage(m).attrs) if (a.nested) decodeAttrs(a.payload); });
  }
}

function mutate(r: () => number, b: Buffer): Buffer {
  const out = Buffer.from(b);
  const n = 1 + Math.floor(r() * 8);
  for (let i = 0; i < n && out.length; i++) {
    const at = Math.floor(r() * out.length);
    const mode = r();
    if (mode < 0.5) out[at] = Math.floor(r() * 256);
    else if (mode < 0.75) out[at] ^= 1 << Math.floor(r() * 8);
    else if (at + 1 < out.length) out.writeUInt16LE([0, 1, 3, 4, 0xffff, out.length, out.length + 1][Math.floor(r() * 7)] & 0xffff, at);
  }
  return out;
}

describe('decoder fuzz', () => {
  const base = corpus();

  it('random datagrams (3000)', () => {
    const r = prng(0x5eed1);
    const bad: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const d = Buffer.alloc(Math.floor(r() * 300));
      for (let j = 0; j < d.length; j++) d[j] = Math.floor(r() * 256);
      // make a good share of them start with a plausible nlmsg_len
      if (d.length >= 4 && r() < 0.5) d.writeUInt32LE(Math.floor(r() * (d.length + 8)), 0);
      decodeEverything(d, bad);
    }
    expect(bad.map((b) => b.toString('hex')).slice(0, 3)).toEqual([]);
  });

  it('mutated valid datagrams (5000)', () => {
    const r = prng(0x5eed2);
    const bad: Buffer[] = [];
    for (let i = 0; i < 5000; i++) decodeEverything(mutate(r, base[i % base.length]), bad);
    expect(bad.map((b) => b.toString('hex')).slice(0, 3)).toEqual([]);
  });

  it('every truncation of every valid datagram', () => {
    const bad: Buffer[] = [];
    let n = 0;
    for (const b of base) for (let len = 0; len < b.length; len++, n++) decodeEverything(b.subarray(0, len), bad);
    expect(n).toBeGreaterThan(1000);
    expect(bad.map((b) => b.toString('hex')).slice(0, 3)).toEqual([]);
  });

  it('well-framed messages whose inner structures are cut at every length', () => {
    const bad: Buffer[] = [];
    const full = {
      msg: Buffer.alloc(44, 1), creds: Buffer.alloc(64, 1), ext: Buffer.alloc(100, 0), ts: Buffer.alloc(416, 1),
      inet: Buffer.alloc(72, 1), pid: Buffer.alloc(24, 0),
    };
    full.ext.writeUInt16LE(88, 78); full.ext.writeUInt32LE(3, 84);
    full.msg[24] = 2;
    const td = (attrs: Buffer[]): Buffer => encodeMessage({ type: 0x1a, flags: 0, seq: 2, pid: PORT }, encodeGenl(1, 1, attrs));
    let n = 0;
    for (let len = 0; len <= 416; len++) {
      const cut = (b: Buffer): Buffer => b.subarray(0, Math.min(len, b.length));
      decodeEverything(td([encodeAttr(64, cut(full.msg)), encodeAttr(0, full.creds)]), bad);
      decodeEverything(td([encodeAttr(64, full.msg), encodeAttr(0, cut(full.creds))]), bad);
      decodeEverything(td([encodeAttr(64, full.msg), encodeAttr(65, cut(full.ext))]), bad);
      decodeEverything(encodeMessage({ type: 31, flags: 0, seq: 2, pid: PORT },
        encodeGenl(2, 1, [encodeNested(4, [attrU32(1, 100), encodeAttr(3, cut(full.ts))])])), bad);
      decodeEverything(encodeMessage({ type: 20, flags: 0, seq: 2, pid: PORT }, cut(full.inet)), bad);
      decodeEverything(cut(full.pid), bad);
      n += 6;
    }
    expect(n).toBeGreaterThan(2000);
    expect(bad.map((b) => b.toString('hex')).slice(0, 3)).toEqual([]);
  });

  it('oversized: huge lengths, 70 KiB of trailing garbage, lengths of 0xffffffff', () => {
    const r = prng(0x5eed3);
    const bad: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const b = base[i % base.length];
      const tail = Buffer.alloc(1 + Math.floor(r() * 70000));
      for (let j = 0; j < tail.length; j += 97) tail[j] = Math.floor(r() * 256);
      const d = Buffer.concat([b, tail]);
      if (i % 3 === 0) d.writeUInt32LE(0xffffffff, 0);
      if (i % 3 === 1) d.writeUInt32LE(d.length, 0);
      decodeEverything(d, bad);
    }
    expect(bad.map((b) => b.toString('hex').slice(0, 80)).slice(0, 3)).toEqual([]);
  });
});

describe('conversation fuzz', () => {
  it('random and mutated replies to requests and dumps end in a typed error or a result (2000)', () => {
    const r = prng(0x5eed4);
    const base = corpus();
    const untyped: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const sock = new FakeSocket((req) => {
        const seq = req.readUInt32LE(8);
        if (req.readUInt16LE(4) === GENL_ID_CTRL) {
          return [encodeMessage({ type: GENL_ID_CTRL, flags: 0, seq, pid: PORT },
            encodeGenl(1, 2, [encodeAttr(1, Buffer.from([0x1a, 0])), attrString(2, 'TASKDIAG'), attrU32(3, 1)]))];
        }
        const out: Buffer[] = [];
        const n = Math.floor(r() * 4);
        for (let k = 0; k < n; k++) {
          const d = mutate(r, base[Math.floor(r() * base.length)]);
          // keep the sequence number right half of the time so the decoders, not the seq check, get exercised
          if (d.length >= 16 && r() < 0.5) d.writeUInt32LE(seq, 8);
          out.push(d);
        }
        return out;
      }, PORT);
      try {
        const c = TaskDiagClient.over(new GenlConn(sock));
        if (i % 2) c.get(1);
        else for (const _ of c.dumpSync(i % 4 === 0 ? 0 : 1, 1)) { /* consume */ }
      } catch (e) {
        if (!(e instanceof TdError)) untyped.push(`${(e as Error).name}: ${(e as Error).message}`);
      }
    }
    expect(untyped.slice(0, 3)).toEqual([]);
  });
});
