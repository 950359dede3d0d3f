#!/usr/bin/env bash
# Run the task_diag module's guest suite inside QEMU (TCG): Debian 12's own kernel, the host root shared
# read-only over 9p with a tmpfs overlay, results written to a second 9p share.
#
#   bash test/vm/run.sh [--bench] [--cmd 'CMD']
#
#   (default)        build module + helpers, boot, run test/vm/guest/guest.sh (C checks + vitest suite)
#   --bench          run bench/vm-bench.sh in the guest instead (more memory, longer timeout)
#   --cmd 'CMD'      run CMD (a shell command line) in the guest instead; its output is printed
#
# Environment: TD_VM_TIMEOUT (seconds, default 420; bench 1500), TD_VM_MEM (MiB), TD_VM_WORK (cache and
# run directory, default test/vm/.work; a checkout or cache under /tmp or /run is laid back over the fresh
# /tmp and /run the guest mounts), TD_VM_KVER
# (default: the version linux-headers-amd64 depends on), TD_BENCH_N (default 10000), TD_BENCH_RUNS (default 3).
# Needs: qemu-system-x86, busybox-static, kmod, cpio, xz-utils, linux-headers-amd64, gcc, make, apt-get.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VM="$ROOT/test/vm"
WORK=${TD_VM_WORK:-$VM/.work}
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

for tool in qemu-system-x86_64 busybox cpio depmod xz gcc make dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install qemu-system-x86 busybox-static kmod cpio xz-utils gcc make)"
done

