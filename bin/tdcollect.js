#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// The launcher drops NODE_EXTRA_CA_CERTS: Node 20 reads and parses every certificate that variable names
// before it starts V8 (about 90 ms with Debian's bundle), and tdcollect makes no TLS connection.
// dist/bin/ is the command line bundled by the build (scripts/build-cli.mjs): a few files instead of dozens of
// modules, each command still loaded only when it runs. `--version` alone needs no command-line parser.
const argv = process.argv;
if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
  const { VERSION } = await import('../dist/version.js');
  process.stdout.write(`${VERSION}\n`);
} else {
  const { main } = await import('../dist/bin/main.js');
  await main(argv);
}
