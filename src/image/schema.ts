/**
 * The schemas of proto/*.proto (protobufjs reflection, field names kept as written, i.e. the snake_case crit
 * prints), loaded once.
 *
 * The build (`npm run build`, scripts/build-cli.mjs) parses the .proto files ahead of time into
 * schemas.json beside the built module (dist/image/, and the CLI bundle's directory); at run time that JSON
 * is turned back into the same reflection with protobufjs/light, without loading protobufjs's .proto parser
 * or reading .proto text. Where no schemas.json is there (the sources run directly, as the tests do), the
 * .proto files are parsed as before. The proto/ directory is found relative to this module: src/image/ and
 * dist/image/ both sit two levels below the package root.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs/light.js';
import { TdError, EXIT } from '../errors.js';

export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
export const PROTO_FILES = ['pstree.proto', 'creds.proto', 'core.proto', 'inventory.proto', 'tdcollect.proto'] as const;
/** the schemas parsed at build time, beside this module */
export const SCHEMAS_JSON = 'schemas.json';

/** Parse proto/*.proto with protobufjs's full build (its .proto parser). */
export function parseProtoFiles(): protobuf.Root {
  const files = PROTO_FILES.map((f) => PROTO_DIR + f);
  for (const f of files) {
    if (!existsSync(f)) throw new TdError('internal', EXIT.INTERNAL, `schema file ${f} is missing from this installation`);
  }
  const full = createRequire(import.meta.url)('protobufjs') as typeof protobuf;
  const root = new full.Root();
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

/** The reflection from the build's schemas.json, or undefined when there is none beside this module. */
export function loadBuiltSchemas(): protobuf.Root | undefined {
  let text: string;
  try {
    text = readFileSync(new URL(`./${SCHEMAS_JSON}`, import.meta.url), 'utf8');
  } catch {
    return undefined;
  }
  const root = protobuf.Root.fromJSON(JSON.parse(text) as protobuf.INamespace);
  root.resolveAll();
  return root;
}

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
  const root = loadBuiltSchemas() ?? parseProtoFiles();
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
