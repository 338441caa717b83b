"""What `rename`, `top` and `diff` ask of the fleet: a new name, the processes
of a container, and what it changed in its root.

A mixin of Fleet, kept apart so that fleet.py holds the containers' lifecycle.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import trio

from supervisor import checks, fstree
from supervisor.daemon.fleet_networks import PLACEHOLDERS
from supervisor.errors import Conflict, InvalidState, SpecError
from supervisor.images.store import empty_file_among
from supervisor.runtime import Runtime

if TYPE_CHECKING:
    from protocols import api
    from supervisor.daemon.fleet import Container
    from supervisor.daemon.store import Store

_TICKS = os.sysconf("SC_CLK_TCK")


class FleetInfo:
    copy_mounts: Path  # where a stopped container's root is mounted for a copy
    containers: dict[str, Container]
    names: dict[str, str]
    runtime: Runtime
    store: Store

    def rename(self, c: Container, new: str) -> None:
        try:
            name = checks.name(new)
        except ValueError as e:
            raise SpecError("name", str(e)) from None
        if name == c.name:
            return
        if name in self.names:
            raise Conflict(
                f'the name "{name}" is already in use by container {self.names[name][:12]}'
            )
        old = c.name
        c.rec = msgspec.structs.replace(c.rec, name=name)
        self.store.save_record(c.rec)
        del self.names[old]
        self.names[name] = c.id
        self.emit(c, "rename", oldName=old)  # type: ignore[attr-defined]

    async def disk_usage(self) -> dict:
        """docker system df: what images, containers and volumes take on disk
        (layers shared by images counted once, each with its kept blob), and
        what a prune would free. The trees are walked in a worker thread, over
        what the fleet holds when asked."""
        st = self.images
        images = st.images()
        layers = {i: set(st.layer_dirs(i)) for i in images}
        active = {i for i in images if self.image_users(i)}
        every = set().union(*layers.values()) if layers else set()
        kept = set().union(*(layers[i] for i in active)) if active else set()
        running = {c.id: c.running for c in self.containers.values()}
        upper_paths = {c.id: c.path / "upper" for c in self.containers.values()}
        used_volumes = {
            m.source
            for c in self.containers.values()
            for m in c.config.mounts
            if m.type == "volume"
        }
        volume_paths = {n: self.volumes.data(n) for n in self.volumes.volumes}

        def measure() -> tuple[dict, dict, dict]:
            # A layer takes its unpacked files and the blob it came as (kept, as
            # containerd keeps it, for save and push).
            return (
                {d: fstree.du(d) + _size(d.parent / "blob") for d in every},
                {i: fstree.du(p) for i, p in upper_paths.items()},
                {n: fstree.du(p) for n, p in volume_paths.items()},
            )

        sizes, uppers, vsizes = await trio.to_thread.run_sync(measure)
        return {
            "Images": {
                "Total": len(images),
                "Active": len(active),
                "Size": sum(sizes.values()),
                "Reclaimable": sum(sizes[d] for d in every - kept),
            },
            "Containers": {
                "Total": len(uppers),
                "Active": sum(running.values()),
                "Size": sum(uppers.values()),
                "Reclaimable": sum(s for i, s in uppers.items() if not running[i]),
            },
            "Volumes": {
                "Total": len(vsizes),
                "Active": len(used_volumes & set(vsizes)),
                "Size": sum(vsizes.values()),
                "Reclaimable": sum(s for n, s in vsizes.items() if n not in used_volumes),
            },
        }

    def info(self) -> dict:
        """docker info's facts, under Docker's keys."""
        from supervisor import __version__
        from supervisor.runtime.cgroups import detect

        states = [c.state.status for c in self.containers.values()]
        mem = host_memory()
        u = os.uname()
        version = self.runtime.cgroup_version or detect()
        return {
            "Containers": len(states),
            "ContainersRunning": states.count("running") + states.count("restarting"),
            "ContainersPaused": states.count("paused"),
            "ContainersStopped": sum(s in ("created", "exited", "dead") for s in states),
            "Images": len(self.images.images()),
            "Volumes": len(self.volumes.volumes),
            "Networks": ["none", "host", *self.networks.networks],
            "ServerVersion": __version__,
            "Driver": "overlay2",
            "LoggingDriver": "corral (monitor-written, rotated)",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if version == "v2" else "1",
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
            "KernelVersion": u.release,
            "OperatingSystem": _os_name(),
            "OSType": u.sysname.lower(),
            "Architecture": u.machine,
            "NCPU": os.cpu_count() or 0,
            "MemTotal": mem,
            "DockerRootDir": str(self.store.dir.parent),
            "Name": u.nodename,
        }

    def update(self, c: Container, req: api.Update) -> None:
        """docker update: the new limits stored with the container and, while
        it runs, written to its cgroup; an `update` event."""
        from supervisor.daemon import ocispec, restart
        from supervisor.runtime import plan

        cfg = c.config
        changes = {
            k: v
            for k in (
                "memory",
                "memory_swap",
                "memory_reservation",
                "cpus",
                "cpu_shares",
                "cpuset_cpus",
                "cpuset_mems",
                "pids_limit",
                "restart",
            )
            if (v := getattr(req, k)) is not None and v != ""
        }
        if not changes:
            raise SpecError("update", "nothing to update: give at least one flag")
        if "restart" in changes:
            try:
                restart.parse_policy(changes["restart"])
            except ValueError as e:
                raise SpecError("--restart", str(e)) from None
            if cfg.auto_remove and changes["restart"] != "no":
                raise SpecError("--restart", "a --rm container cannot get a restart policy")
        memory = changes.get("memory", cfg.memory)
        swap = changes.get("memory_swap", cfg.memory_swap)
        only_memory = "memory" in changes and "memory_swap" not in changes
        if only_memory and swap not in (None, -1) and memory and swap < memory:
            raise SpecError(
                "--memory",
                "the memory limit must stay below the memory+swap one "
                f"({swap} bytes): give --memory-swap too",
            )
        new = msgspec.structs.replace(cfg, **changes)
        try:
            checks.container(new, os.cpu_count())
        except ValueError as e:
            raise SpecError("update", str(e)) from None
        ocispec.check_modes(new)
        if c.running:
            limits = plan.limits_from_spec(ocispec.resources(new))
            try:
                self.runtime.update(c.id, limits)
            except InvalidState:
                pass  # it exited meanwhile: the stored config is what counts
        c.rec = msgspec.structs.replace(c.rec, config=new)
        self.store.save_record(c.rec)
        self.emit(c, "update")  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def container_root(self, c: Container) -> Iterator[str]:
        """The container's root as the host sees it, for cp and export: through
        its first process while it runs, else its overlay mounted for the block."""
        from supervisor.daemon import copy as copying

        if c.running:
            yield copying.proc_root(c.state.pid)
            return
        with copying.stopped_root(
            self.copy_mounts / c.id,
            self.lower_dirs(c.config),  # type: ignore[attr-defined]
            c.path / "upper",
            c.path / "work",
        ) as root:
            yield root

    def top(self, c: Container) -> tuple[list[str], list[list[str]]]:
        """UID PID PPID STIME TIME CMD of each process in the container's cgroup."""
        if not c.running:
            raise Conflict(f"container {c.id[:12]} is not running")
        rows = []
        boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
        for pid in sorted(self.runtime.pids(c.id)):
            try:
                stat_fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                uid = int(
                    next(
                        line.split()[1]
                        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("Uid:")
                    )
                )
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            except (OSError, StopIteration):
                continue  # it ended meanwhile
            ppid = stat_fields[1]
            cpu = (int(stat_fields[11]) + int(stat_fields[12])) // _TICKS
            started = boot + int(stat_fields[19]) / _TICKS
            rows.append(
                [
                    _user(uid),
                    str(pid),
                    ppid,
                    time.strftime("%H:%M", time.localtime(started)),
                    f"{cpu // 3600:02d}:{cpu // 60 % 60:02d}:{cpu % 60:02d}",
                    b" ".join(cmd).decode(errors="replace"),
                ]
            )
        return ["UID", "PID", "PPID", "STIME", "TIME", "CMD"], rows

    def diff(self, c: Container) -> list[tuple[str, str]]:
        """Docker's `diff`: A added, C changed, D deleted, from the container's own
        upper directory against the layers below it (any depth: fstree)."""
        upper = c.path / "upper"
        lowers = [d for d in self.lower_dirs(c.config).split(":") if d]  # type: ignore[attr-defined]
        out: list[tuple[str, str]] = []
        top = fstree.open_dir(upper)
        # levels[d]: the lower layers' descriptors (None where absent) of the
        # directory holding the entries at depth d.
        levels: list[list[int | None]] = [[_open_or_none(d) for d in lowers]]
        try:
            for e in fstree.walk(top, sort=True):
                while len(levels) > e.depth + 1:
                    _close_all(levels.pop())
                if empty_file_among(upper, e.rel, PLACEHOLDERS):
                    continue
                below = levels[-1]
                if stat.S_ISCHR(e.st.st_mode) and e.st.st_rdev == 0:
                    out.append(("D", "/" + e.rel))
                elif any(fd is not None and _lexists(fd, e.name) for fd in below):
                    out.append(("C", "/" + e.rel))
                else:
                    out.append(("A", "/" + e.rel))
                if stat.S_ISDIR(e.st.st_mode):
                    levels.append([_open_or_none(e.name, fd) for fd in below])
        finally:
            for fds in levels:
                _close_all(fds)
            os.close(top)
        # A directory of the image copied up only to hold placeholders is no change.
        return [(kind, path) for kind, path in out if not _only_placeholders(upper, path[1:])]


