#!/bin/bash
# vm-sccount.sh OUT CMD...: run CMD and count its system calls with an ftrace histogram on
# raw_syscalls:sys_enter filtered by its pid (strace -c costs ~10 ms per call under QEMU TCG, this costs
# nothing measurable). Writes the histogram to OUT; prints "TOTAL name=count ..." (descending).
# Counts start at the exec of CMD (like strace -c CMD, which also counts execve and the loader).
out=$1; shift
T=/sys/kernel/tracing
mountpoint -q $T || mount -t tracefs nodev $T
trig=$T/events/raw_syscalls/sys_enter/trigger
bash -c 'echo "hist:keys=id.syscall:vals=hitcount:size=2048 if common_pid == $$" > '"$trig"' && exec "$@"' sccount "$@" > /dev/null 2>&1
cp $T/events/raw_syscalls/sys_enter/hist "$out"
spec=$(sed -n 's/^# trigger info: \(hist:keys=id.syscall:vals=hitcount.*\) \[active\]$/\1/p' "$out")
# remove the trigger again: the same text with a leading '!'
filter=$(grep -o 'if common_pid == [0-9]*' "$out" | head -1)
echo "!hist:keys=id.syscall:vals=hitcount:size=2048 $filter" > "$trig" 2>/dev/null
awk '/^\{ id:/ { n=$0; sub(/.*id: /, "", n); sub(/ *\[.*/, "", n); sub(/^sys_/, "", n); c=$NF; tot+=c; line=line " " n "=" c }
     END { printf "%d%s\n", tot, line }' "$out"
