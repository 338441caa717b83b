"""The daemon's container requests that stream: logs, attach, exec, stats,
cp (both ways) and export. Each runs in the connection's own task, and ends
when its client goes; the container's unit is untouched by that."""

from __future__ import annotations

import math
import os
import tempfile
import time
from typing import TYPE_CHECKING

import trio

from protocols import api
from supervisor import _native
from supervisor.daemon import copy as copying
from supervisor.daemon import logs
from supervisor.daemon.api_system import host_memory, net_io
from supervisor.errors import Conflict, CorralError

if TYPE_CHECKING:
    from supervisor.daemon.server import Connection
    from supervisor.daemon.unit import Unit
    from supervisor.runtime.cgroups import Stats


async def logs_(conn: Connection, req: api.Logs, inbox) -> None:
    u = conn.fleet.get(req.id)
    upto = logs.end_offset(u.log_path)
    until = req.until_nano
    async for batch in logs.read_existing(u.log_path, req.since_nano, req.tail, upto, until):
        await conn.send_many(batch)
    if req.follow and (until is None or until > time.time_ns()):
        # With --until in the future, following ends then (Docker's -f --until).
        deadline = (
            math.inf if until is None else trio.current_time() + (until - time.time_ns()) / 1e9
        )
        with trio.move_on_at(deadline):
            async for rec in logs.follow(u.log_path, offset=upto, exited=lambda: u.exited):
                if until is not None and rec.time_nano > until:
                    break
                await conn.send(rec)
    await conn.send(api.End())


async def attach(conn: Connection, req: api.Attach, inbox) -> None:
    u = conn.fleet.get(req.id)
    if not req.start and not u.running:
        raise Conflict(f"cannot attach to container {u.id[:12]}: it is not running")
    # Where the log ends before the start: everything after is this run's.
    offset = logs.end_offset(u.log_path)
    if req.start:
        async with u.lock:
            await u.start(console=(req.height, req.width))
    elif req.height and req.width and u.config.tty and u.running:
        try:
            conn.fleet.execs.resize(u, req.height, req.width)
        except CorralError:
            pass  # the size is a nicety: the output still flows
    async with trio.open_nursery() as nursery:
        if req.stdin:
            nursery.start_soon(pump_stdin, conn, u, inbox)
        async for rec in logs.follow(u.log_path, offset=offset, exited=lambda: u.exited):
            await conn.send(rec)
        await u.exited.wait()
        nursery.cancel_scope.cancel()
    st = u.state
    await conn.send(api.Exited(status_code=st.exit_code, oom_killed=st.oom_killed, error=st.error))


async def pump_stdin(conn: Connection, u: Unit, inbox: trio.MemoryReceiveChannel) -> None:
    fd = os.dup(u.stdin_w) if u.stdin_w is not None else None
    if fd is None:
        return
    pipe = trio.lowlevel.FdStream(fd)
    # Each attached client writes through its own descriptor: a close by any of
    # them (close_stdin) cancels them all, so that none keeps its stdin open.
    with trio.CancelScope() as scope:
        u.stdin_pumps.add(scope)
        try:
            async with pipe:
                async for msg in inbox:
                    if isinstance(msg, api.StdinData):
                        try:
                            await pipe.send_all(msg.data)
                        except trio.BrokenResourceError:
                            return
                    elif isinstance(msg, api.StdinClose):
                        conn.fleet.execs.close_stdin(u)
                        return
        finally:
            u.stdin_pumps.discard(scope)


async def exec_(conn: Connection, req: api.Exec, inbox) -> None:
    f = conn.fleet
    u = f.get(req.id)
    process = f.execs.process(
        u, req.cmd, req.env, req.workdir, req.user, req.tty, (req.height, req.width)
    )
    if req.detach:
        await conn.send(api.ExecStarted(exec_id=await f.execs.detached(u, process)))
        return
    started = await f.execs.attached(u, process)
    await conn.send(api.ExecStarted(exec_id=started.exec_id))
    stdin = trio.lowlevel.FdStream(started.stdin)
    if not req.stdin:
        await stdin.aclose()
    code = -1
    try:
        async with trio.open_nursery() as nursery:
            if req.stdin:
                nursery.start_soon(_exec_stdin, stdin, inbox)
            # Two pumps, one connection: one write at a time (two concurrent
            # send_all on a trio stream raise BusyResourceError).
            writing = trio.Lock()
            async with trio.open_nursery() as readers:
                readers.start_soon(_pump_out, conn, started.stdout, "stdout", writing)
                readers.start_soon(_pump_out, conn, started.stderr, "stderr", writing)
            await trio.lowlevel.wait_readable(started.pidfd)
            code = _native.reap(started.pidfd)
            nursery.cancel_scope.cancel()
    finally:
        os.close(started.pidfd)
        await stdin.aclose()
        f.execs.ended(u, started, code)
    await conn.send(api.Exited(status_code=code))


