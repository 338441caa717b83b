"""The Docker API's server: routes, API versions, errors, and the listeners.

Each connection is one task serving its requests in turn (keep-alive). A
request's path may carry the API version (/v1.47/containers/json): versions
from MIN_VERSION to MAX_VERSION are served, older and newer ones refused as
dockerd refuses them. Every answer carries API-Version and Server headers;
every error is {"message": ...} with Docker's status. While a streamed
response runs (logs -f, events, stats, wait), a watcher reads the socket so
that a client that goes away ends the handler at once instead of at its next
write.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
import trio

from supervisor import __version__
from supervisor.dockerapi import containers, images, objects, streams, system
from supervisor.dockerapi.context import Api
from supervisor.dockerapi.http import ClientGone, Exchange, HttpConnection, HttpError

log = structlog.get_logger("corral.dockerapi")

Handler = Callable[..., Awaitable[None]]

_ID = r"(?P<id>[^/]+)"
_NAME = r"(?P<name>.+?)"  # image references hold slashes

ROUTES: list[tuple[str, re.Pattern, Handler]] = [
    (m, re.compile(f"^{p}$"), h)
    for m, p, h in [
        ("GET", "/_ping", system.ping),
        ("HEAD", "/_ping", system.ping),
        ("GET", "/version", system.version),
        ("GET", "/info", system.info),
        ("GET", "/system/df", system.df),
        ("GET", "/events", system.events),
        ("POST", "/auth", images.auth),
        ("GET", "/containers/json", containers.list_),
        ("POST", "/containers/create", containers.create),
        ("POST", "/containers/prune", containers.prune),
        ("GET", f"/containers/{_ID}/json", containers.inspect),
        ("GET", f"/containers/{_ID}/top", containers.top),
        ("GET", f"/containers/{_ID}/changes", containers.changes),
        ("GET", f"/containers/{_ID}/logs", streams.logs_),
        ("GET", f"/containers/{_ID}/stats", streams.stats),
        ("GET", f"/containers/{_ID}/export", streams.export),
        ("GET", f"/containers/{_ID}/archive", streams.archive_get),
        ("HEAD", f"/containers/{_ID}/archive", streams.archive_head),
        ("PUT", f"/containers/{_ID}/archive", streams.archive_put),
        ("POST", f"/containers/{_ID}/start", containers.start),
        ("POST", f"/containers/{_ID}/stop", containers.stop),
        ("POST", f"/containers/{_ID}/restart", containers.restart),
        ("POST", f"/containers/{_ID}/kill", containers.kill),
        ("POST", f"/containers/{_ID}/pause", containers.pause),
        ("POST", f"/containers/{_ID}/unpause", containers.unpause),
        ("POST", f"/containers/{_ID}/rename", containers.rename),
        ("POST", f"/containers/{_ID}/update", containers.update),
        ("POST", f"/containers/{_ID}/resize", containers.resize),
        ("POST", f"/containers/{_ID}/wait", containers.wait),
        ("POST", f"/containers/{_ID}/attach", streams.attach),
        ("POST", f"/containers/{_ID}/exec", streams.exec_create),
        ("DELETE", f"/containers/{_ID}", containers.remove),
        ("POST", f"/exec/{_ID}/start", streams.exec_start),
        ("POST", f"/exec/{_ID}/resize", streams.exec_resize),
        ("GET", f"/exec/{_ID}/json", streams.exec_inspect),
        ("GET", "/images/json", images.list_),
        ("POST", "/images/create", images.create),
        ("POST", "/images/load", images.load),
        ("GET", "/images/get", images.save),
        ("GET", "/images/search", images.search),
        ("POST", "/images/prune", images.prune),
        ("GET", f"/images/{_NAME}/json", images.inspect),
        ("GET", f"/images/{_NAME}/history", images.history),
        ("GET", f"/images/{_NAME}/get", images.save),
        ("POST", f"/images/{_NAME}/push", images.push),
        ("POST", f"/images/{_NAME}/tag", images.tag),
        ("DELETE", f"/images/{_NAME}", images.remove),
        ("POST", "/commit", images.commit),
        ("POST", "/build", images.build),
        ("POST", "/build/prune", images.build_prune),
        ("GET", "/networks", objects.network_list),
        ("POST", "/networks/create", objects.network_create),
        ("POST", "/networks/prune", objects.network_prune),
        ("GET", f"/networks/{_ID}", objects.network_inspect),
        ("DELETE", f"/networks/{_ID}", objects.network_remove),
        ("POST", f"/networks/{_ID}/connect", objects.network_connect),
        ("POST", f"/networks/{_ID}/disconnect", objects.network_disconnect),
        ("GET", "/volumes", objects.volume_list),
        ("POST", "/volumes/create", objects.volume_create),
        ("POST", "/volumes/prune", objects.volume_prune),
        ("GET", f"/volumes/{_NAME}", objects.volume_inspect),
        ("DELETE", f"/volumes/{_NAME}", objects.volume_remove),
    ]
]

_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")


def _key(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor)


def route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """The handler for a request, and its path's parameters; HttpError 404/405."""
    allowed = False
    for m, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match:
            if m == method:
                return handler, match.groupdict()
            allowed = True
    if allowed:
        raise HttpError(405, f"method {method} is not allowed for {path}")
    raise HttpError(404, f"page not found: {method} {path}")


