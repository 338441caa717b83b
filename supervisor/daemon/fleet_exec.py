"""The fleet's execs: a process started in a running container (attached by
the server, or detached here), the identity and profile it runs with, and the
resizing of a -t container's or exec's terminal.

A mixin of Fleet, kept apart so that fleet.py holds the containers' lifecycle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from protocols import oci
from supervisor import _native
from supervisor.daemon import ocispec
from supervisor.errors import Conflict, CorralError, SpecError
from supervisor.runtime import Runtime, users
from supervisor.runtime.container import resize_pty

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Container


class FleetExec:
    runtime: Runtime
    exec_ctls: dict[str, Path]
    _nursery: trio.Nursery | None

    def resize(self, c: Container, height: int, width: int, exec_id: str = "") -> None:
        """Size the pty of a -t container, or of its running -t exec `exec_id`."""
        if exec_id:
            path = self.exec_ctls.get(exec_id)
            if path is None:
                raise Conflict(f"no running exec {exec_id[:12]} with a terminal")
            resize_pty(path, height, width)
            return
        if not c.running:
            raise Conflict(f"container {c.id[:12]} is not running")
        if not c.config.tty:
            raise Conflict(f"container {c.id[:12]} has no terminal (run it with -t)")
        self.runtime.resize(c.id, height, width)

    def close_stdin(self, c: Container) -> None:
        """The client closed stdin: the container reads EOF (our writer and the
        monitor's both close)."""
        for scope in list(c.stdin_pumps):  # other clients' copies of our writer
            scope.cancel()
        if c.stdin_w is None:
            return
        os.close(c.stdin_w)
        c.stdin_w = None
        try:
            self.runtime.close_stdin(c.id)
        except CorralError:
            pass  # it has exited: nothing reads its stdin any more

    def exec_detached(self, c: Container, process: oci.Process, exec_id: str) -> None:
        """exec -d: the process runs with /dev/null for stdio (Docker discards a
        detached exec's output); its end is an exec_die event."""
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        try:
            self.emit(c, "exec_create: " + " ".join(process.args), execID=exec_id)
            _pid, pidfd, _child = self.runtime.exec(c.id, process, (null, null, null))
        finally:
            os.close(null)
        self.emit(c, "exec_start: " + " ".join(process.args), execID=exec_id)
        assert self._nursery is not None
        self._nursery.start_soon(self._watch_exec, c, pidfd, exec_id)

    async def _watch_exec(self, c: Container, pidfd: int, exec_id: str) -> None:
        try:
            await trio.lowlevel.wait_readable(pidfd)
            code = _native.reap(pidfd)
        finally:
            os.close(pidfd)
        self.emit(c, "exec_die", execID=exec_id, exitCode=str(code))

    def exec_process(
        self,
        c: Container,
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
        uid, gid, extra = users.resolve(
            user or c.config.user, self.lookup_root(c.config, "/etc/passwd")
        )
        hostname = c.config.hostname or c.id[:12]
        caps = ocispec.capabilities(c.config)
        return oci.Process(
            args=cmd,
            env=ocispec.env_with_defaults([*c.config.env, *env], hostname, tty),
            cwd=workdir or c.config.workdir or "/",
            user=oci.User(uid=uid, gid=gid, additional_gids=extra or None),
            terminal=tty,
            console_size=oci.ConsoleSize(height=console[0], width=console[1])
            if tty and console[0] and console[1]
            else None,
            capabilities=oci.Capabilities(bounding=caps, effective=caps, permitted=caps),
            no_new_privileges=True,
        )
