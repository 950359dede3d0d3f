/**
 * The schemas parsed at build time (schemas.json, loaded with protobufjs/light) are the .proto files'
 * schemas: every message has the same fields with the same numbers, types, labels, packing and defaults, and
 * encodes a message to the same bytes.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs/light.js';
import { parseProtoFiles } from '../../src/image/schema.js';

function types(ns: protobuf.NamespaceBase, out: protobuf.Type[] = []): protobuf.Type[] {
  for (const o of ns.nestedArray) {
    if (o instanceof protobuf.Type) out.push(o);
    if (o instanceof protobuf.Namespace || o instanceof protobuf.Type) types(o as protobuf.NamespaceBase, out);
  }
  return out;
}

function describeFields(t: protobuf.Type): unknown[] {
  return t.fieldsArray.map((f) => [f.name, f.id, f.type, f.repeated, f.required, f.packed, f.optional, f.map, String(f.typeDefault)]);
}

describe('schemas.json', () => {
  const parsed = parseProtoFiles();
  const fromJson = protobuf.Root.fromJSON(JSON.parse(JSON.stringify(parsed.toJSON())) as protobuf.INamespace);
  fromJson.resolveAll();

  it('has every message of the .proto files, with the same fields', () => {
    const a = types(parsed);
    const b = types(fromJson);
    expect(b.map((t) => t.fullName)).toEqual(a.map((t) => t.fullName));
    expect(a.length).toBeGreaterThan(8);
    for (let i = 0; i < a.length; i++) expect(describeFields(b[i]), a[i].fullName).toEqual(describeFields(a[i]));
  });

  it('encodes to the same bytes: proto2 repeated scalars unpacked, 64-bit values, nested messages', () => {
    const msg = { pid: 10, ppid: 1, pgid: 10, sid: 10, threads: [10, 11, 300] };
    const a = Buffer.from(parsed.lookupType('pstree_entry').encode(msg).finish());
    const b = Buffer.from(fromJson.lookupType('pstree_entry').encode(msg).finish());
    // 08 0a | 10 01 | 18 0a | 20 0a | 28 0a | 28 0b | 28 ac 02   (threads unpacked: one tag per value)
    expect(a.toString('hex')).toBe('080a1001180a200a280a280b28ac02');
    expect(b.equals(a)).toBe(true);
    const creds = { uid: 1, gid: 2, euid: 3, egid: 4, suid: 5, sgid: 6, fsuid: 7, fsgid: 8, cap_inh: [1, 2], cap_prm: [3, 4], cap_eff: [5, 6], cap_bnd: [7, 8], secbits: 0, groups: [100, 200] };
    expect(Buffer.from(fromJson.lookupType('creds_entry').encode(creds).finish()))
      .toEqual(Buffer.from(parsed.lookupType('creds_entry').encode(creds).finish()));
  });

  it('the build wrote it beside dist/image/schema.js and the CLI bundle, current with proto/', () => {
    // the tests run after `npm run build` (npm ci runs it too)
    for (const dir of ['dist/image', 'dist/bin']) {
      const built = fileURLToPath(new URL(`../../${dir}/schemas.json`, import.meta.url));
      expect(existsSync(built), `${built} (run npm run build)`).toBe(true);
      expect(JSON.parse(readFileSync(built, 'utf8'))).toEqual(parsed.toJSON());
    }
  });
});
