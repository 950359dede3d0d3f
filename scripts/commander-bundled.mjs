// src/cli/commander.ts as the CLI bundle has it (scripts/build-cli.mjs): commander imported statically, so
// that esbuild bundles it with the rest (no ES-module wrapper to scan at run time, no separate files).
export { Command, Option, Help } from 'commander';
