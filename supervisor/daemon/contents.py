"""What is in a container: its processes (top), what it changed in its root
(diff), and its root as the host reaches it (cp, export)."""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor import fstree
from supervisor.daemon import copy as copying
from supervisor.daemon.networking import PLACEHOLDERS
from supervisor.errors import Conflict
from supervisor.images.store import empty_file_among
from supervisor.runtime import Runtime

if TYPE_CHECKING:
    from supervisor.daemon.unit import Unit

_TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def container_root(c: Unit, lower_dirs: str, mount_dir: Path) -> Iterator[str]:
    """The container's root as the host sees it, for cp and export: through
    its first process while it runs, else its overlay mounted at `mount_dir`
    for the block (the caller holds the unit's lock: no start meanwhile)."""
    if c.running:
        yield copying.proc_root(c.state.pid)
        return
    with copying.stopped_root(mount_dir, lower_dirs, c.path / "upper", c.path / "work") as root:
        yield root


def top(runtime: Runtime, c: Unit) -> tuple[list[str], list[list[str]]]:
    """UID PID PPID STIME TIME CMD of each process in the container's cgroup."""
    if not c.running:
        raise Conflict(f"container {c.id[:12]} is not running")
    rows = []
    boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
    for pid in sorted(runtime.pids(c.id)):
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


def diff(c: Unit, lower_dirs: str) -> list[tuple[str, str]]:
    """Docker's `diff`: A added, C changed, D deleted, from the container's own
    upper directory against the layers below it (any depth: fstree)."""
    upper = c.path / "upper"
    lowers = [d for d in lower_dirs.split(":") if d]
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