def version_of(path: str) -> tuple[str, str]:
    """(the version asked, the path without it); HttpError for one not served."""
    m = _VERSIONED.match(path)
    if not m:
        return "", path
    v = m.group(1)
    if _key(v) < _key(system.MIN_VERSION):
        raise HttpError(
            400,
            f"client version {v} is too old. Minimum supported API version is "
            f"{system.MIN_VERSION}, please upgrade your client to a newer version",
        )
    if _key(v) > _key(system.MAX_VERSION):
        raise HttpError(
            400,
            f"client version {v} is too new. Maximum supported API version is {system.MAX_VERSION}",
        )
    return v, m.group(2)


async def _answer_error(ex: Exchange, e: HttpError) -> None:
    if not ex.responded:
        await ex.send_json(e.status, {"message": e.message})


async def serve_connection(a: Api, stream: trio.abc.Stream, timeout: float) -> None:
    conn = HttpConnection(stream, timeout)
    conn.common_headers = [
        ("Api-Version", system.MAX_VERSION),
        ("Server", f"Corral/{__version__} (linux)"),
        ("Docker-Experimental", "false"),
        ("Ostype", "linux"),
        ("Builder-Version", "1"),
    ]
    while True:
        try:
            ex = await conn.next_request()
        except HttpError as e:  # malformed, oversized, too slow: answered, then closed
            if conn.can_answer:
                try:
                    await conn.send_error(e.status, e.message)
                except ClientGone:
                    pass
            return
        except ClientGone:
            return
        if ex is None:
            return
        try:
            await _one(a, ex)
            if not ex.hijacked and not await ex.drain():
                return
        except (ClientGone, HttpError):
            return
        if ex.hijacked:
            await _linger(stream)
            return
        if not ex.http11 or "close" in ex.headers.get("connection", "").lower():
            return


async def _one(a: Api, ex: Exchange) -> None:
    log.debug("dockerapi.request", method=ex.method, path=ex.path, query=ex.query)
    try:
        ex.version, path = version_of(ex.path)
        handler, params = route(ex.method, path.rstrip("/") or "/")
        async with trio.open_nursery() as nursery:
            ex.watch = lambda scope: nursery.start_soon(_watch_close, ex, scope)
            with trio.CancelScope() as scope:
                ex.scope = scope
                await handler(a, ex, **params)
            nursery.cancel_scope.cancel()
        if scope.cancelled_caught:  # the client went away mid-stream
            raise ClientGone()
    except Exception as group:
        e = _unwrap(group)
        if isinstance(e, HttpError):
            await _answer_error(ex, e)
            return
        if isinstance(e, ClientGone):
            raise e from None
        from supervisor.daemon.server import disconnected

        if disconnected(e):
            raise ClientGone() from None
        log.exception("dockerapi.internal_error", method=ex.method, path=ex.path)
        await _answer_error(ex, HttpError(500, f"{type(e).__name__}: {e}"))


def _unwrap(e: BaseException) -> BaseException:
    """The one exception of a nursery's group of one (or a group of several)."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e


async def _linger(stream: trio.abc.Stream) -> None:
    """Before a hijacked connection closes: read what the client already sent
    (its half-close, TLS's close_notify), so that the close is not a reset
    that loses the last output on the client's side."""
    with trio.move_on_after(0.1):
        try:
            while await stream.receive_some(1 << 16):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _watch_close(ex: Exchange, scope: trio.CancelScope) -> None:
    """While a stream is sent: the client's EOF or reset cancels its handler.
    Bytes it sends meanwhile (a pipelined request) are kept for h11."""
    conn = ex.conn
    while True:
        try:
            data = await conn.stream.receive_some(1 << 16)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            scope.cancel()
            return
        conn.h11.receive_data(data)


async def serve(
    a: Api,
    listeners: list[trio.abc.Listener],
    timeout: float,
    *,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    async def handle(stream: trio.abc.Stream) -> None:
        try:
            await serve_connection(a, stream, timeout)
        except Exception as e:
            from supervisor.daemon.server import disconnected

            if not disconnected(e) and not isinstance(e, ClientGone):
                log.exception("dockerapi.connection_failed")
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(trio.serve_listeners, handle, [listener])
        task_status.started()


def tls_context(cacert: str, cert: str, key: str) -> ssl.SSLContext:
    """dockerd's --tlsverify: the server's certificate, and clients' verified
    against the CA (a client without one is refused in the handshake)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cacert)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def tcp_listeners(address: str, ctx: ssl.SSLContext) -> list[trio.abc.Listener]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    raw = await trio.open_tcp_listeners(int(port), host=host)
    return [trio.SSLListener(lst, ctx, https_compatible=True) for lst in raw]


def unix_path(value: str) -> Path:
    return Path(value.removeprefix("unix://"))
