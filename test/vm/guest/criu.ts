/**
 * CRIU itself in the guest: `criu dump -t PID -D DIR --leave-running` of a tree a test started, with what
 * Debian 12's criu 3.17.1 needs there (see the project's notes on the guest harness):
 *   - the loopback up (its feature probe opens a TCP socket);
 *   - the dumped tasks' stdio on /dev/null or pipes, never on a file of the guest's 9p/overlay mounts
 *     (start fixtures through criuSafeStdio());
 *   - no mount namespace of the test's own (the dumped tree must share the guest's);
 *   - the root's session led by a task inside the dump's pid namespace: the guest's own tasks have session 0
 *     ("A session leader ... is outside of its pid namespace"), so fixtures start through setsid
 *     (criuSafeStdio does both), and --shell-job lets the root be a member of that session, not its leader.
 * The tree keeps running; the images land in a fresh directory under /tmp that remove() deletes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CRIU = existsSync('/usr/sbin/criu') ? '/usr/sbin/criu' : 'criu';

let loopbackUp = false;

/** `ip link set lo up`, once per process. */
export function ensureLoopback(): void {
  if (loopbackUp) return;
  execFileSync('ip', ['link', 'set', 'lo', 'up'], { stdio: 'ignore' });
  loopbackUp = true;
}

/** `criu --version`'s version string (e.g. "3.17.1"). */
export function criuVersion(): string {
  const out = execFileSync(CRIU, ['--version'], { encoding: 'utf8' });
  const m = /Version:\s*(\S+)/.exec(out);
  if (!m) throw new Error(`criu --version printed no version: ${out}`);
  return m[1]!;
}

/**
 * A wrapper for startTree()/spawn: the started tree runs in a session of its own (setsid) with stderr on
 * /dev/null (stdin and stdout stay the pipes the test holds), as CRIU needs it in the guest.
 */
export const criuSafeStdio: readonly string[] = ['setsid', 'sh', '-c', 'exec "$0" "$@" 2>/dev/null'];

export interface CriuDumpOptions {
  /** directory to dump into (created by the caller); default: a fresh one under /tmp */
  dir?: string;
  /** pass --shell-job (default true: lets the root be a session member rather than its leader) */
  shellJob?: boolean;
  /** more criu options */
  extra?: string[];
  /** kill criu after this long (default 120 s) */
  timeoutMs?: number;
}

export interface CriuDump {
  /** the image directory */
  dir: string;
  /** criu's dump.log (-v4) */
  log: string;
  /** delete the directory */
  remove(): void;
}

/**
 * Dump the tree rooted at `pid` with CRIU, leaving it running. Throws with the log's error lines when criu
 * fails (and removes a directory it created).
 */
export function criuDump(pid: number, opts: CriuDumpOptions = {}): CriuDump {
  ensureLoopback();
  const own = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `td-criu-${process.pid}-`));
  const args = ['dump', '-t', String(pid), '-D', dir, '--leave-running', '-o', 'dump.log', '-v4'];
  if (opts.shellJob ?? true) args.push('--shell-job');
  args.push(...(opts.extra ?? []));
  const r = spawnSync(CRIU, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000 });
  let log = '';
  try { log = readFileSync(join(dir, 'dump.log'), 'utf8'); } catch { /* criu failed before opening it */ }
  if (r.status !== 0) {
    const errors = log.split('\n').filter((l) => /Error|Warn/.test(l)).slice(0, 20).join('\n');
    if (own) rmSync(dir, { recursive: true, force: true });
    throw new Error(`${CRIU} ${args.join(' ')} exited ${r.status ?? r.signal}${r.error ? ` (${r.error.message})` : ''}\n` +
      `${r.stderr ?? ''}${errors}`);
  }
  return { dir, log, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
