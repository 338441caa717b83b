"""cgroup v2: one directory in the unified hierarchy.

Facts relied on:
- Controllers must be enabled in every ancestor's cgroup.subtree_control
  before their files appear in a child; a cgroup with processes cannot enable
  controllers for children (the "no internal processes" rule), so containers
  go in a leaf of their own.
- clone3(CLONE_INTO_CGROUP) places the child at fork: it never runs outside.
- memory.swap.max is swap alone, where OCI's memory.swap is memory+swap.
- cpu.weight (1..10000) from v1 shares (2..262144) by runc's formula,
  so the same spec gives the same share on either version.
- cgroup.kill (5.14+) kills every process in the cgroup at once;
  cgroup.freeze needs no controller at all.
"""

from __future__ import annotations

import _signal as signal  # not signal.py, whose enums of every signal cost ~2 ms
import errno
import os
import time

from supervisor.errors import CgroupError
from supervisor.runtime.cgroups.base import (
    Limits,
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


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares to v2 cpu.weight, as runc converts them."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def v2_files(limits: Limits) -> list[tuple[str, str, str]]:
    """The (controller, file, value) writes that apply `limits` on v2."""
    out: list[tuple[str, str, str]] = []
    # v1's per-cgroup swappiness and OOM-killer switch have no v2 file: refused
    # (the runtime spec: a setting that cannot be applied is an error).
    if limits.memory_swappiness is not None:
        raise CgroupError("memory.swappiness", errno.ENOTSUP, "cgroup v2 has no swappiness for")
    if limits.oom_kill_disable:
        raise CgroupError(
            "disableOOMKiller", errno.ENOTSUP, "cgroup v2 cannot turn the OOM killer off for"
        )
    if limits.memory is not None:
        out.append(("memory", "memory.max", str(limits.memory) if limits.memory > 0 else "max"))
    if limits.memory_swap is not None:
        if limits.memory_swap < 0:
            swap = "max"
        elif limits.memory is not None and limits.memory > 0:
            if limits.memory_swap < limits.memory:
                raise CgroupError("memory.swap.max", errno.EINVAL, "swap below memory limit for")
            swap = str(limits.memory_swap - limits.memory)
        else:
            swap = str(limits.memory_swap)
        out.append(("memory", "memory.swap.max", swap))
    if limits.memory_reservation is not None:
        out.append(("memory", "memory.low", str(limits.memory_reservation)))
    if limits.cpu_shares is not None:
        out.append(("cpu", "cpu.weight", str(shares_to_weight(limits.cpu_shares))))
    if limits.cpu_quota is not None or limits.cpu_period is not None:
        quota = limits.cpu_quota
        q = "max" if quota is None or quota <= 0 else str(quota)
        out.append(("cpu", "cpu.max", f"{q} {limits.cpu_period or 100000}"))
    if limits.cpuset_cpus:
        out.append(("cpuset", "cpuset.cpus", limits.cpuset_cpus))
    if limits.cpuset_mems:
        out.append(("cpuset", "cpuset.mems", limits.cpuset_mems))
    if limits.pids is not None:
        out.append(("pids", "pids.max", str(limits.pids) if limits.pids > 0 else "max"))
    devices: dict[tuple[int, int], list[str]] = {}
    for kind, major, minor, rate in limits.io_throttle:
        devices.setdefault((major, minor), []).append(f"{kind}={rate}")
    for (major, minor), keys in devices.items():  # one io.max write per device
        out.append(("io", "io.max", f"{major}:{minor} {' '.join(keys)}"))
    if limits.io_weight is not None:
        check_io_weight(limits.io_weight)
        # io.weight is iocost's (1-10000): converted as runc does; create()
        # writes the value as given to BFQ's io.bfq.weight where that is the one.
        out.append(("io", "io.weight", str(1 + (limits.io_weight - 10) * 9999 // 990)))
    for size, limit in limits.hugetlb:
        out.append(("hugetlb", f"hugetlb.{size}.max", str(limit)))
    for name, value in limits.unified.items():
        out.append((name.split(".", 1)[0], name, value))
    return out


class CgroupV2:
    version = "v2"
    mounts: tuple = ()  # v2 mounts one cgroup2 inside the container, not per hierarchy

    def __init__(self, cgroups_path: str, mount_root: str | None = None) -> None:
        if mount_root is None:
            m = next((m for m in mounts() if m.fstype == "cgroup2"), None)
            if m is None:
                raise CgroupError("/sys/fs/cgroup", errno.ENOENT, "no cgroup2 mount at")
            mount_root = m.path
        self.mount_root = os.fspath(mount_root)
        self.cgroups_path = cgroups_path
        if cgroups_path.startswith("/"):
            self.base = self.mount_root
        else:
            self.base = os.path.join(self.mount_root, own_cgroup("").lstrip("/")).rstrip("/")
        self.dir = os.path.join(self.base, cgroups_path.lstrip("/"))

    def create(self, limits: Limits) -> None:
        writes = v2_files(limits)
        wanted = {c for c, _, _ in writes if c not in ("cgroup",)}
        offered = self._offered()
        if "io" in offered:  # for BLOCK I/O in stats; not required
            wanted.add("io")
        make_dirs(self.base, os.path.relpath(self.dir, self.base))
        self._enable(wanted, offered)
        self._write(writes, limits)
        if limits.devices:
            from supervisor.runtime.cgroups import devices  # only where rules are

            devices.attach(self.dir, limits.devices)

    def update(self, limits: Limits) -> None:
        """New limits for a container that exists (its device program stays)."""
        writes = v2_files(limits)
        self._enable({c for c, _, _ in writes})
        self._write(writes, limits)

    def _write(self, writes: list[tuple[str, str, str]], limits: Limits) -> None:
        for controller, name, value in writes:
            path = os.path.join(self.dir, name)
            if name == "io.weight" and not os.path.exists(path):
                bfq = os.path.join(self.dir, "io.bfq.weight")  # BFQ's, 1-1000: as given
                if os.path.exists(bfq):
                    path, value = bfq, str(limits.io_weight)
            if controller != "cgroup" and not os.path.exists(path):
                enabled = os.path.exists(os.path.join(self.dir, f"{controller}.stat")) or (
                    controller in read_text(os.path.join(self.dir, "cgroup.controllers")).split()
                )
                why = (
                    "this kernel has no such setting; cannot write"
                    if enabled
                    else f"the {controller} controller is not enabled here; cannot write"
                )
                raise CgroupError(str(path), errno.ENOTSUP, why)
            write(path, value)

    def _enable(self, wanted: set[str], offered: set[str] | None = None) -> None:
        """Enable `wanted` (those the root offers) from the root down to our parent."""
        if not wanted:
            return
        missing = wanted - (self._offered() if offered is None else offered)
        if missing:
            raise CgroupError(
                str(self.mount_root),
                errno.ENOTSUP,
                f"controllers {sorted(missing)} are not available at",
            )
        node = self.mount_root
        rel = os.path.relpath(self.dir, self.mount_root)
        for part in [p for p in rel.split("/") if p not in ("", ".")]:
            have = set(read_text(os.path.join(node, "cgroup.subtree_control")).split())
            need = wanted - have
            if need:
                write(
                    os.path.join(node, "cgroup.subtree_control"),
                    " ".join(f"+{c}" for c in sorted(need)),
                )
            node = os.path.join(node, part)

    def _offered(self) -> set[str]:
        return set(read_text(os.path.join(self.mount_root, "cgroup.controllers")).split())

    def join_files(self) -> list[str]:
        return []  # clone3 places the child directly

    def clone_dir(self) -> str | None:
        return str(self.dir)

    def oom_file(self) -> str | None:
        return os.path.join(self.dir, "memory.events")

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in read_text(os.path.join(self.dir, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        if sig == signal.SIGKILL and os.path.exists(os.path.join(self.dir, "cgroup.kill")):
            write(os.path.join(self.dir, "cgroup.kill"), "1")
            return
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def freeze(self) -> bool:
        """Freeze and wait until cgroup.events says frozen."""
        write(os.path.join(self.dir, "cgroup.freeze"), "1")
        for _ in range(1000):
            if self.frozen():
                return True
            time.sleep(0.001)
        raise CgroupError(
            os.path.join(self.dir, "cgroup.events"), errno.EBUSY, "not frozen after 1 s:"
        )

    def thaw(self) -> None:
        write(os.path.join(self.dir, "cgroup.freeze"), "0")

    def frozen(self) -> bool:
        try:
            for line in read_text(os.path.join(self.dir, "cgroup.events")).splitlines():
                if line.startswith("frozen "):
                    return line.split()[1] == "1"
        except FileNotFoundError:
            pass
        return False

    def stats(self) -> Stats:
        d = self.dir
        usage = (
            read_int(os.path.join(d, "memory.current"))
            if os.path.exists(os.path.join(d, "memory.current"))
            else 0
        )
        limit = None
        if os.path.exists(os.path.join(d, "memory.max")):
            raw = read_text(os.path.join(d, "memory.max")).strip()
            limit = None if raw == "max" else int(raw)
        cpu = 0
        for line in read_text(os.path.join(d, "cpu.stat")).splitlines():
            if line.startswith("usage_usec "):
                cpu = int(line.split()[1]) * 1000
        pids = (
            read_int(os.path.join(d, "pids.current"))
            if os.path.exists(os.path.join(d, "pids.current"))
            else len(self.pids())
        )
        oom = 0
        if os.path.exists(os.path.join(d, "memory.events")):
            for line in read_text(os.path.join(d, "memory.events")).splitlines():
                if line.startswith("oom_kill "):
                    oom = int(line.split()[1])
        read = written = 0
        if os.path.exists(os.path.join(d, "io.stat")):  # "8:0 rbytes=N wbytes=N rios=N ..."
            for line in read_text(os.path.join(d, "io.stat")).splitlines():
                for field in line.split()[1:]:
                    key, _, value = field.partition("=")
                    if key == "rbytes":
                        read += int(value)
                    elif key == "wbytes":
                        written += int(value)
        return Stats(usage, limit, cpu, pids, oom, read, written)

    def destroy(self) -> None:
        remove_dir(self.dir)

    def exists(self) -> bool:
        return os.path.exists(self.dir)
