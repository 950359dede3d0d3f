/**
 * One reader for any image set: a tdcollect dump directory, a directory CRIU wrote, or a checkpoint archive
 * (tar, tar.gz, tar.zst; CRIU's images under `checkpoint/`, container metadata beside them).
 *
 *   path --(directory | archive layer: named files)--> ImageFiles --(decodeImageSet)--> Snapshot
 *
 * The archive layer (archive.ts) only hands out files; decodeImageSet (read.ts) turns any set of files into a
 * Snapshot. `origin` says where the set came from, for printing only.
 */
import { statSync } from 'node:fs';
import { ImageError } from '../errors.js';
import type { Snapshot } from '../collector/task.js';
import { decodeImageSet, dirFiles, fsImageError, type ImageFiles, type ReadOptions } from './read.js';
import type { ArchiveLimits, Compression } from './archive.js';
import type { CriuSetInfo } from './criu.js';

/** The container an archive holds, from its engine's metadata (what `checkpointctl show` prints). */
export interface ContainerInfo {
  /** Podman, CRI-O, containerd (from spec.dump's io.container.manager annotation) */
  engine?: string;
  name?: string;
  id?: string;
  /** the image the container ran (config.dump rootfsImageName) */
  image?: string;
  /** OCI runtime (config.dump runtime: crun, runc, ...) */
  runtime?: string;
  /** when the container was created (RFC 3339, as the engine wrote it) */
  created?: string;
  /** Kubernetes namespace and pod (CRI-O, containerd) */
  namespace?: string;
  pod?: string;
}

/** Where an image set came from. */
export interface ImageOrigin {
  /** the path as given */
  path: string;
  /** a directory or an archive */
  form: 'directory' | 'archive';
  /** who wrote the images: tdcollect (tasks.img) or CRIU */
  writer: 'tdcollect' | 'criu';
  /** archives: the compression (none, gzip, zstd) */
  compression?: Compression;
  /** archives: the directory of the images inside it ("checkpoint", or "" at the top) */
  imageDir?: string;
  /** archives: the container, when the engine's metadata is there */
  container?: ContainerInfo;
  /** archives: names of the engine metadata files found (config.dump, spec.dump, ...) */
  metadata?: string[];
  /** CRIU sets: what the inventory says */
  criu?: CriuSetInfo;
}

/** A Snapshot read from an image set, with where it came from. */
export interface ImageSetSnapshot extends Snapshot {
  origin: ImageOrigin;
}

export interface ReadImageSetOptions extends ReadOptions {
  /** archives: inflation limits (see archive.ts) */
  limits?: Partial<ArchiveLimits>;
}

/** Container metadata files kept from an archive (everything else beside checkpoint/ is skipped). */
export const METADATA_FILES = ['config.dump', 'spec.dump', 'network.status', 'checkpointed.pods', 'pod.dump'] as const;
const METADATA = new Set<string>(METADATA_FILES);

/** Image files a decoder may read: everything else in the image directory is skipped unread. */
export function isReadImage(name: string): boolean {
  if (name === 'inventory.img' || name === 'pstree.img' || name === 'tasks.img') return true;
  for (const p of ['core-', 'ids-', 'creds-']) {
    if (name.startsWith(p) && name.endsWith('.img')) {
      const mid = name.slice(p.length, -4);
      return mid.length > 0 && mid.length <= 10 && /^[0-9]+$/.test(mid);
    }
  }
  return false;
}

/** The members of an archive under `dir` as an image set. */
function archiveFiles(path: string, dir: string, files: Map<string, Buffer>, names: readonly string[]): ImageFiles {
  const prefix = dir === '' ? '' : `${dir}/`;
  const inDir = names.filter((n) => n.startsWith(prefix) && !n.slice(prefix.length).includes('/')).map((n) => n.slice(prefix.length));
  const set = new Set(inDir);
  return {
    path,
    names: () => inDir,
    has: (name) => set.has(name),
    read: (name) => {
      const b = files.get(prefix + name);
      if (!b) throw new ImageError(`${path}:${prefix}${name}`, 0, 'missing', 'no such image file in the archive');
      return b;
    },
    label: (name) => `${path}:${prefix}${name}`,
  };
}

