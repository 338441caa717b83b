"""HTTP/1.1 for the Docker API: h11 (sans-IO) over a trio stream.

One `Exchange` per request on a keep-alive connection. The head must arrive
whole within the read timeout and under MAX_HEAD bytes; each read of a body
within the timeout too (a body that never comes costs its connection, not the
daemon). A response is a JSON body with its length, or a stream sent chunked.
Attach and exec take the connection over (`hijack`): after a 101 (the client
asked `Upgrade: tcp`) or a 200 head, the bytes are raw both ways, as dockerd
does it.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from http import HTTPStatus

import h11
import msgspec
import trio

MAX_HEAD = 64 * 1024  # request line and headers (dockerd's Go server: 1 MiB; clients send ~1 KiB)
_JSON = msgspec.json.Encoder()  # several times json.dumps's speed on a 100-row list

IDLE_TIMEOUT = 300.0  # seconds a keep-alive connection may wait for its next request
MAX_JSON = 16 * 1024 * 1024  # a JSON body read whole (container create with a seccomp profile)


def _response(status: int, headers: list[tuple[str, str]]) -> h11.Response:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return h11.Response(status_code=status, headers=headers, reason=reason)


class HttpError(Exception):
    """An answer other than success: Docker's status code and {"message": ...}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ClientGone(Exception):
    """The client closed the connection or stopped sending."""


