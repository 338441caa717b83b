"""A container's supervisor (unit.py) with its restart path (restart.py) and
lifecycle (lifecycle.py), driven on trio's MockClock: whole timelines of
crashes, backoffs, start limits and stops, tested exactly and in milliseconds.

Everything here is the daemon's own code but the launcher: a fake whose runs
"exit" when the test says, so no root, no C build and no kernel are needed.
The real launcher (launch.py) is what the integration tests drive.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from protocols.api import ContainerConfig
from supervisor.daemon import restart
from supervisor.daemon.journal import Journal
from supervisor.daemon.lifecycle import TABLE, ImpossibleTransition, Lifecycle, On, Status
from supervisor.daemon.store import ContainerRecord, RunState, Store
from supervisor.daemon.unit import Unit
from supervisor.errors import SetupError
from supervisor.runtime.state import ExitRecord


def virtual_ns() -> int:
    """The wall clock, as the MockClock has it: the unit's and the fake's alike."""
    return int(trio.current_time() * 1e9)


class FakeRun:
    def __init__(self, launcher: FakeLauncher, pid: int, code: int, after: float) -> None:
        self.launcher, self.pid, self.code, self.after = launcher, pid, code, after
        self.tasks: list = []
        self.ended = False
        self.killed = trio.Event()

    async def wait(self) -> None:
        with trio.move_on_after(self.after):
            await self.killed.wait()

    def exit(self) -> ExitRecord:
        self.launcher.exits.append(trio.current_time())
        return ExitRecord(
            exit_code=self.code, signal=0, oom_killed=False, finished_at=time.time_ns()
        )


class FakeLauncher:
    """Runs that last `runs[i] = (seconds, exit code)` (the last repeats); a
    start can be made to fail."""

    def __init__(self, runs: list[tuple[float, int]]) -> None:
        self.runs = runs
        self.starts: list[float] = []
        self.exits: list[float] = []
        self.fail_starts = False
        self.current: FakeRun | None = None

    async def prepare(self, u: Unit) -> str:
        return "spec"

    async def launch(self, u: Unit, spec, console) -> FakeRun:
        if self.fail_starts:
            raise SetupError("execve", 2, "/bin/none")
        self.starts.append(trio.current_time())
        after, code = self.runs[min(len(self.starts) - 1, len(self.runs) - 1)]
        self.current = FakeRun(self, 1000 + len(self.starts), code, after)
        return self.current

    def release(self, u: Unit) -> None:
        pass

    async def cleanup(self, u: Unit, *, durable: bool) -> None:
        pass

    def kill(self, u: Unit, sig: int) -> None:
        assert self.current is not None
        self.current.code = 128 + sig
        self.current.killed.set()

    async def pause(self, u: Unit) -> None:
        pass

    async def resume(self, u: Unit) -> None:
        pass

    async def remove(self, u: Unit) -> None:
        pass

    async def remove_anonymous_volumes(self, u: Unit) -> None:
        pass


async def _unit(tmp_path: Path, launcher: FakeLauncher, nursery, **cfg) -> tuple[Unit, Journal]:
    store = Store(tmp_path)
    journal = Journal(tmp_path / "events.journal")
    config = ContainerConfig(cmd=["crash"], rootfs="/", **cfg)
    rec = ContainerRecord(id="c" * 64, name="svc", created_nano=time.time_ns(), config=config)
    store.create(rec)
    u = Unit(
        rec,
        RunState(),
        store.path(rec.id),
        lifecycle=Lifecycle(journal, store),
        launcher=launcher,  # type: ignore[arg-type]
        policy=restart.policy_of(config, restart.Backoff()),
        restart_gate=trio.Lock(),
        forget=lambda u: None,
    )
    u.clock_ns = virtual_ns  # type: ignore[method-assign]
    await nursery.start(u.supervise)
    u.lifecycle.created(u)
    return u, journal


def _actions(journal: Journal) -> list[str]:
    return [e.action for e in journal.read(1, limit=10_000)]


async def _settle_until(pred, limit: float = 3600.0) -> None:
    deadline = trio.current_time() + limit
    while not pred():
        assert trio.current_time() < deadline, "the timeline never got there"
        await trio.sleep(0.001)


async def test_backoff_timeline_is_exact(tmp_path, autojump_clock):
    launcher = FakeLauncher([(1.0, 1)])  # every run crashes after one second
    async with trio.open_nursery() as n:
        u, journal = await _unit(tmp_path, launcher, n, restart="on-failure:5")
        async with u.lock:
            await u.start()
        await _settle_until(lambda: u.state.status == Status.EXITED and len(launcher.starts) == 6)
        n.cancel_scope.cancel()
    # Each run lasts 1 s; the waits between them are Docker's 0.1, 0.2, 0.4, 0.8, 1.6.
    t, expected = 0.0, [0.0]
    for delay in (0.1, 0.2, 0.4, 0.8, 1.6):
        t += 1.0 + delay
        expected.append(t)
    assert launcher.starts == pytest.approx(expected, abs=1e-3)
    assert u.state.restart_count == 5 and u.state.exit_code == 1
    assert _actions(journal).count("die") == 6 and _actions(journal).count("restart") == 5


async def test_a_long_run_resets_the_backoff(tmp_path, autojump_clock):
    launcher = FakeLauncher([(0.0, 1), (0.0, 1), (30.0, 1), (0.0, 1)])
    async with trio.open_nursery() as n:
        u, _ = await _unit(tmp_path, launcher, n, restart="always")
        async with u.lock:
            await u.start()
        await _settle_until(lambda: len(launcher.starts) == 5)
        n.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(launcher.exits, launcher.starts[1:], strict=False)]
    # 0.1, 0.2, then the 30 s run resets the series to 0.1, then 0.2 again.
    assert gaps == pytest.approx([0.1, 0.2, 0.1, 0.2], abs=1e-3)


async def test_the_start_limit_gives_up(tmp_path, autojump_clock):
    launcher = FakeLauncher([(0.5, 1)])
    async with trio.open_nursery() as n:
        u, journal = await _unit(
            tmp_path, launcher, n, restart="always", restart_burst=4, restart_window=10.0
        )
        async with u.lock:
            await u.start()
        await _settle_until(lambda: u.state.gave_up)
        await trio.sleep(3600)  # nothing more happens, however long
        n.cancel_scope.cancel()
    assert len(launcher.starts) == 4
    assert u.state.status == Status.EXITED and "gave up" in u.state.error
    assert _actions(journal)[-1] == "failed"
    # A start by hand clears it, and the count begins again.
    async with trio.open_nursery() as n:
        await n.start(u.supervise)
        async with u.lock:
            await u.start()
        assert not u.state.gave_up and u.state.status == Status.RUNNING
        n.cancel_scope.cancel()


async def test_a_stop_during_the_wait_cancels_the_restart(tmp_path, autojump_clock):
    launcher = FakeLauncher([(1.0, 1)])
    async with trio.open_nursery() as n:
        u, journal = await _unit(tmp_path, launcher, n, restart="always", restart_delay=5.0)
        async with u.lock:
            await u.start()
        await _settle_until(lambda: u.state.status == Status.RESTARTING)
        async with u.lock:
            await u.stop()
        await trio.sleep(60)  # past the delay: a restart not cancelled would have come
        n.cancel_scope.cancel()
    assert len(launcher.starts) == 1
    assert u.state.status == Status.EXITED and u.state.stopped_by_user
    assert _actions(journal)[-1] == "stop"


async def test_a_failed_policy_start_is_an_exit_the_policy_answers(tmp_path, autojump_clock):
    launcher = FakeLauncher([(1.0, 1)])
    async with trio.open_nursery() as n:
        u, journal = await _unit(tmp_path, launcher, n, restart="on-failure:3")
        async with u.lock:
            await u.start()
        launcher.fail_starts = True  # the image broke meanwhile
        await _settle_until(lambda: u.state.status == Status.EXITED and u.state.restart_count == 3)
        n.cancel_scope.cancel()
    assert u.state.exit_code == 127 and "execve" in u.state.error
    assert _actions(journal).count("die") == 4 and _actions(journal).count("start") == 1


async def test_kill_by_the_user_is_not_restarted(tmp_path, autojump_clock):
    launcher = FakeLauncher([(1000.0, 0)])
    async with trio.open_nursery() as n:
        u, journal = await _unit(tmp_path, launcher, n, restart="always")
        async with u.lock:
            await u.start()
        u.kill(9)
        await u.exited.wait()
        await trio.sleep(3600)
        n.cancel_scope.cancel()
    assert len(launcher.starts) == 1 and u.state.exit_code == 137
    assert [a for a in _actions(journal) if a in ("kill", "die", "restart")] == ["kill", "die"]


def test_every_transition_is_in_the_table():
    assert TABLE[(Status.RUNNING, On.EXIT)] == (Status.EXITED, "die")
    assert TABLE[(Status.EXITED, On.WAIT)] == (Status.RESTARTING, "")
    for status in Status:  # anything can be found defunct
        assert TABLE[(status, On.FAIL)][0] == Status.DEAD


async def test_an_impossible_transition_raises(tmp_path):
    async with trio.open_nursery() as n:
        u, _ = await _unit(tmp_path, FakeLauncher([(1.0, 0)]), n)
        with pytest.raises(ImpossibleTransition, match="pause while created"):
            u.lifecycle.transition(u, On.PAUSE)
        assert u.state.status == Status.CREATED
        n.cancel_scope.cancel()
