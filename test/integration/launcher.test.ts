/**
 * The launcher (bin/tdcollect.js) as an installed command runs it: through its #! line, which starts Node
 * without NODE_EXTRA_CA_CERTS (Node 20 parses that file before starting V8; tdcollect makes no TLS
 * connection). A certificate file that does not exist makes Node warn on stderr when it is read, so the
 * warning tells whether the variable reached Node.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { VERSION } from '../../src/version.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'tdcollect.js');
const env = { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/tdcollect-test-ca.pem' };

describe('launcher', () => {
  it('run as a command, starts Node without NODE_EXTRA_CA_CERTS', () => {
    const r = spawnSync(BIN, ['--version'], { env, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(r.stderr).toBe('');
  });

  it('--version and -V (answered by the launcher from package.json) print the version the library reports', () => {
    for (const flag of ['--version', '-V']) {
      const r = spawnSync(BIN, [flag], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${VERSION}\n`);
    }
    // with anything else the command line answers, as before
    const r = spawnSync(BIN, ['--version', 'extra'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${VERSION}\n`);
  });

  it('started as `node bin/tdcollect.js`, Node reads the variable (what the #! line avoids)', () => {
    const r = spawnSync(process.execPath, [BIN, '--version'], { env, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('extra certs');
  });
});
