/**
 * The TASKDIAG source where the kernel has no TASKDIAG family (this host): `--source taskdiag` fails with one
 * line and exit 6, nothing is frozen or written, probe() says why, `--source auto` moves on; and
 * `tdcollect check` (text and --json) against independent readings of this machine.
 */
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EXIT, UnavailableError } from '../../src/errors.js';
import { taskdiagFactory } from '../../src/collector/sources/taskdiag.js';
import { openSource } from '../../src/collector/collect.js';
import { GenlConn } from '../../src/netlink/genl.js';

const BIN = resolve(__dirname, '../../bin/tdcollect.js');
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });

function hasTaskdiag(): boolean {
  const c = GenlConn.open();
  try { c.family('TASKDIAG'); return true; } catch { return false; } finally { c.close(); }
}

function procState(pid: number): string {
  const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return s[s.lastIndexOf(')') + 2];
}

describe('--source taskdiag without a TASKDIAG family', () => {
  it('this host has no TASKDIAG family (precondition of this file)', () => {
    expect(hasTaskdiag()).toBe(false);
  });

  for (const freeze of ['none', 'ptrace']) {
    it(`dump --freeze ${freeze}: exit 6, one line naming TASKDIAG and what to do, nothing written or left stopped`, async () => {
      const child = spawn('sleep', ['60'], { stdio: 'ignore' });
      const dir = mkdtempSync(join(tmpdir(), 'tdc-nl-'));
      const out = join(dir, 'img');
      try {
        const r = run('dump', '-r', String(child.pid), '-o', out, '--source', 'taskdiag', '--freeze', freeze);
        expect(r.status).toBe(EXIT.UNAVAILABLE);
        expect(r.stdout).toBe('');
        const lines = r.stderr.split('\n').filter(Boolean);
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^tdcollect: .*TASKDIAG/);
        expect(lines[0]).toContain('kernel/');
        expect(lines[0]).toContain('--source bpf|procfs');
        expect(existsSync(out)).toBe(false);
        expect(procState(child.pid!)).toBe('S');
        expect(readFileSync(`/proc/${child.pid}/status`, 'latin1')).toContain('TracerPid:\t0\n');
      } finally {
        child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('probe() says why; open() throws UnavailableError with feature TASKDIAG', async () => {
    const p = await taskdiagFactory.probe();
    expect(p.ok).toBe(false);
    if (!p.ok) {
      expect(p.reason).toContain('TASKDIAG');
      expect(p.reason).toContain('kernel/task_diag/task_diag.ko');
    }
    await expect(taskdiagFactory.open()).rejects.toThrow(UnavailableError);
    await expect(taskdiagFactory.open()).rejects.toMatchObject({ feature: 'TASKDIAG', exitCode: EXIT.UNAVAILABLE });
  });

  it('--source auto moves on to another source without a word about TASKDIAG', async () => {
    const before = readdirSync('/proc/self/fd').length;
    let name: string | undefined;
    try {
      const s = await openSource('auto');
      name = s.name;
      s.close();
    } catch (e) {
      // no source at all works: then the message lists each one's reason
      expect(e).toBeInstanceOf(UnavailableError);
      expect((e as Error).message).toContain('taskdiag:');
      return;
    }
    expect(name).not.toBe('taskdiag');
    expect(readdirSync('/proc/self/fd').length).toBe(before); // the probe's socket was closed
  });
});

describe('tdcollect check', () => {
  const capEff = BigInt(`0x${readFileSync('/proc/self/status', 'latin1').split('\n').find((l) => l.startsWith('CapEff:'))!.slice(7).trim()}`);

  it('--json: every source, freezer, feature and capability, checked against independent readings', () => {
    const r = run('check', '--json');
    const rep = JSON.parse(r.stdout);
    expect(rep.sources.map((s: { name: string }) => s.name)).toEqual(['taskdiag', 'bpf', 'procfs']);
    expect(rep.freezers.map((s: { name: string }) => s.name)).toEqual(['ptrace', 'cgroup', 'none']);
    const td = rep.sources[0];
    expect(td.ok).toBe(false);
    expect(td.reason).toContain('TASKDIAG');
    const anyOk = rep.sources.some((s: { ok: boolean }) => s.ok);
    expect(r.status).toBe(anyOk ? 0 : EXIT.UNAVAILABLE);
    for (const s of [...rep.sources, ...rep.freezers, ...rep.features, ...rep.capabilities]) {
      // every missing item says why
      if (!s.ok) expect(typeof s.reason === 'string' && s.reason.length > 5).toBe(true);
    }
    const feat = new Map(rep.features.map((f: { name: string; ok: boolean }) => [f.name, f.ok]));
    expect(feat.get('BTF')).toBe(existsSync('/sys/kernel/btf/vmlinux'));
    expect(feat.get('PROC_CHILDREN')).toBe(existsSync(`/proc/self/task/${process.pid}/children`));
    expect(feat.get('bpffs')).toBe(readFileSync('/proc/self/mounts', 'latin1').split('\n').some((l) => l.split(' ')[2] === 'bpf'));
    expect(feat.get('TASKSTATS')).toBe(true);          // this kernel has it (see netlink-kernel.test.ts)
    expect(feat.get('NETLINK_SOCK_DIAG')).toBe(true);
    const caps = new Map(rep.capabilities.map((c: { name: string; ok: boolean }) => [c.name, c.ok]));
    expect(caps.get('CAP_SYS_PTRACE')).toBe(((capEff >> 19n) & 1n) === 1n);
    expect(caps.get('CAP_BPF')).toBe(((capEff >> 39n) & 1n) === 1n);
    expect(rep.freezers[2].ok).toBe(true);              // none always works
    expect(rep.kernel).toBe(readFileSync('/proc/sys/kernel/osrelease', 'latin1').trim());
  });

  it('text: a section per kind, "no" lines carry the reason, the same exit code', () => {
    const r = run('check');
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    for (const h of ['sources:', 'freezers:', 'kernel features:', 'capabilities:']) expect(lines).toContain(h);
    const td = lines.find((l) => l.trimStart().startsWith('taskdiag'))!;
    expect(td).toMatch(/^\s+taskdiag\s+no\s+\S.*TASKDIAG/);
    const j = JSON.parse(run('check', '--json').stdout);
    expect(r.status).toBe(j.sources.some((s: { ok: boolean }) => s.ok) ? 0 : EXIT.UNAVAILABLE);
  });
});
