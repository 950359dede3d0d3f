/**
 * Helpers for the guest tests of the task_diag module: raw request bytes, the tdprobe transport (a C
 * program that sends bytes and prints reply datagrams in hex), a reply parser written for the tests
 * (independent of src/netlink), and independent readings of /proc.
 *
 * Environment (set by test/vm/guest/setup.sh): TD_BIN (helpers), TD_MODULE (task_diag.ko).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const BIN = process.env.TD_BIN ?? join(process.cwd(), 'test/vm/.work/last-test/bin');
export const MODULE = process.env.TD_MODULE ?? join(process.cwd(), 'test/vm/.work/last-test/module/task_diag.ko');
export const TDPROBE = join(BIN, 'tdprobe');
export const VMTREE = join(BIN, 'vmtree');
/** the command line as installed (bin/tdcollect.js), run to completion */
export const CLI = join(process.cwd(), 'bin/tdcollect.js');
export function tdc(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// netlink constants (UAPI)
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
// task_diag
export const SHOW_CRED = 1n;
export const SHOW_EXT = 2n;
export const DUMP_ALL = 0n;
export const DUMP_CHILDREN = 1n;
export const DUMP_THREADS = 2n;
export const DUMP_SUBTREE = 3n;
export const ATTR_CRED = 0;
export const ATTR_MSG = 64;
export const ATTR_EXT = 65;

export interface ReqOpts {
  dump: boolean;
  show?: bigint;
  strategy?: bigint;
  pid: number;
  seq?: number;
  /** nla_len to write; default 29 = the selftest's 24 + 1 + 4 quirk */
  nlaLen?: number;
  /** request attribute type; default 1 */
  attrType?: number;
  /** omit the attribute entirely */
  noAttr?: boolean;
  /** payload bytes after the attribute header; default 24 */
  payloadLen?: number;
  flags?: number;
}

/**
 * The 2015 selftest's request: nlmsghdr(len, type=family (filled by tdprobe), flags, seq, pid) +
 * genlmsghdr(cmd 1, version 1, reserved 0) + nlattr(len 29, type 1) + task_diag_pid (24 bytes).
 * nlmsg_len = 20 + NLMSG_ALIGN(29) = 52.
 */
export function request(o: ReqOpts): Buffer {
  const payloadLen = o.payloadLen ?? 24;
  const nlaLen = o.nlaLen ?? payloadLen + 1 + 4;
  const attrBytes = o.noAttr ? 0 : (Math.max(nlaLen, 4 + payloadLen) + 3) & ~3;
  const b = Buffer.alloc(20 + attrBytes);
  b.writeUInt32LE(b.length, 0); // nlmsg_len
  b.writeUInt16LE(0, 4); // nlmsg_type: tdprobe writes the family id
  b.writeUInt16LE(o.flags ?? (NLM_F_REQUEST | (o.dump ? NLM_F_DUMP : 0)), 6);
  b.writeUInt32LE(o.seq ?? 0, 8);
  b.writeUInt32LE(0, 12); // nlmsg_pid (tdprobe -P writes getpid())
  b.writeUInt8(1, 16); // genl cmd TASKDIAG_CMD_GET
  b.writeUInt8(1, 17); // genl version
  if (!o.noAttr) {
    b.writeUInt16LE(nlaLen, 20);
    b.writeUInt16LE(o.attrType ?? 1, 22);
    if (payloadLen >= 8) b.writeBigUInt64LE(o.show ?? 0n, 24);
    if (payloadLen >= 16) b.writeBigUInt64LE(o.strategy ?? 0n, 32);
    if (payloadLen >= 20) b.writeUInt32LE(o.pid, 40);
  }
  return b;
}
/** byte offset of task_diag_pid.pid in request() */
export const REQ_PID_OFFSET = 40;

export interface ProbeResult {
  family: number;
  pid: number;
  dgrams: Buffer[];
  end: string;
  truncated: boolean;
  rounds: number;
}

export function parseProbe(out: string): ProbeResult {
  const r: ProbeResult = { family: -1, pid: -1, dgrams: [], end: '', truncated: false, rounds: 0 };
  for (const line of out.split('\n')) {
    const sp = line.indexOf(' ');
    const key = sp < 0 ? line : line.slice(0, sp);
    const val = sp < 0 ? '' : line.slice(sp + 1);
    if (key === 'FAMILY') r.family = Number(val);
    else if (key === 'PID') r.pid = Number(val);
    else if (key === 'DGRAM') r.dgrams.push(Buffer.from(val, 'hex'));
    else if (key === 'END') r.end = val;
    else if (key === 'TRUNC') r.truncated = true;
    else if (key === 'ROUND') r.rounds++;
    else if (key === 'NOFAMILY') r.end = 'nofamily';
  }
  return r;
}

export function probeArgs(req: Buffer, extra: string[] = []): string[] {
  return [...extra, req.toString('hex')];
}

/** Run tdprobe synchronously (optionally through a wrapper such as setpriv / unshare). */
export function probe(req: Buffer, extra: string[] = [], wrapper: string[] = []): ProbeResult {
  const argv = [...wrapper, TDPROBE, ...probeArgs(req, extra)];
  const out = execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 256 << 20 });
  return parseProbe(out);
}

