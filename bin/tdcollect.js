#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// The launcher drops NODE_EXTRA_CA_CERTS: Node 20 reads and parses every certificate that variable names
// before it starts V8 (about 90 ms with Debian's bundle), and tdcollect makes no TLS connection.
// It is CommonJS (bin/package.json): an ES module as the entry point costs Node 20 about 15 ms of CPU to set
// up its ES module loader before the first line runs, and `--version` needs none of it. Every command imports
// dist/bin/main.js, the command line bundled by the build (scripts/build-cli.mjs): a few files instead of
// dozens of modules, each command still loaded only when it runs.
'use strict';
const argv = process.argv;
if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
  process.stdout.write(`${require('../package.json').version}\n`);
} else {
  import('../dist/bin/main.js').then((m) => m.main(argv));
}
