/**
 * Fuzzing the archive and CRIU-directory readers. Every hostile or damaged input must end in either a
 * Snapshot or ONE ImageError (one line naming the archive or file, and the offset), with nothing written to
 * disk and nothing hung (the test timeout bounds every case): a truncated tar, a header whose size runs past
 * the data, a bad header checksum, gzip and zstd bombs (inflation capped per member, in total and by ratio),
 * path traversal and absolute member names, symlink and hard-link members, duplicate members, and seeded
 * random byte flips and truncations of tar, tar.gz and tar.zst archives and of a CRIU directory's images.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Snapshot, Task } from '../../src/collector/task.js';
import { ImageError } from '../../src/errors.js';
import { prng } from '../helpers/random.js';
import { encodeImages, readImages, readImageSet } from '../../src/image/index.js';

const task = (pid: number, tgid: number, ppid: number, extra: Partial<Task> = {}): Task => ({
  pid, tgid, ppid, tpid: 0, sid: 100, pgid: 100, state: 'S', comm: `t${pid}`,
  uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0,
  capInh: [0, 0], capPrm: [0xffffffff, 0x1ff], capEff: [0xffffffff, 0x1ff], capBnd: [0xffffffff, 0x1ff],
  ...extra,
});

const snap: Snapshot = {
  info: {
    formatVersion: 1, tool: 'tdcollect 0.1.0', source: 'procfs', freeze: 'ptrace', live: false, kernel: '6.18.0',
    hostname: 'h', root: 100, createdAt: 1764151138123, processes: 3, threads: 4, timings: {}, missing: [],
  },
  tasks: [
    task(100, 100, 1, { groups: [0, 27], sigBlk: [0x200, 0], futexRla: 0x7ffff7d8ea20, futexRlaLen: 24 }),
    task(101, 100, 1),
    task(102, 102, 100, { state: 'T' }),
    task(103, 103, 100, { state: 'Z', exitCode: 9 }),
  ],
};

/** One ustar header block (512 bytes) with a correct checksum unless `badSum`. */
function tarHeader(name: string, size: number, type = '0', opts: { linkname?: string; badSum?: boolean } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8'); // name
  h.write('0000644\0', 100, 'latin1'); // mode
  h.write('0000000\0', 108, 'latin1'); // uid
  h.write('0000000\0', 116, 'latin1'); // gid
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1'); // size, octal
  h.write('00000000000\0', 136, 'latin1'); // mtime
  h.write('        ', 148, 'latin1'); // checksum field counts as spaces
  h.write(type, 156, 'latin1'); // typeflag
  if (opts.linkname) h.write(opts.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1'); // magic
  h.write('00', 263, 'latin1'); // version
  let sum = 0;
  for (const b of h) sum += b;
  if (opts.badSum) sum += 1;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

/** A tar of members [name, bytes] (regular files), with the two zero blocks at the end. */
function tar(members: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, data] of members) parts.push(tarHeader(name, data.length), pad(data));
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

let work: string;
let criuMembers: [string, Buffer][];
let good: Buffer;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), `tdc-archive-fuzz-${process.pid}-`));
  // tdcollect's CRIU images without tasks.img: a CRIU image set, as a container engine lays it out
  criuMembers = [...encodeImages(snap)].filter(([n]) => n !== 'tasks.img').map(([n, b]) => [`checkpoint/${n}`, b]);
  criuMembers.push(['config.dump', Buffer.from(JSON.stringify({ id: 'abc', name: 'ctr', runtime: 'crun', createdTime: '2026-12-01T00:00:00Z' }))]);
  criuMembers.push(['spec.dump', Buffer.from(JSON.stringify({ annotations: { 'io.container.manager': 'libpod' } }))]);
  good = tar(criuMembers);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
/** Write `bytes` as an archive, read it; the outcome is a Snapshot or an ImageError (anything else fails). */
async function outcome(bytes: Buffer, limits?: Parameters<typeof readImageSet>[1]): Promise<'ok' | ImageError> {
  const sub = join(work, `case-${n++}`);
  mkdirSync(sub);
  const path = join(sub, 'a.tar');
  writeFileSync(path, bytes);
  try {
    await readImageSet(path, limits);
    return 'ok';
  } catch (e) {
    if (!(e instanceof ImageError)) throw new Error(`not an ImageError: ${(e as Error)?.stack ?? String(e)}`);
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.file.startsWith(path)).toBe(true);
    return e;
  } finally {
    // nothing was written beside the archive
    expect(readdirSync(sub)).toEqual(['a.tar']);
    rmSync(sub, { recursive: true, force: true });
  }
}

