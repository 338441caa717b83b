"""The daemon's image requests: pull and push (with their progress streamed),
login and logout, import, load and save (archives streamed or by path), list,
tag, inspect, commit, rmi, prune."""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import trio

from protocols import api
from protocols.image import RunConfig
from supervisor.daemon import filters
from supervisor.daemon.networking import PLACEHOLDERS
from supervisor.errors import Conflict, SpecError
from supervisor.fstree import du
from supervisor.images import archive, transfer
from supervisor.images import registry as registry_client
from supervisor.images.store import normalize

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Fleet
    from supervisor.daemon.server import Connection


async def images_request(f: Fleet, req: msgspec.Struct) -> msgspec.Struct:
    """The image commands. What reads or writes whole layers (import, load,
    save, commit) runs in a worker thread, so that a big image does not stall
    the daemon's containers, events and other clients meanwhile; the store
    guards the steps that must not interleave."""
    st = f.images
    match req:
        case api.ImageImport(path=path, ref=ref):
            async with f.image_gate.adding():
                image_id = await trio.to_thread.run_sync(_import, st, path, ref or None)
            f.lifecycle.emit_object("image", "import", image_id, ref, {"source": path})
            return api.ImagesDone(ids=[image_id], tags=[ref] if ref else [])
        case api.ImageLoad(path=path):
            async with f.image_gate.adding():
                loaded = await trio.to_thread.run_sync(archive.load, st, Path(path))
            for image_id, tags in loaded:
                f.lifecycle.emit_object("image", "load", image_id, ",".join(tags))
            return api.ImagesDone(
                ids=[i for i, _ in loaded], tags=[t for _, ts in loaded for t in ts]
            )
        case api.ImageSave(ref=ref, path=path):
            image_id = st.resolve(ref)
            tags = [ref] if not ref.startswith("sha256:") and ":" in ref else st.tags(image_id)
            await trio.to_thread.run_sync(archive.save, st, image_id, Path(path), tags)
            f.lifecycle.emit_object("image", "save", image_id, ref)
            return api.ImagesDone(ids=[image_id])
        case api.ImageCommit(id=ref, ref=target, message=message, author=author, pause=pause):
            c = f.get(ref)
            from supervisor.images import changes  # only for --change

            run_config = changes.apply(
                run_config_of(c.config, st, c.config.image_id), list(req.changes)
            )
            freeze = pause and c.state.status == "running"
            if freeze:
                async with c.lock:
                    await c.pause()
            try:
                async with f.image_gate.adding():
                    image_id = await trio.to_thread.run_sync(
                        partial(
                            st.commit,
                            upper=c.path / "upper",
                            base_image=c.config.image_id or None,
                            base_rootfs=None if c.config.image_id else c.config.rootfs,
                            run_config=run_config,
                            message=message,
                            author=author,
                            skip_empty=PLACEHOLDERS,
                        )
                    )
            finally:
                if freeze:
                    async with c.lock:
                        await c.unpause()
            if target:
                st.tag(image_id, target)
            f.lifecycle.emit_object("image", "commit", image_id, target, {"container": c.id})
            return api.ImagesDone(ids=[image_id], tags=[target] if target else [])
        case api.ImageList(filters=wanted):
            filters.check_keys(wanted, filters.IMAGE_KEYS)
            bounds = {
                k: [st.config(st.resolve(v)).created for v in wanted.get(k, [])]
                for k in ("before", "since")
            }
            # The build cache's steps are not images of the user's (docker images
            # hides a build's intermediate images too), unless tagged.
            steps = f.build_cache.images
            listed = [i for i in st.images() if i not in steps or st.tags(i)]
            summaries = await _summaries(f, listed)
            images = [
                im
                for im in summaries
                if filters.image(im, st.config(im.id).config.labels or {}, wanted, bounds)
            ]
            images.sort(key=lambda im: im.created, reverse=True)  # newest first, as Docker's
            return api.ImageListResult(images=images)
        case api.ImageTag(source=source, target=target):
            image_id = st.resolve(source)
            st.tag(image_id, target)
            f.lifecycle.emit_object("image", "tag", image_id, target)
            return api.ImagesDone(ids=[image_id], tags=[target])
        case api.ImageInspect(ref=ref):
            image_id = st.resolve(ref)
            cfg = st.config(image_id)
            # Docker's image inspect shape (scripts read .Config.Cmd, .Os, .RootFS).
            data = {
                "Id": image_id,
                "RepoTags": st.tags(image_id),
                "RepoDigests": st.repo_digests(image_id),
                "Parent": "",
                "Comment": cfg.history[-1].comment if cfg.history else "",  # commit -m
                "Created": cfg.created,
                "Author": cfg.author,
                "Config": msgspec.to_builtins(cfg.config),
                "Architecture": cfg.architecture,
                "Os": cfg.os,
                "Size": (await _summaries(f, [image_id]))[0].size,
                "GraphDriver": {
                    "Name": "overlay",
                    "Data": {"LowerDir": ":".join(str(d) for d in st.layer_dirs(image_id))},
                },
                "RootFS": {"Type": cfg.rootfs.type, "Layers": list(cfg.rootfs.diff_ids)},
                "History": msgspec.to_builtins(cfg.history),  # Corral's: what `history` prints
            }
            return api.InspectResult(data=data)
        case api.ImageRemove(ref=ref, force=force):
            async with f.image_gate.removing():
                image_id = st.resolve(ref)
                users = f.image_users(image_id)
                named = normalize(ref) in st.repos and len(st.tags(image_id)) > 1
                if named:  # one of several tags: only that tag goes (Docker's rmi)
                    st.untag(ref)
                    f.lifecycle.emit_object("image", "untag", image_id, normalize(ref))
                    return api.ImagesDone(ids=[image_id], tags=[normalize(ref)])
                if users and not force:
                    raise Conflict(
                        f"image {ref} is in use by container(s) "
                        f"{', '.join(u[:12] for u in users)}: remove them, or use force"
                    )
                if users:  # forced: the tags go, the layers stay while containers use them
                    for t in st.tags(image_id):
                        st.untag(t)
                        f.lifecycle.emit_object("image", "untag", image_id, t)
                    return api.ImagesDone(ids=[image_id])
                tags = st.tags(image_id)
                # Layers are trees of any size: removed in a worker thread.
                removed = await trio.to_thread.run_sync(partial(st.remove_image, image_id, set()))
                f.lifecycle.emit_object("image", "delete", image_id, ",".join(tags))
                return api.ImagesDone(ids=[image_id], tags=tags, deleted=removed)
        case api.ImagePrune(all=everything):
            async with f.image_gate.removing():
                ids, tags, deleted, size = [], [], [], 0
                steps = f.build_cache.images  # builder prune's to remove, not image prune's
                for image_id in st.images():
                    if f.image_users(image_id) or (st.tags(image_id) and not everything):
                        continue
                    if image_id in steps and not st.tags(image_id):
                        continue
                    tags += st.tags(image_id)
                    layers = st.layers_only_of(image_id)
                    dirs = [st.layers / c.removeprefix("sha256:") for c in layers]
                    size += await trio.to_thread.run_sync(lambda d=dirs: sum(du(x) for x in d))
                    deleted += await trio.to_thread.run_sync(
                        partial(st.remove_image, image_id, set())
                    )
                    ids.append(image_id)
                    f.lifecycle.emit_object("image", "delete", image_id, "")
                return api.ImagesDone(ids=ids, tags=tags, deleted=deleted, size=size)
    raise SpecError("request", f"unexpected {type(req).__name__}")


