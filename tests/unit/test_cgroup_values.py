"""Cgroup value translation (v1 terms to v2 files), no kernel needed."""

from __future__ import annotations

import pytest

from supervisor.errors import CgroupError
from supervisor.runtime.cgroups import Limits
from supervisor.runtime.cgroups.v2 import shares_to_weight, v2_files


def test_shares_to_weight_matches_runc():
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000


def test_v2_files_translate_limits():
    files = dict(
        (
            (n, v)
            for _, n, v in v2_files(
                Limits(
                    memory=100 << 20,
                    memory_swap=150 << 20,
                    cpu_quota=50000,
                    cpu_period=100000,
                    cpu_shares=1024,
                    pids=64,
                )
            )
        )
    )
    assert files == {
        "memory.max": str(100 << 20),
        "memory.swap.max": str(50 << 20),
        "cpu.max": "50000 100000",
        "cpu.weight": "39",
        "pids.max": "64",
    }


def test_v2_unlimited_values():
    files = {n: v for _, n, v in v2_files(Limits(memory_swap=-1, cpu_quota=-1, pids=0))}
    assert files == {"memory.swap.max": "max", "cpu.max": "max 100000", "pids.max": "max"}


def test_swap_below_memory_is_refused():
    with pytest.raises(CgroupError):
        v2_files(Limits(memory=100, memory_swap=50))


def test_v2_enables_controllers_from_the_root_down_to_the_parent(tmp_path):
    """The walk of CgroupV2._enable, over a directory laid out as cgroup2's:
    +memory written in the root and in /a (the parent), not in /a/b itself.
    (The project's VM mounts cgroup2 without controllers, so the kernel's side
    is checked on a pure v2 host only.)"""
    from supervisor.runtime.cgroups.v2 import CgroupV2

    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    for d in (tmp_path, tmp_path / "a", tmp_path / "a" / "b"):
        (d / "cgroup.subtree_control").write_text("")
    (tmp_path / "cgroup.subtree_control").write_text("pids\n")  # one already on
    cg = CgroupV2("/a/b", mount_root=str(tmp_path))
    cg._enable({"memory", "pids"})
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory"
    assert (tmp_path / "a" / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (tmp_path / "a" / "b" / "cgroup.subtree_control").read_text() == ""
    with pytest.raises(CgroupError, match="io"):
        cg._enable({"io"})


def test_v2_driver_files_over_a_cgroup2_shaped_directory(tmp_path):
    """CgroupV2's reads and writes, end to end over the file names cgroup2 uses
    (the kernel's side needs a pure v2 host; this catches the driver's own
    mistakes, such as path arithmetic, on every machine)."""
    from supervisor.runtime.cgroups.v2 import CgroupV2

    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    leaf = tmp_path / "corral" / "web"
    leaf.mkdir(parents=True)
    for d in (tmp_path, tmp_path / "corral", leaf):
        (d / "cgroup.subtree_control").write_text("")
    for name in ("memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "pids.max"):
        (leaf / name).write_text("")
    cg = CgroupV2("/corral/web", mount_root=str(tmp_path))
    assert cg.clone_dir() == str(leaf) and cg.oom_file() == str(leaf / "memory.events")
    cg.create(Limits(memory=64 << 20, memory_swap=128 << 20, cpu_shares=512, pids=100))
    assert (leaf / "memory.max").read_text() == str(64 << 20)
    assert (leaf / "memory.swap.max").read_text() == str(64 << 20)  # swap alone on v2
    assert (leaf / "cpu.weight").read_text() == "20"
    assert (leaf / "pids.max").read_text() == "100"
    # io too, where offered: BLOCK I/O in stats comes from io.stat
    assert (tmp_path / "corral" / "cgroup.subtree_control").read_text() == "+cpu +io +memory +pids"
    cg.update(Limits(cpu_quota=50000, cpu_period=100000))
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    (leaf / "memory.current").write_text("4096\n")
    (leaf / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    (leaf / "pids.current").write_text("3\n")
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    (leaf / "memory.max").write_text(f"{64 << 20}\n")
    (leaf / "io.stat").write_text(
        "254:0 rbytes=8192 wbytes=4096 rios=2 wios=1 dbytes=0 dios=0\n"
        "8:0 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
    )
    s = cg.stats()
    assert (s.block_read, s.block_written) == (8292, 4096)
    assert (s.memory_usage, s.memory_limit, s.cpu_usage_ns, s.pids, s.oom_kills) == (
        4096,
        64 << 20,
        1_500_000,
        3,
        1,
    )
    (leaf / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert cg.frozen() and cg.exists()
    (leaf / "cgroup.procs").write_text("")
    assert cg.pids() == []


def test_v2_io_max_one_write_per_device():
    throttles = (("rbps", 254, 0, 1 << 20), ("wiops", 254, 0, 100), ("rbps", 8, 0, 5))
    assert v2_files(Limits(io_throttle=throttles)) == [
        ("io", "io.max", "254:0 rbps=1048576 wiops=100"),
        ("io", "io.max", "8:0 rbps=5"),
    ]


@pytest.mark.parametrize("limits", [Limits(memory_swappiness=10), Limits(oom_kill_disable=True)])
def test_v1_only_memory_settings_are_refused_on_v2(limits):
    """v2 has no swappiness nor an OOM-killer switch: an error, never dropped."""
    with pytest.raises(CgroupError) as e:
        v2_files(limits)
    assert e.value.errno == 95  # ENOTSUP
