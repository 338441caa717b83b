"""The daemon's volume requests: create, list, inspect, remove, prune."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from protocols import api
from supervisor.daemon import filters
from supervisor.errors import Conflict, NoSuchVolume, SpecError, VolumeError


def volumes_request(f: Fleet, req: msgspec.Struct) -> msgspec.Struct:
    match req:
        case api.VolumeCreate(name=name, labels=labels):
            try:
                meta, new = f.volumes.create(name, labels)
            except VolumeError as e:
                raise SpecError("name", str(e)) from None
            if new:
                f.lifecycle.emit_object(
                    "volume", "create", meta.name, meta.name, {"driver": "local"}
                )
            return api.VolumeResult(volume=volume_info(f, meta.name))
        case api.VolumeList(filters=wanted):
            return api.VolumeListResult(volumes=list_volumes(f, wanted))
        case api.VolumeInspect(name=name):
            return api.VolumeResult(volume=volume_info(f, name))
        case api.VolumeRemove(name=name, force=force):
            volume_info(f, name)  # NoSuchVolume if absent
            users = f.volume_users(name)
            if users and not force:
                raise Conflict(
                    f"volume {name} is in use by container(s) "
                    f"{', '.join(u[:12] for u in users)}: remove them, or use force"
                )
            f.volumes.remove(name)  # (volume rm: a user's volume, removed at their word)
            f.lifecycle.emit_object("volume", "destroy", name, name)
            return api.Ok()
        case api.VolumePrune(filters=wanted):
            everything = "true" in wanted.get("all", [])
            removed, size = [], 0
            for v in list_volumes(f, {"dangling": ["true"]}):
                if v.anonymous or everything:
                    size += f.volumes.remove(v.name)
                    f.lifecycle.emit_object("volume", "destroy", v.name, v.name)
                    removed.append(v.name)
            return api.PruneResult(removed=removed, reclaimed_bytes=size)
    raise SpecError("request", f"unexpected {type(req).__name__}")


def volume_info(f: Fleet, name: str) -> api.Volume:
    meta = f.volumes.volumes.get(name)
    if meta is None:
        raise NoSuchVolume(name)
    return api.Volume(
        name=name,
        mountpoint=str(f.volumes.data(name)),
        created_nano=meta.created_nano,
        labels=dict(meta.labels),
        anonymous=meta.anonymous,
        in_use_by=f.volume_users(name),
    )


def list_volumes(f: Fleet, wanted: dict[str, list[str]]) -> list[api.Volume]:
    filters.check_keys(wanted, filters.VOLUME_KEYS)
    infos = (volume_info(f, name) for name in sorted(f.volumes.volumes))
    return [v for v in infos if filters.volume(v, wanted)]


if TYPE_CHECKING:
    from supervisor.daemon.fleet import Fleet
    from supervisor.daemon.server import Connection


async def request(conn: Connection, req: msgspec.Struct, inbox) -> None:
    await conn.send(volumes_request(conn.fleet, req))


ROUTES = {
    t: request
    for t in (
        api.VolumeCreate,
        api.VolumeList,
        api.VolumeInspect,
        api.VolumeRemove,
        api.VolumePrune,
    )
}