class Exchange:
    """One request and its response on a connection."""

    def __init__(self, conn: HttpConnection, req: h11.Request) -> None:
        self.conn = conn
        self.method = req.method.decode("ascii")
        target = req.target.decode("latin-1")
        path, _, query = target.partition("?")
        self.path = urllib.parse.unquote(path)
        self.query = urllib.parse.parse_qs(query, keep_blank_values=True)
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in req.headers}
        self.http11 = req.http_version == b"1.1"
        self.version = ""  # the API version asked (the path's /v1.NN), set by the router
        self.responded = False
        self.hijacked = False
        self.scope: trio.CancelScope | None = None  # the handler's (server.py)
        self.watch = None  # starts the watch for the client's going away (server.py)
        self._body_done = False

    # -- the request -----------------------------------------------------------------------

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """Docker's boolean query values: 1/true/True; 0/false/"" off."""
        v = self.arg(name, "")
        if name not in self.query:
            return default
        return v.lower() not in ("", "0", "false", "no")

    def number(self, name: str, default: int | None = None) -> int | None:
        v = self.arg(name, "")
        if v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise HttpError(400, f"invalid value for {name}: {v!r} is not a number") from None

    def json_arg(self, name: str) -> dict:
        v = self.arg(name, "")
        if not v:
            return {}
        try:
            data = json.loads(v)
        except ValueError as e:
            raise HttpError(400, f"invalid {name}: {e}") from None
        if not isinstance(data, dict):
            raise HttpError(400, f"invalid {name}: a JSON object is expected")
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, as it arrives."""
        while not self._body_done:
            ev = await self.conn.next_event()
            if isinstance(ev, h11.Data):
                yield bytes(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                self._body_done = True
            else:
                raise HttpError(400, f"unexpected {type(ev).__name__} in the request body")

    async def body(self, limit: int = MAX_JSON) -> bytes:
        parts, size = [], 0
        async for c in self.chunks():
            size += len(c)
            if size > limit:
                raise HttpError(413, f"request body over {limit} bytes")
            parts.append(c)
        return b"".join(parts)

    async def json(self, *, required: bool = False) -> dict:
        raw = await self.body()
        if not raw.strip():
            if required:
                raise HttpError(400, "a JSON body is required")
            return {}
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise HttpError(400, f"invalid JSON body: {e}") from None
        if not isinstance(data, dict):
            raise HttpError(400, "invalid JSON body: an object is expected")
        return data

    # -- the response ----------------------------------------------------------------------

    def _head(self, status: int, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*self.conn.common_headers, *headers]

    async def send(
        self, status: int, body: bytes = b"", content_type: str = "application/json",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:  # fmt: skip
        hs = self._head(status, [("Content-Length", str(len(body))), *(headers or [])])
        if body or status not in (204, 304):
            hs.append(("Content-Type", content_type))
        if status in (204, 304):
            hs = [h for h in hs if h[0] != "Content-Length"]
        self.responded = True
        await self.conn.send(_response(status, hs))
        if body and self.method != "HEAD":
            await self.conn.send(h11.Data(data=body))
        await self.conn.send(h11.EndOfMessage())

    async def send_json(self, status: int, obj: object) -> None:
        await self.send(status, _JSON.encode(obj) + b"\n")

    async def start_stream(
        self, content_type: str, status: int = 200, headers: list[tuple[str, str]] | None = None
    ) -> None:
        """A streamed response: chunked (HTTP/1.1), or until the close (1.0)."""
        hs = self._head(status, [("Content-Type", content_type), *(headers or [])])
        if self.http11:
            hs.append(("Transfer-Encoding", "chunked"))
        self.responded = True
        await self.conn.send(_response(status, hs))
        if self.watch is not None:
            self.watch(self.scope)

    async def drain(self, limit: int = 1 << 20) -> bool:
        """Read what is left of the body (a handler that did not need it), so
        that the connection can carry the next request; False past `limit`."""
        size = 0
        async for c in self.chunks():
            size += len(c)
            if size > limit:
                return False
        return True

    async def stream(self, data: bytes) -> None:
        if data:
            await self.conn.send(h11.Data(data=data))

    async def end_stream(self) -> None:
        await self.conn.send(h11.EndOfMessage())

    async def hijack(self, content_type: str) -> tuple[trio.abc.Stream, bytes]:
        """Take the connection over: the head is written by hand (h11 has no
        200-then-raw), then the stream is the caller's. Returns it and the
        bytes the client sent after its request."""
        upgrade = "upgrade" in self.headers.get("connection", "").lower()
        if upgrade:
            head = (
                "HTTP/1.1 101 UPGRADED\r\n"
                f"Content-Type: {content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            )
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
        for k, v in self.conn.common_headers:
            head += f"{k}: {v}\r\n"
        self.responded = self.hijacked = True
        await self.conn.stream.send_all((head + "\r\n").encode("latin-1"))
        return self.conn.stream, self.conn.h11.trailing_data[0]


class HttpConnection:
    """The h11 state of one connection and its reads, each bounded in time."""

    def __init__(self, stream: trio.abc.Stream, timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.common_headers: list[tuple[str, str]] = []

    async def next_event(self, timeout: float | None = None):
        while True:
            try:
                ev = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                raise HttpError(e.error_status_hint, f"malformed HTTP request: {e}") from None
            if ev is not h11.NEED_DATA:
                return ev
            data = b""
            with trio.move_on_after(timeout or self.timeout) as scope:
                try:
                    data = await self.stream.receive_some(1 << 16)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise ClientGone() from None
            if scope.cancelled_caught:
                raise HttpError(408, f"the request did not arrive whole within {self.timeout:g}s")
            timeout = None  # the head has begun: the rest comes within the read timeout
            self.h11.receive_data(data)

    async def next_request(self) -> Exchange | None:
        """The next request, or None when the client closed between requests."""
        if self.h11.states[h11.SERVER] is h11.DONE:
            if self.h11.states[h11.CLIENT] is not h11.DONE:
                return None  # a body left unread: no second request on this connection
            self.h11.start_next_cycle()
        try:
            ev = await self.next_event(IDLE_TIMEOUT)
        except HttpError:
            if not self.h11.trailing_data[0] and self.h11.their_state is h11.IDLE:
                return None  # an idle keep-alive connection timed out
            raise
        if isinstance(ev, h11.Request):
            # h11 bounds what is buffered before a head is whole; a head read
            # in one go can be longer: bounded here.
            size = len(ev.target) + sum(len(k) + len(v) + 4 for k, v in ev.headers)
            if size > MAX_HEAD:
                raise HttpError(431, f"request head over {MAX_HEAD} bytes")
            return Exchange(self, ev)
        return None  # ConnectionClosed

    async def send(self, ev) -> None:
        data = self.h11.send(ev)
        if data:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise ClientGone() from None

    async def send_error(self, status: int, message: str) -> None:
        import json as _json

        body = _json.dumps({"message": message}).encode() + b"\n"
        hs = [*self.common_headers, ("Content-Type", "application/json"),
              ("Content-Length", str(len(body))), ("Connection", "close")]  # fmt: skip
        await self.send(_response(status, hs))
        await self.send(h11.Data(data=body))
        await self.send(h11.EndOfMessage())

    @property
    def can_answer(self) -> bool:
        return self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE)
