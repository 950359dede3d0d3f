#!/usr/bin/env bash
# Run the task_diag module's guest suite inside QEMU (TCG) on Debian 12's kernels, one after the other:
# bookworm's 6.1 and bookworm-backports' 6.12 LTS. The host root is shared read-only over 9p with a tmpfs
# overlay, results are written to a second 9p share. Kernel images and headers are fetched with
# `apt-get download` and unpacked into the cache (headers already installed under /lib/modules are used
# as they are); bookworm-backports is read through a private apt configuration in the cache, never added
# to the machine's sources. The module is built with Debian 12's own gcc-12, as the headers ask.
#
#   bash test/vm/run.sh [--bench] [--cmd 'CMD']
#
#   (default)        build module + helpers, boot, run test/vm/guest/guest.sh (C checks + vitest suite)
#   --bench          run bench/vm-bench.sh in the guest instead (more memory, longer timeout)
#   --cmd 'CMD'      run CMD (a shell command line) in the guest instead; its output is printed
#
# Environment: TD_VM_KERNELS (which kernels, in order; each is a suite, `bookworm` or `bookworm-backports`,
# meaning the version that suite's linux-headers-amd64 depends on, or an exact version such as
# 6.12.95+deb12-amd64; default: both suites for the test suite, bookworm alone for --bench and --cmd),
# TD_VM_KVER (one exact version; same as TD_VM_KERNELS=VERSION), TD_VM_TIMEOUT (seconds per kernel,
# default 600; bench 1500), TD_VM_MEM (MiB), TD_VM_WORK (cache and run directory, default test/vm/.work;
# a checkout or cache under /tmp or /run is laid back over the fresh /tmp and /run the guest mounts),
# TD_BENCH_N (default 10000), TD_BENCH_RUNS (default 3), TD_VM_BOOT_WAIT (seconds a boot may take to reach
# /init before it is started again, once; default 180).
# Needs: qemu-system-x86, busybox-static, kmod, cpio, xz-utils, zstd, gcc-12, make, apt-get, dpkg-deb.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VM="$ROOT/test/vm"
WORK=${TD_VM_WORK:-$VM/.work}
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)   # absolute: apt reads relative Dir:: paths under /var
MODE=test
CMD=
while [ $# -gt 0 ]; do
  case "$1" in
    --bench) MODE=bench ;;
    --cmd) MODE=cmd; CMD="$2"; shift ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

t0=$(date +%s%N)
stamp() { local ms=$(( ($(date +%s%N) - t0) / 1000000 )); printf '[vm %4d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"; }
die() { echo "run.sh: $*" >&2; exit 1; }

for tool in qemu-system-x86_64 busybox cpio depmod xz zstd gcc make dpkg-deb apt-get apt-cache; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install qemu-system-x86 busybox-static kmod cpio xz-utils zstd gcc make)"
done

mkdir -p "$WORK/runs"
if [ -n "${TD_VM_KVER:-}" ]; then KERNELS=$TD_VM_KVER
elif [ -n "${TD_VM_KERNELS:-}" ]; then KERNELS=$TD_VM_KERNELS
elif [ "$MODE" = test ]; then KERNELS="bookworm bookworm-backports"
else KERNELS=bookworm
fi

# ---- private apt configuration for bookworm-backports (lists in the cache, refreshed once a day)
PAPT="$WORK/apt"
# (its own sources, lists, cache and an empty dpkg status: what the machine has installed does not count)
papt=(-o Dir::Etc::SourceList="$PAPT/sources.list" -o Dir::Etc::SourceParts="$PAPT/parts"
  -o Dir::Etc::Preferences="$PAPT/preferences" -o Dir::Etc::PreferencesParts="$PAPT/parts"
  -o Dir::State::Lists="$PAPT/lists" -o Dir::State::status=/dev/null -o Dir::Cache="$PAPT/cache"
  -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Debug::NoLocking=1)
