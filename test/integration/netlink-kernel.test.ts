/**
 * The netlink layer against this machine's kernel: the controller's family list (vs `genl ctrl list`),
 * TASKSTATS per-pid replies for a spawned tree (vs /proc), a NETLINK_SOCK_DIAG dump (vs `ss`), error paths
 * with extended-ack text, MSG_TRUNC detection, port ids (vs /proc/net/netlink), and sockets closed on every
 * path (vs /proc/self/fd).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { familyMissing, GenlConn, GENL_ID_CTRL } from '../../src/netlink/genl.js';
import { NetlinkError, NetlinkProtocolError } from '../../src/netlink/errors.js';
import { attrString, attrU32, attrU8, encodeGenl } from '../../src/netlink/codec.js';
import { taskStatsForPid, TASKSTATS_CMD_GET } from '../../src/netlink/taskstats.js';
import { AF_INET, dumpInetSockets, IPPROTO_TCP, TCP_LISTEN } from '../../src/netlink/sockdiag.js';
import { KernelSocket } from '../../src/netlink/transport.js';
import { NETLINK_GENERIC } from '../../src/sys/netlink.js';
import { spawnTree, type Tree } from '../helpers/tree.js';

const fdCount = (): number => readdirSync('/proc/self/fd').length;

/** "Key:\tv1\tv2..." of a /proc status file, split here in the test (independent of the code under test). */
function status(path: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of readFileSync(path, 'latin1').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim().split(/\s+/));
  }
  return m;
}

describe('generic netlink controller', () => {
  it('dumps the family list: nlctrl and TASKSTATS present, same set and ids as `genl ctrl list`', () => {
    const c = GenlConn.open();
    try {
      const fams = c.listFamilies();
      const byName = new Map(fams.map((f) => [f.name, f]));
      expect(byName.get('nlctrl')?.id).toBe(GENL_ID_CTRL);
      expect(byName.get('TASKSTATS')).toBeDefined();
      // independent reading: iproute2's genl
      const text = execFileSync('genl', ['ctrl', 'list'], { encoding: 'utf8' });
      const theirs = new Map<string, number>();
      for (const m of text.matchAll(/Name: (\S+)\s+ID: 0x([0-9a-f]+)/g)) theirs.set(m[1], parseInt(m[2], 16));
      expect(theirs.size).toBeGreaterThan(1);
      expect(new Map(fams.map((f) => [f.name, f.id]))).toEqual(theirs);
      // a lookup by name gives the same family as the dump
      const ts = c.family('TASKSTATS');
      expect(ts.id).toBe(byName.get('TASKSTATS')!.id);
      expect(ts.ops.map((o) => o.id)).toContain(TASKSTATS_CMD_GET);
    } finally {
      c.close();
    }
  });

  it('the bound port is the one /proc/net/netlink shows for our socket', () => {
    const s = new KernelSocket(NETLINK_GENERIC);
    try {
      const rows = readFileSync('/proc/net/netlink', 'latin1').split('\n').slice(1).map((l) => l.trim().split(/\s+/));
      const mine = rows.filter((r) => r[1] === '16' && Number(r[2]) === s.port);
      expect(mine).toHaveLength(1);
      expect(s.port).toBeGreaterThan(0);
      expect(s.extAck).toBe(true);
    } finally {
      s.close();
    }
  });
});

describe('TASKSTATS per pid', () => {
  let tree: Tree;
  beforeAll(async () => { tree = await spawnTree({ procs: 4, threads: 2, creds: true, threadChild: true }); });
  afterAll(async () => { await tree?.kill(); });

  it('pid, ppid, uid, gid, comm of every thread of a spawned tree match /proc', () => {
    const c = GenlConn.open();
    try {
      let n = 0;
      for (const tid of tree.tids) {
        const t = tree.threads.get(tid)!;
        const st = taskStatsForPid(c, tid);
        const s = status(`/proc/${t.tgid}/task/${tid}/status`);
        const comm = readFileSync(`/proc/${t.tgid}/task/${tid}/comm`, 'latin1').trimEnd();
        expect({ pid: st.pid, ppid: st.ppid, uid: st.uid, gid: st.gid, comm: st.comm }).toEqual({
          pid: tid, ppid: Number(s.get('PPid')![0]), uid: Number(s.get('Uid')![0]), gid: Number(s.get('Gid')![0]), comm,
        });
        expect(st.version).toBeGreaterThanOrEqual(13);
        n++;
      }
      expect(n).toBe(tree.tids.length);
      expect(n).toBeGreaterThan(8);
      // the creds role really has other ids than root, so uid/gid are not trivially 0
      const credsPid = tree.one('creds');
      expect(taskStatsForPid(c, credsPid).uid).not.toBe(0);
    } finally {
      c.close();
    }
  });

  it('a pid that does not exist → NetlinkError ESRCH', () => {
    const c = GenlConn.open();
    try {
      expect(() => taskStatsForPid(c, 0x3ffffff0)).toThrow(expect.objectContaining({ code: 'ESRCH', errno: 3 }));
    } finally {
      c.close();
    }
  });
});

