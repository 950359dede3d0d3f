/**
 * The tdcollect library API.
 *
 *   import { collect, writeImages, readImages, diff } from 'tdcollect';
 *   const snap = await collect({ root: 1234, freeze: 'ptrace' });   // Snapshot: { info, tasks }
 *   await writeImages(snap, '/tmp/dump');                           // CRIU images + tasks.img
 *   const again = readImages('/tmp/dump');                          // Snapshot
 *   const c = await readImageSet('ckpt.tar.zst');                   // any image set: CRIU dir, archive, ...
 *   const d = diff(snap, again);                                    // SnapshotDiff (d.equal === true)
 *
 * Failures are typed: `err instanceof NoProcessError`, `PermissionError`, `UnavailableError`, `SysError`
 * (with `errno` / `code`), `ImageError` (with `file` / `offset` / `reason`), ... or `err.kind`; no message
 * matching is needed. Every class extends TdError, whose `exitCode` is what the CLI exits with.
 */

// collecting
export { collect, openSource, parsePid, checkRoot, translatePids, FORMAT_VERSION, type CollectOptions } from './collector/collect.js';
export {
  SOURCES, AUTO_ORDER, type Source, type SourceFactory, type SourceStats, type Probe, type TreeOptions,
} from './collector/sources/index.js';
export { readNsIds, readNsPidChain, parseNsPid, nsKinds } from './collector/nsread.js';
export { FREEZERS, type Freezer, type FrozenTree, type FreezeOptions } from './collector/freeze/index.js';
export { orderTasks, buildTree, InconsistentTreeError, type Process } from './collector/walk.js';
export {
  REQUIRED_FIELDS, OPTIONAL_FIELDS, TASK_STATES, NS_KINDS, NS_PER_PROCESS, NS_PER_THREAD, isLeader, criuStateOf,
  type Task, type RecordedTask, type CriuState, type Snapshot, type DumpInfo, type Timings, type Mask64, type TaskState,
  type SourceName, type FreezeMethod, type OptionalField, type PidView, type NsIds, type NsKind,
} from './collector/task.js';

// images
export {
  writeImages, writeImagesSync, readImages, readTasksImage, snapshotToJson, taskToJson, JSON_SCHEMA_VERSION, ImageWriteError,
  type WriteOptions, type WriteResult, type ReadOptions, type TasksImage, type SnapshotJson, type TaskJson,
  readImageSet, decodeImageSet, decodeCriuSet, dirFiles, containerInfo,
  type ImageSetSnapshot, type ImageOrigin, type ContainerInfo, type ReadImageSetOptions, type ImageFiles,
  type ArchiveLimits, type Compression, type CriuSetInfo,
} from './image/index.js';

// pid views (root's pid namespace as CRIU writes it, or the collector's)
export { selectPidView, parsePidView, hasCollectorView, PID_VIEWS, type PidViewName } from './image/view.js';

// diff
export {
  diffSnapshots, diffSnapshots as diff, formatDiff, formatChange, parseIgnore, capabilityName, signalName, maskBits,
  CAPABILITY_NAMES, DIFF_FIELDS, IGNORE_GROUPS, DIFF_SCHEMA_VERSION,
  type SnapshotDiff, type ProcessDiff, type FieldChange, type ThreadRef, type ThreadChange, type DiffSide,
  type DiffOptions, type DiffField,
} from './image/diff.js';
export { namespaceMoves, nsField, type NsMove } from './image/nsdiff.js';

// streaming
export {
  streamSnapshot, readStream, readSnapshotStream, STREAM_FORMAT, STREAM_VERSION, STREAM_FORMATS,
  type StreamFormat, type StreamRecord, type HeaderRecord, type TaskRecord, type EndRecord, type StreamOptions,
  type StreamResult, type ReadStreamOptions,
} from './stream/index.js';

// errors
export {
  EXIT, TdError, UsageError, ImageError, NoProcessError, PermissionError, OutputError, UnavailableError, FreezeError,
  type ErrorKind,
} from './errors.js';
export { SysError } from './sys/libc.js';
export { NetlinkError, NetlinkDecodeError, NetlinkProtocolError, type ExtAck } from './netlink/errors.js';

export { VERSION } from './version.js';
