"""Health checks: a command run inside the container, as exec runs one.

Docker's rules: the first check runs `interval` after the start, then every
`interval`; a check that runs past `timeout` is killed and fails; `retries`
failures in a row make the container unhealthy; failures during
`start_period` do not count (a success then makes it healthy at once). Each
change of state is a `health_status` event. Docker never acts on an unhealthy
container; like Podman's --health-on-failure, Corral can kill, restart or
stop it.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

import structlog
import trio

from supervisor import _native
from supervisor.daemon.store import HealthResult
from supervisor.errors import CorralError

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Container, Fleet

log = structlog.get_logger("corral.health")

OUTPUT_MAX = 4096  # bytes of a check's output kept, as Docker keeps
LOG_KEEP = 5  # results kept


async def check_loop(fleet: Fleet, c: Container, scope: trio.CancelScope) -> None:
    cfg = c.config
    with scope:
        started = trio.current_time()
        while True:
            await trio.sleep(cfg.health_interval)
            if not c.running:
                return
            if c.state.status == "paused":
                continue
            result = await probe(fleet, c)
            _record(
                fleet,
                c,
                result,
                in_start_period=(trio.current_time() - started < cfg.health_start_period),
            )
            st = c.state
            if st.health_status == "unhealthy" and st.failing_streak == cfg.health_retries:
                await _act(fleet, c)  # once, as it turns unhealthy


async def probe(fleet: Fleet, c: Container) -> HealthResult:
    """Run the check once; its exit code and the first 4 KiB of its output."""
    cfg = c.config
    start = time.time_ns()
    try:
        process = fleet.exec_process(c, cfg.health_cmd, [], "", "", False)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _mpid, pidfd, child = fleet.runtime.exec(c.id, process, (devnull, out_w, out_w))
        finally:
            os.close(out_w)
            os.close(devnull)
    except (CorralError, OSError) as e:
        if "out_r" in locals():
            os.close(out_r)
        return HealthResult(
            start_nano=start,
            end_nano=time.time_ns(),
            exit_code=-1,
            output=f"the check could not run: {e}",
        )
    output = bytearray()
    code = -1
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_output, out_r, output)
            timed_out = True
            with trio.move_on_after(cfg.health_timeout):
                await trio.lowlevel.wait_readable(pidfd)
                timed_out = False
            if timed_out:
                _kill(child)
                await trio.lowlevel.wait_readable(pidfd)
            code = _native.reap(pidfd)
            if timed_out:
                output[:] = f"Health check exceeded timeout ({cfg.health_timeout}s)".encode()
                code = -1
    finally:
        os.close(pidfd)
    return HealthResult(
        start_nano=start,
        end_nano=time.time_ns(),
        exit_code=code,
        output=output[:OUTPUT_MAX].decode(errors="replace"),
    )


async def _read_output(fd: int, into: bytearray) -> None:
    async with trio.lowlevel.FdStream(fd) as pipe:
        while data := await pipe.receive_some(1 << 16):
            if len(into) < OUTPUT_MAX:
                into += data[: OUTPUT_MAX - len(into)]


def _kill(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def _record(fleet: Fleet, c: Container, result: HealthResult, *, in_start_period: bool) -> None:
    st = c.state
    st.health_log = [*st.health_log, result][-LOG_KEEP:]
    before = st.health_status
    if result.exit_code == 0:
        st.failing_streak = 0
        st.health_status = "healthy"
    elif not (in_start_period and st.health_status == "starting"):
        st.failing_streak += 1
        if st.failing_streak >= c.config.health_retries:
            st.health_status = "unhealthy"
    fleet.store.save_state(c.id, st)
    if st.health_status != before:
        fleet.emit(c, f"health_status: {st.health_status}")
        log.debug("health.changed", container=c.id[:12], name=c.name, status=st.health_status)


async def _act(fleet: Fleet, c: Container) -> None:
    action = c.config.health_on_failure
    if action == "none" or not c.running:
        return
    log.info("health.acting", container=c.id[:12], name=c.name, action=action)
    if action == "kill":
        fleet.kill(c, signal.SIGKILL, by_user=False)
    elif action in ("stop", "restart"):
        # In the fleet's nursery, not here: the container's exit ends this loop.
        fleet.spawn(fleet.stop_unhealthy if action == "stop" else fleet.restart_unhealthy, c)
