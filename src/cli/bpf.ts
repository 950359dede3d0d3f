/**
 * tdcollect bpf pin|unpin|status: keep the BPF task iterator pinned in bpffs so that later runs (dump, ps,
 * the library) open the pinned file instead of loading the program (which costs 25–60 ms on a 6.18 kernel,
 * and needs CAP_BPF + CAP_PERFMON or CAP_SYS_ADMIN each time).
 *
 * The pinned iterator runs in all-tasks mode; subtrees are cut out in user space. The pin path is
 * versioned with the record layout (tasks-vN), so a newer tdcollect never reads an older pinned program.
 */
import { Command } from './commander.js';
import { chmodSync, mkdirSync, rmdirSync, existsSync, accessSync, readdirSync, constants as fsConstants } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { action, BufferedWriter } from './common.js';
import { UsageError } from '../errors.js';
import { isBpffs, unpin } from '../sys/bpfiter.js';
import { DEFAULT_PIN_PATH, LoadedIterator, bpfFactory, pinPath } from '../collector/sources/bpf/bpf.js';

function resolvePath(given: string | undefined): string {
  const p = given ?? pinPath() ?? DEFAULT_PIN_PATH;
  if (!p.startsWith('/')) throw new UsageError(`pin path must be absolute: ${p}`);
  return p;
}

/** Pin a freshly loaded iterator at path (replacing an older pin there); returns the path. */
export async function pinIterator(path: string, mode = 0o600): Promise<string> {
  const dir = dirname(path);
  // mount bpffs at /sys/fs/bpf when the target lies under it and nothing is mounted there
  if (path.startsWith('/sys/fs/bpf/')) (await import('../sys/bpf.js')).ensureBpffs('/sys/fs/bpf');
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (!isBpffs(dir)) throw new UsageError(`${dir} is not on a bpf filesystem (mount -t bpf bpf ${dir})`);
  const it = await LoadedIterator.load();
  try {
    it.configure(0, false); // all tasks, threads included: readers filter
    unpin(path);
    it.link.pin(path);
    chmodSync(path, mode);
  } finally {
    it.close(); // the pin keeps the link and program alive
  }
  return path;
}

/** Remove the pin and its directory when that is now empty; false when nothing was pinned. */
export function unpinIterator(path: string): boolean {
  const removed = unpin(path);
  const dir = dirname(path);
  if (dir !== '/sys/fs/bpf' && isBpffs(dir)) {
    try { rmdirSync(dir); } catch { /* not empty or gone */ }
  }
  return removed;
}

function parseMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) throw new UsageError(`invalid --mode '${text}': expected octal like 0600 or 0644`);
  return parseInt(text, 8);
}

/**
 * Pins beside `path` named like tdcollect's versioned pins (tasks-vN) but of another version: what an earlier
 * tdcollect left, which this one never reads.
 */
function stalePins(path: string): string[] {
  const versioned = /^tasks-v\d+$/;
  const name = basename(path);
  if (!versioned.test(name)) return [];
  try {
    return readdirSync(dirname(path)).filter((n) => versioned.test(n) && n !== name).sort()
      .map((n) => join(dirname(path), n));
  } catch {
    return [];
  }
}

export function register(program: Command): void {
  const bpf = program.command('bpf').description('manage the pinned BPF task iterator');
  bpf
    .command('pin')
    .description('load the task iterator and pin it in bpffs, so later runs skip the load')
    .option('-p, --path <file>', `pin location (default ${DEFAULT_PIN_PATH}, or $TDCOLLECT_BPF_PIN)`)
    .option('-m, --mode <octal>', 'file mode of the pin; 0644 lets any user list every task and its credentials', '0600')
    .action(action(async (opts: { path?: string; mode: string }) => {
      const path = resolvePath(opts.path);
      const mode = parseMode(opts.mode);
      await pinIterator(path, mode);
      process.stdout.write(`pinned ${path} (mode ${mode.toString(8).padStart(4, '0')})\n`);
    }));
  bpf
    .command('unpin')
    .description('remove the pinned task iterator')
    .option('-p, --path <file>', `pin location (default ${DEFAULT_PIN_PATH}, or $TDCOLLECT_BPF_PIN)`)
    .action(action(async (opts: { path?: string }) => {
      const path = resolvePath(opts.path);
      process.stdout.write(unpinIterator(path) ? `unpinned ${path}\n` : `nothing pinned at ${path}\n`);
    }));
  bpf
    .command('status')
    .description('say whether an iterator is pinned and whether the bpf source can work here')
    .option('-p, --path <file>', `pin location (default ${DEFAULT_PIN_PATH}, or $TDCOLLECT_BPF_PIN)`)
    .action(action(async (opts: { path?: string }) => {
      const path = resolvePath(opts.path);
      const out = new BufferedWriter(1);
      let pinned = 'no';
      if (existsSync(path)) {
        try { accessSync(path, fsConstants.R_OK); pinned = 'yes, readable'; } catch { pinned = 'yes, not readable by this user'; }
      }
      out.write(`pin: ${path}: ${pinned}\n`);
      for (const stale of stalePins(path)) {
        out.write(`older pin: ${stale} (left by an earlier tdcollect, never read by this one; remove it with tdcollect bpf unpin -p ${stale})\n`);
      }
      const p = await bpfFactory.probe();
      out.write(`bpf source: ${p.ok ? `ok (${p.detail ?? ''})` : `unavailable: ${p.reason}`}\n`);
      out.flush();
    }));
}
