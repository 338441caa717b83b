"""The kernel side of a container's supervision: starting a run through the
runtime, watching it end, signalling, pausing, and removing what it left.

The unit (unit.py) decides; this does. Blocking work goes off the event loop:
the monitor's report is awaited on its descriptor, a freeze's wait and a
runtime delete (which waits for a monitor, or a cgroup to empty) run in worker
threads, tree removals too.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
import trio

from protocols import oci
from supervisor.daemon import health
from supervisor.daemon import store as containers_store
from supervisor.daemon.store import HealthResult
from supervisor.errors import Conflict, CorralError, InvalidState, NoSuchContainer, SpecError
from supervisor.runtime import Runtime
from supervisor.runtime.container import Created, finish_create
from supervisor.runtime.processes import pidfd_of
from supervisor.runtime.state import ExitRecord, alive
from supervisor.volumes.store import VolumeStore

if TYPE_CHECKING:
    from supervisor.daemon.execs import Execs
    from supervisor.daemon.lifecycle import Lifecycle
    from supervisor.daemon.networking import Networking
    from supervisor.daemon.prepare import Preparer
    from supervisor.daemon.unit import Unit

log = structlog.get_logger("corral.launch")


class Run:
    """One run of a container: its process, the monitor's pidfd to wait on, and
    what lives as long as it (its published ports' proxies)."""

    def __init__(
        self,
        launcher: Launcher,
        u: Unit,
        pid: int,
        pidfd: int,
        *,
        ours: bool,
        tasks: list[Callable[[], Awaitable[None]]] | None = None,
    ) -> None:
        self.launcher, self.unit = launcher, u
        self.pid, self.pidfd, self.ours = pid, pidfd, ours
        self.tasks = tasks or []

    @property
    def ended(self) -> bool:
        """Found over already: no monitor to wait for."""
        return self.pidfd < 0

    async def wait(self) -> None:
        """Until the monitor has exited (reaped, if it is our child)."""
        if self.ended:
            return
        try:
            await trio.lowlevel.wait_readable(self.pidfd)
            if self.ours:
                try:
                    os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG)
                except ChildProcessError:
                    pass
        finally:
            os.close(self.pidfd)

    def exit(self) -> ExitRecord | None:
        return self.launcher.exit_record(self.unit)


