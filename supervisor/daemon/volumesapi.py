"""The daemon's volume requests: create, list, inspect, remove, prune."""

from __future__ import annotations

import msgspec

from protocols import api
from supervisor.daemon import filters
from supervisor.daemon.fleet import Conflict, Fleet
from supervisor.errors import NoSuchContainer, SpecError
from supervisor.volumes.store import VolumeError


def volumes_request(f: Fleet, req: msgspec.Struct) -> msgspec.Struct:
    match req:
        case api.VolumeCreate(name=name, labels=labels):
            try:
                meta, new = f.volumes.create(name, labels)
            except VolumeError as e:
                raise SpecError("name", str(e)) from None
            if new:
                f.emit_volume(meta.name, "create", driver="local")
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
            f.volumes.remove(name)
            f.emit_volume(name, "destroy")
            return api.Ok()
        case api.VolumePrune(filters=wanted):
            everything = "true" in wanted.get("all", [])
            removed, size = [], 0
            for v in list_volumes(f, {"dangling": ["true"]}):
                if v.anonymous or everything:
                    size += f.volumes.remove(v.name)
                    f.emit_volume(v.name, "destroy")
                    removed.append(v.name)
            return api.PruneResult(removed=removed, reclaimed_bytes=size)
    raise SpecError("request", f"unexpected {type(req).__name__}")


class NoSuchVolume(NoSuchContainer):
    pass


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
