#!/usr/bin/env bash
# Installs what tdcollect needs on Debian 12, as root: the build and test toolchain (clang for the BPF
# program, gcc for test fixtures), criu and crit (criu runs in the QEMU guest), zstd for the archive tests,
# and QEMU + a kernel's headers for the
# TASKDIAG module's guest tests. Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(
  ca-certificates git procps util-linux strace hyperfine
  gcc make libc6-dev clang llvm libbpf-dev libbpf1 bpftool
  criu python3-protobuf zstd
  qemu-system-x86 busybox-static kmod cpio xz-utils linux-headers-amd64
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
