#!/usr/bin/env bash
# Install everything, then run the linters and the whole test suite (as root:
# the tests make real namespaces, mounts and cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The msgspec-free mirrors (protocols/lite/) must say what protocols/ says.
.venv/bin/python -m protocols.gen_lite --check
exec .venv/bin/pytest -q tests "$@"
