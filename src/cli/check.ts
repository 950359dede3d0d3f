/**
 * tdcollect check: what works here. Every source (its own probe), every freezer, the kernel features the
 * sources and freezers rely on, and the caller's capabilities — each with the reason when it is missing.
 * Exit 0 when at least one source works, else 6 (EXIT.UNAVAILABLE).
 */
import type { Command } from './commander.js';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { action, BufferedWriter } from './common.js';
import { EXIT } from '../errors.js';
import { SOURCES } from '../collector/sources/index.js';
import { FREEZERS } from '../collector/freeze/index.js';
import type { FreezeMethod, Mask64, SourceName } from '../collector/task.js';
import { effectiveCaps, hasCap } from '../collector/caps.js';
import { kernelRelease } from '../sys/uts.js';
import { GenlConn } from '../netlink/genl.js';
import { taskStatsForPid } from '../netlink/taskstats.js';
import { dumpInetSockets, AF_INET, IPPROTO_TCP, TCP_LISTEN } from '../netlink/sockdiag.js';

export interface CheckItem {
  name: string;
  ok: boolean;
  /** what was found, when ok */
  detail?: string;
  /** why not, when not ok */
  reason?: string;
}

export interface CheckReport {
  kernel: string;
  sources: CheckItem[];
  freezers: CheckItem[];
  features: CheckItem[];
  capabilities: CheckItem[];
  /** the source `--source auto` would pick to list every task, if any, and why */
  auto?: SourceName;
  autoReason?: string;
  /** the source `--source auto` would pick for a small tree (one process), and why */
  autoSmallTree?: { name: SourceName; reason: string };
}

const SOURCE_NAMES: readonly SourceName[] = ['taskdiag', 'bpf', 'procfs'];
const FREEZE_NAMES: readonly FreezeMethod[] = ['ptrace', 'cgroup', 'none'];

/** Capabilities tdcollect's sources and freezers use, with their numbers (include/uapi/linux/capability.h). */
export const CAPS: readonly [string, number, string][] = [
  ['CAP_SYS_PTRACE', 19, 'read and freeze other users\' processes (ptrace freezer, TASKDIAG, /proc)'],
  ['CAP_SYS_ADMIN', 21, 'BPF on kernels without CAP_BPF; cgroup administration'],
  ['CAP_BPF', 39, 'load the BPF task iterator'],
  ['CAP_PERFMON', 38, 'BPF programs reading task memory'],
  ['CAP_CHECKPOINT_RESTORE', 40, 'checkpoint tooling'],
  ['CAP_DAC_READ_SEARCH', 2, 'read /proc files of other users'],
  ['CAP_KILL', 5, 'signal processes of other users (thaw, stop)'],
];

function item(name: string, ok: boolean, text: string): CheckItem {
  return ok ? { name, ok, ...(text ? { detail: text } : {}) } : { name, ok, reason: text };
}

interface Mount { point: string; fstype: string; super: string }

function mounts(): Mount[] {
  const out: Mount[] = [];
  let text = '';
  try { text = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return out; }
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    out.push({ point: pre[4] ?? '', fstype: post[0] ?? '', super: post[2] ?? '' });
  }
  return out;
}

/** Effective capabilities of this process as a bigint mask. */
function readTrim(path: string): string | undefined {
  try { return readFileSync(path, 'latin1').trim(); } catch { return undefined; }
}

function probeFreezer(name: FreezeMethod, eff: Mask64, ms: Mount[]): CheckItem {
  if (!FREEZERS[name]) return item(name, false, 'not built into this tdcollect');
  switch (name) {
    case 'none':
      return item(name, true, 'no freeze: a live, racy snapshot');
    case 'ptrace': {
      const scope = readTrim('/proc/sys/kernel/yama/ptrace_scope');
      if (scope === '3') return item(name, false, 'kernel.yama.ptrace_scope = 3: ptrace attach is disabled until reboot');
      const cap = hasCap(eff, 19);
      if (scope === '2' && !cap) return item(name, false, 'kernel.yama.ptrace_scope = 2 needs CAP_SYS_PTRACE, which the caller lacks');
      return item(name, true,
        `PTRACE_SEIZE + PTRACE_INTERRUPT${scope !== undefined ? `; yama ptrace_scope ${scope}` : ''}${cap ? '; CAP_SYS_PTRACE' : '; own processes only (no CAP_SYS_PTRACE)'}`);
    }
    case 'cgroup': {
      const v2 = ms.find((m) => m.fstype === 'cgroup2');
      const v1 = ms.find((m) => m.fstype === 'cgroup' && m.super.split(',').includes('freezer'));
      const parts: string[] = [];
      if (v2) {
        // the root cgroup has no cgroup.freeze: look at the caller's cgroup and at the root's children
        let freeze = false;
        const self = readTrim('/proc/self/cgroup')?.split('\n').find((l) => l.startsWith('0::'))?.slice(3);
        if (self && self !== '/' && existsSync(join(v2.point, self, 'cgroup.freeze'))) freeze = true;
        if (!freeze) {
          try {
            for (const d of readdirSync(v2.point, { withFileTypes: true })) {
              if (d.isDirectory() && existsSync(join(v2.point, d.name, 'cgroup.freeze'))) { freeze = true; break; }
            }
          } catch { /* unreadable */ }
        }
        let why = 'no cgroup there offers cgroup.freeze (kernel < 5.2?)';
        if (!freeze) {
          // no child cgroup exists to look at: create an empty one for a moment
          const probe = join(v2.point, `tdcollect-check-${process.pid}`);
          try {
            mkdirSync(probe);
            try { freeze = existsSync(join(probe, 'cgroup.freeze')); } finally { rmdirSync(probe); }
          } catch (e) {
            why = `no child cgroup with cgroup.freeze, and none can be created to look (${(e as NodeJS.ErrnoException).code})`;
          }
        }
        parts.push(freeze ? `cgroup v2 at ${v2.point} (cgroup.freeze)` : `cgroup v2 at ${v2.point}: ${why}`);
        if (freeze) return item(name, true, parts[0] + (v1 ? `; v1 freezer at ${v1.point}` : ''));
      }
      if (v1) return item(name, true, `v1 freezer at ${v1.point}${parts.length ? `; ${parts[0]}` : ''}`);
      return item(name, false, parts.length ? parts[0] : 'neither cgroup v2 nor the v1 freezer hierarchy is mounted');
    }
  }
}

