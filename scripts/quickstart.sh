#!/usr/bin/env bash
# The README's first command: install what tdcollect needs, build it, then dump a real process tree
# (a small demo tree started here, in its own session) and show the images. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm ci --no-audit --no-fund

# A demo tree in its own session: a shell with a sleeping child, a subshell with a grandchild, and a
# stopped child.
setsid bash -c 'sleep 600 & (sleep 600 & wait) & sleep 600 & kill -STOP $!; wait' </dev/null >/dev/null 2>&1 &
root=$!
trap 'kill -CONT -- -$root 2>/dev/null; kill -KILL -- -$root 2>/dev/null || true' EXIT
sleep 0.5

out=$(mktemp -d /tmp/tdcollect-demo.XXXXXX)
rmdir "$out"
echo "\$ npx tdcollect dump --root $root -o $out --stats"
npx tdcollect dump --root "$root" -o "$out" --stats
echo
echo "\$ npx tdcollect show $out"
npx tdcollect show "$out"
echo
echo "\$ crit x $out ps"
crit x "$out" ps
echo
echo "\$ ls $out"
ls "$out"