describe('NETLINK_SOCK_DIAG', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer();
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => { await new Promise<void>((res) => server.close(() => res())); });

  it('finds our listening TCP socket (port, address, inode, uid) and the same listeners as `ss -4tlnH`', () => {
    const { sockets, stats } = dumpInetSockets({ family: AF_INET, protocol: IPPROTO_TCP, states: 1 << TCP_LISTEN });
    const ours = sockets.filter((s) => s.sport === port);
    expect(ours).toHaveLength(1);
    expect(ours[0].src.join('.')).toBe('127.0.0.1');
    expect(ours[0].state).toBe(TCP_LISTEN);
    expect(ours[0].uid).toBe(process.getuid!());
    // inode: the socket behind one of our fds
    const inodes = new Set<number>();
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        const l = readlinkSync(`/proc/self/fd/${fd}`);
        if (l.startsWith('socket:[')) inodes.add(Number(l.slice(8, -1)));
      } catch { /* closed meanwhile */ }
    }
    expect(inodes.has(ours[0].inode)).toBe(true);
    // ss (its own netlink client) sees the same IPv4 listeners
    const ss = execFileSync('ss', ['-4tlnH'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean)
      .map((l) => { const local = l.trim().split(/\s+/)[3]; return `${local.slice(0, local.lastIndexOf(':'))}:${local.slice(local.lastIndexOf(':') + 1)}`; });
    const mine = sockets.map((s) => `${s.src.join('.')}:${s.sport}`);
    expect(new Set(mine)).toEqual(new Set(ss));
    expect(stats.requests).toBe(1);
    expect(stats.datagrams).toBeGreaterThanOrEqual(1);
  });
});

describe('error paths', () => {
  it('an unknown family → ENOENT from the controller', () => {
    const c = GenlConn.open();
    try {
      c.family('NOSUCHFAMILY');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(NetlinkError);
      expect(e).toMatchObject({ code: 'ENOENT', errno: 2, operation: 'nlctrl getfamily NOSUCHFAMILY' });
    }
    try {
      // a name longer than GENL_NAMSIZ - 1 (15) fails the controller's policy instead
      c.family('NO_SUCH_FAMILY_XY');
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ code: 'EINVAL', operation: 'nlctrl getfamily NO_SUCH_FAMILY_XY' });
    } finally {
      c.close();
    }
  });

  it('familyMissing: true only for a name the controller answers ENOENT for; its socket is closed', () => {
    const before = fdCount();
    expect(familyMissing('NOSUCHFAMILY')).toBe(true);
    // families this kernel has (the controller itself, and TASKSTATS as the list above shows)
    expect(familyMissing('nlctrl')).toBe(false);
    expect(familyMissing('TASKSTATS')).toBe(false);
    // a name the controller's policy refuses (EINVAL) is not "missing": the full lookup says what it is
    expect(familyMissing('NO_SUCH_FAMILY_XY')).toBe(false);
    expect(fdCount()).toBe(before);
  });

  it('a malformed request → EINVAL; the kernel\'s extended-ack text reaches the error', () => {
    const c = GenlConn.open();
    try {
      const f = c.family('TASKSTATS');
      // TASKSTATS_CMD_GET without any attribute: EINVAL (no text from taskstats)
      expect(() => c.request(f, TASKSTATS_CMD_GET, [], 'TASKSTATS get (no pid)')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      // a u8 where the policy wants u32: the policy check answers with an extended ack
      try {
        c.request(f, TASKSTATS_CMD_GET, [attrU8(1, 5)], 'TASKSTATS get (u8 pid)');
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(NetlinkError);
        expect((e as NetlinkError).code).toBe('ERANGE');
        expect((e as NetlinkError).extAck?.msg).toBe('Attribute failed policy validation');
        expect((e as NetlinkError).extAck?.offset).toBe(20); // the attribute right after nlmsghdr + genlmsghdr
        expect((e as NetlinkError).message).toContain('Attribute failed policy validation');
      }
      // a strict-validated controller dump with an attribute type it does not know: EINVAL + text
      try {
        for (const _ of c.conn.dumpSync({ type: GENL_ID_CTRL, payload: encodeGenl(10 /* CTRL_CMD_GETPOLICY */, 1, [attrString(2, 'nlctrl'), attrU32(50, 1)]) }, 'nlctrl getpolicy')) { /* */ }
        expect.unreachable();
      } catch (e) {
        expect(e).toMatchObject({ code: 'EINVAL', operation: 'nlctrl getpolicy' });
        expect((e as NetlinkError).extAck?.msg).toBe('Unknown attribute type');
      }
      // the connection is still usable after errors
      expect(taskStatsForPid(c, process.pid).pid).toBe(process.pid);
    } finally {
      c.close();
    }
  });

  it('a datagram larger than the buffer is detected (MSG_TRUNC); with peek the buffer grows instead', () => {
    const small = new GenlConn(new KernelSocket(NETLINK_GENERIC, { bufferSize: 64 }));
    try {
      expect(() => small.listFamilies()).toThrow(NetlinkProtocolError);
    } finally {
      small.close();
    }
    const peek = new GenlConn(new KernelSocket(NETLINK_GENERIC, { bufferSize: 64, peek: true }));
    const normal = GenlConn.open();
    try {
      expect(peek.listFamilies().map((f) => f.name)).toEqual(normal.listFamilies().map((f) => f.name));
    } finally {
      peek.close();
      normal.close();
    }
  });

  it('leaving a kernel dump early drains it; sockets are closed on every path', () => {
    const before = fdCount();
    for (let i = 0; i < 20; i++) {
      const c = GenlConn.open();
      try {
        for (const _ of c.conn.dumpSync({ type: GENL_ID_CTRL, payload: encodeGenl(3, 1, []) }, 'dump')) break;
        expect(c.family('TASKSTATS').name).toBe('TASKSTATS'); // usable after the early exit
        try { c.family('NOPE'); } catch { /* expected */ }
      } finally {
        c.close();
      }
      try { dumpInetSockets({ family: 99, protocol: IPPROTO_TCP, states: 1 }); } catch { /* EINVAL expected */ }
    }
    expect(fdCount()).toBe(before);
  });
});
