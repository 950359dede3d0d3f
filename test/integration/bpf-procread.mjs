/**
 * An independent reading of one task from /proc text (stat, status, comm, personality), shaped like a
 * Task record, for checking the bpf source. Plain JavaScript so that tests can also run it inside another
 * pid namespace with plain node. Test code: simple text parsing is fine here.
 */
import { readFileSync } from 'node:fs';

const mask = (hex) => {
  const h = hex.trim().padStart(16, '0');
  return [parseInt(h.slice(8), 16), parseInt(h.slice(0, 8), 16)];
};

/** Task fields /proc shows for thread tid of process tgid; undefined when the task is gone. */
export function procTask(tgid, tid, proc = '/proc') {
  const dir = `${proc}/${tgid}/task/${tid}`;
  let stat, status, comm, personality;
  try {
    stat = readFileSync(`${dir}/stat`, 'utf8');
    status = readFileSync(`${dir}/status`, 'utf8');
    comm = readFileSync(`${dir}/comm`, 'utf8');
  } catch {
    return undefined;
  }
  try { personality = parseInt(readFileSync(`${dir}/personality`, 'utf8'), 16); } catch { personality = undefined; }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const field = (n) => Number(f[n - 3]);
  const st = {};
  for (const line of status.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) st[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  const ids = (s) => s.split(/\s+/).map(Number);
  const [uid, euid, suid, fsuid] = ids(st.Uid);
  const [gid, egid, sgid, fsgid] = ids(st.Gid);
  return {
    pid: Number(st.Pid), tgid: Number(st.Tgid), ppid: field(4), tpid: Number(st.TracerPid),
    sid: field(6), pgid: field(5), state: f[0], comm: comm.slice(0, -1),
    uid, euid, suid, fsuid, gid, egid, sgid, fsgid,
    capInh: mask(st.CapInh), capPrm: mask(st.CapPrm), capEff: mask(st.CapEff), capBnd: mask(st.CapBnd),
    capAmb: mask(st.CapAmb),
    groups: st.Groups === '' ? [] : ids(st.Groups),
    noNewPrivs: st.NoNewPrivs === '1',
    seccomp: Number(st.Seccomp),
    startTime: field(22), personality, flags: field(9), sigBlk: mask(st.SigBlk),
    nice: field(19), policy: field(41), priority: field(18), rtPriority: field(40), exitCode: field(52),
  };
}

/** Fields of a Task that /proc cannot show (checked elsewhere) are dropped for the comparison. */
export function comparable(t) {
  const { securebits, futexRla, futexRlaLen, ...rest } = t;
  return rest;
}
