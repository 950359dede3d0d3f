#!/usr/bin/env node
// Helper of bench/bpf.mjs: `tdcollect ps` with only the ps command loaded (no other command modules),
// to show what the command costs apart from the start-up of the full CLI.
import { Command } from 'commander';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const { register } = await import(pathToFileURL(join(dist, 'cli/ps.js')).href);
const program = new Command().name('tdcollect').exitOverride();
register(program);
await program.parseAsync(process.argv);
