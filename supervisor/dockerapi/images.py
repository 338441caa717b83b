"""/images, /build, /commit, /auth: pull and push with Docker's JSON progress
stream, list, inspect, history, tag, rmi, save, load, import, commit, prune,
and the classic builder's stream for `docker build`."""

from __future__ import annotations

import base64
import calendar
import json
import re
import tarfile
import tempfile
import time
from pathlib import Path

import trio

from protocols import api
from supervisor.daemon.api_images import _spool_dir
from supervisor.dockerapi.context import Api, filters_of
from supervisor.dockerapi.http import Exchange, HttpError
from supervisor.dockerapi.streams import send_archive


def _epoch(created: str) -> int:
    """RFC 3339 (an image config's `created`) to Unix seconds."""
    if not created:
        return 0
    try:
        return calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


def _ref(name: str, tag: str) -> str:
    if not tag:
        return name
    if tag.startswith("sha256:"):
        return f"{name}@{tag}"
    return f"{name}:{tag}"


class JsonStream:
    """Docker's JSON-lines progress stream, started on its first line."""

    def __init__(self, ex: Exchange) -> None:
        self.ex, self.started = ex, False

    async def line(self, obj: dict) -> None:
        if not self.started:
            self.started = True
            await self.ex.start_stream("application/json")
        await self.ex.stream(json.dumps(obj, separators=(",", ":")).encode() + b"\r\n")

    async def error(self, message: str) -> None:
        await self.line({"errorDetail": {"message": message}, "error": message})

    async def end(self) -> None:
        if not self.started:
            self.started = True
            await self.ex.start_stream("application/json")
        await self.ex.end_stream()


def _progress_line(p: api.Progress) -> dict:
    out: dict = {"status": p.status, "id": p.id[:12] if len(p.id) > 12 else p.id}
    if p.total:
        out["progressDetail"] = {"current": p.current, "total": p.total}
        width = int(50 * p.current / p.total) if p.total else 0
        out["progress"] = (
            "["
            + "=" * max(width - 1, 0)
            + (">" if width < 50 else "=")
            + " " * (50 - width)
            + f"] {p.current}/{p.total}"
        )
    else:
        out["progressDetail"] = {}
    return out


async def _transfer(a: Api, ex: Exchange, req, js: JsonStream) -> api.ImagesDone | None:
    """Pull or push with its progress; an error after the first line goes in
    the stream, as dockerd sends it (the status is already 200)."""
    done = None

    async def out(msg) -> None:
        nonlocal done
        if isinstance(msg, api.Progress):
            await js.line(_progress_line(msg))
        elif isinstance(msg, api.ImagesDone):
            done = msg

    try:
        await a.relay(out).run(req)
    except HttpError as e:
        if not js.started:
            raise
        await js.error(e.message)
        return None
    return done


def _save_auth(a: Api, ex: Exchange, registry_of: str) -> None:
    """X-Registry-Auth (base64 JSON): the credentials used for this pull/push."""
    raw = ex.headers.get("x-registry-auth", "")
    if not raw:
        return
    try:
        auth = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        raise HttpError(400, "invalid X-Registry-Auth header") from None
    user, password = auth.get("username") or "", auth.get("password") or ""
    if user and password:
        a.fleet.credentials.save(auth.get("serveraddress") or registry_of, user, password)


def _registry(ref: str) -> str:
    first = ref.split("/", 1)[0]
    return (
        first
        if "/" in ref and ("." in first or ":" in first or first == "localhost")
        else ("docker.io")
    )


