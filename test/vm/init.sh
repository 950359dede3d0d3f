#!/bin/busybox sh
# initramfs /init: load virtio + 9p + overlay, mount the host root read-only with a tmpfs overlay,
# mount the results share, switch_root and run the guest script named in the results share's env file.
/bin/busybox --install -s /bin
export PATH=/bin
# run.sh waits for this line on the console to know the kernel got as far as /init
echo "td-init: up"
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in $(cat /modules/order); do
  insmod /modules/$m.ko || echo "init: insmod $m failed"
done
mkdir -p /mnt/lower /mnt/rw /mnt/results
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /mnt/lower || { echo "init: mount hostroot failed"; poweroff -f; }
mount -t tmpfs -o size=512m tmpfs /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot || { echo "init: overlay failed"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /mnt/results || { echo "init: mount results failed"; poweroff -f; }
mount -t tmpfs -o mode=755 tmpfs /newroot/run
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
# the guest gets fresh /run and /tmp; a checkout that lives under one of them is laid back over them
# (read from the host through its own overlay, so the guest may write there too)
for v in TD_ROOT TD_WORK; do
  d=$(sed -n "s/^$v=//p" /mnt/results/env)
  case "$d" in
    /tmp/*|/run/*)
      [ -d "/newroot$d" ] && continue
      n=$(echo "$d" | tr / _)
      mkdir -p "/mnt/rw/up$n" "/mnt/rw/wk$n" "/newroot$d"
      mount -t overlay overlay -o "lowerdir=/mnt/lower$d,upperdir=/mnt/rw/up$n,workdir=/mnt/rw/wk$n" "/newroot$d" \
        || echo "init: cannot expose $d"
      ;;
  esac
done
mkdir -p /newroot/run/td-results
mount --move /mnt/results /newroot/run/td-results
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
ln -sf /proc/self/fd /newroot/dev/fd; ln -sf /proc/self/fd/0 /newroot/dev/stdin
ln -sf /proc/self/fd/1 /newroot/dev/stdout; ln -sf /proc/self/fd/2 /newroot/dev/stderr
mkdir -p /newroot/dev/shm /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
exec switch_root /newroot /bin/bash -c '
  set -a; . /run/td-results/env; set +a
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
  bash "$TD_GUEST" > /run/td-results/guest.log 2>&1
  echo $? > /run/td-results/exit-code.tmp
  dmesg > /run/td-results/dmesg.txt 2>&1
  mv /run/td-results/exit-code.tmp /run/td-results/exit-code
  sync
  echo o > /proc/sysrq-trigger
  exec 0</dev/null; while :; do read -r -t 5 || true; done   # builtins only: the 9p root is going away'
