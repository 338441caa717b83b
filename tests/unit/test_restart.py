"""Restart policy and backoff arithmetic (pure), and the backoff timer on trio's
autojump clock: no real sleeps."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from supervisor.daemon.restart import (
    Backoff,
    Policy,
    next_delay,
    parse_duration,
    parse_policy,
    should_restart,
    start_on_daemon_start,
)


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("no", Policy("no")),
        ("always", Policy("always")),
        ("unless-stopped", Policy("unless-stopped")),
        ("on-failure", Policy("on-failure")),
        ("on-failure:3", Policy("on-failure", 3)),
    ],
)
def test_parse_policy(text, policy):
    assert parse_policy(text) == policy


@pytest.mark.parametrize("bad", ["sometimes", "always:3", "on-failure:x", ""])
def test_parse_policy_refuses(bad):
    with pytest.raises(ValueError, match=r"restart policy|retry count"):
        parse_policy(bad)


@pytest.mark.parametrize(
    ("text", "secs"),
    [("100ms", 0.1), ("1m30s", 90), ("2h", 7200), ("10s", 10), ("0", 0.0), ("1.5s", 1.5)],
)
def test_parse_duration(text, secs):
    assert parse_duration(text) == pytest.approx(secs)


def test_parse_duration_refuses():
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("10 parsecs")


def test_on_failure_counts_and_ignores_success():
    p = Policy("on-failure", 3)
    assert should_restart(p, 1, stopped_by_user=False, restart_count=0)
    assert should_restart(p, 137, stopped_by_user=False, restart_count=2)  # OOM kill: failure
    assert not should_restart(p, 1, stopped_by_user=False, restart_count=3)
    assert not should_restart(p, 0, stopped_by_user=False, restart_count=0)
    assert should_restart(Policy("on-failure"), 1, stopped_by_user=False, restart_count=10**6)


@pytest.mark.parametrize("name", ["always", "unless-stopped"])
def test_always_restarts_unless_the_user_stopped(name):
    assert should_restart(Policy(name), 0, stopped_by_user=False, restart_count=50)
    assert not should_restart(Policy(name), 0, stopped_by_user=True, restart_count=0)
    assert not should_restart(Policy("no"), 1, stopped_by_user=False, restart_count=0)


def test_daemon_start_rules():
    kw = dict(exit_code=0, restart_count=0, died_while_down=False)
    assert start_on_daemon_start(Policy("always"), stopped_by_user=True, **kw)
    assert not start_on_daemon_start(Policy("unless-stopped"), stopped_by_user=True, **kw)
    assert start_on_daemon_start(Policy("unless-stopped"), stopped_by_user=False, **kw)
    assert not start_on_daemon_start(Policy("on-failure"), stopped_by_user=False, **kw)
    assert start_on_daemon_start(
        Policy("on-failure"),
        stopped_by_user=False,
        exit_code=1,
        restart_count=0,
        died_while_down=True,
    )
    assert not start_on_daemon_start(Policy("no"), stopped_by_user=False, **kw)


def test_backoff_doubles_caps_and_resets():
    b = Backoff()  # Docker's: 100 ms, x2, 1 min, reset after 10 s
    delays, d = [], 0.0
    for _ in range(12):
        d = next_delay(b, d, run_seconds=0.5)
        delays.append(d)
    assert delays[:6] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2])
    assert delays[-1] == 60.0 and max(delays) == 60.0
    assert next_delay(b, 60.0, run_seconds=10.0) == 0.1  # a long enough run resets it
    assert next_delay(b, 60.0, run_seconds=9.99) == 60.0


def test_backoff_settings_are_per_container():
    b = Backoff(initial=0.05, factor=3, maximum=1.0, reset_after=2.0)
    assert [
        round(x, 3)
        for x in (
            next_delay(b, 0, 0),
            next_delay(b, 0.05, 0),
            next_delay(b, 0.45, 0),
            next_delay(b, 0.45, 2.0),
        )
    ] == [0.05, 0.15, 1.0, 0.05]


async def test_backoff_timer_waits_the_computed_delays(autojump_clock):
    """The fleet waits with trio.sleep in a cancel scope; on the autojump clock
    the waits are exactly the computed delays, and a cancel stops one."""
    b = Backoff()
    waited, d = [], 0.0
    for _ in range(5):
        d = next_delay(b, d, run_seconds=0.0)
        start = trio.current_time()
        await trio.sleep(d)
        waited.append(trio.current_time() - start)
    assert waited == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    with trio.CancelScope() as scope:
        scope.cancel()
        await trio.sleep(60)
    assert scope.cancelled_caught
