"""The daemon end to end: the real CLI and the real protocol against a real daemon."""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from pathlib import Path

import msgspec
import pytest

from protocols import api as wire_api  # msgspec's, for raw frames
from protocols.lite import api  # the client's
from protocols.wire import PROTOCOL_VERSION, FrameBuffer, frame
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


def wait_until(pred, what, limit=30.0):
    deadline = time.monotonic() + limit
    while not pred():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.02)


def state(c, ref) -> dict:
    return c.call(api.Inspect(id=ref)).data["State"]


def test_run_foreground_passes_output_and_exit_code(daemon, rootfs):
    p = daemon.cli(
        "run", "--rm", "--rootfs", str(rootfs), "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert p.returncode == 3, p.stderr
    assert p.stdout == "out\n" and "err" in p.stderr
    assert daemon.cli("ps", "-aq").stdout.strip() == ""  # --rm removed it


def test_run_interactive_stdin(daemon, rootfs):
    p = daemon.cli(
        "run",
        "-i",
        "--rm",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        "read a; echo got:$a",
        input="hello\n",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "got:hello"


def test_detached_lifecycle_and_inspect_shape(daemon, rootfs):
    p = daemon.cli(
        "run",
        "-d",
        "--name",
        "web",
        "-l",
        "tier=front",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "--hostname",
        "h1",
        "--rootfs",
        str(rootfs),
        "sleep",
        "1000",
    )
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    assert len(cid) == 64
    data = json.loads(daemon.cli("inspect", cid[:5]).stdout)[0]
    assert data["Id"] == cid and data["Name"] == "/web"
    assert data["State"]["Status"] == "running" and data["State"]["Running"] is True
    assert data["State"]["Pid"] > 0 and data["State"]["StartedAt"].endswith("Z")
    assert data["Config"]["Labels"] == {"tier": "front"} and "A=1" in data["Config"]["Env"]
    assert data["Config"]["Hostname"] == "h1" and data["RestartCount"] == 0
    ps = daemon.cli("ps").stdout
    assert "web" in ps and "Up" in ps
    # sleep as pid 1 ignores SIGTERM: stop waits, then SIGKILLs.
    assert daemon.cli("stop", "-t", "1", "web").returncode == 0
    st = json.loads(daemon.cli("inspect", "web").stdout)[0]["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 137 and not st["OOMKilled"]
    assert st["FinishedAt"] != "0001-01-01T00:00:00Z"
    assert "web" not in daemon.cli("ps").stdout and "web" in daemon.cli("ps", "-a").stdout
    assert daemon.cli("start", "web").returncode == 0
    assert json.loads(daemon.cli("inspect", "web").stdout)[0]["State"]["Running"]
    assert daemon.cli("rm", "web").returncode == 1  # running: refused
    assert daemon.cli("rm", "-f", "web").returncode == 0
    p = daemon.cli("inspect", "web")
    assert p.returncode == 1 and "No such object: web" in p.stderr


def test_ps_filters_and_json(daemon, rootfs):
    for name, label in (("a1", "x=1"), ("a2", "x=2")):
        daemon.cli(
            "run", "-d", "--name", name, "-l", label, "--rootfs", str(rootfs), "sleep", "100"
        )
    rows = [
        json.loads(line)
        for line in daemon.cli(
            "ps", "--format", "json", "--filter", "label=x=2"
        ).stdout.splitlines()
    ]
    assert [r["name"] for r in rows] == ["a2"]
    assert daemon.cli("ps", "-q", "--filter", "name=a1").stdout.strip() != ""


def test_fifty_containers_at_once(daemon, rootfs):
    c = daemon.client()
    ids = []
    for i in range(50):
        ids.append(
            c.call(
                api.Create(
                    config=api.ContainerConfig(
                        name=f"many{i}", rootfs=str(rootfs), cmd=["sleep", "1000"]
                    )
                )
            ).id
        )
        c.call(api.Start(id=ids[-1]))
    running = c.call(api.List()).containers
    assert len(running) == 50 and all(s.state == "running" for s in running)
    pids = {state(c, i)["Pid"] for i in ids}
    assert len(pids) == 50 and all(Path(f"/proc/{p}").exists() for p in pids)
    for i in ids:
        c.call(api.Remove(id=i, force=True))
    assert c.call(api.List(all=True)).containers == []


def _ended(pid: int) -> bool:
    """Gone, or a zombie (read once: it may be reaped between two reads)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.cgroups
def test_daemon_sigkill_loses_nothing(daemon, rootfs):
    c = daemon.client()
    ids = {}
    for name, cmd in (
        ("stays", ["sleep", "1000"]),
        ("exits7", ["sh", "-c", 'trap "exit 7" USR1; while :; do sleep 0.05; done']),
        ("killed", ["sleep", "1000"]),
    ):
        ids[name] = c.call(
            api.Create(config=api.ContainerConfig(name=name, rootfs=str(rootfs), cmd=cmd))
        ).id
        c.call(api.Start(id=ids[name]))
    stays_pid = state(c, "stays")["Pid"]
    killed_pid = state(c, "killed")["Pid"]
    exits_pid = state(c, "exits7")["Pid"]
    last = max(ev.seq for ev in _events(c, since_seq=1, until_now=True))
    c.close()
    daemon.kill9()
    # While the daemon is down: one exits by itself with 7 (its trap), one is
    # killed from outside.
    import os
    import signal

    os.kill(exits_pid, signal.SIGUSR1)
    os.kill(killed_pid, signal.SIGKILL)
    for pid in (exits_pid, killed_pid):
        wait_until(lambda pid=pid: _ended(pid), f"the end of {pid}")
    time.sleep(0.3)
    assert Path(f"/proc/{stays_pid}").exists()  # containers outlive the daemon
    daemon.start()
    c = daemon.client()
    assert state(c, "stays")["Running"] and state(c, "stays")["Pid"] == stays_pid
    assert state(c, "exits7")["ExitCode"] == 7 and state(c, "exits7")["Status"] == "exited"
    assert state(c, "killed")["ExitCode"] == 137
    events = list(_events(c, since_seq=last + 1, until_now=True))
    dies = {ev.name: ev.attributes["exitCode"] for ev in events if ev.action == "die"}
    assert dies == {"exits7": "7", "killed": "137"}
    assert [ev.seq for ev in events] == list(range(last + 1, last + 1 + len(events)))
    # The adopted container is still managed: stop it through the new daemon.
    c.call(api.Stop(id="stays", timeout=0))
    assert state(c, "stays")["ExitCode"] == 137


def _events(c, *, since_seq=None, until_now=False, filters=None):
    until = time.time_ns() if until_now else None
    for msg in c.stream(api.Events(since_seq=since_seq, until_nano=until, filters=filters or {})):
        if isinstance(msg, api.Event):
            yield msg


def test_events_replay_across_restart_no_gap_no_duplicate(daemon, rootfs):
    c = daemon.client()
    cid = c.call(api.Create(config=api.ContainerConfig(rootfs=str(rootfs), cmd=["true"]))).id
    c.call(api.Start(id=cid))
    c.call(api.Wait(id=cid))
    c.close()
    daemon.stop()
    daemon.start()
    c = daemon.client()
    c.call(api.Start(id=cid))
    c.call(api.Wait(id=cid))
    # Subscribe from the beginning: replay, then live, on one connection.
    sub = daemon.client()
    sub.send(api.Events(since_seq=1))
    seen = []
    while len(seen) < 5:
        msg = sub.recv()
        seen.append(msg)
    # Now live: one more event arrives after the replay.
    c.call(api.Remove(id=cid))
    while True:
        msg = sub.recv()
        seen.append(msg)
        if msg.action == "destroy":
            break
    seqs = [m.seq for m in seen]
    assert seqs == list(range(1, len(seqs) + 1))
    actions = [m.action for m in seen]
    assert actions == ["create", "start", "die", "start", "die", "destroy"]
    sub.close()


def test_stalled_subscriber_slows_nobody_and_misses_nothing(daemon, rootfs):
    c = daemon.client()
    cid = c.call(
        api.Create(config=api.ContainerConfig(rootfs=str(rootfs), cmd=["sleep", "1000"]))
    ).id
    c.call(api.Start(id=cid))
    start_seq = max(ev.seq for ev in _events(c, since_seq=1, until_now=True)) + 1
    stalled = socket.socket(socket.AF_UNIX)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(daemon.socket)
    enc = msgspec.msgpack.Encoder()
    stalled.sendall(frame(enc.encode(wire_api.Hello(version=PROTOCOL_VERSION))))
    stalled.sendall(frame(enc.encode(wire_api.Events(since_seq=start_seq))))
    live = daemon.client()
    live.send(api.Events(since_seq=start_seq))
    n = 1000
    for _ in range(n // 2):  # pause/unpause: two events each
        c.call(api.Pause(id=cid))
        c.call(api.Unpause(id=cid))
    # The live subscriber has everything although the stalled one reads nothing.
    got = [live.recv() for _ in range(n)]
    assert [e.seq for e in got] == list(range(start_seq, start_seq + n))
    assert c.call(api.Ping()) == api.Ok()
    # Now the stalled one reads: every event, in order, nothing dropped.
    buf = FrameBuffer()
    dec = msgspec.msgpack.Decoder(wire_api.Response)
    received = []
    stalled.settimeout(30)
    while len(received) < n + 1:  # Welcome + n events
        received += [dec.decode(p) for p in buf.feed(stalled.recv(1 << 16))]
    evs = received[1:]
    assert [e.seq for e in evs] == list(range(start_seq, start_seq + n))
    stalled.close()
    live.close()


def test_malformed_frames_get_typed_errors_and_the_daemon_serves_on(daemon):
    enc = msgspec.msgpack.Encoder()
    dec = msgspec.msgpack.Decoder(wire_api.Response)

    def talk(sock, payload: bytes):
        sock.sendall(payload)
        buf = FrameBuffer()
        while True:
            data = sock.recv(65536)
            if not data:
                return None
            frames = buf.feed(data)
            if frames:
                return dec.decode(frames[0])

    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.socket)
    hello = frame(enc.encode(wire_api.Hello(version=PROTOCOL_VERSION)))
    assert isinstance(talk(s, hello), wire_api.Welcome)
    err = talk(s, frame(b"\xc1\xc1 not msgpack"))
    assert isinstance(err, wire_api.Error) and err.kind == "protocol"
    err = talk(s, frame(enc.encode({"msg": "NoSuchThing"})))
    assert isinstance(err, wire_api.Error) and "NoSuchThing" in err.message
    err = talk(s, frame(enc.encode({"msg": "Start", "id": 42})))
    assert isinstance(err, wire_api.Error) and "id" in err.message
    assert talk(s, frame(enc.encode(wire_api.Ping()))) == wire_api.Ok()  # still usable
    err = talk(s, struct.pack(">I", 1 << 30))  # an absurd frame size
    assert isinstance(err, wire_api.Error) and "limit" in err.message
    assert s.recv(1) == b""  # and that connection is closed
    s.close()
    # Wrong protocol version:
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.socket)
    err = talk(s, frame(enc.encode(wire_api.Hello(version=999))))
    assert isinstance(err, wire_api.Error) and "version" in err.message
    s.close()
    # Everyone else is still served.
    c = daemon.client()
    assert c.call(api.Ping()) == api.Ok()


def test_bad_requests_get_clear_errors(daemon, rootfs, tmp_path):
    p = daemon.cli("run", "--rootfs", str(tmp_path / "missing"), "true")
    assert p.returncode == 125 and "missing is not a directory" in p.stderr
    p = daemon.cli("run", "--rootfs", str(rootfs), "no-such-program")
    assert p.returncode == 127 and "not found" in p.stderr
    p = daemon.cli("run", "--bogus-flag", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "unrecognized arguments" in p.stderr
    daemon.cli("create", "--name", "dup", "--rootfs", str(rootfs), "true")
    p = daemon.cli("create", "--name", "dup", "--rootfs", str(rootfs), "true")
    assert p.returncode == 1 and "already in use" in p.stderr
    p = daemon.cli("run", "-u", "nosuchuser", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "nosuchuser" in p.stderr


def test_logs_follow_and_rotation(daemon, rootfs):
    p = daemon.cli(
        "run",
        "-d",
        "--name",
        "talk",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done; echo bye >&2",
    )
    assert p.returncode == 0
    follow = daemon.cli("logs", "-f", "talk")
    assert follow.stdout.split() == ["line1", "line2", "line3", "line4", "line5"]
    assert follow.stderr.strip() == "bye"
    tail = daemon.cli("logs", "--tail", "2", "talk")  # the last 2 records, both streams
    assert tail.stdout.split() == ["line5"] and tail.stderr.strip() == "bye"
    stamped = daemon.cli("logs", "-t", "talk").stdout.splitlines()[0]
    assert stamped.split(" ")[0].endswith("Z") and stamped.endswith("line1")
    # Rotation: 3 files of at most 2 KiB, the newest lines kept.
    script = "i=0; while [ $i -lt 300 ]; do echo row-$i; i=$((i+1)); done"
    daemon.cli(
        "run",
        "--name",
        "rot",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        script,
    )
    lines = daemon.cli("logs", "rot").stdout.split()
    assert lines[-1] == "row-299"
    assert 50 < len(lines) < 300
    assert lines == [f"row-{i}" for i in range(300 - len(lines), 300)]  # contiguous


def test_exec_exit_codes_env_and_stdin(daemon, rootfs):
    daemon.cli(
        "run", "-d", "--name", "box", "-e", "FROM_RUN=1", "--rootfs", str(rootfs), "sleep", "1000"
    )
    p = daemon.cli(
        "exec",
        "box",
        "sh",
        "-c",
        "echo $FROM_RUN $X; exit 42",
    )
    assert p.returncode == 42 and p.stdout.strip() == "1"
    p = daemon.cli(
        "exec",
        "-e",
        "X=2",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "box",
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u)",
    )
    assert p.stdout.split() == ["2", "/tmp", "65534"]
    env_file = daemon.root.parent / "exec.env"
    env_file.write_text("# a comment\nFROM_FILE=3\n")
    p = daemon.cli("exec", "--env-file", str(env_file), "box", "sh", "-c", "echo $FROM_FILE")
    assert p.stdout.strip() == "3", p.stderr
    p = daemon.cli("exec", "-i", "box", "sh", "-c", "cat | wc -l", input="a\nb\nc\n")
    assert p.returncode == 0 and p.stdout.strip() == "3"
    p = daemon.cli("exec", "box", "no-such-command")
    assert p.returncode == 127
    events = [e["action"] for e in daemon.events("event=exec_die")]
    assert events.count("exec_die") >= 3


@pytest.mark.cgroups
def test_pause_freezes_processes(daemon, rootfs):
    daemon.cli(
        "run",
        "-d",
        "--name",
        "frz",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        "while :; do echo x > /dev/null; done",
    )
    c = daemon.client()
    pid = state(c, "frz")["Pid"]
    assert daemon.cli("pause", "frz").returncode == 0
    assert state(c, "frz")["Paused"] is True
    before = _cpu_ticks(pid)
    time.sleep(0.3)
    assert _cpu_ticks(pid) == before  # not one tick of CPU while frozen
    assert daemon.cli("unpause", "frz").returncode == 0
    wait_until(lambda: _cpu_ticks(pid) > before, "the loop to run again")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.cgroups
def test_wait_kill_and_oom_reported(daemon, rootfs):
    daemon.cli("run", "-d", "--name", "ww", "--rootfs", str(rootfs), "sleep", "1000")
    assert daemon.cli("kill", "-s", "KILL", "ww").returncode == 0
    assert daemon.cli("wait", "ww").stdout.strip() == "137"
    p = daemon.cli(
        "run",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "--rootfs",
        str(rootfs),
        "--name",
        "oomy",
        "sh",
        "-c",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a)",
    )
    assert p.returncode == 137
    st = json.loads(daemon.cli("inspect", "oomy").stdout)[0]["State"]
    assert st["OOMKilled"] is True
    acts = [e["action"] for e in daemon.events("container=oomy")]
    assert "oom" in acts and acts.index("oom") < acts.index("die")


@pytest.mark.cgroups
def test_stats_reports_usage(daemon, rootfs):
    daemon.cli("run", "-d", "--name", "st", "-m", "64m", "--rootfs", str(rootfs), "sleep", "100")
    out = daemon.cli("stats", "--no-stream", "--format", "json", "st").stdout.splitlines()
    sample = json.loads(out[0])
    assert sample["name"] == "st" and sample["memory_limit"] == 64 * 2**20 and sample["pids"] == 1
    # Docker's columns: a busy container's CPU % (two readings apart), its memory %.
    busy = daemon.cli(
        "run", "-d", "--name", "busy", "--rootfs", str(rootfs), "sh", "-c", "while :; do :; done"
    ).stdout.strip()
    table = daemon.cli("stats", "--no-stream", "busy", "st").stdout.splitlines()
    assert table[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"], table
    rows = {line.split()[1]: line.split() for line in table[1:]}
    assert float(rows["busy"][2].rstrip("%")) > 20, rows  # a spinning shell: most of a core
    assert float(rows["st"][2].rstrip("%")) < 20, rows
    assert rows["st"][4:6] == ["/", "64MiB"] and rows["st"][6].endswith("%"), rows
    p = daemon.cli("stats", "--no-stream", "--format", "{{.Name}}:{{.PIDs}}", "st")
    assert p.stdout.strip() == "st:1", p.stdout + p.stderr
    p = daemon.cli("stats", "--no-stream", "--format", "{{.BlockIO}}", "st")
    read, slash, written = p.stdout.split()
    assert slash == "/" and read[0].isdigit() and written.endswith("B"), p.stdout
    daemon.cli("rm", "-f", busy)


def test_socket_is_root_and_group_only(daemon):
    import stat

    mode = stat.S_IMODE(Path(daemon.socket).stat().st_mode)
    assert mode & 0o007 == 0


@pytest.mark.parametrize("ref_len", [5, 64])
def test_id_prefix_and_name_resolution(daemon, rootfs, ref_len):
    cid = daemon.cli("create", "--name", "pref", "--rootfs", str(rootfs), "true").stdout.strip()
    assert daemon.cli("inspect", cid[:ref_len]).returncode == 0
    assert daemon.cli("inspect", "/pref").returncode == 0


def test_network_modes_none_host_and_container(daemon, rootfs):
    out = ok_(
        daemon.cli(
            "run", "--rm", "--network", "none", "--rootfs", str(rootfs), "ls", "/sys/class/net"
        )
    )
    assert out.split() == ["lo"]
    host_links = sorted(p.name for p in Path("/sys/class/net").iterdir())
    out = ok_(
        daemon.cli(
            "run", "--rm", "--network", "host", "--rootfs", str(rootfs), "ls", "/sys/class/net"
        )
    )
    assert sorted(out.split()) == host_links
    # A server on the first container's loopback, reached from a second one
    # that joined its network namespace.
    ok_(
        daemon.cli(
            "run",
            "-d",
            "--name",
            "srv",
            "--rootfs",
            str(rootfs),
            "httpd",
            "-f",
            "-p",
            "127.0.0.1:8080",
            "-h",
            "/etc",
        )
    )
    out = ok_(
        daemon.cli(
            "run",
            "--rm",
            "--network",
            "container:srv",
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do "
            "wget -q -O - http://127.0.0.1:8080/hostname && break; sleep 0.1; done",
        )
    )
    assert out.strip() == "corral" or len(out.strip()) == 12  # the image's /etc/hostname
    p = daemon.cli("run", "--rm", "--network", "nosuchnet", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "nosuchnet" in p.stderr
    # No --network: the default bridge network, as with docker run.
    out = ok_(daemon.cli("run", "--rm", "--rootfs", str(rootfs), "ls", "/sys/class/net"))
    assert out.split() == ["eth0", "lo"]


def ok_(p):
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_rename_top_and_diff(daemon, rootfs):
    script = "echo x > /added; rm /bin/true; echo y >> /etc/profile.x; sleep 60"
    cid = daemon.cli(
        "run", "-d", "--name", "old", "--rootfs", str(rootfs), "sh", "-c", script
    ).stdout.strip()
    wait_until(lambda: "/added" in daemon.cli("diff", cid).stdout, "the container's writes")
    p = daemon.cli("rename", "old", "new")
    assert p.returncode == 0, p.stderr
    assert (
        daemon.cli("inspect", "new").returncode == 0
        and daemon.cli("inspect", "old").returncode != 0
    )
    renamed = [e for e in daemon.events("event=rename") if e["id"] == cid]
    assert renamed and renamed[-1]["attributes"]["oldName"] == "old"
    top = daemon.cli("top", "new").stdout.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "STIME", "TIME", "CMD"]
    assert any(line.endswith("sleep 60") for line in top[1:]), top
    changes = dict(
        reversed(line.split(" ", 1)) for line in daemon.cli("diff", "new").stdout.splitlines()
    )
    assert changes["/added"] == "A" and changes["/bin/true"] == "D" and changes["/bin"] == "C"
    assert "/etc/hosts" not in changes  # the placeholder of a network file
    other = daemon.cli("run", "-d", "--rootfs", str(rootfs), "sleep", "60").stdout.strip()
    p = daemon.cli("rename", other, "new")
    assert p.returncode != 0 and "already in use" in p.stderr, p.stderr
    daemon.cli("rm", "-f", cid, other)


@pytest.mark.oldest_python
def test_cp_in_and_out_stays_inside_the_container(daemon, rootfs, tmp_path):
    """Paths resolve inside the container's root: a symlink in it that points
    at / (or climbs with ..) leads to the container's root, not the host's."""
    script = (
        "ln -s /../../../../.. /tmp/esc; mkdir -p /data/sub; echo inside > /data/sub/f; sleep 60"
    )
    cid = daemon.cli("run", "-d", "--rootfs", str(rootfs), "sh", "-c", script).stdout.strip()
    wait_until(lambda: daemon.cli("exec", cid, "cat", "/data/sub/f").stdout == "inside\n", "setup")
    src = tmp_path / "hostfile"
    src.write_text("from the host\n")
    p = daemon.cli("cp", str(src), f"{cid}:/tmp")
    assert p.returncode == 0, p.stderr
    assert daemon.cli("exec", cid, "cat", "/tmp/hostfile").stdout == "from the host\n"
    marker = tmp_path / "escape-marker"
    marker.write_text("x")
    p = daemon.cli("cp", str(marker), f"{cid}:/tmp/esc")
    assert p.returncode == 0, p.stderr
    assert not Path("/escape-marker").exists()
    assert daemon.cli("exec", cid, "cat", "/escape-marker").stdout == "x"
    out = tmp_path / "out"
    out.mkdir()
    p = daemon.cli("cp", f"{cid}:/data", str(out))
    assert p.returncode == 0, p.stderr
    assert (out / "data" / "sub" / "f").read_text() == "inside\n"
    p = daemon.cli("cp", f"{cid}:/data/sub/f", str(tmp_path / "renamed"))
    assert p.returncode == 0 and (tmp_path / "renamed").read_text() == "inside\n", p.stderr
    p = daemon.cli("cp", f"{cid}:/nope", str(out))
    assert p.returncode != 0 and "No such file" in p.stderr, p.stderr
    daemon.cli("rm", "-f", cid)


@pytest.mark.oldest_python
def test_cp_in_to_a_new_name_or_over_a_file_as_docker_does(daemon, rootfs, tmp_path):
    cid = daemon.cli("run", "-d", "--rootfs", str(rootfs), "sleep", "60").stdout.strip()
    conf = tmp_path / "app.conf"
    conf.write_text("v1\n")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "leaf").write_text("leaf\n")

    def cat(path: str) -> str:
        return daemon.cli("exec", cid, "cat", path).stdout

    assert daemon.cli("cp", str(conf), f"{cid}:/etc/app.conf").returncode == 0  # a new name
    assert cat("/etc/app.conf") == "v1\n"
    conf.write_text("v2\n")
    assert daemon.cli("cp", str(conf), f"{cid}:/etc/app.conf").returncode == 0  # replaced
    assert cat("/etc/app.conf") == "v2\n"
    assert daemon.cli("cp", str(tree), f"{cid}:/tmp").returncode == 0  # into a directory
    assert cat("/tmp/tree/sub/leaf") == "leaf\n"
    assert daemon.cli("cp", str(tree), f"{cid}:/srv").returncode == 0  # a new directory
    assert cat("/srv/sub/leaf") == "leaf\n"
    p = daemon.cli("cp", str(tree), f"{cid}:/etc/app.conf")
    assert p.returncode != 0 and "cannot copy a directory over the file" in p.stderr, p.stderr
    p = daemon.cli("cp", str(conf), f"{cid}:/no/such/dir/app.conf")
    assert p.returncode != 0 and "/no/such/dir" in p.stderr, p.stderr
    p = daemon.cli("cp", str(conf), f"{cid}:/newdir/")
    assert p.returncode != 0 and "/newdir/" in p.stderr, p.stderr
    assert cat("/etc/app.conf") == "v2\n"  # what was refused changed nothing
    daemon.cli("rm", "-f", cid)


def test_export_is_the_root_without_what_is_mounted_on_it(daemon, rootfs, tmp_path):
    import tarfile

    cid = daemon.cli(
        "run",
        "-d",
        "--tmpfs",
        "/scratch",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        "echo mine > /mine; echo t > /scratch/t; sleep 60",
    ).stdout.strip()
    wait_until(lambda: daemon.cli("exec", cid, "cat", "/scratch/t").stdout == "t\n", "setup")
    out = tmp_path / "fs.tar"
    p = daemon.cli("export", "-o", str(out), cid)
    assert p.returncode == 0, p.stderr
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("mine").read() == b"mine\n"
    assert {"bin/busybox", "mine", "proc", "scratch"} <= names, sorted(names)[:20]
    assert not any(n.startswith(("proc/", "sys/", "scratch/")) for n in names)
    daemon.cli("rm", "-f", cid)


@pytest.mark.oldest_python
def test_cp_and_export_with_a_stopped_container(daemon, rootfs, tmp_path):
    """A stopped container's overlay is mounted for the copy and unmounted after."""
    made = daemon.cli("run", "-d", "--rootfs", str(rootfs), "sh", "-c", "echo made > /made")
    cid = made.stdout.strip()
    daemon.cli("wait", cid)
    p = daemon.cli("cp", f"{cid}:/made", str(tmp_path / "made"))
    assert p.returncode == 0 and (tmp_path / "made").read_text() == "made\n", p.stderr
    fresh = daemon.cli("create", "--rootfs", str(rootfs), "cat", "/tmp/hostfile").stdout.strip()
    src = tmp_path / "hostfile"
    src.write_text("copied before the start\n")
    assert daemon.cli("cp", str(src), f"{fresh}:/tmp").returncode == 0
    out = daemon.cli("start", "-a", fresh).stdout
    assert out == "copied before the start\n", out
    assert daemon.cli("export", "-o", str(tmp_path / "x.tar"), cid).returncode == 0
    assert "/cp/" not in Path("/proc/mounts").read_text()
    daemon.cli("rm", cid, fresh)


@pytest.mark.cgroups
def test_block_device_throttles(daemon, rootfs):
    """--device-read-bps and friends become the cgroup's throttles, on the
    device backing the root filesystem; a direct read is counted in stats."""
    dev = os.stat(rootfs).st_dev
    name = f"{os.major(dev)}:{os.minor(dev)}"
    uevent = Path(f"/sys/dev/block/{name}/uevent")
    if not uevent.exists():
        pytest.skip(f"the root filesystem is not on a block device ({name})")
    devname = dict(line.split("=", 1) for line in uevent.read_text().split())["DEVNAME"]
    if Path(f"/sys/dev/block/{name}/partition").exists():
        pytest.skip(f"/dev/{devname} is a partition: throttles take whole disks")
    p = daemon.cli(
        "run", "-d", "--name", "thr", "--rootfs", str(rootfs),
        "--device-read-bps", f"/dev/{devname}:100mb", "--device-write-iops", f"/dev/{devname}:500",
        "sh", "-c", "dd if=/bin/busybox of=/dev/null bs=64k iflag=direct; sleep 100",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    try:
        info = json.loads(daemon.cli("inspect", "thr").stdout)[0]
        cg = [
            m for m in Path("/proc/self/mounts").read_text().splitlines()
            if m.split()[2] in ("cgroup", "cgroup2")
        ]  # fmt: skip
        blkio = next(
            (x.split()[1] for x in cg if x.split()[2] == "cgroup" and "blkio" in x.split()[3]),
            None,
        )
        if blkio is not None:  # v1: the throttle files in the container's blkio cgroup
            d = Path(blkio, daemon.cgroup_parent.strip("/"), cid)
            assert f"{name} {100 << 20}" in (d / "blkio.throttle.read_bps_device").read_text()
            assert f"{name} 500" in (d / "blkio.throttle.write_iops_device").read_text()
        else:  # v2: one io.max line for the device (never a check that checks nothing)
            v2 = next(line.split()[1] for line in cg if line.split()[2] == "cgroup2")
            io_max = Path(v2, daemon.cgroup_parent.strip("/"), cid, "io.max").read_text()
            line = next(x for x in io_max.splitlines() if x.startswith(name + " "))
            assert f"rbps={100 << 20}" in line and "wiops=500" in line, io_max
        assert info["State"]["Running"]
        assert info["HostConfig"]["BlkioDeviceReadBps"] == [
            {"Path": f"/dev/{devname}", "Rate": 100 << 20}
        ]
        for _ in range(100):  # dd runs at once; its bytes show in the next sample
            sample = json.loads(
                daemon.cli("stats", "--no-stream", "--format", "json", "thr").stdout
            )
            if sample.get("block_read", 0) >= (rootfs / "bin" / "busybox").stat().st_size:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no block reads counted: {sample}")
        p = daemon.cli(
            "run", "--rm", "--rootfs", str(rootfs), "--device-read-bps", "/dev/null:1mb", "true"
        )
        assert p.returncode == 125 and "/dev/null is not a block device" in p.stderr, p.stderr
    finally:
        daemon.cli("rm", "-f", "thr")


def test_the_loop_serves_while_twenty_containers_pause_and_unpause(daemon, rootfs):
    """A freeze waits for every task to stop: off the event loop (a thread),
    so a `ps` round trip goes on while twenty pause and unpause at once."""
    import threading

    names = [f"frz{i}" for i in range(20)]
    for n in names:
        p = daemon.cli("run", "-d", "--name", n, "--rootfs", str(rootfs), "sleep", "1000")
        assert p.returncode == 0, p.stderr
    errors: list[str] = []

    def toggle(n: str) -> None:
        for verb in ("pause", "unpause", "pause", "unpause"):
            p = daemon.cli(verb, n)
            if p.returncode != 0:
                errors.append(f"{verb} {n}: {p.stderr}")

    threads = [threading.Thread(target=toggle, args=(n,)) for n in names]
    for t in threads:
        t.start()
    served = 0
    with daemon.client() as c:
        while any(t.is_alive() for t in threads):
            c.call(api.List(all=True))  # answered between the freezes
            served += 1
    for t in threads:
        t.join()
    assert not errors, errors
    assert served > 0
    assert {s["State"]["Status"] for s in (state_of(daemon, n) for n in names)} == {"running"}


def state_of(daemon, name: str) -> dict:
    return json.loads(daemon.cli("inspect", name).stdout)[0]


def test_tells_systemd_when_ready_and_when_stopping(daemon, tmp_path):
    """Type=notify (contrib/systemd/corral.service): READY=1 once the sockets
    accept connections, STOPPING=1 on SIGTERM, on systemd's own protocol (a
    datagram to $NOTIFY_SOCKET)."""
    import socket

    daemon.stop()
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(30)
        old = os.environ.get("NOTIFY_SOCKET")
        os.environ["NOTIFY_SOCKET"] = str(path)
        try:
            daemon.start()
        finally:
            if old is None:
                del os.environ["NOTIFY_SOCKET"]
            else:
                os.environ["NOTIFY_SOCKET"] = old
        ready = s.recv(4096).decode().split("\n")
        assert ready == ["READY=1", f"MAINPID={daemon.proc.pid}"]
        daemon.stop()
        assert s.recv(4096) == b"STOPPING=1"
