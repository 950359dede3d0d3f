#!/bin/bash
# The seed's table reproduced inside the QEMU guest (run with `npm run bench:vm` = test/vm/run.sh --bench):
# N sleeping processes, then `ps ax -o pid,ppid`, the C baselines (task_proc_all = readdir + /proc/PID/stat,
# task_diag_v1 all = one DUMP_ALL with a 4 KiB buffer, as in the 2015 cover letter) and the tdcollect
# sources, timed (median of RUNS), their system calls counted with an ftrace histogram (bench/vm-sccount.sh).
. "$TD_ROOT/test/vm/guest/setup.sh"
R=/run/td-results
N=${TD_BENCH_N:-10000}
RUNS=${TD_BENCH_RUNS:-3}
out="$R/bench.txt"
: > "$out"
log() { echo "$*" | tee -a "$out"; }
ulimit -u unlimited
echo 4194304 > /proc/sys/kernel/pid_max
echo 100000 > /proc/sys/kernel/threads-max

mkfifo /tmp/bench.ctl
vmtree many "$N" < /tmp/bench.ctl > "$R/bench-tree.json" &
exec 3> /tmp/bench.ctl   # the tree lives until fd 3 is closed
for i in $(seq 1 600); do [ -s "$R/bench-tree.json" ] && break; sleep 1; done
LEADER=$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' "$R/bench-tree.json")
[ -n "$LEADER" ] || { log "bench: tree did not start"; exit 1; }
TOTAL=$(ls -d /proc/[0-9]* | wc -l)
log "guest $(uname -r), $(nproc) vCPU (QEMU TCG); $N children of pid $LEADER; $TOTAL processes in total; median of $RUNS runs"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # NAME CMD...: median wall ms
  local name=$1; shift
  local ts=()
  for i in $(seq 1 "$RUNS"); do
    local t0=$(date +%s%N); "$@" > /dev/null; local t1=$(date +%s%N)
    ts+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${ts[@]}" | median
}
syscalls() { # CMD...: "TOTAL name=count ..." (ftrace histogram; strace -c is far too slow under TCG)
  bash "$TD_ROOT/bench/vm-sccount.sh" "$R/sccount.tmp" "$@"
}
declare -A MS SC
run_case() { # KEY CMD...
  local key=$1; shift
  MS[$key]=$(timeit "$key" "$@")
  SC[$key]=$(syscalls "$@")
}
run_case ps ps ax -o pid,ppid
run_case proc task_proc_all
run_case diag task_diag_v1 all -q
run_case child task_diag_v1 children "$LEADER" -q
log ""
log "| command | median ms | x faster than ps | system calls |"
log "|---|---:|---:|---|"
for k in ps proc diag child; do
  case $k in ps) name='`ps ax -o pid,ppid`';; proc) name='`task_proc_all` (readdir + /proc/PID/stat)';; diag) name='`task_diag_v1 all` (DUMP_ALL, 4 KiB buffer)';; child) name="\`task_diag_v1 children $LEADER\` (DUMP_CHILDREN, $N children)";; esac
  ratio=$(awk -v a="${MS[ps]}" -v b="${MS[$k]}" 'BEGIN {printf "%.1f", a / (b > 0 ? b : 1)}')
  tot=${SC[$k]%% *}; rest=${SC[$k]#* }
  top=$(printf '%s\n' $rest | sort -t= -k2 -nr | head -4 | tr '\n' ' ')
  case $k in diag|child) top="$top(one recvfrom per datagram)";; esac
  log "| $name | ${MS[$k]} | $ratio | $tot total: $top|"
done
log ""
log "tdcollect sources (in one node process, median of $RUNS; syscalls and round trips as the source counts them):"
log ""
node bench/vm-sources.mjs "$LEADER" "$RUNS" "${MS[ps]}" 2>&1 | tee -a "$out"
log ""
exec 3>&-
sleep 1
exit 0