const zstd = (b: Buffer): Buffer => execFileSync('zstd', ['-q', '-c', '-3'], { input: b, maxBuffer: 1 << 28 });

describe('archives: each hostile input is one clear ImageError', () => {
  it('a good archive reads, in each compression', async () => {
    for (const bytes of [good, gzipSync(good), zstd(good)]) expect(await outcome(bytes)).toBe('ok');
  });

  it('truncated tar: every cut is an error or (cut between members) a missing image, never a hang', async () => {
    for (let cut = 0; cut < good.length - 1024; cut += 97) {
      const r = await outcome(good.subarray(0, cut));
      expect(r, `cut at ${cut}`).toBeInstanceOf(ImageError);
    }
    const r = await outcome(good.subarray(0, 700)) as ImageError;
    expect(r.message).toMatch(/premature end of archive|not a tar/);
  });

  it('a header whose size runs past the data', async () => {
    const data = Buffer.alloc(100, 1);
    const bytes = Buffer.concat([tarHeader('checkpoint/pstree.img', 1 << 20), pad(data)]);
    const r = await outcome(bytes) as ImageError;
    expect(r.reason).toBe('eof');
    expect(r.message).toMatch(/a\.tar: offset \d+: premature end of archive/);
  });

  it('a bad header checksum', async () => {
    const bytes = Buffer.from(good);
    tarHeader('checkpoint/inventory.img', 10, '0', { badSum: true }).copy(bytes, 0);
    const r = await outcome(bytes) as ImageError;
    expect(r.reason).toBe('corrupt');
    expect(r.message).toMatch(/a\.tar: offset \d+: tar: Invalid tar header/);
  });

  it('gzip and zstd bombs stop at the ratio limit, and a kept member at its size limit', async () => {
    const zeros = Buffer.alloc(96 << 20);
    const bomb = Buffer.concat([tarHeader('rootfs.bin', zeros.length), zeros, Buffer.alloc(1024)]);
    for (const [label, bytes] of [['gzip', gzipSync(bomb, { level: 9 })], ['zstd', zstd(bomb)]] as const) {
      const r = await outcome(bytes) as ImageError;
      expect(r, label).toBeInstanceOf(ImageError);
      expect(r.message, label).toMatch(/expands more than 500:1 .*decompression bomb/);
    }
    // total and per-member caps, lowered
    let r = await outcome(gzipSync(good), { limits: { maxTotal: 4096 } }) as ImageError;
    expect(r.message).toMatch(/inflates to more than 4096 bytes/);
    r = await outcome(zstd(good), { limits: { maxMember: 16 } }) as ImageError;
    expect(r.message).toMatch(/checkpoint\/\S+\.img: offset \d+: member of \d+ bytes exceeds the 16-byte limit/);
  });

  it('path traversal, absolute names, symlinks, hard links, devices and duplicates are refused', async () => {
    const inv = criuMembers.find(([name]) => name.endsWith('inventory.img'))![1];
    const cases: [Buffer, RegExp][] = [
      [tar([['../evil.img', inv]]), /:\.\.\/evil\.img: offset \d+: member name has a '\.\.' component \(path traversal\)/],
      [tar([['checkpoint/../../evil.img', inv]]), /path traversal/],
      [tar([['/etc/evil.img', inv]]), /:\/etc\/evil\.img: offset \d+: member name is an absolute path/],
      [Buffer.concat([tarHeader('checkpoint/pstree.img', 0, '2', { linkname: '/etc/passwd' }), Buffer.alloc(1024)]),
        /is a symlink to '\/etc\/passwd': a checkpoint archive holds regular files only/],
      [Buffer.concat([tarHeader('checkpoint/pstree.img', 0, '1', { linkname: 'checkpoint/inventory.img' }), Buffer.alloc(1024)]),
        /is a hard link to 'checkpoint\/inventory\.img'/],
      [Buffer.concat([tarHeader('checkpoint/x', 0, '3'), Buffer.alloc(1024)]), /is a character-device member/],
      [tar([...criuMembers, ['./checkpoint//inventory.img', inv]]), /member 'checkpoint\/inventory\.img' appears twice/],
    ];
    for (const [bytes, want] of cases) {
      for (const b of [bytes, gzipSync(bytes)]) {
        const r = await outcome(b) as ImageError;
        expect(r, String(want)).toBeInstanceOf(ImageError);
        expect(r.message).toMatch(want);
      }
    }
    expect(existsSync(join(work, 'evil.img'))).toBe(false);
    expect(existsSync(join(tmpdir(), 'evil.img'))).toBe(false);
  });

  it('not an archive, and an archive with no images', async () => {
    let r = await outcome(Buffer.from('hello, not a tar at all')) as ImageError;
    expect(r.message).toMatch(/a\.tar: offset 0: not a tar, tar\.gz or tar\.zst archive/);
    r = await outcome(tar([['config.dump', Buffer.from('{}')]])) as ImageError;
    expect(r.message).toMatch(/holds no CRIU or tdcollect images/);
    r = await outcome(tar([['checkpoint/inventory.img', Buffer.from('xx')], ['checkpoint/pstree.img', Buffer.from('yy')]])) as ImageError;
    expect(r.message).toMatch(/a\.tar:checkpoint\/inventory\.img: offset 0: premature end of file/);
  });

  it('seeded random flips and truncations of tar, tar.gz and tar.zst', async () => {
    const rnd = prng(11);
    const seen = { ok: 0, error: 0 };
    for (const base of [good, gzipSync(good), zstd(good)]) {
      for (let i = 0; i < 60; i++) {
        const b = Buffer.from(base);
        const flips = 1 + Math.floor(rnd() * 4);
        for (let k = 0; k < flips; k++) b[Math.floor(rnd() * b.length)] ^= 1 + Math.floor(rnd() * 255);
        const cut = rnd() < 0.3 ? Math.floor(rnd() * b.length) : b.length;
        const r = await outcome(b.subarray(0, cut));
        seen[r === 'ok' ? 'ok' : 'error']++;
      }
    }
    expect(seen.error).toBeGreaterThan(0);
  });
});

