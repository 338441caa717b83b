"""Execs: a process started in a running container (attached, streamed by the
connection that asked, or detached, watched by the container's unit), the
identity and profile it runs with, and the resizing of a -t container's or
exec's terminal. Each exec has a monitor of its own (the runtime's exec)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from protocols import oci
from supervisor import _native
from supervisor.daemon import ocispec
from supervisor.daemon.lifecycle import Status
from supervisor.errors import Conflict, CorralError, SpecError
from supervisor.runtime import Runtime, users
from supervisor.runtime.processes import resize_pty

if TYPE_CHECKING:
    from supervisor.daemon.prepare import Preparer
    from supervisor.daemon.unit import Unit


class Started:
    """An attached exec: its id, its monitor's pidfd, and our ends of its stdio."""

    def __init__(self, exec_id: str, pidfd: int, stdin: int, stdout: int, stderr: int) -> None:
        self.exec_id, self.pidfd = exec_id, pidfd
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr


class Execs:
    def __init__(self, runtime: Runtime, preparer: Preparer, ctl_dir: Path) -> None:
        self.runtime, self.preparer = runtime, preparer
        self.ctl_dir = ctl_dir  # running -t execs' resize FIFOs
        self.ctls: dict[str, Path] = {}  # by exec id
        self._spawning = trio.CapacityLimiter(8)

    def process(
        self,
        u: Unit,
        cmd: list[str],
        env: list[str],
        workdir: str,
        user: str,
        tty: bool,
        console: tuple[int, int] = (0, 0),
    ) -> oci.Process:
        """The process an exec runs: the container's identity and profile."""
        if not cmd:
            raise SpecError("cmd", "exec needs a command")
        cfg = u.config
        uid, gid, extra = users.resolve(
            user or cfg.user, self.preparer.lookup_root(cfg, "/etc/passwd")
        )
        hostname = cfg.hostname or u.id[:12]
        caps = ocispec.capabilities(cfg)
        return oci.Process(
            args=cmd,
            env=ocispec.env_with_defaults([*cfg.env, *env], hostname, tty),
            cwd=workdir or cfg.workdir or "/",
            user=oci.User(uid=uid, gid=gid, additional_gids=extra or None),
            terminal=tty,
            console_size=oci.ConsoleSize(height=console[0], width=console[1])
            if tty and console[0] and console[1]
            else None,
            capabilities=oci.Capabilities(bounding=caps, effective=caps, permitted=caps),
            no_new_privileges=True,
        )

    async def _exec(self, u: Unit, process: oci.Process, stdio, ctl: str | None = None):
        """The runtime's exec (its monitor started, its report read) in a worker
        thread: the report's read is a wait, a few milliseconds on a busy host."""
        return await trio.to_thread.run_sync(
            self.runtime.exec, u.id, process, stdio, ctl, limiter=self._spawning
        )

    async def detached(self, u: Unit, process: oci.Process) -> str:
        """exec -d: the process runs with /dev/null for stdio (Docker discards a
        detached exec's output); its unit watches for its end (exec_die)."""
        if u.state.status != Status.RUNNING:
            raise Conflict(f"container {u.id[:12]} is not running")
        exec_id = secrets.token_hex(32)
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        try:
            u.lifecycle.note(u, "exec_create: " + " ".join(process.args), execID=exec_id)
            _pid, pidfd, _child = await self._exec(u, process, (null, null, null))
        finally:
            os.close(null)
        u.lifecycle.note(u, "exec_start: " + " ".join(process.args), execID=exec_id)
        u.spawn(self._watch_detached, u, pidfd, exec_id)
        return exec_id

    async def _watch_detached(self, u: Unit, pidfd: int, exec_id: str) -> None:
        try:
            await trio.lowlevel.wait_readable(pidfd)
            code = _native.reap(pidfd)
        finally:
            os.close(pidfd)
        u.lifecycle.note(u, "exec_die", execID=exec_id, exitCode=str(code))

    async def attached(self, u: Unit, process: oci.Process) -> Started:
        """An exec whose stdio the caller streams: pipes (and, with -t, a FIFO
        its monitor reads resizes from)."""
        if u.state.status != Status.RUNNING:
            raise Conflict(f"container {u.id[:12]} is not running")
        exec_id = secrets.token_hex(32)
        ctl = None
        if process.terminal:
            self.ctl_dir.mkdir(mode=0o700, exist_ok=True)
            ctl = self.ctl_dir / f"{exec_id}.ctl"
            os.mkfifo(ctl, 0o600)
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            u.lifecycle.note(u, "exec_create: " + " ".join(process.args), execID=exec_id)
            _pid, pidfd, _child = await self._exec(
                u, process, (in_r, out_w, err_w), str(ctl) if ctl else None
            )
        except BaseException:
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            if ctl is not None:
                ctl.unlink()
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        if ctl is not None:
            self.ctls[exec_id] = ctl
        u.lifecycle.note(u, "exec_start: " + " ".join(process.args), execID=exec_id)
        return Started(exec_id, pidfd, in_w, out_r, err_r)

    def ended(self, u: Unit, started: Started, code: int) -> None:
        ctl = self.ctls.pop(started.exec_id, None)
        if ctl is not None:
            ctl.unlink(missing_ok=True)
        u.lifecycle.note(u, "exec_die", execID=started.exec_id, exitCode=str(code))

    def resize(self, u: Unit, height: int, width: int, exec_id: str = "") -> None:
        """Size the pty of a -t container, or of its running -t exec `exec_id`."""
        if exec_id:
            path = self.ctls.get(exec_id)
            if path is None:
                raise Conflict(f"no running exec {exec_id[:12]} with a terminal")
            resize_pty(path, height, width)
            return
        if not u.running:
            raise Conflict(f"container {u.id[:12]} is not running")
        if not u.config.tty:
            raise Conflict(f"container {u.id[:12]} has no terminal (run it with -t)")
        self.runtime.resize(u.id, height, width)

    def close_stdin(self, u: Unit) -> None:
        """The client closed stdin: the container reads EOF (our writer and the
        monitor's both close)."""
        for scope in list(u.stdin_pumps):  # other clients' copies of our writer
            scope.cancel()
        if u.stdin_w is None:
            return
        os.close(u.stdin_w)
        u.stdin_w = None
        try:
            self.runtime.close_stdin(u.id)
        except CorralError:
            pass  # it has exited: nothing reads its stdin any more
