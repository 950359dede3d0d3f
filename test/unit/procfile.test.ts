/**
 * The one /proc reader (src/collector/procfile.ts) at its boundaries, on files whose bytes are known: pid
 * lists longer than the reader's first 64 KiB buffer, with the 64 KiB mark falling between two pids, on a
 * separator, and inside a number; pids that wrapped past pid_max (a smaller pid after larger ones), 5- and
 * 7-digit pids. The real /proc seq_files (children lists of thousands of processes) are read in
 * test/integration/freeze-children.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DENIED, GONE, ProcFile, statusNumbers } from '../../src/collector/procfile.js';
import { readChildren, readStat } from '../../src/collector/freeze/procread.js';
import { effectiveCaps, hasCap } from '../../src/collector/caps.js';

const tmp = mkdtempSync(join(tmpdir(), 'tdc-procfile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A children list as the kernel prints it: "pid pid ... pid " (each pid followed by one space). */
const list = (pids: number[]): string => pids.map((p) => `${p} `).join('');

/** pids counting up from `from`, wrapping from pid_max-1 to 300 as the kernel's allocator does. */
function wrapped(from: number, count: number, pidMax: number): number[] {
  const out: number[] = [];
  let p = from;
  for (let i = 0; i < count; i++) {
    out.push(p);
    p = p + 1 >= pidMax ? 300 : p + 1;
  }
  return out;
}

/** The longest prefix of `pids` whose list fits in `bytes`, then pids of `width` digits to reach it exactly. */
function listOfLength(bytes: number, start: number[]): { text: string; pids: number[] } {
  const pids: number[] = [];
  let len = 0;
  for (const p of start) {
    const w = String(p).length + 1;
    if (len + w > bytes) break;
    pids.push(p);
    len += w;
  }
  // fill the remainder with one pid of the right width (2..8 bytes), so the length is exact
  let rest = bytes - len;
  while (rest > 0) {
    const w = rest > 8 ? 6 : rest;
    if (w === 1) { pids[pids.length - 1] = pids[pids.length - 1] * 10 + 1; rest -= 1; continue; }
    const p = Number('1'.padEnd(w - 1, '0'));
    pids.push(p);
    rest -= w;
  }
  const text = list(pids);
  expect(text.length).toBe(bytes);
  return { text, pids };
}

describe('ProcFile', () => {
  it('reads a pid list whole at every length around 64 KiB and far beyond it (the boundary in a number, on a separator, between pids)', () => {
    const r = new ProcFile();
    const source = wrapped(32000, 60000, 32768);
    for (const bytes of [65535, 65536, 65537, 65538, 65536 + 3, 2 * 65536 + 5, 200_000, 6 * 32768 + 1]) {
      const { text, pids } = listOfLength(bytes, source);
      const f = join(tmp, `children-${bytes}`);
      writeFileSync(f, text);
      for (const kind of ['records', 'single'] as const) {
        expect(r.read(f, kind)).toBe(bytes);
        const got: number[] = [];
        r.numbers(got);
        expect(got).toEqual(pids);
      }
    }
  });

  it('keeps wrapped pids in list order and never parses half a number', () => {
    // 12,000 five-digit pids counting up to 32767, then wrapped to 300 and up: more than 64 KiB
    const pids = wrapped(20769, 12000 + 2000, 32768);
    expect(pids.indexOf(300)).toBeGreaterThan(11000);
    const f = join(tmp, 'children-wrapped');
    writeFileSync(f, list(pids));
    expect(list(pids).length).toBeGreaterThan(65536);
    const out: number[] = [];
    // the freezer's reader (the path that once cut lists at 64 KiB)
    readChildren(0, 0, out); // /proc/0 does not exist: nothing, no throw
    expect(out).toEqual([]);
    const r = new ProcFile();
    expect(r.readPids(f, out)).toBe(list(pids).length);
    expect(out).toEqual(pids);
    // every pid is a whole one: none of the 1- and 2-digit fragments a cut would leave
    expect(out.every((p) => p >= 300)).toBe(true);
  });

  it('reads 7-digit pids (pid_max 4,194,304) past the buffer', () => {
    const pids = wrapped(4_190_000, 20000, 4_194_304);
    const f = join(tmp, 'children-7');
    writeFileSync(f, list(pids));
    const out: number[] = [];
    new ProcFile().readPids(f, out);
    expect(out).toEqual(pids);
  });

  it('grows once and still reads small files after a big one', () => {
    const r = new ProcFile();
    const big = join(tmp, 'big');
    writeFileSync(big, 'x'.repeat(300_000));
    expect(r.read(big)).toBe(300_000);
    const stat = join(tmp, 'stat');
    writeFileSync(stat, '42 (a) b) S 7 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0\n');
    expect(readStat(stat)).toEqual({ state: 'S', ppid: 7, numThreads: 1, startTime: 555 });
    expect(r.read(stat)).toBeGreaterThan(0);
    expect(r.text().startsWith('42 (a) b)')).toBe(true);
  });

  it('says GONE for a missing file and reads an empty one as empty', () => {
    const r = new ProcFile();
    expect(r.read(join(tmp, 'missing'))).toBe(GONE);
    expect(r.read('/proc/0/stat')).toBe(GONE);
    const empty = join(tmp, 'empty');
    writeFileSync(empty, '');
    expect(r.read(empty, 'records')).toBe(0);
    expect(DENIED).not.toBe(GONE);
  });

  it('reads this process\'s /proc files as the kernel hands them out', () => {
    const r = new ProcFile();
    const n = r.read(`/proc/${process.pid}/status`);
    expect(n).toBeGreaterThan(100);
    expect(r.text()).toContain(`\nPid:\t${process.pid}\n`);
    expect(r.read(`/proc/${process.pid}/task/${process.pid}/children`, 'records')).toBeGreaterThanOrEqual(0);
  });
});

