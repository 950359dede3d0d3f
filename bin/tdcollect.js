#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// The launcher drops NODE_EXTRA_CA_CERTS: Node 20 reads and parses every certificate that variable names
// before it starts V8 (about 90 ms with Debian's bundle), and tdcollect makes no TLS connection.
//
// It is CommonJS (bin/package.json) and so is what it runs: the build (scripts/build-cli.mjs) bundles the
// command line into one CommonJS file per command, dist/bin/<command>.cjs (all.cjs for help and anything
// else). An ES module costs Node 20 its ES module loader (about 15 ms of CPU to set up, then asynchronous
// reads and linking per file); one CommonJS file costs one read and one compile.
//
// The compile is where most of a command's start-up went, and V8 can skip it: the file is compiled with
// vm.Script and V8's code cache for it, which holds the bytecode of every function the command ran (made
// after the command has run, so it includes the functions V8 compiles lazily). The cache lives beside the
// minimal BTF cache, in $TDCOLLECT_CACHE_DIR, else $XDG_CACHE_HOME/tdcollect, else ~/.cache/tdcollect, as
// code-<command>-<key>.bin; the key covers the bundle's digest (written into its first line by the build),
// its size and time, and Node's version and architecture, and V8 checks its own version and flags and
// rejects a cache made for other ones. A missing, rejected or unreadable cache only means a compile as
// without one, and a new cache written after the command (whole, by rename, or not at all); a cache
// directory that cannot be written means no cache. TDCOLLECT_CODE_CACHE=none turns it off (nothing read,
// nothing written).
'use strict';
const argv = process.argv;
if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
  process.stdout.write(`${require('../package.json').version}\n`);
} else {
  const fs = require('node:fs');
  const path = require('node:path');
  const vm = require('node:vm');

  const COMMANDS = ['dump', 'show', 'diff', 'ps', 'check', 'thaw', 'bpf'];
  const first = argv[2] === 'help' ? argv[3] : argv[2];
  const name = COMMANDS.includes(first) ? first : 'all';
  const file = path.join(__dirname, '..', 'dist', 'bin', `${name}.cjs`);
  const source = fs.readFileSync(file, 'utf8');

  let cacheFile;
  if (process.env.TDCOLLECT_CODE_CACHE !== 'none') {
    const digest = /^\/\/ tdcollect-bundle \S+ ([0-9a-f]{64})\n/.exec(source);
    if (digest) {
      const st = fs.statSync(file);
      const env = process.env;
      const xdg = env.XDG_CACHE_HOME;
      const home = env.HOME || require('node:os').homedir();
      const dir = env.TDCOLLECT_CACHE_DIR || path.join(xdg && xdg.startsWith('/') ? xdg : path.join(home, '.cache'), 'tdcollect');
      const key = `${digest[1].slice(0, 24)}-${st.size}-${Math.trunc(st.mtimeMs)}-${process.version}-${process.arch}`;
      cacheFile = path.join(dir, `code-${name}-${key}.bin`);
    }
  }
  let cachedData;
  if (cacheFile) {
    try { cachedData = fs.readFileSync(cacheFile); } catch { /* none yet */ }
  }
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    cachedData,
  });
  if (cacheFile && (cachedData === undefined || script.cachedDataRejected)) {
    // made when the command is over, with what it compiled on the way
    process.once('exit', () => {
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      try {
        const data = script.createCachedData();
        fs.mkdirSync(path.dirname(cacheFile), { recursive: true, mode: 0o700 });
        fs.writeFileSync(tmp, data, { mode: 0o600 });
        fs.renameSync(tmp, cacheFile);
        // the caches of this command's earlier builds and Node versions, when a day old (another
        // installation beside this one keeps its own)
        const prefix = `code-${name}-`;
        const dir = path.dirname(cacheFile);
        for (const f of fs.readdirSync(dir)) {
          if (!f.startsWith(prefix) || f === path.basename(cacheFile)) continue;
          const p = path.join(dir, f);
          if (Date.now() - fs.statSync(p).mtimeMs > 86400e3) fs.rmSync(p, { force: true });
        }
      } catch {
        try { fs.rmSync(tmp, { force: true }); } catch { /* nothing to clean */ }
      }
    });
  }
  const module = { exports: {} };
  // the launcher's own require serves the bundle: it resolves the packages left outside it (koffi, msgpackr)
  // from node_modules as one made for dist/bin/ would, without loading node:module and Node's ES module
  // loader with it (about 0.6 ms)
  script.runInThisContext()(module.exports, require, module, file, path.dirname(file));
  module.exports.main(argv);
}
