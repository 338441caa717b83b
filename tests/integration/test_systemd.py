"""The daemon as a systemd service on a pure cgroup v2 host: the shipped unit
(contrib/systemd/corral.service, its ExecStart pointed at this checkout),
the containers in a delegated scope systemd made for them, a restart of the
service that leaves them running and adopted.

Runs where systemd is PID 1: the --systemd VM of scripts/test_v2.sh, which
sets CORRAL_EXPECT_SYSTEMD so that a missing systemd fails there instead of
skipping."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supervisor.daemon import systemd
from tests.integration.conftest import RUN, _reap
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox, pytest.mark.systemd]

REPO = Path(__file__).resolve().parents[2]


def systemctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120)


class Service:
    """corral.service as shipped, under a per-run name, root and scope."""

    def __init__(self, base: Path) -> None:
        tag = secrets.token_hex(2)
        self.name = f"{RUN}-{tag}.service"
        self.scope = f"{RUN}-{tag}-containers.scope"
        self.root, self.run_root = base / "root", base / "run"
        self.env = {**os.environ, "CORRAL_SOCKET": str(self.run_root / "corral.sock")}
        corral = Path(sys.executable).parent / "corral"
        flags = (
            f"--root {self.root} --run-root {self.run_root}"
            f" --cgroup-parent {self.scope} --bridge crs{tag} --log-level debug"
        )
        lines = []
        for line in (REPO / "contrib/systemd/corral.service").read_text().splitlines():
            if line.startswith("ExecStart="):
                line = f"ExecStart={corral} daemon {flags}"
            if line.startswith("[Install]"):
                break
            lines.append(line)
        # The sockets' group, as the install makes it (removed after if made here).
        self.made_group = (
            subprocess.run(["getent", "group", "corral"], capture_output=True).returncode != 0
        )
        if self.made_group:
            subprocess.run(["groupadd", "--system", "corral"], check=True)
        self.gid = int(
            subprocess.run(
                ["getent", "group", "corral"], capture_output=True, text=True
            ).stdout.split(":")[2]
        )
        self.unit = Path("/run/systemd/system") / self.name
        self.unit.write_text("\n".join(lines) + "\n")
        assert systemctl("daemon-reload").returncode == 0

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "supervisor.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def scope_cgroup(self) -> Path:
        p = systemctl("show", "-P", "ControlGroup", self.scope)
        assert p.returncode == 0 and p.stdout.strip(), p.stderr
        return Path("/sys/fs/cgroup") / p.stdout.strip().lstrip("/")

    def cleanup(self) -> None:
        try:
            if systemctl("is-active", "--quiet", self.name).returncode != 0:
                systemctl("start", self.name)
            ps = self.cli("ps", "-aq")
            for cid in ps.stdout.split():
                self.cli("rm", "-f", cid)
        finally:
            systemctl("stop", self.name)
            systemctl("stop", self.scope)  # its holder, and anything a failure left
            systemctl("reset-failed", self.name)
            self.unit.unlink(missing_ok=True)
            systemctl("daemon-reload")
            if self.made_group:
                subprocess.run(["groupdel", "corral"], check=False)


@pytest.fixture
def booted():
    """systemd as PID 1 on cgroup v2: a skip elsewhere, a failure in the VM."""
    if not systemd.booted():
        why = "systemd is not PID 1 on a cgroup v2 host here (scripts/test_v2.sh runs this)"
        if os.environ.get("CORRAL_EXPECT_SYSTEMD"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture
def service(booted, tmp_path):
    s = Service(tmp_path / "svc")
    try:
        yield s
    finally:
        s.cleanup()


def _inspect(s: Service, name: str) -> dict:
    p = s.cli("inspect", name)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)[0]


def test_a_restart_of_the_service_leaves_its_containers_running_and_adopted(service, rootfs):
    s = service
    started = systemctl("start", s.name)  # Type=notify: returns once READY=1 came
    assert started.returncode == 0, started.stderr + systemctl("status", s.name).stdout
    # Its files as a service's should be: the socket root's and the corral
    # group's only, the state root's alone, its log in the journal.
    sock = os.stat(s.run_root / "corral.sock")
    assert (sock.st_mode & 0o777, sock.st_uid, sock.st_gid) == (0o660, 0, s.gid)
    assert os.stat(s.root).st_mode & 0o777 == 0o700
    assert os.stat(s.run_root).st_mode & 0o777 == 0o711
    journal = subprocess.run(
        ["journalctl", "-u", s.name, "-o", "cat", "--no-pager"], capture_output=True, text=True
    )
    assert "daemon.ready" in journal.stdout, journal.stdout[-2000:]
    p = s.cli(
        "run", "-d", "--name", "web", "--memory", "64m", "--pids-limit", "40",
        "--network", "none", "--rootfs", str(rootfs), "sleep", "1000",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    pid = _inspect(s, "web")["State"]["Pid"]

    # Its cgroup is in the scope systemd delegated, the limits written there.
    scope = s.scope_cgroup()
    assert systemctl("show", "-P", "Delegate", s.scope).stdout.strip() == "yes"
    cg = scope / cid
    assert (cg / "memory.max").read_text().strip() == str(64 * 2**20)
    assert (cg / "pids.max").read_text().strip() == "40"
    assert str(pid) in (cg / "cgroup.procs").read_text().split()
    # systemd re-applies what it owns on a reload; what it delegated it leaves.
    assert systemctl("daemon-reload").returncode == 0
    assert (cg / "memory.max").read_text().strip() == str(64 * 2**20)

    # The service's own cgroup hands nothing down (the daemon and the monitors
    # live there): so a restart can put the new daemon in it.
    svc_group = systemctl("show", "-P", "ControlGroup", s.name).stdout.strip()
    svc = Path("/sys/fs/cgroup") / svc_group.lstrip("/")
    assert (svc / "cgroup.subtree_control").read_text().strip() == ""

    restarted = systemctl("restart", s.name)
    assert restarted.returncode == 0, restarted.stderr + systemctl("status", s.name).stdout
    assert systemctl("is-active", s.name).stdout.strip() == "active"
    st = _inspect(s, "web")["State"]
    assert st["Running"] and st["Pid"] == pid, st  # the same process, adopted
    assert str(pid) in (cg / "cgroup.procs").read_text().split()

    # Adopted means watched: its exit is seen by the new daemon.
    assert s.cli("stop", "-t", "1", "web").returncode == 0
    deadline = time.monotonic() + 60
    while _inspect(s, "web")["State"]["Running"]:
        assert time.monotonic() < deadline, "the restarted daemon never saw the exit"
        time.sleep(0.1)
    assert s.cli("rm", "web").returncode == 0
    assert not cg.exists()
    stopped = systemctl("stop", s.name)  # SIGTERM: a clean stop, exit status 0
    assert stopped.returncode == 0, stopped.stderr
    shown = systemctl("show", "-P", "Result", s.name).stdout.strip()
    assert shown == "success", systemctl("status", s.name).stdout


def test_corral_runc_systemd_cgroup_gives_each_container_a_scope(
    booted, bundle, tmp_path, subreaper
):
    """--systemd-cgroup, as containerd's SystemdCgroup = true passes it:
    cgroupsPath SLICE:PREFIX:NAME is a delegated transient scope
    PREFIX-NAME.scope, the container in its `container` leaf with its limits;
    the scope ends with the container (reaped here, as the shim would)."""
    from tests.integration.test_corral_runc import _runc

    tag = secrets.token_hex(2)
    unit = f"{RUN}-{tag}.scope"

    def edit(d):
        d["linux"]["cgroupsPath"] = f"system.slice:{RUN}:{tag}"
        d["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 30}}

    b = bundle("sleep", "100", edit=edit)
    root = tmp_path / "runc-root"
    err = tmp_path / "stderr"  # a file: the container keeps create's stdio open

    def runc(*args: str) -> subprocess.CompletedProcess:
        with open(err, "w") as e:
            p = subprocess.run(
                [_runc(), "--root", str(root), "--systemd-cgroup", *args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=e, timeout=60,
            )  # fmt: skip
        p.stderr = err.read_text()
        return p

    try:
        p = runc("create", "--bundle", str(b), "--pid-file", str(tmp_path / "pid"), "s1")
        assert p.returncode == 0, p.stderr
        pid = int((tmp_path / "pid").read_text())
        assert systemctl("show", "-P", "Delegate", unit).stdout.strip() == "yes"
        group = systemctl("show", "-P", "ControlGroup", unit).stdout.strip()
        assert group.startswith("/system.slice/"), group
        cg = Path("/sys/fs/cgroup") / group.lstrip("/")
        assert str(pid) in (cg / "container" / "cgroup.procs").read_text().split()
        assert not (cg / "hold").exists()  # the holder went once the container was in
        assert (cg / "container" / "memory.max").read_text().strip() == str(64 << 20)
        assert (cg / "container" / "pids.max").read_text().strip() == "30"
        assert runc("start", "s1").returncode == 0
        assert systemctl("daemon-reload").returncode == 0
        assert (cg / "container" / "memory.max").read_text().strip() == str(64 << 20)
        assert runc("kill", "s1", "KILL").returncode == 0
        assert _reap(pid) == -9
        assert runc("delete", "s1").returncode == 0
        deadline = time.monotonic() + 30
        while systemctl("is-active", unit).stdout.strip() == "active" or cg.exists():
            assert time.monotonic() < deadline, "the scope outlived its container"
            time.sleep(0.1)
    finally:
        subprocess.run(
            [_runc(), "--root", str(root), "delete", "--force", "s1"], capture_output=True
        )
        systemctl("stop", unit)
