"""Attacks by a hostile bundle, image or client (issue #14): each reproduces
the attack and checks that the host and the daemon are unharmed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


def wait_until(pred, what, limit=30.0):
    deadline = time.monotonic() + limit
    while not (value := pred()):
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.02)
    return value


# -- a bundle without a mount namespace ---------------------------------------------------

_PROBE_ROOT = """
import json, os, subprocess, sys
before = os.stat("/")
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
after = os.stat("/")
print(json.dumps({"rc": p.returncode, "out": p.stdout, "err": p.stderr,
                  "same_root": (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)}))
"""


def _in_private_mount_ns(argv: list[str]) -> dict:
    """Run `argv` inside a private mount namespace of its own (so that a
    pivot_root gone wrong harms only it) and report whether its root moved."""
    p = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            _PROBE_ROOT,
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _no_mount_ns(d: dict, *, keep_mounts: bool) -> None:
    linux = d["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "mount"]
    if not keep_mounts:
        d["mounts"] = []
        linux.pop("maskedPaths", None)
        linux.pop("readonlyPaths", None)
        d["root"]["readonly"] = False


def test_bundle_without_mount_namespace_never_touches_the_callers_root(
    runtime, bundle, corral_cli, tmp_path
):
    root = runtime.root
    # As `runc spec` writes it, less the mount namespace: mounts need one.
    b = bundle("true", edit=lambda d: _no_mount_ns(d, keep_mounts=True))
    # The fixture's cgroup parent, which it removes (not the default /corral).
    rt = [*corral_cli, "runtime", "--root", str(root), "--cgroup-parent", runtime.cgroup_parent]
    r = _in_private_mount_ns([*rt, "run", "nomnt", "-b", str(b)])
    assert r["same_root"], r
    assert r["rc"] != 0 and "mount namespace" in r["err"], r
    assert "Traceback" not in r["err"], r["err"]
    assert not (Path(root) / "nomnt").exists()  # nothing left, no `creating` record

    # Without any mount: chroot into the root filesystem, as runc does.
    b = bundle(
        "sh",
        "-c",
        "ls /bin/busybox && echo in-root",
        edit=lambda d: _no_mount_ns(d, keep_mounts=False),
    )
    r = _in_private_mount_ns([*rt, "run", "chrooted", "-b", str(b)])
    assert r["same_root"], r
    assert r["rc"] == 0 and "in-root" in r["out"], r


# -- a seccomp profile without close_range ------------------------------------------------


def _profile_without(tmp_path: Path, syscall: str) -> Path:
    f = tmp_path / "no-close-range.json"
    f.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": [syscall], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                ],
            }
        )
    )
    return f


def test_seccomp_profile_without_close_range_runs(daemon, rootfs, tmp_path):
    f = _profile_without(tmp_path, "close_range")
    p = daemon.cli(
        "run", "--rm", "--security-opt", f"seccomp={f}", "--rootfs", str(rootfs), "echo", "ran"
    )
    assert p.returncode == 0 and p.stdout == "ran\n", p.stderr


def test_a_failure_after_the_filter_reaches_the_error_record(daemon, rootfs, tmp_path):
    # execve itself refused by the profile: the step fails after the daemon was
    # told the container is ready; its exit and inspect say why.
    f = _profile_without(tmp_path, "execve")
    p = daemon.cli(
        "run", "--name", "noexec", "--security-opt", f"seccomp={f}", "--rootfs", str(rootfs), "true"
    )
    assert p.returncode == 126, (p.returncode, p.stderr)
    assert "execve" in p.stderr and "EPERM" in p.stderr, p.stderr
    state = json.loads(daemon.cli("inspect", "noexec").stdout)[0]["State"]
    assert state["ExitCode"] == 126 and "execve" in state["Error"], state


# -- an image whose volume directory holds host device nodes ------------------------------


def _image_with_devices(daemon, rootfs: Path, tmp_path: Path, name: str) -> None:
    """busybox plus data/null (char 1:3), data/disk (block 7:0), data/fifo."""
    import tarfile

    archive = tmp_path / "devices.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
        for entry, kind, major, minor in (
            ("data/null", tarfile.CHRTYPE, 1, 3),
            ("data/disk", tarfile.BLKTYPE, 7, 0),
            ("data/fifo", tarfile.FIFOTYPE, 0, 0),
        ):
            info = tarfile.TarInfo(entry)
            info.type, info.devmajor, info.devminor, info.mode = kind, major, minor, 0o644
            tar.addfile(info)
        info = tarfile.TarInfo("data/kept")
        info.size = 5
        import io

        tar.addfile(info, io.BytesIO(b"kept\n"))
    p = daemon.cli("import", str(archive), name)
    assert p.returncode == 0, p.stderr


def test_volume_copy_up_makes_device_nodes_never_reads_them(daemon, rootfs, tmp_path):
    import stat

    _image_with_devices(daemon, rootfs, tmp_path, "devimage")
    p = daemon.cli(
        "run", "--rm", "-v", "devvol:/data", "devimage", "sh", "-c", "cat /data/kept; ls /data"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("kept\n"), p.stdout
    data = daemon.root / "volumes" / "devvol" / "_data"
    null, disk, fifo = (os.lstat(data / n) for n in ("null", "disk", "fifo"))
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(disk.st_mode) and disk.st_rdev == os.makedev(7, 0)
    assert stat.S_ISFIFO(fifo.st_mode)
    assert (data / "kept").read_text() == "kept\n"
    assert daemon.cli("volume", "rm", "devvol").returncode == 0


# -- a container whose monitor is killed ------------------------------------------------


def _runtime_record(daemon, cid: str) -> dict:
    return json.loads((daemon.run_root / "runtime" / cid / "state.json").read_text())


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"  # a zombie init has not reaped
    except FileNotFoundError:
        return True


@pytest.mark.cgroups
def test_monitor_killed_its_container_is_killed_and_restarted(daemon, rootfs):
    p = daemon.cli(
        "run",
        "-d",
        "--name",
        "orphan",
        "--restart",
        "always",
        "--rootfs",
        str(rootfs),
        "sleep",
        "1000",
    )
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    rec = _runtime_record(daemon, cid)
    os.kill(rec["monitor_pid"], 9)
    # The daemon kills the orphaned container through its cgroup, then the
    # policy starts it again: a new process, running.
    wait_until(lambda: _gone(rec["pid"]), "the orphaned container killed")

    def restarted():
        st = json.loads(daemon.cli("inspect", "orphan").stdout)[0]["State"]
        return st["Running"] and st["Pid"] not in (0, rec["pid"]) and st

    st = wait_until(restarted, "a restart after the monitor's death")
    assert st["Status"] == "running"
    assert daemon.cli("rm", "-f", "orphan").returncode == 0


@pytest.mark.cgroups
def test_monitor_killed_while_the_daemon_is_down(daemon, rootfs):
    p = daemon.cli("run", "-d", "--name", "orphan2", "--rootfs", str(rootfs), "sleep", "1000")
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    rec = _runtime_record(daemon, cid)
    daemon.kill9()
    os.kill(rec["monitor_pid"], 9)
    daemon.start()  # comes up, and cleans up after the dead monitor
    assert _gone(rec["pid"])
    st = json.loads(daemon.cli("inspect", "orphan2").stdout)[0]["State"]
    assert st["Status"] == "exited" and "monitor" in st["Error"], st
    p = daemon.cli("start", "orphan2")
    assert p.returncode == 0, p.stderr
    assert daemon.cli("rm", "-f", "orphan2").returncode == 0


# -- a huge log ------------------------------------------------------------------------


def _peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def test_logs_tail_of_a_huge_log_reads_from_the_end(daemon, rootfs):
    # ~100 MB of 1 KiB lines, no rotation.
    script = "yes $(head -c 1023 /dev/zero | tr '\\0' x) | head -c 100000000; echo; echo last"
    p = daemon.cli(
        "run", "--name", "chatty", "--log-opt", "max-size=-1", "--rootfs", str(rootfs),
        "sh", "-c", script,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-500:]
    log = (
        daemon.root
        / "containers"
        / json.loads(daemon.cli("inspect", "chatty").stdout)[0]["Id"]
        / "container.log"
    )
    assert log.stat().st_size > 100_000_000
    before = _peak_rss_kib(daemon.proc.pid)
    p = daemon.cli("logs", "--tail", "2", "chatty")
    assert p.returncode == 0 and p.stdout.splitlines()[-1] == "last", p.stdout[-200:]
    assert len(p.stdout.splitlines()) == 2
    # The daemon read kilobytes, not the file: its peak memory barely moved.
    assert _peak_rss_kib(daemon.proc.pid) - before < 50_000
    # A whole read streams: other clients are served meanwhile.
    reader = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "logs", "chatty"],
        env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert reader.stdout is not None
        reader.stdout.read(1 << 20)  # it is streaming now
        assert daemon.cli("ps", "-a", timeout=20).returncode == 0
    finally:
        reader.kill()
        reader.wait()
        reader.stdout.close()
    assert _peak_rss_kib(daemon.proc.pid) - before < 50_000


def test_logs_are_rotated_by_default(daemon, rootfs):
    p = daemon.cli("run", "-d", "--name", "capped", "--rootfs", str(rootfs), "true")
    assert p.returncode == 0, p.stderr
    cfg = json.loads(daemon.cli("inspect", "capped").stdout)[0]["HostConfig"]["LogConfig"]
    assert cfg["Config"] == {"max-size": str(20 * 1024 * 1024), "max-file": "5"}, cfg
    for bad in ("max-size=abc", "max-size=0", "max-file=0", "colour=red"):
        p = daemon.cli("run", "--log-opt", bad, "--rootfs", str(rootfs), "true")
        assert p.returncode == 125 and "--log-opt" in p.stderr and "Traceback" not in p.stderr, (
            p.stderr
        )


# -- a layer that whites out its parent -----------------------------------------------


@pytest.mark.parametrize("entry", [".wh...", ".wh..", "sub/.wh...", ".wh."])
def test_whiteout_of_dot_or_dotdot_is_refused(daemon, tmp_path, entry):
    import io
    import tarfile

    sentinel = daemon.root / "images" / "tmp" / "other-import-in-flight"
    sentinel.mkdir()
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("sub/", "sub/file", entry):
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                tar.addfile(info, io.BytesIO(b""))
    p = daemon.cli("import", str(archive), "evil")
    assert p.returncode != 0 and "whiteout" in p.stderr, p.stderr
    assert sentinel.is_dir()  # nothing outside the layer was removed
    sentinel.rmdir()


# -- deep trees ------------------------------------------------------------------------

# Two chains of N/2 directories, one moved to the end of the other: every path
# the shell names stays under PATH_MAX, the tree is N+2 deep (x/a.../y/a.../f).
_DEEP = (
    "D=a; i=1; while [ $i -lt {half} ]; do D=$D/a; i=$((i+1)); done; "
    "mkdir -p x/$D y/$D && echo deep > y/$D/f && mv y x/$D/"
)
_READ_DEEP = "D=a; i=1; while [ $i -lt {half} ]; do D=$D/a; i=$((i+1)); done; cd x/$D/y && cat $D/f"


def test_a_2048_deep_tree_in_a_container(daemon, rootfs, tmp_path):
    p = daemon.cli(
        "run", "--name", "deep", "--rootfs", str(rootfs), "sh", "-c", _DEEP.format(half=1024)
    )
    assert p.returncode == 0, p.stderr
    p = daemon.cli("diff", "deep")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "A /x" and lines[-1].endswith("/a/f") and len(lines) == 2051, lines[:3]
    for args in (("ps", "-a", "-s"), ("system", "df")):
        p = daemon.cli(*args)
        assert p.returncode == 0 and "Traceback" not in p.stderr, (args, p.stderr)
    p = daemon.cli("commit", "deep", "deep-image")
    assert p.returncode == 0, p.stderr
    p = daemon.cli("run", "--rm", "deep-image", "sh", "-c", _READ_DEEP.format(half=1024))
    assert p.stdout == "deep\n", (p.stdout, p.stderr)
    assert daemon.cli("rm", "-f", "deep").returncode == 0
    assert daemon.cli("rmi", "deep-image").returncode == 0
    p = daemon.cli(
        "run", "--name", "deep2", "--rootfs", str(rootfs), "sh", "-c", _DEEP.format(half=1024)
    )
    p = daemon.cli("container", "prune", "-f")
    assert p.returncode == 0 and "deep2" not in daemon.cli("ps", "-a").stdout, p.stderr
    assert not [d for d in (daemon.root / "containers").iterdir()]  # nothing left on disk


def test_export_cp_and_rmi_over_a_1500_deep_layer(daemon, rootfs, tmp_path):
    import tarfile

    p = daemon.cli(
        "run", "--name", "maker", "--rootfs", str(rootfs), "sh", "-c", _DEEP.format(half=750)
    )
    assert p.returncode == 0, p.stderr
    assert daemon.cli("commit", "maker", "layered").returncode == 0
    assert daemon.cli("rm", "maker").returncode == 0
    p = daemon.cli("create", "--name", "user", "layered", "true")
    assert p.returncode == 0, p.stderr
    out = tmp_path / "export.tar"
    p = daemon.cli("export", "-o", str(out), "user")
    assert p.returncode == 0, p.stderr
    with tarfile.open(out) as t:
        names = t.getnames()
    assert any(n.endswith("/f") and n.count("a/") == 1500 for n in names)
    p = daemon.cli("cp", "user:/x", str(tmp_path / "copied"))
    assert p.returncode == 0, p.stderr
    assert daemon.cli("rm", "user").returncode == 0
    layers_before = set((daemon.root / "images" / "layers").iterdir())
    p = daemon.cli("rmi", "layered")
    assert p.returncode == 0, p.stderr
    left = set((daemon.root / "images" / "layers").iterdir())
    assert len(left) < len(layers_before) and all(d in layers_before for d in left)
    subprocess.run(["rm", "-rf", str(tmp_path / "copied")], check=False)


# -- idle and greedy connections -------------------------------------------------------


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_connections_cannot_hold_the_daemons_memory(daemon):
    import socket
    import struct

    from protocols import api as wire_api
    from protocols.wire import PROTOCOL_VERSION, frame

    daemon.stop()
    daemon.extra_args = ["--handshake-timeout", "300ms", "--max-buffered", "32m"]
    daemon.start()
    pid = daemon.proc.pid
    before = _rss_kib(pid)
    header = struct.pack(">I", 16 * 1024 * 1024 - 1)  # a 16 MiB frame, announced
    chunk = b"\0" * (1 << 20)
    socks = []
    try:
        # Before Hello: the announced size alone is refused, at once.
        s = socket.socket(socket.AF_UNIX)
        s.connect(daemon.socket)
        s.sendall(header + chunk[:1000])
        assert b"limit" in s.recv(4096)
        s.close()
        # A connection that never says Hello is closed after the handshake time.
        s = socket.socket(socket.AF_UNIX)
        s.connect(daemon.socket)
        s.settimeout(30)
        assert s.recv(4096) == b""
        s.close()
        # After Hello, 50 clients parking 8 MiB each: past 32m they are refused.
        hello = frame(msgspec_encode(wire_api.Hello(version=PROTOCOL_VERSION)))
        refused = 0
        pending: list[socket.socket] = []
        for _ in range(50):
            s = socket.socket(socket.AF_UNIX)
            s.connect(daemon.socket)
            s.sendall(hello)
            s.recv(4096)  # Welcome
            socks.append(s)
            try:
                s.sendall(header)
                for _ in range(8):
                    s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                refused += 1
                continue
            pending.append(s)
        # The 8 MiB may all be in socket buffers before the daemon's refusal
        # closes a connection: the refusal message itself counts too.
        import select

        readable, _, _ = select.select(pending, [], [], 5)
        for s in readable:
            try:
                refused += b"unfinished messages" in s.recv(4096)
            except ConnectionResetError:
                pass
        assert refused > 0
        assert daemon.cli("ps", timeout=20).returncode == 0  # still serving
        assert _rss_kib(pid) - before < 100_000, (before, _rss_kib(pid))
    finally:
        for s in socks:
            s.close()
    assert daemon.cli("ps", timeout=20).returncode == 0


def msgspec_encode(msg) -> bytes:
    import msgspec

    return msgspec.msgpack.encode(msg)
