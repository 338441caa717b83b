"""Limits that bite: memory (OOM reported as such), pids, CPU; v1 and v2 paths."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from supervisor.errors import CgroupError
from supervisor.runtime import Runtime
from supervisor.runtime.cgroups import open_cgroup
from supervisor.runtime.processes import wait_child as _wait_child
from tests.integration.conftest import RUN, _cgroup_leftovers, _drop_cgroup_parent, run_captured
from tests.probe import UNIFIED_MOUNTS, needs_busybox, needs_root, needs_v1, needs_v2_hierarchy

pytestmark = [needs_root, needs_busybox, pytest.mark.cgroups]


def resources(**res):
    def edit(d):
        d["linux"]["resources"] = res

    return edit


def test_memory_limit_oom_kill_is_reported(runtime, bundle, tmp_path):
    # Build a 64 MiB string in the shell's memory under a 16 MiB limit, no swap.
    script = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived ${#x}"
    b = bundle("sh", "-c", script, edit=resources(memory={"limit": 16 * 2**20, "swap": 16 * 2**20}))
    created = runtime.create("oom", b, stdio=None, wait_for_start=False)
    code = _wait_child(created.monitor_pidfd)
    created.close()
    ex = runtime.exit_status("oom")
    log = (Path(runtime.root) / "oom" / "container.log").read_text()
    assert "survived" not in log
    assert ex is not None and ex.oom_killed, (code, ex, log)
    assert code == 137 or ex.oom_killed


def test_memory_limit_written(runtime, bundle):
    b = bundle("sleep", "100", edit=resources(memory={"limit": 32 * 2**20}))
    runtime.create("m", b, stdio=None, wait_for_start=False).close()
    st = runtime.stats("m")
    assert st.memory_limit == 32 * 2**20
    assert st.pids == 1


def test_v2_swap_and_memory_high(runtime, bundle):
    """On v2: swap is memory.swap.max (memory+swap minus memory, as runc
    computes it), and memory.high comes through `unified` verbatim."""
    cg = open_cgroup("/x")
    if cg.version != "v2":
        pytest.skip("v1 host: memory.memsw is v1's (test_memory_limit_written); v2 runs in the VM")
    mem = {"limit": 32 * 2**20, "swap": 48 * 2**20}
    b = bundle("sleep", "100", edit=resources(memory=mem, unified={"memory.high": str(24 * 2**20)}))
    runtime.create("sw", b, stdio=None, wait_for_start=False).close()
    d = Path(open_cgroup(runtime.record("sw").cgroup.path, "v2").dir)
    assert (d / "memory.max").read_text().strip() == str(32 * 2**20)
    assert (d / "memory.swap.max").read_text().strip() == str(16 * 2**20)
    assert (d / "memory.high").read_text().strip() == str(24 * 2**20)


@needs_v1
def test_swappiness_and_oom_killer_switch_on_v1(runtime, bundle):
    """Applied where the host has them (v1's memory.swappiness, memory.oom_control)."""
    b = bundle("sleep", "100", edit=resources(memory={"swappiness": 7, "disableOOMKiller": True}))
    runtime.create("sw", b, stdio=None, wait_for_start=False).close()
    mem = Path("/sys/fs/cgroup/memory") / runtime.record("sw").cgroup.path.lstrip("/")
    assert (mem / "memory.swappiness").read_text().strip() == "7"
    assert "oom_kill_disable 1" in (mem / "memory.oom_control").read_text()


def test_pids_limit_stops_a_fork_bomb(runtime, bundle, tmp_path):
    # An inner shell forks sleepers until fork fails (then it gives up); the
    # outer shell survives and reads the counters of its own cgroup.
    script = (
        "sh -c 'while :; do sleep 1000 & done' 2>/dev/null; echo bomb-stopped; "
        "d=/sys/fs/cgroup/pids; [ -d $d ] || d=/sys/fs/cgroup; "
        "cat $d/pids.max $d/pids.current"
    )
    code, out, err = run_captured(
        runtime, "bomb", bundle("sh", "-c", script, edit=resources(pids={"limit": 20})), tmp_path
    )
    lines = out.split()
    assert code == 0, err
    assert lines[0] == "bomb-stopped"
    assert lines[1] == "20" and int(lines[2]) <= 20


def test_cpu_limits_written(runtime, bundle):
    b = bundle(
        "sleep", "100", edit=resources(cpu={"quota": 50000, "period": 100000, "shares": 512})
    )
    runtime.create("cpu", b, stdio=None, wait_for_start=False).close()
    cg = open_cgroup(runtime.record("cpu").cgroup.path, runtime.record("cpu").cgroup.version)
    if cg.version == "v1":
        d = Path(cg.dirs["cpu"])
        assert (d / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (d / "cpu.shares").read_text().strip() == "512"
    else:
        assert (Path(cg.dir) / "cpu.max").read_text().split() == ["50000", "100000"]


def _huge_page_size() -> str | None:
    """The host's smallest huge page size as the kernel names it ("2MB"), if any."""
    sizes = sorted(
        int(d.name.removeprefix("hugepages-").removesuffix("kB"))
        for d in Path("/sys/kernel/mm/hugepages").glob("hugepages-*kB")
    )
    if not sizes:
        return None
    kb = sizes[0]
    return f"{kb // 1024**2}GB" if kb >= 1024**2 else f"{kb // 1024}MB"


def test_block_io_weight_and_hugetlb_limits_written(runtime, bundle):
    """blockIO.weight (Docker's --blkio-weight) and hugepageLimits: written on
    v2 (io.weight, converted as runc does, or BFQ's io.bfq.weight as given;
    hugetlb.SIZE.max); on v1 where the host has CFQ/BFQ and a hugetlb
    hierarchy, else refused naming what is missing - never ignored."""
    size = _huge_page_size()
    res: dict = {"blockIO": {"weight": 500}}
    if size:
        res["hugepageLimits"] = [{"pageSize": size, "limit": 8 << 20}]
    b = bundle("sleep", "100", edit=resources(**res))
    try:
        runtime.create("w", b, stdio=None, wait_for_start=False).close()
    except CgroupError as e:
        assert e.errno == errno.ENOTSUP and ("blkio" in str(e) or "hugetlb" in str(e)), e
        assert runtime.list() == []  # nothing half-made
        if open_cgroup("/x").version == "v2":
            raise
        pytest.skip(f"this v1 host cannot apply them, and says so: {e}")
    cg = open_cgroup(runtime.record("w").cgroup.path, runtime.record("w").cgroup.version)
    if cg.version == "v2":
        d = Path(cg.dir)
        if (d / "io.weight").exists():
            assert (d / "io.weight").read_text().split() == ["default", "4950"]
        else:
            assert (d / "io.bfq.weight").read_text().split()[-1] == "500"
        if size:
            assert (d / f"hugetlb.{size}.max").read_text().strip() == str(8 << 20)
        else:
            pytest.fail("no huge page size on this v2 host: hugetlb was not tested")


def test_container_is_in_its_cgroup_before_exec(runtime, bundle, tmp_path):
    # The process reads its own cgroup: it was placed there before execve.
    code, out, _ = run_captured(runtime, "cg", bundle("cat", "/proc/self/cgroup"), tmp_path)
    assert code == 0
    # In its cgroup namespace every hierarchy shows the container's cgroup as "/".
    assert all(
        line.endswith(":/")
        for line in out.strip().splitlines()
        if "name=" not in line and not line.startswith("0::")
    ), out


def test_cgroup_removed_on_delete(runtime, bundle):
    runtime.create("rm", bundle("sleep", "100"), stdio=None, wait_for_start=False).close()
    rec = runtime.record("rm")
    cg = open_cgroup(rec.cgroup.path, rec.cgroup.version)
    assert cg.exists()
    runtime.delete("rm", force=True)
    assert not cg.exists()
    assert not _cgroup_leftovers(runtime.cgroup_parent.lstrip("/"))
    # The parent stays, as runc, crun and Docker leave theirs: no start races a
    # delete that removes it, and none pays for making it again.
    parent = open_cgroup(runtime.cgroup_parent, rec.cgroup.version)
    assert parent.exists()


def test_cgroup_mount_inside_shows_own_limits(runtime, bundle, tmp_path):
    code, out, _ = run_captured(
        runtime,
        "cm",
        bundle(
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
            "cat /sys/fs/cgroup/memory.max; touch /sys/fs/cgroup/x 2>&1; true",
            edit=resources(memory={"limit": 48 * 2**20}),
        ),
        tmp_path,
    )
    assert code == 0
    assert str(48 * 2**20) in out
    assert "Read-only" in out


@pytest.fixture
def v2_runtime(tmp_path):
    """A runtime driving cgroup v2 on the unified mount; nothing of it stays."""
    rt = Runtime(
        tmp_path / "state",
        cgroup_parent=f"/{RUN}-v2",
        cgroup_version="v2",
        cgroup_mount_root=UNIFIED_MOUNTS[0],
    )
    try:
        yield rt
    finally:
        for st in rt.list():
            rt.delete(st.id, force=True)
        parent = Path(UNIFIED_MOUNTS[0]) / f"{RUN}-v2"
        left = [str(c) for c in parent.iterdir() if c.is_dir()] if parent.exists() else []
        for c in left:
            os.rmdir(c)
        if parent.exists():
            os.rmdir(parent)  # the parent stays when its containers go: the fixture's to remove
        assert not left, f"v2 cgroups left behind: {left}"


@needs_v2_hierarchy
def test_v2_path_on_the_unified_hierarchy(v2_runtime, bundle):
    """The cgroup v2 driver: CLONE_INTO_CGROUP, freeze, kill, removal.

    On a hybrid host the unified mount has no controllers, so this covers
    placement and the core files; limits on v2 are covered by unit tests and
    on a pure v2 host by the default path."""
    rt = v2_runtime
    created = rt.create("v2", bundle("sleep", "1000"), stdio=None, wait_for_start=False)
    rec = rt.record("v2")
    cg_dir = Path(UNIFIED_MOUNTS[0]) / rec.cgroup.path.lstrip("/")
    assert (cg_dir / "cgroup.procs").read_text().split() == [str(rec.pid)]
    own = Path(f"/proc/{rec.pid}/cgroup").read_text()
    assert "0::/\n" in own or f"0::{rec.cgroup.path}" in own  # its cgroupns root
    rt.pause("v2")
    assert rt.state("v2").status == "paused"
    rt.resume("v2")
    rt.kill("v2", signal.SIGKILL)
    assert _wait_child(created.monitor_pidfd) == 137
    created.close()
    rt.delete("v2")
    assert not cg_dir.exists()


# /dev/loop-control: a host device anyone may open, not in the allowed list.
DEVICE_SCRIPT = (
    "mknod /tmp/d c 10 237 && echo mknod-ok; "
    "(exec 3< /tmp/d) 2>&1 && echo open-ok || echo open-refused; "
    "echo x > /dev/null && echo null-ok"
)


def test_device_rules_keep_host_devices_out(runtime, bundle, tmp_path):
    """CAP_MKNOD (a default capability) makes a node for a host device; the
    device rules (deny all, then runc's allowed list) refuse opening it, and
    leave /dev/null alone. A spec without rules restricts nothing."""
    # the tests' shared rootfs is read-only: the node goes in a tmpfs
    tmp = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}

    def with_tmp(d):
        d["mounts"].append(tmp)

    b = bundle("sh", "-c", DEVICE_SCRIPT, edit=with_tmp)
    _code, out, err = run_captured(runtime, "dev", b, tmp_path)
    assert "mknod-ok" in out and "null-ok" in out, out + err
    assert "open-refused" in out and "Operation not permitted" in out, out

    # The host's disk (the block device under the test's files): the node can
    # be made (runc's and Docker's rules allow mknod of any: "b *:* m"), but
    # neither read nor written.
    dev = os.stat(tmp_path).st_dev
    if os.major(dev) == 0:
        pytest.fail(f"{tmp_path} is on no block device: the disk case cannot be tested")
    disk = (
        f"mknod /tmp/disk b {os.major(dev)} {os.minor(dev)} && echo mknod-ok; "
        "(head -c 512 /tmp/disk >/dev/null) 2>&1 && echo read-ok || echo read-refused; "
        "(exec 3<> /tmp/disk) 2>&1 && echo write-ok || echo write-refused"
    )
    _code, out, err = run_captured(
        runtime, "disk", bundle("sh", "-c", disk, edit=with_tmp), tmp_path
    )
    assert "mknod-ok" in out, out + err
    assert "read-refused" in out and "write-refused" in out, out + err
    assert "Operation not permitted" in out, out

    def no_rules(d):
        with_tmp(d)
        d["linux"]["resources"].pop("devices")

    b = bundle("sh", "-c", DEVICE_SCRIPT, edit=no_rules)
    _code, out, err = run_captured(runtime, "dev2", b, tmp_path)
    assert "open-ok" in out, out + err


@needs_v2_hierarchy
def test_v2_device_rules_are_a_bpf_program(v2_runtime, bundle, tmp_path):
    """On v2 the rules are an eBPF device program on the container's cgroup
    (a cgroup-BPF hook, which needs no controller: the hybrid host's unified
    mount serves)."""
    rt = v2_runtime
    tmp = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}

    def with_tmp(d):
        d["mounts"].append(tmp)

    def no_rules(d):
        with_tmp(d)
        d["linux"]["resources"].pop("devices")

    _code, out, err = run_captured(
        rt, "d1", bundle("sh", "-c", DEVICE_SCRIPT, edit=with_tmp), tmp_path
    )
    assert "mknod-ok" in out and "null-ok" in out, out + err
    assert "open-refused" in out and "Operation not permitted" in out, out + err
    _code, out, err = run_captured(
        rt, "d2", bundle("sh", "-c", DEVICE_SCRIPT, edit=no_rules), tmp_path
    )
    assert "open-ok" in out and "null-ok" in out, out + err


