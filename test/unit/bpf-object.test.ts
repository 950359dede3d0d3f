/**
 * The committed BPF object matches its source: rebuilding task_iter.bpf.c with Debian's clang-14 (the
 * command of `npm run build:bpf`) gives the same bytes, and the record layout in the object's DWARF is the
 * one record.ts decodes.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIELD_OFFSETS, MAX_RECORD_SIZE } from '../../src/collector/sources/bpf/record.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIR = join(ROOT, 'src/collector/sources/bpf');
const ARGS = ['-target', 'bpf', '-O2', '-g', '-Wall', '-fdebug-compilation-dir=.', '-c', 'task_iter.bpf.c', '-o'];

describe('task_iter.bpf.o', () => {
  it('is built by npm run build:bpf with these exact arguments', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts['build:bpf']).toContain(`clang-14 ${ARGS.join(' ')} task_iter.bpf.o`);
  });

  it('rebuilds byte for byte from task_iter.bpf.c (in another directory)', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'tdcollect-bpf-'));
    try {
      copyFileSync(join(DIR, 'task_iter.bpf.c'), join(tmp, 'task_iter.bpf.c'));
      execFileSync('clang-14', [...ARGS, 'out.o'], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
      const rebuilt = readFileSync(join(tmp, 'out.o'));
      const committed = readFileSync(join(DIR, 'task_iter.bpf.o'));
      expect(rebuilt.length).toBe(committed.length);
      expect(rebuilt.equals(committed)).toBe(true);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('lays struct td_task out as record.ts decodes it (DWARF member offsets)', () => {
    const out = execFileSync('llvm-dwarfdump-14', ['--debug-info', '--name=td_task', '-c', join(DIR, 'task_iter.bpf.o')], { encoding: 'utf8' });
    const members: Record<string, number> = {};
    let name: string | undefined;
    let size: number | undefined;
    for (const line of out.split('\n')) {
      const n = /DW_AT_name\s+\("([^"]+)"\)/.exec(line);
      if (n) { name = n[1]; continue; }
      const m = /DW_AT_data_member_location\s+\((0x[0-9a-f]+)\)/.exec(line);
      if (m && name) { members[name] = parseInt(m[1], 16); name = undefined; continue; }
      const s = /DW_AT_byte_size\s+\((0x[0-9a-f]+)\)/.exec(line);
      if (s && size === undefined) size = parseInt(s[1], 16);
    }
    expect(size).toBe(MAX_RECORD_SIZE);
    expect(members).toEqual(FIELD_OFFSETS);
  });
});
