"""Create, start, state, kill, delete; exit codes, signals, logs; failures leave nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from supervisor.errors import InvalidState, NoSuchContainer, SetupError, SpecError
from tests.integration.conftest import RUN, _cgroup_leftovers, _drop_cgroup_parent, run_captured
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


def wait_for(predicate, what: str, limit: float = 30.0):
    """Poll until true; the limit only bounds a hang, it asserts no speed."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _catches(pid: int, sig: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_exit_code_passes_through(runtime, bundle, tmp_path, code):
    b = bundle("sh", "-c", f"exit {code}")
    assert run_captured(runtime, "c", b, tmp_path)[0] == code


def test_killed_by_signal_is_128_plus_n(runtime, bundle):
    from supervisor.runtime.processes import wait_child as _wait_child

    created = runtime.create("k", bundle("sleep", "1000"), stdio=None, wait_for_start=False)
    runtime.kill("k", signal.SIGKILL)
    assert _wait_child(created.monitor_pidfd) == 128 + 9
    created.close()
    ex = runtime.exit_status("k")
    assert ex is not None and ex.exit_code == 137 and ex.signal == 9 and not ex.oom_killed


def test_signal_forwarded_by_foreground_cli(bundle, tmp_path, corral_cli):
    """`corral runtime run` passes SIGTERM on; a trapping init exits with its code."""
    import subprocess

    b = bundle(
        "sh", "-c", "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.05; done"
    )
    proc = subprocess.Popen(
        [
            *corral_cli,
            "runtime",
            "--root",
            str(tmp_path / "st"),
            "--cgroup-parent",
            f"/{RUN}-cli",
            "run",
            "-b",
            str(b),
            "fg",
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert "got-term" in out
        assert proc.returncode == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            # The CLI is gone, its monitor and container not: remove them too.
            base = [*corral_cli, "runtime", "--root", str(tmp_path / "st")]
            subprocess.run([*base, "delete", "--force", "fg"], capture_output=True)
        left = _drop_cgroup_parent(f"{RUN}-cli")
    assert not (tmp_path / "st" / "fg").exists()
    assert not left


def test_create_start_state_kill_delete(runtime, bundle):
    b = bundle("sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.05; done")
    created = runtime.create("life", b, stdio=None)
    created.close()
    st = runtime.state("life")
    assert st.status == "created" and st.pid and st.bundle == str(b)
    assert [s.id for s in runtime.list()] == ["life"]
    with pytest.raises(InvalidState, match="not running"):
        runtime.pause("life")
    runtime.start("life")
    assert runtime.state("life").status == "running"
    with pytest.raises(InvalidState, match="running"):
        runtime.delete("life")
    # pid 1 ignores signals it has no handler for; the trap makes SIGTERM count.
    # Its handler is installed once SigCgt shows SIGTERM (bit 14).
    wait_for(lambda: _catches(st.pid, signal.SIGTERM), "the shell's trap")
    runtime.kill("life", signal.SIGTERM)
    wait_for(lambda: runtime.state("life").status == "stopped", "exit after SIGTERM")
    ex = runtime.exit_status("life")
    assert ex is not None and ex.exit_code == 7 and not ex.oom_killed
    with pytest.raises(InvalidState):
        runtime.kill("life", signal.SIGTERM)
    runtime.delete("life")
    with pytest.raises(NoSuchContainer):
        runtime.state("life")


def test_start_twice_is_refused(runtime, bundle):
    runtime.create("s", bundle("sleep", "30"), stdio=None).close()
    runtime.start("s")
    with pytest.raises(InvalidState, match="not created"):
        runtime.start("s")
    runtime.delete("s", force=True)


@pytest.mark.cgroups
def test_delete_created_container_kills_it(runtime, bundle):
    created = runtime.create("d", bundle("true"), stdio=None)
    pid = created.record.pid
    created.close()
    # The runtime spec: delete MUST fail unless the container is stopped...
    with pytest.raises(InvalidState, match="it is created"):
        runtime.delete("d")
    assert runtime.state("d").status == "created"
    runtime.delete("d", force=True)  # ... or forced, which kills the waiting child
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the waiting child to go")


@pytest.mark.cgroups
def test_force_delete_running(runtime, bundle):
    runtime.create("f", bundle("sleep", "1000"), stdio=None, wait_for_start=False).close()
    assert runtime.state("f").status == "running"
    runtime.delete("f", force=True)
    assert runtime.list() == []


def test_detached_logs_in_cri_format(runtime, bundle):
    b = bundle("sh", "-c", "echo out1; echo err1 >&2; printf partial")
    runtime.create("l", b, stdio=None, wait_for_start=False).close()
    wait_for(lambda: runtime.state("l").status == "stopped", "exit")
    lines = (Path(runtime.root) / "l" / "container.log").read_text().splitlines()
    parsed = [line.split(" ", 3) for line in lines]
    assert [(p[1], p[2], p[3]) for p in parsed] == [
        ("stdout", "F", "out1"),
        ("stderr", "F", "err1"),
        ("stdout", "P", "partial"),
    ] or sorted((p[1], p[3]) for p in parsed) == [
        ("stderr", "err1"),
        ("stdout", "out1"),
        ("stdout", "partial"),
    ]
    assert all(p[0].endswith("Z") and "T" in p[0] for p in parsed)


@pytest.mark.cgroups
def test_pause_and_resume(runtime, bundle):
    runtime.create("p", bundle("sleep", "1000"), stdio=None, wait_for_start=False).close()
    runtime.pause("p")
    assert runtime.state("p").status == "paused"
    pid = runtime.state("p").pid
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state in ("D", "S", "T")
    runtime.resume("p")
    assert runtime.state("p").status == "running"


def test_exec_not_found_is_reported_and_leaves_nothing(runtime, bundle):
    b = bundle("/no/such/program")
    with pytest.raises(SetupError) as exc:
        runtime.run("nf", b, stdio=(0, 1, 2))
    assert exc.value.step == "looking up the executable"
    assert exc.value.path == "/no/such/program"
    assert exc.value.exit_code == 127
    assert "ENOENT" in str(exc.value)
    assert not (Path(runtime.root) / "nf").exists()
    assert not _cgroup_leftovers(runtime.cgroup_parent.lstrip("/"))


def _children() -> set[int]:
    """This process's children, zombies too."""
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return {int(p) for p in f.read().split()}


def test_create_in_steps_and_a_caller_that_gives_up(runtime, bundle):
    """create_steps yields the report descriptor (an event loop waits on it);
    resumed it returns the container, closed it removes the half-made one and
    reaps its monitor."""
    from supervisor.runtime.container import finish_create

    before = _children()
    steps = runtime.create_steps("st1", bundle("sleep", "100"), stdio=None)
    fd = next(steps)
    assert isinstance(fd, int) and fd >= 0
    created = finish_create(steps)
    assert runtime.state("st1").status == "created"
    created.close()
    runtime.delete("st1", force=True)

    steps = runtime.create_steps("st2", bundle("sleep", "100"), stdio=None, wait_for_start=False)
    next(steps)
    steps.close()  # as a cancelled daemon task does
    assert not (Path(runtime.root) / "st2").exists()
    assert not _cgroup_leftovers(runtime.cgroup_parent.lstrip("/"))
    assert _children() == before  # the monitor reaped: no zombie left


def test_missing_rootfs_is_a_spec_error(runtime, bundle, tmp_path):
    b = bundle("true", rootfs=tmp_path / "does-not-exist")
    with pytest.raises(SpecError, match=r"root\.path"):
        runtime.run("m", b)
    assert not (Path(runtime.root) / "m").exists()


def test_failing_mount_names_step_and_path(runtime, bundle):
    def edit(d):
        d["mounts"].append(
            {"destination": "/data", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]}
        )

    with pytest.raises(SetupError) as exc:
        runtime.run("bm", bundle("true", edit=edit, rootfs=None))
    assert exc.value.step == "mount" and exc.value.path == "/no/such/dir"
    assert not (Path(runtime.root) / "bm").exists()


def test_duplicate_id_refused(runtime, bundle):
    runtime.create("dup", bundle("true"), stdio=None).close()
    with pytest.raises(Exception, match="already exists"):
        runtime.create("dup", bundle("true"), stdio=None)
    runtime.delete("dup", force=True)


def test_symlink_mount_target_cannot_escape_root(runtime, bundle, tmp_path):
    """A symlink in the image pointing at a host path must resolve inside the root."""
    rootfs = tmp_path / "evil-rootfs"
    victim = tmp_path / "victim"
    victim.mkdir()
    os.system(f"cp -a {bundle.rootfs} {rootfs}")
    os.symlink(str(victim), rootfs / "escape")  # absolute: /tmp/.../victim
    os.symlink("../../../../../../" + str(victim).lstrip("/"), rootfs / "escape2")

    def edit(d):
        d["mounts"].append({"destination": "/escape/inner", "type": "tmpfs", "source": "tmpfs"})
        d["mounts"].append({"destination": "/escape2/inner2", "type": "tmpfs", "source": "tmpfs"})

    code, _, err = run_captured(runtime, "evil", bundle("true", edit=edit, rootfs=rootfs), tmp_path)
    assert code == 0, err
    assert list(victim.iterdir()) == []  # nothing was created or mounted on the host
    inside = rootfs / str(victim).lstrip("/")
    assert (inside / "inner").is_dir() and (inside / "inner2").is_dir()
    assert not any(str(victim) in line for line in Path("/proc/mounts").read_text().splitlines())


@pytest.mark.cgroups
def test_monitor_exits_with_the_container_and_records_it(runtime, bundle):
    created = runtime.create("mon", bundle("sh", "-c", "exit 9"), stdio=None, wait_for_start=False)
    from supervisor.runtime.processes import wait_child as _wait_child

    assert _wait_child(created.monitor_pidfd) == 9
    created.close()
    ex = runtime.exit_status("mon")
    assert ex is not None and ex.exit_code == 9 and ex.finished_at > created.record.created_at


@pytest.mark.parametrize(
    ("propagation", "tag"),
    [("shared", "shared:"), ("rshared", "shared:"), ("unbindable", "unbindable"),
     ("private", None)],
)  # fmt: skip
def test_root_propagation_is_what_config_asks(runtime, bundle, tmp_path, propagation, tag):
    """rootfsPropagation shared and unbindable used to fail at create
    (pivot_root and the root's bind: EINVAL); the new root gets it after."""

    def edit(d):
        d["linux"]["rootfsPropagation"] = propagation

    b = bundle("cat", "/proc/self/mountinfo", edit=edit)
    code, out, err = run_captured(runtime, f"prop-{propagation}", b, tmp_path)
    assert code == 0, err
    root = next(line.split() for line in out.splitlines() if line.split()[4] == "/")
    optional = root[6 : root.index("-")]  # mountinfo's optional fields
    if tag is None:
        assert optional == []
    else:
        assert any(f.startswith(tag) for f in optional), root
