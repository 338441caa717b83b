#!/usr/bin/env bash
# Run the integration tests with the monitor built with AddressSanitizer and
# UndefinedBehaviorSanitizer, then rebuild the normal one. A report fails the run.
#
#   sudo bash scripts/sanitize.sh [PYTEST ARGS...]
#
# Only the monitor: the cffi extension would need libasan preloaded into Python.
# Leak checking is off: the monitor keeps its plan until it exits, on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."

logs=$(mktemp -d /tmp/corral-sanitize-XXXXXX)
opts=$(mktemp --suffix=.c)
trap 'rm -f "$opts"; bash scripts/install.sh >/dev/null' EXIT
# The runtime starts the monitor with a clean environment: the options are built in.
cat >"$opts" <<C
const char *__asan_default_options(void) { return "detect_leaks=0:log_path=$logs/asan"; }
const char *__ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"; }
C
gcc -std=gnu11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -Inative \
    native/monitor.c native/container.c native/plan.c "$opts" -o supervisor/libexec/corral-monitor
.venv/bin/pytest -q tests/integration "$@"
if compgen -G "$logs/*" >/dev/null; then
    cat "$logs"/* >&2
    echo "sanitizer reports in $logs" >&2
    exit 1
fi
rmdir "$logs"
echo "no sanitizer reports"