def _open_or_none(path: str, dir_fd: int | None = -1) -> int | None:
    if dir_fd is None:
        return None  # its parent is not in this layer either
    try:
        return fstree.open_dir(path, None if dir_fd == -1 else dir_fd)
    except OSError:
        return None


def _close_all(fds: list[int | None]) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
        return True
    except OSError:
        return False


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name if uid == 0 else str(uid)
    except KeyError:
        return str(uid)


_PLACEHOLDER_DIRS = frozenset(p.rpartition("/")[0] for p in PLACEHOLDERS)


def _only_placeholders(upper: Path, rel: str) -> bool:
    if rel not in _PLACEHOLDER_DIRS:
        return False
    d = upper / rel
    if d.is_symlink() or not d.is_dir():
        return False
    names = os.listdir(d)
    return bool(names) and all(empty_file_among(upper, f"{rel}/{n}", PLACEHOLDERS) for n in names)


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def host_memory() -> int:
    """The host's memory in bytes (MemTotal)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def net_io(pid: int) -> tuple[int, int]:
    """Bytes received and sent through the interfaces of `pid`'s network
    namespace but lo (Docker's NET I/O); (0, 0) when it cannot be read."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, _, counters = line.partition(":")
                if name.strip() == "lo":
                    continue
                fields = counters.split()
                rx += int(fields[0])
                tx += int(fields[8])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rx, tx


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
