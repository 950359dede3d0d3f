#!/usr/bin/env node
// The last step of `npm run build`, after tsc has written dist/: the command line bundled with esbuild into
// dist/bin/, one CommonJS file per command (dump.cjs, show.cjs, ...: the program with that command alone,
// everything it loads inside, lazily initialised where the source imports lazily) and all.cjs (every
// command: help, unknown commands). bin/tdcollect.js picks the file of the command it is given and compiles
// it with V8's code cache (see there). A command thus loads one file, with no ES module loader at all, and
// only its own code. The library (dist/index.js) and the sources' layout are unchanged.
//
// - dist/cli/commander.js is replaced by scripts/commander-bundled.mjs, so commander is bundled too.
// - node:child_process (commander loads it for executable subcommands, which tdcollect has none of; it pulls
//   in net, streams and dgram), node:crypto (a cgroup freeze's state file name) and node:worker_threads (the
//   image writer's worker, for large dumps only; it pulls in streams) are loaded on first use instead of at
//   start: 2-4 ms of CPU each. So are node:module (createRequire, which the bundle has no use for: it runs
//   with a require), which loads Node's ES module loader (0.6 ms), and node:os (errno names, for errors only:
//   0.3 ms).
// - Native and optional-native packages (koffi, msgpackr) stay outside and load from node_modules.
// - Each file starts with `// tdcollect-bundle NAME SHA256`, the digest of the rest of the file: the key of
//   its code cache, computed here once instead of at every start.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = `${root}dist/cli/`;
const final = `${root}dist/bin`;
// built aside, then swapped in: a command started meanwhile finds the old bundle or the new one, whole
const out = `${root}dist/bin.${process.pid}.tmp`;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const { COMMANDS, FAST } = await import(`${cli}main.js`);
const names = Object.keys(COMMANDS);
/**
 * The entry of a bundle: run() over the given commands and their fast paths (main.ts FAST), each imported
 * when it is used (a module the bundle holds is initialised on first use: a dump on its fast path never
 * initialises commander, nor the command modules that register with it)
 */
const entry = (cmds) => [
  `import { run } from ${JSON.stringify(`${cli}main.js`)};`,
  `const commands = { ${cmds.map((c) => `${JSON.stringify(c)}: () => import(${JSON.stringify(`${cli}${c}.js`)})`).join(', ')} };`,
  `const fast = { ${cmds.filter((c) => FAST[c]).map((c) => `${JSON.stringify(c)}: () => import(${JSON.stringify(`${cli}${c}-fast.js`)})`).join(', ')} };`,
  'export function main(argv) { return run(argv, commands, fast); }',
].join('\n');

await build({
  entryPoints: Object.fromEntries([...names.map((n) => [n, `tdentry:${n}`]), ['all', 'tdentry:all']]),
  outdir: out,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['koffi', 'msgpackr'],
  // the bundle runs as CommonJS: import.meta.url is the bundle's own URL (the sources find proto/ and the BPF
  // object relative to it; dist/bin/ is two levels below the package root, like dist/image/)
  define: { 'import.meta.url': '__tdImportMetaUrl' },
  // pathToFileURL's encoding without loading it (0.7 ms): %, backslash, tab, newline, CR, # and ? escaped;
  // what else a path may hold, the URL parser encodes when the URL is used
  banner: { js: String.raw`var __tdImportMetaUrl = 'file://' + __filename.replace(/[%\\\t\n\r#?]/g, encodeURIComponent);` },
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [{
    name: 'tdcollect-cli',
    setup(b) {
      b.onResolve({ filter: /^tdentry:/ }, (args) => ({ path: args.path.slice(8), namespace: 'tdentry' }));
      b.onLoad({ filter: /.*/, namespace: 'tdentry' }, (args) => ({
        contents: entry(args.path === 'all' ? names : [args.path]),
        resolveDir: cli,
        loader: 'js',
      }));
      // main.js's own tables of lazily imported commands and fast paths are not what a bundle runs (the entry
      // passes its own)
      b.onResolve({ filter: new RegExp(`^\\./(${names.join('|')})(-fast)?\\.js$`) }, (args) =>
        args.kind === 'dynamic-import' && args.importer === `${cli}main.js` ? { path: args.path, namespace: 'unused' } : undefined);
      b.onLoad({ filter: /.*/, namespace: 'unused' }, () => ({ contents: 'throw new Error("not in this bundle");', loader: 'js' }));
      b.onResolve({ filter: /\/commander\.js$/ }, (args) =>
        args.importer.startsWith(cli) ? { path: `${root}scripts/commander-bundled.mjs` } : undefined);
      // import() of a Node module becomes a require() when it runs (a CommonJS bundle compiled by vm.Script has
      // no ES module loader to import with)
      b.onResolve({ filter: /^node:/ }, (args) =>
        args.kind === 'dynamic-import' ? { path: args.path.slice(5), namespace: 'builtin' } : undefined);
      b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: `module.exports = require('node:${args.path}');`, loader: 'js' }));
      // Node modules that cost milliseconds to load and that a command uses only on some of its paths are loaded
      // when first used: an object with a getter per export, each loading the module
      b.onResolve({ filter: /^(node:)?(child_process|crypto|worker_threads|module|os)$/ }, (args) =>
        args.namespace === 'lazy-builtin' ? undefined : { path: args.path.replace(/^node:/, ''), namespace: 'lazy-builtin' });
      b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, async (args) => {
        const keys = Object.keys(await import(`node:${args.path}`)).filter((k) => k !== 'default');
        return {
          contents: [
            `let m; const load = () => (m ??= require('node:${args.path}'));`,
            `for (const k of ${JSON.stringify(keys)}) Object.defineProperty(exports, k, { enumerable: true, get: () => load()[k] });`,
          ].join('\n'),
          loader: 'js',
        };
      });
    },
  }],
});

for (const f of readdirSync(out)) {
  const path = `${out}/${f}`;
  const body = readFileSync(path, 'utf8');
  // esbuild escapes what strings hold beyond ASCII; a comment it keeps (a class member's) is copied as it is.
  // One such character makes V8 hold the whole bundle as a two-byte string: twice the memory, and the read at
  // every start about 0.7 ms slower. Say which comment to change instead.
  const wide = /[^\x00-\x7f]/.exec(body);
  if (wide) {
    const line = body.slice(0, wide.index).split('\n').length;
    throw new Error(`${f}:${line}: a character beyond ASCII (${JSON.stringify(wide[0])}) is left in the bundle, in a comment; write it in ASCII in the source`);
  }
  if (/\bimport\(/.test(body.replace(/\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, ''))) {
    throw new Error(`${f}: an import() is left in the bundle (bin/tdcollect.js runs it as CommonJS)`);
  }
  const digest = createHash('sha256').update(body).digest('hex');
  writeFileSync(path, `// tdcollect-bundle ${f.replace(/\.cjs$/, '')} ${digest}\n${body}`);
}

const old = `${root}dist/bin.${process.pid}.old`;
try { renameSync(final, old); } catch { /* first build */ }
renameSync(out, final);
rmSync(old, { recursive: true, force: true });
