"""attach, signal proxying, the detach keys and exec -d, through the real CLI."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.test_daemon import wait_until
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]

# Prints ticks until /go exists (so a test knows when an attach is live), then
# says so and exits 7.
TICKER = "i=0; while [ ! -e /go ]; do i=$((i+1)); echo tick$i; sleep 0.05; done; echo done; exit 7"


def client(daemon, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", *args], env=daemon.env, text=True, **kw
    )


def read_until(stream, want: str) -> list[str]:
    lines = []
    for line in stream:
        lines.append(line)
        if want in line:
            return lines
    raise AssertionError(f"{want!r} never came; got {lines}")


def test_attach_follows_a_running_container_to_its_exit(daemon, rootfs):
    cid = daemon.cli("run", "-d", "--rootfs", str(rootfs), "sh", "-c", TICKER).stdout.strip()
    p = client(daemon, "attach", cid, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_until(p.stdout, "tick")  # the attach streams: only now let it finish
        assert daemon.cli("exec", cid, "touch", "/go").returncode == 0
        rest = p.stdout.read()
        assert p.wait(timeout=60) == 7, p.stderr.read()
        assert "done" in rest
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
    p = daemon.cli("attach", cid)
    assert p.returncode == 1 and "not running" in p.stderr, p.stderr


def test_run_passes_the_signals_it_gets_to_the_container(daemon, rootfs):
    script = 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.05; done'
    p = client(
        daemon,
        "run",
        "--rm",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        script,
        stdout=subprocess.PIPE,
    )
    try:
        read_until(p.stdout, "ready")
        p.send_signal(signal.SIGTERM)
        assert "got-term" in p.stdout.read()
        assert p.wait(timeout=60) == 3
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


def client_on_terminal(daemon, *args: str) -> tuple[subprocess.Popen, int]:
    """The CLI with a pty as its terminal; (the process, the pty's master side)."""
    master, slave = os.openpty()
    try:
        return client(daemon, *args, stdin=slave, stdout=slave, stderr=slave), master
    finally:
        os.close(slave)


def read_terminal_until(master: int, want: bytes) -> None:
    """Read the terminal's output until `want` shows (a minute at most)."""
    seen, deadline = b"", time.monotonic() + 60
    while want not in seen:
        assert time.monotonic() < deadline, f"no {want!r} in {seen!r}"
        if select.select([master], [], [], 1)[0]:
            seen += os.read(master, 4096)


def test_detach_keys_leave_the_container_running(daemon, rootfs):
    """ctrl-p ctrl-q on a terminal detaches `run -it`; the container goes on."""
    p, master = client_on_terminal(
        daemon, "run", "-it", "--name", "detachme", "--rootfs", str(rootfs), "sh"
    )
    try:
        read_terminal_until(master, b"# ")  # the prompt, as a user would wait for it
        os.write(master, b"echo marker-$((6*7))\r")
        read_terminal_until(master, b"marker-42")  # the shell answers: the attach is live
        os.write(master, b"\x10\x11")
        assert p.wait(timeout=60) == 0
        ps = daemon.cli("ps", "--filter", "name=detachme", "--format", "json")
        assert '"running"' in ps.stdout.lower() or "Up" in ps.stdout, ps.stdout
    finally:
        os.close(master)
        daemon.cli("rm", "-f", "detachme")


def test_custom_detach_keys_split_across_reads(daemon, rootfs):
    """attach --detach-keys ctrl-a,x: the keys detach even when they arrive in two
    reads (the first is held, not sent); the default keys then pass through."""
    cid = daemon.cli("run", "-dit", "--name", "keys", "--rootfs", str(rootfs), "sh").stdout.strip()
    p, master = client_on_terminal(daemon, "attach", "--detach-keys", "ctrl-a,x", "keys")
    try:
        os.write(master, b"echo marker-$((6*7))\r")
        read_terminal_until(master, b"marker-42")
        os.write(master, b"\x10\x11")  # Docker's default keys: not these, so typed on
        time.sleep(0.2)
        assert p.poll() is None
        os.write(master, b"\x01")
        time.sleep(0.2)
        os.write(master, b"x")
        assert p.wait(timeout=60) == 0
        assert "Up" in daemon.cli("ps", "--filter", "name=keys").stdout
    finally:
        os.close(master)
        daemon.cli("rm", "-f", cid)


def test_bad_detach_keys_are_refused(daemon, rootfs):
    p = daemon.cli("run", "-it", "--detach-keys", "ctrl-1", "--rootfs", str(rootfs), "true")
    assert p.returncode != 0 and "--detach-keys" in p.stderr, p.stderr


def test_exec_detached_runs_on_and_its_end_is_an_event(daemon, rootfs):
    cid = daemon.cli("run", "-d", "--rootfs", str(rootfs), "sleep", "60").stdout.strip()
    p = daemon.cli("exec", "-d", cid, "sh", "-c", "echo from-exec > /tmp/x; exit 4")
    assert p.returncode == 0 and p.stdout == "", p.stderr
    wait_until(
        lambda: daemon.cli("exec", cid, "cat", "/tmp/x").stdout == "from-exec\n",
        "the detached exec's file",
    )
    wait_until(
        lambda: any(
            e["action"] == "exec_die" and e["attributes"].get("exitCode") == "4"
            for e in daemon.events("container=" + cid)
        ),
        "an exec_die event with exit code 4",
    )
    daemon.cli("rm", "-f", cid)


@pytest.mark.parametrize("value", ["maybe", ""])
def test_sig_proxy_takes_docker_booleans_only(daemon, rootfs, value):
    p = daemon.cli("run", f"--sig-proxy={value}", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "invalid boolean" in p.stderr, p.stderr


def test_terminal_size_at_start_and_on_resize(daemon, rootfs):
    """-t: the pty starts at the client's size (OCI consoleSize) and follows a
    Resize, for the container and for a -t exec in it."""
    from protocols.lite import api
    from supervisor.client.connection import DaemonError

    c = daemon.client()
    script = "stty size; while [ ! -e /go ]; do sleep 0.05; done; stty size"
    cfg = api.ContainerConfig(rootfs=str(rootfs), cmd=["sh", "-c", script], tty=True)
    cid = c.call(api.Create(config=cfg)).id
    out = b""
    stream = c.stream(api.Attach(id=cid, start=True, height=33, width=101))
    for msg in stream:
        out += getattr(msg, "data", b"")
        if b"33 101" in out:
            break
    other = daemon.client()
    assert isinstance(other.call(api.Resize(id=cid, height=40, width=120)), api.Ok)
    ex = b"".join(
        getattr(m, "data", b"")
        for m in other.stream(api.Exec(id=cid, cmd=["stty", "size"], tty=True, height=25, width=90))
    )
    assert b"25 90" in ex, ex
    assert daemon.cli("exec", cid, "touch", "/go").returncode == 0
    for msg in stream:
        out += getattr(msg, "data", b"")
    assert b"40 120" in out, out
    plain = c.call(api.Create(config=api.ContainerConfig(rootfs=str(rootfs), cmd=["sleep", "60"])))
    c.call(api.Start(id=plain.id))
    with pytest.raises(DaemonError, match="no terminal"):
        c.call(api.Resize(id=plain.id, height=10, width=10))
    daemon.cli("rm", "-f", cid, plain.id)


def test_stdin_survives_a_daemon_killed_and_started_again(daemon, rootfs):
    """An -i container's stdin is a FIFO its monitor keeps a writer on: the
    daemon's SIGKILL is no EOF for it, the next daemon writes to it again, and
    only the client's close ends it."""
    from protocols.lite import api

    cid = daemon.cli(
        "run",
        "-di",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        "while read l; do echo got:$l; done; echo eof",
    ).stdout.strip()

    def send(text: str | None) -> None:
        c = daemon.client()
        c.send(api.Attach(id=cid, stdin=True))
        c.send(api.StdinData(data=text.encode()) if text is not None else api.StdinClose())

    send("one\n")
    wait_until(lambda: "got:one" in daemon.cli("logs", cid).stdout, "the first line")
    daemon.kill9()
    daemon.start()
    state = json.loads(daemon.cli("inspect", cid).stdout)[0]["State"]
    assert state["Running"], state
    send("two\n")
    wait_until(lambda: "got:two" in daemon.cli("logs", cid).stdout, "a line after the restart")
    send(None)
    wait_until(lambda: "eof" in daemon.cli("logs", cid).stdout, "EOF once the client closed stdin")
    assert daemon.cli("wait", cid).stdout.strip() == "0"
    daemon.cli("rm", cid)
