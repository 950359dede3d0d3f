#!/usr/bin/env node
// Parses proto/*.proto once, at build time, into the JSON form of protobufjs's reflection, written as
// schemas.json into each directory given (default dist/image/): src/image/schema.ts loads it with
// protobufjs/light instead of parsing .proto text at every start. Run by `npm run build` after tsc.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseProtoFiles, SCHEMAS_JSON } from '../dist/image/schema.js';

const dirs = process.argv.slice(2);
const json = JSON.stringify(parseProtoFiles().toJSON());
for (const d of dirs.length ? dirs : [new URL('../dist/image/', import.meta.url).pathname]) {
  writeFileSync(join(d, SCHEMAS_JSON), json);
}
