/**
 * The schemas of proto/*.proto (field names kept as written, i.e. the snake_case crit prints).
 *
 * The build (`npm run build`, scripts/gen-schemas.mjs) compiles the .proto files ahead of time into
 * schemas.gen.ts beside this module: every message's fields as plain data, which the strict decoder of
 * framing.ts walks, and a static encoder (the code protobufjs generates for Type.encode, printed at build time)
 * over pbwriter.ts's Writer (protobufjs/minimal's Writer API, the same bytes). Nothing parses .proto text,
 * builds reflection or compiles code at run time.
 * parseProtoFiles() still parses the .proto files with protobufjs's full build, for the tests that hold the
 * generated module to them. The proto/ directory is found relative to this module: src/image/ and dist/image/
 * both sit two levels below the package root.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type protobuf from 'protobufjs';
import type { Writer } from './pbwriter.js';
import { TdError, EXIT } from '../errors.js';
import { MESSAGES } from './schemas.gen.js';

export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
export const PROTO_FILES = ['pstree.proto', 'creds.proto', 'core.proto', 'inventory.proto', 'tdcollect.proto'] as const;

/** An enum of the schemas: value names to numbers. */
export interface EnumSchema {
  readonly name: string;
  readonly fullName: string;
  readonly values: Readonly<Record<string, number>>;
}

/** One field of a message, as protobufjs's reflection names it (a protobufjs Field has these too). */
export interface FieldSchema {
  readonly name: string;
  readonly id: number;
  /** the scalar type, or the name of the message or enum */
  readonly type: string;
  readonly repeated: boolean;
  readonly required: boolean;
  /** the message or enum of a field of that type, null for scalars */
  readonly resolvedType: MessageSchema | EnumSchema | null;
}

/**
 * A message: its fields (what the strict decoder walks) and its encoder. A protobufjs Type is one too, so
 * the decoder and the encoding helpers take either.
 */
export interface MessageSchema {
  readonly name: string;
  readonly fullName: string;
  readonly fieldsArray: readonly FieldSchema[];
  /** encode into `writer` (a new one when absent) and return it; `.finish()` gives the bytes */
  encode(message: object, writer?: Writer): Writer;
}

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

export interface Schemas {
  pstree: MessageSchema;
  core: MessageSchema;
  taskCore: MessageSchema;
  threadCore: MessageSchema;
  creds: MessageSchema;
  inventory: MessageSchema;
  kobjIds: MessageSchema;
  header: MessageSchema;
  task: MessageSchema;
}

let cached: Schemas | undefined;

function lookup(name: string): MessageSchema {
  const m = MESSAGES[name];
  if (!m) throw new TdError('internal', EXIT.INTERNAL, `message ${name} is missing from the built schemas (run npm run build)`);
  return m;
}

export function schemas(): Schemas {
  cached ??= {
    pstree: lookup('pstree_entry'),
    core: lookup('core_entry'),
    taskCore: lookup('task_core_entry'),
    threadCore: lookup('thread_core_entry'),
    creds: lookup('creds_entry'),
    inventory: lookup('inventory_entry'),
    kobjIds: lookup('task_kobj_ids_entry'),
    header: lookup('tdcollect.dump_header'),
    task: lookup('tdcollect.task'),
  };
  return cached;
}
