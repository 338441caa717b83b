"""Named volumes on disk: ROOT/volumes/NAME/{meta.json,_data/}.

meta.json is replaced atomically and fsynced; a volume exists once its
meta.json does (a crash between the mkdir and the write leaves a directory
that load() reports and removes). Which containers use a volume is not
stored here: it is derived from the containers' configurations, so it can
never disagree with them.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import msgspec
import structlog

from supervisor import _native, fstree
from supervisor.errors import VolumeError
from supervisor.mounts import valid_volume_name
from supervisor.runtime.state import atomic_write

log = structlog.get_logger("corral.volumes")


class VolumeMeta(msgspec.Struct, kw_only=True):
    name: str
    created_nano: int
    labels: dict[str, str] = {}
    anonymous: bool = False
    filled: bool = False  # already given the image's content once (or had data)


class VolumeStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "volumes"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dec = msgspec.json.Decoder(VolumeMeta)
        self.volumes: dict[str, VolumeMeta] = {}
        self._load()

    def _load(self) -> None:
        for d in sorted(self.dir.iterdir()):
            try:
                meta = self._dec.decode((d / "meta.json").read_bytes())
            except FileNotFoundError:
                log.warning("volumes.incomplete_removed", volume=d.name)
                fstree.rmtree(d)
                continue
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
                log.error("volumes.skipped", volume=d.name, error=str(e))
                continue
            self.volumes[meta.name] = meta

    def data(self, name: str) -> Path:
        return self.dir / name / "_data"

    def create(
        self, name: str = "", labels: dict[str, str] | None = None, *, anonymous: bool = False
    ) -> tuple[VolumeMeta, bool]:
        """(the volume, whether it was created now); an existing one is returned."""
        if not name:
            name = secrets.token_hex(32)
            anonymous = True
        if not valid_volume_name(name):
            raise VolumeError(f"invalid volume name {name!r}: [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        if name in self.volumes:
            return self.volumes[name], False
        d = self.dir / name
        d.mkdir(mode=0o700)
        (d / "_data").mkdir(mode=0o755)
        meta = VolumeMeta(
            name=name, created_nano=time.time_ns(), labels=dict(labels or {}), anonymous=anonymous
        )
        self._save(meta)
        self.volumes[name] = meta
        return meta, True

    def _save(self, meta: VolumeMeta) -> None:
        atomic_write(self.dir / meta.name / "meta.json", msgspec.json.encode(meta), durable=True)

    def remove(self, name: str) -> int:
        """Remove a volume and its data; returns the bytes it held."""
        size = du(self.data(name))
        fstree.rmtree(self.dir / name)
        self.volumes.pop(name, None)
        return size

    def fill_from(self, name: str, rootfs: str, path: str) -> bool:
        """Docker's copy-up: a volume that is new (never filled, empty) mounted
        over `path` gets what the image has there. `path` is resolved inside the
        image (a symlink there cannot point the copy at a host directory).
        Blocking: the daemon calls it from a worker thread."""
        meta = self.volumes[name]
        target = self.data(name)
        if meta.filled:
            return False
        meta.filled = True
        if any(target.iterdir()):
            self._save(meta)
            return False
        try:
            fd = _native.open_in_root(rootfs, path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            self._save(meta)
            return False  # nothing there (or not a directory): nothing to copy
        try:
            # Device nodes are made anew (mknod), never read through: an image's
            # `data/disk` = block 7:0 must not copy the host's loop device.
            out = fstree.open_dir(target)
            try:
                fstree.copy_tree(fd, out)
            finally:
                os.close(out)
            st = os.fstat(fd)
            os.chmod(target, st.st_mode & 0o7777)
            os.chown(target, st.st_uid, st.st_gid)
        finally:
            os.close(fd)
        self._save(meta)
        return True


def du(path: Path) -> int:
    return fstree.du(path)
