"""What the runtime records of a container, on disk, atomically.

Each container has a directory under the runtime root (default
/run/corral/runtime, a tmpfs: state never outlives a reboot, and neither do
containers):

Files are replaced atomically (write, rename) and not fsynced: a process
crash never tears them, and a host crash ends the containers with them.

    state.json   ContainerRecord, written once the container is created
    exec.fifo    exists while the container waits for `start`
    exit.json    written by the monitor when the container exits
    container.log  stdout/stderr in CRI format, when detached
"""

from __future__ import annotations

import errno
import os

from protocols import lite
from protocols.lite import minijson
from supervisor.errors import CorruptState, SetupError

# Records are Lite classes, not msgspec Structs: `corral runtime run` writes
# and reads them, and importing msgspec is ~20 ms of its start.


class CgroupRecord(lite.Lite):
    version: str
    path: str
    mount_root: str | None = None


class ContainerRecord(lite.Lite):
    id: str
    bundle: str
    rootfs: str
    pid: int
    pid_start: int  # /proc/PID/stat starttime: guards against pid reuse
    monitor_pid: int
    monitor_start: int
    created_at: int  # ns since the epoch
    cgroup: CgroupRecord
    annotations: dict[str, str] = dict  # a new empty one each
    # Handed over at create (corral-runc, runc's model): no monitor stays; the
    # caller's subreaper reaps it, so "stopped" is its process being gone.
    handoff: bool = False


class ExitRecord(lite.Lite):
    """exit.json, as the monitor (native/monitor.c) writes it."""

    exit_code: int
    signal: int
    oom_killed: bool
    finished_at: int
    # A setup step that failed after the caller was told the container was
    # ready (between its start and execve): named as SetupError names it.
    step: str = ""
    errno: int = 0
    path: str = ""
    detail: str = ""

    def setup_error(self) -> SetupError | None:
        return SetupError(self.step, self.errno, self.path, self.detail) if self.step else None


def atomic_write(path: str | os.PathLike[str], data: bytes, *, durable: bool = False) -> None:
    """Write-then-rename: a reader, or a process that crashed mid-write, sees
    the old file or the new one, never a torn one. `durable` also fsyncs, for
    state that must survive a host crash; runtime state need not (containers
    do not survive one), and an fsync costs a quarter millisecond here."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def write_record(state_dir: str | os.PathLike[str], rec: ContainerRecord) -> None:
    atomic_write(os.path.join(state_dir, "state.json"), minijson.dumps(lite.to_builtins(rec)))


def read_record(state_dir: str | os.PathLike[str]) -> ContainerRecord | None:
    return _read(os.path.join(state_dir, "state.json"), ContainerRecord)  # type: ignore[return-value]


def read_exit(state_dir: str | os.PathLike[str]) -> ExitRecord | None:
    return _read(os.path.join(state_dir, "exit.json"), ExitRecord)  # type: ignore[return-value]


def _read(path: str | os.PathLike[str], cls: type[lite.Lite]) -> lite.Lite | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        return lite.from_json(cls, minijson.loads(data))
    except (ValueError, UnicodeDecodeError) as e:  # JSONError, ValidationError
        raise CorruptState(path, str(e)) from None


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def alive(pid: int, start: int) -> bool:
    """Is `pid` still the process that started at `start` (and not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ESRCH):
            return False
        raise
    rest = data[data.rindex(b")") + 2 :].split()
    return rest[0] != b"Z" and int(rest[19]) == start