function parseJson(path: string, member: string, buf: Buffer | undefined): Record<string, unknown> | undefined {
  if (!buf) return undefined;
  try {
    const v = JSON.parse(buf.toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch (e) {
    throw new ImageError(`${path}:${member}`, 0, 'corrupt', `not JSON: ${(e as Error).message}`);
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * The container of an archive, the way checkpointctl reads it: config.dump (podman's container config: id,
 * name, rootfsImageName, runtime, createdTime) and spec.dump (the OCI spec; its io.container.manager
 * annotation names the engine: "libpod" is Podman, "cri-o" is CRI-O, anything else containerd).
 */
export function containerInfo(path: string, files: Map<string, Buffer>): ContainerInfo | undefined {
  const config = parseJson(path, 'config.dump', files.get('config.dump'));
  const spec = parseJson(path, 'spec.dump', files.get('spec.dump'));
  if (!config && !spec) return undefined;
  const ann = ((spec?.annotations ?? {}) as Record<string, unknown>);
  const c: ContainerInfo = {};
  const manager = str(ann['io.container.manager']);
  if (manager === 'libpod') {
    c.engine = 'Podman';
    c.name = str(config?.name);
    c.created = str(config?.createdTime);
  } else if (manager === 'cri-o') {
    c.engine = 'CRI-O';
    let meta: Record<string, unknown> | undefined;
    try { meta = JSON.parse(str(ann['io.kubernetes.cri-o.Metadata']) ?? '{}') as Record<string, unknown>; } catch { meta = undefined; }
    c.name = str(meta?.name) ?? str(ann['io.kubernetes.container.name']);
    c.created = str(ann['io.kubernetes.cri-o.Created']);
    c.namespace = str(ann['io.kubernetes.pod.namespace']);
    c.pod = str(ann['io.kubernetes.pod.name']);
  } else if (spec) {
    c.engine = 'containerd';
    c.name = str(ann['io.kubernetes.cri.container-name']) ?? str(config?.name);
    c.created = str(config?.createdTime);
    c.namespace = str(ann['io.kubernetes.cri.sandbox-namespace']);
    c.pod = str(ann['io.kubernetes.cri.sandbox-name']);
  } else {
    c.name = str(config?.name);
    c.created = str(config?.createdTime);
  }
  c.id = str(config?.id);
  c.image = str(config?.rootfsImageName);
  c.runtime = str(config?.runtime);
  for (const k of Object.keys(c) as (keyof ContainerInfo)[]) if (c[k] === undefined) delete c[k];
  return c;
}

/**
 * Read any image set into a Snapshot (with its origin): a directory is read as readImages() does; a regular
 * file must be a tar, tar.gz or tar.zst archive, streamed once (nothing is written to disk).
 */
export async function readImageSet(path: string, opts: ReadImageSetOptions = {}): Promise<ImageSetSnapshot> {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw fsImageError(path, e, 'no such image directory or archive', 'cannot read');
  }
  if (st.isDirectory()) {
    const files = dirFiles(path);
    const { snapshot, writer, criu } = decodeImageSet(files, opts);
    const origin: ImageOrigin = { path, form: 'directory', writer };
    if (criu) origin.criu = criu;
    return { ...snapshot, origin };
  }
  if (!st.isFile()) throw new ImageError(path, 0, 'io', 'neither a directory nor a regular file');
  const { readArchive } = await import('./archive.js');
  const contents = await readArchive(path, (name) => {
    const slash = name.lastIndexOf('/');
    const base = name.slice(slash + 1);
    if (slash < 0 && METADATA.has(base)) return true;
    // images at the top or one directory down (checkpoint/); rootfs content is never kept
    return isReadImage(base) && name.split('/').length <= 2;
  }, opts.limits);
  // the images live in checkpoint/ (container engines) or at the top (a tar of an image directory)
  const dirs = new Set(contents.names.filter((n) => isReadImage(n.slice(n.lastIndexOf('/') + 1))).map((n) => {
    const i = n.lastIndexOf('/');
    return i < 0 ? '' : n.slice(0, i);
  }));
  let imageDir: string;
  if (dirs.has('checkpoint')) imageDir = 'checkpoint';
  else if (dirs.has('')) imageDir = '';
  else if (dirs.size === 1) imageDir = [...dirs][0];
  else {
    throw new ImageError(`${path}:checkpoint/`, 0, 'missing',
      dirs.size === 0 ? 'the archive holds no CRIU or tdcollect images' : `images in several directories (${[...dirs].join(', ')})`);
  }
  const files = archiveFiles(path, imageDir, contents.files, contents.names);
  const { snapshot, writer, criu } = decodeImageSet(files, opts);
  const origin: ImageOrigin = { path, form: 'archive', writer, compression: contents.compression, imageDir };
  const container = containerInfo(path, contents.files);
  if (container) origin.container = container;
  const metadata = contents.names.filter((n) => METADATA.has(n));
  if (metadata.length) origin.metadata = metadata;
  if (criu) origin.criu = criu;
  return { ...snapshot, origin };
}