# ---- kernel version: the one linux-headers-amd64 depends on, so image and headers match
KVER=${TD_VM_KVER:-$(apt-cache depends linux-headers-amd64 2>/dev/null | awk '/Depends: linux-headers-/{sub("linux-headers-","",$2); print $2; exit}')}
[ -n "$KVER" ] || KVER=$(ls -d /lib/modules/*/build 2>/dev/null | head -1 | cut -d/ -f4)
[ -n "$KVER" ] || die "cannot find linux-headers-amd64 (apt-get install --no-install-recommends linux-headers-amd64)"
KDIR=/lib/modules/$KVER/build
[ -d "$KDIR" ] || die "headers for $KVER missing: $KDIR"
mkdir -p "$WORK/runs"
# several runs may share a checkout: the caches are built under a lock, everything else is per run
exec 9>"$WORK/.lock"
flock 9

# ---- kernel image (cache): apt-get download + dpkg-deb -x, depmod, vmlinux for PVH boot
KROOT="$WORK/kernel-$KVER"
if [ ! -f "$KROOT/.ok" ]; then
  stamp "fetching linux-image-$KVER"
  rm -rf "$KROOT" "$WORK/dl"; mkdir -p "$KROOT" "$WORK/dl"
  (cd "$WORK/dl" && apt-get download "linux-image-$KVER" >/dev/null 2>&1 || apt-get download "linux-image-$KVER-unsigned" >/dev/null)
  dpkg-deb -x "$WORK"/dl/linux-image-*.deb "$KROOT"
  rm -rf "$WORK/dl"
  depmod -b "$KROOT" "$KVER"
  # vmlinux: the XZ stream inside the bzImage (what scripts/extract-vmlinux does)
  img="$KROOT/boot/vmlinuz-$KVER"
  for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$img" | cut -d: -f1); do
    tail -c +$((off + 1)) "$img" | xz -dc > "$KROOT/vmlinux" 2>/dev/null || true  # trailing data after the stream
    [ "$(head -c 4 "$KROOT/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] && break
    rm -f "$KROOT/vmlinux"
  done
  [ -s "$KROOT/vmlinux" ] || die "no XZ-compressed vmlinux in $img"
  touch "$KROOT/.ok"
fi
MODDIR="$KROOT/lib/modules/$KVER"


# ---- initramfs (cache, keyed by kernel version and init script)
INITRD="$WORK/initrd-$KVER.cpio"
if [ ! -f "$INITRD" ] || [ "$VM/init.sh" -nt "$INITRD" ]; then
  stamp "building initramfs"
  IR="$WORK/initrd"; rm -rf "$IR"; mkdir -p "$IR"/{bin,dev,proc,sys,mnt,newroot,modules}
  cp "$(command -v busybox)" "$IR/bin/busybox"
  for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p overlay; do
    f=$(find "$MODDIR/kernel" -name "$m.ko*" | head -1)
    [ -n "$f" ] || { echo "run.sh: module $m not in $KVER (skipped)" >&2; continue; }
    case "$f" in
      *.xz) xz -dc "$f" > "$IR/modules/$m.ko" ;;
      *) cp "$f" "$IR/modules/$m.ko" ;;
    esac
    echo "$m" >> "$IR/modules/order"
  done
  cp "$VM/init.sh" "$IR/init"; chmod +x "$IR/init"
  (cd "$IR" && find . | cpio -o -H newc --quiet > "$INITRD")
  rm -rf "$IR"
fi

flock -u 9

# ---- per run: module and C helpers (always rebuilt: ~3 s), results share
RUN=$(mktemp -d "$WORK/runs/$MODE.XXXXXX")
RES="$RUN/results"
mkdir -p "$RES" "$RUN/module" "$RUN/bin"
ln -sfn "runs/$(basename "$RUN")" "$WORK/last-$MODE"
stamp "building task_diag.ko for $KVER (run dir $RUN)"
cp "$ROOT"/kernel/task_diag/{task_diag.c,task_diag.h,Kbuild} "$RUN/module/"
make -s -C "$KDIR" M="$RUN/module" modules 2>&1 | { grep -v -e 'Skipping BTF generation' -e '^$' || true; }
[ -f "$RUN/module/task_diag.ko" ] || die "module build failed"
make -s -C "$ROOT/kernel/task_diag/selftest" OUT="$RUN/bin" >/dev/null
gcc -O2 -Wall -pthread -o "$RUN/bin/vmtree" "$VM/fixtures/vmtree.c"
case "$MODE" in
  test) GUEST="$VM/guest/guest.sh"; TIMEOUT=${TD_VM_TIMEOUT:-420}; MEM=${TD_VM_MEM:-1024} ;;
  bench) GUEST="$ROOT/bench/vm-bench.sh"; TIMEOUT=${TD_VM_TIMEOUT:-1500}; MEM=${TD_VM_MEM:-2048} ;;
  cmd) printf '%s\n' "$CMD" > "$RES/cmd.sh"; GUEST="$VM/guest/cmd.sh"; TIMEOUT=${TD_VM_TIMEOUT:-420}; MEM=${TD_VM_MEM:-1024} ;;
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

stamp "booting $KVER (TCG, ${MEM} MiB, timeout ${TIMEOUT}s)"
set +e
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -m "$MEM" -smp 2 -nographic -no-reboot \
  -kernel "$KROOT/vmlinux" -initrd "$INITRD" \
  -append "console=ttyS0 panic=-1 quiet loglevel=4 td_results=results" \
  -fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=r,mount_tag=hostroot \
  -fsdev local,id=o,path="$RES",security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=o,mount_tag=results \
  > "$RES/console.log" 2>&1 </dev/null
qrc=$?
set -e
stamp "guest finished (qemu exit $qrc)"

fail=0
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
  echo "run.sh: guest timed out after ${TIMEOUT}s; console tail:" >&2
  tail -n 40 "$RES/console.log" >&2
  fail=1
fi
[ -f "$RES/summary.txt" ] && cat "$RES/summary.txt"
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
stamp "total"
if [ "$fail" -ne 0 ]; then
  echo "run.sh: FAILED (logs in $RES)" >&2
  exit 1
fi
# keep the logs of the last few runs only
ls -1dt "$WORK"/runs/*/ 2>/dev/null | tail -n +7 | xargs -r rm -rf
echo "run.sh: passed (logs in $RES)"
