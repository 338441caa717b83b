"""Restart policies and their backoff, as pure functions over plain data.

Docker's meanings:
- `no`: never restart.
- `on-failure[:N]`: restart after a non-zero exit (an OOM kill is one), at most
  N times (no N: without limit).
- `always`: restart whatever the exit; also when the daemon starts again, even
  after the user stopped it.
- `unless-stopped`: like always, except after the user stopped it.
A stop, kill or rm by the user never triggers a restart.

Backoff (Docker's defaults, each tunable): the first restart waits `initial`
(100 ms), each next one `factor` (2) times longer, at most `maximum` (1 min);
a run that lasted `reset_after` (10 s) or more starts the series again.
"""

from __future__ import annotations

import re

import msgspec

POLICIES = ("no", "on-failure", "always", "unless-stopped")


class Policy(msgspec.Struct, frozen=True):
    name: str = "no"
    max_retries: int = 0  # on-failure only; 0: unlimited


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    initial: float = 0.1  # seconds
    factor: float = 2.0
    maximum: float = 60.0
    reset_after: float = 10.0


def parse_policy(text: str) -> Policy:
    """'no' | 'always' | 'unless-stopped' | 'on-failure[:N]'; ValueError names the problem."""
    name, _, count = text.partition(":")
    if name not in POLICIES:
        raise ValueError(f"invalid restart policy {text!r}: one of {', '.join(POLICIES)}")
    if count:
        if name != "on-failure":
            raise ValueError(f"maximum retry count cannot be used with restart policy {name!r}")
        if not count.isdigit():
            raise ValueError(f"invalid maximum retry count {count!r}")
        return Policy(name, int(count))
    return Policy(name)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's durations, as Docker's flags take them: 100ms, 1m30s, 2h; seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        raise ValueError(f"invalid duration {text!r} (examples: 100ms, 30s, 1m30s)")
    return sum(float(n) * _UNIT[u] for n, u in parts)


def should_restart(
    policy: Policy, exit_code: int, *, stopped_by_user: bool, restart_count: int
) -> bool:
    """After an exit while the daemon runs: does the policy restart it?"""
    if stopped_by_user or policy.name == "no":
        return False
    if policy.name == "on-failure":
        if exit_code == 0:
            return False
        return policy.max_retries == 0 or restart_count < policy.max_retries
    return True  # always, unless-stopped


def start_on_daemon_start(
    policy: Policy,
    *,
    stopped_by_user: bool,
    exit_code: int,
    restart_count: int,
    died_while_down: bool,
) -> bool:
    """When the daemon starts again: which stopped containers does it start?

    always: every one. unless-stopped: those the user did not stop.
    on-failure: those that failed while the daemon was down (per its count)."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not stopped_by_user
    if policy.name == "on-failure" and died_while_down:
        return should_restart(
            policy, exit_code, stopped_by_user=stopped_by_user, restart_count=restart_count
        )
    return False


def next_delay(backoff: Backoff, previous: float, run_seconds: float) -> float:
    """The wait before the next restart. `previous` is the last wait (0: none yet);
    a run of `reset_after` seconds or more starts the series again."""
    if previous <= 0 or run_seconds >= backoff.reset_after:
        return backoff.initial
    return min(previous * backoff.factor, backoff.maximum)
