/**
 * The launcher's code cache (bin/tdcollect.js): V8's compiled code of the command's bundle, kept per user.
 * Whatever the cache holds (nothing, its own data, garbage, a truncated file, another command's cache, an
 * unwritable directory), the command prints exactly what it prints without one and exits the same way.
 * A cache is written once, after the first run, and used as it is afterwards (not rewritten: V8 accepted it);
 * one V8 rejects is replaced; TDCOLLECT_CODE_CACHE=none reads and writes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnTree, type Tree } from '../helpers/tree.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'tdcollect.js');

describe('code cache', () => {
  const tmp = mkdtempSync(join(tmpdir(), `tdcollect-code-cache-${process.pid}-`));
  const dump = join(tmp, 'dump');
  let tree: Tree;
  let want: string;

  const run = (cacheDir: string, args: string[] = ['show', dump], extra: Record<string, string> = {}) =>
    spawnSync(BIN, args, { encoding: 'utf8', env: { ...process.env, TDCOLLECT_CACHE_DIR: cacheDir, ...extra } });
  const caches = (dir: string, cmd = 'show') => (existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith(`code-${cmd}-`)) : []);

  beforeAll(async () => {
    tree = await spawnTree({ procs: 2 });
    const d = run(join(tmp, 'none'), ['dump', '-r', String(tree.root), '-s', 'procfs', '-o', dump], { TDCOLLECT_CODE_CACHE: 'none' });
    expect(d.stderr).toBe('');
    expect(d.status).toBe(0);
    const r = run(join(tmp, 'none'), ['show', dump], { TDCOLLECT_CODE_CACHE: 'none' });
    expect(r.status).toBe(0);
    want = r.stdout;
    expect(want).toContain(`root ${tree.root}:`);
  });
  afterAll(async () => {
    await tree?.kill();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('TDCOLLECT_CODE_CACHE=none writes nothing', () => {
    expect(existsSync(join(tmp, 'none'))).toBe(false);
  });

  it('is written after the first run, then used as it is', () => {
    const dir = join(tmp, 'warm');
    const first = run(dir);
    expect([first.status, first.stderr, first.stdout]).toEqual([0, '', want]);
    const files = caches(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(new RegExp(`^code-show-[0-9a-f]{24}-\\d+-\\d+-${process.version.replace(/\./g, '\\.')}-${process.arch}\\.bin$`));
    const path = join(dir, files[0]);
    const before = statSync(path);
    expect(before.size).toBeGreaterThan(10_000);
    expect(before.mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const second = run(dir);
    expect([second.status, second.stderr, second.stdout]).toEqual([0, '', want]);
    const after = statSync(path);
    // accepted by V8: not written again
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    // a command with its own bundle has its own cache
    const help = run(dir, ['dump', '--help']);
    expect(help.status).toBe(0);
    expect(caches(dir, 'dump')).toHaveLength(1);
  });

  it('a rejected cache (garbage, truncated, another command\'s) runs as without one and is replaced', () => {
    const dir = join(tmp, 'bad');
    expect(run(dir).status).toBe(0);
    const name = caches(dir)[0];
    const path = join(dir, name);
    const good = readFileSync(path);
    expect(run(dir, ['dump', '--help']).status).toBe(0);
    const other = readFileSync(join(dir, caches(dir, 'dump')[0]));
    const cases: [string, Buffer][] = [
      ['garbage', Buffer.alloc(good.length, 0x5a)],
      ['truncated', good.subarray(0, good.length >> 1)],
      ['empty', Buffer.alloc(0)],
      ['another command\'s', other],
    ];
    for (const [label, bytes] of cases) {
      writeFileSync(path, bytes);
      const r = run(dir);
      expect([r.status, r.stderr, r.stdout], label).toEqual([0, '', want]);
      const now = readFileSync(path);
      expect(now.equals(bytes), `${label}: replaced`).toBe(false);
      expect(now.length, label).toBeGreaterThan(10_000);
    }
    expect(caches(dir)).toEqual([name]);
  });

  it('a cache directory that cannot be written: no cache, no message', () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, '');
    const r = run(join(file, 'cache'));
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', want]);
    if (process.getuid?.() !== 0) {
      const ro = join(tmp, 'ro');
      mkdirSync(ro, { mode: 0o500 });
      const s = run(ro);
      expect([s.status, s.stderr, s.stdout]).toEqual([0, '', want]);
      chmodSync(ro, 0o700);
    }
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('an error exit is the same with a cache (the cache is written on the way out)', () => {
    const dir = join(tmp, 'err');
    const none = run(join(tmp, 'none'), ['show', join(tmp, 'no-such-dump')], { TDCOLLECT_CODE_CACHE: 'none' });
    expect(none.status).not.toBe(0);
    for (let i = 0; i < 2; i++) {
      const r = run(dir, ['show', join(tmp, 'no-such-dump')]);
      expect([r.status, r.stderr, r.stdout]).toEqual([none.status, none.stderr, none.stdout]);
    }
    expect(caches(dir)).toHaveLength(1);
  });
});
