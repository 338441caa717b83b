"""The container endpoints that stream: attach and exec (the connection
hijacked, raw both ways), logs, stats, archive (docker cp) and export.

Docker's stream format: a -t container's output is raw; any other's is
multiplexed, each write framed as [stream, 0, 0, 0, size (4 bytes, big
endian)] + the bytes, stream 1 stdout and 2 stderr. Stdin comes raw from the
client; its half-close (CloseWrite) is stdin's end. A client that goes away
mid-stream ends the handler (trio's Broken/ClosedResourceError), never the
container.
"""

from __future__ import annotations

import base64
import json
import math
import os
import select
import time
from collections.abc import Sequence

import trio

from protocols import api
from supervisor.daemon import copy as copying
from supervisor.daemon import logs
from supervisor.daemon.api_streams import pump_stdin
from supervisor.daemon.inspect import rfc3339
from supervisor.dockerapi.context import Api, since_nano
from supervisor.dockerapi.http import ClientGone, Exchange, HttpError

RAW = "application/vnd.docker.raw-stream"
MUX = "application/vnd.docker.multiplexed-stream"
DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, Docker's default


def frame(stream: str, data: bytes) -> bytes:
    return bytes((1 if stream == "stdout" else 2, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


def _content_type(ex: Exchange, tty: bool) -> str:
    # API 1.42 named the multiplexed format; older clients were told raw-stream.
    return RAW if tty or _older(ex.version, "1.42") else MUX


def _older(version: str, than: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    return bool(version) and key(version) < key(than)


def detach_keys(text: str) -> bytes:
    """Docker's --detach-keys: "ctrl-p,ctrl-q", "a,ctrl-x"."""
    if not text:
        return DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        k = key.strip().lower()
        if k.startswith("ctrl-") and len(k) == 6 and ("a" <= k[5] <= "z" or k[5] in "@[\\]^_"):
            out.append(ord(k[5].upper()) & 0x1F)
        elif len(k) == 1:
            out.append(ord(k))
        else:
            raise HttpError(400, f"invalid detach keys: {text!r}")
    return bytes(out)


async def hangup(stream) -> None:
    """Return once the client has closed its connection whole. A hijacked
    connection's EOF is no sign (the docker CLI half-closes one it sends no
    stdin on), but a unix socket whose peer is gone has both directions shut,
    which poll() reports as POLLHUP; checked each second, it costs a syscall.
    (Over TCP a peer's close looks like a half-close: found at the next write.)"""
    sock = getattr(stream, "socket", None) or getattr(
        getattr(stream, "transport_stream", None), "socket", None
    )
    if sock is None:
        await trio.sleep_forever()
    p = select.poll()
    p.register(sock.fileno(), select.POLLHUP)
    while True:
        if any(ev & (select.POLLHUP | select.POLLERR) for _, ev in p.poll(0)):
            return
        await trio.sleep(1)


async def _cancel_on_hangup(stream, scope: trio.CancelScope) -> None:
    await hangup(stream)
    scope.cancel()


# -- attach ----------------------------------------------------------------------------------


async def attach(a: Api, ex: Exchange, id: str) -> None:
    """docker attach, and `docker run`'s attach before its start: the output
    from the next start on (or from now, if it runs), until it exits."""
    u = a.unit(id)
    want = {s for s in ("stdout", "stderr") if ex.flag(s)}
    keys = detach_keys(ex.arg("detachKeys"))
    offset = logs.end_offset(u.log_path)
    seq = a.fleet.journal.last_seq
    stream, early = await ex.hijack(_content_type(ex, u.config.tty))
    tty = u.config.tty
    try:
        if not u.running:
            with trio.move_on_after(math.inf) as waiting:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_cancel_on_hangup, stream, waiting)
                    started = await _until_started(a, u, seq)
                    nursery.cancel_scope.cancel()
            if waiting.cancelled_caught or not started:
                return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_hangup, stream, nursery.cancel_scope)
            if ex.flag("stdin") and u.config.open_stdin:
                nursery.start_soon(_stdin, a, u, stream, early, keys, nursery.cancel_scope)
            async for rec in logs.follow(u.log_path, offset=offset, exited=lambda: u.exited):
                if rec.stream in want:
                    await stream.send_all(rec.data if tty else frame(rec.stream, rec.data))
            nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _until_started(a: Api, u, seq: int) -> bool:
    filters = {"container": [u.id], "event": ["start", "destroy"]}
    async for item in a.fleet.journal.follow(seq + 1, filters):
        if isinstance(item, list) and item:
            return item[0][0].action == "start"
    return False


async def _stdin(a: Api, u, stream, early: bytes, keys: bytes, scope: trio.CancelScope) -> None:
    """The client's bytes into the container's stdin (Corral's own pump)."""
    send, recv = trio.open_memory_channel(16)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump_stdin, a.relay(), u, recv)
        await read_stdin(stream, early, send, keys, scope)