def test_block_io_is_counted(runtime, bundle, rootfs):
    """BLOCK I/O: the container's direct reads are counted (v2: io.stat; v1:
    blkio, which on this kernel counts at the throttle layer only for a device
    with a rule, so the test gives the disk a rule no I/O reaches (1 TB/s), as
    a user's --device-read-bps would)."""
    busybox = rootfs / "bin" / "busybox"
    dev = os.stat(busybox).st_dev
    if os.major(dev) == 0:
        pytest.fail(f"the rootfs {rootfs} is on no block device: block I/O cannot be tested")
    b = bundle("dd", "if=/bin/busybox", "of=/dev/null", "bs=64k", "iflag=direct")
    created = runtime.create("blk", b, stdio=None)  # waits for start
    try:
        cg = open_cgroup(runtime.record("blk").cgroup.path, runtime.record("blk").cgroup.version)
        if cg.version == "v1":
            rule = f"{os.major(dev)}:{os.minor(dev)} {1 << 40}"
            try:
                Path(cg.dirs["blkio"], "blkio.throttle.read_bps_device").write_text(rule)
            except OSError as e:
                pytest.skip(f"no throttle rule for the rootfs's device {rule}: {e}")
        runtime.start("blk")
        assert _wait_child(created.monitor_pidfd) == 0
        st = runtime.stats("blk")
        assert st.block_read >= busybox.stat().st_size, st
    finally:
        created.close()
        runtime.delete("blk", force=True)


def test_a_cgroup_in_use_is_refused_and_an_empty_leftover_reused(runtime, bundle):
    from supervisor.errors import CgroupError
    from supervisor.runtime.cgroups import Limits

    path = f"/{RUN}-shared/one"

    def edit(d):
        d["linux"]["cgroupsPath"] = path

    try:
        runtime.create("first", bundle("sleep", "100", edit=edit), stdio=None).close()
        with pytest.raises(CgroupError, match="already in use"):
            runtime.create("second", bundle("true", edit=edit), stdio=None)
        runtime.delete("first", force=True)
        leftover = open_cgroup(path)
        leftover.create(Limits())  # empty directories, as an interrupted removal leaves
        assert leftover.exists()
        runtime.create("third", bundle("true", edit=edit), stdio=None).close()
        runtime.delete("third", force=True)
        assert not leftover.exists()
    finally:
        assert not _drop_cgroup_parent(f"{RUN}-shared")  # its parent, outside the fixture's
