#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// The launcher drops NODE_EXTRA_CA_CERTS: Node 20 reads and parses every certificate that variable names
// before it starts V8 (about 90 ms with Debian's bundle), and tdcollect makes no TLS connection.
import { main } from '../dist/cli/main.js';
main(process.argv);
