"""pull and push: the registry client and the image store together.

Layers are fetched concurrently (one trio task each) into ROOT/images/downloads,
where a partial file survives an interruption and the next pull resumes it;
a layer whose chain id is already stored is not fetched at all. Then they are
unpacked in order, each diff id checked against the config. Push tars and
gzips each layer deterministically (sorted entries, gzip mtime 0), so pushing
the same image twice uploads nothing the second time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Callable

import msgspec
import trio

from protocols.image import Descriptor, ImageConfig, Manifest, RootFS
from supervisor.images.registry import Client, Reference, RegistryError
from supervisor.images.store import ImageStore, _tar_layer, chain_ids

Report = Callable[[str, str, int, int], None]  # (id, status, current, total)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


async def pull(
    store: ImageStore,
    text: str,
    *,
    platform: str = "linux/amd64",
    insecure: bool = False,
    credentials=lambda r: None,
    report: Report = lambda *a: None,
) -> tuple[str, str, int]:
    """(image id, local name, layers fetched)."""
    ref = Reference(text)
    client = Client(ref.registry, insecure=insecure, credentials=credentials)
    downloads = store.dir / "downloads"
    downloads.mkdir(exist_ok=True)
    try:
        body, _mtype, _mdigest = await client.manifest(
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

        async def fetch(i: int) -> None:
            layer = manifest.layers[i]
            short = _short(layer.digest)
            report(short, "Pulling fs layer", 0, layer.size)
            path = downloads / _hex(layer.digest)
            await client.fetch_blob(
                ref.repository,
                layer.digest,
                path,
                lambda d, t: report(short, "Downloading", d, t or layer.size),
            )
            report(short, "Download complete", layer.size, layer.size)
            # Each layer's place (its chain id) is known from the config, so the
            # layers unpack independently, each as soon as it is here, in a worker
            # thread: decompressing and hashing release the GIL, and the event
            # loop goes on downloading the others.
            parent = chains[i - 1] if i else None
            diff_id, _ = await trio.to_thread.run_sync(_unpack_file, store, path, parent)
            if diff_id != diff_ids[i]:
                store.remove_layer(_chain_of(parent, diff_id))  # it is not what was asked
                raise RegistryError(
                    f"layer {layer.digest} unpacks to {diff_id}, but the "
                    f"config says {diff_ids[i]} (refused)"
                )
            report(short, "Pull complete", 0, 0)

        async with trio.open_nursery() as nursery:
            for i in missing:
                nursery.start_soon(fetch, i)
        image_id = store.put_blob(config_bytes)
        store.tag(image_id, ref.local_name)
        return image_id, ref.local_name, len(missing)
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
        layers, diff_ids = [], []
        for layer_dir in store.layer_dirs(image_id):
            raw = io.BytesIO()
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                _tar_layer(tar, layer_dir)
            data = raw.getvalue()
            diff_ids.append("sha256:" + hashlib.sha256(data).hexdigest())
            gz = gzip.compress(data, mtime=0)
            digest = "sha256:" + hashlib.sha256(gz).hexdigest()
            (work / _hex(digest)).write_bytes(gz)
            layers.append(Descriptor(media_type=OCI_LAYER_GZIP, digest=digest, size=len(gz)))
        config = msgspec.json.encode(msgspec.structs.replace(cfg, rootfs=RootFS(diff_ids=diff_ids)))
        cdigest = "sha256:" + hashlib.sha256(config).hexdigest()
        (work / _hex(cdigest)).write_bytes(config)
        for desc in [*layers, Descriptor(digest=cdigest, size=len(config))]:
            short = _short(desc.digest)
            if await client.blob_exists(ref.repository, desc.digest):
                report(short, "Layer already exists", 0, 0)
                continue
            report(short, "Pushing", 0, desc.size)
            await client.upload_blob(ref.repository, desc.digest, work / _hex(desc.digest))
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
        return "sha256:" + hashlib.sha256(manifest).hexdigest()
    finally:
        await client.aclose()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


def _unpack_file(store: ImageStore, path, parent: str | None) -> tuple[str, str]:
    try:
        with open(path, "rb") as f:
            return store.add_layer(f, parent)
    finally:
        path.unlink(missing_ok=True)


def _chain_of(parent: str | None, diff_id: str) -> str:
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _short(digest: str) -> str:
    return _hex(digest)[:12]
