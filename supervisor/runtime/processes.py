"""The processes behind a container: its monitor spawned with the plan, its
report read, children reaped, signals sent to a pid only while it is still the
process that was recorded, a cgroup emptied, a monitor's control FIFO written."""

from __future__ import annotations

import _signal as signal  # not signal.py, whose enums of every signal cost ~2 ms
import errno
import os
import select
import time

from supervisor import _native
from supervisor.errors import InvalidState, SpecError
from supervisor.runtime.state import alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def spawn_monitor(
    plan: bytes,
    stdio: Sequence[int] | None,
    detach: bool,
    stdin: int | None = None,
    extra: Sequence[int] = (),
) -> tuple[int, int, int]:
    """Start the monitor with the plan; returns (monitor pid, its pidfd, the read
    end of the pipe its report comes on: see read_report). `extra`: more
    descriptors for the container (--preserve-fds), at 5.. in the monitor."""
    memfd = os.memfd_create("corral-plan", os.MFD_CLOEXEC)
    r, w = os.pipe2(os.O_CLOEXEC)
    devnull = -1
    try:
        os.write(memfd, plan)
        if stdio is None:
            devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            stdio = (stdin if stdin is not None else devnull, devnull, devnull)
        fds = [*stdio, memfd, w, *extra]
        pid, pidfd = _native.spawn(
            _native.MONITOR, [_native.MONITOR, "3", "4"], [], fds, setsid=detach
        )
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(memfd)
        os.close(w)
        if devnull >= 0:
            os.close(devnull)
    return pid, pidfd, r


def read_report(r: int) -> tuple[int, int]:
    """(kind, the container's pid) from the monitor's next report on `r`: a
    pause for the hooks (REPORT_HOOKS, another report follows) or its creation;
    the failure it reports (the step, the path, errno) raised."""
    chunks = []
    while n := _native.REPORT_SIZE - sum(map(len, chunks)):
        chunk = os.read(r, n)
        if not chunk:
            break
        chunks.append(chunk)
    kind, cpid, err = _native.parse_report(b"".join(chunks))
    if err is not None:
        raise err
    return kind, cpid


def reap_within(pidfd: int, timeout: float) -> None:
    """Reap our child if it exits within `timeout` seconds."""
    p = select.poll()
    p.register(pidfd, select.POLLIN)
    if p.poll(timeout * 1000):
        try:
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            pass


def wait_child(pidfd: int) -> int:
    """Reap our child through its pidfd; its exit status in the shell's terms."""
    info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
    assert info is not None
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return 128 + info.si_status


def pidfd_of(pid: int) -> int | None:
    """A pidfd for `pid`, or None once it is gone. A process that has exited
    and is being released gives EINVAL rather than ESRCH (seen on Linux 6.1
    when PID 1 reaps an orphaned monitor at once): gone, too."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    except OSError as e:
        if e.errno == errno.EINVAL:
            return None
        raise


def signal_process(pid: int, start: int, sig: int) -> None:
    """Signal `pid` only if it is still the process we recorded (no pid reuse race:
    the pidfd is opened first, then the identity checked, then signalled)."""
    pidfd = pidfd_of(pid)
    if pidfd is None:
        raise InvalidState(f"process {pid} has exited")
    try:
        if not alive(pid, start):
            raise InvalidState(f"process {pid} has exited")
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise InvalidState(f"process {pid} has exited") from None
    finally:
        os.close(pidfd)


def kill_cgroup(cgroup, timeout: float) -> None:
    """SIGKILL whatever is still in `cgroup` (thawed, should it be frozen) and
    wait until it is empty."""
    if not cgroup.pids():
        return
    cgroup.kill_all()
    if cgroup.frozen():
        cgroup.thaw()
    deadline = time.monotonic() + timeout
    while cgroup.pids():
        if time.monotonic() > deadline:
            raise InvalidState(
                f"processes in cgroup {cgroup.cgroups_path} still run {timeout} s after SIGKILL"
            )
        time.sleep(0.002)


def wait_gone(pid: int, start: int, timeout: float) -> None:
    """Wait until a process that may not be our child has exited."""
    pidfd = pidfd_of(pid)
    if pidfd is None:
        return
    try:
        if alive(pid, start):
            p = select.poll()
            p.register(pidfd, select.POLLIN)
            if not p.poll(timeout * 1000):
                raise InvalidState(f"the monitor (pid {pid}) did not exit within {timeout} s")
        try:
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            pass  # not our child: its parent reaps it
    finally:
        os.close(pidfd)


def resize_pty(ctl_fifo: str | os.PathLike[str], rows: int, cols: int) -> None:
    """Ask the monitor that reads `ctl_fifo` to size its pty (TIOCSWINSZ)."""
    if not (0 < rows <= 0xFFFF and 0 < cols <= 0xFFFF):
        raise SpecError("size", f"{rows}x{cols} is not a terminal size")
    ctl_write(ctl_fifo, f"{rows} {cols}")


def ctl_write(ctl_fifo: str | os.PathLike[str], line: str) -> None:
    """One line to a monitor's control FIFO (one write: the monitor reads whole lines)."""
    try:
        fd = os.open(ctl_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:  # ENXIO: no monitor reads it
        raise InvalidState(f"no monitor reads {ctl_fifo}: {e.strerror}") from None
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def zombie(pid: int) -> bool:
    """Has `pid` exited, waiting for its parent to reap it?"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def release_start(fifo: str, id: str) -> None:
    """Let a container waiting on its start FIFO exec its process."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        # ENXIO, no reader: it died while waiting; ENOENT: started meanwhile
        if e.errno in (errno.ENXIO, errno.ENOENT):
            raise InvalidState(f"container {id!r} is no longer waiting to start") from None
        raise
    try:
        os.write(fd, b"\0")
    finally:
        os.close(fd)
    os.unlink(fifo)
