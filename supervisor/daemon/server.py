"""The daemon's socket: one nursery per connection, one request at a time.

A connection is a reader task (bytes to frames to messages, into a small
channel) and the handler that takes them in order. A malformed message gets
a typed Error and the connection goes on; an oversized frame gets an Error
and the connection is closed (its framing can no longer be trusted). Either
way the daemon goes on serving everyone else.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
import structlog
import trio

from protocols import api
from protocols.events import FILTER_KEYS, Gap, matches
from protocols.wire import MAX_FRAME, PROTOCOL_VERSION, FrameBuffer, FrameError, frame
from supervisor import __version__, _native
from supervisor.daemon import copy as copying
from supervisor.daemon import filters, fleet_info, logs
from supervisor.daemon import inspect as shapes
from supervisor.daemon.fleet import Conflict, Container, Fleet
from supervisor.daemon.imagesapi import images_request, registry_login
from supervisor.daemon.journal import LiveSubscriber
from supervisor.daemon.networksapi import networks_request
from supervisor.daemon.volumesapi import NoSuchVolume, volumes_request
from supervisor.errors import (
    ContainerExists,
    CorralError,
    InvalidArgument,
    InvalidState,
    NoSuchContainer,
    SetupError,
    SpecError,
)
from supervisor.images import registry as registry_client
from supervisor.images import transfer
from supervisor.images.layer import LayerError
from supervisor.images.store import ImageError, NoSuchImage
from supervisor.network.store import NoSuchNetwork
from supervisor.runtime.cgroups import Stats
from supervisor.runtime.signals import parse_signal

log = structlog.get_logger("corral.server")


class BadMessage:
    def __init__(self, message: str, fatal: bool) -> None:
        self.message, self.fatal = message, fatal


# Requests are decoded strictly (types checked, unknown tags refused); one pair for
# every connection.
_DECODER = msgspec.msgpack.Decoder(api.Request)
_ENCODER = msgspec.msgpack.Encoder()


# Before its Hello a connection may buffer only this much: a Hello is tens of
# bytes, and a client that has not said who it is gets no 16 MiB frames.
HELLO_MAX = 64 * 1024


class InputBudget:
    """The bytes of partial frames all connections hold together. A connection
    whose next read would take the total past the limit is told so and closed:
    fifty clients each parked on a 16 MiB frame must not cost the daemon
    800 MB."""

    def __init__(self, limit: int = 256 * 1024 * 1024) -> None:
        self.limit, self.used = limit, 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


@dataclasses.dataclass(frozen=True)
class Limits:
    """Every connection's bounds (the daemon's --handshake-timeout, --max-buffered):
    one for the daemon, so that the budget is shared."""

    handshake_timeout: float = 10.0  # seconds for a Hello to arrive whole
    budget: InputBudget = dataclasses.field(default_factory=InputBudget)


class Connection:
    def __init__(self, stream: trio.SocketStream, fleet: Fleet, limits: Limits | None = None):
        self.stream = stream
        self.fleet = fleet
        self.peer = secrets.token_hex(3)
        self.limits = limits or Limits()

    async def send(self, msg: msgspec.Struct) -> None:
        await self.stream.send_all(frame(_ENCODER.encode(msg)))

    async def send_many(self, msgs: list) -> None:
        """Several messages in one write (each its own frame)."""
        await self.stream.send_all(b"".join(frame(_ENCODER.encode(m)) for m in msgs))

    async def _reader(self, out: trio.MemorySendChannel) -> None:
        buf = FrameBuffer(max_frame=HELLO_MAX)  # until the first frame, the Hello
        budget, held = self.limits.budget, 0
        try:
            async with out:
                while True:
                    data = await self.stream.receive_some(1 << 16)
                    if not data:
                        return
                    if not budget.take(len(data)):
                        await out.send(
                            BadMessage(
                                "the daemon holds too many unfinished messages "
                                f"({budget.used} bytes): try again",
                                fatal=True,
                            )
                        )
                        return
                    held += len(data)
                    try:
                        payloads = buf.feed(data)
                    except FrameError as e:
                        await out.send(BadMessage(str(e), fatal=True))
                        return
                    budget.give(held - buf.pending)  # what is parsed is no longer held
                    held = buf.pending
                    if payloads:
                        buf.max_frame = MAX_FRAME
                    await self._deliver(out, payloads)
        finally:
            budget.give(held)

    @staticmethod
    async def _deliver(out: trio.MemorySendChannel, payloads: list[bytes]) -> None:
        for payload in payloads:
            try:
                await out.send(_DECODER.decode(payload))
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                await out.send(BadMessage(f"malformed message: {e}", fatal=False))

    async def serve(self) -> None:
        send_ch, recv_ch = trio.open_memory_channel(16)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reader, send_ch)
            try:
                await self._session(recv_ch)
            finally:
                nursery.cancel_scope.cancel()

    async def _session(self, inbox: trio.MemoryReceiveChannel) -> None:
        hello = None
        with trio.move_on_after(self.limits.handshake_timeout):
            hello = await _next(inbox)
        if hello is None:
            return  # no Hello in time (or the client left): the connection closes
        if not isinstance(hello, api.Hello):
            msg = hello.message if isinstance(hello, BadMessage) else "expected Hello first"
            await self.send(api.Error(kind="protocol", message=msg))
            return
        if hello.version != PROTOCOL_VERSION:
            await self.send(
                api.Error(
                    kind="protocol",
                    message=f"protocol version {hello.version} is not spoken here "
                    f"(this daemon speaks {PROTOCOL_VERSION})",
                )
            )
            return
        await self.send(api.Welcome(version=PROTOCOL_VERSION, server=f"corral/{__version__}"))
        while True:
            req = await _next(inbox)
            if req is None:
                return
            if isinstance(req, BadMessage):
                await self.send(api.Error(kind="protocol", message=req.message))
                if req.fatal:
                    return
                continue
            try:
                await self.dispatch(req, inbox)
            except Exception as e:  # the daemon keeps serving
                if disconnected(e):
                    return  # the client went away mid-stream: nothing to answer
                await self.send(error_for(e, req))

    async def dispatch(self, req: msgspec.Struct, inbox: trio.MemoryReceiveChannel) -> None:
        f = self.fleet
        match req:
            case api.Ping():
                await self.send(api.Ok())
            case api.Create(config=cfg):
                c = f.create(cfg)
                await self.send(api.Created(id=c.id, name=c.name))
            case api.Start(id=ref):
                c = f.get(ref)
                async with c.lock:
                    await f.start(c)
                await self.send(api.Ok())
            case api.Stop(id=ref, timeout=timeout, signal=sig):
                c = f.get(ref)
                if sig:
                    parse_signal(sig)  # a bad one refused before anything stops
                async with c.lock:
                    await f.stop(c, timeout, sig)
                await self.send(api.Ok())
            case api.Restart(id=ref, timeout=timeout, signal=sig):
                c = f.get(ref)
                if sig:
                    parse_signal(sig)
                async with c.lock:
                    await f.restart(c, timeout, sig)
                await self.send(api.Ok())
            case api.Kill(id=ref, signal=sig):
                f.kill(f.get(ref), parse_signal(sig))
                await self.send(api.Ok())
            case api.Remove(id=ref, force=force, volumes=volumes):
                c = f.get(ref)
                async with c.lock:
                    await f.remove(c, force=force, volumes=volumes)
                await self.send(api.Ok())
            case (
                api.NetworkCreate()
                | api.NetworkList()
                | api.NetworkInspect()
                | api.NetworkRemove()
                | api.NetworkConnect()
                | api.NetworkDisconnect()
                | api.NetworkPrune()
            ):
                await self.send(await networks_request(f, req))
            case api.ImagePull() | api.ImagePush() | api.Login():
                await self._transfer(req)
            case api.ImageLoad(path=""):  # the archive follows, as docker load's stdin
                await self._load_streamed(inbox)
            case api.ImageSave(ref=ref, path=""):  # the archive goes back, for stdout
                await self._save_streamed(ref)
            case (
                api.ImageImport()
                | api.ImageLoad()
                | api.ImageSave()
                | api.ImageCommit()
                | api.ImageList()
                | api.ImageTag()
                | api.ImageRemove()
                | api.ImageInspect()
                | api.ImagePrune()
            ):
                await self.send(await images_request(f, req))
            case (
                api.VolumeCreate()
                | api.VolumeList()
                | api.VolumeInspect()
                | api.VolumeRemove()
                | api.VolumePrune()
            ):
                await self.send(volumes_request(f, req))
            case api.Resize(id=ref, height=h, width=w, exec_id=exec_id):
                f.resize(f.get(ref), h, w, exec_id)
                await self.send(api.Ok())
            case api.Pause(id=ref):
                f.pause(f.get(ref))
                await self.send(api.Ok())
            case api.Unpause(id=ref):
                f.unpause(f.get(ref))
                await self.send(api.Ok())
            case api.List():
                await self.send(api.ContainerList(containers=await list_containers(f, req)))
            case api.CopyFrom(id=ref, path=path):
                await self._archive(f.get(ref), path, one_fs=False)
            case api.Export(id=ref):
                await self._archive(f.get(ref), "/", one_fs=True)
            case api.CopyTo(id=ref, path=path):
                await self._copy_to(f.get(ref), path, inbox)
            case api.ContainerPrune():
                gone = []
                for c in list(f.containers.values()):
                    async with c.lock:  # not one that a start holds, half-made
                        stopped = c.state.status in ("created", "exited", "dead")
                        if c.id in f.containers and stopped and not c.running:
                            await f.remove(c)
                            gone.append(c.id)
                await self.send(api.ContainersRemoved(ids=gone))
            case api.Rename(id=ref, name=name):
                f.rename(f.get(ref), name)
                await self.send(api.Ok())
            case api.Logout(registry=registry):
                f.credentials.remove(registry)
                await self.send(api.Ok())
            case api.SystemDf():
                await self.send(api.InspectResult(data=await f.disk_usage()))
            case api.Info():
                await self.send(api.InspectResult(data=f.info()))
            case api.Update():
                f.update(f.get(req.id), req)
                await self.send(api.Ok())
            case api.Top(id=ref):
                titles, rows = f.top(f.get(ref))
                await self.send(api.TopResult(titles=titles, processes=rows))
            case api.Diff(id=ref):
                await self.send(api.DiffResult(changes=f.diff(f.get(ref))))
            case api.Inspect(id=ref):
                await self.send(
                    api.InspectResult(data=shapes.inspect(f.get(ref), f.networks.networks))
                )
            case api.Wait(id=ref):
                c = f.get(ref)
                await c.exited.wait()
                await self.send(
                    api.Exited(
                        status_code=c.state.exit_code,
                        oom_killed=c.state.oom_killed,
                        error=c.state.error,
                    )
                )
            case api.Logs():
                await self._logs(req)
            case api.Attach():
                await self._attach(req, inbox)
            case api.Exec():
                await self._exec(req, inbox)
            case api.Stats():
                await self._stats(req)
            case api.Events():
                await self._events(req)
            case api.StdinData() | api.StdinClose():
                await self.send(api.Error(kind="protocol", message="no stream takes input now"))
            case _:
                await self.send(
                    api.Error(kind="protocol", message=f"unexpected {type(req).__name__}")
                )

    # -- streams ---------------------------------------------------------------------------

    async def _logs(self, req: api.Logs) -> None:
        c = self.fleet.get(req.id)
        upto = logs.end_offset(c.log_path)
        until = req.until_nano
        async for batch in logs.read_existing(c.log_path, req.since_nano, req.tail, upto, until):
            await self.send_many(batch)
        if req.follow and (until is None or until > time.time_ns()):
            # With --until in the future, following ends then (Docker's -f --until).
            deadline = (
                math.inf if until is None else trio.current_time() + (until - time.time_ns()) / 1e9
            )
            with trio.move_on_at(deadline):
                follow = logs.follow(c.log_path, offset=upto, exited=lambda: c.exited)
                async for rec in follow:
                    if until is not None and rec.time_nano > until:
                        break
                    await self.send(rec)
        await self.send(api.End())

    async def _attach(self, req: api.Attach, inbox: trio.MemoryReceiveChannel) -> None:
        c = self.fleet.get(req.id)
        if not req.start and not c.running:
            raise Conflict(f"cannot attach to container {c.id[:12]}: it is not running")
        # Where the log ends before the start: everything after is this run's.
        offset = logs.end_offset(c.log_path)
        if req.start:
            async with c.lock:
                await self.fleet.start(c, console=(req.height, req.width))
        elif req.height and req.width and c.config.tty and c.running:
            try:
                self.fleet.resize(c, req.height, req.width)
            except CorralError as e:  # the size is a nicety: the output still flows
                log.warning("attach.resize_failed", container=c.id[:12], error=str(e))
        async with trio.open_nursery() as nursery:
            if req.stdin:
                nursery.start_soon(self._pump_stdin, c, inbox)
            async for rec in logs.follow(c.log_path, offset=offset, exited=lambda: c.exited):
                await self.send(rec)
            await c.exited.wait()
            nursery.cancel_scope.cancel()
        await self.send(
            api.Exited(
                status_code=c.state.exit_code, oom_killed=c.state.oom_killed, error=c.state.error
            )
        )

    async def _transfer(self, req: msgspec.Struct) -> None:
        """pull, push, login: progress streamed as it happens, then the result."""
        send_ch, recv_ch = trio.open_memory_channel(256)
        last: dict[str, float] = {}

        def report(id: str, status: str, current: int, total: int) -> None:
            now = time.monotonic()
            if status == "Downloading" and now - last.get(id, 0.0) < 0.1 and current < total:
                return  # ten a second per layer: a moving bar, not a message per chunk
            last[id] = now
            try:
                send_ch.send_nowait(
                    api.Progress(id=id, status=status, current=current, total=total)
                )
            except trio.WouldBlock:
                pass

        async def forward() -> None:
            async for msg in recv_ch:
                await self.send(msg)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward)
            try:
                result = await self._run_transfer(req, report)
            finally:
                send_ch.close()
        await self.send(result)

    async def _run_transfer(self, req, report) -> msgspec.Struct:
        if isinstance(req, api.ImagePull | api.ImagePush):  # no rmi meanwhile
            async with self.fleet.image_gate.adding():
                return await self._transfer_now(req, report)
        return await self._transfer_now(req, report)

    async def _transfer_now(self, req, report) -> msgspec.Struct:
        f = self.fleet
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
                f.journal.append("image", "pull", image_id, name, {"layers": str(fetched)})
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
                f.journal.append("image", "push", digest, ref)
                return api.ImagesDone(ids=[digest], tags=[ref])
            case api.Login(registry=registry, username=user, password=password):
                await registry_login(registry, user, password)
                f.credentials.save(registry, user, password)
                return api.Ok()
        raise SpecError("request", f"unexpected {type(req).__name__}")

    async def _archive(self, c: Container, path: str, *, one_fs: bool) -> None:
        # The archive is made (spooled) before any await: a stopped container's
        # root is mounted only meanwhile, and nothing can start it meanwhile.
        with self.fleet.container_root(c) as root:
            tar = copying.archive(root, path, one_fs=one_fs)
        with tar:
            while chunk := tar.read(copying.CHUNK):
                await self.send(api.Archive(data=chunk))
        await self.send(api.End())

    def _spool_dir(self) -> Path:
        """Where streamed archives are kept while loaded or saved: on the root's
        disk, not /run's memory (images are large)."""
        d = self.fleet.store.dir.parent / "tmp"
        d.mkdir(mode=0o700, exist_ok=True)
        return d

    async def _load_streamed(self, inbox: trio.MemoryReceiveChannel) -> None:
        with tempfile.TemporaryDirectory(dir=self._spool_dir()) as tmp:
            path = Path(tmp) / "stdin.tar"
            with open(path, "wb") as out:
                async for msg in inbox:
                    if isinstance(msg, api.StdinData):
                        out.write(msg.data)
                    elif isinstance(msg, api.StdinClose):
                        break
            await self.send(await images_request(self.fleet, api.ImageLoad(path=str(path))))

    async def _save_streamed(self, ref: str) -> None:
        with tempfile.TemporaryDirectory(dir=self._spool_dir()) as tmp:
            path = Path(tmp) / "image.tar"
            await images_request(self.fleet, api.ImageSave(ref=ref, path=str(path)))
            with open(path, "rb") as f:
                while chunk := f.read(copying.CHUNK):
                    await self.send(api.Archive(data=chunk))
        await self.send(api.End())

    async def _copy_to(self, c: Container, path: str, inbox: trio.MemoryReceiveChannel) -> None:
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            async for msg in inbox:
                if isinstance(msg, api.StdinData):
                    spool.write(msg.data)
                elif isinstance(msg, api.StdinClose):
                    break
            spool.seek(0)
            with self.fleet.container_root(c) as root:  # no await inside: see _archive
                copying.extract(root, path, spool)
        await self.send(api.Ok())

    async def _pump_stdin(self, c: Container, inbox: trio.MemoryReceiveChannel) -> None:
        fd = os.dup(c.stdin_w) if c.stdin_w is not None else None
        if fd is None:
            return
        pipe = trio.lowlevel.FdStream(fd)
        # Each attached client writes through its own descriptor: a close by
        # any of them (close_stdin) cancels them all, so that none keeps the
        # container's stdin open.
        with trio.CancelScope() as scope:
            c.stdin_pumps.add(scope)
            try:
                async with pipe:
                    async for msg in inbox:
                        if isinstance(msg, api.StdinData):
                            try:
                                await pipe.send_all(msg.data)
                            except trio.BrokenResourceError:
                                return
                        elif isinstance(msg, api.StdinClose):
                            self.fleet.close_stdin(c)
                            return
            finally:
                c.stdin_pumps.discard(scope)

    async def _exec(self, req: api.Exec, inbox: trio.MemoryReceiveChannel) -> None:
        f = self.fleet
        c = f.get(req.id)
        if c.state.status != "running":
            raise Conflict(f"container {c.id[:12]} is not running")
        process = f.exec_process(
            c, req.cmd, req.env, req.workdir, req.user, req.tty, (req.height, req.width)
        )
        exec_id = secrets.token_hex(32)
        if req.detach:
            f.exec_detached(c, process, exec_id)
            await self.send(api.ExecStarted(exec_id=exec_id))
            return
        ctl = None
        if req.tty:  # its pty is sized through a FIFO its monitor reads
            f.exec_ctl_dir.mkdir(mode=0o700, exist_ok=True)
            ctl = f.exec_ctl_dir / f"{exec_id}.ctl"
            os.mkfifo(ctl, 0o600)
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            f.emit(c, "exec_create: " + " ".join(req.cmd), execID=exec_id)
            _pid, pidfd, _child = f.runtime.exec(
                c.id, process, (in_r, out_w, err_w), str(ctl) if ctl else None
            )
        except BaseException:
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            if ctl is not None:
                ctl.unlink()
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        if ctl is not None:
            f.exec_ctls[exec_id] = ctl
        f.emit(c, "exec_start: " + " ".join(req.cmd), execID=exec_id)
        await self.send(api.ExecStarted(exec_id=exec_id))
        stdin = trio.lowlevel.FdStream(in_w)
        if not req.stdin:
            await stdin.aclose()
        try:
            async with trio.open_nursery() as nursery:
                if req.stdin:
                    nursery.start_soon(self._exec_stdin, stdin, inbox)
                async with trio.open_nursery() as readers:
                    readers.start_soon(self._pump_out, out_r, "stdout")
                    readers.start_soon(self._pump_out, err_r, "stderr")
                await trio.lowlevel.wait_readable(pidfd)
                code = _native.reap(pidfd)
                nursery.cancel_scope.cancel()
        finally:
            os.close(pidfd)
            await stdin.aclose()
            if ctl is not None:
                f.exec_ctls.pop(exec_id, None)
                ctl.unlink(missing_ok=True)
        f.emit(c, "exec_die", execID=exec_id, exitCode=str(code))
        await self.send(api.Exited(status_code=code))

    async def _exec_stdin(self, stdin: trio.lowlevel.FdStream, inbox) -> None:
        async for msg in inbox:
            if isinstance(msg, api.StdinData):
                try:
                    await stdin.send_all(msg.data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            elif isinstance(msg, api.StdinClose):
                await stdin.aclose()
                return

    async def _pump_out(self, fd: int, stream: str) -> None:
        async with trio.lowlevel.FdStream(fd) as pipe:
            while data := await pipe.receive_some(1 << 16):
                await self.send(api.Output(stream=stream, data=data, time_nano=time.time_ns()))

    async def _stats(self, req: api.Stats) -> None:
        """Samples each second; CPU % needs two readings, so the first sample comes
        after half a second (Docker's stats waits for a second reading too). The
        containers named, or every running one (-a: every one); one that is not
        running gets a row of zeros, as Docker's does."""
        f = self.fleet
        host_memory = fleet_info.host_memory()
        prev: dict[str, tuple[int, int]] = {}  # id -> (time, CPU ns) of its last reading
        first = True
        while True:
            if req.ids:
                targets = [f.get(i) for i in req.ids]
            else:
                targets = [c for c in f.containers.values() if req.all or c.running]
            readings: list[tuple[Container, int, Stats | None]] = []
            for c in targets:
                s = None
                if c.running:
                    try:
                        s = f.runtime.stats(c.id)
                    except (CorralError, OSError):
                        pass  # it exited meanwhile: a row of zeros
                readings.append((c, time.time_ns(), s))
            if first and any(s for _, _, s in readings):
                first = False
                prev = {c.id: (now, s.cpu_usage_ns) for c, now, s in readings if s}
                await trio.sleep(0.5)
                continue
            first = False
            await self.send_many(
                [self._sample(c, now, s, prev, host_memory) for c, now, s in readings]
            )
            if not req.stream:
                break
            await trio.sleep(1)
        await self.send(api.End())

    @staticmethod
    def _sample(c, now: int, s, prev: dict[str, tuple[int, int]], host_memory: int):
        if s is None:
            prev.pop(c.id, None)
            return api.StatsSample(
                id=c.id, name=c.name, time_nano=now, cpu_usage_ns=0, memory_usage=0,
                memory_limit=0, pids=0,
            )  # fmt: skip
        then, cpu = prev.get(c.id, (now, s.cpu_usage_ns))
        if s.cpu_usage_ns < cpu:  # restarted since: a new cgroup counts from zero
            then, cpu = now, s.cpu_usage_ns
        prev[c.id] = (now, s.cpu_usage_ns)
        limit = s.memory_limit or host_memory
        rx, tx = fleet_info.net_io(c.state.pid)
        return api.StatsSample(
            id=c.id,
            name=c.name,
            time_nano=now,
            cpu_usage_ns=s.cpu_usage_ns,
            memory_usage=s.memory_usage,
            memory_limit=limit,
            pids=s.pids,
            cpu_percent=100 * (s.cpu_usage_ns - cpu) / (now - then) if now > then else 0.0,
            memory_percent=100 * s.memory_usage / limit if limit else 0.0,
            net_rx=rx,
            net_tx=tx,
            block_read=s.block_read,
            block_written=s.block_written,
        )

    async def _events(self, req: api.Events) -> None:
        filters.check_keys(req.filters, FILTER_KEYS)
        j = self.fleet.journal
        if req.since_seq is not None:
            start = req.since_seq
        elif req.since_nano is not None:
            start = j.seq_at(req.since_nano)
        else:
            start = j.last_seq + 1
        if req.until_nano is not None:  # a bounded replay: read it, then End
            async for item in j.follow(start, req.filters, req.until_nano):
                await self._send_batch(item)
            await self.send(api.End())
            return
        # Unbounded: catch up from the journal, then go live (the journal writes
        # to our socket itself); if the socket fills, catch up again.
        sub = LiveSubscriber(self.stream.socket.fileno(), req.filters)
        next_seq = start
        try:
            while True:
                while True:
                    if next_seq < j.first_seq:
                        await self.send(
                            Gap(first=next_seq, last=j.first_seq - 1, resume_from=j.first_seq)
                        )
                        next_seq = j.first_seq
                    batch = j.read_framed(next_seq)
                    if not batch:
                        break
                    next_seq = batch[-1][0].seq + 1
                    out = [d for ev, d in batch if not req.filters or matches(ev, req.filters)]
                    if out:
                        await self.stream.send_all(b"".join(out))
                # No await since the empty read: nothing can have slipped in.
                went_live = j.go_live(sub, next_seq)
                assert went_live
                await sub.wake.wait()
                if sub.failed:
                    return
                if sub.pending:
                    await self.stream.send_all(sub.pending)
                next_seq = sub.next_seq
        finally:
            j.drop_live(sub)

    async def _send_batch(self, item) -> None:
        if isinstance(item, Gap):
            await self.send(item)
        else:  # frames encoded once by the journal, one write per batch
            await self.stream.send_all(b"".join(data for _, data in item))


async def list_containers(f: Fleet, req: api.List) -> list[api.ContainerSummary]:
    filters.check_keys(req.filters, filters.CONTAINER_KEYS)
    listed = []
    # before=/since= name containers: their creation times bound the list.
    bounds = {
        k: [f.get(v).rec.created_nano for v in req.filters.get(k, [])] for k in ("before", "since")
    }
    for c in sorted(f.containers.values(), key=lambda c: -c.rec.created_nano):
        every = req.all or {"status", "exited"} & set(req.filters)
        if not every and not c.running:
            continue
        if not filters.container(c, req.filters, bounds):
            continue
        listed.append(c)
    if not req.size:
        return [shapes.summary(c) for c in listed]
    # Sizes walk trees: in a worker thread, over paths taken now.
    paths = [shapes.size_paths(c, f) for c in listed]
    sizes = await trio.to_thread.run_sync(shapes.measure, paths)
    return [shapes.summary(c, s) for c, s in zip(listed, sizes, strict=True)]


async def _next(inbox: trio.MemoryReceiveChannel):
    try:
        return await inbox.receive()
    except trio.EndOfChannel:
        return None


def disconnected(e: BaseException) -> bool:
    """Is `e` (or every exception in a group) the peer going away?"""
    if isinstance(e, BaseExceptionGroup):
        return all(disconnected(x) for x in e.exceptions)
    return isinstance(e, trio.BrokenResourceError | trio.ClosedResourceError)


def error_for(e: BaseException, req: msgspec.Struct) -> api.Error:
    # A failure inside a nursery arrives as a group of one: answer with the one.
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    if isinstance(e, registry_client.RegistryError):
        return api.Error(kind="failed", message=str(e))
    if isinstance(e, httpx.HTTPError):
        try:  # where it went, as Docker says it: Get "https://host/v2/": ...
            where = f'{e.request.method.title()} "{e.request.url}": '
        except RuntimeError:  # an error raised before any request was made
            where = "registry: "
        return api.Error(kind="failed", message=f"{where}{type(e).__name__}: {e}")
    if isinstance(e, NoSuchImage):
        return api.Error(kind="not_found", message=str(e))
    if isinstance(e, ImageError | LayerError):
        return api.Error(kind="invalid", message=str(e))
    if isinstance(e, FileNotFoundError | IsADirectoryError | PermissionError):
        return api.Error(kind="invalid", message=f"{e.strerror}: {e.filename}")
    if isinstance(e, NoSuchVolume):
        return api.Error(kind="not_found", message=f"No such volume: {e.id}")
    if isinstance(e, NoSuchNetwork):
        return api.Error(kind="not_found", message=str(e))
    if isinstance(e, NoSuchContainer):
        return api.Error(kind="not_found", message=f"No such container: {e.id}")
    if isinstance(e, Conflict | InvalidState | ContainerExists):
        return api.Error(kind="conflict", message=str(e))
    if isinstance(e, SpecError | InvalidArgument):
        return api.Error(kind="invalid", message=str(e))
    if isinstance(e, SetupError):
        return api.Error(kind="failed", message=str(e), exit_code=e.exit_code)
    if isinstance(e, CorralError):
        return api.Error(kind="failed", message=str(e))
    log.exception("server.internal_error", request=type(req).__name__)
    return api.Error(kind="internal", message=f"{type(e).__name__}: {e}")
