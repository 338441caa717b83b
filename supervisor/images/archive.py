"""Images as archives: `docker save` archives (written and read) and OCI image
layouts (read, as a directory or a tar of one). The store (store.py) keeps
images; this turns them into files and back, verifying every digest."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import IO

import msgspec

from protocols.image import DockerArchiveEntry, Index, Manifest, RootFS
from supervisor.errors import ImageError, LayerError
from supervisor.images.store import ImageStore, chain_ids, normalize, tar_layer


def load(store: ImageStore, path: Path) -> list[tuple[str, list[str]]]:
    """`corral load -i`: a `docker save` archive or an OCI image layout (a
    directory or a tar of one). Returns (image id, tags) for each image."""
    if path.is_dir():
        return _load_oci(store, _DirSource(path), path.name)
    try:
        tar = tarfile.open(path)  # noqa: SIM115  (closed by the with below)
    except tarfile.TarError as e:
        raise ImageError(f"{path}: not a tar archive ({e})") from None
    with tar:
        src = _TarSource(tar)
        if src.exists("manifest.json"):
            return _load_docker(store, src)
        if src.exists("index.json"):
            return _load_oci(store, src, path.name.split(".")[0])
    raise ImageError(
        f"{path}: neither a docker-save archive (manifest.json) nor an OCI "
        "image layout (index.json)"
    )


def _load_docker(store: ImageStore, src) -> list[tuple[str, list[str]]]:
    entries = msgspec.json.decode(src.read("manifest.json"), type=list[DockerArchiveEntry])
    out = []
    for e in entries:
        tags = [normalize(t) for t in e.repo_tags or []]
        image_id = store.add_image(
            src.read(e.config), [lambda n=n: src.open(n) for n in e.layers], tags
        )
        out.append((image_id, tags))
    return out


def _load_oci(store: ImageStore, src, repo: str) -> list[tuple[str, list[str]]]:
    """An OCI layout names images by a ref.name annotation: a full reference,
    or only a tag, to which the layout's own name is the repository."""
    index = msgspec.json.decode(src.read("index.json"), type=Index)
    out = []
    for desc in index.manifests:
        blob = _blob_path(desc.digest)
        data = src.read(blob)
        _verify(data, desc.digest)
        if "index" in desc.media_type:
            raise ImageError("nested image indexes in a layout are not supported yet")
        manifest = msgspec.json.decode(data, type=Manifest)
        config = src.read(_blob_path(manifest.config.digest))
        _verify(config, manifest.config.digest)
        name = (desc.annotations or {}).get("org.opencontainers.image.ref.name", "")
        tags = [normalize(name if ":" in name or "/" in name else f"{repo}:{name}")] if name else []
        layers = [
            lambda d=d: _VerifyingReader(src.open(_blob_path(d.digest)), d.digest)
            for d in manifest.layers
        ]
        out.append((store.add_image(config, layers, tags), tags))
    return out


def save(store: ImageStore, image_id: str, out: Path, tags: list[str]) -> None:
    """`corral save -o`: the docker-save format. Each layer is the tar its
    kept blob holds, so the saved config is the stored one, byte for byte,
    and `load` gives back the same image id. A layer stored without its blob
    (by an older Corral) is tarred again from its directory, and the config
    then names the new tars: the content is the same, the id is not."""
    cfg = store.config(image_id)
    cfg_bytes = (store.blobs / image_id.removeprefix("sha256:")).read_bytes()
    chains = chain_ids(cfg.rootfs.diff_ids)
    with tarfile.open(out, "w") as tar:
        names, diff_ids = [], []
        for chain, diff_id, layer_dir in zip(
            chains, cfg.rootfs.diff_ids, store.layer_dirs(image_id), strict=True
        ):
            kept = store.open_layer_tar(chain, diff_id)
            if kept is None:
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as lt:
                    tar_layer(lt, layer_dir)
                diff_id = "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
                kept = buf
            with kept:
                names.append(f"{diff_id.removeprefix('sha256:')}/layer.tar")
                diff_ids.append(diff_id)
                _add_file(tar, names[-1], kept)
        if diff_ids != cfg.rootfs.diff_ids:
            cfg_bytes = msgspec.json.encode(
                msgspec.structs.replace(cfg, rootfs=RootFS(diff_ids=diff_ids))
            )
        hexid = hashlib.sha256(cfg_bytes).hexdigest()
        _add_bytes(tar, f"{hexid}.json", cfg_bytes)
        manifest = [{"Config": f"{hexid}.json", "RepoTags": tags, "Layers": names}]
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    _add_file(tar, name, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, f: IO[bytes]) -> None:
    f.seek(0, os.SEEK_END)
    info = tarfile.TarInfo(name)
    info.size, info.mtime = f.tell(), int(time.time())
    f.seek(0)
    tar.addfile(info, f)


def _blob_path(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
        raise ImageError(f"unsupported or malformed digest {digest!r}")
    return f"blobs/sha256/{hexd}"


def _verify(data: bytes, digest: str) -> None:
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise ImageError(f"digest mismatch: content does not match {digest}")


class _VerifyingReader:
    """Reads a blob and checks its digest at the end (a tampered layer fails)."""

    def __init__(self, f: IO[bytes], digest: str) -> None:
        self.f, self.digest, self.h = f, digest, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        if not data and "sha256:" + self.h.hexdigest() != self.digest:
            raise LayerError(f"digest mismatch: layer does not match {self.digest}")
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


class _DirSource:
    def __init__(self, root: Path) -> None:
        self.root = root

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def read(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{name} is missing from the image layout") from None

    def open(self, name: str):
        return open(self.root / name, "rb")


class _TarSource:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.names = {m.name.removeprefix("./"): m for m in tar.getmembers()}

    def exists(self, name: str) -> bool:
        return name in self.names

    def open(self, name: str):
        m = self.names.get(name)
        if m is None or not m.isreg():
            raise ImageError(f"{name} is missing from the archive")
        f = self.tar.extractfile(m)
        assert f is not None
        return f

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()  # loop-safe: load and save run in worker threads