describe('CRIU directories: unknown files ignored, malformed known images named with their offset', () => {
  it('random damage to pstree, core and inventory is a Snapshot or one ImageError naming the file', () => {
    const dir = join(work, 'criu-dir');
    mkdirSync(dir);
    const files = [...encodeImages(snap)].filter(([name]) => name !== 'tasks.img');
    for (const [name, b] of files) writeFileSync(join(dir, name), b);
    // files CRIU writes that tdcollect does not read: ignored, whatever they hold
    writeFileSync(join(dir, 'pages-1.img'), Buffer.alloc(8192, 0xff));
    writeFileSync(join(dir, 'mm-100.img'), Buffer.from('garbage'));
    writeFileSync(join(dir, 'stats-dump'), Buffer.from([1, 2, 3]));
    expect(readImages(dir).tasks.map((t) => t.pid)).toEqual([100, 101, 102, 103]);
    const rnd = prng(1111);
    let errors = 0;
    for (let i = 0; i < 300; i++) {
      const [name, orig] = files[Math.floor(rnd() * files.length)];
      const b = Buffer.from(orig);
      if (rnd() < 0.5) b[Math.floor(rnd() * b.length)] ^= 1 + Math.floor(rnd() * 255);
      const bytes = rnd() < 0.4 ? b.subarray(0, Math.floor(rnd() * b.length)) : b;
      writeFileSync(join(dir, name), bytes);
      try {
        readImages(dir);
      } catch (e) {
        if (!(e instanceof ImageError)) throw new Error(`${name} case ${i}: not an ImageError: ${(e as Error)?.stack}`);
        expect(e.message.split('\n')).toHaveLength(1);
        expect(e.message, e.message).toMatch(new RegExp(`^${dir}/[a-z]+(-\\d+)?\\.img: `));
        errors++;
      }
      writeFileSync(join(dir, name), orig);
    }
    expect(errors).toBeGreaterThan(100);
  });
});
