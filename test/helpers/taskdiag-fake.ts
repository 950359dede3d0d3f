/**
 * An emulated TASKDIAG provider for host tests (this kernel has no TASKDIAG family): a FakeSocket handler that
 * answers the v1 protocol (plus, optionally, the extensions of kernel/task_diag: strategies 2/3 and attribute
 * 65) from /proc. It lets the taskdiag source's walk run on real process trees here; the real provider is
 * exercised in the QEMU guest (test/vm/guest/taskdiag-client.test.ts).
 *
 * Batching: at most `perDatagram` task messages per datagram; the last datagram of a dump carries NLMSG_DONE
 * (int 0, or -errno on failure, as v1 does). Dump messages have nlmsg_flags 0, like v1.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { encodeAttr, encodeGenl, encodeMessage, NLMSG_DONE, NLMSG_ERROR, NLM_F_MULTI } from '../../src/netlink/codec.js';
import { FakeSocket } from './netlink-fake.js';

export const FAKE_FAMILY = 0x2a;
const STATES = 'RSDTtXZPI';

export interface FakeOptions {
  /** offer strategies 2/3 and attribute 65 */
  extensions: boolean;
  perDatagram?: number;
}

function read(path: string): string | undefined {
  try { return readFileSync(path, 'latin1'); } catch { return undefined; }
}

function statusMap(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

function tgidOf(tid: number): number | undefined {
  const s = read(`/proc/${tid}/status`);
  return s === undefined ? undefined : Number(statusMap(s).get('Tgid'));
}

function hexWords(b: Buffer, off: number, hex: string): void {
  b.writeUInt32LE(parseInt(hex.slice(8), 16) >>> 0, off);
  b.writeUInt32LE(parseInt(hex.slice(0, 8), 16) >>> 0, off + 4);
}

/** The attributes of one task, or undefined when it is gone. */
function taskAttrs(tid: number, show: bigint, ext: boolean): Buffer[] | undefined {
  const tgid = tgidOf(tid);
  if (tgid === undefined) return undefined;
  const stat = read(`/proc/${tgid}/task/${tid}/stat`);
  const status = read(`/proc/${tgid}/task/${tid}/status`);
  if (stat === undefined || status === undefined) return undefined;
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const f = stat.slice(close + 2).trim().split(' '); // f[0] = field 3
  const n = (i: number): number => Number(f[i - 3]);
  const s = statusMap(status);
  const msg = Buffer.alloc(44);
  msg.writeUInt32LE(tgid, 0);
  msg.writeUInt32LE(tid, 4);
  msg.writeUInt32LE(n(4), 8);
  msg.writeUInt32LE(Number(s.get('TracerPid')), 12);
  msg.writeUInt32LE(n(6), 16);
  msg.writeUInt32LE(n(5), 20);
  msg[24] = STATES.indexOf(f[0]);
  msg.write(comm, 25, 15, 'latin1');
  const out = [encodeAttr(64, msg)];
  if (show & 1n) {
    const c = Buffer.alloc(64);
    hexWords(c, 0, s.get('CapInh')!); hexWords(c, 8, s.get('CapPrm')!); hexWords(c, 16, s.get('CapEff')!); hexWords(c, 24, s.get('CapBnd')!);
    const u = s.get('Uid')!.split(/\s+/).map(Number);
    const g = s.get('Gid')!.split(/\s+/).map(Number);
    for (let i = 0; i < 4; i++) { c.writeUInt32LE(u[i], 32 + 4 * i); c.writeUInt32LE(g[i], 48 + 4 * i); }
    out.push(encodeAttr(0, c));
  }
  if (ext && (show & 2n)) {
    const groups = (s.get('Groups') ?? '').split(/\s+/).filter(Boolean).map(Number);
    const x = Buffer.alloc(88 + 4 * groups.length);
    x.writeBigUInt64LE(BigInt(f[22 - 3]) * 10_000_000n, 0);
    x.writeBigUInt64LE(BigInt(f[22 - 3]), 8);
    x.writeBigUInt64LE(0n, 16);
    hexWords(x, 24, s.get('CapAmb')!);
    hexWords(x, 32, s.get('SigBlk')!);
    x.writeUInt32LE(n(9), 40);
    x.writeUInt32LE(parseInt(read(`/proc/${tgid}/task/${tid}/personality`) ?? '0', 16), 44);
    x.writeUInt32LE(0, 48);
    x.writeUInt32LE(Number(s.get('Seccomp')), 52);
    x.writeInt32LE(n(19), 56);
    x.writeUInt32LE(n(41), 60);
    x.writeInt32LE(n(18), 64);
    x.writeUInt32LE(n(40), 68);
    x.writeUInt32LE(n(52), 72);
    x[76] = Number(s.get('NoNewPrivs'));
    x.writeUInt16LE(88, 78);
    x.writeUInt32LE(groups.length, 80);
    x.writeUInt32LE(groups.length, 84);
    groups.forEach((gid, i) => x.writeUInt32LE(gid, 88 + 4 * i));
    out.push(encodeAttr(65, x));
  }
  return out;
}

function threadsOf(tgid: number): number[] {
  try {
    const t = readdirSync(`/proc/${tgid}/task`).map(Number).sort((a, b) => a - b);
    return [tgid, ...t.filter((x) => x !== tgid)];
  } catch { return []; }
}

function childrenOf(tid: number): number[] {
  const tgid = tgidOf(tid);
  const s = tgid === undefined ? undefined : read(`/proc/${tgid}/task/${tid}/children`);
  return s === undefined ? [] : s.trim().split(' ').filter(Boolean).map(Number);
}

function subtree(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number): void => {
    const th = threadsOf(p);
    out.push(...th);
    for (const t of th) for (const c of childrenOf(t)) visit(c);
  };
  const tgid = tgidOf(pid);
  if (tgid !== undefined) visit(tgid);
  return out;
}

