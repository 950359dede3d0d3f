/**
 * Reading what CRIU itself writes: Debian 12's criu 3.17.1 and each source (taskdiag, bpf, procfs) dump the
 * same mixed tree (threads, a stopped task, a zombie, another user's task). `tdcollect show CRIU_DIR` works,
 * the CRIU set and ours agree field by field on everything CRIU records, `tdcollect diff OURS CRIU_DIR`
 * exits 0, a changed tree makes it exit 1 and name the change, and a podman-layout archive of CRIU's dump
 * reads the same in each compression.
 * Uses the compiled CLI (bin/tdcollect.js -> dist/).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTree, tdc, type Fixture, type TreeInfo } from './lib.js';
import { criuDump, criuSafeStdio, criuVersion, type CriuDump } from './criu.js';
import { readImageSet } from '../../../src/image/imageset.js';
import { readImages } from '../../../src/image/read.js';
import type { RecordedTask } from '../../../src/collector/task.js';
import { criuStateOf } from '../../../src/collector/task.js';


let tree: Fixture<TreeInfo>;
let dir: string;
let criu: CriuDump;
const ours = new Map<string, string>();

beforeAll(async () => {
  tree = await startTree<TreeInfo>(['tree'], [...criuSafeStdio]);
  dir = mkdtempSync(join(tmpdir(), `td-criu-read-${process.pid}-`));
  criu = criuDump(tree.info.leader);
  for (const source of ['taskdiag', 'bpf', 'procfs']) {
    const out = join(dir, source);
    const r = tdc(['dump', '-r', String(tree.info.leader), '-s', source, '-f', 'ptrace', '-o', out]);
    expect(r.stderr, `dump --source ${source}`).toBe('');
    expect(r.status).toBe(0);
    ours.set(source, out);
  }
});
afterAll(async () => {
  await tree?.stop();
  criu?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The fields both sides record, of one task, for a field-by-field comparison. */
const COMPARED = [
  'pid', 'tgid', 'sid', 'pgid', 'comm', 'uid', 'euid', 'suid', 'fsuid', 'gid', 'egid', 'sgid', 'fsgid',
  'capInh', 'capPrm', 'capEff', 'capBnd', 'groups', 'personality', 'sigBlk', 'nice', 'policy', 'futexRla', 'futexRlaLen',
] as const;

