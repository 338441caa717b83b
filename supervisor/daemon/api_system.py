"""The daemon's requests about itself: ping, info, system df, and the event
stream (replayed from the journal, then live)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import trio

from protocols import api
from protocols.events import FILTER_KEYS, Gap, matches
from supervisor import fstree
from supervisor.daemon import filters
from supervisor.daemon.journal import LiveSubscriber

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Fleet
    from supervisor.daemon.server import Connection


async def ping(conn: Connection, req: api.Ping, inbox) -> None:
    await conn.send(api.Ok())


async def info_(conn: Connection, req: api.Info, inbox) -> None:
    await conn.send(api.InspectResult(data=info(conn.fleet)))


async def df(conn: Connection, req: api.SystemDf, inbox) -> None:
    await conn.send(api.InspectResult(data=await disk_usage(conn.fleet)))


async def events(conn: Connection, req: api.Events, inbox) -> None:
    filters.check_keys(req.filters, FILTER_KEYS)
    j = conn.fleet.journal
    if req.since_seq is not None:
        start = req.since_seq
    elif req.since_nano is not None:
        start = j.seq_at(req.since_nano)
    else:
        start = j.last_seq + 1
    if req.until_nano is not None:  # a bounded replay: read it, then End
        async for item in j.follow(start, req.filters, req.until_nano):
            await _send_batch(conn, item)
        await conn.send(api.End())
        return
    # Unbounded: catch up from the journal, then go live (the journal writes
    # to our socket itself); if the socket fills, catch up again.
    sub = LiveSubscriber(conn.stream.socket.fileno(), req.filters)
    next_seq = start
    try:
        while True:
            while True:
                if next_seq < j.first_seq:
                    await conn.send(
                        Gap(first=next_seq, last=j.first_seq - 1, resume_from=j.first_seq)
                    )
                    next_seq = j.first_seq
                batch = j.read_framed(next_seq)
                if not batch:
                    break
                next_seq = batch[-1][0].seq + 1
                out = [d for ev, d in batch if not req.filters or matches(ev, req.filters)]
                if out:
                    await conn.stream.send_all(b"".join(out))
            # No await since the empty read: nothing can have slipped in.
            went_live = j.go_live(sub, next_seq)
            assert went_live
            await sub.wake.wait()
            if sub.failed:
                return
            if sub.pending:
                await conn.stream.send_all(sub.pending)
            next_seq = sub.next_seq
    finally:
        j.drop_live(sub)


async def _send_batch(conn: Connection, item) -> None:
    if isinstance(item, Gap):
        await conn.send(item)
    else:  # frames encoded once by the journal, one write per batch
        await conn.stream.send_all(b"".join(data for _, data in item))


def info(f: Fleet) -> dict:
    """docker info's facts, under Docker's keys."""
    from supervisor import __version__
    from supervisor.runtime.cgroups import detect

    states = [u.state.status for u in f.units.values()]
    mem = host_memory()
    host = os.uname()
    version = f.runtime.cgroup_version or detect()
    return {
        "Containers": len(states),
        "ContainersRunning": states.count("running") + states.count("restarting"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": sum(s in ("created", "exited", "dead") for s in states),
        "Images": len(f.images.images()),
        "Volumes": len(f.volumes.volumes),
        "Networks": ["none", "host", *f.networks.networks],
        "ServerVersion": __version__,
        "Driver": "overlay2",
        "LoggingDriver": "corral (monitor-written, rotated)",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if version == "v2" else "1",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
        "KernelVersion": host.release,
        "OperatingSystem": _os_name(),
        "OSType": host.sysname.lower(),
        "Architecture": host.machine,
        "NCPU": os.cpu_count() or 0,
        "MemTotal": mem,
        "DockerRootDir": str(f.store.dir.parent),
        "Name": host.nodename,
    }


async def measure_usage(f: Fleet) -> tuple[dict, dict, dict]:
    """What each layer (by directory), container upper (by id) and volume (by
    name) takes on disk: one walk of each, in a worker thread, over what the
    fleet holds when asked. A layer counts its unpacked files and the blob it
    came as (kept, as containerd keeps it, for save and push)."""
    st = f.images
    every = set().union(*(st.layer_dirs(i) for i in st.images()))
    upper_paths = {u.id: u.path / "upper" for u in f.units.values()}
    volume_paths = {n: f.volumes.data(n) for n in f.volumes.volumes}

    def measure() -> tuple[dict, dict, dict]:
        return (
            {d: st.layer_size(d) for d in every},
            {i: fstree.du(p) for i, p in upper_paths.items()},
            {n: fstree.du(p) for n, p in volume_paths.items()},
        )

    return await trio.to_thread.run_sync(measure)


async def disk_usage(f: Fleet) -> dict:
    """docker system df: what images, containers and volumes take on disk
    (layers shared by images counted once), and what a prune would free."""
    st = f.images
    images = st.images()
    active = {i for i in images if f.image_users(i)}
    kept = set().union(*(st.layer_dirs(i) for i in active))
    running = {u.id: u.running for u in f.units.values()}
    used_volumes = {
        m.source for u in f.units.values() for m in u.config.mounts if m.type == "volume"
    }
    sizes, uppers, vsizes = await measure_usage(f)
    return {
        "Images": {
            "Total": len(images),
            "Active": len(active),
            "Size": sum(sizes.values()),
            "Reclaimable": sum(n for d, n in sizes.items() if d not in kept),
        },
        "Containers": {
            "Total": len(uppers),
            "Active": sum(running.get(i, False) for i in uppers),
            "Size": sum(uppers.values()),
            "Reclaimable": sum(n for i, n in uppers.items() if not running.get(i, False)),
        },
        "Volumes": {
            "Total": len(vsizes),
            "Active": len(used_volumes & set(vsizes)),
            "Size": sum(vsizes.values()),
            "Reclaimable": sum(n for v, n in vsizes.items() if v not in used_volumes),
        },
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def host_memory() -> int:
    """The host's memory in bytes (MemTotal)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def net_io(pid: int) -> tuple[int, int]:
    """Bytes received and sent through the interfaces of `pid`'s network
    namespace but lo (Docker's NET I/O); (0, 0) when it cannot be read."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, _, counters = line.partition(":")
                if name.strip() == "lo":
                    continue
                fields = counters.split()
                rx += int(fields[0])
                tx += int(fields[8])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rx, tx


ROUTES = {
    api.Ping: ping,
    api.Info: info_,
    api.SystemDf: df,
    api.Events: events,
}
