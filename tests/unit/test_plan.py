"""The planner's pure logic, and its records read back by the C parser."""

from __future__ import annotations

import struct

import pytest

# What this tests lives in the C core (its constants, its checks).
pytest.importorskip(
    "supervisor._corral_native", reason="the C core is not built (bash scripts/install.sh)"
)

from supervisor import _native
from supervisor.errors import SetupError
from supervisor.runtime import plan
from supervisor.runtime import spec as specs

MS = _native.MS


def test_mount_options_split_into_flags_propagation_and_data():
    o = plan.parse_mount_options(["nosuid", "noexec", "ro", "mode=755", "size=64k", "rslave"])
    assert o.flags == MS["nosuid"] | MS["noexec"] | MS["rdonly"]
    assert o.propagation == MS["slave"] | MS["rec"]
    assert o.data == "mode=755,size=64k"


def test_later_options_override_earlier():
    assert plan.parse_mount_options(["ro", "rw"]).flags == 0
    assert plan.parse_mount_options(["rbind"]).flags == MS["bind"] | MS["rec"]


def test_capability_mask_of_dockers_defaults():
    assert plan.capability_mask(specs.DOCKER_CAPS) == 0xA80425FB


def test_limits_from_spec():
    from protocols import oci

    res = oci.Resources(
        memory=oci.Memory(limit=100, swap=200),
        cpu=oci.CPU(quota=5, period=10),
        pids=oci.Pids(limit=7),
    )
    lim = plan.limits_from_spec(res)
    assert (lim.memory, lim.memory_swap, lim.cpu_quota, lim.cpu_period, lim.pids) == (
        100,
        200,
        5,
        10,
        7,
    )


class FakeCgroup:
    """Stands in for the cgroup driver's answers: plain data, no kernel."""

    version = "v1"
    mounts = ()

    def join_files(self):
        return ["/sys/fs/cgroup/pids/x/cgroup.procs"]

    def clone_dir(self):
        return None

    def oom_file(self):
        return "/sys/fs/cgroup/memory/x/memory.oom_control"


def test_default_plan_parses_in_c():
    spec = specs.default_spec(["sh", "-c", "true"])
    data = plan.build(spec, plan.Paths(rootfs="/r", bundle="/b", exit_file="/e"), FakeCgroup())
    n = _native.plan_check(data)
    assert n > 20


@pytest.mark.parametrize("cut", [6, 8, 9])
def test_truncated_plan_is_refused_by_c(cut):
    spec = specs.default_spec(["true"])
    data = plan.build(spec, plan.Paths(rootfs="/r", bundle="/b", exit_file="/e"), FakeCgroup())
    with pytest.raises(SetupError, match="reading the plan"):
        _native.plan_check(data[:-cut] if cut != 9 else data[:9])


def test_unterminated_string_is_refused_by_c():
    w = plan.PlanWriter()
    w.add(_native.TAG["ROOTFS"], b"/no-nul")
    with pytest.raises(SetupError, match="malformed record"):
        _native.plan_check(w.bytes())


def test_unknown_tag_is_refused_by_c():
    data = struct.pack("=II", 9999, 0)
    with pytest.raises(SetupError, match="tag 9999"):
        _native.plan_check(data)
