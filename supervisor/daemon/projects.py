"""The projects the daemon keeps: each one's desired state, stored durably
before any work starts, and the one convergence at a time that brings its
containers there (converge.py).

A convergence runs in the projects' own nursery, not in the connection that
asked for it: the client may go (Ctrl-C, a lost SSH session) and the work
goes on; a client that stays is told each step as it happens, a client that
comes later (another `up`) hears the steps from the start. The record says
`pending` until the convergence ends, so a daemon that was SIGKILLed midway
finds it at start and runs it again (converging is idempotent). A newer `up`
or `down` of the same project cancels the one in progress and takes over.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import structlog
import trio

from protocols import api
from protocols import compose as c
from supervisor.daemon import converge
from supervisor.errors import CorralError

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Fleet

log = structlog.get_logger("corral.compose")


class Desired(msgspec.Struct, kw_only=True):
    """A project's record: what was last asked of it, and whether that is done."""

    project: c.Project
    up: api.ComposeUp | None = None  # the last up's options (project left out)
    pending: bool = True  # the convergence has not finished
    error: str = ""  # how the last one ended, when it failed
    down: api.ComposeDown | None = None  # a down in progress (the record goes when it ends)


class ProjectStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "projects"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._decoder = msgspec.json.Decoder(Desired)

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def load_all(self) -> dict[str, Desired]:
        out = {}
        for p in sorted(self.dir.glob("*.json")):
            try:
                out[p.stem] = self._decoder.decode(p.read_bytes())
            except (OSError, msgspec.DecodeError) as e:
                log.error("compose.unreadable_record", path=str(p), error=str(e))
        return out

    def save(self, d: Desired) -> None:
        """Written whole and fsynced before anything is done about it."""
        path = self._path(d.project.name)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(msgspec.json.encode(d))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


class Convergence:
    """One piece of work on a project: its steps so far, who listens, how it ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps: list[api.ComposeProgress] = []
        self.listeners: set[trio.MemorySendChannel] = set()
        self.done = trio.Event()
        self.error: str | None = None
        self.scope = trio.CancelScope()

    def report(self, step: api.ComposeProgress) -> None:
        self.steps.append(step)
        for ch in list(self.listeners):
            try:
                ch.send_nowait(step)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.listeners.discard(ch)  # a listener that cannot keep up hears no more

    def listen(self) -> trio.MemoryReceiveChannel:
        send, recv = trio.open_memory_channel(4096)
        for step in self.steps:
            send.send_nowait(step)
        if self.done.is_set():
            send.close()
        else:
            self.listeners.add(send)
        return recv

    def finish(self, error: str | None) -> None:
        self.error = error
        self.done.set()
        for ch in self.listeners:
            ch.close()
        self.listeners.clear()


class Projects:
    def __init__(self, fleet: Fleet, root: Path) -> None:
        self.fleet = fleet
        self.store = ProjectStore(root)
        self.desired: dict[str, Desired] = {}
        self.current: dict[str, Convergence] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The projects' nursery; resumes what a previous daemon left pending."""
        self.desired = self.store.load_all()
        async with trio.open_nursery() as self._nursery:
            task_status.started()
            for name, d in sorted(self.desired.items()):
                if d.down is not None:
                    log.info("compose.resume", project=name, work="down")
                    self._begin(name, self._down_work(d.down, d.project))
                elif d.pending and d.up is not None:
                    log.info("compose.resume", project=name, work="up")
                    req = msgspec.structs.replace(d.up, project=d.project)
                    self._begin(name, self._up_work(req))
            await trio.sleep_forever()

    def _begin(self, name: str, work) -> Convergence:
        assert self._nursery is not None
        old = self.current.get(name)
        if old is not None and not old.done.is_set():
            old.scope.cancel()  # the newer request takes over
        conv = Convergence(name)
        self.current[name] = conv
        self._nursery.start_soon(self._run, conv, work)
        return conv

    async def _run(self, conv: Convergence, work) -> None:
        lock = self._locks.setdefault(conv.name, trio.Lock())
        error: str | None = "cancelled by a newer request"
        with conv.scope:
            async with lock:  # after the cancelled one has let go
                try:
                    await work(conv)
                    error = None
                except CorralError as e:
                    error = str(e)
                except Exception as e:  # a bug: said, and the daemon keeps serving
                    log.exception("compose.failed", project=conv.name)
                    error = f"{type(e).__name__}: {e}"
        conv.finish(error)

    # -- requests --------------------------------------------------------------------------

    def up(self, req: api.ComposeUp) -> Convergence:
        name = req.project.name
        options = msgspec.structs.replace(req, project=c.Project(name=name, services={}))
        d = Desired(project=req.project, up=options, pending=True)
        self.store.save(d)  # durable before anything moves
        self.desired[name] = d
        return self._begin(name, self._up_work(req))

    def _up_work(self, req: api.ComposeUp):
        async def work(conv: Convergence) -> None:
            name = req.project.name
            try:
                await converge.up(self.fleet, req, conv.report)
            except CorralError as e:
                self._settle(name, str(e))
                raise
            self._settle(name, "")

        return work

    def _settle(self, name: str, error: str) -> None:
        d = self.desired.get(name)
        if d is None:
            return
        d = msgspec.structs.replace(d, pending=False, error=error)
        self.store.save(d)
        self.desired[name] = d

    def down(self, req: api.ComposeDown) -> Convergence:
        d = self.desired.get(req.project)
        project = d.project if d is not None else None
        if d is not None:
            d = msgspec.structs.replace(d, down=req)
            self.store.save(d)
            self.desired[req.project] = d
        return self._begin(req.project, self._down_work(req, project))

    def _down_work(self, req: api.ComposeDown, project: c.Project | None):
        async def work(conv: Convergence) -> None:
            await converge.down(self.fleet, req, project, conv.report)
            self.store.remove(req.project)
            self.desired.pop(req.project, None)

        return work

    def act(self, req: api.ComposeAction) -> Convergence:
        d = self.desired.get(req.project)
        project = d.project if d is not None else None

        async def work(conv: Convergence) -> None:
            await converge.act(self.fleet, req, project, conv.report)

        return self._begin(req.project, work)

    def summaries(self, all_: bool) -> list[api.ProjectSummary]:
        names = set(self.desired)
        for u in self.fleet.units.values():
            p = u.config.labels.get(converge.plan.PROJECT)
            if p and not u.removed:
                names.add(p)
        out = []
        for name in sorted(names):
            counts: dict[str, int] = {}
            for u in converge.containers_of(self.fleet, name):
                counts[str(u.state.status)] = counts.get(str(u.state.status), 0) + 1
            if not all_ and not counts.get("running"):
                continue
            d = self.desired.get(name)
            conv = self.current.get(name)
            out.append(
                api.ProjectSummary(
                    name=name,
                    status=", ".join(f"{s}({n})" for s, n in sorted(counts.items())),
                    config_files=list(d.project.config_files) if d else [],
                    converging=conv is not None and not conv.done.is_set(),
                )
            )
        return out
