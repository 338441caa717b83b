"""The daemon's container requests that answer once: create, start, stop,
restart, kill, rm, pause, unpause, ps, prune, rename, update, top, diff,
inspect, wait, resize. (Streams are api_streams.py.) Each asks the container's
unit; none changes a status or emits an event itself."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec
import trio

from protocols import api
from supervisor import checks
from supervisor.daemon import contents, filters, ocispec, restart
from supervisor.daemon import inspect as shapes
from supervisor.daemon.lifecycle import Status
from supervisor.errors import InvalidState, SpecError
from supervisor.runtime.signals import parse_signal

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Fleet
    from supervisor.daemon.server import Connection


async def create(conn: Connection, req: api.Create, inbox) -> None:
    u = await conn.fleet.create(req.config)
    await conn.send(api.Created(id=u.id, name=u.name))


async def _locked(conn: Connection, ref: str, act) -> None:
    """`act(unit)` with the unit's lock held (one lifecycle change at a time)."""
    u = conn.fleet.get(ref)
    async with u.lock:
        await act(u)
    await conn.send(api.Ok())


async def start(conn: Connection, req: api.Start, inbox) -> None:
    await _locked(conn, req.id, lambda u: u.start())


async def stop(conn: Connection, req: api.Stop, inbox) -> None:
    u = conn.fleet.get(req.id)
    if req.signal:
        parse_signal(req.signal)  # a bad one refused before anything stops
    async with u.lock:
        await u.stop(req.timeout, req.signal)
    await conn.send(api.Ok())


async def restart_(conn: Connection, req: api.Restart, inbox) -> None:
    u = conn.fleet.get(req.id)
    if req.signal:
        parse_signal(req.signal)
    async with u.lock:
        await u.restart(req.timeout, req.signal)
    await conn.send(api.Ok())


async def kill(conn: Connection, req: api.Kill, inbox) -> None:
    conn.fleet.get(req.id).kill(parse_signal(req.signal))
    await conn.send(api.Ok())


async def remove(conn: Connection, req: api.Remove, inbox) -> None:
    await _locked(conn, req.id, lambda u: u.remove(force=req.force, volumes=req.volumes))


async def pause(conn: Connection, req: api.Pause, inbox) -> None:
    await _locked(conn, req.id, lambda u: u.pause())


async def unpause(conn: Connection, req: api.Unpause, inbox) -> None:
    await _locked(conn, req.id, lambda u: u.unpause())


async def resize(conn: Connection, req: api.Resize, inbox) -> None:
    conn.fleet.execs.resize(conn.fleet.get(req.id), req.height, req.width, req.exec_id)
    await conn.send(api.Ok())


async def list_(conn: Connection, req: api.List, inbox) -> None:
    await conn.send(api.ContainerList(containers=await list_containers(conn.fleet, req)))


async def list_containers(f: Fleet, req: api.List) -> list[api.ContainerSummary]:
    filters.check_keys(req.filters, filters.CONTAINER_KEYS)
    listed = []
    # before=/since= name containers: their creation times bound the list.
    bounds = {
        k: [f.get(v).rec.created_nano for v in req.filters.get(k, [])] for k in ("before", "since")
    }
    for u in sorted(f.units.values(), key=lambda u: -u.rec.created_nano):
        every = req.all or {"status", "exited"} & set(req.filters)
        if not every and not u.running:
            continue
        if req.filters and not filters.container(u, req.filters, bounds):
            continue
        listed.append(u)
    if not req.size:
        return [shapes.summary(u) for u in listed]
    # Sizes walk trees: in a worker thread, over paths taken now.
    paths = [shapes.size_paths(u, f) for u in listed]
    sizes = await trio.to_thread.run_sync(shapes.measure, paths)
    return [shapes.summary(u, s) for u, s in zip(listed, sizes, strict=True)]


