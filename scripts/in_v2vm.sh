#!/usr/bin/env bash
# Run a command on this checkout inside a throw-away VM whose kernel has only
# cgroup v2 and whose PID 1 is systemd (../shared/tools/v2vm.sh --systemd, or
# $V2VM), as most users' hosts are. scripts/test_v2.sh and bench/v2_ratios.py
# use it.
#
# The checkout is copied (tracked and untracked-but-not-ignored files) to
# $CORRAL_V2_HOME/src and installed there with Debian's own python3, the one
# the VM has too: the venv built here runs unchanged inside, and the copy keeps
# the C build for that Python apart from the checkout's. The command runs in
# the copy, as a systemd service with Delegate=yes (v2vm's job unit).
#
# Usage: scripts/in_v2vm.sh COMMAND [ARGS...]   (as root)
# Exit status: the command's inside the VM; 124 past $CORRAL_V2_TIMEOUT; 125
# when the VM cannot start (the reason is printed: no QEMU, no image, no
# v2vm.sh) - never a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

V2VM=${V2VM:-$here/../shared/tools/v2vm.sh}
HOME_DIR=${CORRAL_V2_HOME:-/var/tmp/corral-v2}
# Software emulation runs Python ~7-15x slower than the host: the whole VM gets
# this long (v2vm.sh exits 124 past it).
TIMEOUT=${CORRAL_V2_TIMEOUT:-900}
# Baked into the VM image (a change rebuilds it once): crun, the peer the v2
# benchmark measures against.
export V2VM_EXTRA_PKGS=${V2VM_EXTRA_PKGS:-crun}

fail() { echo "in_v2vm: $*" >&2; exit 125; }

[ $# -gt 0 ] || fail "no command given"
[ "$(id -u)" = 0 ] || fail "needs root (the VM image is built with debootstrap and chroot)"
[ -x "$V2VM" ] || fail "no v2vm.sh at $V2VM (set V2VM=PATH): the cgroup v2 VM cannot run"
if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >&2 \
        || fail "Debian's python3-venv is needed to build the VM's environment"
fi

# The copy: what git would commit, as it is in the working tree now (all but
# its venv replaced each time, so a file deleted here goes there too).
src=$HOME_DIR/src
mkdir -p "$src"
find "$src" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard \
        | tar --null -T - -cf - | tar -C "$src" -xf -
else  # a checkout without git (an unpacked archive): all but what builds make
    tar --exclude=./.venv --exclude=./build --exclude='*.egg-info' --exclude=__pycache__ \
        --exclude='*.so' --exclude=./supervisor/libexec -cf - . | tar -C "$src" -xf -
fi

echo "in_v2vm: installing the copy with Debian's python3 ($(/usr/bin/python3 --version))" >&2
(cd "$src" && PYTHON=/usr/bin/python3 bash scripts/install.sh >/dev/null) \
    || fail "installing the copy with /usr/bin/python3 failed"

echo "in_v2vm: building or reusing the VM image, then: $*" >&2
set +e
"$V2VM" --systemd -s "$HOME_DIR" -w "$src" -m 3072 -t "$TIMEOUT" \
    -e PYTHONDONTWRITEBYTECODE=1 -e CORRAL_EXPECT_SYSTEMD=1 -- "$@"
rc=$?
set -e
case $rc in
    124) echo "in_v2vm: the VM ran past ${TIMEOUT}s (CORRAL_V2_TIMEOUT)" >&2 ;;
    125) echo "in_v2vm: the v2 VM did not start or did not report (see v2vm's message above)" >&2 ;;
esac
exit $rc
