"""Restart policy and backoff arithmetic (pure). The restart path itself, with
its waits, runs in tests/unit/test_supervision.py on a MockClock."""

from __future__ import annotations

import pytest

from protocols.api import ContainerConfig
from supervisor.daemon.restart import (
    Backoff,
    RestartPolicy,
    limit_hit,
    next_delay,
    parse_duration,
    parse_policy,
    policy_of,
    should_restart,
    start_on_daemon_start,
)


def Policy(name: str, retries: int = 0) -> RestartPolicy:
    return RestartPolicy(name=name, max_retries=retries)


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("no", ("no", 0)),
        ("always", ("always", 0)),
        ("unless-stopped", ("unless-stopped", 0)),
        ("on-failure", ("on-failure", 0)),
        ("on-failure:3", ("on-failure", 3)),
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
    assert start_on_daemon_start(Policy("always"), stopped_by_user=True, gave_up=False)
    assert not start_on_daemon_start(Policy("unless-stopped"), stopped_by_user=True, gave_up=False)
    assert start_on_daemon_start(Policy("unless-stopped"), stopped_by_user=False, gave_up=False)
    assert not start_on_daemon_start(Policy("on-failure"), stopped_by_user=False, gave_up=False)
    assert not start_on_daemon_start(Policy("no"), stopped_by_user=False, gave_up=False)
    assert not start_on_daemon_start(Policy("always"), stopped_by_user=False, gave_up=True)


def test_policy_is_parsed_once_with_the_daemons_defaults():
    defaults = Backoff(initial=0.5, maximum=30.0, reset_after=5.0)
    cfg = ContainerConfig(restart="on-failure:4", restart_delay=0.2, restart_burst=3)
    p = policy_of(cfg, defaults)
    assert (p.name, p.max_retries, p.burst, p.window) == ("on-failure", 4, 3, 10.0)
    assert p.backoff == Backoff(initial=0.2, maximum=30.0, reset_after=5.0)
    with pytest.raises(ValueError, match="restart policy"):
        policy_of(ContainerConfig(restart="sometimes"), defaults)
    with pytest.raises(ValueError, match="restart-burst"):
        policy_of(ContainerConfig(restart="always", restart_burst=-1), defaults)


def test_start_limit_counts_exits_within_the_window():
    p = RestartPolicy(name="always", burst=3, window=10.0)
    deaths = [0.0, 4.0]
    assert not limit_hit(p, deaths, 5.0)
    deaths.append(9.0)
    assert limit_hit(p, deaths, 9.0)  # three within 10 s
    deaths = [0.0, 4.0, 12.0]
    assert not limit_hit(p, deaths, 12.0) and deaths == [4.0, 12.0]  # the first aged out
    assert not limit_hit(RestartPolicy(name="always"), [1.0] * 50, 1.0)  # burst 0: no limit


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
