"""The image store, content-addressed, under ROOT/images:

    blobs/sha256/HEX          image configs
    layers/CHAINHEX/diff      a layer, unpacked once, shared by every image on it
    layers/CHAINHEX/diff_id   its diff id (sha256 of the uncompressed tar)
    layers/CHAINHEX/blob      the layer as it came (pulled, loaded, imported,
                              committed): compressed or not, byte for byte
    layers/CHAINHEX/blob.json its digest, media type and size (LayerBlob)
    repositories.json         name:tag -> image id
    repodigests.json          name@digest -> image id (a registry's manifest digest,
                              from a pull or a push: Docker's RepoDigests)

The original blob is kept, as containerd keeps it, so that `save` writes the
very tar whose digest the config names (a saved and loaded image keeps its
id) and `push` sends the very bytes it pulled (the same digests in every
registry). It costs the compressed size of each layer on disk.

An image id is the sha256 of its config. A layer's directory is named by its
chain id (Docker's: the layer's diff id chained to its parents'), so the same
layer on the same parents is unpacked once. Writes are atomic; a layer is
unpacked into a temporary directory and renamed into place, so a failed or
malicious archive leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import msgspec
import structlog

from protocols.image import (
    History,
    ImageConfig,
    RootFS,
    RunConfig,
)
from supervisor import fstree
from supervisor.errors import ImageError, NoSuchImage
from supervisor.images.layer import compression, decompressed, unpack
from supervisor.runtime.state import atomic_write

log = structlog.get_logger("corral.images")


LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_MEDIA_TYPES = {
    "": LAYER_TAR,
    "gzip": LAYER_TAR + "+gzip",
    "zstd": LAYER_TAR + "+zstd",
}


class LayerBlob(msgspec.Struct, frozen=True):
    """layers/CHAINHEX/blob.json: what layers/CHAINHEX/blob is."""

    digest: str
    media_type: str
    size: int

    @property
    def compression(self) -> str:
        """ "gzip", "zstd" or "" (the OCI's and Docker's media types alike)."""
        if "gzip" in self.media_type:
            return "gzip"
        return "zstd" if "zstd" in self.media_type else ""


def chain_ids(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for d in diff_ids:
        out.append(
            d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest()
        )
    return out


def normalize(ref: str) -> str:
    """'busybox' -> 'busybox:latest'; Docker Hub's official prefix is dropped
    ('docker.io/library/bb:v1' -> 'bb:v1'), as Docker shows it."""
    for hub in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if ref.startswith(hub):
            ref = ref.removeprefix(hub).removeprefix("library/")
            break
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or "@" in ref else f"{ref}:latest"


class ImageStore:
    def __init__(self, root: Path) -> None:
        self._sizes: dict[Path, int] = {}  # layer directory -> bytes (layer_size)
        self.dir = root / "images"
        self.blobs = self.dir / "blobs" / "sha256"
        self.layers = self.dir / "layers"
        self.tmp = self.dir / "tmp"
        for d in (self.blobs, self.layers, self.tmp):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        _remove_tree(self.tmp)  # halves of an interrupted load
        self.tmp.mkdir(mode=0o700)
        # A finished download whose pull stopped before the layer kept it is
        # garbage; a .partial one is what the next pull resumes. (One store per
        # daemon, made at its start: no pull is running now.)
        with contextlib.suppress(FileNotFoundError):
            for f in (self.dir / "downloads").iterdir():
                if not f.name.endswith(".partial"):
                    f.unlink(missing_ok=True)
        self._cfg = msgspec.json.Decoder(ImageConfig)
        self.repos: dict[str, str] = self._load_repos()
        self.digests: dict[str, str] = self._load_repos("repodigests.json")
        # The daemon runs imports, loads, saves and commits in worker threads
        # (trio.to_thread) beside its own calls: this lock covers the few steps
        # that must not interleave (a layer's rename into place, the tag file's
        # write); the unpacking itself runs outside it.
        self._lock = threading.Lock()

    # -- blobs, configs, tags ----------------------------------------------------------

    def _load_repos(self, name: str = "repositories.json") -> dict[str, str]:
        try:
            return json.loads((self.dir / name).read_text())
        except FileNotFoundError:
            return {}

    def _save_repos(self, *, tags: bool = True, digests: bool = False) -> None:
        """Write repositories.json and/or repodigests.json: each a durable write
        (an fsync), so only the tables that changed."""
        tables = [("repositories.json", self.repos)] if tags else []
        tables += [("repodigests.json", self.digests)] if digests else []
        with self._lock:
            for name, table in tables:
                data = json.dumps(dict(table), sort_keys=True).encode()
                atomic_write(self.dir / name, data, durable=True)

    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.blobs / digest
        if not path.exists():
            atomic_write(path, data, durable=True)
        return "sha256:" + digest

    def config(self, image_id: str) -> ImageConfig:
        try:
            return self._cfg.decode((self.blobs / image_id.removeprefix("sha256:")).read_bytes())
        except FileNotFoundError:
            raise NoSuchImage(image_id) from None

    def images(self) -> list[str]:
        ids = []
        for p in self.blobs.iterdir():
            try:
                cfg = self._cfg.decode(p.read_bytes())
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if cfg.rootfs.diff_ids or cfg.rootfs.type == "layers":
                ids.append("sha256:" + p.name)
        return sorted(ids)

    def tags(self, image_id: str) -> list[str]:
        return sorted(t for t, i in list(self.repos.items()) if i == image_id)

    def repo_digests(self, image_id: str) -> list[str]:
        return sorted(d for d, i in list(self.digests.items()) if i == image_id)

    def add_repo_digest(self, image_id: str, name_at_digest: str) -> None:
        """Remember that `name@digest` (a registry's manifest) is this image."""
        self.digests[normalize(name_at_digest)] = image_id
        self._save_repos(tags=False, digests=True)

    def resolve(self, ref: str) -> str:
        """An image id from name[:tag], name@digest, a full id, or a unique id prefix."""
        if normalize(ref) in self.repos:
            return self.repos[normalize(ref)]
        if normalize(ref) in self.digests:
            return self.digests[normalize(ref)]
        hexref = ref.removeprefix("sha256:")
        if len(hexref) >= 4 and all(ch in "0123456789abcdef" for ch in hexref):
            hits = [i for i in self.images() if i.removeprefix("sha256:").startswith(hexref)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise ImageError(f"ambiguous image id prefix {ref!r}")
        raise NoSuchImage(ref)

    def tag(self, image_id: str, ref: str) -> None:
        self.config(image_id)
        self.repos[normalize(ref)] = image_id
        self._save_repos()

    def untag(self, ref: str) -> None:
        self.repos.pop(normalize(ref), None)
        self._save_repos()

    # -- layers ----------------------------------------------------------------------------

    def layer_size(self, layer_dir: Path) -> int:
        """What a layer takes on disk: its files and the blob it came as (kept
        for save and push). Layers never change: measured once, then kept.
        Blocking the first time (a walk of the layer): call from a thread."""
        size = self._sizes.get(layer_dir)
        if size is None:
            try:
                blob = (layer_dir.parent / "blob").stat().st_size
            except FileNotFoundError:
                blob = 0
            size = self._sizes[layer_dir] = fstree.du(layer_dir) + blob
        return size

    def layer_dirs(self, image_id: str) -> list[Path]:
        """The image's layer directories, bottom first."""
        cfg = self.config(image_id)
        return [
            self.layers / c.removeprefix("sha256:") / "diff" for c in chain_ids(cfg.rootfs.diff_ids)
        ]

    def add_layer(
        self, fileobj: IO[bytes], parent_chain: str | None, created: list[str] | None = None
    ) -> tuple[str, str]:
        """Unpack a layer on top of `parent_chain`, keeping its blob; (diff id,
        chain id). A layer already present is not unpacked twice; one this call
        stored is appended to `created`."""
        spool = _Spool(fileobj, self.tmp)
        work = None
        try:
            work, diff_id = self.unpack_layer(spool)
            blob = spool.finish()  # reads to the end: a digest check may fail only now
        except BaseException:
            spool.discard()
            if work is not None:
                _remove_tree(work)
            raise
        return diff_id, self.commit_layer(work, diff_id, parent_chain, blob, created)

    def unpack_layer(self, fileobj: IO[bytes]) -> tuple[Path, str]:
        """Unpack into a new work directory, not yet a layer: (work, diff id)."""
        work = self.tmp / secrets.token_hex(8)
        try:
            return work, unpack(fileobj, work)
        except BaseException:
            _remove_tree(work)
            raise

    def commit_layer(
        self,
        work: Path,
        diff_id: str,
        parent_chain: str | None,
        blob: tuple[Path, LayerBlob] | None = None,
        created: list[str] | None = None,
    ) -> str:
        """Make an unpacked work directory the layer of its chain id (dropped if
        that layer is stored already), with `blob`, the file it came from, kept
        beside it (moved, not copied); returns the chain id."""
        try:
            chain = (
                diff_id
                if parent_chain is None
                else "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()
            )
            final = self.layers / chain.removeprefix("sha256:")
            with self._lock:
                duplicate = final.exists()
                if duplicate:
                    if blob is not None and not (final / "blob.json").exists():
                        self._keep_blob(final, *blob)  # stored before blobs were kept
                else:
                    tmpdir = self.tmp / (secrets.token_hex(8) + ".layer")
                    tmpdir.mkdir()
                    os.rename(work, tmpdir / "diff")
                    (tmpdir / "diff_id").write_text(diff_id)
                    if blob is not None:
                        self._keep_blob(tmpdir, *blob)
                    os.rename(tmpdir, final)
                    if created is not None:
                        created.append(chain)
            if duplicate:
                fstree.rmtree(work)  # outside the lock: a big layer takes a while
            return chain
        except BaseException:
            _remove_tree(work)
            raise
        finally:
            if blob is not None:
                blob[0].unlink(missing_ok=True)  # kept (renamed away) or not wanted

    @staticmethod
    def _keep_blob(layer: Path, path: Path, desc: LayerBlob) -> None:
        os.rename(path, layer / "blob")
        atomic_write(layer / "blob.json", msgspec.json.encode(desc))  # last: it vouches

    def layer_blob(self, chain: str) -> tuple[Path, LayerBlob] | None:
        """The layer's original blob, where one was kept."""
        layer = self.layers / chain.removeprefix("sha256:")
        try:
            desc = msgspec.json.decode((layer / "blob.json").read_bytes(), type=LayerBlob)
        except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        return (layer / "blob", desc) if (layer / "blob").is_file() else None

    def open_layer_tar(self, chain: str, diff_id: str) -> IO[bytes] | None:
        """The layer's uncompressed tar, exactly the one `diff_id` names, in a
        temporary file (None where no blob was kept); ImageError if the kept
        blob does not decompress to it."""
        found = self.layer_blob(chain)
        if found is None:
            return None
        path, _ = found
        out = tempfile.TemporaryFile(dir=self.tmp)  # noqa: SIM115  (the caller closes it)
        try:
            h = hashlib.sha256()
            with open(path, "rb") as raw:
                src = decompressed(raw)
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            if "sha256:" + h.hexdigest() != diff_id:
                raise ImageError(f"layer {chain}: its kept blob is not the tar {diff_id}")
            out.seek(0)
            return out
        except BaseException:
            out.close()
            raise

    def remove_layer(self, chain: str) -> None:
        _remove_tree(self.layers / chain.removeprefix("sha256:"))

    def _drop_unreferenced(self, chains: list[str]) -> None:
        """Remove the layers among `chains`, stored by a load that was then
        refused, that no image refers to."""
        if not chains:
            return
        used = {c for i in self.images() for c in chain_ids(self.config(i).rootfs.diff_ids)}
        for chain in chains:
            if chain not in used:
                _remove_tree(self.layers / chain.removeprefix("sha256:"))

    def layers_only_of(self, image_id: str) -> list[str]:
        """The chain ids of the image's layers no other image has."""
        keep: set[str] = set()
        for other in self.images():
            if other != image_id:
                keep.update(chain_ids(self.config(other).rootfs.diff_ids))
        return [c for c in chain_ids(self.config(image_id).rootfs.diff_ids) if c not in keep]

    def remove_image(self, image_id: str, in_use: set[str]) -> list[str]:
        """Remove the image's tags, config and the layers no other image uses;
        returns the removed layer chain ids."""
        only = self.layers_only_of(image_id)
        for t in self.tags(image_id):
            self.repos.pop(t)
        pinned = self.repo_digests(image_id)
        for d in pinned:
            self.digests.pop(d)
        self._save_repos(digests=bool(pinned))
        (self.blobs / image_id.removeprefix("sha256:")).unlink()
        removed = []
        for chain in only:
            if chain not in in_use:
                _remove_tree(self.layers / chain.removeprefix("sha256:"))
                removed.append(chain)
        return removed

    # -- import, load, save ----------------------------------------------------------------

    def import_rootfs(self, fileobj: IO[bytes], ref: str | None) -> str:
        """`corral import`: a root filesystem tar becomes a one-layer image."""
        diff_id, _ = self.add_layer(fileobj, None)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cfg = ImageConfig(
            architecture=_host_arch(),
            os="linux",
            created=now,
            rootfs=RootFS(diff_ids=[diff_id]),
            history=[History(created=now, created_by="corral import")],
        )
        image_id = self.put_blob(msgspec.json.encode(cfg))
        if ref:
            self.tag(image_id, ref)
        return image_id

    def commit(
        self,
        *,
        upper: Path,
        base_image: str | None,
        base_rootfs: str | None,
        run_config: RunConfig,
        message: str = "",
        author: str = "",
        skip_empty: frozenset[str] = frozenset(),
        created_by: str = "corral commit",
    ) -> str:
        """A new image: the base image's layers (or a layer of the base root
        filesystem directory) and one more, the container's upper directory
        (overlay whiteouts and opaque directories written as the OCI's; the
        empty files at `skip_empty`, bind mounts' targets, left out)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if base_image:
            cfg = self.config(base_image)
        else:
            cfg = ImageConfig(architecture=_host_arch(), os="linux")
        diff_ids = list(cfg.rootfs.diff_ids)
        history = list(cfg.history)
        sources = [Path(base_rootfs)] if base_rootfs else []
        for src in [*sources, upper]:
            with tempfile.TemporaryFile(dir=self.tmp) as spool:
                with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    tar_layer(tar, src, skip_empty if src == upper else frozenset())
                spool.seek(0)
                parent = chain_ids(diff_ids)[-1] if diff_ids else None
                diff_id, _ = self.add_layer(spool, parent)
            diff_ids.append(diff_id)
        history.append(History(created=now, created_by=created_by, comment=message))
        new = msgspec.structs.replace(
            cfg,
            created=now,
            config=run_config,
            rootfs=RootFS(diff_ids=diff_ids),
            history=history,
            author=author or cfg.author,
        )
        return self.put_blob(msgspec.json.encode(new))

    def add_image(self, config_bytes: bytes, layer_files, tags: list[str]) -> str:
        """An image from its config and its layers (callables opening each), tagged."""
        cfg = self._cfg.decode(config_bytes)
        parent = None
        got: list[str] = []
        created: list[str] = []
        try:
            for open_layer in layer_files:
                with open_layer() as f:
                    diff_id, parent = self.add_layer(f, parent, created)
                got.append(diff_id)
            if got != cfg.rootfs.diff_ids:
                raise ImageError(
                    f"the layers do not match the config's diff ids "
                    f"({len(got)} unpacked, {len(cfg.rootfs.diff_ids)} expected, "
                    "or a digest differs)"
                )
        except BaseException:
            self._drop_unreferenced(created)
            raise
        image_id = self.put_blob(config_bytes)
        for t in tags:
            self.tag(image_id, t)
        return image_id


def _host_arch() -> str:
    """This machine's architecture in the OCI spec's (Go's) words."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


def _remove_tree(path: Path) -> None:
    """Remove a directory of the store, logging (not raising) what cannot go."""
    try:
        fstree.rmtree(path)
    except OSError as e:
        log.error("images.remove_failed", path=str(path), error=str(e))


def empty_file_among(root: Path, rel: str, names: frozenset[str]) -> bool:
    """Is `rel` one of `names` and an empty regular file under `root`? (A bind
    mount's target, made by the runtime: no content of the container's own.)"""
    if rel not in names:
        return False
    st = os.lstat(root / rel)
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def tar_layer(tar: tarfile.TarFile, root: Path, skip_empty: frozenset[str] = frozenset()) -> None:
    """A layer directory back into a tar, whiteouts as .wh. files and opaque
    directories (overlayfs' trusted.overlay.opaque) with a .wh..wh..opq in them.
    Iterative and relative to descriptors: a container's tree of any depth.

    `skip_empty`: bind mounts' targets the runtime made (empty files) are left
    out, and so is a directory that holds nothing else (/etc, copied up only to
    hold them), as Docker's init layer keeps them out of a container's diff."""
    top = fstree.open_dir(root)
    links: dict[tuple[int, int], str] = {}
    try:
        skipped: set[str] = set()
        if skip_empty:  # a first pass: which of them are there, and what else
            rels = []
            for e in fstree.walk(top, sort=True):
                rels.append(e.rel)
                if e.rel in skip_empty and stat.S_ISREG(e.st.st_mode) and e.st.st_size == 0:
                    skipped.add(e.rel)
        holders = {rel.rsplit("/", 1)[0] for rel in skipped if "/" in rel}
        kept_under = {
            h for h in holders for r in rels if r.startswith(h + "/") and r not in skipped
        }
        for e in fstree.walk(top, sort=True):
            mode = e.st.st_mode
            if e.rel in skipped or (
                e.rel in holders and e.rel not in kept_under and not _opaque(e)
            ):
                continue  # a bind mount's target, or a directory made only to hold one
            if stat.S_ISCHR(mode) and e.st.st_rdev == 0:
                parent = e.rel[: len(e.rel) - len(e.name)]
                tar.addfile(_marker(f"{parent}.wh.{e.name}"))
                continue
            info = fstree.tar_info(e, e.rel, links)
            if info is None:
                continue  # a socket
            fstree.add_to_tar(tar, e, info)
            if stat.S_ISDIR(mode) and _opaque(e):
                tar.addfile(_marker(f"{e.rel}/.wh..wh..opq"))
    finally:
        os.close(top)


def _marker(name: str) -> tarfile.TarInfo:
    """A whiteout or opaque marker: an empty file, 0600, as Docker writes them."""
    info = tarfile.TarInfo(name)
    info.mode = 0o600
    return info


def _opaque(e: fstree.Entry) -> bool:
    try:
        fd = fstree.open_dir(e.name, e.dir_fd)
    except OSError:
        return False
    try:
        return os.getxattr(fd, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False
    finally:
        os.close(fd)


class _Spool:
    """Reads a layer blob through to the unpacker and copies it, hashing it, to
    a file beside the store: the blob that is kept with the layer."""

    def __init__(self, f: IO[bytes], tmp: Path) -> None:
        self.f = f
        self.path = tmp / (secrets.token_hex(8) + ".blob")
        self.out = open(self.path, "wb")  # noqa: SIM115  (closed by finish/discard)
        self.h = hashlib.sha256()
        self.size = 0
        self.head = b""

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.out.write(data)
        self.h.update(data)
        self.size += len(data)
        if len(self.head) < 4:
            self.head = (self.head + data)[:4]
        return data

    def finish(self) -> tuple[Path, LayerBlob]:
        while self.read(1 << 20):  # what the unpacker left: a gzip trailer, padding
            pass
        self.out.close()
        media_type = LAYER_MEDIA_TYPES[compression(self.head)]
        return self.path, LayerBlob("sha256:" + self.h.hexdigest(), media_type, self.size)

    def discard(self) -> None:
        self.out.close()
        self.path.unlink(missing_ok=True)
