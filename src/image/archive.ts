/**
 * Checkpoint archives as a set of named files, read as one stream: no extraction to disk.
 *
 * An archive is a tar file, uncompressed, gzip or zstd (told apart by their magic bytes, not by the file
 * name). Container engines lay it out as
 *
 *   checkpoint/            CRIU's images (inventory.img, pstree.img, core-TID.img, ids-PID.img, pages-N.img, ...)
 *   config.dump            engine metadata, JSON (podman: id, name, rootfsImageName, runtime, createdTime)
 *   spec.dump              the container's OCI runtime spec, JSON (annotations name the engine: CRI-O, ...)
 *   network.status, stats-dump, rootfs-diff.tar, deleted.files, ...
 *
 * This layer only hands out files: the members a caller asks to keep, as Buffers, plus the names of every
 * regular member. It never interprets image bytes. Every member is checked as it streams past:
 *   - names are relative, without `..` components, unique after normalisation ("./a", "a" and "a//" are one);
 *   - only regular files and directories are accepted: a symlink, hard link, device or FIFO member is refused;
 *   - inflation is capped per kept member, in total, and by ratio (compressed bytes in vs bytes out), so a
 *     zstd or gzip bomb stops early with an error instead of filling memory;
 *   - a truncated stream, a header whose size runs past the data, or a bad header checksum is an error.
 * Every problem is an ImageError naming the archive (and the member) and the byte offset in the tar stream.
 *
 * tar-stream and fzstd are loaded only when an archive is read.
 */
import { createReadStream, openSync, readSync, closeSync, fstatSync, constants } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { ImageError } from '../errors.js';

export type Compression = 'none' | 'gzip' | 'zstd';

export interface ArchiveLimits {
  /** largest kept member, inflated (default 256 MiB) */
  maxMember: number;
  /** most bytes inflated from the whole archive, kept or not (default 8 GiB) */
  maxTotal: number;
  /** largest inflated/compressed ratio once more than `ratioAfter` bytes are out (default 500) */
  maxRatio: number;
  /** bytes inflated before the ratio is enforced (default 64 MiB) */
  ratioAfter: number;
  /** most members (default 1,000,000) */
  maxMembers: number;
}

export const DEFAULT_LIMITS: Readonly<ArchiveLimits> = {
  maxMember: 256 << 20,
  maxTotal: 8 * 1024 * 1024 * 1024,
  maxRatio: 500,
  ratioAfter: 64 << 20,
  maxMembers: 1_000_000,
};