def _import(st, path: str, ref: str | None) -> str:
    with open(path, "rb") as fh:
        return st.import_rootfs(fh, ref)


async def registry_login(registry: str, user: str, password: str) -> None:
    """Check the credentials against the registry's /v2/ endpoint."""
    client = registry_client.Client(registry, credentials=lambda r: (user, password))
    try:
        r = await client.request("GET", "/v2/", scope="registry:catalog:*")
        if r.status_code != 200:
            raise SpecError("login", f"{registry} refused the credentials (HTTP {r.status_code})")
    except registry_client.RegistryError as e:
        raise SpecError("login", f"{registry} refused the credentials: {e}") from None
    finally:
        await client.aclose()


async def _summaries(f: Fleet, ids: list[str]) -> list[api.ImageSummary]:
    """images' rows; sizes never measured before are measured in a thread."""
    dirs = {d for i in ids for d in f.images.layer_dirs(i)}
    await trio.to_thread.run_sync(lambda: [f.images.layer_size(d) for d in dirs])
    return [image_summary(f, i) for i in ids]


def image_summary(f: Fleet, image_id: str) -> api.ImageSummary:
    st = f.images
    # What its layers take on disk, as `system df` counts them (shared layers
    # once there): measured once per layer (ImageStore.layer_size), and the
    # first time in a worker thread (the callers' await).
    size = sum(st.layer_size(d) for d in st.layer_dirs(image_id))
    return api.ImageSummary(
        id=image_id,
        tags=st.tags(image_id),
        digests=st.repo_digests(image_id),
        created=st.config(image_id).created,
        size=size,
        containers=len(f.image_users(image_id)),
    )


def run_config_of(cfg: api.ContainerConfig, st, image_id: str) -> RunConfig:
    """The container's configuration in an image's terms, as docker commit keeps
    it: its image's entrypoint (or --entrypoint) and the rest of its command."""
    base = st.config(image_id).config if image_id else RunConfig()
    entry = cfg.entrypoint if cfg.entrypoint is not None else list(base.entrypoint or [])
    cmd = cfg.cmd[len(entry) :] if entry and cfg.cmd[: len(entry)] == entry else cfg.cmd
    env: dict[str, str] = {}
    for e in cfg.env:
        key, _, _ = e.partition("=")
        env.pop(key, None)
        env[key] = e
    return msgspec.structs.replace(
        base,
        env=list(env.values()) or None,
        cmd=list(cmd) or None,
        entrypoint=list(entry) or None,
        working_dir=cfg.workdir,
        user=cfg.user,
        labels=dict(cfg.labels) or None,
        stop_signal=cfg.stop_signal,
        exposed_ports={p: {} for p in cfg.expose} or None,
    )


