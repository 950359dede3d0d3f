#!/bin/bash
# Guest side of `npm run test:vm`: C faithfulness checks, then the vitest guest suite. Writes into the
# results share: summary.txt, vitest.json, junit.xml; the exit code is written by init.
. "$TD_ROOT/test/vm/guest/setup.sh"
R=/run/td-results
fail=0
sum() { echo "$*" | tee -a "$R/summary.txt"; }
check() { # NAME EXPECTED-SUBSTRING CMD...
  local name=$1 want=$2; shift 2
  local out; out=$("$@" 2>&1)
  if printf '%s\n' "$out" | grep -qF -- "$want"; then sum "ok   c: $name"; else sum "FAIL c: $name (wanted '$want')"; printf '%s\n' "$out" | head -5 | tee -a "$R/summary.txt"; fail=1; fi
}
sum "guest: $(uname -r), $(nproc) cpus, module $(cat /sys/module/task_diag/version 2>/dev/null || echo MISSING)"
# C checks with the selftest's own programs (exact 2015 request bytes, 4096-byte buffer)
check "one: self with creds" "tasks: 1" task_diag_v1 one
# dump ALL count vs a /proc count taken right after (the ls and the subshell are the only extra tasks)
n_td=$(task_diag_v1 all -q | sed -n 's/^tasks: //p'); n_proc=$(ls -d /proc/[0-9]* | wc -l)
if [ -n "$n_td" ] && [ "$n_td" -ge $((n_proc - 2)) ] && [ "$n_td" -le $((n_proc + 1)) ]; then sum "ok   c: all: $n_td tasks, /proc lists $n_proc"; else sum "FAIL c: all: $n_td tasks, /proc lists $n_proc"; fail=1; fi
check "children of 1" "comm=bash" task_diag_v1 children 1
check "children of missing pid -> ESRCH in NLMSG_DONE" "error: -3" task_diag_v1 children 1073741808
check "unknown strategy -> EINVAL" "error: -22" task_diag_v1 strategy 7 1
check "one: pid 1 as nobody -> EPERM" "error: -1" setpriv --reuid=65534 --regid=65534 --clear-groups task_diag_v1 one 1
check "all as nobody -> only itself" "tasks: 1" setpriv --reuid=65534 --regid=65534 --clear-groups task_diag_v1 all -q
check "all in a new pid ns -> 1 task" "tasks: 1" unshare -pf --mount-proc task_diag_v1 all -q

# vitest (compiled node_modules from the host root; one fork, no watch)
t0=$(date +%s)
node node_modules/vitest/vitest.mjs run --config test/vm/vitest.vm.config.ts \
  --reporter=default --reporter=json --outputFile.json="$R/vitest.json" \
  --reporter=junit --outputFile.junit="$R/junit.xml" > "$R/vitest.log" 2>&1
vrc=$?
sum "vitest: exit $vrc in $(( $(date +%s) - t0 ))s"
sed 's/\x1b\[[0-9;]*m//g' "$R/vitest.log" | grep -E '^ *(✓|❯|×) test/|^ *(Test Files|Tests) ' | tee -a "$R/summary.txt"
if [ $vrc -ne 0 ]; then
  sed 's/\x1b\[[0-9;]*m//g' "$R/vitest.log" | grep -E -A12 '(FAIL|×|AssertionError|Error:)' | head -120 | tee -a "$R/summary.txt"
  fail=1
fi
# nothing a dump took is still held once the suite is over; the module unloads; kmemleak where the kernel has it
v=$(cat /sys/module/task_diag/parameters/dump_views 2>&1)
if [ "$v" = 0 ]; then sum "ok   c: dump_views 0 after the suite"; else sum "FAIL c: dump_views '$v' after the suite"; fail=1; fi
if rmmod task_diag 2>"$R/rmmod.err"; then sum "ok   c: module unloads after the suite"; else sum "FAIL c: rmmod: $(cat "$R/rmmod.err")"; fail=1; fi
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null
if [ -e /sys/kernel/debug/kmemleak ]; then
  echo scan > /sys/kernel/debug/kmemleak; sleep 6; echo scan > /sys/kernel/debug/kmemleak
  if grep -q task_diag /sys/kernel/debug/kmemleak; then sum "FAIL c: kmemleak reports task_diag objects"; grep -A12 task_diag /sys/kernel/debug/kmemleak | head -40 >> "$R/summary.txt"; fail=1
  else sum "ok   c: kmemleak: no task_diag objects"; fi
else
  sum "note c: kmemleak not built into $(uname -r) (CONFIG_DEBUG_KMEMLEAK unset); leaks checked by dump_views and unload"
fi
exit $fail
