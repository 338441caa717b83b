"""The client as a Docker user meets it (issue #15): stdin of every kind,
terminals, Ctrl-C, bad flags and values (refused by the client and, over the
raw protocol, by the daemon), filters, stats, prunes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


def names(daemon) -> list[str]:
    return daemon.cli("ps", "-a", "--format", "{{.Names}}").stdout.split()


# -- stdin -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "devnull", "pipe", "socket"])
def test_stdin_of_every_kind(daemon, rootfs, tmp_path, kind):
    script = tmp_path / "script.sh"
    script.write_text("echo from-the-script\nread x || echo at-eof\n")
    argv = [sys.executable, "-m", "supervisor.cli", "run", "-i", "--rm", "--rootfs", str(rootfs)]
    argv += ["sh"] if kind != "devnull" else ["sh", "-c", "cat; echo empty"]
    if kind == "file":
        stdin = open(script, "rb")  # noqa: SIM115
    elif kind == "devnull":
        stdin = open(os.devnull, "rb")  # noqa: SIM115
    elif kind == "pipe":
        stdin = None  # `input` makes it a pipe
    else:
        a, b = socket.socketpair()
        b.sendall(script.read_bytes())
        b.shutdown(socket.SHUT_WR)
        stdin = a
    try:
        p = subprocess.run(
            argv,
            stdin=stdin,
            input=script.read_bytes() if kind == "pipe" else None,
            capture_output=True,
            env=daemon.env,
            timeout=60,
        )
    finally:
        if kind in ("file", "devnull"):
            stdin.close()
        elif kind == "socket":
            a.close()
            b.close()
    out = p.stdout.decode()
    assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr
    assert out == ("empty\n" if kind == "devnull" else "from-the-script\nat-eof\n"), out
    assert names(daemon) == []  # --rm did its work


def test_exec_takes_a_file_as_stdin(daemon, rootfs, tmp_path):
    daemon.cli("run", "-d", "--name", "box", "--rootfs", str(rootfs), "sleep", "100")
    script = tmp_path / "s.sh"
    script.write_text("echo in-exec\n")
    with open(script, "rb") as f:
        p = subprocess.run(
            [sys.executable, "-m", "supervisor.cli", "exec", "-i", "box", "sh"],
            stdin=f,
            capture_output=True,
            env=daemon.env,
            timeout=60,
        )
    assert p.returncode == 0 and p.stdout == b"in-exec\n", p.stderr


def test_it_without_a_terminal_is_refused_as_docker_does(daemon, rootfs):
    p = daemon.cli("run", "-it", "--rm", "--rootfs", str(rootfs), "cat", input="x\n")
    assert p.returncode == 1 and p.stderr.strip() == "the input device is not a TTY"
    assert names(daemon) == []


# -- Ctrl-C ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["events"], ["stats"], ["logs", "-f", "talker"], ["wait", "talker"]]
)
def test_ctrl_c_ends_a_stream_quietly_with_130(daemon, rootfs, args):
    daemon.cli(
        "run", "-d", "--name", "talker", "--rootfs", str(rootfs),
        "sh", "-c", "while true; do echo hi; sleep 0.2; done",
    )  # fmt: skip
    p = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", *args],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(1)  # it is streaming (a stream never ends by itself here)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and b"Traceback" not in err, err


# -- failed starts and bad values ------------------------------------------------------


def test_a_run_rm_whose_start_fails_leaves_nothing(daemon, rootfs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = daemon.cli("run", "--rm", "-p", f"127.0.0.1:{port}:80", "--rootfs", str(rootfs), "true")
        assert p.returncode == 125 and "already allocated" in p.stderr, p.stderr
    p = daemon.cli("run", "--rm", "--rootfs", str(rootfs), "no-such-program")
    assert p.returncode == 127
    p = daemon.cli("run", "--rm", "-w", "/etc/passwd", "--rootfs", str(rootfs), "true")
    assert p.returncode != 0
    time.sleep(0.5)  # a removal would be done by now; nothing may appear later either
    assert names(daemon) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-p", "99999:80"], "invalid hostPort: 99999"),
        (["-p", "127.0.0.1:41999:99999"], "invalid containerPort: 99999"),
        (["--cpus", "nan"], '"--cpus"'),
        (["--cpus", "inf"], '"--cpus"'),
        (["--cpus", "-1"], "Range of CPUs"),
        (["-e", "=value"], "invalid environment variable: =value"),
        (["--name", "a" * 5000], "Invalid container name"),
        (["--name", "x"], "Invalid container name (x)"),
        (["--log-opt", "max-size=abc"], "max-size"),
        (["--bogus-flag"], "unrecognized arguments"),
    ],
)
def test_bad_values_are_refused_by_the_client(daemon, rootfs, flags, message):
    p = daemon.cli("run", *flags, "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and message in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert names(daemon) == []


@pytest.mark.cgroups
def test_memory_zero_means_no_limit(daemon, rootfs):
    p = daemon.cli("run", "--rm", "-m", "0", "--rootfs", str(rootfs), "echo", "ran")
    assert p.returncode == 0 and p.stdout == "ran\n", p.stderr


def _raw_create(daemon, **config) -> dict:
    """A Create sent over the protocol as any client could, msgpack by hand."""
    import msgspec

    from protocols.wire import PROTOCOL_VERSION, FrameBuffer, frame

    with socket.socket(socket.AF_UNIX) as s:
        s.connect(daemon.socket)
        buf = FrameBuffer()

        def call(msg: dict) -> dict:
            s.sendall(frame(msgspec.msgpack.encode(msg)))
            while True:
                got = buf.feed(s.recv(1 << 16))
                if got:
                    return msgspec.msgpack.decode(got[0])

        assert call({"msg": "Hello", "version": PROTOCOL_VERSION})["msg"] == "Welcome"
        return call({"msg": "Create", "config": config})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"cmd": ["ec\0ho", "x"]}, "NUL"),
        ({"cmd": ["true"], "env": ["A=1\0B=2"]}, "NUL"),
        ({"cmd": ["true"], "workdir": "/tmp\0/x"}, "NUL"),
        ({"cmd": ["true"], "name": "n" * 5000}, "Invalid container name"),
        ({"cmd": ["true"], "env": ["=value"]}, "invalid environment variable"),
        ({"cmd": ["true"], "ports": ["99999:80"]}, "invalid hostPort"),
        ({"cmd": ["true"], "cpus": float("nan")}, "--cpus"),
        ({"cmd": ["true"], "cpus": -1.0}, "Range of CPUs"),
        ({"cmd": ["true"], "log_max_size": -7}, "log"),
    ],
)
def test_the_daemon_checks_the_values_again(daemon, rootfs, config, message):
    answer = _raw_create(daemon, rootfs=str(rootfs), **config)
    assert answer["msg"] == "Error" and answer["kind"] == "invalid", answer
    assert message in answer["message"], answer
    assert names(daemon) == []


def test_a_client_whose_daemon_dies_says_so(daemon, rootfs):
    p = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "run", "--rootfs", str(rootfs), "sleep", "100"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while "Up" not in daemon.cli("ps").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        daemon.kill9()
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 125 and b"closed the connection" in err and b"Traceback" not in err


def test_cp_out_of_an_absolute_symlink(daemon, rootfs, tmp_path):
    daemon.cli(
        "run", "--name", "linker", "--rootfs", str(rootfs), "ln", "-s", "/etc/hostname", "/lnk"
    )
    p = daemon.cli("cp", "linker:/lnk", str(tmp_path / "out"))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert os.readlink(tmp_path / "out") == "/etc/hostname"  # the link itself, as Docker copies


# -- filters ---------------------------------------------------------------------------


def test_label_filters_must_all_match(daemon, rootfs, tmp_path):
    for name, labels in (("both", ["a=1", "b=2"]), ("onlya", ["a=1"]), ("onlyb", ["b=2"])):
        flags = [x for lbl in labels for x in ("-l", lbl)]
        daemon.cli("create", "--name", name, *flags, "--rootfs", str(rootfs), "true")
        vflags = [x for lbl in labels for x in ("--label", lbl)]
        daemon.cli("volume", "create", *vflags, f"v{name}")
        daemon.cli("network", "create", *vflags, f"n{name}")
    f = ["--filter", "label=a=1", "--filter", "label=b=2"]
    assert daemon.cli("ps", "-a", *f, "--format", "{{.Names}}").stdout.split() == ["both"]
    assert daemon.cli("volume", "ls", "-q", *f).stdout.split() == ["vboth"]
    nets = daemon.cli("network", "ls", *f, "--format", "{{.Name}}").stdout.split()
    assert nets == ["nboth"]
    # Other keys: either value (OR), and across keys: both (AND).
    either = daemon.cli(
        "ps", "-a", "-f", "name=onlya", "-f", "name=onlyb", "--format", "{{.Names}}"
    )
    assert sorted(either.stdout.split()) == ["onlya", "onlyb"]
    p = daemon.cli("ps", "-a", "-f", "colour=red")
    assert p.returncode != 0 and "invalid filter 'colour'" in p.stderr
    evs = daemon.cli(
        "events", "--since", "1m", "--until", "0s", "--format", "json",
        "--filter", "type=container", *f,
    ).stdout.splitlines()  # fmt: skip
    assert {json.loads(e)["name"] for e in evs} == {"both"}
    for name in ("both", "onlya", "onlyb"):
        daemon.cli("volume", "rm", f"v{name}")
        daemon.cli("network", "rm", f"n{name}")


def test_image_filters(daemon, rootfs, tmp_path):
    tar = tmp_path / "r.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    assert daemon.cli("import", str(tar), "first:1").returncode == 0
    daemon.cli("create", "--name", "tolabel", "--rootfs", str(rootfs), "true")
    p = daemon.cli("commit", "-c", "LABEL tier=db", "tolabel", "second:1")
    assert p.returncode == 0, p.stderr
    got = daemon.cli("images", "-f", "label=tier=db", "--format", "{{.Repository}}").stdout.split()
    assert got == ["second"]
    got = daemon.cli("images", "-f", "reference=fir*", "--format", "{{.Repository}}").stdout
    assert got.split() == ["first"]
    assert daemon.cli("images", "-f", "bogus=1").returncode != 0


# -- stats, networks, prunes, events ---------------------------------------------------


@pytest.mark.cgroups
def test_stats_of_a_stopped_container_and_all(daemon, rootfs):
    daemon.cli("create", "--name", "idle", "--rootfs", str(rootfs), "true")
    p = daemon.cli("stats", "--no-stream", "idle")
    lines = p.stdout.splitlines()
    assert lines[0].startswith("CONTAINER ID") and "idle" in lines[1] and "0.00%" in lines[1]
    p = daemon.cli("stats", "--no-stream")
    assert p.stdout.splitlines()[0].startswith("CONTAINER ID")  # the header, with no rows
    p = daemon.cli("stats", "-a", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}}")
    assert "idle 0.00%" in p.stdout, p.stdout


def test_network_create_prints_the_id_and_ls_lists_host_and_none(daemon):
    p = daemon.cli("network", "create", "pets")
    assert p.returncode == 0 and len(p.stdout.strip()) == 64, p.stdout
    names_ = daemon.cli("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout.splitlines()
    assert {"host host", "none null", "bridge bridge", "pets bridge"} <= set(names_)
    assert daemon.cli("network", "rm", "none").returncode != 0
    assert daemon.cli("network", "rm", "pets").returncode == 0


def test_prune_asks_unless_forced(daemon, rootfs):
    daemon.cli("create", "--name", "gone", "--rootfs", str(rootfs), "true")
    p = daemon.cli("container", "prune", input="n\n")
    assert "Are you sure you want to continue? [y/N]" in p.stdout and p.returncode == 0
    assert names(daemon) == ["gone"]
    p = daemon.cli("system", "prune", input="\n")
    assert "WARNING! This will remove:" in p.stdout and names(daemon) == ["gone"]
    p = daemon.cli("container", "prune", input="y\n")
    assert names(daemon) == []


def test_event_lines_carry_the_zone(daemon, rootfs):
    daemon.cli("create", "--name", "zoned", "--rootfs", str(rootfs), "true")
    line = daemon.cli("events", "--since", "1m", "--until", "0s").stdout.splitlines()[-1]
    stamp = line.split()[0]
    assert stamp.endswith("Z") or stamp[-6] in "+-", stamp
