"""The fleet's restart policies at work: the decision after an exit, the
backoff wait in a cancel scope of its own, and --rm's removal.

A mixin of Fleet (the policy arithmetic is restart.py, pure), kept apart so
that fleet.py holds the containers' lifecycle.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
import trio

from protocols import oci
from supervisor.daemon import restart
from supervisor.daemon.restart import Backoff
from supervisor.errors import CorralError, SetupError

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Container
    from supervisor.daemon.store import Store

log = structlog.get_logger("corral.fleet")


class FleetRestarts:
    backoff: Backoff
    containers: dict[str, Container]
    store: Store
    _nursery: trio.Nursery | None
    _restart_gate: trio.Lock

    def _after_exit(self, c: Container) -> None:
        """The policy's answer to an exit: a restart after its backoff, an
        auto-removal (--rm), or nothing."""
        code, finished = c.state.exit_code, c.state.finished_nano
        policy = restart.parse_policy(c.config.restart)
        if restart.should_restart(
            policy,
            code,
            stopped_by_user=c.state.stopped_by_user,
            restart_count=c.state.restart_count,
        ):
            run_seconds = max(0.0, (finished - c.state.started_nano) / 1e9)
            delay = restart.next_delay(self._backoff(c), c.state.restart_delay, run_seconds)
            # The delay counts from the exit itself, not from when we heard of it.
            since_exit = max(0.0, (time.time_ns() - finished) / 1e9)
            self._schedule_restart(c, delay, wait=max(0.0, delay - since_exit))
        elif c.config.auto_remove and self._nursery is not None:
            self._nursery.start_soon(self._auto_remove, c)

    def _backoff(self, c: Container) -> Backoff:
        cfg, d = c.config, self.backoff
        return Backoff(
            initial=d.initial if cfg.restart_delay is None else cfg.restart_delay,
            factor=d.factor,
            maximum=d.maximum if cfg.restart_max_delay is None else cfg.restart_max_delay,
            reset_after=d.reset_after
            if cfg.restart_reset_after is None
            else cfg.restart_reset_after,
        )

    def _schedule_restart(self, c: Container, delay: float, wait: float | None = None) -> None:
        """`restarting` for `delay` seconds (or what is left of it), in a cancel
        scope of its own: stop, kill or rm cancel it."""
        wait = delay if wait is None else wait
        c.state.status = "restarting"
        c.state.restart_delay = delay
        c.state.next_restart_nano = time.time_ns() + int(wait * 1e9)
        self.store.save_state(c.id, c.state)
        assert self._nursery is not None
        scope = trio.CancelScope()
        c.restart_scope = scope
        self._nursery.start_soon(self._restart_after, c, delay, wait, scope)

    async def _restart_after(
        self, c: Container, delay: float, wait: float, scope: trio.CancelScope
    ) -> None:
        with scope:
            # Timed waits run long here in proportion to their length (about
            # 0.3% on the project's VM: 10 ms on 3.2 s), and the first work after
            # an idle second runs slow: wake a little early, prepare the start
            # (which also wakes the CPU and its caches), then sleep the short rest.
            deadline = trio.current_time() + wait
            early = min(wait * 0.01 + 0.01, 0.05)
            await trio.sleep_until(deadline - early)
            spec = None
            if c.state.status == "restarting" and c.id in self.containers:
                try:
                    spec = await self.prepare(c)
                except CorralError:
                    spec = None  # start() prepares again and records the error
            await trio.sleep_until(deadline)
            async with self._restart_gate, c.lock:
                if c.state.status != "restarting" or c.id not in self.containers:
                    return
                c.restart_scope = None
                c.state.restart_count += 1
                self.emit(c, "restart", attempt=str(c.state.restart_count), delay=f"{delay:.3f}")
                await self._start_logged(c, reason="restart policy", spec=spec)

    def _cancel_restart(self, c: Container) -> bool:
        """A user's stop/kill/rm: a waiting restart does not happen."""
        if c.state.status != "restarting":
            return False
        if c.restart_scope is not None:
            c.restart_scope.cancel()
            c.restart_scope = None
        c.state.status = "exited"
        c.state.stopped_by_user = True
        c.state.next_restart_nano = 0
        self.store.save_state(c.id, c.state)
        return True

    async def _start_logged(
        self, c: Container, *, reason: str, spec: oci.Spec | None = None
    ) -> None:
        """Start for the daemon's own reasons; a failure is recorded, not raised."""
        try:
            await self.start(c, spec)
        except CorralError as e:
            log.error(
                "fleet.start_failed", container=c.id[:12], name=c.name, reason=reason, error=str(e)
            )
            code = e.exit_code if isinstance(e, SetupError) else 125
            c.state.error = str(e)
            self._record_exit(c, code, False, time.time_ns())
            self._settle(c)

    async def _auto_remove(self, c: Container) -> None:
        async with c.lock:  # after a start or stop in progress, not during it
            if c.id in self.containers and not c.running:
                await self.remove(c, force=True)