export function probeAsync(req: Buffer, extra: string[] = []): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(TDPROBE, probeArgs(req, extra), { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    c.stdout.on('data', (d: Buffer) => chunks.push(d));
    c.on('error', reject);
    c.on('close', (code) => {
      if (code !== 0) reject(new Error(`tdprobe exited ${code}`));
      else resolve(parseProbe(Buffer.concat(chunks).toString('utf8')));
    });
  });
}

export interface NlMsg {
  len: number;
  type: number;
  flags: number;
  seq: number;
  portid: number;
  payload: Buffer;
}

/** Split one datagram into messages; throws if a message runs past the datagram (not whole). */
export function messages(d: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let off = 0;
  while (off + 16 <= d.length) {
    const len = d.readUInt32LE(off);
    if (len < 16 || off + len > d.length) throw new Error(`message at ${off} (len ${len}) not whole in ${d.length}-byte datagram`);
    out.push({
      len,
      type: d.readUInt16LE(off + 4),
      flags: d.readUInt16LE(off + 6),
      seq: d.readUInt32LE(off + 8),
      portid: d.readUInt32LE(off + 12),
      payload: d.subarray(off + 16, off + len),
    });
    off += (len + 3) & ~3;
  }
  if (off !== d.length) throw new Error(`trailing ${d.length - off} bytes in datagram`);
  return out;
}

export interface Attr { type: number; len: number; data: Buffer }

