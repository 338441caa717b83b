"""Two `save` archives of images built from one Dockerfile, side by side: the
config fields a Dockerfile sets, the history, and each layer's files (names,
types, modes, owners, contents: not times)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
          "Labels", "Healthcheck", "StopSignal", "Shell", "OnBuild")  # fmt: skip


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(name)
    assert f is not None, name
    return f.read()


def _layer_entries(data: bytes) -> list[tuple]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
        for m in t:
            name = m.name.lstrip("./").rstrip("/")
            if not name:
                continue
            digest = ""
            if m.isfile():
                f = t.extractfile(m)
                digest = hashlib.sha256(f.read() if f else b"").hexdigest()[:16]
            kind = (
                "f"
                if m.isfile()
                else "d"
                if m.isdir()
                else "l"
                if m.issym()
                else "h"
                if m.islnk()
                else "o"
            )
            out.append((name, kind, oct(m.mode & 0o7777), m.uid, m.gid, digest, m.linkname))
    return sorted(out)


def read(archive: Path) -> dict:
    """{config: the fields, history: [created_by], layers: [[entries]]}."""
    with tarfile.open(archive) as tar:
        manifest = json.loads(_member(tar, "manifest.json"))[0]
        cfg = json.loads(_member(tar, manifest["Config"]))
        layers = [_layer_entries(_member(tar, name)) for name in manifest["Layers"]]
    history = [
        re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:H", h.get("created_by", ""))
        for h in cfg.get("history", [])
    ]
    config = cfg.get("config") or {}
    return {
        "config": {k: config.get(k) or None for k in FIELDS},
        "history": history,
        "layers": layers,
    }