async def request(conn: Connection, req: msgspec.Struct, inbox) -> None:
    await conn.send(await images_request(conn.fleet, req))


async def logout(conn: Connection, req: api.Logout, inbox) -> None:
    conn.fleet.credentials.remove(req.registry)
    await conn.send(api.Ok())


async def load(conn: Connection, req: api.ImageLoad, inbox) -> None:
    if req.path:
        await request(conn, req, inbox)
    else:  # the archive follows, as docker load's stdin
        await load_streamed(conn, req, inbox)


async def save(conn: Connection, req: api.ImageSave, inbox) -> None:
    if req.path:
        await request(conn, req, inbox)
    else:  # the archive goes back, for stdout
        await save_streamed(conn, req, inbox)


async def transfer_(conn: Connection, req: msgspec.Struct, inbox) -> None:
    """pull, push, login: progress streamed as it happens, then the result."""
    send_ch, recv_ch = trio.open_memory_channel(256)
    last: dict[str, float] = {}

    def report(id: str, status: str, current: int, total: int) -> None:
        now = time.monotonic()
        if status == "Downloading" and now - last.get(id, 0.0) < 0.1 and current < total:
            return  # ten a second per layer: a moving bar, not a message per chunk
        last[id] = now
        try:
            send_ch.send_nowait(api.Progress(id=id, status=status, current=current, total=total))
        except trio.WouldBlock:
            pass

    async def forward() -> None:
        async for msg in recv_ch:
            await conn.send(msg)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward)
        try:
            result = await run_transfer(conn.fleet, req, report)
        finally:
            send_ch.close()
    await conn.send(result)


async def run_transfer(f: Fleet, req, report) -> msgspec.Struct:
    if isinstance(req, api.ImagePull | api.ImagePush):  # no rmi meanwhile
        async with f.image_gate.adding():
            return await _transfer_now(f, req, report)
    return await _transfer_now(f, req, report)


async def _transfer_now(f: Fleet, req, report) -> msgspec.Struct:
    creds = f.credentials.get
    match req:
        case api.ImagePull(ref=ref, platform=platform, insecure=insecure):
            image_id, name, fetched, digest = await transfer.pull(
                f.images,
                ref,
                platform=platform,
                insecure=insecure,
                credentials=creds,
                report=report,
                max_downloads=f.max_downloads,
            )
            f.lifecycle.emit_object("image", "pull", image_id, name, {"layers": str(fetched)})
            return api.ImagesDone(
                ids=[image_id],
                tags=[name],
                deleted=[] if fetched else ["up to date"],
                digest=digest,
            )
        case api.ImagePush(ref=ref, insecure=insecure):
            digest = await transfer.push(
                f.images, ref, ref, insecure=insecure, credentials=creds, report=report
            )
            f.lifecycle.emit_object("image", "push", digest, ref)
            return api.ImagesDone(ids=[digest], tags=[ref])
        case api.Login(registry=registry, username=user, password=password):
            await registry_login(registry, user, password)
            f.credentials.save(registry, user, password)
            return api.Ok()
    raise SpecError("request", f"unexpected {type(req).__name__}")


def _spool_dir(f: Fleet) -> Path:
    """Where streamed archives are kept while loaded or saved: on the root's
    disk, not /run's memory (images are large)."""
    d = f.store.dir.parent / "tmp"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


async def load_streamed(conn: Connection, req, inbox: trio.MemoryReceiveChannel) -> None:
    with tempfile.TemporaryDirectory(dir=_spool_dir(conn.fleet)) as tmp:
        path = Path(tmp) / "stdin.tar"
        with open(path, "wb") as out:
            await conn.receive_into(inbox, out)
        await conn.send(await images_request(conn.fleet, api.ImageLoad(path=str(path))))


async def save_streamed(conn: Connection, req, inbox) -> None:
    ref = req.ref
    with tempfile.TemporaryDirectory(dir=_spool_dir(conn.fleet)) as tmp:
        path = Path(tmp) / "image.tar"
        await images_request(conn.fleet, api.ImageSave(ref=ref, path=str(path)))
        with open(path, "rb") as f:
            await conn.send_archive(f)


ROUTES = {
    api.ImagePull: transfer_,
    api.ImagePush: transfer_,
    api.Login: transfer_,
    api.Logout: logout,
    api.ImageLoad: load,
    api.ImageSave: save,
    **{
        t: request
        for t in (
            api.ImageImport,
            api.ImageCommit,
            api.ImageList,
            api.ImageTag,
            api.ImageRemove,
            api.ImageInspect,
            api.ImagePrune,
        )
    },
}
