#!/bin/bash
# Sourced by the guest scripts: mounts the guest kernel's modules, cgroup2, loads task_diag.ko.
mkdir -p "/lib/modules/$TD_KVER"
mount --bind "$TD_MODDIR" "/lib/modules/$TD_KVER"
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
export TD_BIN="$TD_RUN/bin" TD_MODULE="$TD_RUN/module/task_diag.ko"
export PATH="$TD_BIN:$PATH"
hostname tdvm
insmod "$TD_MODULE" || echo "setup: insmod $TD_MODULE failed"
cd "$TD_ROOT"
