"""pull and push: the registry client and the image store together.

Layers are fetched concurrently (one trio task each) into ROOT/images/downloads,
where a partial file survives an interruption and the next pull resumes it;
a layer whose chain id is already stored is not fetched at all. Each unpacks as
it arrives, into a work directory that becomes the layer once both its digest
and its diff id (against the config) are checked; the downloaded blob is kept
with the layer. Push sends each layer's kept blob as it is where it is
compressed (a pulled image keeps its digests), and gzips the others
deterministically (gzip mtime 0), so pushing the same image twice uploads
nothing the second time.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import msgspec
import trio

from protocols.image import Descriptor, ImageConfig, Manifest, RootFS
from supervisor.images.layer import LayerError
from supervisor.images.registry import Client, Reference, RegistryError
from supervisor.images.store import (
    LAYER_MEDIA_TYPES,
    ImageStore,
    LayerBlob,
    chain_ids,
    tar_layer,
)

Report = Callable[[str, str, int, int], None]  # (id, status, current, total)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = LAYER_MEDIA_TYPES["gzip"]


async def pull(
    store: ImageStore,
    text: str,
    *,
    platform: str = "linux/amd64",
    insecure: bool = False,
    credentials=lambda r: None,
    report: Report = lambda *a: None,
    max_downloads: int = 0,
) -> tuple[str, str, int, str]:
    """(image id, local name, layers fetched, manifest digest); `max_downloads`
    layers at a time (0: default_downloads())."""
    ref = Reference(text)
    client = Client(ref.registry, insecure=insecure, credentials=credentials)
    downloads = store.dir / "downloads"
    downloads.mkdir(exist_ok=True)
    try:
        body, _mtype, mdigest = await client.manifest(
            ref.repository, ref.digest or ref.tag, platform
        )
        manifest = msgspec.json.decode(body, type=Manifest)
        cfg_path = downloads / manifest.config.digest.removeprefix("sha256:")
        await client.fetch_blob(ref.repository, manifest.config.digest, cfg_path)
        config_bytes = cfg_path.read_bytes()
        cfg_path.unlink()
        cfg = msgspec.json.decode(config_bytes, type=ImageConfig)
        diff_ids = cfg.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise RegistryError(
                f"{text}: {len(manifest.layers)} layers but {len(diff_ids)} diff ids in the config"
            )
        chains = chain_ids(diff_ids)
        missing = [
            i
            for i, ch in enumerate(chains)
            if not (store.layers / ch.removeprefix("sha256:")).exists()
        ]
        for i, layer in enumerate(manifest.layers):
            if i not in missing:
                report(_short(layer.digest), "Already exists", 0, 0)

        limit = trio.CapacityLimiter(max_downloads or default_downloads())

        async def fetch(i: int) -> None:
            layer = manifest.layers[i]
            short = _short(layer.digest)
            report(short, "Pulling fs layer", 0, layer.size)
            parent = chains[i - 1] if i else None
            async with limit:
                work, diff_id = await _fetch_unpacking(
                    client,
                    store,
                    ref.repository,
                    layer.digest,
                    downloads / _hex(layer.digest),
                    lambda d, t: report(short, "Downloading", d, t or layer.size),
                )
            report(short, "Download complete", layer.size, layer.size)
            blob = downloads / _hex(layer.digest)
            if diff_id != diff_ids[i]:
                await _remove_tree(work)  # it is not what was asked
                blob.unlink(missing_ok=True)
                raise RegistryError(
                    f"layer {layer.digest} unpacks to {diff_id}, but the "
                    f"config says {diff_ids[i]} (refused)"
                )
            media_type = layer.media_type or OCI_LAYER_GZIP
            kept = LayerBlob(layer.digest, media_type, layer.size)
            store.commit_layer(work, diff_id, parent, (blob, kept))
            report(short, "Pull complete", 0, 0)

        async with trio.open_nursery() as nursery:
            for i in missing:
                nursery.start_soon(fetch, i)
        image_id = store.put_blob(config_bytes)
        pinned = f"{ref.local_repo}@{mdigest}"
        store.add_repo_digest(image_id, pinned)
        if ref.digest:  # by digest: not tagged, as Docker leaves it
            return image_id, pinned, len(missing), mdigest
        store.tag(image_id, ref.local_name)
        return image_id, ref.local_name, len(missing), mdigest
    finally:
        await client.aclose()


async def push(
    store: ImageStore,
    local: str,
    text: str,
    *,
    insecure: bool = False,
    credentials=lambda r: None,
    report: Report = lambda *a: None,
) -> str:
    """Push image `local` as `text`; returns the manifest digest."""
    ref = Reference(text)
    image_id = store.resolve(local)
    cfg = store.config(image_id)
    client = Client(ref.registry, insecure=insecure, credentials=credentials)
    work = store.tmp / ("push-" + _hex(image_id)[:12])
    work.mkdir(exist_ok=True)
    try:
        layers, diff_ids, files = [], [], {}
        chains = chain_ids(cfg.rootfs.diff_ids)
        for chain, diff_id, layer_dir in zip(
            chains, cfg.rootfs.diff_ids, store.layer_dirs(image_id), strict=True
        ):
            desc, path, diff_id = _layer_to_push(store, chain, diff_id, layer_dir, work)
            layers.append(desc)
            diff_ids.append(diff_id)
            files[desc.digest] = path
        if diff_ids == cfg.rootfs.diff_ids:  # every layer as it came: the same image id
            config = (store.blobs / _hex(image_id)).read_bytes()
        else:
            config = msgspec.json.encode(
                msgspec.structs.replace(cfg, rootfs=RootFS(diff_ids=diff_ids))
            )
        cdigest = "sha256:" + hashlib.sha256(config).hexdigest()
        files[cdigest] = work / _hex(cdigest)
        files[cdigest].write_bytes(config)
        for desc in [*layers, Descriptor(digest=cdigest, size=len(config))]:
            short = _short(desc.digest)
            if await client.blob_exists(ref.repository, desc.digest):
                report(short, "Layer already exists", 0, 0)
                continue
            report(short, "Pushing", 0, desc.size)
            await client.upload_blob(ref.repository, desc.digest, files[desc.digest])
            report(short, "Pushed", desc.size, desc.size)
        manifest = msgspec.json.encode(
            Manifest(
                schema_version=2,
                media_type=OCI_MANIFEST,
                config=Descriptor(media_type=OCI_CONFIG, digest=cdigest, size=len(config)),
                layers=layers,
            )
        )
        await client.put_manifest(ref.repository, ref.tag, manifest, OCI_MANIFEST)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        store.add_repo_digest(image_id, f"{ref.local_repo}@{digest}")
        return digest
    finally:
        await client.aclose()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


def _layer_to_push(
    store: ImageStore, chain: str, diff_id: str, layer_dir: Path, work: Path
) -> tuple[Descriptor, Path, str]:
    """(descriptor, file, diff id) of a layer as pushed. A kept compressed blob
    goes as it is: a pulled image is pushed with the digests it was pulled
    with. A kept plain tar (loaded, imported, committed) is gzipped,
    deterministically (mtime 0), so the second push of it uploads nothing. A
    layer without a kept blob is tarred again from its directory: its diff id
    then changes, and with it the image's config."""
    kept = store.layer_blob(chain)
    if kept is not None and kept[1].compression:
        path, blob = kept  # (a Docker media type becomes the OCI's: the bytes are the same)
        media_type = LAYER_MEDIA_TYPES[blob.compression]
        return Descriptor(media_type=media_type, digest=blob.digest, size=blob.size), path, diff_id
    if kept is not None:
        src: IO[bytes] = open(kept[0], "rb")  # noqa: SIM115  (closed below)
    else:
        src = tempfile.TemporaryFile(dir=work)  # noqa: SIM115
        with tarfile.open(fileobj=src, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar_layer(tar, layer_dir)
        src.seek(0)
    tmp = work / (chain[-16:] + ".gz")
    raw_hash, gz_hash = hashlib.sha256(), hashlib.sha256()
    with src, open(tmp, "wb") as out:
        hashing = _HashingWriter(out, gz_hash)
        with gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0) as gz:
            while chunk := src.read(1 << 20):
                raw_hash.update(chunk)
                gz.write(chunk)
    digest = "sha256:" + gz_hash.hexdigest()
    path = work / _hex(digest)
    os.rename(tmp, path)
    desc = Descriptor(media_type=OCI_LAYER_GZIP, digest=digest, size=path.stat().st_size)
    return desc, path, "sha256:" + raw_hash.hexdigest()


