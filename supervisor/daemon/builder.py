"""`corral build`, carried out by the daemon on its own runtime, image store and
snapshotter (the overlay of an image's layers).

Each stage the target needs runs as its own task, once the stages it names
(FROM a stage, COPY --from a stage) are built: independent stages build
concurrently, and a stage the target does not need is not built. Each step
is looked up in the cache first (supervisor/build/cache.py: the parent's key
and the instruction as it will run, and for COPY/ADD the checksum of what it
copies); a hit reuses the image the step made last time.

- A configuration step (ENV, LABEL, CMD, ...) changes the image's config and
  adds a history line, no layer (supervisor/build/steps.py).
- RUN runs in a real container of the fleet, from the step's image, with the
  default security profile and the default network, its output relayed as it
  comes; a non-zero exit stops the build. Its writes (the container's upper
  directory) become the next layer, as `commit` makes one.
- COPY and ADD build their layer in a work directory (supervisor/build/
  layers.py), with the stage's root mounted read-only beside it for the
  destination's existing parents and --chown's names.
- WORKDIR makes its directory in a layer, as Docker's builder does.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import structlog
import trio

from protocols import api
from protocols.container import ContainerConfig
from protocols.image import History, ImageConfig, RunConfig
from supervisor.build import cache as caching
from supervisor.build import dockerfile as dfp
from supervisor.build import layers, steps
from supervisor.daemon import logs
from supervisor.daemon.networking import PLACEHOLDERS
from supervisor.errors import BuildError, CorralError, NoSuchImage

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Fleet

log = structlog.get_logger("corral.build")

Report = Callable[[api.BuildProgress], None]
BUILD_LABEL = "com.corral.build"  # on a RUN step's container: the build it is part of


@dataclass
class StageDef:
    index: int
    name: str  # AS name, else its index
    base: str  # what FROM names (expanded)
    instructions: list[dfp.Instruction]
    line: int
    named: bool


@dataclass
class Stage:
    """A stage as it builds: its image so far and the key that chains the cache."""

    state: steps.StageState = field(default_factory=steps.StageState)
    image_id: str = ""
    key: str = ""
    done: trio.Event = field(default_factory=trio.Event)
    failed: str = ""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Builder:
    def __init__(self, f: Fleet, req: api.Build, context: Path, work: Path, report: Report):
        self.f, self.req, self.context, self.work, self.report = f, req, context, work, report
        self.store = f.images
        self.cache = f.build_cache
        self.build_args = dict(req.build_args)
        self.used_args: set[str] = set()
        self.vertex = 0
        self.id = secrets.token_hex(6)
        self.warnings: list[str] = []

    # -- progress ----------------------------------------------------------------------------

    def _begin(self, name: str) -> tuple[int, float]:
        self.vertex += 1
        self.report(api.BuildProgress(vertex=self.vertex, name=name, status="started"))
        return self.vertex, time.monotonic()

    def _end(self, v: int, name: str, t: float, status: str = "done") -> None:
        self.report(
            api.BuildProgress(vertex=v, name=name, status=status, elapsed=time.monotonic() - t)
        )

    # -- the whole build -------------------------------------------------------------------

    async def run(self) -> api.BuildResult:
        df = dfp.parse(self.req.dockerfile, self.req.dockerfile_name)
        self.escape = df.escape
        for note in df.notes:
            self.warnings.append(note)
        stages, global_args = self._stages(df)
        target = self._target(stages)
        needed = self._needed(stages, target)
        built = {s.index: Stage() for s in stages if s.index in needed}
        self.stages, self.global_args = stages, global_args
        async with trio.open_nursery() as nursery:
            for s in stages:
                if s.index in needed:
                    nursery.start_soon(self._stage, s, built)
        final = built[target.index]
        image_id = await self._finish(final)
        unused = sorted(
            k for k in self.build_args if k not in self.used_args and k not in steps.PROXY_ARGS
        )
        if unused:
            self.warnings.append(f"[Warning] One or more build-args {unused} were not consumed")
        self.cache.save()
        return api.BuildResult(image_id=image_id, tags=list(self.req.tags), warnings=self.warnings)

    def _stages(self, df: dfp.Dockerfile) -> tuple[list[StageDef], dict[str, str]]:
        global_args: dict[str, str] = {}
        stages: list[StageDef] = []
        for ins in df.instructions:
            if ins.cmd == "FROM":
                words = dfp.expand(ins.rest, global_args, df.escape).split()
                if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
                    raise BuildError(f"Dockerfile:{ins.line}: FROM IMAGE [AS NAME]")
                name = words[2].lower() if len(words) == 3 else str(len(stages))
                stages.append(StageDef(len(stages), name, words[0], [], ins.line, len(words) == 3))
            elif not stages:  # ARG before the first FROM: for FROM lines only
                for word in ins.rest.split():
                    key, eq, default = word.partition("=")
                    if key in self.build_args:
                        global_args[key] = self.build_args[key]
                        self.used_args.add(key)
                    elif eq:
                        global_args[key] = default
            else:
                stages[-1].instructions.append(ins)
        return stages, global_args

    def _target(self, stages: list[StageDef]) -> StageDef:
        if not self.req.target:
            return stages[-1]
        for s in stages:
            if s.named and s.name == self.req.target.lower():
                return s
        raise BuildError(f"target stage {self.req.target!r} could not be found")

    def _ref(self, stages: list[StageDef], name: str, before: int) -> StageDef | None:
        """The stage `name` refers to (by name or index), among those before."""
        for s in stages[:before]:
            if s.name == name.lower() or (name.isdigit() and int(name) == s.index):
                return s
        return None

    def _needed(self, stages: list[StageDef], target: StageDef) -> set[int]:
        needed: set[int] = set()
        todo = [target]
        while todo:
            s = todo.pop()
            if s.index in needed:
                continue
            needed.add(s.index)
            refs = [s.base] + [i.flags["from"] for i in s.instructions if "from" in i.flags]
            for r in refs:
                dep = self._ref(stages, r, s.index)
                if dep is not None:
                    todo.append(dep)
        return needed

    def _label(self, s: StageDef, n: int, total: int) -> str:
        if s.named:
            return f"[{s.name} {n}/{total}]"
        if len(self.stages) > 1:
            return f"[stage-{s.index} {n}/{total}]"
        return f"[{n}/{total}]"

    # -- a stage ---------------------------------------------------------------------------

    async def _stage(self, s: StageDef, built: dict[int, Stage]) -> None:
        st = built[s.index]
        try:
            total = 1 + len(s.instructions)
            base = self._ref(self.stages, s.base, s.index)
            name = f"{self._label(s, 1, total)} FROM {s.base}"
            if base is not None:
                dep = built[base.index]
                await dep.done.wait()
                if dep.failed:
                    raise BuildError(dep.failed)
                st.image_id, st.key = dep.image_id, dep.key
                st.state = steps.StageState(config=dep.state.config, author=dep.state.author)
                v, t = self._begin(name)
                self._end(v, name, t, "cached")
            else:
                await self._from(s.base, st, name)
            st.state.global_args = dict(self.global_args)
            triggers = list(st.state.config.on_build or [])
            if triggers:  # the base's ONBUILD, first; the new image has none of its own
                st.state.config = msgspec.structs.replace(st.state.config, on_build=None)
                for text in triggers:
                    ins = dfp.parse("FROM scratch\n" + text).instructions[1]
                    await self._step(
                        s, st, ins, f"{self._label(s, 1, total)} ONBUILD {text}", built
                    )
            for n, ins in enumerate(s.instructions, start=2):
                await self._step(s, st, ins, f"{self._label(s, n, total)} {ins.original}", built)
        except CorralError as e:
            st.failed = str(e)
            raise
        finally:
            st.done.set()

    async def _from(self, ref: str, st: Stage, name: str) -> None:
        v, t = self._begin(name)
        if ref.lower() == "scratch":
            cfg = ImageConfig(
                architecture=_arch(),
                os="linux",
                created=_now(),
                config=steps.with_path(RunConfig()),
            )
            st.image_id = self.store.put_blob(msgspec.json.encode(cfg))
            self.cache.made.add(st.image_id)
            st.key = caching.key("scratch")
            st.state = steps.StageState(config=cfg.config)
            self._end(v, name, t)
            return
        image_id = None
        if not self.req.pull:
            try:
                image_id = self.store.resolve(ref)
            except NoSuchImage:
                image_id = None
        if image_id is None:
            from supervisor.daemon.api_images import run_transfer

            done = await run_transfer(self.f, api.ImagePull(ref=ref), lambda *a: None)
            image_id = done.ids[0]
        cfg = self.store.config(image_id)
        st.image_id, st.key = image_id, caching.key("from", image_id)
        st.state = steps.StageState(config=steps.with_path(cfg.config), author=cfg.author)
        self._end(v, name, t)

    def _cached(self, k: str) -> str | None:
        if self.req.no_cache:
            return None
        return self.cache.get(k, self._exists)

    def _exists(self, image_id: str) -> bool:
        try:
            self.store.config(image_id)
            return True
        except NoSuchImage:
            return False

    def _adopt(self, st: Stage, image_id: str, k: str) -> None:
        st.image_id, st.key = image_id, k
        self.cache.put(k, image_id)

    async def _step(
        self, s: StageDef, st: Stage, ins: dfp.Instruction, name: str, built: dict[int, Stage]
    ) -> None:
        v, t = self._begin(name)
        try:
            if ins.cmd == "RUN":
                hit = await self._run(st, ins, v)
            elif ins.cmd in ("COPY", "ADD"):
                hit = await self._copy(s, st, ins, built)
            elif ins.cmd == "WORKDIR":
                hit = await self._workdir(st, ins)
            elif ins.cmd == "FROM":
                raise BuildError(f"Dockerfile:{ins.line}: FROM inside a stage")
            else:
                hit = self._config_step(st, ins)
        except CorralError as e:
            self._end(v, name, t, "error")
            self.report(
                api.BuildProgress(vertex=v, name=name, status="log", data=f"{e}\n".encode())
            )
            raise
        self._end(v, name, t, "cached" if hit else "done")

    def _config_step(self, st: Stage, ins: dfp.Instruction) -> bool:
        created_by, used = steps.apply(ins, st.state, self.build_args)
        self.used_args |= used
        k = caching.key(st.key, ins.original, json.dumps(sorted(st.state.args.items())))
        hit = self._cached(k)
        if hit is not None:
            self._adopt(st, hit, k)
            return True
        cfg = self.store.config(st.image_id)
        new = msgspec.structs.replace(
            cfg,
            created=_now(),
            author=st.state.author or cfg.author,
            config=st.state.config,
            history=[
                *cfg.history,
                History(created=_now(), created_by=created_by, empty_layer=True),
            ],
        )
        self._adopt(st, self.store.put_blob(msgspec.json.encode(new)), k)
        return False

    # -- RUN -------------------------------------------------------------------------------

    async def _run(self, st: Stage, ins: dfp.Instruction, vertex: int) -> bool:
        argv = steps.run_command(ins, st.state)
        env, history_args = steps.run_env(st.state, self.build_args)
        self.used_args |= {a.partition("=")[0] for a in history_args}
        cfg = st.state.config
        k = caching.key(st.key, "RUN", json.dumps(argv), json.dumps(env), cfg.user, cfg.working_dir)
        hit = self._cached(k)
        if hit is not None:
            self._adopt(st, hit, k)
            return True
        created_by = steps.run_created_by(argv, history_args)
        cc = ContainerConfig(
            image=st.image_id,
            cmd=argv,
            entrypoint=[],
            env=env,
            user=cfg.user,
            workdir=cfg.working_dir,
            labels={BUILD_LABEL: self.id},
            no_healthcheck=True,
            stop_timeout=1,
        )
        u = await self.f.create(cc)
        try:
            async with u.lock:
                await u.start()
            async for rec in logs.follow(u.log_path, offset=0, exited=lambda: u.exited):
                self.report(
                    api.BuildProgress(
                        vertex=vertex, name="", status="log", data=rec.data, elapsed=0.0
                    )
                )
            await u.exited.wait()
            code = u.state.exit_code
            if code != 0:
                raise BuildError(
                    f"process {json.dumps(' '.join(argv))} did not complete successfully: "
                    f"exit code: {code}"
                )
            async with self.f.image_gate.adding():
                image_id = await trio.to_thread.run_sync(
                    partial(
                        self.store.commit,
                        upper=u.path / "upper",
                        base_image=st.image_id,
                        base_rootfs=None,
                        run_config=cfg,
                        skip_empty=PLACEHOLDERS,
                        created_by=created_by,
                    ),
                    limiter=self.f.tree_work,
                )
        finally:
            with trio.CancelScope(shield=True):
                async with u.lock:
                    await u.remove(force=True, volumes=True)
        self._adopt(st, image_id, k)
        return False

    # -- COPY, ADD, WORKDIR -----------------------------------------------------------------

    async def _root_of(self, ref: str, built: dict[int, Stage], before: int) -> str:
        """The image id whose files a COPY --from reads: a stage's, else an image's."""
        dep = self._ref(self.stages, ref, before)
        if dep is not None:
            await built[dep.index].done.wait()
            if built[dep.index].failed:
                raise BuildError(built[dep.index].failed)
            return built[dep.index].image_id
        try:
            return self.store.resolve(ref)
        except NoSuchImage:
            from supervisor.daemon.api_images import run_transfer

            return (await run_transfer(self.f, api.ImagePull(ref=ref), lambda *a: None)).ids[0]

    async def _copy(
        self, s: StageDef, st: Stage, ins: dfp.Instruction, built: dict[int, Stage]
    ) -> bool:
        v = st.state.variables()
        words = ins.json if ins.json is not None else ins.rest.split()
        if ins.heredocs:
            words = [w for w in words if not w.startswith("<<")]
        words = [dfp.expand(w, v, self.escape) for w in words]
        if not words or (len(words) < 2 and not ins.heredocs):
            raise BuildError(f"Dockerfile:{ins.line}: {ins.cmd} requires at least two arguments")
        dest = written = words[-1]
        # A directory when it says so: a trailing /, or . and .. (the WORKDIR itself).
        is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith(("/.", "/.."))
        if not dest.startswith("/"):
            dest = (st.state.config.working_dir or "/").rstrip("/") + "/" + dest
        dest = steps.clean_abs(dest) + ("/" if is_dir and dest != "/" else "")
        from_image = None
        if "from" in ins.flags:
            from_image = await self._root_of(dfp.expand(ins.flags["from"], v), built, s.index)
        chown = dfp.expand(ins.flags.get("chown", ""), v)
        chmod = layers.parse_chmod(ins.flags["chmod"]) if "chmod" in ins.flags else None
        patterns = words[:-1]
        what = f"Dockerfile:{ins.line}: {ins.cmd}"
        unpack = ins.cmd == "ADD"
        if any(p.startswith(("http://", "https://")) for p in patterns):
            raise BuildError(f"{what}: a URL source needs the network: not supported yet")
        return await trio.to_thread.run_sync(
            partial(
                self._copy_sync,
                st,
                ins,
                patterns,
                dest,
                from_image,
                chown,
                chmod,
                unpack,
                what,
                written,
            ),
            limiter=self.f.tree_work,
        )

    def _mounted(self, image_id: str, name: str):
        """The image's merged root, read-only, for the block (None: no layers)."""
        import contextlib

        from supervisor.daemon.copy import stopped_root

        dirs = self.store.layer_dirs(image_id)

        @contextlib.contextmanager
        def cm():
            if not dirs:
                yield None
                return
            if len(dirs) == 1:
                yield dirs[0]
                return
            d = self.work / f"{name}-{secrets.token_hex(4)}"
            (d / "u").mkdir(parents=True)
            (d / "w").mkdir()
            lower = ":".join(str(x) for x in reversed(dirs))
            try:
                with stopped_root(d / "m", lower, d / "u", d / "w") as root:
                    yield Path(root)
            finally:
                shutil.rmtree(d, ignore_errors=True)  # loop-safe: entered in worker threads only

        return cm()

    def _copy_sync(
        self,
        st: Stage,
        ins: dfp.Instruction,
        patterns: list[str],
        dest: str,
        from_image: str | None,
        chown: str,
        chmod: int | None,
        unpack: bool,
        what: str,
        written: str,
    ) -> bool:
        work = self.work / f"layer-{secrets.token_hex(4)}"
        work.mkdir(parents=True)
        try:
            with self._mounted(st.image_id, "base") as base:
                owner = layers.parse_chown(chown, base) if chown else None
                if ins.heredocs:
                    srcs: list[layers.Source] = []
                    sums = [caching.key("heredoc", h.content) for h in ins.heredocs]
                    ctx = None
                else:
                    ctx = self.context if from_image is None else None
                    sums = []
                if from_image is not None:
                    with self._mounted(from_image, "from") as root:
                        if root is None:
                            raise BuildError(f"{what}: --from image has no files")
                        srcs = layers.sources(root, patterns, what)
                        return self._place(
                            st,
                            ins,
                            srcs,
                            dest,
                            base,
                            owner,
                            chmod,
                            unpack,
                            work,
                            [layers.checksum(srcs), from_image],
                            written,
                        )
                if ctx is not None:
                    srcs = layers.sources(ctx, patterns, what)
                    sums = [layers.checksum(srcs)]
                return self._place(
                    st, ins, srcs, dest, base, owner, chmod, unpack, work, sums, written
                )
        finally:
            shutil.rmtree(work, ignore_errors=True)  # loop-safe: _copy_sync runs in a thread

    def _place(
        self, st, ins, srcs, dest, base, owner, chmod, unpack, work, sums, dest_word=None
    ) -> bool:
        flags = json.dumps(sorted(ins.flags.items()))
        k = caching.key(st.key, ins.cmd, flags, dest, *sums)
        hit = self._cached(k)
        if hit is not None:
            self._adopt(st, hit, k)
            return True
        root = work / "root"
        root.mkdir()
        os.chmod(root, 0o755)
        if ins.heredocs:
            for h in ins.heredocs:
                content = dfp.expand(h.content, st.state.variables()) if h.expand else h.content
                target = dest if not dest.endswith("/") else dest + h.name
                layers.write_file(root, target, content, chmod or 0o644, owner)
        else:
            layers.place(root, srcs, dest, base=base, owner=owner, chmod=chmod, unpack=unpack)
        kind = "multi" if len(srcs) > 1 else "dir" if srcs and srcs[0].path.is_dir() else "file"
        written = dest_word if dest_word is not None else dest  # as the file says it
        # Docker's builder writes --chown glued to the source's kind (its format).
        chown_note = f"--chown={ins.flags['chown']}" if "chown" in ins.flags else ""
        created_by = (
            " ".join(st.state.shell)
            + f" #(nop) {ins.cmd} {chown_note}{kind}:{(sums or ['0'])[0][:64]} in {written} "
        )
        image_id = self.store.commit(
            upper=root,
            base_image=st.image_id,
            base_rootfs=None,
            run_config=st.state.config,
            created_by=created_by,
        )
        self._adopt(st, image_id, k)
        return False

    async def _workdir(self, st: Stage, ins: dfp.Instruction) -> bool:
        created_by, _ = steps.apply(ins, st.state, self.build_args)
        path = st.state.config.working_dir
        k = caching.key(st.key, "WORKDIR", path)
        hit = self._cached(k)
        if hit is not None:
            self._adopt(st, hit, k)
            return True

        def make() -> str:
            work = self.work / f"layer-{secrets.token_hex(4)}"
            root = work / "root"
            root.mkdir(parents=True)
            os.chmod(root, 0o755)
            try:
                with self._mounted(st.image_id, "base") as base:
                    exists = base is not None and (base / path.lstrip("/")).is_dir()
                    if path != "/" and not exists:
                        layers.make_dirs(root, path, base)
                return self.store.commit(
                    upper=root,
                    base_image=st.image_id,
                    base_rootfs=None,
                    run_config=st.state.config,
                    created_by=created_by,
                )
            finally:
                shutil.rmtree(work, ignore_errors=True)  # loop-safe: make() runs in a thread

        self._adopt(st, await trio.to_thread.run_sync(make, limiter=self.f.tree_work), k)
        return False

    # -- the end ---------------------------------------------------------------------------

    async def _finish(self, final: Stage) -> str:
        if final.failed:
            raise BuildError(final.failed)
        image_id = final.image_id
        if self.req.labels:  # --label: on the image's config, no history line (as BuildKit)
            cfg = self.store.config(image_id)
            labels = {**(cfg.config.labels or {}), **self.req.labels}
            new = msgspec.structs.replace(
                cfg, config=msgspec.structs.replace(cfg.config, labels=labels)
            )
            image_id = self.store.put_blob(msgspec.json.encode(new))
        for tag in self.req.tags:
            self.store.tag(image_id, tag)
            self.f.lifecycle.emit_object("image", "tag", image_id, tag)
        self.f.lifecycle.emit_object("image", "build", image_id, ",".join(self.req.tags))
        return image_id


def _arch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)