async def read_stdin(
    stream,
    early: bytes,
    send: trio.MemorySendChannel,
    keys: bytes = b"",
    scope: trio.CancelScope | None = None,
) -> None:
    """A hijacked connection's bytes as StdinData into `send`, then StdinClose
    at its half-close; the detach `keys`, if given, cancel `scope` instead
    (the attach ends, the container runs on)."""
    tail, data = b"", early
    async with send:
        while True:
            if data:
                seen = tail + data
                at = seen.find(keys) if keys else -1
                if at >= 0 and scope is not None:
                    if at > len(tail):
                        await send.send(api.StdinData(data=seen[len(tail) : at]))
                    scope.cancel()
                    return
                await send.send(api.StdinData(data=data))
                tail = seen[-(len(keys) - 1) :] if len(keys) > 1 else b""
            try:
                data = await stream.receive_some(1 << 16)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                await send.send(api.StdinClose())
                return


# -- exec ------------------------------------------------------------------------------------


async def exec_create(a: Api, ex: Exchange, id: str) -> None:
    body = await ex.json(required=True)
    u = a.unit(id)
    if not u.running:
        raise HttpError(409, f"container {u.id} is not running")
    cmd = body.get("Cmd")
    if not cmd:
        raise HttpError(400, "No exec command specified")
    r = a.execs.add(u.id, body)
    await ex.send_json(201, {"Id": r.id})


async def exec_start(a: Api, ex: Exchange, id: str) -> None:
    r = a.execs.get(id)
    if r.running or r.exit_code is not None:
        raise HttpError(409, f"exec {id} has already been started")
    start = await ex.json()
    b = r.body
    tty = bool(start.get("Tty", b.get("Tty")))
    size = start.get("ConsoleSize") or b.get("ConsoleSize") or [0, 0]
    req = api.Exec(
        id=r.container,
        cmd=list(b["Cmd"]),
        env=list(b.get("Env") or []),
        workdir=b.get("WorkingDir") or "",
        user=b.get("User") or "",
        tty=tty,
        stdin=bool(b.get("AttachStdin")),
        detach=bool(start.get("Detach")),
        height=int(size[0] or 0),
        width=int(size[1] or 0),
    )
    if req.detach:
        res = await a.call(req)
        r.corral_id = res.exec_id
        r.exit_code = 0  # dockerd cannot tell either: it reports the start
        await ex.send(200, b"", "application/json")
        return
    want = {s for s, key in (("stdout", "AttachStdout"), ("stderr", "AttachStderr")) if b.get(key)}
    stream, early = await ex.hijack(RAW if tty else _content_type(ex, False))
    inbox_send, inbox = trio.open_memory_channel(16)

    async def out(msg) -> None:
        if isinstance(msg, api.ExecStarted):
            r.corral_id, r.running = msg.exec_id, True
        elif isinstance(msg, api.Output) and msg.stream in want:
            await stream.send_all(msg.data if tty else frame(msg.stream, msg.data))
        elif isinstance(msg, api.Exited):
            r.exit_code = msg.status_code

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_hangup, stream, nursery.cancel_scope)
            if req.stdin:
                nursery.start_soon(read_stdin, stream, early, inbox_send)
            try:
                await a.relay(out).run(req, inbox)
            except HttpError as e:  # the head is sent: the error goes in the stream
                await stream.send_all(e.message.encode() + b"\n")
                r.exit_code = 126
            nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        r.running = False
        if r.exit_code is None:
            r.exit_code = -1


