"""Restart policies: what a container's exit leads to, and the wait before it.

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

What Docker lacks, from systemd (StartLimitBurst, StartLimitIntervalSec) and
s6 (a service that keeps dying is "permanently failed"): with `--restart-burst
N` (and `--restart-window`, 10 s), a container that exits N times within the
window is given up on: it stays exited, `failed` is emitted and inspect says so,
instead of burning CPU forever. Off by default, as Docker behaves.

The policy is parsed once (policy_of, at create, update and daemon start) into
a RestartPolicy; the rest is pure arithmetic over it, and the one async path,
after_exit -> _wait_and_start, runs in the container's own nursery (unit.py).
Durations are measured on trio's clock, so tests drive whole timelines on a
MockClock.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec
import structlog
import trio

from supervisor.daemon.lifecycle import On, Status

if TYPE_CHECKING:
    from supervisor.daemon.unit import Unit

log = structlog.get_logger("corral.restart")

POLICIES = ("no", "on-failure", "always", "unless-stopped")


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    initial: float = 0.1  # seconds
    factor: float = 2.0
    maximum: float = 60.0
    reset_after: float = 10.0


class RestartPolicy(msgspec.Struct, frozen=True, kw_only=True):
    name: str = "no"
    max_retries: int = 0  # on-failure only; 0: unlimited
    backoff: Backoff = Backoff()
    burst: int = 0  # the start limit: this many exits within `window` gives up; 0: never
    window: float = 10.0  # seconds


def parse_policy(text: str) -> tuple[str, int]:
    """'no' | 'always' | 'unless-stopped' | 'on-failure[:N]' -> (name, N);
    ValueError names the problem."""
    name, _, count = text.partition(":")
    if name not in POLICIES:
        raise ValueError(f"invalid restart policy {text!r}: one of {', '.join(POLICIES)}")
    if count:
        if name != "on-failure":
            raise ValueError(f"maximum retry count cannot be used with restart policy {name!r}")
        if not count.isdigit():
            raise ValueError(f"invalid maximum retry count {count!r}")
        return name, int(count)
    return name, 0


def policy_of(cfg, defaults: Backoff) -> RestartPolicy:
    """The container's policy, parsed once from what it was asked with (the one
    place ContainerConfig.restart is read); the daemon's backoff where the
    container names none. ValueError names what is wrong."""
    name, retries = parse_policy(cfg.restart)
    if cfg.restart_burst < 0 or cfg.restart_window <= 0:
        raise ValueError("--restart-burst is a count (0: no limit), --restart-window positive")

    def pick(own: float | None, default: float) -> float:
        return default if own is None else own

    return RestartPolicy(
        name=name,
        max_retries=retries,
        backoff=Backoff(
            initial=pick(cfg.restart_delay, defaults.initial),
            factor=defaults.factor,
            maximum=pick(cfg.restart_max_delay, defaults.maximum),
            reset_after=pick(cfg.restart_reset_after, defaults.reset_after),
        ),
        burst=cfg.restart_burst,
        window=cfg.restart_window,
    )


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
    policy: RestartPolicy, exit_code: int, *, stopped_by_user: bool, restart_count: int
) -> bool:
    """After an exit while the daemon runs: does the policy restart it?"""
    if stopped_by_user or policy.name == "no":
        return False
    if policy.name == "on-failure":
        if exit_code == 0:
            return False
        return policy.max_retries == 0 or restart_count < policy.max_retries
    return True  # always, unless-stopped


def start_on_daemon_start(policy: RestartPolicy, *, stopped_by_user: bool, gave_up: bool) -> bool:
    """When the daemon starts again: which stopped containers does it start?
    always: every one; unless-stopped: those the user did not stop; none that
    the start limit gave up on."""
    if gave_up:
        return False
    if policy.name == "always":
        return True
    return policy.name == "unless-stopped" and not stopped_by_user


def next_delay(backoff: Backoff, previous: float, run_seconds: float) -> float:
    """The wait before the next restart. `previous` is the last wait (0: none yet);
    a run of `reset_after` seconds or more starts the series again."""
    if previous <= 0 or run_seconds >= backoff.reset_after:
        return backoff.initial
    return min(previous * backoff.factor, backoff.maximum)


def limit_hit(policy: RestartPolicy, deaths: list[float], now: float) -> bool:
    """The start limit: `deaths` (trio times of its exits, this one included)
    are pruned to the window; are there `burst` of them?"""
    deaths[:] = [t for t in deaths if now - t < policy.window]
    return policy.burst > 0 and len(deaths) >= policy.burst


# -- the async path, in the container's own nursery ------------------------------------


def after_exit(u: Unit) -> None:
    """The policy's answer to an exit (recorded, the runtime's leftovers gone):
    a restart after its backoff, giving up (the start limit), an auto-removal
    (--rm), or nothing."""
    st, policy = u.state, u.policy
    now = trio.current_time()
    u.deaths.append(now)
    restart = should_restart(
        policy, st.exit_code, stopped_by_user=st.stopped_by_user, restart_count=st.restart_count
    )
    if restart and limit_hit(policy, u.deaths, now):
        st.gave_up = True
        st.error = (
            f"restarted too often: {len(u.deaths)} exits within {policy.window:g}s "
            f"(--restart-burst {policy.burst}); the restart policy gave up"
        )
        u.lifecycle.transition(u, On.GIVE_UP, exits=str(len(u.deaths)))
        log.warning("restart.gave_up", container=u.id[:12], name=u.name, exits=len(u.deaths))
        return
    if restart:
        run_seconds = max(0.0, now - u.run_started) if u.run_started is not None else 0.0
        delay = next_delay(policy.backoff, st.restart_delay, run_seconds)
        # The delay counts from the exit itself, not from when it was heard of.
        since_exit = max(0.0, (u.clock_ns() - st.finished_nano) / 1e9)
        schedule(u, delay, wait=max(0.0, delay - since_exit))
    elif u.config.auto_remove:
        u.spawn(u.auto_remove)


def schedule(u: Unit, delay: float, wait: float) -> None:
    """`restarting` for `delay` seconds (or what is left of it, `wait`), in a
    cancel scope of its own: a user's stop, kill or rm cancels it."""
    st = u.state
    st.restart_delay = delay
    st.next_restart_nano = u.clock_ns() + int(wait * 1e9)
    u.lifecycle.transition(u, On.WAIT)
    scope = trio.CancelScope()
    u.restart_scope = scope
    u.spawn(_wait_and_start, u, delay, wait, scope)


