#!/usr/bin/env bash
# Install everything, then run the linters and the whole test suite (as root:
# the tests make real namespaces, mounts and cgroups), then the tests that
# touch cgroups again inside a pure cgroup v2 VM with systemd as PID 1
# (scripts/test_v2.sh; CORRAL_SKIP_V2=1 leaves that out, saying so).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The msgspec-free mirrors (protocols/lite/) must say what protocols/ says.
.venv/bin/python -m protocols.gen_lite --check
.venv/bin/pytest -q tests "$@"
if [ "${CORRAL_SKIP_V2:-}" = 1 ]; then
    echo "test.sh: CORRAL_SKIP_V2=1: the cgroup v2 VM step was NOT run" >&2
    exit 0
fi
exec bash scripts/test_v2.sh