/** A FakeSocket that answers the controller for "TASKDIAG" and the TASKDIAG protocol from /proc. */
export function fakeTaskDiagSocket(o: FakeOptions): FakeSocket {
  const per = o.perDatagram ?? 8;
  return new FakeSocket((req, sock) => {
    const seq = req.readUInt32LE(8);
    const type = req.readUInt16LE(4);
    const flags = req.readUInt16LE(6);
    const hdr = (t: number, fl: number) => ({ type: t, flags: fl, seq, pid: sock.port });
    const err = (errno: number): Buffer => {
      const p = Buffer.alloc(20); p.writeInt32LE(-errno, 0); req.copy(p, 4, 0, 16);
      return encodeMessage(hdr(NLMSG_ERROR, 0x100), p);
    };
    if (type === 0x10) {
      const name = req.subarray(24, 24 + req.readUInt16LE(20) - 4).toString('latin1').replace(/\0+$/, '');
      if (name !== 'TASKDIAG') return [err(2)];
      return [encodeMessage(hdr(0x10, 0), encodeGenl(1, 2, [
        encodeAttr(1, Buffer.from([FAKE_FAMILY, 0])), encodeAttr(2, Buffer.from('TASKDIAG\0')), encodeAttr(3, Buffer.from([1, 0, 0, 0])),
      ]))];
    }
    if (type !== FAKE_FAMILY) return [err(95)];
    const p = req.subarray(24);
    const show = p.readBigUInt64LE(0);
    const strategy = Number(p.readBigUInt64LE(8));
    const pid = p.readUInt32LE(16);
    const reply = (tid: number, fl: number): Buffer | undefined => {
      const a = taskAttrs(tid, show, o.extensions);
      return a && encodeMessage(hdr(FAKE_FAMILY, fl), encodeGenl(1, 1, a));
    };
    if (!(flags & 0x300)) {
      const r = reply(pid, 0);
      return [r ?? err(3)];
    }
    const done = (e: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(-e, 0); return encodeMessage(hdr(NLMSG_DONE, NLM_F_MULTI), b); };
    let tids: number[];
    if (strategy === 0) tids = readdirSync('/proc').filter((n) => /^[0-9]+$/.test(n)).map(Number).sort((a, b) => a - b);
    else if (strategy === 1) { if (tgidOf(pid) === undefined) return [done(3)]; tids = childrenOf(pid); }
    else if (strategy === 2 && o.extensions) { const tg = tgidOf(pid); if (tg === undefined) return [done(3)]; tids = threadsOf(tg); }
    else if (strategy === 3 && o.extensions) { tids = subtree(pid); if (!tids.length) return [done(3)]; }
    else return [done(22)];
    const msgs = tids.map((t) => reply(t, 0)).filter((m): m is Buffer => m !== undefined);
    const out: Buffer[] = [];
    for (let i = 0; i < msgs.length; i += per) out.push(Buffer.concat(msgs.slice(i, i + per)));
    if (out.length) out[out.length - 1] = Buffer.concat([out[out.length - 1], done(0)]);
    else out.push(done(0));
    return out;
  }, 5151);
}
