/** Records of the BPF task iterator (struct td_task) built byte by byte, for codec and renderer tests. */
import {
  BIT_NO_NEW_PRIVS, FIELD_OFFSETS, HEADER_SIZE, MAX_GROUPS, MAX_RECORD_SIZE,
} from '../../src/collector/sources/bpf/record.js';

/**
 * A record built field by field, as the BPF program would write it: the 232-byte header and then only
 * min(ngroups, 32) groups. `edit` may change fields (ngroups included) before the record is cut to size.
 */
export function sampleRecord(edit?: (b: Buffer) => void): Buffer {
  const b = Buffer.alloc(MAX_RECORD_SIZE);
  const O = FIELD_OFFSETS;
  b.writeUInt32LE(4242, O.tgid);          // tgid
  b.writeUInt32LE(4243, O.pid);           // pid (a thread of 4242)
  b.writeUInt32LE(4200, O.ppid);          // ppid
  b.writeUInt32LE(4100, O.tpid);          // tpid, meaningful because ptrace != 0
  b.writeUInt32LE(4000, O.sid);           // sid
  b.writeUInt32LE(4001, O.pgid);          // pgid
  b.writeUInt32LE(0x0104, O.state);       // __state = TASK_STOPPED
  b.writeUInt32LE(0, O.exit_state);       // exit_state
  b.writeUInt32LE(0x00400040, O.flags);   // PF_FORKNOEXEC | PF_RANDOMIZE
  b.writeUInt32LE(0x1, O.ptrace);         // PT_PTRACED
  [1001, 1005, 1006, 1007].forEach((v, i) => b.writeUInt32LE(v, O.uid + 4 * i));  // uid euid suid fsuid
  [1002, 1003, 1004, 1008].forEach((v, i) => b.writeUInt32LE(v, O.gid + 4 * i));  // gid egid sgid fsgid
  b.writeUInt32LE(0x4, O.securebits);     // SECBIT_NO_SETUID_FIXUP
  b.writeUInt32LE(3, O.ngroups);          // 3 groups
  b.writeUInt32LE(0x0440000, O.personality); // ADDR_NO_RANDOMIZE | READ_IMPLIES_EXEC
  b.writeInt32LE(0x700, O.exit_code);     // raw exit code (ignored: not exited)
  b.writeInt32LE(130, O.prio);            // prio -> priority 30
  b.writeInt32LE(127, O.static_prio);     // static_prio -> nice 7
  b.writeUInt32LE(0, O.rt_priority);      // rt_priority
  b.writeUInt32LE(3, O.policy);           // SCHED_BATCH
  b.writeUInt32LE(2, O.seccomp);          // SECCOMP_MODE_FILTER
  b.writeUInt32LE(BIT_NO_NEW_PRIVS, O.bits); // no_new_privs
  b.writeBigUInt64LE(0x0000000000000420n, O.cap_inh); // CAP_KILL | CAP_NET_BIND_SERVICE
  b.writeBigUInt64LE(0x00000000000004e1n, O.cap_prm);
  b.writeBigUInt64LE(0x00000000000000c0n, O.cap_eff); // CAP_SETGID | CAP_SETUID
  b.writeBigUInt64LE(0x000001fffbbfffffn, O.cap_bnd); // high word 0x1ff, low word without SYS_BOOT/MKNOD
  b.writeBigUInt64LE(0x0000000000000420n, O.cap_amb);
  b.writeBigUInt64LE(0x0000000100000200n, O.blocked); // SIGUSR1 (bit 9) and bit 32
  b.writeBigUInt64LE(123456789n, O.start_time);      // clock ticks
  b.writeBigUInt64LE(0x7f12345678a0n, O.robust_list); // user address
  b.write('tg) (p g\0', O.comm, 'latin1');            // comm, NUL-padded
  b.writeUInt32LE(1, O.ns_depth);                     // one pid-namespace level below the reader's
  b.writeUInt32LE(7, O.ns_pid);                       // pid 7 in its own pid namespace
  // namespace inums: pid mnt net ipc uts user cgroup, and 0 for time (a kernel without time namespaces)
  [0xf00001cc, 0xf0000001, 0xf0000002, 0xf0000003, 0xf0000004, 0xf0000005, 0xf0000006, 0]
    .forEach((v, i) => b.writeUInt32LE(v, O.ns + 4 * i));
  [2000, 2001, 2019].forEach((v, i) => b.writeUInt32LE(v, O.groups + 4 * i)); // groups
  edit?.(b);
  const n = Math.min(b.readUInt32LE(O.ngroups), MAX_GROUPS);
  return Buffer.from(b.subarray(0, HEADER_SIZE + 4 * n)); // 232 + 4n bytes
}
