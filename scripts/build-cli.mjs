#!/usr/bin/env node
// The last step of `npm run build`, after tsc has written dist/:
// the command line bundled with esbuild into dist/bin/: main.js plus one chunk per command and chunks they
// share, so that a command loads a handful of files instead of dozens of modules, and still only its own
// code (the commands stay dynamic imports: `tdcollect ps` does not load the image codecs). The library
// (dist/index.js) and the sources' layout are unchanged; bin/tdcollect.js runs dist/bin/main.js.
// dist/cli/commander.js is replaced by scripts/commander-bundled.mjs, so commander is bundled too.
// Native and optional-native packages (koffi, msgpackr) stay outside the bundle and load from node_modules.
import { build } from 'esbuild';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const final = `${root}dist/bin`;
// built aside, then swapped in: a command started meanwhile finds the old bundle or the new one, whole
const out = `${root}dist/bin.${process.pid}.tmp`;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: { main: `${root}dist/cli/main.js` },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['koffi', 'msgpackr'],
  // bundled CommonJS (protobufjs) may call require() for optional modules: give the bundle a real one
  banner: { js: "import { createRequire as __tdRequire } from 'node:module'; const require = __tdRequire(import.meta.url);" },
  chunkNames: '[name]-[hash]',
  plugins: [{
    name: 'commander-bundled',
    setup(b) {
      b.onResolve({ filter: /\/commander\.js$/ }, (args) =>
        args.importer.includes('/dist/cli/') ? { path: `${root}scripts/commander-bundled.mjs` } : undefined);
    },
  }],
  legalComments: 'none',
  logLevel: 'warning',
});

const old = `${root}dist/bin.${process.pid}.old`;
try { renameSync(final, old); } catch { /* first build */ }
renameSync(out, final);
rmSync(old, { recursive: true, force: true });