class Launcher:
    def __init__(
        self,
        *,
        runtime: Runtime,
        prepare: Preparer,
        networking: Networking,
        store: containers_store.Store,
        volumes: VolumeStore,
        lifecycle: Lifecycle,
        tree_work: trio.CapacityLimiter,
        volume_users: Callable[[str], list[str]],
        execs: Execs,
    ) -> None:
        self.execs = execs
        self.runtime, self.preparer, self.networking = runtime, prepare, networking
        self.volume_users = volume_users  # containers whose config mounts a volume
        self.store, self.volumes, self.lifecycle = store, volumes, lifecycle
        self.tree_work = tree_work
        # Blocking runtime calls (a delete waits for its monitor or cgroup; a
        # freeze for every task to stop) go through these few threads.
        self._blocking = trio.CapacityLimiter(8)

    async def prepare(self, u: Unit) -> oci.Spec:
        return await self.preparer.spec(u)

    async def launch(self, u: Unit, spec: Any, console: tuple[int, int]) -> Run:
        """Make the container and start its process: the runtime's create (the
        kernel work overlaps the daemon's other work), its network, its start."""
        cfg = u.config
        if spec is None:
            spec = await self.prepare(u)
        if cfg.tty and console[0] and console[1]:
            size = oci.ConsoleSize(height=console[0], width=console[1])
            spec = msgspec.structs.replace(
                spec, process=msgspec.structs.replace(spec.process, console_size=size)
            )
        on_network = cfg.network in self.networking.networks.networks
        created = await self._create(
            u.id,
            str(u.path),
            stdio=None,
            detach=True,
            wait_for_start=on_network,  # its network is made before it runs
            spec=spec,
            stdin_fifo=cfg.open_stdin,  # held by the monitor: it outlives us
            overlay=(self.preparer.lower_dirs(cfg), str(u.path / "upper"), str(u.path / "work")),
            log_max_size=max(cfg.log_max_size, 0),  # -1 (and 0, stored before
            log_max_files=max(cfg.log_max_files, 1),  # defaults): no rotation
            log_file=str(u.log_path),
        )
        tasks: list[Callable[[], Awaitable[None]]] = []
        if on_network:
            try:
                self.networking.wire(u, created.record.pid)
                tasks = self.networking.bind_ports(u)
                self.runtime.start(u.id)
            except (CorralError, OSError) as e:
                u.state.ports = {}
                created.close()
                await self._delete(u.id)
                self.networking.release_addresses(u)
                raise SpecError("--network", f"connecting to {cfg.network}: {e}") from None
        if cfg.open_stdin:
            u.stdin_w = self.runtime.stdin_writer(u.id)
        return Run(self, u, created.record.pid, created.monitor_pidfd, ours=True, tasks=tasks)

    async def _create(self, id: str, bundle: str, **kw) -> Created:
        """Runtime.create without blocking the event loop on the monitor's report."""
        steps = self.runtime.create_steps(id, bundle, **kw)
        report = next(steps)
        try:
            await trio.lowlevel.wait_readable(report)
        except BaseException:
            try:
                steps.close()  # cancelled: the half-made container is removed
            except CorralError:
                pass  # its set-up failed too: the cancellation is what goes on
            raise
        return finish_create(steps)

    def adopt(self, u: Unit) -> Run | None:
        """A container the store says runs, as a new daemon finds it: its Run (a
        new pidfd on its monitor), an ended Run (it exited while the daemon was
        away: its exit is in the monitor's record), or None (no runtime state:
        the host restarted)."""
        try:
            rt = self.runtime.record(u.id)
        except (NoSuchContainer, CorralError):
            try:  # what a creation cut short left (a monitor, a waiting child)
                self.runtime.delete(u.id, force=True)
            except NoSuchContainer:
                pass
            return None
        ended = Run(self, u, rt.pid, -1, ours=False)
        if self.runtime.status(u.id, rt) == "stopped":
            return ended
        pidfd = pidfd_of(rt.monitor_pid)
        if pidfd is None:
            return ended
        if not alive(rt.monitor_pid, rt.monitor_start):
            os.close(pidfd)
            return ended
        tasks: list[Callable[[], Awaitable[None]]] = []
        if u.config.open_stdin:  # the monitor kept its stdin open for us
            try:
                u.stdin_w = self.runtime.stdin_writer(u.id)
            except CorralError as e:
                log.error("launch.stdin_lost", container=u.id[:12], error=str(e))
        if u.config.ports:  # the proxies died with the last daemon: again
            u.state.ports = {}
            try:
                tasks = self.networking.bind_ports(u)
            except CorralError as e:
                log.error("launch.republish_failed", container=u.id[:12], error=str(e))
        return Run(self, u, rt.pid, pidfd, ours=False, tasks=tasks)

    def found_paused(self, u: Unit) -> bool:
        try:
            return self.runtime.status(u.id) == "paused"
        except CorralError:
            return False

    def exit_record(self, u: Unit) -> ExitRecord | None:
        """How the run ended, as its monitor wrote it. Without a record its
        monitor was killed (kill -9?) and the container may run on, reparented
        to init: its processes are killed (through its cgroup) first."""
        try:
            ex = self.runtime.exit_status(u.id)
        except (NoSuchContainer, CorralError) as e:
            log.error("launch.exit_unreadable", container=u.id[:12], error=str(e))
            ex = None
        if ex is None:
            try:
                self.runtime.delete(u.id, force=True)
            except NoSuchContainer:
                pass
            except (CorralError, OSError) as e:
                log.error("launch.orphans_not_killed", container=u.id[:12], error=str(e))
        return ex

    async def probe(self, u: Unit, cmd: list[str], timeout: float) -> HealthResult:
        """One health check: `cmd` run in the container, as exec runs one."""
        try:
            process = self.execs.process(u, cmd, [], "", "", False)
        except CorralError as e:
            now = u.clock_ns()
            return HealthResult(
                start_nano=now, end_nano=now, exit_code=-1, output=f"the check could not run: {e}"
            )
        return await health.probe(self.runtime, u.id, process, timeout)

    def release(self, u: Unit) -> None:
        self.networking.release_addresses(u)

    async def cleanup(self, u: Unit, *, durable: bool) -> None:
        """After an exit: the state made durable, the runtime's leftovers (its
        state directory, its cgroup) removed."""
        if durable:  # a --rm container is gone in a moment anyway
            try:
                self.store.sync_state(u.id)
            except OSError as e:
                log.error("launch.state_sync_failed", container=u.id[:12], error=str(e))
        try:
            await self._delete(u.id)
        except CorralError as e:
            log.error("launch.runtime_delete_failed", container=u.id[:12], error=str(e))

    async def _delete(self, id: str) -> None:
        def delete() -> None:
            try:
                self.runtime.delete(id, force=True)
            except NoSuchContainer:
                pass

        await trio.to_thread.run_sync(delete, limiter=self._blocking)

    def kill(self, u: Unit, sig: int) -> None:
        try:
            self.runtime.kill(u.id, sig)
        except (InvalidState, NoSuchContainer):
            raise Conflict(f"container {u.id[:12]} is not running") from None

    async def pause(self, u: Unit) -> None:
        """Freeze its cgroup; the wait for every task to stop, in a thread."""
        await trio.to_thread.run_sync(self.runtime.pause, u.id, limiter=self._blocking)

    async def resume(self, u: Unit) -> None:
        await trio.to_thread.run_sync(self.runtime.resume, u.id, limiter=self._blocking)

    async def remove(self, u: Unit) -> None:
        """Its runtime state and its directory: renamed away at once, deleted in
        a thread (a big tree takes a while)."""
        await self._delete(u.id)
        trash = self.store.remove(u.id)
        await trio.to_thread.run_sync(self.store.purge, trash, limiter=self.tree_work)

    async def remove_anonymous_volumes(self, u: Unit) -> None:
        for m in u.config.mounts:
            meta = self.volumes.volumes.get(m.source) if m.type == "volume" else None
            if meta is not None and meta.anonymous and not self.volume_users(m.source):
                await trio.to_thread.run_sync(self.volumes.remove, m.source, limiter=self.tree_work)
                self.lifecycle.emit_object("volume", "destroy", m.source, m.source)
