"""What the daemon builds on: a copy-on-write root, exec into a running
container, stdin in log mode, and the monitor's log rotation."""

from __future__ import annotations

import os
import time
from pathlib import Path

from protocols import lite, oci
from protocols.lite import oci as oci_lite
from supervisor.runtime import spec as specs
from supervisor.runtime.processes import wait_child as _wait_child
from tests.integration.conftest import run_captured
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


def _wait_stopped(rt, id):
    deadline = time.monotonic() + 30
    while rt.state(id).status != "stopped":
        assert time.monotonic() < deadline, "container did not stop"
        time.sleep(0.01)


def _exec(runtime, id: str, script: str, out: Path, cwd: str = "/") -> int:
    """`sh -c script` run in container `id` as root, its output to `out`; its status."""
    proc = oci.Process(
        args=["sh", "-c", script], cwd=cwd, user=oci.User(uid=0, gid=0), env=[specs.DEFAULT_PATH]
    )
    with open(out, "wb") as f:
        devnull = os.open("/dev/null", os.O_RDONLY)
        try:
            _pid, pidfd, _child = runtime.exec(id, proc, (devnull, f.fileno(), f.fileno()))
        finally:
            os.close(devnull)
    try:
        return _wait_child(pidfd)
    finally:
        os.close(pidfd)


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
    script = "hostname; echo $$; cat /proc/1/cmdline; exit 7"
    assert _exec(runtime, "ex", script, out, cwd="/tmp") == 7
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


HOST_BASE = 231072  # the host ids the tests' user namespaces map 0-65535 to


def _userns(d: dict, base: int = HOST_BASE) -> None:
    d["linux"]["namespaces"].append({"type": "user"})
    for key in ("uidMappings", "gidMappings"):
        d["linux"][key] = [{"containerID": 0, "hostID": base, "size": 65536}]


def test_a_user_namespace_maps_root_to_an_unprivileged_host_id(runtime, bundle, rootfs, tmp_path):
    """uid 0 inside is HOST_BASE outside: what it writes is owned by HOST_BASE,
    and a root-only host file stays out of its reach though it holds the default
    capabilities. Its /dev nodes are the host's, bound (mknod is not for a user
    namespace); masks, /proc, /sys and the hostname as without one; an exec
    joins the user namespace first."""
    import shutil
    import subprocess

    own = tmp_path / "rootfs"  # the root filesystem owned by the mapped root, as runc needs
    shutil.copytree(rootfs, own, symlinks=True)
    subprocess.run(["chown", "-R", "-h", f"{HOST_BASE}:{HOST_BASE}", str(own)], check=True)
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, HOST_BASE, HOST_BASE)
    (out / "secret").write_text("host only\n")
    os.chmod(out / "secret", 0o600)

    def edit(d):
        _userns(d)
        d["hostname"] = "userns"
        d["mounts"].append(
            {"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]}
        )

    script = (
        "id -u; id -g; cat /proc/self/uid_map; hostname; echo x > /dev/null && echo null-ok; "
        "grep CapEff /proc/self/status; cat /proc/kcore | wc -c; ls /sys/kernel >/dev/null && "
        "echo sys-ok; touch /out/made; cat /out/secret || echo refused"
    )
    b = bundle("sh", "-c", script, edit=edit, rootfs=own)
    code, stdout, stderr = run_captured(runtime, "uns", b, tmp_path)
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(HOST_BASE), "65536"]
    assert lines[3:5] == ["userns", "null-ok"]
    assert lines[5].split()[1] == "00000000a80425fb"  # Docker's default set, in its namespace
    assert lines[6:8] == ["0", "sys-ok"]  # /proc/kcore masked
    assert lines[8] == "refused" and "Permission denied" in stderr
    assert (out / "made").stat().st_uid == HOST_BASE

    runtime.create("unsx", bundle("sleep", "1000", edit=edit, rootfs=own), stdio=None,
                   wait_for_start=False).close()  # fmt: skip
    log = tmp_path / "exec.out"
    script = "id -u; cat /proc/self/uid_map; touch /out/by-exec"
    assert _exec(runtime, "unsx", script, log) == 0, log.read_text()
    assert log.read_text().split()[:2] == ["0", "0"]
    assert (out / "by-exec").stat().st_uid == HOST_BASE  # not host root: it joined the namespace
    runtime.delete("unsx", force=True)


def test_user_namespace_specs_are_checked(runtime, bundle):
    from supervisor.errors import SpecError

    def maps_only(d):
        d["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 1}]

    def no_maps(d):
        d["linux"]["namespaces"].append({"type": "user"})

    def no_root(d):
        _userns(d)
        d["linux"]["uidMappings"] = [{"containerID": 1, "hostID": HOST_BASE, "size": 10}]

    for edit, field in (
        (maps_only, "linux.uidMappings"),
        (no_maps, "linux.uidMappings"),
        (no_root, "linux.uidMappings"),
    ):
        try:
            runtime.run("bad", bundle("true", edit=edit))
        except SpecError as e:
            assert e.field == field, e
        else:
            raise AssertionError(f"{edit.__name__} was accepted")