export interface ArchiveContents {
  path: string;
  compression: Compression;
  /** kept members by normalised name */
  files: Map<string, Buffer>;
  /** every regular member's normalised name, in archive order */
  names: string[];
  /** bytes of tar stream (after decompression) */
  tarBytes: number;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Kind of file at `path` by its first bytes: gzip, zstd, tar, or undefined (not an archive). */
export function sniffArchive(path: string): Compression | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return undefined;
    const head = Buffer.alloc(512);
    const n = readSync(fd, head, 0, 512, 0);
    if (n >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) return 'gzip';
    if (n >= 4 && ZSTD_MAGIC.every((b, i) => head[i] === b)) return 'zstd';
    // POSIX ustar and GNU tar: "ustar" at offset 257
    if (n >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'none';
    return undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * A member name made canonical: components split on '/', empty and '.' components dropped. Refused (with a
 * reason) when absolute, when a component is '..', or when it holds a NUL byte.
 */
export function normaliseMemberName(name: string): { name: string } | { refused: string } {
  if (name.includes('\0')) return { refused: 'holds a NUL byte' };
  if (name.startsWith('/')) return { refused: 'is an absolute path' };
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') return { refused: "has a '..' component (path traversal)" };
    parts.push(p);
  }
  if (parts.length === 0) return { refused: 'is empty' };
  return { name: parts.join('/') };
}

type Keep = (name: string) => boolean;

/**
 * Stream `path` through the decompressor its magic names and a tar reader, keeping the members `keep`
 * accepts. Never writes anything; rejects with an ImageError on the first problem.
 */
export async function readArchive(path: string, keep: Keep, limits: Partial<ArchiveLimits> = {}): Promise<ArchiveContents> {
  const lim: ArchiveLimits = { ...DEFAULT_LIMITS, ...limits };
  const compression = sniffArchive(path);
  if (compression === undefined) throw new ImageError(path, 0, 'corrupt', 'not a tar, tar.gz or tar.zst archive');
  // tar-stream is a CommonJS module: Node's loader gives its exports as named bindings, a bundle as `default`
  const tarStream = await import('tar-stream');
  const extract = tarStream.extract ?? (tarStream as unknown as { default: typeof tarStream }).default.extract;

  let compressedIn = 0;
  let inflated = 0;
  let tarBytes = 0;
  const account = (n: number): void => {
    inflated += n;
    if (inflated > lim.maxTotal) {
      throw new ImageError(path, tarBytes, 'corrupt', `inflates to more than ${lim.maxTotal} bytes (the limit)`);
    }
    if (inflated > lim.ratioAfter && inflated > lim.maxRatio * Math.max(1, compressedIn)) {
      throw new ImageError(path, tarBytes, 'corrupt',
        `expands more than ${lim.maxRatio}:1 (${compressedIn} bytes in, ${inflated} out): a decompression bomb?`);
    }
  };

  const source = createReadStream(path, { highWaterMark: 1 << 16 });
  const counterIn = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) { compressedIn += chunk.length; cb(null, chunk); },
  });
  // the inflating stage(s): each output chunk is accounted for before it goes on
  const stages: Transform[] = [];
  if (compression === 'gzip') {
    const zlib = await import('node:zlib');
    stages.push(zlib.createGunzip({ chunkSize: 1 << 16 }), new Transform({
      transform(chunk: Buffer, _e, cb: TransformCallback) {
        try { account(chunk.length); } catch (e) { cb(e as Error); return; }
        cb(null, chunk);
      },
    }));
  } else if (compression === 'zstd') {
    const { Decompress } = await import('fzstd');
    let out: Transform | undefined;
    // fzstd calls back once per block (at most 128 KiB): a bomb is stopped within one block of the limit
    const zstd = new Decompress((data) => {
      account(data.length);
      out!.push(Buffer.from(data.buffer, data.byteOffset, data.length));
    });
    out = new Transform({
      transform(chunk: Buffer, _e, cb: TransformCallback) {
        try { zstd.push(chunk); } catch (e) { cb(wrapDecompressError(path, tarBytes, e)); return; }
        cb();
      },
      flush(cb: TransformCallback) {
        try { zstd.push(new Uint8Array(0), true); } catch (e) { cb(wrapDecompressError(path, tarBytes, e)); return; }
        cb();
      },
    });
    stages.push(out);
  } else {
    stages.push(new Transform({
      transform(chunk: Buffer, _e, cb: TransformCallback) {
        try { account(chunk.length); } catch (e) { cb(e as Error); return; }
        cb(null, chunk);
      },
    }));
  }
  const tarCount = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) { tarBytes += chunk.length; cb(null, chunk); },
  });

  const files = new Map<string, Buffer>();
  const names: string[] = [];
  const seen = new Set<string>();
  const ex = extract();

  return await new Promise<ArchiveContents>((resolve, reject) => {
    let failed = false;
    const streams = [source, counterIn, ...stages, tarCount];
    const fail = (e: unknown): void => {
      if (failed) return;
      failed = true;
      for (const s of streams) s.destroy();
      ex.destroy();
      reject(toImageError(path, tarBytes, e));
    };
    for (const s of streams) s.on('error', fail);
    ex.on('error', fail);
    let tail: NodeJS.ReadableStream = source.pipe(counterIn);
    for (const s of stages) tail = tail.pipe(s);
    tail.pipe(tarCount).pipe(ex as unknown as NodeJS.WritableStream);

    let members = 0;
    ex.on('entry', (header, stream, next) => {
      if (failed) { stream.resume(); return; }
      const raw = header.name;
      const bad = (detail: string): void => {
        stream.resume();
        fail(new ImageError(`${path}:${raw}`, tarBytes, 'corrupt', detail));
      };
      if (++members > lim.maxMembers) return bad(`more than ${lim.maxMembers} members`);
      const n = normaliseMemberName(raw);
      if ('refused' in n) return bad(`member name ${n.refused}`);
      const type = header.type ?? 'file';
      if (type === 'directory') { stream.on('end', next); stream.resume(); return; }
      if (type !== 'file' && type !== 'contiguous-file') {
        const what = type === 'symlink' ? `a symlink to '${header.linkname ?? ''}'`
          : type === 'link' ? `a hard link to '${header.linkname ?? ''}'` : `a ${type} member`;
        return bad(`is ${what}: a checkpoint archive holds regular files only`);
      }
      if (seen.has(n.name)) return bad(`member '${n.name}' appears twice`);
      seen.add(n.name);
      names.push(n.name);
      if (!keep(n.name)) { stream.on('end', next); stream.resume(); return; }
      if (header.size !== undefined && header.size > lim.maxMember) {
        return bad(`member of ${header.size} bytes exceeds the ${lim.maxMember}-byte limit for an image file`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (d: unknown) => {
        const c = d as Buffer;
        size += c.length;
        if (size > lim.maxMember) { bad(`member exceeds the ${lim.maxMember}-byte limit for an image file`); return; }
        chunks.push(c);
      });
      stream.on('end', () => {
        if (failed) return;
        files.set(n.name, Buffer.concat(chunks, size));
        next();
      });
      stream.on('error', fail);
    });
    ex.on('finish', () => {
      if (!failed) resolve({ path, compression, files, names, tarBytes });
    });
  });
}

function wrapDecompressError(path: string, at: number, e: unknown): ImageError {
  if (e instanceof ImageError) return e;
  const msg = (e as Error)?.message ?? String(e);
  return new ImageError(path, at, /EOF|end/i.test(msg) ? 'eof' : 'corrupt', `zstd: ${msg}`);
}

/** Errors of the streams below (zlib, tar-stream) as one ImageError line. */
function toImageError(path: string, at: number, e: unknown): ImageError {
  if (e instanceof ImageError) return e;
  const err = e as NodeJS.ErrnoException;
  const msg = err?.message ?? String(e);
  if (err?.code === 'ENOENT') return new ImageError(path, 0, 'missing', 'no such archive');
  if (err?.code && /^E[A-Z]+$/.test(err.code) && err.syscall) return new ImageError(path, 0, 'io', `cannot read: ${err.code}`);
  if (err?.code === 'Z_BUF_ERROR' || /unexpected end/i.test(msg)) {
    return new ImageError(path, at, 'eof', `premature end of archive (${err?.code === 'Z_BUF_ERROR' ? 'gzip stream cut short' : msg})`);
  }
  if (typeof err?.code === 'string' && err.code.startsWith('Z_')) return new ImageError(path, at, 'corrupt', `gzip: ${msg}`);
  return new ImageError(path, at, 'corrupt', `tar: ${msg}`);
}
