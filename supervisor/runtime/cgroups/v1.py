"""cgroup v1: one directory per hierarchy, limits in each controller's files.

Facts relied on:
- A new cpuset cgroup starts with empty cpuset.cpus/mems and refuses tasks
  (ENOSPC) until they are set: copy the parent's into each new level.
- memory.memsw.limit_in_bytes (memory+swap) must stay >= memory.limit_in_bytes,
  so the memory limit is written first; memsw exists only with swap accounting.
- memory.oom_control lists `oom_kill N` (Linux 4.13+): the monitor reads it
  when the container exits to tell an OOM kill from any other SIGKILL.
"""

from __future__ import annotations

import _signal as signal  # not signal.py, whose enums of every signal cost ~2 ms
import errno
import os
import time

from protocols import lite
from supervisor.errors import CgroupError
from supervisor.runtime.cgroups.base import (
    DeviceRule,
    Limits,
    Mount,
    Stats,
    check_io_weight,
    make_dirs,
    mounts,
    own_cgroup,
    read_int,
    read_text,
    remove_dir,
    write,
)

# Hierarchies a container joins: those whose limits, accounting or freezing
# Corral uses. Named hierarchies (name=systemd) are not ours; cpuset is joined
# only when the container asks for CPUs or memory nodes (a new cpuset cgroup
# costs two copies from its parent). blkio, as Docker joins it, for BLOCK I/O.
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio", "cpuset")
ALWAYS = ("memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio")