async def _exec_stdin(stdin: trio.lowlevel.FdStream, inbox) -> None:
    async for msg in inbox:
        if isinstance(msg, api.StdinData):
            try:
                await stdin.send_all(msg.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
        elif isinstance(msg, api.StdinClose):
            await stdin.aclose()
            return


async def _pump_out(conn: Connection, fd: int, stream: str, writing: trio.Lock) -> None:
    async with trio.lowlevel.FdStream(fd) as pipe:
        while data := await pipe.receive_some(1 << 16):
            async with writing:
                await conn.send(api.Output(stream=stream, data=data, time_nano=time.time_ns()))


async def stats(conn: Connection, req: api.Stats, inbox) -> None:
    """Samples each second; CPU % needs two readings, so the first sample comes
    after half a second (Docker's stats waits for a second reading too). The
    containers named, or every running one (-a: every one); one that is not
    running gets a row of zeros, as Docker's does."""
    f = conn.fleet
    memory = host_memory()
    prev: dict[str, tuple[int, int]] = {}  # id -> (time, CPU ns) of its last reading
    first = True
    while True:
        if req.ids:
            targets = [f.get(i) for i in req.ids]
        else:
            targets = [u for u in f.units.values() if req.all or u.running]
        readings: list[tuple[Unit, int, Stats | None]] = []
        for u in targets:
            s = None
            if u.running:
                try:
                    s = f.runtime.stats(u.id)
                except (CorralError, OSError):
                    pass  # it exited meanwhile: a row of zeros
            readings.append((u, time.time_ns(), s))
        if first and any(s for _, _, s in readings):
            first = False
            prev = {u.id: (now, s.cpu_usage_ns) for u, now, s in readings if s}
            await trio.sleep(0.5)
            continue
        first = False
        await conn.send_many([_sample(u, now, s, prev, memory) for u, now, s in readings])
        if not req.stream:
            break
        await trio.sleep(1)
    await conn.send(api.End())


def _sample(u: Unit, now: int, s: Stats | None, prev: dict, memory: int) -> api.StatsSample:
    if s is None:
        prev.pop(u.id, None)
        return api.StatsSample(
            id=u.id, name=u.name, time_nano=now, cpu_usage_ns=0, memory_usage=0,
            memory_limit=0, pids=0,
        )  # fmt: skip
    then, cpu = prev.get(u.id, (now, s.cpu_usage_ns))
    if s.cpu_usage_ns < cpu:  # restarted since: a new cgroup counts from zero
        then, cpu = now, s.cpu_usage_ns
    prev[u.id] = (now, s.cpu_usage_ns)
    limit = s.memory_limit or memory
    rx, tx = net_io(u.state.pid)
    return api.StatsSample(
        id=u.id,
        name=u.name,
        time_nano=now,
        cpu_usage_ns=s.cpu_usage_ns,
        memory_usage=s.memory_usage,
        memory_limit=limit,
        pids=s.pids,
        cpu_percent=100 * (s.cpu_usage_ns - cpu) / (now - then) if now > then else 0.0,
        memory_percent=100 * s.memory_usage / limit if limit else 0.0,
        net_rx=rx,
        net_tx=tx,
        block_read=s.block_read,
        block_written=s.block_written,
    )


async def copy_from(conn: Connection, req: api.CopyFrom, inbox) -> None:
    await _archive(conn, conn.fleet.get(req.id), req.path, one_fs=False)


async def export(conn: Connection, req: api.Export, inbox) -> None:
    await _archive(conn, conn.fleet.get(req.id), "/", one_fs=True)


async def _archive(conn: Connection, u: Unit, path: str, *, one_fs: bool) -> None:
    """The tar is made in a worker thread, spooled, then sent. A stopped
    container's root is mounted meanwhile: the unit's lock keeps a start out."""
    f = conn.fleet

    def make() -> object:
        with f.container_root(u) as root:
            return copying.archive(root, path, one_fs=one_fs)

    async with u.lock:
        tar = await trio.to_thread.run_sync(make, limiter=f.tree_work)
    with tar:  # type: ignore[attr-defined]
        await conn.send_archive(tar)


async def copy_to(conn: Connection, req: api.CopyTo, inbox) -> None:
    f = conn.fleet
    u = f.get(req.id)
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
        await conn.receive_into(inbox, spool)
        spool.seek(0)

        def unpack() -> None:
            with f.container_root(u) as root:
                copying.extract(root, req.path, spool)

        async with u.lock:
            await trio.to_thread.run_sync(unpack, limiter=f.tree_work)
    await conn.send(api.Ok())


ROUTES = {
    api.Logs: logs_,
    api.Attach: attach,
    api.Exec: exec_,
    api.Stats: stats,
    api.CopyFrom: copy_from,
    api.Export: export,
    api.CopyTo: copy_to,
}
