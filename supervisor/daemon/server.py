"""The daemon's socket: framing, and one nursery per connection whose requests
go to their handlers by type (routes.py maps them to api_*.py, grouped by
what they handle).

A connection is a reader task (bytes to frames to messages, into a small
channel) and the handler that takes them in order. A malformed message gets
a typed Error and the connection goes on; an oversized frame gets an Error
and the connection is closed (its framing can no longer be trusted). Either
way the daemon goes on serving everyone else.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Awaitable, Callable

import httpx
import msgspec
import structlog
import trio

from protocols import api
from protocols.wire import MAX_FRAME, PROTOCOL_VERSION, FrameBuffer, FrameError, frame
from supervisor import __version__
from supervisor.daemon.fleet import Fleet
from supervisor.daemon.projects import Projects
from supervisor.errors import (
    ComposeError,
    Conflict,
    ContainerExists,
    CorralError,
    InvalidArgument,
    InvalidState,
    NoSuchContainer,
    NoSuchNetwork,
    NoSuchVolume,
    SetupError,
    SpecError,
)
from supervisor.images import registry as registry_client
from supervisor.images.layer import LayerError
from supervisor.images.store import ImageError, NoSuchImage

log = structlog.get_logger("corral.server")

Handler = Callable[["Connection", msgspec.Struct, trio.MemoryReceiveChannel], Awaitable[None]]


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
    def __init__(
        self,
        stream: trio.SocketStream,
        fleet: Fleet,
        routes: dict[type, Handler],
        limits: Limits | None = None,
        projects: Projects | None = None,
    ):
        self.stream = stream
        self.fleet = fleet
        self.projects = projects  # compose projects (projects.py), over the same fleet
        self.routes = routes  # request type -> handler (routes.py)
        self.peer = secrets.token_hex(3)
        self.limits = limits or Limits()

    async def send(self, msg: msgspec.Struct) -> None:
        await self.stream.send_all(frame(_ENCODER.encode(msg)))

    async def send_archive(self, f) -> None:
        """A file's bytes as Archive messages, then End (cp, export, save)."""
        while chunk := f.read(1 << 20):
            await self.send(api.Archive(data=chunk))
        await self.send(api.End())

    @staticmethod
    async def receive_into(inbox: trio.MemoryReceiveChannel, out) -> None:
        """What the client streams (StdinData) into `out`, until StdinClose."""
        async for msg in inbox:
            if isinstance(msg, api.StdinData):
                out.write(msg.data)
            elif isinstance(msg, api.StdinClose):
                return

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
        handler = self.routes.get(type(req))
        if handler is None:
            await self.send(api.Error(kind="protocol", message=f"unexpected {type(req).__name__}"))
            return
        await handler(self, req, inbox)


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
    if isinstance(e, ComposeError):
        return api.Error(kind="failed", message=str(e), exit_code=1)
    if isinstance(e, CorralError):
        return api.Error(kind="failed", message=str(e))
    log.exception("server.internal_error", request=type(req).__name__)
    return api.Error(kind="internal", message=f"{type(e).__name__}: {e}")
