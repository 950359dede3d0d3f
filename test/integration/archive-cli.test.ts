/**
 * Checkpoint archives on a real tree (test/fixtures/diffgen.c): tdcollect dumps it, the CRIU images of the
 * dump are laid out the way podman exports a checkpoint (checkpoint/ + config.dump + spec.dump +
 * network.status + stats-dump, and a rootfs-diff.tar that is never read), as tar, tar.gz (gzip) and tar.zst
 * (zstd). `show` names the container; `diff` of each archive against the dump, against the CRIU directory and
 * against the live tree exits 0; after a child is killed, `diff ARCHIVE --live` exits 1 and names it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnDiffgen, type Diffgen } from '../helpers/diffgen.js';
import type { SnapshotDiff } from '../../src/image/diff.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(process.env.TDCOLLECT_ROOT ?? ROOT, 'bin', 'tdcollect.js');
const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

const ID = '5e1c0ffee0ddba11d00dfeedfacecafe0123456789abcdef0123456789abcdef';
let work: string;
let g: Diffgen;
let child: number;
let dump: string;
let criuDir: string;
const archives: [path: string, label: string][] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), `tdc-archive-${process.pid}-`));
  g = await spawnDiffgen();
  child = await g.spawn();
  await g.spawn();
  dump = join(work, 'dump');
  const r = cli('dump', '-r', String(g.root), '-o', dump, '--freeze', 'ptrace');
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  // podman's layout: CRIU's images in checkpoint/, the engine's metadata beside them
  const lay = join(work, 'layout');
  criuDir = join(lay, 'checkpoint');
  mkdirSync(criuDir, { recursive: true });
  for (const f of readdirSync(dump)) if (f !== 'tasks.img') copyFileSync(join(dump, f), join(criuDir, f));
  writeFileSync(join(criuDir, 'pages-1.img'), Buffer.alloc(3 << 20, 0x5a)); // memory CRIU writes, never read
  writeFileSync(join(lay, 'config.dump'), JSON.stringify({
    id: ID, name: 'diffgen-ctr', rootfsImageName: 'registry.example/diffgen:1.0', runtime: 'crun',
    createdTime: '2026-11-30T09:15:00.5Z',
  }));
  writeFileSync(join(lay, 'spec.dump'), JSON.stringify({
    ociVersion: '1.1.0', annotations: { 'io.container.manager': 'libpod' }, process: { args: ['diffgen'] },
  }));
  writeFileSync(join(lay, 'network.status'), '[]');
  writeFileSync(join(lay, 'stats-dump'), Buffer.from([0x40, 0x59, 0x10, 0x55, 0x06, 0x33, 0x09, 0x57]));
  execFileSync('tar', ['-C', lay, '-cf', join(lay, 'rootfs-diff.tar'), 'network.status']);
  const members = ['config.dump', 'spec.dump', 'network.status', 'stats-dump', 'rootfs-diff.tar', 'checkpoint'];
  const tar = join(work, 'ckpt.tar');
  execFileSync('tar', ['-C', lay, '-cf', tar, ...members]);
  execFileSync('tar', ['-C', lay, '-czf', `${tar}.gz`, ...members]);
  execFileSync('tar', ['-C', lay, '--zstd', '-cf', `${tar}.zst`, ...members]);
  archives.push([tar, 'tar'], [`${tar}.gz`, 'tar.gz'], [`${tar}.zst`, 'tar.zst']);
});
afterAll(async () => {
  await g?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('podman-layout checkpoint archives of a real tree', () => {
  it('show names the archive, its compression and its container, then the tree', () => {
    for (const [path, label] of archives) {
      const r = cli('show', path);
      expect(r.err, label).toBe('');
      expect(r.code, label).toBe(0);
      const lines = r.out.split('\n');
      expect(lines[0]).toBe(`checkpoint archive ${path} (${label}): CRIU image set in checkpoint/`);
      expect(lines[1]).toBe(`  container diffgen-ctr, id ${ID}, image registry.example/diffgen:1.0, runtime crun, ` +
        'engine Podman, created 2026-11-30T09:15:00.5Z');
      expect(lines[2]).toMatch(new RegExp(`^root ${g.root}: 3 processes, 3 threads; not recorded: `));
      expect(lines[3]).toMatch(new RegExp(`^${g.root} alive uid=0 `));
      expect(r.out).toContain(`─ ${child} alive uid=0 `);
    }
  });

  it('show --json: schema 2 with the origin', () => {
    const j = JSON.parse(cli('show', '--json', archives[2][0]).out) as {
      version: number; origin: Record<string, unknown>; info: Record<string, unknown>; tasks: Record<string, unknown>[];
    };
    expect(j.version).toBe(2);
    expect(j.origin).toMatchObject({
      form: 'archive', writer: 'criu', compression: 'zstd', imageDir: 'checkpoint',
      container: { engine: 'Podman', name: 'diffgen-ctr', id: ID, runtime: 'crun', created: '2026-11-30T09:15:00.5Z' },
      metadata: ['config.dump', 'spec.dump', 'network.status'],
    });
    expect(j.info.source).toBeUndefined();
    expect(j.tasks[0]).toMatchObject({ pid: g.root, criuState: 'alive' });
    expect('state' in j.tasks[0]).toBe(false);
    expect('startTime' in j.tasks[0]).toBe(false);
  });

  it('diff against the dump, the CRIU directory and the live tree: equal, matched by pid, exit 0', () => {
    for (const [path, label] of archives) {
      for (const other of [dump, criuDir]) {
        const r = cli('diff', path, other);
        expect(r.err, label).toBe('');
        expect(r.out, label).not.toMatch(/added|removed|changed|->/);
        expect(r.code, `${label} vs ${other}`).toBe(0);
      }
      const j = JSON.parse(cli('diff', '--json', dump, path).out) as SnapshotDiff;
      expect(j).toMatchObject({ equal: true, matchedByPidOnly: true, a: { kind: 'tdcollect dump' } });
      expect(j.b.kind).toBe(`checkpoint archive (${label}, CRIU images, container diffgen-ctr)`);
      const live = cli('diff', path, '--live', '-q');
      expect(live.err).toBe('');
      expect(live.out).toContain('matched by pid alone');
      expect(live.code, `${label} --live`).toBe(0);
    }
  });

  it('a changed tree: diff ARCHIVE --live exits 1 and names the removed child', async () => {
    await g.kill(child);
    for (const [path, label] of archives) {
      const r = cli('diff', path, '--live', '-q');
      expect(r.err).toBe('');
      expect(r.out, label).toMatch(new RegExp(`^process ${child} \\(\\S+\\): removed \\(ppid ${g.root}\\)$`, 'm'));
      expect(r.code, label).toBe(1);
    }
  });
});