describe(`criu ${criuVersion()} dump of the mixed tree`, () => {
  it('tdcollect show names it a CRIU image set and lists every task', () => {
    const r = tdc(['show', criu.dir]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`CRIU image set (directory) ${criu.dir}`);
    for (const [k, pid] of Object.entries(tree.info)) expect(r.stdout, k).toContain(`${pid} `);
    expect(r.stdout).toMatch(new RegExp(`${tree.info.zombie} dead `));
    expect(r.stdout).toMatch(new RegExp(`${tree.info.stopped} stopped `));
    expect(r.stdout).toMatch(new RegExp(`${tree.info.user} alive uid=65534 `));
  });

  for (const source of ['taskdiag', 'bpf', 'procfs']) {
    it(`${source}: field by field equal to CRIU's images, and tdcollect diff exits 0`, () => {
      const a = readImages(ours.get(source)!);
      const c = readImages(criu.dir);
      const byPid = (ts: readonly RecordedTask[]) => new Map(ts.map((t) => [t.pid, t]));
      const ma = byPid(a.tasks), mc = byPid(c.tasks);
      expect([...mc.keys()].sort((x, y) => x - y)).toEqual([...ma.keys()].sort((x, y) => x - y));
      // pstree order: the root first
      expect(c.tasks[0].pid).toBe(tree.info.leader);
      for (const [pid, t] of ma) {
        const k = mc.get(pid)!;
        expect(criuStateOf(k), `state of ${pid}`).toBe(criuStateOf(t));
        if (t.tgid !== tree.info.leader) expect(k.ppid, `ppid of ${pid}`).toBe(t.ppid);
        else expect(k.ppid, 'the root process has no recorded parent').toBeUndefined();
        const leader = t.pid === t.tgid;
        const zombie = pid === tree.info.zombie;
        for (const f of COMPARED) {
          const kv = (k as Record<string, unknown>)[f];
          // a zombie: CRIU records its ids, comm and exit code only
          if (zombie && !['pid', 'tgid', 'sid', 'pgid', 'comm'].includes(f)) { expect(kv, `${f} of the zombie`).toBeUndefined(); continue; }
          if (!leader && f === 'personality') { expect(kv).toBeUndefined(); continue; }
          const tv = (t as Record<string, unknown>)[f];
          if (tv === undefined) continue; // the source could not read it
          expect(kv, `${f} of ${pid} (${source})`).toStrictEqual(tv);
        }
        if (k.securebits !== undefined && t.securebits !== undefined) expect(k.securebits, `securebits of ${pid}`).toBe(t.securebits);
        if (zombie) {
          expect(k.uid, 'CRIU writes no creds for a zombie').toBeUndefined();
          expect(k.exitCode, 'exit code of the zombie').toBe(t.exitCode);
        }
        expect(k.startTime).toBeUndefined();
        expect(k.tpid).toBeUndefined();
      }
      const d = tdc(['diff', ours.get(source)!, criu.dir]);
      expect(d.stderr).toBe('');
      expect(d.stdout).toContain('matched by pid alone');
      expect(d.stdout, `diff ${source} criu`).not.toMatch(/changed|added|removed/);
      expect(d.status, `diff ${source} criu`).toBe(0);
    });
  }

  it('a changed tree: diff CRIU_DIR --live exits 1 and names the change', { timeout: 300_000 }, () => {
    const d0 = tdc(['diff', criu.dir, '--live', '-q']);
    expect(d0.stdout, 'nothing changed yet').not.toMatch(/changed|added|removed/);
    expect(d0.status).toBe(0);
    // continue the stopped task: CRIU recorded it stopped, now it is alive
    process.kill(tree.info.stopped, 'SIGCONT');
    try {
      const d = tdc(['diff', criu.dir, '--live', '-q']);
      expect(d.stdout).toContain(`process ${tree.info.stopped} (vmt-stopped):`);
      expect(d.stdout).toMatch(/state: "stopped" -> "[RS] \(alive\)"/);
      expect(d.status).toBe(1);
      const o = tdc(['diff', ours.get('procfs')!, criu.dir]);
      expect(o.status, 'the two dumps still agree').toBe(0);
    } finally {
      process.kill(tree.info.stopped, 'SIGSTOP');
    }
  });

  it('a podman-layout archive of CRIU\'s dump reads the same in each compression', async () => {
    const lay = join(dir, 'podman');
    mkdirSync(lay);
    cpSync(criu.dir, join(lay, 'checkpoint'), { recursive: true });
    writeFileSync(join(lay, 'config.dump'), JSON.stringify({
      id: 'a3c8e2f1d0b94c7e8f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e', name: 'vmtree-ctr',
      rootfsImageName: 'localhost/vmtree:latest', runtime: 'crun', createdTime: '2026-12-01T12:00:00.000000001Z',
    }));
    writeFileSync(join(lay, 'spec.dump'), JSON.stringify({ ociVersion: '1.1.0', annotations: { 'io.container.manager': 'libpod' } }));
    const base = readImages(criu.dir);
    const tarPath = join(dir, 'ckpt.tar');
    execFileSync('tar', ['-C', lay, '-cf', tarPath, 'checkpoint', 'config.dump', 'spec.dump']);
    execFileSync('gzip', ['-k', tarPath]);
    execFileSync('zstd', ['-q', tarPath, '-o', `${tarPath}.zst`]);
    for (const [path, label] of [[tarPath, 'tar'], [`${tarPath}.gz`, 'tar.gz'], [`${tarPath}.zst`, 'tar.zst']] as const) {
      const r = tdc(['show', path]);
      expect(r.stderr, label).toBe('');
      expect(r.status, label).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe(`checkpoint archive ${path} (${label}): CRIU image set in checkpoint/`);
      expect(r.stdout.split('\n')[1]).toContain('container vmtree-ctr, id a3c8e2f1d0b9');
      expect(r.stdout.split('\n')[1]).toContain('runtime crun, engine Podman, created 2026-12-01T12:00:00.000000001Z');
      // the same tasks as the directory, through the library (the CLI's diff is run once, below)
      const s = await readImageSet(path);
      expect(s.tasks, label).toStrictEqual(base.tasks);
      expect(s.origin.container?.engine).toBe('Podman');
    }
    for (const other of [criu.dir, ours.get('taskdiag')!]) {
      const d = tdc(['diff', other, `${tarPath}.zst`]);
      expect(d.stdout).not.toMatch(/changed|added|removed/);
      expect(d.status, `diff ${other} tar.zst`).toBe(0);
    }
  }, 420_000); // five CLI runs: each takes 5-30 s in a TCG guest, more on a busy host
});
