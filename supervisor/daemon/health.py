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

import msgspec
import structlog
import trio

from supervisor.daemon.lifecycle import Status
from supervisor.daemon.store import HealthResult
from supervisor.errors import CorralError
from supervisor.runtime.processes import pidfd_of

if TYPE_CHECKING:
    from supervisor.daemon.unit import Unit

log = structlog.get_logger("corral.health")

OUTPUT_MAX = 4096  # bytes of a check's output kept, as Docker keeps
LOG_KEEP = 5  # results kept


class HealthCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A container's health check, as its configuration asks (parsed once)."""

    cmd: list[str]
    interval: float
    timeout: float
    retries: int
    start_period: float
    on_failure: str = "none"  # none | kill | restart | stop


def check_of(cfg) -> HealthCheck | None:
    if not cfg.health_cmd:
        return None
    return HealthCheck(
        cmd=list(cfg.health_cmd),
        interval=cfg.health_interval,
        timeout=cfg.health_timeout,
        retries=cfg.health_retries,
        start_period=cfg.health_start_period,
        on_failure=cfg.health_on_failure,
    )


async def check_loop(u: Unit) -> None:
    """A run's checks, in the run's own nursery: its end ends them."""
    hc = u.health_check
    if hc is None:
        return
    started = trio.current_time()
    while True:
        await trio.sleep(hc.interval)
        if not u.running:
            return
        if u.state.status == Status.PAUSED:
            continue
        result = await u.launcher.probe(u, hc.cmd, hc.timeout)
        _record(u, hc, result, in_start_period=(trio.current_time() - started < hc.start_period))
        st = u.state
        if st.health_status == "unhealthy" and st.failing_streak == hc.retries:
            _act(u, hc)  # once, as it turns unhealthy


async def probe(runtime, container_id: str, process, timeout: float) -> HealthResult:
    """Run the check once (`process` in the container, as exec runs one); its
    exit code and the first 4 KiB of its output."""
    from supervisor import _native

    start = time.time_ns()
    try:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _mpid, pidfd, child = await trio.to_thread.run_sync(
                runtime.exec, container_id, process, (devnull, out_w, out_w)
            )  # the monitor's report is a wait: not on the event loop
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
            with trio.move_on_after(timeout):
                await trio.lowlevel.wait_readable(pidfd)
                timed_out = False
            if timed_out:
                _kill(child)
                await trio.lowlevel.wait_readable(pidfd)
            code = _native.reap(pidfd)
            if timed_out:
                output[:] = f"Health check exceeded timeout ({timeout}s)".encode()
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
    fd = pidfd_of(pid)
    if fd is None:
        return
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def _record(u: Unit, hc: HealthCheck, result: HealthResult, *, in_start_period: bool) -> None:
    st = u.state
    st.health_log = [*st.health_log, result][-LOG_KEEP:]
    before = st.health_status
    if result.exit_code == 0:
        st.failing_streak = 0
        st.health_status = "healthy"
    elif not (in_start_period and st.health_status == "starting"):
        st.failing_streak += 1
        if st.failing_streak >= hc.retries:
            st.health_status = "unhealthy"
    u.lifecycle.save(u)
    if st.health_status != before:
        u.lifecycle.note(u, f"health_status: {st.health_status}")
        log.debug("health.changed", container=u.id[:12], name=u.name, status=st.health_status)


def _act(u: Unit, hc: HealthCheck) -> None:
    if hc.on_failure == "none" or not u.running:
        return
    log.info("health.acting", container=u.id[:12], name=u.name, action=hc.on_failure)
    if hc.on_failure == "kill":
        u.kill(signal.SIGKILL, by_user=False)
    else:
        # In the unit's nursery, not this run's: the stop ends this run.
        u.spawn(u.stop_unhealthy if hc.on_failure == "stop" else u.restart_unhealthy)
