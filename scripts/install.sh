#!/usr/bin/env bash
# Install everything Corral needs on a Debian host, as root: the apt packages,
# a virtual environment in .venv, and the C build (cffi extension + monitor).
# Idempotent: a second run only rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(busybox-static crun runc gcc libc6-dev musl-tools python3-dev python3-venv procps skopeo umoci docker-registry python3-nftables
    # Peers the tests and benchmarks drive or compare with (each started by
    # them with a root of its own): dockerd and containerd, Docker Compose v1,
    # podman and buildah.
    docker.io containerd docker-compose podman buildah)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    # No service is started by the install (docker.io's and containerd's would
    # take the host's default sockets and firewall): policy-rc.d says no.
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || { [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
    [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# The build's own output goes to a log, shown only if it fails.
log=$(mktemp)
# compat: a plain path in a .pth file; the default editable mode installs an
# import hook whose own imports cost every interpreter start ~6 ms here.
if ! .venv/bin/pip install -e '.[test]' --config-settings editable_mode=compat >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
fi
rm -f "$log"
# libnftables' Python binding (outbound NAT: supervisor/network/nat.py) is
# Debian's python3-nftables, for the system's Python; it is pure Python over
# ctypes, so the venv's interpreter (which may be another) gets it linked in.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ -d /usr/lib/python3/dist-packages/nftables ]; then
    ln -sfn /usr/lib/python3/dist-packages/nftables "$site/nftables"
fi
# corral-runc on the PATH is its native front (native/runc_front.c): the
# shim's per-container verbs without a Python start; the rest it hands to the
# Python corral-runc. A copy, not a link: pip rewrites its script in place.
install -m 755 supervisor/libexec/corral-runc .venv/bin/corral-runc
# Bytecode now, so that no command compiles Corral's modules at its start (where
# PYTHONDONTWRITEBYTECODE is set, nothing would ever be cached: +13 ms a command).
.venv/bin/python -m compileall -q supervisor protocols >/dev/null
echo "corral installed: $(pwd)/.venv/bin/corral"
