"""The daemon's image requests: import, load, save, list, tag, inspect, rmi,
prune (pull and push stream progress, and stay in the server)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import msgspec
import trio

from protocols import api
from protocols.image import RunConfig
from supervisor.daemon import filters
from supervisor.daemon.fleet import Conflict, Fleet
from supervisor.daemon.fleet_networks import PLACEHOLDERS
from supervisor.errors import SpecError
from supervisor.images import registry as registry_client
from supervisor.images.store import normalize
from supervisor.volumes.store import du


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
            f.journal.append("image", "import", image_id, ref, {"source": path})
            return api.ImagesDone(ids=[image_id], tags=[ref] if ref else [])
        case api.ImageLoad(path=path):
            async with f.image_gate.adding():
                loaded = await trio.to_thread.run_sync(st.load, Path(path))
            for image_id, tags in loaded:
                f.journal.append("image", "load", image_id, ",".join(tags))
            return api.ImagesDone(
                ids=[i for i, _ in loaded], tags=[t for _, ts in loaded for t in ts]
            )
        case api.ImageSave(ref=ref, path=path):
            image_id = st.resolve(ref)
            tags = [ref] if not ref.startswith("sha256:") and ":" in ref else st.tags(image_id)
            await trio.to_thread.run_sync(st.save, image_id, Path(path), tags)
            f.journal.append("image", "save", image_id, ref)
            return api.ImagesDone(ids=[image_id])
        case api.ImageCommit(id=ref, ref=target, message=message, author=author, pause=pause):
            c = f.get(ref)
            from supervisor.images import changes  # only for --change

            run_config = changes.apply(
                run_config_of(c.config, st, c.config.image_id), list(req.changes)
            )
            freeze = pause and c.state.status == "running"
            if freeze:
                f.pause(c)
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
                    f.unpause(c)
            if target:
                st.tag(image_id, target)
            f.journal.append("image", "commit", image_id, target, {"container": c.id})
            return api.ImagesDone(ids=[image_id], tags=[target] if target else [])
        case api.ImageList(filters=wanted):
            filters.check_keys(wanted, filters.IMAGE_KEYS)
            bounds = {
                k: [st.config(st.resolve(v)).created for v in wanted.get(k, [])]
                for k in ("before", "since")
            }
            images = [
                im
                for i in st.images()
                if filters.image(
                    im := image_summary(f, i), st.config(i).config.labels or {}, wanted, bounds
                )
            ]
            images.sort(key=lambda im: im.created, reverse=True)  # newest first, as Docker's
            return api.ImageListResult(images=images)
        case api.ImageTag(source=source, target=target):
            image_id = st.resolve(source)
            st.tag(image_id, target)
            f.journal.append("image", "tag", image_id, target)
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
                "Size": image_summary(f, image_id).size,
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
                    f.journal.append("image", "untag", image_id, normalize(ref))
                    return api.ImagesDone(ids=[image_id], tags=[normalize(ref)])
                if users and not force:
                    raise Conflict(
                        f"image {ref} is in use by container(s) "
                        f"{', '.join(u[:12] for u in users)}: remove them, or use force"
                    )
                if users:  # forced: the tags go, the layers stay while containers use them
                    for t in st.tags(image_id):
                        st.untag(t)
                        f.journal.append("image", "untag", image_id, t)
                    return api.ImagesDone(ids=[image_id])
                tags = st.tags(image_id)
                # Layers are trees of any size: removed in a worker thread.
                removed = await trio.to_thread.run_sync(partial(st.remove_image, image_id, set()))
                f.journal.append("image", "delete", image_id, ",".join(tags))
                return api.ImagesDone(ids=[image_id], tags=tags, deleted=removed)
        case api.ImagePrune(all=everything):
            async with f.image_gate.removing():
                ids, tags, deleted, size = [], [], [], 0
                for image_id in st.images():
                    if f.image_users(image_id) or (st.tags(image_id) and not everything):
                        continue
                    tags += st.tags(image_id)
                    layers = st.layers_only_of(image_id)
                    dirs = [st.layers / c.removeprefix("sha256:") for c in layers]
                    size += await trio.to_thread.run_sync(lambda d=dirs: sum(du(x) for x in d))
                    deleted += await trio.to_thread.run_sync(
                        partial(st.remove_image, image_id, set())
                    )
                    ids.append(image_id)
                    f.journal.append("image", "delete", image_id)
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


def image_summary(f: Fleet, image_id: str) -> api.ImageSummary:
    st = f.images
    # What its layers take on disk: the files and the blob each came as (kept
    # for save and push), as `system df` counts them (shared layers once there).
    size = sum(du(d) + _blob_size(d) for d in st.layer_dirs(image_id))
    return api.ImageSummary(
        id=image_id,
        tags=st.tags(image_id),
        digests=st.repo_digests(image_id),
        created=st.config(image_id).created,
        size=size,
        containers=len(f.image_users(image_id)),
    )


def _blob_size(layer_dir: Path) -> int:
    try:
        return (layer_dir.parent / "blob").stat().st_size
    except FileNotFoundError:
        return 0


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