async def prune(conn: Connection, req: api.ContainerPrune, inbox) -> None:
    gone = []
    for u in list(conn.fleet.units.values()):
        async with u.lock:  # not one that a start holds, half-made
            stopped = u.state.status in (Status.CREATED, Status.EXITED, Status.DEAD)
            if not u.removed and stopped and not u.running:
                await u.remove()
                gone.append(u.id)
    await conn.send(api.ContainersRemoved(ids=gone))


async def rename(conn: Connection, req: api.Rename, inbox) -> None:
    conn.fleet.rename(conn.fleet.get(req.id), req.name)
    await conn.send(api.Ok())


_UPDATABLE = (
    "memory",
    "memory_swap",
    "memory_reservation",
    "cpus",
    "cpu_shares",
    "cpuset_cpus",
    "cpuset_mems",
    "pids_limit",
    "restart",
)


async def update(conn: Connection, req: api.Update, inbox) -> None:
    """docker update: the new limits stored with the container and, while it
    runs, written to its cgroup; an `update` event."""
    from supervisor.runtime import plan

    f = conn.fleet
    u = f.get(req.id)
    cfg = u.config
    changes = {k: v for k in _UPDATABLE if (v := getattr(req, k)) is not None and v != ""}
    if not changes:
        raise SpecError("update", "nothing to update: give at least one flag")
    if cfg.auto_remove and changes.get("restart", "no") != "no":
        raise SpecError("--restart", "a --rm container cannot get a restart policy")
    memory = changes.get("memory", cfg.memory)
    swap = changes.get("memory_swap", cfg.memory_swap)
    only_memory = "memory" in changes and "memory_swap" not in changes
    if only_memory and swap not in (None, -1) and memory and swap < memory:
        raise SpecError(
            "--memory",
            "the memory limit must stay below the memory+swap one "
            f"({swap} bytes): give --memory-swap too",
        )
    new = msgspec.structs.replace(cfg, **changes)
    try:
        checks.container(new, os.cpu_count())
        policy = restart.policy_of(new, f.backoff)
    except ValueError as e:
        raise SpecError("update", str(e)) from None
    ocispec.check_modes(new)
    async with u.lock:
        if u.running:
            limits = plan.limits_from_spec(ocispec.resources(new))
            try:
                f.runtime.update(u.id, limits)
            except InvalidState:
                pass  # it exited meanwhile: the stored config is what counts
        u.reconfigure(new, policy)
        u.lifecycle.reconfigured(u, "update")
    await conn.send(api.Ok())


async def top(conn: Connection, req: api.Top, inbox) -> None:
    titles, rows = contents.top(conn.fleet.runtime, conn.fleet.get(req.id))
    await conn.send(api.TopResult(titles=titles, processes=rows))


async def diff(conn: Connection, req: api.Diff, inbox) -> None:
    f = conn.fleet
    u = f.get(req.id)
    changes = await trio.to_thread.run_sync(
        contents.diff, u, f.preparer.lower_dirs(u.config), limiter=f.tree_work
    )
    await conn.send(api.DiffResult(changes=changes))


async def inspect(conn: Connection, req: api.Inspect, inbox) -> None:
    u = conn.fleet.get(req.id)
    await conn.send(api.InspectResult(data=shapes.inspect(u, conn.fleet.networks.networks)))


async def wait(conn: Connection, req: api.Wait, inbox) -> None:
    u = conn.fleet.get(req.id)
    await u.exited.wait()
    st = u.state
    await conn.send(api.Exited(status_code=st.exit_code, oom_killed=st.oom_killed, error=st.error))


ROUTES = {
    api.Create: create,
    api.Start: start,
    api.Stop: stop,
    api.Restart: restart_,
    api.Kill: kill,
    api.Remove: remove,
    api.Pause: pause,
    api.Unpause: unpause,
    api.Resize: resize,
    api.List: list_,
    api.ContainerPrune: prune,
    api.Rename: rename,
    api.Update: update,
    api.Top: top,
    api.Diff: diff,
    api.Inspect: inspect,
    api.Wait: wait,
}