function features(ms: Mount[]): CheckItem[] {
  const out: CheckItem[] = [];
  // /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)
  let children = false;
  try {
    const tid = readdirSync('/proc/self/task')[0];
    children = existsSync(`/proc/self/task/${tid}/children`);
  } catch { /* no /proc */ }
  out.push(item('PROC_CHILDREN', children,
    children ? '/proc/PID/task/TID/children' : '/proc/PID/task/TID/children is absent (kernel built without CONFIG_PROC_CHILDREN)'));
  const btf = existsSync('/sys/kernel/btf/vmlinux');
  out.push(item('BTF', btf, btf ? '/sys/kernel/btf/vmlinux' : '/sys/kernel/btf/vmlinux is absent (kernel built without CONFIG_DEBUG_INFO_BTF)'));
  const bpffs = ms.find((m) => m.fstype === 'bpf');
  out.push(item('bpffs', !!bpffs, bpffs ? `mounted at ${bpffs.point}` : 'no bpf filesystem mounted (mount -t bpf bpf /sys/fs/bpf)'));

  let genl: GenlConn | undefined;
  try {
    genl = GenlConn.open({ timeoutMs: 5000 });
    try {
      const f = genl.family('TASKSTATS');
      const st = taskStatsForPid(genl, process.pid);
      out.push(item('TASKSTATS', true, `genl family ${f.id}, struct taskstats v${st.version}`));
    } catch (e) {
      out.push(item('TASKSTATS', false, (e as Error).message));
    }
  } catch (e) {
    out.push(item('TASKSTATS', false, `no NETLINK_GENERIC socket: ${(e as Error).message}`));
  } finally {
    genl?.close();
  }
  try {
    const r = dumpInetSockets({ family: AF_INET, protocol: IPPROTO_TCP, states: 1 << TCP_LISTEN }, { timeoutMs: 5000 });
    out.push(item('NETLINK_SOCK_DIAG', true, `inet_diag dump: ${r.sockets.length} listening TCP/IPv4 sockets`));
  } catch (e) {
    out.push(item('NETLINK_SOCK_DIAG', false, (e as Error).message));
  }
  return out;
}

export async function runCheck(): Promise<CheckReport> {
  const ms = mounts();
  const eff = effectiveCaps();
  const sources: CheckItem[] = [];
  for (const n of SOURCE_NAMES) {
    const f = SOURCES[n];
    if (!f) { sources.push(item(n, false, 'not built into this tdcollect')); continue; }
    try {
      const p = await f.probe();
      sources.push(p.ok ? item(n, true, p.detail ?? '') : item(n, false, p.reason));
    } catch (e) {
      sources.push(item(n, false, `probe failed: ${(e as Error).message}`));
    }
  }
  const freezers = FREEZE_NAMES.map((n) => {
    try { return probeFreezer(n, eff, ms); } catch (e) { return item(n, false, `probe failed: ${(e as Error).message}`); }
  });
  const capabilities = CAPS.map(([name, bit, use]) =>
    hasCap(eff, bit) ? item(name, true, use) : item(name, false, `not in the caller's effective set (needed to ${use})`));
  const report: CheckReport = { kernel: kernelRelease(), sources, freezers, features: features(ms), capabilities };
  const { planAuto } = await import('../collector/open-source.js');
  const every = (await planAuto()).plan[0];
  if (every) { report.auto = every.name; report.autoReason = every.reason; }
  const small = (await planAuto({ root: process.pid })).plan[0];
  if (small) report.autoSmallTree = small;
  return report;
}

export function formatReport(r: CheckReport): string {
  const lines: string[] = [`kernel ${r.kernel}`];
  const section = (title: string, items: CheckItem[]): void => {
    lines.push(`${title}:`);
    const w = Math.max(...items.map((i) => i.name.length));
    for (const i of items) lines.push(`  ${i.name.padEnd(w)}  ${i.ok ? 'yes' : 'no '}  ${i.ok ? (i.detail ?? '') : i.reason}`.trimEnd());
  };
  section('sources', r.sources);
  section('freezers', r.freezers);
  section('kernel features', r.features);
  section('capabilities', r.capabilities);
  if (!r.auto) lines.push('no source works here');
  else {
    lines.push(`--source auto uses, for every task: ${r.auto} (${r.autoReason})`);
    if (r.autoSmallTree) lines.push(`--source auto uses, for a small tree: ${r.autoSmallTree.name} (${r.autoSmallTree.reason})`);
  }
  return `${lines.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('check')
    .description('report which sources, freezers and kernel features work here, and why not')
    .option('--json', 'print the report as JSON')
    .action(action(async (opts: { json?: boolean }) => {
      const r = await runCheck();
      const out = new BufferedWriter();
      out.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : formatReport(r));
      out.flush();
      return r.sources.some((s) => s.ok) ? EXIT.OK : EXIT.UNAVAILABLE;
    }));
}
