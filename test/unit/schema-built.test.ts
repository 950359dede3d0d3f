/**
 * The schemas compiled at build time (src/image/schemas.gen.ts, scripts/gen-schemas.mjs) are the .proto
 * files' schemas: every message has the same fields with the same numbers, types, labels and field types as
 * protobufjs's reflection of the .proto files, and its static encoder writes the same bytes as that
 * reflection's Type.encode.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { parseProtoFiles, type MessageSchema } from '../../src/image/schema.js';
import { MESSAGES } from '../../src/image/schemas.gen.js';

function types(ns: protobuf.NamespaceBase, out: protobuf.Type[] = []): protobuf.Type[] {
  for (const o of ns.nestedArray) {
    if (o instanceof protobuf.Type) out.push(o);
    if (o instanceof protobuf.Namespace || o instanceof protobuf.Type) types(o as protobuf.NamespaceBase, out);
  }
  return out;
}

function describeFields(t: MessageSchema): unknown[] {
  return t.fieldsArray.map((f) => {
    (f as { resolve?: () => unknown }).resolve?.();
    const rt = f.resolvedType;
    return [f.name, f.id, f.type, f.repeated, f.required, rt?.fullName ?? null, rt && 'values' in rt ? rt.values : null];
  });
}

const hex = (w: { finish(): Uint8Array }) => Buffer.from(w.finish()).toString('hex');

describe('schemas.gen.ts', () => {
  const parsed = parseProtoFiles();
  const all = types(parsed);

  it('has every message of the .proto files, with the same fields', () => {
    expect(Object.keys(MESSAGES)).toEqual(all.map((t) => t.fullName.slice(1)));
    expect(all.length).toBeGreaterThan(8);
    for (const t of all) {
      const g = MESSAGES[t.fullName.slice(1)];
      expect(g.fullName).toBe(t.fullName);
      expect(describeFields(g), t.fullName).toEqual(describeFields(t));
    }
  });

  it('encodes to the same bytes: proto2 repeated scalars unpacked, 64-bit values, nested messages', () => {
    const msg = { pid: 10, ppid: 1, pgid: 10, sid: 10, threads: [10, 11, 300] };
    // 08 0a | 10 01 | 18 0a | 20 0a | 28 0a | 28 0b | 28 ac 02   (threads unpacked: one tag per value)
    expect(hex(MESSAGES.pstree_entry.encode(msg))).toBe('080a1001180a200a280a280b28ac02');
    expect(hex(MESSAGES.pstree_entry.encode(msg))).toBe(hex(parsed.lookupType('pstree_entry').encode(msg)));
    const creds = { uid: 1, gid: 2, euid: 3, egid: 4, suid: 5, sgid: 6, fsuid: 7, fsgid: 8, cap_inh: [1, 2], cap_prm: [3, 4], cap_eff: [5, 6], cap_bnd: [7, 8], secbits: 0, groups: [100, 200] };
    const core = {
      mtype: 1,
      tc: { task_state: 1, exit_code: 0, personality: 0, flags: 0x400040, blk_sigset: { low: 0xffffffff, high: 0x1, unsigned: true }, comm: 'sleep' },
      thread_core: { futex_rla: 0, futex_rla_len: 24, sched_nice: -5, sched_policy: 0, blk_sigset: 7, creds, seccomp_mode: 2, comm: 'sleep' },
    };
    const task = {
      pid: 7, tgid: 7, ppid: 1, tpid: 0, sid: 7, pgid: 7, state: 'S', comm: 'x', uid: 0, euid: 0, suid: 0, fsuid: 0,
      gid: 0, egid: 0, sgid: 0, fsgid: 0, cap_inh: 0, cap_prm: { low: 0xffffffff, high: 0x1ff, unsigned: true },
      cap_eff: 5, cap_bnd: 6, groups: { values: [1, 2] }, start_time: 2 ** 40 + 3, nice: -20, priority: 39,
      collector_view: { pid: 1, tgid: 1, ppid: 0, sid: 1, pgid: 1 }, ns: { pid: 4026531836 },
    };
    for (const [name, m] of [['creds_entry', creds], ['core_entry', core], ['tdcollect.task', task]] as const) {
      const want = hex(parsed.lookupType(name).encode(m));
      expect(want.length, name).toBeGreaterThan(20);
      expect(hex(MESSAGES[name].encode(m)), name).toBe(want);
    }
  });

  it('is current with proto/ (the build wrote it from the .proto files as they are)', () => {
    const dir = mkdtempSync(join(tmpdir(), `tdcollect-gen-${process.pid}-`));
    try {
      const out = join(dir, 'schemas.gen.ts');
      execFileSync(process.execPath, [fileURLToPath(new URL('../../scripts/gen-schemas.mjs', import.meta.url)), out]);
      const built = fileURLToPath(new URL('../../src/image/schemas.gen.ts', import.meta.url));
      expect(readFileSync(built, 'utf8'), `${built} (run npm run build)`).toBe(readFileSync(out, 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
