"""Cgroups, v1 and v2, detected at run time (base.py holds what they share;
v1.py and v2.py the drivers; `open_cgroup` builds the right one)."""

from __future__ import annotations

from supervisor.runtime.cgroups.base import (
    DeviceRule,
    Limits,
    Mount,
    Stats,
    detect,
    make_dirs,
    mounts,
    own_cgroup,
    read_int,
    read_text,
    remove_dir,
    remove_parent,
    write,
)

__all__ = [
    "DeviceRule",
    "Limits",
    "Mount",
    "Stats",
    "detect",
    "make_dirs",
    "mounts",
    "open_cgroup",
    "own_cgroup",
    "read_int",
    "read_text",
    "remove_dir",
    "remove_parent",
    "write",
]


def open_cgroup(
    cgroups_path: str,
    version: str | None = None,
    mount_root: str | None = None,
    cpuset: bool | None = None,
):
    """The driver for a container's cgroup at `cgroups_path`.

    An absolute path is below each hierarchy's root, a relative one below this
    process's own cgroup (the OCI rule). `mount_root` overrides where the v2
    hierarchy is found (tests drive v2 on a hybrid host's unified mount).
    `cpuset` says whether a v1 container joins the cpuset hierarchy (None:
    if its directory is there, for a container created earlier).
    """
    version = version or detect()
    if version == "v2":
        from supervisor.runtime.cgroups.v2 import CgroupV2

        return CgroupV2(cgroups_path, mount_root)
    from supervisor.runtime.cgroups.v1 import CgroupV1

    return CgroupV1(cgroups_path, cpuset)