class _HashingWriter:
    def __init__(self, f: IO[bytes], h) -> None:
        self.f, self.h = f, h

    def write(self, data: bytes) -> int:
        self.h.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def default_downloads() -> int:
    """Layers fetched at once: each is a download in the event loop and an
    unpacking thread, and both want the GIL at times. On the 2-core VM one at a
    time was fastest (211 MB in 5 layers: 1.0 s, against 1.25 s four at a time);
    Docker's default is 3."""
    return max(1, min(3, (os.cpu_count() or 2) // 2))


async def _fetch_unpacking(
    client: Client, store: ImageStore, repo: str, digest: str, dest: Path, progress
) -> tuple[Path, str]:
    """Download a layer and unpack it as it arrives: (work directory, diff id).

    The bytes go to the partial file (what a later pull resumes) and, through a
    pipe, to a worker thread that decompresses, hashes and unpacks them into a
    work directory (zlib, hashlib and file writes release the GIL). Nothing is
    committed here: the caller checks the diff id against the config first, and
    the blob's digest is checked when its last byte is in, before this returns;
    on any failure the work directory is removed.
    """
    r_fd, w_fd = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # a bigger pipe: fewer wake-ups each way
        fcntl.fcntl(w_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    reader = open(r_fd, "rb", buffering=1 << 20)  # noqa: SIM115  (the thread closes it)
    out: dict[str, object] = {}

    async def unpack_side() -> None:
        try:
            out["done"] = await trio.to_thread.run_sync(_unpack_reader, store, reader)
        except LayerError as e:
            out["error"] = e

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(unpack_side)
            try:
                async with trio.lowlevel.FdStream(w_fd) as pipe:
                    await client.fetch_blob(repo, digest, dest, progress, tee=pipe.send_all)
            except trio.BrokenResourceError:
                pass  # the unpacker stopped reading: its error says why
        if "error" in out:  # a bad layer: neither its download nor a partial stays
            dest.unlink(missing_ok=True)
            dest.with_name(dest.name + ".partial").unlink(missing_ok=True)
            raise out["error"]  # type: ignore[misc]
        return out["done"]  # type: ignore[return-value]  (dest: verified, kept by the caller)
    except BaseException:
        reader.close()  # if the thread never started
        if "done" in out:
            await _remove_tree(out["done"][0])  # type: ignore[index]
        raise


async def _remove_tree(path: Path) -> None:
    """An unpacked layer's tree (any size) removed off the event loop; shielded:
    it runs on the way out of a cancelled pull too."""
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))


def _unpack_reader(store: ImageStore, reader) -> tuple[Path, str]:
    with reader:
        return store.unpack_layer(reader)


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _short(digest: str) -> str:
    return _hex(digest)[:12]