async def create(a: Api, ex: Exchange) -> None:
    """POST /images/create: a pull (fromImage) or an import (fromSrc=-)."""
    if ex.arg("fromSrc"):
        await _import(a, ex)
        return
    name = ex.arg("fromImage")
    if not name:
        raise HttpError(400, "fromImage or fromSrc is required")
    ref = _ref(name, ex.arg("tag"))
    if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
        ref += ":latest"
    _save_auth(a, ex, _registry(ref))
    js = JsonStream(ex)
    platform = ex.arg("platform") or "linux/amd64"
    await js.line({"status": f"Pulling from {name.split(':')[0]}", "id": ex.arg("tag") or "latest"})
    done = await _transfer(a, ex, api.ImagePull(ref=ref, platform=platform), js)
    if done is not None:
        if done.digest:
            await js.line({"status": f"Digest: {done.digest}"})
        word = "Image is up to date" if done.deleted == ["up to date"] else "Downloaded newer image"
        await js.line({"status": f"Status: {word} for {ref}"})
    await js.end()


async def _import(a: Api, ex: Exchange) -> None:
    if ex.arg("fromSrc") != "-":
        raise HttpError(400, "only fromSrc=- (the request's body) is supported")
    ref = _ref(ex.arg("repo"), ex.arg("tag")) if ex.arg("repo") else ""
    with tempfile.TemporaryDirectory(dir=_spool_dir(a.fleet)) as tmp:
        path = Path(tmp) / "import.tar"
        await _spool_body(ex, path)
        done = await a.call(api.ImageImport(path=str(path), ref=ref))
    js = JsonStream(ex)
    await js.line({"status": done.ids[0]})
    await js.end()


async def _spool_body(ex: Exchange, path: Path) -> None:
    async with await trio.open_file(path, "wb") as out:
        async for chunk in ex.chunks():
            await out.write(chunk)


async def push(a: Api, ex: Exchange, name: str) -> None:
    ref = _ref(name, ex.arg("tag"))
    _save_auth(a, ex, _registry(ref))
    js = JsonStream(ex)
    await js.line({"status": f"The push refers to repository [{name}]"})
    done = await _transfer(a, ex, api.ImagePush(ref=ref), js)
    if done is not None:
        tag = ex.arg("tag") or "latest"
        await js.line({"status": f"{tag}: digest: {done.ids[0]}"})
        await js.line({"progressDetail": {}, "aux": {"Tag": tag, "Digest": done.ids[0]}})
    await js.end()


def _summary(s: api.ImageSummary, labels: dict | None) -> dict:
    return {
        "Id": s.id,
        "ParentId": "",
        "RepoTags": s.tags,
        "RepoDigests": s.digests,
        "Created": _epoch(s.created),
        "Size": s.size,
        "SharedSize": -1,
        "Labels": labels or {},
        "Containers": s.containers,
    }


async def list_(a: Api, ex: Exchange) -> None:
    filters = filters_of(ex.json_arg("filters"))
    if ex.arg("filter"):  # API < 1.41's one reference
        filters.setdefault("reference", []).append(ex.arg("filter"))
    res = await a.call(api.ImageList(filters=filters))
    st = a.fleet.images
    rows = [_summary(s, st.config(s.id).config.labels) for s in res.images]
    await ex.send_json(200, rows)


async def inspect(a: Api, ex: Exchange, name: str) -> None:
    res = await a.call(api.ImageInspect(ref=name))
    data = dict(res.data)
    data.update(
        Container="",
        DockerVersion="",
        VirtualSize=data.get("Size", 0),
        Metadata={"LastTagTime": "0001-01-01T00:00:00Z"},
    )
    await ex.send_json(200, data)


async def history(a: Api, ex: Exchange, name: str) -> None:
    st = a.fleet.images
    try:
        image_id = st.resolve(name)
    except Exception as e:
        from supervisor.dockerapi.relay import http_error

        raise http_error(e, api.ImageInspect(ref=name)) from None
    cfg = st.config(image_id)
    dirs = st.layer_dirs(image_id)

    def sizes() -> list[int]:
        return [st.layer_size(d) for d in dirs]

    layer_sizes = await trio.to_thread.run_sync(sizes)
    rows, i = [], 0
    for h in cfg.history:
        size = 0
        if not h.empty_layer and i < len(layer_sizes):
            size, i = layer_sizes[i], i + 1
        rows.append(
            {
                "Id": "<missing>",
                "Created": _epoch(h.created or ""),
                "CreatedBy": h.created_by or "",
                "Tags": None,
                "Size": size,
                "Comment": h.comment or "",
            }
        )
    rows.reverse()
    if rows:
        rows[0]["Id"], rows[0]["Tags"] = image_id, st.tags(image_id) or None
    await ex.send_json(200, rows)


