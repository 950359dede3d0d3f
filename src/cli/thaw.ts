/**
 * tdcollect thaw: undo cgroup freezes left behind by a collector that was killed (SIGKILL, power loss of
 * the process) before it could thaw. ptrace freezes need no such command: the kernel releases every tracee
 * when the tracer dies.
 *
 *   tdcollect thaw            thaw every cgroup recorded in the state dir whose collector is gone
 *   tdcollect thaw --force    also those whose recorded collector still runs
 *   tdcollect thaw PATH       thaw that cgroup (a directory, or a path inside the v2 / v1 freezer hierarchy)
 */
import type { Command } from './commander.js';
import { action } from './common.js';
import { resolveCgroup, thawCgroup } from '../collector/freeze/cgroupfs.js';
import { listRecords, ownerAlive, recordFile, removeRecord, stateDir } from '../collector/freeze/statefile.js';

export function register(program: Command): void {
  program
    .command('thaw')
    .description('thaw cgroups left frozen by a tdcollect that was killed during a --freeze cgroup dump')
    .argument('[cgroup]', 'thaw this cgroup (directory or path in the cgroup hierarchy) instead of the recorded ones')
    .option('--force', 'also thaw recorded freezes whose collector is still running')
    .action(action(async (path: string | undefined, opts: { force?: boolean }) => {
      const out: string[] = [];
      if (path !== undefined) {
        const c = resolveCgroup(0, path);
        thawCgroup(c.hierarchy, c.dir);
        removeRecord(recordFile(c.dir));
        out.push(`thawed ${c.dir}`);
      } else {
        const recs = listRecords();
        for (const { file, rec } of recs) {
          if (!opts.force && ownerAlive(rec)) {
            out.push(`left ${rec.cgroup}: frozen by tdcollect pid ${rec.pid}, which is still running (use --force)`);
            continue;
          }
          thawCgroup(rec.hierarchy, rec.cgroup);
          removeRecord(file);
          out.push(`thawed ${rec.cgroup} (frozen by tdcollect pid ${rec.pid} at ${rec.time})`);
        }
        if (!recs.length) out.push(`nothing to thaw (no freeze recorded in ${stateDir()})`);
      }
      process.stdout.write(out.join('\n') + '\n');
      return 0;
    }));
}
