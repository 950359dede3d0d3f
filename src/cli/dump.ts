/** tdcollect dump: freeze the tree rooted at --root, collect it, write images (or stream it). */
import { Command, Option } from './commander.js';
import { action } from './common.js';
import { manual } from './manual.js';
import { addStreamOptions } from './stream.js';
import { runDump } from './dump-run.js';

export { parseFreeze, precheckOutput, runDump, type DumpCliOptions } from './dump-run.js';

export function register(program: Command): void {
  const cmd = program
    .command('dump')
    .description('freeze the tree rooted at a process, collect every process and thread, write CRIU-format images')
    .requiredOption('-r, --root <pid>', 'root process of the tree (a process id, not a thread id)')
    .option('-o, --output <dir>', 'image directory to create (it must not exist, or be empty, unless --force)')
    .addOption(new Option('-s, --source <name>', 'where task data comes from; auto tries taskdiag, bpf, procfs')
      .choices(['auto', 'taskdiag', 'bpf', 'procfs']).default('auto'))
    .option('-f, --freeze <method>', 'ptrace, cgroup, cgroup=PATH or none', 'ptrace')
    .option('--force', 'replace a non-empty output directory (atomically)')
    .option('-q, --quiet', 'no progress line on stderr')
    .option('--stats', 'print phase timings, task counts and syscall/round-trip counts on stderr');
  addStreamOptions(cmd);
  cmd.action(action(runDump));
  manual(cmd, {
    summary: 'freeze a process tree, collect it, write CRIU-format images',
    description: [
      'Freezes the tree rooted at --root (every process and every thread below it), collects every task ' +
        'through one source, thaws the tree, and writes the images: inventory.img, pstree.img, one ' +
        'core-TID.img per thread, and tasks.img (the lossless record show, diff and the library read). The ' +
        'directory appears whole or not at all: it is written beside the target, made durable, then renamed ' +
        'into place.',
      'Sources: taskdiag (the TASKDIAG generic-netlink family, provided by the module in kernel/), bpf (a BPF ' +
        'task iterator, Linux >= 5.11 with BTF), procfs (/proc, works everywhere). auto takes the first that ' +
        'works in that order.',
      'Freezers: ptrace seizes and interrupts every thread (the default, as CRIU does); cgroup freezes the ' +
        'root task\'s cgroup (or PATH) with cgroup v2 cgroup.freeze or the v1 freezer, refusing a cgroup that ' +
        'holds tasks outside the tree; none reads the tree live (racy; marked live in tasks.img). The state ' +
        'recorded for each task is its state before the freeze. The tree is thawed on success, error, ' +
        'SIGINT, SIGTERM and SIGHUP; a cgroup freeze left by a killed collector is undone by tdcollect thaw.',
      '--stdout writes the snapshot as a stream instead of a directory: a header record, one record per ' +
        'task, an end record, as MessagePack maps or JSON Lines (--format).',
    ],
    exitStatus: [
      [0, 'the images were written'],
      [2, 'bad usage or argument (a pid that is not a positive integer, an unknown option)'],
      [3, 'no such process, or the root is a kernel thread or a thread id'],
      [4, 'a privilege is missing (the message names the capability and the pid)'],
      [5, 'the output directory is not empty (without --force) or cannot be written'],
      [6, 'the requested source or freezer is not available here (the message says what to do)'],
      [7, 'the tree could not be frozen consistently (already traced, still changing, timeout)'],
    ],
    examples: [
      ['tdcollect dump --root 1234 -o img/', 'freeze with ptrace, collect with the best source, write img/'],
      ['tdcollect dump --root 1234 -o img/ --source procfs --freeze cgroup', 'CRIU\'s path, freezing the cgroup'],
      ['tdcollect dump --root 1234 --stdout --format json | head', 'stream the snapshot as JSON Lines'],
    ],
    seeAlso: ['tdcollect-show(1)', 'tdcollect-diff(1)', 'tdcollect-thaw(1)', 'criu(8)'],
  });
}