class CgroupV1:
    version = "v1"

    def __init__(self, cgroups_path: str, cpuset: bool | None = None) -> None:
        """`cpuset`: join the cpuset hierarchy too; None: if it has our directory."""
        self.cgroups_path = cgroups_path
        self.dirs: dict[str, str] = {}
        self.mounts: list[Mount] = []  # the hierarchies joined
        self._bases: dict[str, str] = {}
        for m in mounts():
            names = [c for c in m.controllers if c in CONTROLLERS]
            if m.fstype != "cgroup" or not names or m in self.mounts:
                continue
            if cgroups_path.startswith("/"):
                base = m.path
            else:
                base = os.path.join(m.path, own_cgroup(names[0]).lstrip("/")).rstrip("/")
            path = os.path.join(base, cgroups_path.lstrip("/"))
            optional = not any(n in ALWAYS for n in names)
            if optional and (cpuset is False or (cpuset is None and not os.path.isdir(path))):
                continue
            self.mounts.append(m)
            for name in names:
                self._bases[name] = base
                self.dirs[name] = path

    def _unique_dirs(self) -> list[tuple[str, str]]:
        out, seen = [], set()
        for name, d in self.dirs.items():
            if d not in seen:
                seen.add(d)
                out.append((self._bases[name], d))
        return out

    def create(self, limits: Limits) -> None:
        """Make the container's cgroup in every hierarchy and write its limits."""
        for base, d in self._unique_dirs():
            on_new = _inherit_cpuset if d == self.dirs.get("cpuset") else None
            make_dirs(base, os.path.relpath(d, base), on_new)
        self.apply(limits)

    def apply(self, limits: Limits) -> None:
        mem = self.dirs.get("memory")
        if mem is not None:
            if limits.memory is not None:
                write(os.path.join(mem, "memory.limit_in_bytes"), str(limits.memory))
            if limits.memory_swap is not None and os.path.exists(
                os.path.join(mem, "memory.memsw.limit_in_bytes")
            ):
                write(os.path.join(mem, "memory.memsw.limit_in_bytes"), str(limits.memory_swap))
            if limits.memory_reservation is not None:
                write(
                    os.path.join(mem, "memory.soft_limit_in_bytes"), str(limits.memory_reservation)
                )
            if limits.memory_swappiness is not None:
                write(os.path.join(mem, "memory.swappiness"), str(limits.memory_swappiness))
            if limits.oom_kill_disable:
                write(os.path.join(mem, "memory.oom_control"), "1")
        cpu = self.dirs.get("cpu")
        if cpu is not None:
            if limits.cpu_shares is not None:
                write(os.path.join(cpu, "cpu.shares"), str(limits.cpu_shares))
            if limits.cpu_period is not None:
                write(os.path.join(cpu, "cpu.cfs_period_us"), str(limits.cpu_period))
            if limits.cpu_quota is not None:
                write(os.path.join(cpu, "cpu.cfs_quota_us"), str(limits.cpu_quota))
        cpuset = self.dirs.get("cpuset")
        if cpuset is not None:
            if limits.cpuset_cpus:
                write(os.path.join(cpuset, "cpuset.cpus"), limits.cpuset_cpus)
            if limits.cpuset_mems:
                write(os.path.join(cpuset, "cpuset.mems"), limits.cpuset_mems)
        devices = self.dirs.get("devices")
        if devices is not None and limits.devices:
            _write_device_rules(devices, limits.devices)
        pids = self.dirs.get("pids")
        if pids is not None and limits.pids is not None:
            write(os.path.join(pids, "pids.max"), str(limits.pids) if limits.pids > 0 else "max")
        blkio = self.dirs.get("blkio")
        if limits.io_weight is not None:
            check_io_weight(limits.io_weight)
            names = ("blkio.weight", "blkio.bfq.weight")  # CFQ's, or BFQ's
            found = [n for n in names if blkio and os.path.exists(os.path.join(blkio, n))]
            if not found:
                raise CgroupError(
                    blkio or self.cgroups_path, errno.ENOTSUP, "no blkio.weight (no CFQ/BFQ) in"
                )
            write(os.path.join(blkio, found[0]), str(limits.io_weight))  # type: ignore[arg-type]
        for size, limit in limits.hugetlb:
            hugetlb = self.dirs.get("hugetlb")
            path = os.path.join(hugetlb or "", f"hugetlb.{size}.limit_in_bytes")
            if hugetlb is None or not os.path.exists(path):
                raise CgroupError(path, errno.ENOTSUP, f"no hugetlb controller for {size} pages:")
            write(path, str(limit))
        for kind, major, minor, rate in limits.io_throttle:
            if blkio is None:
                raise CgroupError(self.cgroups_path, errno.ENOTSUP, "no blkio hierarchy for")
            write(os.path.join(blkio, _BLKIO_FILES[kind]), f"{major}:{minor} {rate}")

    def update(self, limits: Limits) -> None:
        """New limits for a container that exists (its device rules stay)."""
        if (limits.cpuset_cpus or limits.cpuset_mems) and "cpuset" not in self.dirs:
            raise CgroupError(
                self.cgroups_path,
                errno.ENOTSUP,
                "created without CPU or memory-node limits, so not in the cpuset hierarchy:",
            )
        limits = lite.replace(limits, devices=())
        try:
            self.apply(limits)
        except CgroupError as e:
            mem = self.dirs.get("memory")
            memsw = os.path.join(mem, "memory.memsw.limit_in_bytes") if mem else None
            if e.errno != errno.EINVAL or limits.memory_swap is None or not os.path.exists(memsw):
                raise
            # A memory limit above the current memory+swap one: that one first.
            write(memsw, str(limits.memory_swap))
            self.apply(limits)

    def join_files(self) -> list[str]:
        """The `tasks` files the container's first thread writes 0 into, to move
        itself (see native/container.c, join_v1_cgroups)."""
        return [os.path.join(d, "tasks") for _, d in self._unique_dirs()]

    def clone_dir(self) -> str | None:
        return None  # v1 has no CLONE_INTO_CGROUP

    def oom_file(self) -> str | None:
        mem = self.dirs.get("memory")
        return os.path.join(mem, "memory.oom_control") if mem else None

    def pids(self) -> list[int]:
        d = self.dirs.get("pids") or next(iter(self.dirs.values()))
        try:
            return [int(p) for p in read_text(os.path.join(d, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        # Freeze first so nothing forks between reading the list and the kill.
        frozen = self.freeze() if sig == signal.SIGKILL else False
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if frozen:
            self.thaw()

    def freeze(self) -> bool:
        """Freeze and wait until every task is frozen: the state reads FREEZING
        until then (and a task forking meanwhile can need the write again, which
        is why runc repeats it)."""
        d = self.dirs.get("freezer")
        if d is None:
            return False
        for attempt in range(1000):
            if attempt % 10 == 0:
                write(os.path.join(d, "freezer.state"), "FROZEN")
            if read_text(os.path.join(d, "freezer.state")).strip() == "FROZEN":
                return True
            time.sleep(0.001)
        raise CgroupError(
            os.path.join(d, "freezer.state"), errno.EBUSY, "still FREEZING after 1 s:"
        )

    def thaw(self) -> None:
        d = self.dirs.get("freezer")
        if d is not None:
            write(os.path.join(d, "freezer.state"), "THAWED")

    def frozen(self) -> bool:
        d = self.dirs.get("freezer")
        if d is None:
            return False
        try:
            return read_text(os.path.join(d, "freezer.state")).strip() in ("FROZEN", "FREEZING")
        except FileNotFoundError:
            return False

    def stats(self) -> Stats:
        mem, acct = self.dirs.get("memory"), self.dirs.get("cpuacct")
        pids = self.dirs.get("pids")
        limit = read_int(os.path.join(mem, "memory.limit_in_bytes")) if mem else None
        return Stats(
            memory_usage=read_int(os.path.join(mem, "memory.usage_in_bytes")) if mem else 0,
            memory_limit=limit if limit is not None and limit < 2**62 else None,
            cpu_usage_ns=read_int(os.path.join(acct, "cpuacct.usage")) if acct else 0,
            pids=read_int(os.path.join(pids, "pids.current")) if pids else len(self.pids()),
            oom_kills=_oom_kills(os.path.join(mem, "memory.oom_control")) if mem else 0,
            **_blkio(self.dirs.get("blkio")),
        )

    def destroy(self) -> None:
        for _, d in self._unique_dirs():
            remove_dir(d)

    def exists(self) -> bool:
        return any(os.path.exists(d) for d in self.dirs.values())


def _inherit_cpuset(path: str) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read_text(os.path.join(path, name)).strip():
            write(
                os.path.join(path, name),
                read_text(os.path.join(os.path.dirname(path), name)).strip(),
            )


# v2's io.max keys and the v1 files that take the same throttles.
_BLKIO_FILES = {
    "rbps": "blkio.throttle.read_bps_device",
    "wbps": "blkio.throttle.write_bps_device",
    "riops": "blkio.throttle.read_iops_device",
    "wiops": "blkio.throttle.write_iops_device",
}


def _blkio(d: str | None) -> dict[str, int]:
    """What Docker's stats read on v1: the throttle layer's byte counts ("8:0
    Read 4096" lines). Kernels since 5.x count there only for devices with a
    throttle rule, so without one this is 0, for Docker as for Corral."""
    out = {"block_read": 0, "block_written": 0}
    if d is None:
        return out
    try:
        text = read_text(os.path.join(d, "blkio.throttle.io_service_bytes_recursive"))
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("Read", "Write"):
            key = "block_read" if parts[1] == "Read" else "block_written"
            out[key] += int(parts[2])
    return out


def _oom_kills(path: str) -> int:
    try:
        for line in read_text(path).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except FileNotFoundError:
        pass
    return 0


def _write_device_rules(d: str, rules: tuple[DeviceRule, ...]) -> None:
    """In order: a deny of everything clears the list the cgroup inherited, then
    each allow adds back. One write per rule (the kernel parses one a write),
    through one descriptor per file: opening them per rule cost 0.3 ms a start."""
    fds: dict[str, int] = {}
    try:
        for rule in rules:
            name = "devices.allow" if rule.allow else "devices.deny"
            if name not in fds:
                fds[name] = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CLOEXEC)
            os.write(fds[name], rule.v1().encode())
    except OSError as e:
        what = f"writing the device rule {rule.v1()!r} to"
        raise CgroupError(str(d), e.errno or 0, what) from None
    finally:
        for fd in fds.values():
            os.close(fd)