async def tag(a: Api, ex: Exchange, name: str) -> None:
    repo = ex.arg("repo")
    if not repo:
        raise HttpError(400, "repo is required")
    await a.call(api.ImageTag(source=name, target=_ref(repo, ex.arg("tag") or "latest")))
    await ex.send(201)


async def remove(a: Api, ex: Exchange, name: str) -> None:
    res = await a.call(api.ImageRemove(ref=name, force=ex.flag("force")))
    out = [{"Untagged": t} for t in res.tags]
    if res.ids and res.ids[0] not in a.fleet.images.images():  # gone, not only untagged
        out.append({"Deleted": res.ids[0]})
    await ex.send_json(200, out)


async def save(a: Api, ex: Exchange, name: str = "") -> None:
    names = [name] if name else ex.query.get("names", [])
    if len(names) != 1:
        raise HttpError(400, "save one image at a time (Corral's archives hold one image)")
    await send_archive(a, ex, api.ImageSave(ref=names[0], path=""))


async def load(a: Api, ex: Exchange) -> None:
    with tempfile.TemporaryDirectory(dir=_spool_dir(a.fleet)) as tmp:
        path = Path(tmp) / "load.tar"
        await _spool_body(ex, path)
        done = await a.call(api.ImageLoad(path=str(path)))
    js = JsonStream(ex)
    for t in done.tags:
        await js.line({"stream": f"Loaded image: {t}\n"})
    for i in done.ids if not done.tags else []:
        await js.line({"stream": f"Loaded image ID: {i}\n"})
    await js.end()


async def commit(a: Api, ex: Exchange) -> None:
    body = await ex.json()
    container = ex.arg("container")
    if not container:
        raise HttpError(400, "container is required")
    changes = ex.query.get("changes", [])
    changes += _config_changes(body)
    repo = ex.arg("repo")
    ref = _ref(repo, ex.arg("tag") or "latest") if repo else ""
    done = await a.call(
        api.ImageCommit(
            id=container,
            ref=ref,
            message=ex.arg("comment"),
            author=ex.arg("author"),
            pause=ex.flag("pause", True),
            changes=changes,
        )
    )
    await ex.send_json(201, {"Id": done.ids[0]})


def _config_changes(body: dict) -> list[str]:
    """A commit's config body (docker-py's conf=) as the Dockerfile lines --change takes."""
    out = []
    if body.get("Cmd"):
        out.append("CMD " + json.dumps(body["Cmd"]))
    if body.get("Entrypoint"):
        out.append("ENTRYPOINT " + json.dumps(body["Entrypoint"]))
    out += [f"ENV {e.partition('=')[0]}={e.partition('=')[2]}" for e in body.get("Env") or []]
    out += [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in (body.get("Labels") or {}).items()]
    if body.get("WorkingDir"):
        out.append(f"WORKDIR {body['WorkingDir']}")
    if body.get("User"):
        out.append(f"USER {body['User']}")
    out += [f"EXPOSE {p}" for p in body.get("ExposedPorts") or {}]
    return out


async def search(a: Api, ex: Exchange) -> None:
    raise HttpError(501, "search is not supported by Corral: pull an image by its name")


async def prune(a: Api, ex: Exchange) -> None:
    filters = filters_of(ex.json_arg("filters"))
    everything = "false" in [v.lower() for v in filters.pop("dangling", [])]
    if filters:
        raise HttpError(400, f"invalid filter {next(iter(filters))!r} for image prune")
    done = await a.call(api.ImagePrune(all=everything))
    rows = [{"Untagged": t} for t in done.tags] + [{"Deleted": i} for i in done.ids]
    await ex.send_json(200, {"ImagesDeleted": rows or None, "SpaceReclaimed": done.size})