backports_apt() {
  mkdir -p "$PAPT/lists/partial" "$PAPT/cache/archives/partial" "$PAPT/parts"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" > "$PAPT/sources.list"
  if [ -z "$(find "$PAPT/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null)" ]; then
    stamp "apt-get update (bookworm-backports, private configuration)"
    apt-get "${papt[@]}" -qq update >/dev/null || die "apt-get update of bookworm-backports failed"
  fi
}
# kver_of SUITE|VERSION -> sets KVER and APTOPT (the apt options that know that version)
kver_of() {
  local spec=$1
  APTOPT=()
  case "$spec" in
    bookworm)
      KVER=$(apt-cache depends linux-headers-amd64 2>/dev/null | awk '/Depends: linux-headers-/{sub("linux-headers-","",$2); print $2; exit}')
      [ -n "$KVER" ] || KVER=$(ls -d /lib/modules/*/build 2>/dev/null | head -1 | cut -d/ -f4)
      ;;
    bookworm-backports)
      backports_apt; APTOPT=("${papt[@]}")
      KVER=$(apt-cache "${papt[@]}" depends linux-headers-amd64 2>/dev/null | awk '/Depends: linux-headers-/{sub("linux-headers-","",$2); print $2; exit}')
      ;;
    *)
      KVER=$spec
      if ! apt-cache show "linux-headers-$KVER" >/dev/null 2>&1 && [ ! -d "/lib/modules/$KVER/build" ]; then
        backports_apt; APTOPT=("${papt[@]}")
      fi
      ;;
  esac
  [ -n "$KVER" ] || die "cannot find the kernel version for $spec (apt-get update?)"
}

# ---- headers (cache): the installed ones, else linux-headers-KVER + its -common and linux-kbuild packages
fetch_headers() {
  if [ -f "/lib/modules/$KVER/build/Makefile" ]; then KDIR=/lib/modules/$KVER/build; return; fi
  local hd="$WORK/headers-$KVER" pkgs
  KDIR="$hd/usr/src/linux-headers-$KVER"
  [ -f "$hd/.ok" ] && return
  stamp "fetching linux-headers-$KVER"
  rm -rf "$hd" "$WORK/dl"; mkdir -p "$hd" "$WORK/dl"
  pkgs=$(apt-cache "${APTOPT[@]}" depends "linux-headers-$KVER" | awk '/Depends: linux-(headers|kbuild)-/{print $2}' | sort -u)
  (cd "$WORK/dl" && apt-get "${APTOPT[@]}" download "linux-headers-$KVER" $pkgs >/dev/null 2>&1) \
    || die "apt-get download linux-headers-$KVER $pkgs failed"
  for d in "$WORK"/dl/*.deb; do dpkg-deb -x "$d" "$hd"; done
  rm -rf "$WORK/dl"
  # the arch Makefile includes the -common one by its installed path; point it into the cache
  sed -i "s|^include /usr/src/|include $hd/usr/src/|" "$KDIR/Makefile"
  [ -f "$KDIR/.config" ] && [ -e "$KDIR/scripts/Makefile.build" ] || die "incomplete headers in $hd"
  touch "$hd/.ok"
}

# ---- one kernel: caches, module build, boot, results
run_kernel() {
local spec=$1
# several runs may share a checkout: the caches are built under a lock, everything else is per run
exec 9>"$WORK/.lock"
flock 9
kver_of "$spec"
fetch_headers

# ---- kernel image (cache): apt-get download + dpkg-deb -x, depmod, vmlinux for PVH boot
KROOT="$WORK/kernel-$KVER"
if [ ! -f "$KROOT/.ok" ]; then
  stamp "fetching linux-image-$KVER"
  rm -rf "$KROOT" "$WORK/dl"; mkdir -p "$KROOT" "$WORK/dl"
  (cd "$WORK/dl" && apt-get "${APTOPT[@]}" download "linux-image-$KVER" >/dev/null 2>&1 || apt-get "${APTOPT[@]}" download "linux-image-$KVER-unsigned" >/dev/null)
  dpkg-deb -x "$WORK"/dl/linux-image-*.deb "$KROOT"
  rm -rf "$WORK/dl"
  depmod -b "$KROOT" "$KVER"
  # vmlinux: the compressed stream inside the bzImage, as scripts/extract-vmlinux finds it
  # (6.1: XZ; 6.12: zstd)
  img="$KROOT/boot/vmlinuz-$KVER"
  for fmt in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd'; do
    for off in $(LC_ALL=C grep -obUaP "${fmt#*:}" "$img" | cut -d: -f1); do
      tail -c +$((off + 1)) "$img" | "${fmt%%:*}" -dc > "$KROOT/vmlinux" 2>/dev/null || true  # trailing data after the stream
      [ "$(head -c 4 "$KROOT/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] && break 2
      rm -f "$KROOT/vmlinux"
    done
  done
  [ -s "$KROOT/vmlinux" ] || die "no XZ- or zstd-compressed vmlinux in $img"
  touch "$KROOT/.ok"
fi
MODDIR="$KROOT/lib/modules/$KVER"


# ---- initramfs (cache, keyed by kernel version and init script)
INITRD="$WORK/initrd-$KVER.cpio"
if [ ! -f "$INITRD" ] || [ "$VM/init.sh" -nt "$INITRD" ] || [ "$VM/run.sh" -nt "$INITRD" ]; then
  stamp "building initramfs"
  IR="$WORK/initrd"; rm -rf "$IR"; mkdir -p "$IR"/{bin,dev,proc,sys,mnt,newroot,modules}
  cp "$(command -v busybox)" "$IR/bin/busybox"
  # virtio-pci, 9p over virtio and overlay, each after what it depends on (modprobe reads modules.dep):
  # 6.1 builds virtio as modules and has fscache apart; 6.12 builds virtio in and 9pnet needs netfs
  for m in virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" || die "module $m not in $KVER"
  done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' > "$IR/modules/paths"
  while read -r f; do
    m=$(basename "$f"); m=${m%%.ko*}
    case "$f" in
      *.xz) xz -dc "$f" > "$IR/modules/$m.ko" ;;
      *.zst) zstd -qdc "$f" > "$IR/modules/$m.ko" ;;
      *) cp "$f" "$IR/modules/$m.ko" ;;
    esac
    echo "$m" >> "$IR/modules/order"
  done < "$IR/modules/paths"
  rm "$IR/modules/paths"
  cp "$VM/init.sh" "$IR/init"; chmod +x "$IR/init"
  (cd "$IR" && find . | cpio -o -H newc --quiet > "$INITRD")
  rm -rf "$IR"
fi

flock -u 9


# ---- per run: module and C helpers (always rebuilt: ~3 s), results share
RUN=$(mktemp -d "$WORK/runs/$MODE-$KVER.XXXXXX")
RES="$RUN/results"
mkdir -p "$RES" "$RUN/module" "$RUN/bin"
ln -sfn "runs/$(basename "$RUN")" "$WORK/last-$MODE"
ln -sfn "runs/$(basename "$RUN")" "$WORK/last-$MODE-$KVER"
stamp "building task_diag.ko for $KVER (run dir $RUN)"
cp "$ROOT"/kernel/task_diag/{task_diag.c,task_diag.h,Kbuild} "$RUN/module/"
# no BTF for the module: 6.12's headers ship vmlinux and would ask for pahole; 6.1's skip it anyway
make -s -C "$KDIR" M="$RUN/module" CONFIG_DEBUG_INFO_BTF_MODULES= modules 2>&1 | { grep -v -e 'Skipping BTF generation' -e '^$' || true; }
[ -f "$RUN/module/task_diag.ko" ] || die "module build failed"
make -s -C "$ROOT/kernel/task_diag/selftest" OUT="$RUN/bin" >/dev/null
gcc -O2 -Wall -pthread -o "$RUN/bin/vmtree" "$VM/fixtures/vmtree.c"
case "$MODE" in
  test) GUEST="$VM/guest/guest.sh"; TIMEOUT=${TD_VM_TIMEOUT:-600}; MEM=${TD_VM_MEM:-1024} ;;
  bench) GUEST="$ROOT/bench/vm-bench.sh"; TIMEOUT=${TD_VM_TIMEOUT:-1500}; MEM=${TD_VM_MEM:-2048} ;;
  cmd) printf '%s\n' "$CMD" > "$RES/cmd.sh"; GUEST="$VM/guest/cmd.sh"; TIMEOUT=${TD_VM_TIMEOUT:-600}; MEM=${TD_VM_MEM:-1024} ;;
esac
cat > "$RES/env" <<EOF
TD_ROOT=$ROOT
TD_WORK=$WORK
TD_RUN=$RUN
TD_KVER=$KVER
TD_MODDIR=$MODDIR
TD_GUEST=$GUEST
TD_BENCH_N=${TD_BENCH_N:-10000}
TD_BENCH_RUNS=${TD_BENCH_RUNS:-3}
EOF

# A TCG guest on a loaded host now and then stalls in the kernel's own start-up, before /init runs (RCU
# stalls, "timer wakeup didn't happen", init blocked): /init prints BOOT_MARK on the console first thing,
# and a boot that has not shown it within BOOT_WAIT seconds is killed and started again, once.
BOOT_MARK="td-init: up"
BOOT_WAIT=${TD_VM_BOOT_WAIT:-180}
for attempt in 1 2; do
  stamp "booting $KVER (TCG, ${MEM} MiB, timeout ${TIMEOUT}s)"
  set +e
  timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -m "$MEM" -smp 2 -nographic -no-reboot \
    -kernel "$KROOT/vmlinux" -initrd "$INITRD" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 td_results=results" \
    -fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=r,mount_tag=hostroot \
    -fsdev local,id=o,path="$RES",security_model=none,multidevs=remap \
    -device virtio-9p-pci,fsdev=o,mount_tag=results \
    > "$RES/console.log" 2>&1 </dev/null &
  qpid=$!
  booted=0
  for ((w = 0; w < BOOT_WAIT * 2; w++)); do
    if grep -q -F "$BOOT_MARK" "$RES/console.log" 2>/dev/null; then booted=1; break; fi
    kill -0 "$qpid" 2>/dev/null || break
    sleep 0.5
  done
  if [ "$booted" = 0 ] && kill -0 "$qpid" 2>/dev/null && [ "$attempt" = 1 ]; then
    kill -TERM "$qpid" 2>/dev/null
    wait "$qpid"
    set -e
    mv "$RES/console.log" "$RES/console-stalled-boot.log"
    echo "run.sh: $KVER did not reach /init within ${BOOT_WAIT}s (kernel start-up stalled; console tail below, whole log in console-stalled-boot.log); booting again" >&2
    tail -n 8 "$RES/console-stalled-boot.log" >&2
    continue
  fi
  wait "$qpid"
  qrc=$?
  set -e
  break
done
stamp "guest finished (qemu exit $qrc)"

fail=0
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
  echo "run.sh: guest timed out after ${TIMEOUT}s; console tail:" >&2
  tail -n 40 "$RES/console.log" >&2
  fail=1
fi
[ -f "$RES/summary.txt" ] && sed "s/^/[$KVER] /" "$RES/summary.txt"
[ "$MODE" = cmd ] && [ -f "$RES/cmd.out" ] && cat "$RES/cmd.out"
[ "$MODE" = bench ] && [ -f "$RES/bench.txt" ] && cat "$RES/bench.txt"

if [ ! -f "$RES/exit-code" ]; then
  echo "run.sh: the guest wrote no exit code; console tail:" >&2
  tail -n 40 "$RES/console.log" >&2
  fail=1
else
  grc=$(cat "$RES/exit-code")
  [ "$grc" = 0 ] || { echo "run.sh: guest suite failed (exit $grc)" >&2; fail=1; }
fi
# Kernel log: any BUG / WARNING / Oops / lockdep report fails the run
# (the console only up to the power-off request: what follows is the shutdown itself)
[ -f "$RES/console.log" ] && sed '/sysrq: Power Off/q' "$RES/console.log" > "$RES/console-until-poweroff.log"
for f in "$RES/dmesg.txt" "$RES/console-until-poweroff.log"; do
  [ -f "$f" ] || continue
  if grep -E -n 'BUG:|WARNING:|Oops|general protection fault|possible circular locking|possible recursive locking|inconsistent lock state|lockdep|Call Trace:|kernel BUG|UBSAN|KASAN|refcount_t:' "$f" >"$RES/kernel-problems.txt"; then
    echo "run.sh: kernel log problems in $(basename "$f"):" >&2
    head -n 40 "$RES/kernel-problems.txt" >&2
    fail=1
  fi
done
if [ "$fail" -ne 0 ]; then
  echo "run.sh: $KVER FAILED (logs in $RES)" >&2
  echo "FAILED  $KVER  $RES" >> "$RESULTS"
  return 1
fi
echo "run.sh: $KVER passed (logs in $RES)"
echo "passed  $KVER  $RES" >> "$RESULTS"
}

RESULTS=$(mktemp "$WORK/runs/.results.XXXXXX")
status=0
for k in $KERNELS; do
  stamp "kernel $k"
  set +e
  (set -e; run_kernel "$k")   # a subshell, so that set -e holds inside and a failure moves on to the next kernel
  [ $? -eq 0 ] || status=1
  set -e
done
stamp "total"
sed 's/^/run.sh: /' "$RESULTS"
rm -f "$RESULTS"
# keep the logs of the last few runs only
ls -1dt "$WORK"/runs/*/ 2>/dev/null | tail -n +9 | xargs -r rm -rf
exit $status
