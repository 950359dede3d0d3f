/**
 * Independent readings of a task for tests: ps -L rows and /proc text parsed the simple, obvious way
 * (split on spaces and lines). Deliberately unlike the procfs source's byte parser.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface PsRow {
  tgid: number; tid: number; ppid: number; pgid: number; sid: number;
  ruid: number; euid: number; suid: number; fsuid: number;
  rgid: number; egid: number; sgid: number; fsgid: number;
  /** undefined when ps prints '-' (real-time policies) */
  nice: number | undefined;
  priority: number;
  policy: number;
  rtprio: number;
  blocked: bigint;
  groups: number[];
  state: string;
  comm: string;
}

const CLS: Record<string, number> = { TS: 0, FF: 1, RR: 2, B: 3, ISO: 4, IDL: 5, DLN: 6 };
// comm last, right after a right-aligned number column, so exactly one space precedes it
const PS_FIELDS = 'pid=,tid=,ppid=,pgid=,sid=,ni=,priority=,cls=,rtprio=,blocked=,supgid:1000=,stat=,ruid=,euid=,suid=,fsuid=,rgid=,egid=,sgid=,fsgid=,comm=';

/** One row per thread of the given processes (ps -L). */
export function psThreads(pids: number[]): Map<number, PsRow> {
  const out = execFileSync('ps', ['-L', '-o', PS_FIELDS, '-p', pids.join(',')], {
    encoding: 'utf8', maxBuffer: 256 << 20,
  });
  const rows = new Map<number, PsRow>();
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    // 20 whitespace-separated columns, then comm (which may contain spaces) to the end of the line
    const cols: string[] = [];
    let rest = line;
    for (let i = 0; i < 20; i++) {
      rest = rest.replace(/^\s+/, '');
      const sp = rest.search(/\s/);
      cols.push(rest.slice(0, sp));
      rest = rest.slice(sp + 1);
    }
    const n = (i: number) => Number(cols[i]);
    const row: PsRow = {
      tgid: n(0), tid: n(1), ppid: n(2), pgid: n(3), sid: n(4),
      nice: cols[5] === '-' ? undefined : n(5),
      priority: n(6),
      policy: CLS[cols[7]] ?? -1,
      rtprio: cols[8] === '-' ? 0 : n(8),
      blocked: BigInt('0x' + cols[9]),
      groups: cols[10] === '-' ? [] : cols[10].split(',').map(Number),
      state: cols[11],
      ruid: n(12), euid: n(13), suid: n(14), fsuid: n(15),
      rgid: n(16), egid: n(17), sgid: n(18), fsgid: n(19),
      comm: rest.replace(/\n$/, ''),
    };
    rows.set(row.tid, row);
  }
  return rows;
}

/** /proc/TGID/task/TID/stat fields by their 1-based number in proc(5); field 2 is comm. */
export function procStat(tgid: number, tid: number): string[] {
  const s = readFileSync(`/proc/${tgid}/task/${tid}/stat`, 'latin1');
  const open = s.indexOf('(');
  const close = s.lastIndexOf(')');
  const rest = s.slice(close + 2).trim().split(' ');
  return ['', s.slice(0, open - 1), s.slice(open + 1, close), ...rest];
}

/** /proc/TGID/task/TID/status as key → value text. */
export function procStatus(tgid: number, tid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${tgid}/task/${tid}/status`, 'latin1').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** A 64-bit hex mask as the Task record's [lo, hi]. */
export function mask(hex: string | bigint): [number, number] {
  const v = typeof hex === 'bigint' ? hex : BigInt('0x' + hex);
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
}

export function procPersonality(tgid: number, tid: number): number {
  return parseInt(readFileSync(`/proc/${tgid}/task/${tid}/personality`, 'latin1').trim(), 16);
}
