/**
 * Manual pages (DESCRIPTION, EXIT STATUS, EXAMPLES) of the commands that do not attach their own with
 * manual(); OPTIONS come from each command's commander definition. main.ts attaches them after
 * registration, so `tdcollect CMD --help`, `tdcollect help CMD` and the generated docs share one source.
 */
import type { ManualPage } from './manual.js';

export const PAGES: Record<string, ManualPage> = {
  show: {
    summary: 'print a dump directory as a process tree, or as JSON',
    description: [
      'Reads tasks.img of a directory written by tdcollect dump and prints the tree: one line per process ' +
        '(pid, state, uid, comm) with its threads summarised, children indented below their parent. By ' +
        'default every CRIU image (inventory.img, pstree.img, core-TID.img) is also decoded strictly - every ' +
        'proto2 required field present - and checked against tasks.img; --no-verify reads tasks.img only.',
      '--json prints one document with a version field (schema version 1): the dump header and every task ' +
        'with every field it holds; 64-bit masks are hex strings as crit decode --pretty prints them.',
      'A truncated or corrupt image is reported on one line naming the file and the byte offset.',
    ],
    exitStatus: [
      [0, 'the snapshot was printed'],
      [2, 'a missing directory, or an unreadable, truncated or corrupt image (the line names file and offset)'],
    ],
    examples: [
      ['tdcollect show img/', 'the tree, one line per process'],
      ['tdcollect show --json img/ | jq \'.tasks | length\'', 'count the tasks'],
    ],
    seeAlso: ['tdcollect-dump(1)', 'crit(1)'],
  },
  ps: {
    summary: 'list live tasks, all or one subtree, from any source',
    description: [
      'Lists every task the caller may see, or the subtree of --root, without freezing anything. Columns ' +
        'follow ps(1): uid and gid are the effective ids, ruid and rgid the real ones. With --source bpf or ' +
        'auto a pinned iterator (tdcollect bpf pin) is used when one is readable, which skips loading the ' +
        'BPF program.',
      '--stdout writes the listing as a stream of records (a header, one per task, an end record) in ' +
        'MessagePack or JSON Lines instead of text.',
    ],
    exitStatus: [
      [0, 'the listing was printed'],
      [2, 'bad usage (an unknown column, an invalid pid)'],
      [3, 'the --root process does not exist'],
      [4, 'a privilege the source needs is missing (named with the pid where there is one)'],
      [6, 'the requested source is not available here'],
    ],
    examples: [
      ['tdcollect ps', 'every process: pid, ppid, stat, comm'],
      ['tdcollect ps --root 1234 --threads -o pid,tid,stat,comm', 'one subtree, a line per thread'],
      ['tdcollect ps --stdout --format json | head -3', 'the same as JSON Lines'],
    ],
    seeAlso: ['ps(1)', 'tdcollect-bpf(1)'],
  },
  check: {
    summary: 'report which sources, freezers and kernel features work here',
    description: [
      'Probes every source (taskdiag, bpf, procfs), every freezer (ptrace, cgroup v2 and the v1 freezer, ' +
        'none), the kernel features tdcollect uses (PROC_CHILDREN, BTF, bpffs, TASKSTATS, NETLINK_SOCK_DIAG) ' +
        'and the capabilities of the caller, and prints a line for each with the reason for anything missing. ' +
        'The last line names the source --source auto would use. --json prints the same as one document.',
    ],
    exitStatus: [
      [0, 'at least one source works'],
      [6, 'no source works here'],
    ],
    examples: [
      ['tdcollect check', 'what works on this machine'],
      ['tdcollect check --json | jq \'.sources\'', 'machine-readable'],
    ],
    seeAlso: ['tdcollect-dump(1)'],
  },
  thaw: {
    summary: 'undo a cgroup freeze left behind by a killed tdcollect',
    description: [
      'Every cgroup freeze is recorded in a small state file (/run/tdcollect/freeze-HASH.json, or ' +
        '$TDCOLLECT_STATE_DIR) before the cgroup is frozen and removed after it is thawed. A collector killed ' +
        'with SIGKILL cannot thaw; tdcollect thaw thaws every recorded cgroup whose collector is no longer ' +
        'running (--force: also those whose collector still runs) and removes the records. The next dump ' +
        'does the same on its own. With a CGROUP argument it thaws that cgroup whether or not it is recorded.',
      'ptrace freezes need no such step: the kernel releases the tracees of a tracer that dies.',
    ],
    exitStatus: [
      [0, 'every recorded freeze was undone (or there was none)'],
      [2, 'bad usage'],
      [4, 'a privilege is missing to write cgroup.freeze or freezer.state'],
    ],
    examples: [
      ['tdcollect thaw', 'thaw what a killed collector left frozen'],
      ['tdcollect thaw /sys/fs/cgroup/unified/app', 'thaw one cgroup'],
    ],
    seeAlso: ['tdcollect-dump(1)'],
  },
  bpf: {
    summary: 'pin, unpin and inspect the BPF task iterator',
    description: [
      'tdcollect bpf pin loads the task iterator and pins its link in bpffs (mounting bpffs at /sys/fs/bpf ' +
        'if needed; default path /sys/fs/bpf/tdcollect/tasks-v3 or $TDCOLLECT_BPF_PIN), so later dumps and ' +
        'ps skip the load and verification (25-60 ms on a 6.18 kernel) and need no privilege. A pin readable by other users ' +
        '(--mode 0644) lets them list every task with its credentials. tdcollect bpf unpin removes it; ' +
        'tdcollect bpf status says whether one is pinned, whether the bpf source works here, and names the ' +
        'pins an earlier version of tdcollect left beside it (tasks-vN of another N), which this one never reads.',
    ],
    exitStatus: [
      [0, 'done'],
      [4, 'CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) are missing'],
      [6, 'the kernel lacks BTF or BPF iterators, or libbpf is missing'],
    ],
    examples: [
      ['tdcollect bpf pin', 'pin the iterator for later runs'],
      ['tdcollect bpf unpin', 'remove it'],
    ],
    seeAlso: ['tdcollect-ps(1)', 'bpftool(8)'],
  },
};
