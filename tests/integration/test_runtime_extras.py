"""What the daemon builds on: a copy-on-write root, exec into a running
container, stdin in log mode, and the monitor's log rotation."""

from __future__ import annotations

import os
import time
from pathlib import Path

from protocols import lite, oci, oci_lite
from supervisor.runtime import spec as specs
from supervisor.runtime.container import _wait_child
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


def _wait_stopped(rt, id):
    deadline = time.monotonic() + 30
    while rt.state(id).status != "stopped":
        assert time.monotonic() < deadline, "container did not stop"
        time.sleep(0.01)


def overlay_dirs(tmp_path: Path):
    upper, work, mnt = tmp_path / "upper", tmp_path / "work", tmp_path / "mnt"
    for d in (upper, work, mnt):
        d.mkdir()
    return upper, work, mnt


def test_overlay_root_writes_go_to_upper(runtime, bundle, rootfs, tmp_path):
    upper, work, mnt = overlay_dirs(tmp_path)
    b = bundle("sh", "-c", "echo data > /newfile; rm /etc/hostname; ls /newfile")
    spec = specs.load(b)
    spec = lite.replace(spec, root=oci_lite.Root(path=str(mnt)))
    created = runtime.create(
        "ov",
        b,
        stdio=None,
        wait_for_start=False,
        spec=spec,
        overlay=(str(rootfs), str(upper), str(work)),
    )
    assert _wait_child(created.monitor_pidfd) == 0
    created.close()
    assert (upper / "newfile").read_text() == "data\n"
    assert not (rootfs / "newfile").exists()  # the lower layer is untouched
    assert (rootfs / "etc" / "hostname").exists()
    assert list(mnt.iterdir()) == []  # the host never held the overlay mount
    assert str(mnt) not in Path("/proc/mounts").read_text()


def test_exec_joins_the_container(runtime, bundle, tmp_path):
    def edit(d):
        d["hostname"] = "inside"

    runtime.create(
        "ex", bundle("sleep", "1000", edit=edit), stdio=None, wait_for_start=False
    ).close()
    out = tmp_path / "exec.out"
    proc = oci.Process(
        args=["sh", "-c", "hostname; echo $$; cat /proc/1/cmdline; exit 7"],
        cwd="/tmp",
        user=oci.User(uid=0, gid=0),
        env=[specs.DEFAULT_PATH],
    )
    with open(out, "wb") as f:
        devnull = os.open("/dev/null", os.O_RDONLY)
        try:
            _pid, pidfd, _child = runtime.exec("ex", proc, (devnull, f.fileno(), f.fileno()))
        finally:
            os.close(devnull)
    assert _wait_child(pidfd) == 7
    os.close(pidfd)
    lines = out.read_text().split()
    assert lines[0] == "inside"
    assert int(lines[1]) > 1  # a new process in the container's pid namespace
    assert lines[2].startswith("sleep")


def test_stdin_reaches_a_logged_container(runtime, bundle):
    r, w = os.pipe()
    created = runtime.create(
        "in", bundle("sh", "-c", "read x; echo got $x"), stdio=None, wait_for_start=False, stdin=r
    )
    os.close(r)
    os.write(w, b"hello\n")
    os.close(w)
    assert _wait_child(created.monitor_pidfd) == 0
    created.close()
    assert "got hello" in (Path(runtime.root) / "in" / "container.log").read_text()


def test_log_rotation_keeps_max_files(runtime, bundle):
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"
    created = runtime.create(
        "rot",
        bundle("sh", "-c", script),
        stdio=None,
        wait_for_start=False,
        log_max_size=4096,
        log_max_files=3,
    )
    assert _wait_child(created.monitor_pidfd) == 0
    created.close()
    d = Path(runtime.root) / "rot"
    files = sorted(p.name for p in d.iterdir() if p.name.startswith("container.log"))
    assert files == ["container.log", "container.log.1", "container.log.2"]
    for name in files:
        assert (d / name).stat().st_size <= 4096
    last = (d / "container.log").read_text().splitlines()[-1]
    assert last.endswith("line-399-xxxxxxxxxxxxxxxxxxxxxxxx")
