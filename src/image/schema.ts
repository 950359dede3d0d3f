/**
 * Loads the .proto schemas of proto/ once (protobufjs reflection, field names kept as written, i.e. the
 * snake_case crit prints). The proto/ directory is found relative to this module: src/image/ (vitest) and
 * dist/image/ (installed package) both sit two levels below the package root.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { TdError, EXIT } from '../errors.js';

export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
export const PROTO_FILES = ['pstree.proto', 'creds.proto', 'core.proto', 'inventory.proto', 'tdcollect.proto'] as const;

export interface Schemas {
  root: protobuf.Root;
  pstree: protobuf.Type;
  core: protobuf.Type;
  taskCore: protobuf.Type;
  threadCore: protobuf.Type;
  creds: protobuf.Type;
  inventory: protobuf.Type;
  kobjIds: protobuf.Type;
  header: protobuf.Type;
  task: protobuf.Type;
}

let cached: Schemas | undefined;

export function schemas(): Schemas {
  if (cached) return cached;
  const files = PROTO_FILES.map((f) => PROTO_DIR + f);
  for (const f of files) {
    if (!existsSync(f)) throw new TdError('internal', EXIT.INTERNAL, `schema file ${f} is missing from this installation`);
  }
  const root = new protobuf.Root();
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  cached = {
    root,
    pstree: root.lookupType('pstree_entry'),
    core: root.lookupType('core_entry'),
    taskCore: root.lookupType('task_core_entry'),
    threadCore: root.lookupType('thread_core_entry'),
    creds: root.lookupType('creds_entry'),
    inventory: root.lookupType('inventory_entry'),
    kobjIds: root.lookupType('task_kobj_ids_entry'),
    header: root.lookupType('tdcollect.dump_header'),
    task: root.lookupType('tdcollect.task'),
  };
  return cached;
}