async def auth(a: Api, ex: Exchange) -> None:
    body = await ex.json(required=True)
    server = body.get("serveraddress") or "docker.io"
    server = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    await a.call(
        api.Login(
            registry=server, username=body.get("username", ""), password=body.get("password", "")
        )
    )
    await ex.send_json(200, {"Status": "Login Succeeded", "IdentityToken": ""})


# -- build -----------------------------------------------------------------------------------


def _dockerfile_of(spool, name: str) -> str:
    spool.seek(0)
    try:
        with tarfile.open(fileobj=spool, mode="r|*") as tar:
            for m in tar:
                if m.name.lstrip("./") == name.lstrip("./") and m.isfile():
                    f = tar.extractfile(m)
                    return f.read().decode() if f else ""
    except tarfile.TarError as e:
        raise HttpError(400, f"the build context is not a tar archive: {e}") from None
    raise HttpError(
        500, f"Cannot locate specified Dockerfile: {name}"
    )  # dockerd's words and status


_STEP = re.compile(r"^\[(?:\S+ )?(\d+)/(\d+)\] (.*)$", re.S)


def _step(name: str) -> str:
    """Corral's step name ("[build 2/4] RUN make") as the classic builder's
    ("2/4 : RUN make")."""
    m = _STEP.match(name)
    return f"{m.group(1)}/{m.group(2)} : {m.group(3)}" if m else name


async def build(a: Api, ex: Exchange) -> None:
    """POST /build: the classic builder's JSON stream over Corral's builder."""
    dockerfile_name = ex.arg("dockerfile") or "Dockerfile"
    args = ex.json_arg("buildargs")
    labels = ex.json_arg("labels")
    quiet = ex.flag("q")
    with tempfile.TemporaryFile(dir=_spool_dir(a.fleet)) as spool:
        async for chunk in ex.chunks():
            await trio.to_thread.run_sync(spool.write, chunk)
        text = await trio.to_thread.run_sync(_dockerfile_of, spool, dockerfile_name)
        spool.seek(0)
        req = api.Build(
            dockerfile=text,
            dockerfile_name=dockerfile_name,
            tags=ex.query.get("t", []),
            build_args={k: v for k, v in args.items() if v is not None},
            target=ex.arg("target"),
            no_cache=ex.flag("nocache"),
            pull=ex.flag("pull"),
            labels={str(k): str(v) for k, v in labels.items()},
        )
        js = JsonStream(ex)
        send, inbox = trio.open_memory_channel(4)

        async def feed() -> None:
            async with send:
                while chunk := await trio.to_thread.run_sync(spool.read, 1 << 20):
                    await send.send(api.StdinData(data=chunk))
                await send.send(api.StdinClose())

        result = None
        steps: set[int] = set()

        async def out(msg) -> None:
            nonlocal result
            if isinstance(msg, api.BuildProgress):
                if quiet:
                    return
                if msg.status in ("started", "cached") and msg.vertex not in steps:
                    steps.add(msg.vertex)
                    await js.line({"stream": f"Step {_step(msg.name)}\n"})
                if msg.status == "cached":
                    await js.line({"stream": " ---> Using cache\n"})
                elif msg.status == "log" and msg.data:
                    await js.line({"stream": msg.data.decode(errors="replace")})
            elif isinstance(msg, api.BuildResult):
                result = msg

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed)
                await a.relay(out).run(req, inbox)
        except HttpError as e:
            await js.error(e.message)
            await js.end()
            return
    if result is not None:
        short = result.image_id.removeprefix("sha256:")[:12]
        await js.line({"aux": {"ID": result.image_id}})
        if not quiet:
            await js.line({"stream": f"Successfully built {short}\n"})
            for t in result.tags:
                await js.line({"stream": f"Successfully tagged {t}\n"})
    await js.end()


async def build_prune(a: Api, ex: Exchange) -> None:
    res = await a.call(api.BuilderPrune())
    await ex.send_json(
        200, {"CachesDeleted": res.removed or None, "SpaceReclaimed": res.reclaimed_bytes}
    )
