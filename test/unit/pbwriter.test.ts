/**
 * src/image/pbwriter.ts writes what protobufjs/minimal's Writer writes, method by method: fixed vectors
 * commented byte by byte, then seeded random sequences of every method (nested parts among them, short and
 * long) written by both and compared.
 */
import { describe, expect, it } from 'vitest';
import $pb from 'protobufjs/minimal.js';
import { Writer } from '../../src/image/pbwriter.js';
import { prng } from '../helpers/random.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('pbwriter', () => {
  it('varints, zigzag, fixed widths, strings and bytes as protobuf encodes them', () => {
    const w = Writer.create();
    w.uint32(1);              // 01
    w.uint32(300);            // ac 02              (300 = 0b10_0101100: 0x2c|0x80, 0x02)
    w.uint32(-1);             // ff ff ff ff 0f     (taken as 0xffffffff)
    w.int32(-2);              // fe ff ff ff ff ff ff ff ff 01  (a negative int32 is a 64-bit varint)
    w.sint32(-3);             // 05                 (zigzag: -3 -> 5)
    w.uint64({ low: 0, high: 1 });   // 80 80 80 80 10  (2^32)
    w.uint64(2 ** 40 + 3);    // 83 80 80 80 80 20
    w.fixed64(0x0102030405);  // 05 04 03 02 01 00 00 00  (low word, then high word, little-endian)
    w.bool(true);             // 01
    w.double(1.5);            // 00 00 00 00 00 00 f8 3f
    w.string('é');            // 02 c3 a9           (length in UTF-8 bytes)
    w.bytes(new Uint8Array([9, 8]));  // 02 09 08
    w.string('');             // 00
    expect(hex(w.finish())).toBe([
      '01', 'ac02', 'ffffffff0f', 'feffffffffffffffff01', '05', '8080808010', '838080808020',
      '0504030201000000', '01', '000000000000f83f', '02c3a9', '020908', '00',
    ].join(''));
  });

  it('a nested part: its length before it, one byte under 128, more when longer', () => {
    const w = Writer.create();
    w.uint32(10).fork().uint32(8).uint32(150).ldelim();
    // 0a (field 1, length-delimited) | 03 (length) | 08 96 01 (field 1 = 150)
    expect(hex(w.finish())).toBe('0a03089601');
    const long = 'x'.repeat(200);
    w.uint32(10).fork().uint32(18).string(long).ldelim().uint32(24).uint32(7);
    // 0a | cb 01 (203 = 1 + 2 + 200) | 12 c8 01 'x'*200 | 18 07  (the body moved up by the length's second byte)
    expect(hex(w.finish())).toBe(`0acb0112c801${'78'.repeat(200)}1807`);
  });

  it('len counts every byte written, nested parts and their lengths too', () => {
    const w = Writer.create();
    w.uint32(300);
    expect(w.len).toBe(2);
    w.fork().uint32(1);
    expect(w.len).toBe(4);
    w.ldelim();
    expect(w.len).toBe(4);
  });

  it('random sequences of every method: the same bytes as protobufjs', () => {
    const rnd = prng(0x7d3c);
    const int = (n: number) => Math.floor(rnd() * n);
    const u32 = () => [0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1][int(9)] ?? int(2 ** 32);
    const s32 = () => (rnd() < 0.5 ? -1 : 1) * int(2 ** 31);
    const n64 = () => [0, 1, 2 ** 32, 2 ** 53 - 1, -1, -(2 ** 40), int(2 ** 52)][int(7)];
    const pair = () => ({ low: int(2 ** 32), high: int(2 ** 32), unsigned: true });
    const str = () => ['', 'sleep', 'é€😀', 'y'.repeat(int(300))][int(4)];
    for (let round = 0; round < 300; round++) {
      const ours = Writer.create();
      const theirs = $pb.Writer.create();
      let depth = 0;
      const steps = 1 + int(60);
      for (let i = 0; i < steps; i++) {
        const k = int(14);
        const both = (f: (w: any) => void) => { f(ours); f(theirs); };
        if (k === 0) { const v = u32(); both((w) => w.uint32(v)); }
        else if (k === 1) { const v = s32(); both((w) => w.int32(v)); }
        else if (k === 2) { const v = s32(); both((w) => w.sint32(v)); }
        else if (k === 3) { const v = n64(); both((w) => w.uint64(v)); }
        else if (k === 4) { const v = pair(); both((w) => w.uint64(v)); }
        else if (k === 5) { const v = pair(); both((w) => w.fixed64(v)); }
        else if (k === 6) { const v = n64(); both((w) => w.sint64(v)); }
        else if (k === 7) { const v = rnd() * 1e6 - 5e5; both((w) => w.double(v)); }
        else if (k === 8) { const v = rnd() < 0.5; both((w) => w.bool(v)); }
        else if (k === 9) { const v = str(); both((w) => w.string(v)); }
        else if (k === 10) { const v = Buffer.alloc(int(200), int(256)); both((w) => w.bytes(v)); }
        else if (k === 11) { const v = u32(); both((w) => w.fixed32(v)); }
        else if (k === 12 && depth < 4) { depth++; both((w) => w.fork()); }
        else if (k === 13 && depth > 0) { depth--; both((w) => w.ldelim()); }
        expect(ours.len, `round ${round} step ${i}`).toBe(theirs.len);
      }
      while (depth-- > 0) { ours.ldelim(); theirs.ldelim(); }
      expect(hex(ours.finish()), `round ${round}`).toBe(hex(theirs.finish()));
    }
  });
});
