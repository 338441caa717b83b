#!/usr/bin/env bash
# Install, then run the project's main job: a container from a busybox root
# filesystem built locally from Debian's busybox-static (no network needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"

demo=$(mktemp -d /tmp/corral-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
corral runtime busybox-rootfs "$demo/rootfs"
corral runtime spec -b "$demo" --no-terminal sh -c \
    'echo "hello from $(hostname), pid $$"; id; grep CapEff /proc/self/status; ls /'
echo "== corral runtime run (foreground):"
corral runtime --root "$demo/state" run -b "$demo" demo
echo "== exit status passes through:"
corral runtime spec -b "$demo" --force --no-terminal sh -c 'exit 3'
set +e; corral runtime --root "$demo/state" run -b "$demo" demo; echo "exit status: $?"; set -e
echo "== create / start / state / kill / delete:"
corral runtime spec -b "$demo" --force --no-terminal sleep 1000
corral runtime --root "$demo/state" create -b "$demo" sleeper
corral runtime --root "$demo/state" list
corral runtime --root "$demo/state" start sleeper
corral runtime --root "$demo/state" state sleeper
corral runtime --root "$demo/state" kill sleeper KILL
corral runtime --root "$demo/state" delete --force sleeper
corral runtime --root "$demo/state" list
