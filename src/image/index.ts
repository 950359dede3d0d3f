/** The image layer: CRIU framing, schemas, Snapshot <-> image directory, JSON form. No kernel access. */
export {
  writeImages, writeImagesSync, encodeImages, beginWrite, prepareWrite, WORKER_MIN_FILES, type PendingWrite, type PreparedWrite,
  type WriteOptions,
  type WriteResult,
} from './write.js';
export {
  readImages, readTasksImage, readCriuImages, verifyCriuImages, decodeImageSet, dirFiles, imageSetWriter,
  type ReadOptions, type TasksImage, type CriuImages, type UnknownFieldAt, type ImageFiles,
} from './read.js';
export { decodeCriuSet, type CriuSetInfo, type CriuNsIds } from './criu.js';
export {
  readImageSet, containerInfo, isReadImage, METADATA_FILES,
  type ImageSetSnapshot, type ImageOrigin, type ContainerInfo, type ReadImageSetOptions,
} from './imageset.js';
export type { ArchiveLimits, ArchiveContents, Compression } from './archive.js';
export { snapshotToJson, taskToJson, maskHex, JSON_SCHEMA_VERSION, type SnapshotJson, type TaskJson } from './json.js';
export {
  MAGIC, KIND, frameImage, splitEntries, decodeMessage, decodeImage, encodeMessage,
  type ImageKind, type RawEntry, type Decoded, type UnknownField,
} from './framing.js';
export { schemas, PROTO_DIR, type Schemas } from './schema.js';
export {
  TASK_FIELD_MAP, TASK_STATE, ROOT_IDS, MARCH, hostMarch, groupProcesses, ImageWriteError,
  coreEntry, pstreeEntry, credsEntry, threadCoreEntry, inventoryEntry, taskToPb, pbToTask, headerToPb, pbToHeader,
  type ProcessGroup,
} from './codec.js';
