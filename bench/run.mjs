#!/usr/bin/env node
// Runs every benchmark module in bench/ (each exports `async function run(opts)` and prints its own table),
// or only those named on the command line: `npm run bench -- procfs bpf`.
// Benchmarks report medians and ratios against a baseline measured in the same run, never absolute pass/fail.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const mods = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs' && !f.startsWith('lib') && !f.startsWith('vm-'))
  .map((f) => f.slice(0, -4))
  .filter((n) => wanted.length === 0 || wanted.includes(n))
  .sort();
const results = {};
for (const name of mods) {
  const mod = await import(pathToFileURL(join(here, `${name}.mjs`)).href);
  if (typeof mod.run !== 'function') continue;
  console.log(`\n== ${name} ==`);
  results[name] = await mod.run({});
}
if (process.env.BENCH_JSON) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.env.BENCH_JSON, JSON.stringify(results, null, 2));
}
