"""Docker's mount flags, parsed into MountSpec (pure).

-v /host/path:/ctr/path[:ro|rw][,propagation][,nosuid|nodev|noexec]  a bind;
                                     the host path is created if missing
-v NAME:/ctr/path[:opts]             a named volume, created on first use
-v /ctr/path                         an anonymous volume (gone with rm -v)
--mount type=bind,source=S,target=T[,readonly][,bind-propagation=P]
                                     a bind; S must exist (Docker's rule)
--mount type=volume[,source=NAME],target=T[,readonly][,volume-nocopy]
--mount type=tmpfs,target=T[,tmpfs-size=N][,tmpfs-mode=M]
--tmpfs /path[:size=64m,mode=1777,noexec]
"""

from __future__ import annotations

import os
import re

# The client parses the flags, so the msgspec-free mirror (protocols/lite/__init__.py).
from protocols.lite.api import MountSpec
from supervisor.units import parse_size

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
FLAGS = ("nosuid", "nodev", "noexec")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class MountError(ValueError):
    """A mount flag that cannot be honoured; the message names it."""


def valid_volume_name(name: str) -> bool:
    return bool(_NAME.match(name)) and len(name) <= 255


def _target(t: str, flag: str) -> str:
    if not t.startswith("/"):
        raise MountError(f"{flag}: the container path {t!r} must be absolute")
    if os.path.normpath(t) == "/":
        raise MountError(f"{flag}: cannot mount over the container's /")
    return os.path.normpath(t)


def _size(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as e:
        raise MountError(str(e)) from None


def parse_volume(text: str) -> MountSpec:
    """One -v value."""
    parts = text.split(":")
    if len(parts) == 1:
        return MountSpec(type="volume", target=_target(parts[0], "-v"))
    if len(parts) > 3:
        raise MountError(f"-v {text!r}: too many colons")
    source, target = parts[0], _target(parts[1], "-v")
    ro, prop, flags = False, "rprivate", []
    for opt in parts[2].split(",") if len(parts) == 3 else []:
        if opt in ("ro", "rw"):
            ro = opt == "ro"
        elif opt in PROPAGATIONS:
            prop = opt
        elif opt in FLAGS:
            flags.append(opt)
        elif opt in ("z", "Z", "nocopy", "copy", ""):
            continue  # SELinux relabelling: no SELinux here; copy is the default
        else:
            raise MountError(f"-v {text!r}: unknown option {opt!r}")
    nocopy = len(parts) == 3 and "nocopy" in parts[2].split(",")
    if source.startswith("/"):
        return MountSpec(
            type="bind",
            source=os.path.normpath(source),
            target=target,
            readonly=ro,
            propagation=prop,
            flags=flags,
            create_source=True,
        )
    if not valid_volume_name(source):
        raise MountError(
            f"-v {text!r}: {source!r} is neither an absolute path nor a volume "
            "name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"
        )
    return MountSpec(
        type="volume",
        source=source,
        target=target,
        readonly=ro,
        propagation=prop,
        flags=flags,
        nocopy=nocopy,
    )


def parse_mount(text: str) -> MountSpec:
    """One --mount value (comma-separated key=value, a few bare flags)."""
    kv: dict[str, str] = {}
    bare: list[str] = []
    for item in text.split(","):
        k, eq, v = item.partition("=")
        if eq:
            kv[k.strip()] = v.strip()
        elif item:
            bare.append(item.strip())
    kind = kv.pop("type", "volume")
    source = kv.pop("source", kv.pop("src", ""))
    target = kv.pop("target", kv.pop("destination", kv.pop("dst", "")))
    if not target:
        raise MountError(f"--mount {text!r}: target is required")
    target = _target(target, "--mount")
    ro = any(b in ("readonly", "ro") for b in bare) or kv.pop("readonly", "false") in ("true", "1")
    kv.pop("ro", None)
    flags = [b for b in bare if b in FLAGS]
    unknown_bare = [
        b for b in bare if b not in FLAGS and b not in ("readonly", "ro", "volume-nocopy")
    ]
    if unknown_bare:
        raise MountError(f"--mount {text!r}: unknown option {unknown_bare[0]!r}")
    if kind == "bind":
        prop = kv.pop("bind-propagation", "rprivate")
        if prop not in PROPAGATIONS:
            raise MountError(f"--mount: invalid bind-propagation {prop!r}")
        _no_more(kv, text)
        if not source.startswith("/"):
            raise MountError(f"--mount {text!r}: a bind source must be an absolute path")
        return MountSpec(
            type="bind",
            source=os.path.normpath(source),
            target=target,
            readonly=ro,
            propagation=prop,
            flags=flags,
            create_source=False,
        )
    if kind == "volume":
        nocopy = "volume-nocopy" in bare or kv.pop("volume-nocopy", "false") == "true"
        labels = {}
        for key in [k for k in kv if k == "volume-label"]:
            lk, _, lv = kv.pop(key).partition("=")
            labels[lk] = lv
        _no_more(kv, text)
        if source and not valid_volume_name(source):
            raise MountError(f"--mount {text!r}: invalid volume name {source!r}")
        return MountSpec(
            type="volume",
            source=source,
            target=target,
            readonly=ro,
            flags=flags,
            nocopy=nocopy,
            labels=labels,
        )
    if kind == "tmpfs":
        size = _size(kv.pop("tmpfs-size")) if "tmpfs-size" in kv else 0
        mode = int(kv.pop("tmpfs-mode"), 8) if "tmpfs-mode" in kv else 0o1777
        _no_more(kv, text)
        return MountSpec(
            type="tmpfs", target=target, readonly=ro, flags=flags, tmpfs_size=size, tmpfs_mode=mode
        )
    raise MountError(f"--mount {text!r}: unknown type {kind!r} (bind, volume or tmpfs)")


def parse_tmpfs(text: str) -> MountSpec:
    """One --tmpfs value: /path[:size=64m,mode=1777,noexec,...]."""
    path, _, opts = text.partition(":")
    size, mode, flags, ro = 0, 0o1777, [], False
    for opt in filter(None, opts.split(",")):
        k, eq, v = opt.partition("=")
        if k == "size" and eq:
            size = _size(v)
        elif k == "mode" and eq:
            mode = int(v, 8)
        elif opt in FLAGS:
            flags.append(opt)
        elif opt in ("ro", "rw"):
            ro = opt == "ro"
        elif opt in ("exec", "suid", "dev"):
            continue
        else:
            raise MountError(f"--tmpfs {text!r}: unknown option {opt!r}")
    return MountSpec(
        type="tmpfs",
        target=_target(path, "--tmpfs"),
        readonly=ro,
        flags=flags,
        tmpfs_size=size,
        tmpfs_mode=mode,
    )


def _no_more(kv: dict[str, str], text: str) -> None:
    if kv:
        raise MountError(f"--mount {text!r}: unknown option {next(iter(kv))!r}")


def check_targets(mounts: list[MountSpec]) -> None:
    seen = set()
    for m in mounts:
        if m.target in seen:
            raise MountError(f"duplicate mount point: {m.target}")
        seen.add(m.target)
