"""One container's supervisor: a task with a nursery of its own.

    Fleet's nursery
    └── Unit.supervise (one per container, for as long as it exists)
        ├── a run (one at a time): its children end with it
        │   ├── the exit watcher (the monitor's pidfd)
        │   ├── health checks
        │   └── published ports' proxies
        ├── the restart wait (restart.py), in a cancel scope of its own
        ├── detached execs' watchers
        └── what the health checks ask for (a stop, a restart: they end the run)

Cancel the unit (rm) and all of it goes; the daemon's own stop cancels every
unit, and the containers run on (their monitors are their parents). Changes
of status go through lifecycle.py; what touches the kernel through the
launcher (launch.py), so that the supervision here runs on a MockClock in unit
tests with a launcher of their own.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
import trio

from protocols.api import ContainerConfig
from supervisor.daemon import health, restart
from supervisor.daemon.lifecycle import RUNNING, On, Status
from supervisor.daemon.store import ContainerRecord, RunState
from supervisor.errors import Conflict, CorralError, SetupError
from supervisor.runtime.signals import parse_signal

if TYPE_CHECKING:
    from supervisor.daemon.launch import Launcher, Run
    from supervisor.daemon.lifecycle import Lifecycle

log = structlog.get_logger("corral.unit")


class Unit:
    def __init__(
        self,
        rec: ContainerRecord,
        state: RunState,
        path: Path,
        *,
        lifecycle: Lifecycle,
        launcher: Launcher,
        policy: restart.RestartPolicy,
        restart_gate: trio.Lock,
        forget: Callable[[Unit], None],
    ) -> None:
        self.rec, self.state, self.path = rec, state, path
        self.lifecycle, self.launcher = lifecycle, launcher
        self.policy = policy  # parsed once: at create, daemon start and update
        self.health_check = health.check_of(rec.config)
        self.restart_gate = restart_gate
        self._forget = forget  # the fleet's registry lets go of it
        self.lock = trio.Lock()  # one lifecycle change at a time
        self.exited = trio.Event()  # set whenever it is not running
        if state.status not in RUNNING:
            self.exited.set()
        self.removed = False
        # Being replaced, or a replacement not yet healthy: its names do not resolve to it.
        self.draining = False
        self.stdin_w: int | None = None
        self.stdin_pumps: set[trio.CancelScope] = set()  # attached clients' stdin copies
        self.restart_scope: trio.CancelScope | None = None
        self.deaths: list[float] = []  # trio times of recent exits: the start limit
        self.run_started: float | None = None  # trio time of the current run's start
        self._generation = 0  # runs begun: an exit's after-care is for its own run only
        self._unsettled = False  # exited; the runtime's leftovers not yet removed
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None

    # -- identity --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.rec.id

    @property
    def name(self) -> str:
        return self.rec.name

    @property
    def config(self) -> ContainerConfig:
        return self.rec.config

    @property
    def running(self) -> bool:
        return self.state.status in RUNNING

    @property
    def log_path(self) -> Path:
        return self.path / "container.log"

    @staticmethod
    def clock_ns() -> int:
        return time.time_ns()

    # -- the unit's task -------------------------------------------------------------------

    async def supervise(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The container's supervisor, in the fleet's nursery, until it is removed
        (or the daemon stops)."""
        with trio.CancelScope() as self._scope:
            async with trio.open_nursery() as self._nursery:
                task_status.started()
                await trio.sleep_forever()

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run `fn(*args)` as a child of the unit (it lives as long as the unit)."""
        assert self._nursery is not None, "the unit is not supervised"
        self._nursery.start_soon(fn, *args)

    def watch(self, run: Run) -> None:
        """A run began (or was found running): watch it in the unit's nursery."""
        self._generation += 1
        self.run_started = trio.current_time()
        self.spawn(self._watch, run, self._generation)

    async def _watch(self, run: Run, generation: int) -> None:
        async with trio.open_nursery() as children:  # what lives and dies with the run
            for serve in run.tasks:
                children.start_soon(serve)
            if self.health_check is not None:
                children.start_soon(health.check_loop, self)
            await run.wait()
            children.cancel_scope.cancel()
        try:
            self._exited(run)
            # Those waiting on the exit (attach, wait) report it before the clean-up.
            await trio.lowlevel.cancel_shielded_checkpoint()
            async with self.lock:
                await self._settle()
                if generation == self._generation and not self.removed:
                    restart.after_exit(self)
        except Exception:  # a bug in one container's bookkeeping never ends the daemon
            log.exception("unit.exit_handling_failed", container=self.id[:12], name=self.name)

    def _exited(self, run: Run) -> None:
        """Record how the run ended, as its monitor wrote it (or, without a
        record, that the monitor died: its orphans were killed by then)."""
        st, unread = self.state, ""
        try:
            ex = run.exit()
        except Exception as e:  # the exit is recorded whatever: a stuck unit serves no one
            log.exception("unit.exit_unreadable", container=self.id[:12], name=self.name)
            ex, unread = None, f"its exit could not be read: {e}"
        if ex is None:
            st.error = unread or "its monitor died without recording the exit"
            code, oom, finished = 255, False, self.clock_ns()
        else:
            failed = ex.setup_error()  # between the start and execve
            if failed is not None:
                st.error = str(failed)
            code, oom, finished = ex.exit_code, ex.oom_killed, ex.finished_at
        self._record_exit(code, oom, finished)

    def _record_exit(self, code: int, oom: bool, finished: int) -> None:
        if self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None
        self.launcher.release(self)  # its addresses: the veths went with its namespace
        st = self.state
        st.ports = {}
        st.exit_code, st.oom_killed, st.finished_nano, st.pid = code, oom, finished, 0
        if oom:
            self.lifecycle.note(self, "oom")
        # Atomic, not yet fsynced (_settle does that): safe from a daemon crash.
        self.lifecycle.transition(self, On.EXIT, exitCode=str(code), finishedAt=str(finished))
        for m in self.config.mounts:
            if m.type == "volume":
                self.lifecycle.emit_object(
                    "volume", "unmount", m.source, m.source, {"container": self.id}
                )
        self.exited.set()
        self._unsettled = True
        log.debug("unit.died", container=self.id[:12], name=self.name, exit_code=code, oom=oom)

    async def _settle(self) -> None:
        """After the exit is reported: make it durable, remove what the runtime
        left (its state, its cgroup). The caller holds the lock. A crash before
        this leaves a stopped runtime container, which the next daemon removes."""
        if not self._unsettled:
            return
        self._unsettled = False
        await self.launcher.cleanup(self, durable=not self.config.auto_remove)

    # -- starting --------------------------------------------------------------------------

    async def start(self, console: tuple[int, int] = (0, 0), prepared: Any = None) -> None:
        """Start it (the caller holds the lock); `console`: the (rows, columns) of
        its -t terminal. A --rm container that fails to start is removed, as
        Docker's is."""
        try:
            await self._start(console, prepared)
        except CorralError:
            if self.config.auto_remove and not self.running:
                self.spawn(self.auto_remove)  # once the caller lets go of the lock
            raise

    async def _start(self, console: tuple[int, int], prepared: Any) -> None:
        if self.running:
            return
        await self._settle()  # exited a moment ago: the last run's leftovers go first
        if self.state.status == Status.RESTARTING and self.restart_scope is not None:
            self.restart_scope.cancel()  # started by hand while waiting: no second start
            self.restart_scope = None
        try:
            run = await self.launcher.launch(self, prepared, console)
        except CorralError as e:
            self.state.error = str(e)
            self.state.exit_code = e.exit_code if isinstance(e, SetupError) else 125
            self.lifecycle.save(self)
            raise
        st = self.state
        st.pid, st.started_nano = run.pid, self.clock_ns()
        st.error, st.oom_killed, st.stopped_by_user, st.gave_up = "", False, False, False
        st.next_restart_nano = 0
        if self.config.health_cmd:
            st.health_status, st.failing_streak = "starting", 0
        self.exited = trio.Event()
        self.lifecycle.transition(self, On.START)
        for m in self.config.mounts:
            if m.type == "volume":
                self.lifecycle.emit_object(
                    "volume",
                    "mount",
                    m.source,
                    m.source,
                    {
                        "container": self.id,
                        "destination": m.target,
                        "read/write": str(not m.readonly).lower(),
                    },
                )
        self.watch(run)

    async def start_for(self, reason: str, prepared: Any = None) -> None:
        """Start for the daemon's own reasons (its policy, its own start, a
        health action); a failure is an exit like any other, and the policy
        answers it. The caller holds the lock."""
        try:
            await self.start(prepared=prepared)
        except CorralError as e:
            log.error(
                "unit.start_failed",
                container=self.id[:12],
                name=self.name,
                reason=reason,
                error=str(e),
            )
            self.state.error = str(e)
            self._record_exit(
                e.exit_code if isinstance(e, SetupError) else 125, False, self.clock_ns()
            )
            await self._settle()
            restart.after_exit(self)

    async def prepare_quietly(self) -> Any:
        """What a start needs before the kernel work, done early by a waiting
        restart; None if it fails (the start prepares again and says why)."""
        try:
            return await self.launcher.prepare(self)
        except CorralError:
            return None

    # -- signals, stops ---------------------------------------------------------------------

    def kill(self, sig: int, *, by_user: bool = True) -> None:
        """Signal its init. By the user, a kill also means no restart follows
        (and a waiting one is cancelled); a health check's does not."""
        if by_user and restart.cancel(self):
            return
        if not self.running:
            raise Conflict(f"container {self.id[:12]} is not running")
        if by_user:
            self.state.stopped_by_user = True
        self.launcher.kill(self, sig)
        self.lifecycle.note(self, "kill", signal=str(sig))

    async def stop(self, timeout: int | None = None, sig: str = "") -> None:
        """The stop signal (`sig`, else its own), `timeout` seconds, then SIGKILL
        (Docker's stop). The caller holds the lock."""
        if restart.cancel(self):
            self.lifecycle.note(self, "stop")
            return
        if not self.running:
            return
        self.state.stopped_by_user = True
        timeout = self.config.stop_timeout if timeout is None else timeout
        if self.state.status == Status.PAUSED:
            await self.launcher.resume(self)
        try:
            self.kill(parse_signal(sig or self.config.stop_signal))
        except Conflict:
            pass
        with trio.move_on_after(max(timeout, 0)):
            await self.exited.wait()
        if not self.exited.is_set():
            try:
                self.kill(signal.SIGKILL)
            except Conflict:
                pass
            await self.exited.wait()
        self.lifecycle.note(self, "stop")

    async def restart(self, timeout: int | None = None, sig: str = "") -> None:
        await self.stop(timeout, sig)
        await self.start()
        self.lifecycle.note(self, "restart")

    async def stop_unhealthy(self) -> None:
        """--health-on-failure=stop: a stop, after which no policy restarts it."""
        async with self.lock:
            await self.stop()

    async def restart_unhealthy(self) -> None:
        """--health-on-failure=restart: stop and start, counted as a restart."""
        async with self.lock:
            if not self.running:
                return
            await self.stop()
            self.state.restart_count += 1
            self.lifecycle.note(
                self, "restart", attempt=str(self.state.restart_count), reason="unhealthy"
            )
            await self.start_for("unhealthy")

    # -- pausing ---------------------------------------------------------------------------

    async def pause(self) -> None:
        if self.state.status != Status.RUNNING:
            raise Conflict(f"container {self.id[:12]} is not running")
        await self.launcher.pause(self)  # the freeze's wait, off the event loop
        self.lifecycle.transition(self, On.PAUSE)

    async def unpause(self) -> None:
        if self.state.status != Status.PAUSED:
            raise Conflict(f"container {self.id[:12]} is not paused")
        await self.launcher.resume(self)
        self.lifecycle.transition(self, On.UNPAUSE)

    # -- removal ---------------------------------------------------------------------------

    async def remove(self, *, force: bool = False, volumes: bool = False) -> None:
        """Remove the container (the caller holds the lock); with `volumes`, its
        anonymous volumes too (rm -v). Cancels the unit last."""
        restart.cancel(self)
        if self.running:
            if not force:
                raise Conflict(
                    f"cannot remove container {self.id[:12]}: it is {self.state.status}; "
                    "stop it first or use force"
                )
            self.state.stopped_by_user = True
            if self.state.status == Status.PAUSED:
                await self.launcher.resume(self)
            try:
                self.kill(signal.SIGKILL)
            except Conflict:
                pass
            await self.exited.wait()
        if self.removed:
            return
        self.removed = True
        self._unsettled = False  # what _settle would do, the removal does
        self.lifecycle.transition(self, On.REMOVE)
        await self.launcher.remove(self)
        self._forget(self)
        self.lifecycle.transition(self, On.DESTROY)
        if volumes or self.config.auto_remove:  # --rm takes its anonymous volumes along
            await self.launcher.remove_anonymous_volumes(self)
        if self._scope is not None:
            self._scope.cancel()

    async def auto_remove(self) -> None:
        async with self.lock:  # after a start or stop in progress, not during it
            if not self.removed and not self.running:
                await self.remove(force=True)

    # -- changes ---------------------------------------------------------------------------

    def reconfigure(self, cfg: ContainerConfig, policy: restart.RestartPolicy) -> None:
        """A new configuration (update, rename): stored, and its policy kept."""
        self.rec = msgspec.structs.replace(self.rec, config=cfg)
        self.policy = policy
        self.health_check = health.check_of(cfg)