async def exec_inspect(a: Api, ex: Exchange, id: str) -> None:
    r = a.execs.get(id)
    b = r.body
    await ex.send_json(
        200,
        {
            "ID": r.id,
            "Running": r.running,
            "ExitCode": r.exit_code,
            "ProcessConfig": {
                "tty": bool(b.get("Tty")),
                "entrypoint": b["Cmd"][0],
                "arguments": list(b["Cmd"][1:]),
                "privileged": bool(b.get("Privileged")),
                "user": b.get("User") or "",
            },
            "OpenStdin": bool(b.get("AttachStdin")),
            "OpenStderr": bool(b.get("AttachStderr")),
            "OpenStdout": bool(b.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": r.container,
            "DetachKeys": "",
            "Pid": r.pid,
        },
    )


async def exec_resize(a: Api, ex: Exchange, id: str) -> None:
    r = a.execs.get(id)
    if r.corral_id:
        h, w = ex.number("h", 0) or 0, ex.number("w", 0) or 0
        await a.call(api.Resize(id=r.container, height=h, width=w, exec_id=r.corral_id))
    await ex.send(200, b"", "text/plain")


# -- logs ------------------------------------------------------------------------------------


async def logs_(a: Api, ex: Exchange, id: str) -> None:
    u = a.unit(id)
    want = {s for s in ("stdout", "stderr") if ex.flag(s)}
    if not want:
        raise HttpError(400, "Bad parameters: you must choose at least one stream")
    tail = ex.arg("tail", "all")
    try:
        n = None if tail in ("all", "") else int(tail)
    except ValueError:
        raise HttpError(400, f"invalid tail {tail!r}: a number or all") from None
    req = api.Logs(
        id=u.id,
        follow=ex.flag("follow"),
        since_nano=since_nano(ex.arg("since")) if ex.arg("since") not in ("", "0") else None,
        until_nano=since_nano(ex.arg("until")) if ex.arg("until") not in ("", "0") else None,
        tail=n if n is None or n >= 0 else None,
    )
    stamps, tty = ex.flag("timestamps"), u.config.tty
    await ex.start_stream(_content_type(ex, tty))

    async def out(msg) -> None:
        if isinstance(msg, api.Output) and msg.stream in want:
            data = msg.data
            if stamps:
                data = rfc3339(msg.time_nano).encode() + b" " + data
            await ex.stream(data if tty else frame(msg.stream, data))

    await a.relay(out).run(req)
    await ex.end_stream()


# -- stats -----------------------------------------------------------------------------------


def _system_ns() -> int:
    """The host's CPU time (all CPUs) in nanoseconds, as dockerd reads /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def _cpu(s, system: int) -> dict:
    return {
        "cpu_usage": {"total_usage": s.cpu_usage_ns if s else 0},
        "system_cpu_usage": system,
        "online_cpus": os.cpu_count() or 1,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def _sample(u, s, pre, pre_system: int, now: int) -> dict:
    from supervisor.daemon.api_system import host_memory, net_io

    system = _system_ns()
    rx, tx = net_io(u.state.pid) if s else (0, 0)
    return {
        "read": rfc3339(now),
        "preread": rfc3339(now - 1_000_000_000) if pre else "0001-01-01T00:00:00Z",
        "id": u.id,
        "name": "/" + u.name,
        "pids_stats": {"current": s.pids if s else 0},
        "num_procs": 0,
        "cpu_stats": _cpu(s, system),
        "precpu_stats": _cpu(pre, pre_system) if pre else {"cpu_usage": {"total_usage": 0}},
        "memory_stats": {
            "usage": s.memory_usage if s else 0,
            "limit": (s.memory_limit or host_memory()) if s else 0,
            "stats": {},
        }
        if s
        else {},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": s.block_read},
                {"major": 0, "minor": 0, "op": "write", "value": s.block_written},
            ]
            if s
            else None
        },
        "networks": {"eth0": {"rx_bytes": rx, "tx_bytes": tx}} if s else None,
    }


async def stats(a: Api, ex: Exchange, id: str) -> None:
    """Docker's stats JSON each second; CPU % is the client's arithmetic over
    cpu_stats and precpu_stats, so a sample carries the one before it."""
    u = a.unit(id)
    stream = ex.flag("stream", True)
    one_shot = ex.flag("one-shot")

    def read():
        if not u.running:
            return None
        try:
            return a.fleet.runtime.stats(u.id)
        except Exception:
            return None

    pre, pre_system = None, 0
    if not stream and not one_shot:  # two readings, so that the CPU % is there
        pre, pre_system = read(), _system_ns()
        await trio.sleep(0.5)
    await ex.start_stream("application/json")
    while True:
        s = read()
        await ex.stream(json.dumps(_sample(u, s, pre, pre_system, time.time_ns())).encode() + b"\n")
        if not stream:
            break
        pre, pre_system = s, _system_ns()
        await trio.sleep(1)
    await ex.end_stream()


# -- archive (docker cp) and export ------------------------------------------------------------


def _stat_path(a: Api, u, path: str) -> dict:
    """Docker's PathStat of `path` in the container (a worker thread's)."""
    with a.fleet.container_root(u) as root:
        st = copying.path_stat(root, path)
    if st is None:
        raise HttpError(404, f"Could not find the file {path} in container {u.name}")
    return st


async def _stat_header(a: Api, u, path: str) -> tuple[str, str]:
    async with u.lock:
        st = await trio.to_thread.run_sync(_stat_path, a, u, path, limiter=a.fleet.tree_work)
    return "X-Docker-Container-Path-Stat", base64.b64encode(json.dumps(st).encode()).decode()


async def archive_head(a: Api, ex: Exchange, id: str) -> None:
    u = a.unit(id)
    header = await _stat_header(a, u, _path(ex))
    await ex.send(200, b"", "application/x-tar", [header])


def _path(ex: Exchange) -> str:
    path = ex.arg("path")
    if not path:
        raise HttpError(400, "path is required")
    return path


async def send_archive(a: Api, ex: Exchange, req, headers: Sequence[tuple[str, str]] = ()) -> None:
    """The archive a Corral handler makes (cp, export, save), sent as it
    comes; an error before its first bytes is an answer of its own."""
    started = False

    async def out(msg) -> None:
        nonlocal started
        if isinstance(msg, api.Archive):
            if not started:
                started = True
                await ex.start_stream("application/x-tar", 200, list(headers))
            await ex.stream(msg.data)

    await a.relay(out).run(req)
    if not started:
        await ex.send(200, b"", "application/x-tar", list(headers))
        return
    await ex.end_stream()


async def archive_get(a: Api, ex: Exchange, id: str) -> None:
    u = a.unit(id)
    path = _path(ex)
    header = await _stat_header(a, u, path)
    await send_archive(a, ex, api.CopyFrom(id=u.id, path=path), [header])


async def archive_put(a: Api, ex: Exchange, id: str) -> None:
    u = a.unit(id)
    path = _path(ex)
    send, inbox = trio.open_memory_channel(4)

    async def feed() -> None:
        async with send:
            async for chunk in ex.chunks():
                await send.send(api.StdinData(data=chunk))
            await send.send(api.StdinClose())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        await a.relay().run(api.CopyTo(id=u.id, path=path), inbox)
    await ex.send(200, b"", "text/plain")


async def export(a: Api, ex: Exchange, id: str) -> None:
    await send_archive(a, ex, api.Export(id=a.unit(id).id), [])


__all__ = ["ClientGone"]
