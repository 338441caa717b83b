"""Restart policies and health checks, with real containers and a real daemon."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from protocols.lite import api
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox, pytest.mark.cgroups]


def _gone_or_zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # gone (also between an exists() and the read)
        return True


def wait_until(pred, what, limit=60.0):
    """Polls; the limit only bounds a hang (no speed is asserted)."""
    deadline = time.monotonic() + limit
    while not (v := pred()):
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.02)
    return v


def inspect(daemon, ref) -> dict:
    return json.loads(daemon.cli("inspect", ref).stdout)[0]


def events(daemon, name) -> list[dict]:
    out = daemon.cli(
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--format",
        "json",
        "--filter",
        f"container={name}",
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def run(daemon, rootfs, *args):
    p = daemon.cli("run", "-d", *args[:-1], "--rootfs", str(rootfs), "sh", "-c", args[-1])
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def settled(daemon, name):
    st = inspect(daemon, name)["State"]
    return st if st["Status"] == "exited" else None


def test_on_failure_3_restarts_exactly_three_times(daemon, rootfs):
    run(
        daemon,
        rootfs,
        "--name",
        "fails",
        "--restart",
        "on-failure:3",
        "--restart-delay",
        "10ms",
        "exit 2",
    )
    st = wait_until(
        lambda: settled(daemon, "fails") if inspect(daemon, "fails")["RestartCount"] == 3 else None,
        "three restarts",
    )
    assert st["ExitCode"] == 2
    # The policy decides at the exit: exited, not restarting, is its last word
    # (the timeline itself is tested exactly on a MockClock: test_supervision.py).
    data = inspect(daemon, "fails")
    assert data["RestartCount"] == 3 and data["State"]["Status"] == "exited"
    evs = events(daemon, "fails")
    acts = [(e["action"], e["attributes"].get("attempt")) for e in evs]
    shown = [(e["action"], e["attributes"]) for e in evs]  # exit codes, should one fail
    assert [a for a, _ in acts].count("die") == 4, shown
    assert [n for a, n in acts if a == "restart"] == ["1", "2", "3"], shown
    assert [a for a, _ in acts].count("start") == 4, shown


def test_exit_zero_under_on_failure_is_not_restarted(daemon, rootfs):
    run(
        daemon,
        rootfs,
        "--name",
        "fine",
        "--restart",
        "on-failure",
        "--restart-delay",
        "10ms",
        "exit 0",
    )
    wait_until(lambda: settled(daemon, "fine"), "the exit")
    assert inspect(daemon, "fine")["RestartCount"] == 0
    assert "restart" not in [e["action"] for e in events(daemon, "fine")]


def test_backoff_grows_then_resets_after_a_long_run(daemon, rootfs):
    # The upper layer outlives restarts: a counter there makes run 3 long.
    script = (
        "n=$(cat /count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /count; "
        "[ $n -eq 3 ] && sleep 1.5; exit 1"
    )
    run(
        daemon,
        rootfs,
        "--name",
        "backoff",
        "--restart",
        "on-failure:5",
        "--restart-delay",
        "50ms",
        "--restart-reset-after",
        "1s",
        script,
    )
    wait_until(
        lambda: inspect(daemon, "backoff")["RestartCount"] == 5 and settled(daemon, "backoff"),
        "five restarts",
    )
    evs = events(daemon, "backoff")
    delays = [float(e["attributes"]["delay"]) for e in evs if e["action"] == "restart"]
    assert delays == [0.05, 0.1, 0.05, 0.1, 0.2]
    # Each restart came no sooner than its delay after the exit before it.
    dies = [int(e["attributes"]["finishedAt"]) for e in evs if e["action"] == "die"]
    restarts = [e["time_nano"] for e in evs if e["action"] == "restart"]
    for die, rst, d in zip(dies, restarts, delays, strict=False):
        assert rst - die >= d * 1e9 * 0.99


def test_oom_kill_counts_as_failure(daemon, rootfs):
    run(
        daemon,
        rootfs,
        "--name",
        "hog",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "--restart",
        "on-failure:1",
        "--restart-delay",
        "10ms",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a)",
    )
    wait_until(
        lambda: inspect(daemon, "hog")["RestartCount"] == 1 and settled(daemon, "hog"),
        "one restart after the OOM kill",
    )
    acts = [e["action"] for e in events(daemon, "hog")]
    assert acts.count("oom") == 2 and acts.count("restart") == 1
    assert inspect(daemon, "hog")["State"]["OOMKilled"] is True


def test_stop_during_backoff_cancels_the_restart(daemon, rootfs):
    run(
        daemon,
        rootfs,
        "--name",
        "waiting",
        "--restart",
        "always",
        "--restart-delay",
        "3s",  # long enough that ps and stop come inside it on a slow machine
        "exit 1",
    )
    wait_until(
        lambda: inspect(daemon, "waiting")["State"]["Status"] == "restarting", "the backoff wait"
    )
    ps = daemon.cli("ps", "-a").stdout
    assert "Restarting (1)" in ps and " ago" in ps  # Docker's words; the count is inspect's
    assert inspect(daemon, "waiting")["State"]["NextRestartAt"]
    assert daemon.cli("stop", "waiting").returncode == 0
    assert inspect(daemon, "waiting")["State"]["Status"] == "exited"
    # The wait is cancelled, not merely outwaited (on a MockClock, with the
    # delay passed: test_supervision.py).
    data = inspect(daemon, "waiting")
    assert data["State"]["Status"] == "exited" and data["RestartCount"] == 0
    assert data["State"]["NextRestartAt"].startswith("0001-")
    assert [e["action"] for e in events(daemon, "waiting")].count("start") == 1


def test_kill_by_user_is_not_restarted(daemon, rootfs):
    run(
        daemon,
        rootfs,
        "--name",
        "killme",
        "--restart",
        "always",
        "--restart-delay",
        "10ms",
        "sleep 1000",
    )
    assert daemon.cli("kill", "killme").returncode == 0
    wait_until(lambda: settled(daemon, "killme"), "the kill")
    assert inspect(daemon, "killme")["RestartCount"] == 0


def test_always_and_unless_stopped_across_daemon_restarts(daemon, rootfs):
    run(daemon, rootfs, "--name", "alw", "--restart", "always", "sleep 1000")
    run(daemon, rootfs, "--name", "alw-stopped", "--restart", "always", "sleep 1000")
    run(daemon, rootfs, "--name", "unl", "--restart", "unless-stopped", "sleep 1000")
    run(daemon, rootfs, "--name", "unl-stopped", "--restart", "unless-stopped", "sleep 1000")
    run(
        daemon,
        rootfs,
        "--name",
        "onf",
        "--restart",
        "on-failure",
        "--restart-delay",
        "10ms",
        "sleep 1000",
    )
    daemon.cli("stop", "-t", "0", "alw-stopped", "unl-stopped")
    pid_alw = inspect(daemon, "alw")["State"]["Pid"]
    pid_onf = inspect(daemon, "onf")["State"]["Pid"]
    daemon.kill9()
    os.kill(pid_onf, signal.SIGKILL)  # dies (non-zero) while the daemon is down
    wait_until(lambda: _gone_or_zombie(pid_onf), "the kill")
    daemon.start()
    assert inspect(daemon, "alw")["State"]["Pid"] == pid_alw  # adopted, not restarted
    wait_until(lambda: inspect(daemon, "alw-stopped")["State"]["Running"], "always comes back")
    wait_until(lambda: inspect(daemon, "onf")["State"]["Running"], "on-failure restart")
    assert inspect(daemon, "onf")["RestartCount"] == 1
    assert inspect(daemon, "unl")["State"]["Running"]
    # The daemon decides what it starts before it answers anyone.
    assert inspect(daemon, "unl-stopped")["State"]["Status"] == "exited"


def test_restart_state_survives_a_daemon_crash(daemon, rootfs):
    run(
        daemon,
        rootfs,
        "--name",
        "loop",
        "--restart",
        "on-failure:2",
        "--restart-delay",
        "1s",
        "exit 3",
    )
    wait_until(lambda: inspect(daemon, "loop")["State"]["Status"] == "restarting", "backoff")
    daemon.kill9()
    daemon.start()
    data = inspect(daemon, "loop")
    assert data["State"]["Status"] in ("restarting", "running", "exited")
    wait_until(
        lambda: inspect(daemon, "loop")["RestartCount"] == 2 and settled(daemon, "loop"),
        "the remaining restarts",
    )


def test_health_check_healthy_then_unhealthy_and_restart(daemon, rootfs):
    # Healthy while /ok exists; the test removes it once it has seen the
    # container healthy (no window to sample on a slow machine).
    run(
        daemon,
        rootfs,
        "--name",
        "svc",
        "--health-cmd",
        "test -e /ok",
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "5s",
        "--health-on-failure",
        "restart",
        "touch /ok; sleep 1000",
    )
    wait_until(
        lambda: inspect(daemon, "svc")["State"].get("Health", {}).get("Status") == "healthy",
        "healthy",
    )
    assert "(healthy)" in daemon.cli("ps").stdout
    assert daemon.cli("exec", "svc", "rm", "/ok").returncode == 0
    wait_until(lambda: inspect(daemon, "svc")["RestartCount"] >= 1, "the unhealthy restart")
    acts = [e["action"] for e in events(daemon, "svc")]
    assert "health_status: healthy" in acts and "health_status: unhealthy" in acts
    i = acts.index("health_status: unhealthy")
    assert "restart" in acts[i:]
    health = inspect(daemon, "svc")["State"]["Health"]
    assert health["Log"] and {"Start", "End", "ExitCode", "Output"} <= set(health["Log"][-1])


def test_health_check_timeout_and_kill_action(daemon, rootfs):
    run(
        daemon,
        rootfs,
        "--name",
        "slow",
        "--health-cmd",
        "sleep 10",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "200ms",
        "--health-retries",
        "1",
        "--health-on-failure",
        "kill",
        "sleep 1000",
    )
    wait_until(lambda: settled(daemon, "slow"), "the kill after an unhealthy check")
    st = inspect(daemon, "slow")["State"]
    assert st["ExitCode"] == 137 and st["Health"]["Status"] == "unhealthy"
    assert "timeout" in st["Health"]["Log"][-1]["Output"]


def test_protocol_refuses_bad_policy(daemon, rootfs):
    c = daemon.client()
    try:
        c.call(
            api.Create(
                config=api.ContainerConfig(rootfs=str(rootfs), cmd=["true"], restart="sometimes")
            )
        )
        raise AssertionError("accepted a bad policy")
    except Exception as e:
        assert "restart policy" in str(e)