def cancel(u: Unit) -> bool:
    """A user's stop, kill or rm: a waiting restart does not happen."""
    if u.state.status != Status.RESTARTING:
        return False
    if u.restart_scope is not None:
        u.restart_scope.cancel()
        u.restart_scope = None
    u.state.stopped_by_user = True
    u.state.next_restart_nano = 0
    u.lifecycle.transition(u, On.CANCEL)
    return True


async def _wait_and_start(u: Unit, delay: float, wait: float, scope: trio.CancelScope) -> None:
    with scope:
        # Timed waits run long here in proportion to their length (about 0.3% on
        # the project's VM: 10 ms on 3.2 s), and the first work after an idle
        # second runs slow: wake a little early, prepare the start (which also
        # wakes the CPU and its caches), then sleep the short rest.
        deadline = trio.current_time() + wait
        await trio.sleep_until(deadline - min(wait * 0.01 + 0.01, 0.05))
        prepared = await u.prepare_quietly() if u.state.status == Status.RESTARTING else None
        await trio.sleep_until(deadline)
        # One policy start at a time: 200 containers whose backoffs end together
        # would otherwise hold the loop for a second.
        async with u.restart_gate, u.lock:
            if u.state.status != Status.RESTARTING or u.removed:
                return
            u.restart_scope = None
            u.state.restart_count += 1
            u.lifecycle.note(u, "restart", attempt=str(u.state.restart_count), delay=f"{delay:.3f}")
            await u.start_for("restart policy", prepared)
