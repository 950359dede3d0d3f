#!/bin/bash
# The seed's table reproduced inside the QEMU guest (run with `npm run bench:vm` = test/vm/run.sh --bench):
# N sleeping processes, then `ps ax -o pid,ppid`, the C baselines (task_proc_all = readdir + /proc/PID/stat,
# task_diag_v1 all = one DUMP_ALL with a 4 KiB buffer, as in the 2015 cover letter) and the tdcollect
# sources, timed (median of RUNS) and their system calls counted with strace -c -f.
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
syscalls() { # CMD...: "total calls; top calls"
  strace -f -c -o "$R/strace.tmp" "$@" > /dev/null 2>&1
  awk '/^-+ / {s++; next} s==1 && NF>=5 {c[$NF]=$4; tot+=$4} END {printf "%d", tot; for (k in c) printf " %s=%s", k, c[k]}' "$R/strace.tmp"
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
log ""
log "| command | median ms | x faster than ps | syscalls (strace -c -f) |"
log "|---|---:|---:|---|"
for k in ps proc diag; do
  case $k in ps) name='`ps ax -o pid,ppid`';; proc) name='`task_proc_all` (readdir + /proc/PID/stat)';; diag) name='`task_diag_v1 all` (DUMP_ALL, 4 KiB buffer)';; esac
  ratio=$(awk -v a="${MS[ps]}" -v b="${MS[$k]}" 'BEGIN {printf "%.1f", a / (b > 0 ? b : 1)}')
  tot=${SC[$k]%% *}; rest=${SC[$k]#* }
  top=$(printf '%s\n' $rest | sort -t= -k2 -nr | head -4 | tr '\n' ' ')
  log "| $name | ${MS[$k]} | $ratio | $tot total: $top|"
done
log ""
log "tdcollect sources (in-process, node; median of $RUNS):"
node bench/vm-sources.mjs "$LEADER" "$RUNS" 2>&1 | tee -a "$out"
log ""
log "recvmsg calls of one DUMP_ALL:"
strace -f -e trace=recvfrom,recvmsg -o "$R/strace.recv" task_diag_v1 all -q >/dev/null
log "  task_diag_v1 all: $(grep -c 'recv' "$R/strace.recv") recv calls for $(task_diag_v1 all -q | sed -n 's/tasks: //p') tasks"
exec 3>&-
sleep 1
exit 0
