"""What both cgroup versions share: the records (limits, stats, device rules),
the mounts, detection, and the file and directory steps.

Cgroups, v1 and v2, detected at run time.

One cgroup per container, created before the container's process exists,
so it is joined before exec: on v2 through clone3(CLONE_INTO_CGROUP), on v1
by the monitor writing the pid into each hierarchy's cgroup.procs while the
child waits.  Limits are written here, by Python, once per container; the
joins are on the hot path and are done in C.

Hybrid hosts (v1 controllers plus a cgroup2 mount with none, like this
project's CI machine) are driven as v1: the controllers are where v1 has
them. `detect()` says which; `open_cgroup()` builds the right driver.
"""

from __future__ import annotations

import errno
import os
import time

from protocols.lite import Lite
from supervisor.errors import CgroupError


class DeviceRule(Lite):
    """One device cgroup rule: `type` a (all), c or b; None major/minor: any."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def v1(self) -> str:
        """As devices.allow / devices.deny take it: "c 1:3 rwm", "a *:* rwm"."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


class Limits(Lite):
    """Resource limits in the engine's own terms (bytes, CPU quota/period)."""

    memory: int | None = None  # bytes
    memory_swap: int | None = None  # memory + swap, bytes (-1: unlimited)
    memory_reservation: int | None = None
    memory_swappiness: int | None = None  # 0-100 (v1 only: v2 has none)
    oom_kill_disable: bool = False  # v1's memory.oom_control (v2 has none)
    cpu_shares: int | None = None  # v1 shares (2..262144); translated on v2
    cpu_quota: int | None = None  # microseconds per period (-1: unlimited)
    cpu_period: int | None = None  # microseconds
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids: int | None = None  # <= 0: unlimited
    unified: dict[str, str] = dict  # v2 files, verbatim (a new empty one each)
    # Block I/O throttles: (kind, major, minor, rate), kind one of rbps, wbps,
    # riops, wiops (v2's io.max keys), in the order given.
    io_throttle: tuple[tuple[str, int, int, int], ...] = ()
    io_weight: int | None = None  # Docker's --blkio-weight, 10-1000
    hugetlb: tuple[tuple[str, int], ...] = ()  # (page size as "2MB", limit in bytes)
    devices: tuple[DeviceRule, ...] = ()  # in order; the last that matches decides


class Stats(Lite):
    memory_usage: int
    memory_limit: int | None
    cpu_usage_ns: int
    pids: int
    oom_kills: int
    block_read: int = 0  # bytes read from block devices (Docker's BLOCK I/O)
    block_written: int = 0


class Mount(Lite):
    path: str
    fstype: str  # "cgroup" or "cgroup2"
    options: str  # super options, e.g. "rw,memory"
    root: str  # the mount's root inside the hierarchy

    @property
    def controllers(self) -> list[str]:
        if self.fstype == "cgroup2":
            return []
        return [o for o in self.options.split(",") if o not in ("rw", "ro")]


_MOUNTS: list[tuple[Mount, ...]] = []  # functools.cache, without importing functools


def mounts() -> tuple[Mount, ...]:
    """The cgroup mounts of this mount namespace, from /proc/self/mountinfo.

    Read once per process: cgroup hierarchies are mounted at boot and stay.
    """
    if _MOUNTS:
        return _MOUNTS[0]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            parts = left.split()
            fstype, _source, super_opts = right.split()[:3]
            if fstype in ("cgroup", "cgroup2"):
                found.append(Mount(parts[4], fstype, super_opts, parts[3]))
    _MOUNTS.append(tuple(found))
    return _MOUNTS[0]


def detect() -> str:
    """'v2' on a pure cgroup v2 host, 'v1' where v1 controllers are mounted."""
    ms = mounts()
    if any(m.fstype == "cgroup" and m.controllers for m in ms):
        return "v1"
    if any(m.fstype == "cgroup2" for m in ms):
        return "v2"
    raise CgroupError("/sys/fs/cgroup", errno.ENOENT, "no cgroup filesystem is mounted at")


# Paths are strings here: pathlib (with re, fnmatch, urllib.parse) is ~5 ms of
# the start of `corral runtime run`, which the benchmarks hold against crun's.


def check_io_weight(weight: int) -> None:
    """A block I/O weight as Docker and the OCI spec take it (v1's range)."""
    if not 10 <= weight <= 1000:
        raise CgroupError("blkio weight", errno.EINVAL, f"{weight} is not within 10-1000:")


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_int(path: str) -> int:
    return int(read_text(path).split()[0])


def write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise CgroupError(path, e.errno or 0, f"writing {value!r} to") from None


def own_cgroup(hierarchy: str) -> str:
    """This process's cgroup in a hierarchy ('' for the v2 one)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if names == hierarchy or hierarchy in names.split(","):
                return path
    return "/"


def make_dirs(base: str, rel: str, on_new: object = None) -> list[str]:
    """mkdir -p base/rel; returns the directories it created, top first."""
    created: list[str] = []
    path = base
    for part in [p for p in rel.split("/") if p]:
        path = os.path.join(path, part)
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as e:
            raise CgroupError(path, e.errno or 0, "creating") from None
        created.append(path)
        if callable(on_new):
            on_new(path)
    return created


def remove_dir(path: str) -> None:
    """rmdir a container's cgroup, and only it: its parents stay, as runc and
    crun leave them (and Docker its /docker), so that a start never races a
    delete that would remove the parent under it, and a start does not pay
    for making the parent again in every hierarchy (~0.25 ms on v1 here).

    rmdir of a cgroup whose last task has just exited can meet EBUSY for a
    moment while the kernel finishes the exit: retry briefly.
    """
    for attempt in range(200):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno == errno.EBUSY and attempt < 199:
                time.sleep(0.005)
                continue
            raise CgroupError(path, e.errno or 0, "removing") from None


def remove_parent(cgroups_path: str) -> None:
    """Remove an emptied parent of containers' cgroups (an absolute path such as
    `/corral`) from every hierarchy: what a benchmark or a test that made one
    for itself does when it ends. A parent still holding a cgroup is an error."""
    for m in mounts():
        remove_dir(os.path.join(m.path, cgroups_path.strip("/")))