export function attrs(b: Buffer): Attr[] {
  const out: Attr[] = [];
  let off = 0;
  while (off + 4 <= b.length) {
    const len = b.readUInt16LE(off);
    if (len < 4 || off + len > b.length) throw new Error(`bad attribute at ${off}`);
    out.push({ type: b.readUInt16LE(off + 2), len, data: b.subarray(off + 4, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}

export interface DiagMsg {
  tgid: number; pid: number; ppid: number; tpid: number; sid: number; pgid: number; state: number;
  comm: string; pad: Buffer;
}
export function decodeMsg(d: Buffer): DiagMsg {
  if (d.length !== 44) throw new Error(`task_diag_msg is ${d.length} bytes`);
  const commRaw = d.subarray(25, 41);
  const nul = commRaw.indexOf(0);
  return {
    tgid: d.readUInt32LE(0), pid: d.readUInt32LE(4), ppid: d.readUInt32LE(8), tpid: d.readUInt32LE(12),
    sid: d.readUInt32LE(16), pgid: d.readUInt32LE(20), state: d.readUInt8(24),
    comm: commRaw.subarray(0, nul < 0 ? 16 : nul).toString('latin1'), pad: Buffer.from(d.subarray(41, 44)),
  };
}
export interface DiagCreds {
  capInh: string; capPrm: string; capEff: string; capBnd: string;
  uid: number; euid: number; suid: number; fsuid: number; gid: number; egid: number; sgid: number; fsgid: number;
}
const capHex = (d: Buffer, o: number): string =>
  d.readUInt32LE(o + 4).toString(16).padStart(8, '0') + d.readUInt32LE(o).toString(16).padStart(8, '0');
export function decodeCreds(d: Buffer): DiagCreds {
  if (d.length !== 64) throw new Error(`task_diag_creds is ${d.length} bytes`);
  return {
    capInh: capHex(d, 0), capPrm: capHex(d, 8), capEff: capHex(d, 16), capBnd: capHex(d, 24),
    uid: d.readUInt32LE(32), euid: d.readUInt32LE(36), suid: d.readUInt32LE(40), fsuid: d.readUInt32LE(44),
    gid: d.readUInt32LE(48), egid: d.readUInt32LE(52), sgid: d.readUInt32LE(56), fsgid: d.readUInt32LE(60),
  };
}
export interface DiagExt {
  startTimeNs: bigint; startTime: bigint; robustList: bigint; capAmb: string; sigBlk: string; flags: number;
  personality: number; securebits: number; seccomp: number; nice: number; policy: number; prio: number;
  rtPriority: number; exitCode: number; noNewPrivs: number; extFlags: number; fixedLen: number;
  ngroups: number; groups: number[];
}
export function decodeExt(d: Buffer): DiagExt {
  const fixedLen = d.readUInt16LE(78);
  const nsent = d.readUInt32LE(84);
  if (d.length !== fixedLen + 4 * nsent) throw new Error(`ext length ${d.length} != ${fixedLen} + 4*${nsent}`);
  const groups: number[] = [];
  for (let i = 0; i < nsent; i++) groups.push(d.readUInt32LE(fixedLen + 4 * i));
  return {
    startTimeNs: d.readBigUInt64LE(0), startTime: d.readBigUInt64LE(8), robustList: d.readBigUInt64LE(16),
    capAmb: capHex(d, 24), sigBlk: capHex(d, 32), flags: d.readUInt32LE(40), personality: d.readUInt32LE(44),
    securebits: d.readUInt32LE(48), seccomp: d.readUInt32LE(52), nice: d.readInt32LE(56), policy: d.readUInt32LE(60),
    prio: d.readInt32LE(64), rtPriority: d.readUInt32LE(68), exitCode: d.readUInt32LE(72), noNewPrivs: d.readUInt8(76),
    extFlags: d.readUInt8(77), fixedLen, ngroups: d.readUInt32LE(80), groups,
  };
}

export interface TaskReply {
  msg: NlMsg;
  cmd: number; version: number; reserved: number;
  attrs: Attr[];
  task: DiagMsg;
  creds?: DiagCreds;
  ext?: DiagExt;
}
export function decodeTask(m: NlMsg): TaskReply {
  const a = attrs(m.payload.subarray(4));
  const first = a[0];
  if (!first || first.type !== ATTR_MSG) throw new Error('first attribute is not TASK_DIAG_MSG');
  const cred = a.find((x) => x.type === ATTR_CRED);
  const ext = a.find((x) => x.type === ATTR_EXT);
  return {
    msg: m, cmd: m.payload.readUInt8(0), version: m.payload.readUInt8(1), reserved: m.payload.readUInt16LE(2),
    attrs: a, task: decodeMsg(first.data), creds: cred && decodeCreds(cred.data), ext: ext && decodeExt(ext.data),
  };
}

export interface Dump {
  tasks: TaskReply[];
  /** NLMSG_DONE payload (dump) */
  done?: number;
  doneFlags?: number;
  /** NLMSG_ERROR code */
  error?: number;
  /** message counts per datagram */
  perDgram: number[];
}
/** Decode every datagram of an exchange. */
export function decodeAll(r: ProbeResult): Dump {
  const d: Dump = { tasks: [], perDgram: [] };
  for (const dg of r.dgrams) {
    const ms = messages(dg);
    d.perDgram.push(ms.length);
    for (const m of ms) {
      if (m.type === NLMSG_DONE) {
        d.done = m.payload.readInt32LE(0);
        d.doneFlags = m.flags;
      } else if (m.type === NLMSG_ERROR) {
        d.error = m.payload.readInt32LE(0);
      } else {
        if (m.type !== r.family) throw new Error(`message type ${m.type} is neither control nor family ${r.family}`);
        d.tasks.push(decodeTask(m));
      }
    }
  }
  return d;
}

// ---------------------------------------------------------------- independent readings of /proc

export interface ProcStat {
  pid: number; comm: string; state: string; ppid: number; pgrp: number; session: number; flags: number;
  priority: number; nice: number; starttime: bigint; rtPriority: number; policy: number; exitCode: number;
}
export function procStat(pid: number, tid?: number): ProcStat {
  const path = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  const s = readFileSync(path, 'latin1');
  const open = s.indexOf('(');
  const close = s.lastIndexOf(')');
  const f = s.slice(close + 2).trim().split(' '); // f[0] = field 3 (state)
  const n = (i: number): number => Number(f[i - 3]);
  return {
    pid: Number(s.slice(0, open - 1)), comm: s.slice(open + 1, close), state: f[0]!, ppid: n(4), pgrp: n(5),
    session: n(6), flags: n(9), priority: n(18), nice: n(19), starttime: BigInt(f[22 - 3]!), rtPriority: n(40),
    policy: n(41), exitCode: n(52),
  };
}
export function procStatus(pid: number, tid?: number): Map<string, string> {
  const path = tid === undefined ? `/proc/${pid}/status` : `/proc/${pid}/task/${tid}/status`;
  const m = new Map<string, string>();
  for (const line of readFileSync(path, 'latin1').split('\n')) {
    const c = line.indexOf(':');
    if (c > 0) m.set(line.slice(0, c), line.slice(c + 1).trim());
  }
  return m;
}
export const STATE_LETTERS = 'RSDTtXZPI';

export function procPids(): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b);
}
export function procThreads(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
}
export function procChildren(pid: number, tid: number): number[] {
  const s = readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').trim();
  return s === '' ? [] : s.split(' ').map(Number);
}
export function tgidOf(tid: number): number {
  return Number(procStatus(tid).get('Tgid'));
}

/** Check one reply against /proc (pid, tgid, ppid, tracer, sid, pgid, state, comm; creds when present). */
export function expectMatchesProc(t: TaskReply, expect: (a: unknown, b: unknown, what: string) => void): void {
  const { tgid, pid } = t.task;
  const st = procStat(tgid, pid);
  const ss = procStatus(tgid, pid);
  expect(t.task.tgid, Number(ss.get('Tgid')), `tgid of ${pid}`);
  expect(t.task.ppid, st.ppid, `ppid of ${pid}`);
  expect(t.task.tpid, Number(ss.get('TracerPid')), `tpid of ${pid}`);
  expect(t.task.sid, st.session, `sid of ${pid}`);
  expect(t.task.pgid, st.pgrp, `pgid of ${pid}`);
  expect(STATE_LETTERS[t.task.state], st.state, `state of ${pid}`);
  expect(t.task.comm, st.comm, `comm of ${pid}`);
  expect([...t.task.pad], [0, 0, 0], `padding of ${pid}`);
  if (t.creds) {
    const [uid, euid, suid, fsuid] = ss.get('Uid')!.split(/\s+/).map(Number);
    const [gid, egid, sgid, fsgid] = ss.get('Gid')!.split(/\s+/).map(Number);
    expect([t.creds.uid, t.creds.euid, t.creds.suid, t.creds.fsuid], [uid, euid, suid, fsuid], `uids of ${pid}`);
    expect([t.creds.gid, t.creds.egid, t.creds.sgid, t.creds.fsgid], [gid, egid, sgid, fsgid], `gids of ${pid}`);
    expect(t.creds.capInh, ss.get('CapInh'), `CapInh of ${pid}`);
    expect(t.creds.capPrm, ss.get('CapPrm'), `CapPrm of ${pid}`);
    expect(t.creds.capEff, ss.get('CapEff'), `CapEff of ${pid}`);
    expect(t.creds.capBnd, ss.get('CapBnd'), `CapBnd of ${pid}`);
  }
}

// ---------------------------------------------------------------- fixtures

export interface Fixture<T> { info: T; child: ChildProcess; stop(): Promise<void> }

/** Start test/vm/fixtures/vmtree MODE [ARGS] and wait for its JSON line. */
export function startTree<T>(args: string[], wrapper: string[] = []): Promise<Fixture<T>> {
  return new Promise((resolve, reject) => {
    const argv = [...wrapper, VMTREE, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      child.stdout!.off('data', onData);
      const info = JSON.parse(buf.slice(0, nl)) as T;
      resolve({
        info,
        child,
        stop: () =>
          new Promise<void>((res) => {
            if (child.exitCode !== null || child.signalCode !== null) return res();
            const t = setTimeout(() => { child.kill('SIGKILL'); }, 5000);
            child.on('exit', () => { clearTimeout(t); res(); });
            child.stdin!.end();
          }),
      });
    };
    child.stdout!.on('data', onData);
    child.on('error', reject);
    child.on('exit', (code) => { if (!buf.includes('\n')) reject(new Error(`vmtree exited ${code}`)); });
  });
}

export interface TreeInfo {
  leader: number; forkerThread: number; threadChild: number; b: number; grand: number; stopped: number;
  zombie: number; user: number;
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}
