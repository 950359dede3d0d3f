/**
 * A small MessagePack decoder written from the spec (github.com/msgpack/msgpack/blob/master/spec.md),
 * independent of msgpackr, used to check what tdcollect streams. Decodes consecutive top-level values.
 * Covers nil, bool, int/uint 8..64, float 32/64, str, bin, array, map; ext is an error.
 */
export function decodeAll(buf: Uint8Array): unknown[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  const need = (n: number) => { if (p + n > buf.length) throw new Error(`truncated at ${p}`); };
  const str = (n: number) => { need(n); const s = new TextDecoder().decode(buf.subarray(p, p + n)); p += n; return s; };
  const arr = (n: number): unknown[] => { const a: unknown[] = []; for (let i = 0; i < n; i++) a.push(one()); return a; };
  const map = (n: number): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) { const k = one(); if (typeof k !== 'string') throw new Error('non-string key'); o[k] = one(); }
    return o;
  };
  function one(): unknown {
    need(1);
    const b = buf[p++];
    if (b <= 0x7f) return b;                       // positive fixint
    if (b >= 0xe0) return b - 0x100;               // negative fixint
    if ((b & 0xf0) === 0x80) return map(b & 0x0f); // fixmap
    if ((b & 0xf0) === 0x90) return arr(b & 0x0f); // fixarray
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f); // fixstr
    let v: number;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: need(1); v = buf[p]; p += 1; need(v); p += v; return buf.subarray(p - v, p);
      case 0xca: need(4); v = dv.getFloat32(p); p += 4; return v;
      case 0xcb: need(8); v = dv.getFloat64(p); p += 8; return v;
      case 0xcc: need(1); return buf[p++];
      case 0xcd: need(2); v = dv.getUint16(p); p += 2; return v;
      case 0xce: need(4); v = dv.getUint32(p); p += 4; return v;
      case 0xcf: need(8); v = Number(dv.getBigUint64(p)); p += 8; return v;
      case 0xd0: need(1); v = dv.getInt8(p); p += 1; return v;
      case 0xd1: need(2); v = dv.getInt16(p); p += 2; return v;
      case 0xd2: need(4); v = dv.getInt32(p); p += 4; return v;
      case 0xd3: need(8); v = Number(dv.getBigInt64(p)); p += 8; return v;
      case 0xd9: need(1); v = buf[p]; p += 1; return str(v);
      case 0xda: need(2); v = dv.getUint16(p); p += 2; return str(v);
      case 0xdb: need(4); v = dv.getUint32(p); p += 4; return str(v);
      case 0xdc: need(2); v = dv.getUint16(p); p += 2; return arr(v);
      case 0xdd: need(4); v = dv.getUint32(p); p += 4; return arr(v);
      case 0xde: need(2); v = dv.getUint16(p); p += 2; return map(v);
      case 0xdf: need(4); v = dv.getUint32(p); p += 4; return map(v);
      default: throw new Error(`unsupported type byte 0x${b.toString(16)} at ${p - 1}`);
    }
  }
  const out: unknown[] = [];
  while (p < buf.length) out.push(one());
  return out;
}
