#!/usr/bin/env bash
# Install, then run the project's main job: a container from a busybox root
# filesystem built locally from Debian's busybox-static (no network needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"

demo=$(mktemp -d /tmp/corral-demo.XXXXXX)
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ]; then
        for c in $(corral ps -aq 2>/dev/null); do corral rm -f "$c" >/dev/null 2>&1 || true; done
        corral volume rm -f demo-data >/dev/null 2>&1 || true
        kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    fi
    # The parent cgroup the demo's containers lived under (it stays when they
    # go, as Docker's /docker does): the demo's own, so it goes with the demo.
    for d in /sys/fs/cgroup/*/corral-demo /sys/fs/cgroup/corral-demo; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
    done
    rm -rf "$demo"
}
trap cleanup EXIT
corral runtime busybox-rootfs "$demo/rootfs"
corral runtime spec -b "$demo" --no-terminal sh -c \
    'echo "hello from $(hostname), pid $$"; id; grep CapEff /proc/self/status; ls /'
echo "== corral runtime run (foreground):"
corral runtime --root "$demo/state" --cgroup-parent /corral-demo run -b "$demo" demo
echo "== exit status passes through:"
corral runtime spec -b "$demo" --force --no-terminal sh -c 'exit 3'
set +e; corral runtime --root "$demo/state" --cgroup-parent /corral-demo run -b "$demo" demo; echo "exit status: $?"; set -e
echo "== create / start / state / kill / delete:"
corral runtime spec -b "$demo" --force --no-terminal sleep 1000
corral runtime --root "$demo/state" --cgroup-parent /corral-demo create -b "$demo" sleeper
corral runtime --root "$demo/state" --cgroup-parent /corral-demo list
corral runtime --root "$demo/state" --cgroup-parent /corral-demo start sleeper
corral runtime --root "$demo/state" --cgroup-parent /corral-demo state sleeper
corral runtime --root "$demo/state" --cgroup-parent /corral-demo kill sleeper KILL
corral runtime --root "$demo/state" --cgroup-parent /corral-demo delete --force sleeper
corral runtime --root "$demo/state" --cgroup-parent /corral-demo list

echo
echo "== the daemon, driven with Docker's commands:"
export CORRAL_SOCKET="$demo/run/corral.sock"
corral daemon --root "$demo/root" --run-root "$demo/run" --cgroup-parent /corral-demo \
    2>"$demo/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$CORRAL_SOCKET" ] && break; sleep 0.05; done
corral events --format json >"$demo/events.json" &
events_pid=$!
R="$demo/rootfs"
corral run --rm --rootfs "$R" sh -c 'echo "hello from a daemon-run container"; exit 3' \
    || echo "exit status: $?"
tar -C "$R" -cf "$demo/busybox.tar" . && corral import "$demo/busybox.tar" busybox:local >/dev/null
corral images
corral run --rm -v demo-data:/data busybox:local sh -c 'echo "from an image, into a volume" > /data/f'
corral run --rm -v demo-data:/data:ro busybox:local cat /data/f
echo "hello from corral" > "$R/var/www/index.html"
# A small fleet: a web server with a health check, a worker that crashes now and
# then (restarted with backoff), and a service whose health check starts failing
# (restarted by --health-on-failure).
corral run -d --name web -m 64m --restart always --rootfs "$R" \
    --health-cmd 'wget -q -O /dev/null http://127.0.0.1:8080/index.html' \
    --health-interval 300ms --health-retries 2 \
    httpd -f -p 8080 -h /var/www >/dev/null
corral run -d --name worker --restart on-failure --restart-delay 200ms -e JOB=tick \
    --rootfs "$R" sh -c 'i=0; while [ $i -lt 3 ]; do echo "$JOB $i"; i=$((i+1)); sleep 0.2; done;
                         echo "worker crashing" >&2; exit 1' >/dev/null
corral run -d --name flaky --health-cmd 'test -e /tmp/ok' --health-interval 200ms \
    --health-retries 2 --health-on-failure restart --stop-timeout 1 --rootfs "$R" \
    sh -c 'touch /tmp/ok; sleep 1; rm /tmp/ok; sleep 1000' >/dev/null
sleep 4
corral ps
corral exec web sh -c 'echo "exec in web: $(hostname), pid $$"; wget -q -O - http://127.0.0.1:8080/'
corral logs --tail 3 worker
corral stats --no-stream
corral stop -t 1 worker flaky >/dev/null
corral ps -a
kill "$events_pid" 2>/dev/null || true
echo "== events seen by a subscriber:"
python3 -c 'import json,sys
for line in open(sys.argv[1]):
    e = json.loads(line); a = e["attributes"]
    extra = " ".join(f"{k}={a[k]}" for k in ("exitCode", "attempt", "delay") if k in a)
    print(e["seq"], e["action"], e["name"], extra)' \
    "$demo/events.json"
