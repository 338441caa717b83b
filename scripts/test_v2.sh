#!/usr/bin/env bash
# The tests marked `cgroups`, `systemd` and `oldest_python`, again, inside the
# pure cgroup v2 VM with systemd as PID 1 (scripts/in_v2vm.sh): the markers
# choose them, not a list of files. About 4 minutes here (software emulation).
#
# Usage: scripts/test_v2.sh [PYTEST ARGS...]   (as root)
# Exit status: pytest's inside the VM; 125 when the VM cannot start, with why.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/in_v2vm.sh .venv/bin/python -m pytest -q \
    -m "cgroups or oldest_python or systemd" -p no:cacheprovider \
    --basetemp=/var/tmp/corral-v2-pytest "$@" tests