describe('statusNumbers', () => {
  const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
  const of = (s: string, key: string): number[] | undefined => statusNumbers(bytes(s), s.length, key);

  it('reads the decimals of a named line, in order, whatever the separators', () => {
    // NSpid: tab-separated, one pid per pid namespace, outermost first
    expect(of('Name:\tsh\nTgid:\t1234\nNSpid:\t1234\t7\t1\nNSpgid:\t1\n', 'NSpid')).toEqual([1234, 7, 1]);
    // Groups: space-separated with a trailing space, as the kernel prints it
    expect(of('Uid:\t0\t0\t0\t0\nGroups:\t4 24 27 4194303 \nNStgid:\t9\n', 'Groups')).toEqual([4, 24, 27, 4194303]);
    // an empty Groups line (no supplementary groups) is an empty list, not a missing one
    expect(of('Gid:\t0\t0\t0\t0\nGroups:\t\nNStgid:\t9\n', 'Groups')).toEqual([]);
    // the last line without its newline
    expect(of('Name:\tsh\nNSpid:\t42', 'NSpid')).toEqual([42]);
    // the first line of the file
    expect(of('Tgid:\t77\nPid:\t78\n', 'Tgid')).toEqual([77]);
  });

  it('matches whole keys at the start of a line only', () => {
    // "NSpid" must not match "NSpgid", nor "Pid" match "PPid" or "TracerPid"; a value never matches a key
    expect(of('NSpgid:\t5\nPPid:\t1\nTracerPid:\t0\nName:\tPid:\nPid:\t3\n', 'Pid')).toEqual([3]);
    expect(of('NSpgid:\t5\n', 'NSpid')).toBeUndefined();
    expect(of('Name:\tsh\n', 'NSpid')).toBeUndefined();
    expect(of('', 'NSpid')).toBeUndefined();
  });

  it('reads a live status file through ProcFile as the text parser does', () => {
    const pf = new ProcFile(4096);
    expect(pf.read(`/proc/${process.pid}/status`)).toBeGreaterThan(0);
    const text = pf.text();
    const line = (k: string): number[] => text.split('\n').find((l) => l.startsWith(`${k}:`))!
      .slice(k.length + 1).trim().split(/\s+/).filter(Boolean).map(Number);
    expect(pf.keyNumbers('NSpid')).toEqual(line('NSpid'));
    expect(pf.keyNumbers('Groups')).toEqual(line('Groups'));
    expect(pf.keyNumbers('Tgid')).toEqual([process.pid]);
  });
});

describe('capability masks (keyMask64, caps.ts)', () => {
  it('reads a status line\'s hex mask whole, and only the line whose key it is', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tdc-caps-'));
    try {
      const path = join(dir, 'status');
      // a key that ends another key (XCapEff) and a key that starts it (CapEffX) are not CapEff
      writeFileSync(path, 'Name:\tx\nXCapEff:\tffffffffffffffff\nCapEffX:\t1\nCapEff:\t000001ffabcdef01\nCapBnd:\t0\n');
      const f = new ProcFile(4096);
      expect(f.read(path)).toBeGreaterThan(0);
      expect(f.keyMask64('CapEff')).toEqual([0xabcdef01, 0x1ff]);
      expect(f.keyMask64('CapBnd')).toEqual([0, 0]);
      expect(f.keyMask64('CapAmb')).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('effectiveCaps is CapEff of /proc/self/status, and hasCap its bits', () => {
    const text = readFileSync('/proc/self/status', 'latin1');
    const want = BigInt(`0x${/\nCapEff:\s*([0-9a-f]+)/.exec(text)![1]}`);
    const got = effectiveCaps();
    expect((BigInt(got[1]) << 32n) | BigInt(got[0])).toBe(want);
    for (let bit = 0; bit < 64; bit++) expect(hasCap(got, bit), `bit ${bit}`).toBe(((want >> BigInt(bit)) & 1n) === 1n);
  });
});
