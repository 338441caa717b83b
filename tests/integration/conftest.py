"""Fixtures that create kernel state remove it in `finally`, even on failure.

Every name carries a per-run prefix (RUN), every state file lives under a
temporary root; after each test no cgroup of the run may remain.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from protocols import oci
from supervisor.runtime import Runtime, cgroups
from supervisor.runtime import spec as specs
from tests import probe

RUN = f"corral-test-{os.getpid()}-{secrets.token_hex(3)}"


def _cgroup_leftovers(prefix: str) -> list[str]:
    """Containers' cgroups still under the parent `prefix`, in any hierarchy
    (the parent itself stays when its containers go, as Docker's /docker does)."""
    found = []
    for m in cgroups.mounts():
        p = Path(m.path) / prefix
        if p.is_dir():
            found += [str(c) for c in p.iterdir() if c.is_dir()]
    return found


def _drop_cgroup_parent(prefix: str) -> list[str]:
    """At a fixture's end: remove the parent `prefix` from every hierarchy, with
    whatever a failed test left under it; returns the containers' cgroups that
    were left (the caller asserts there were none)."""
    left = _cgroup_leftovers(prefix)
    for m in cgroups.mounts():
        p = Path(m.path) / prefix
        if p.is_dir():
            _remove_cgroup_tree(p)
    return left


def _remove_cgroup_tree(path: Path) -> None:
    """Kill what still runs in it (a test that failed, a daemon that crashed
    mid-start), then remove it, deepest first."""
    import signal
    import time

    for _ in range(100):
        pids = [
            int(pid) for procs in path.rglob("cgroup.procs") for pid in procs.read_text().split()
        ]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    for child in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
        if child.is_dir():
            try:
                os.rmdir(child)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem built from busybox-static, shared read-only."""
    if probe.BUSYBOX is None:
        pytest.skip("busybox-static is not installed")
    from supervisor.runtime.rootfs import make_busybox_rootfs

    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime with its own state root and cgroup parent; cleaned whatever happens."""
    if not probe.IS_ROOT:
        pytest.skip("needs root")
    parent = f"/{RUN}-{secrets.token_hex(2)}"
    rt = Runtime(tmp_path / "state", cgroup_parent=parent)
    try:
        yield rt
    finally:
        for st in rt.list():
            try:
                rt.delete(st.id, force=True)
            except Exception as e:  # keep cleaning the rest
                print(f"cleanup of {st.id} failed: {e}", file=sys.stderr)
        left = _drop_cgroup_parent(parent.lstrip("/"))
        assert not left, f"cgroups left behind: {left}"


class BundleFactory:
    def __init__(self, base: Path, rootfs: Path) -> None:
        self.base = base
        self.rootfs = rootfs
        self.n = 0

    def __call__(
        self, *args: str, terminal: bool = False, edit=None, rootfs: Path | None = None
    ) -> Path:
        """A bundle running `args` on the shared rootfs; `edit(dict)` may change the config."""
        self.n += 1
        bundle = self.base / f"bundle{self.n}"
        bundle.mkdir()
        spec = specs.default_spec(
            list(args) or ["true"], terminal=terminal, rootfs=str(rootfs or self.rootfs)
        )
        # Tests share the rootfs: keep it read-only so no test changes another's.
        spec = msgspec.structs.replace(
            spec, root=oci.Root(path=str(rootfs or self.rootfs), readonly=rootfs is None)
        )
        data = msgspec.to_builtins(spec)
        if edit is not None:
            edit(data)
        (bundle / "config.json").write_text(json.dumps(data))
        return bundle


@pytest.fixture
def bundle(tmp_path: Path, rootfs: Path) -> BundleFactory:
    return BundleFactory(tmp_path, rootfs)


def run_captured(rt: Runtime, id: str, bundle: Path, tmp_path: Path, stdin: int | None = None):
    """Run in the foreground with stdout/stderr to files; (code, out, err)."""
    out, err = tmp_path / f"{id}.out", tmp_path / f"{id}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        fin = stdin if stdin is not None else os.open("/dev/null", os.O_RDONLY)
        try:
            code = rt.run(id, bundle, stdio=(fin, o.fileno(), e.fileno()))
        finally:
            if stdin is None:
                os.close(fin)
    return code, out.read_text(), err.read_text()


@pytest.fixture
def corral_cli() -> list[str]:
    exe = shutil.which("corral", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "supervisor.cli"]


def cli(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def daemon(tmp_path: Path):
    """A running daemon under tmp_path; every container removed afterwards."""
    if not probe.IS_ROOT:
        pytest.skip("needs root")
    from tests.integration.daemon_fixture import Daemon

    d = Daemon(tmp_path / "d", secrets.token_hex(2))
    d.start()
    try:
        yield d
    finally:
        d.cleanup()
        # What the daemon logged above info, shown with a failed test's output
        # (pytest prints a test's captured output only when it fails).
        try:
            lines = d.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        worth = [line for line in lines if '"level": "error"' in line or '"level": "warn' in line]
        if worth:
            print("daemon.log, errors and warnings:", *worth[-40:], sep="\n")


PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture
def subreaper():
    """This test process reaps what corral-runc hands over, as the shim does."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        while True:  # the handed-over monitors, reparented to us as they exited
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


def _reap(pid: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    raise AssertionError(f"{pid} did not exit")
