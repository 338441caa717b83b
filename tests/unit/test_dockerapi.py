"""The Docker API's pure pieces: routing and versions, create bodies to
ContainerConfig, filters, the stream format, and HTTP over an in-memory
stream (h11: malformed, oversized, slow, keep-alive)."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from supervisor.dockerapi import containers, images, objects, server, streams, system
from supervisor.dockerapi.context import filters_of, since_nano
from supervisor.dockerapi.createconfig import config_from
from supervisor.dockerapi.execs import Execs
from supervisor.dockerapi.http import HttpError


@pytest.mark.parametrize(
    ("method", "path", "handler", "params"),
    [
        ("GET", "/containers/json", containers.list_, {}),
        ("POST", "/containers/abc/start", containers.start, {"id": "abc"}),
        ("DELETE", "/containers/abc", containers.remove, {"id": "abc"}),
        ("POST", "/exec/e1/start", streams.exec_start, {"id": "e1"}),
        ("GET", "/images/host:5000/a/b:1/json", images.inspect, {"name": "host:5000/a/b:1"}),
        ("DELETE", "/images/a/b:1", images.remove, {"name": "a/b:1"}),
        ("POST", "/images/a/b/push", images.push, {"name": "a/b"}),
        ("GET", "/networks/n1", objects.network_inspect, {"id": "n1"}),
        ("HEAD", "/_ping", system.ping, {}),
    ],
)  # fmt: skip
def test_routes(method, path, handler, params):
    assert server.route(method, path) == (handler, params)


def test_unknown_paths_and_methods():
    with pytest.raises(HttpError) as e:
        server.route("GET", "/nothing")
    assert e.value.status == 404
    with pytest.raises(HttpError) as e:
        server.route("PUT", "/containers/json")
    assert e.value.status == 405


def test_versions_served_and_refused():
    assert server.version_of("/v1.41/info") == ("1.41", "/info")
    assert server.version_of("/v1.50/info") == ("1.50", "/info")
    assert server.version_of("/info") == ("", "/info")
    for v, word in (("1.40", "too old"), ("1.51", "too new"), ("1.9", "too old")):
        with pytest.raises(HttpError) as e:
            server.version_of(f"/v{v}/info")
        assert e.value.status == 400 and word in e.value.message


def test_create_body_to_config():
    cfg = config_from(
        {
            "Image": "busybox",
            "Cmd": ["sh", "-c", "x"],
            "Env": ["A=1"],
            "Labels": {"k": "v"},
            "Tty": True,
            "OpenStdin": True,
            "ExposedPorts": {"80/tcp": {}},
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000},
            "HostConfig": {
                "Binds": ["/src:/dst:ro", "vol:/v"],
                "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 4096}}],
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "Memory": 64 << 20,
                "NanoCpus": 500_000_000,
                "AutoRemove": False,
                "NetworkMode": "appnet",
                "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}],
                "CpuQuota": 0,
            },
            "NetworkingConfig": {"EndpointsConfig": {"appnet": {"Aliases": ["web"]}}},
        },
        "name1",
    )
    assert (cfg.name, cfg.image, cfg.cmd, cfg.tty, cfg.open_stdin) == (
        "name1", "busybox", ["sh", "-c", "x"], True, True,
    )  # fmt: skip
    assert cfg.health_cmd == ["sh", "-c", "true"] and cfg.health_interval == 2.0
    assert [(m.type, m.source, m.target, m.readonly) for m in cfg.mounts] == [
        ("bind", "/src", "/dst", True),
        ("volume", "vol", "/v", False),
        ("tmpfs", "", "/t", False),
    ]
    assert cfg.mounts[2].tmpfs_size == 4096
    assert cfg.ports == ["127.0.0.1:8080:80/tcp"]
    assert cfg.restart == "on-failure:3" and cfg.memory == 64 << 20 and cfg.cpus == 0.5
    assert cfg.memory_swap == 128 << 20  # Docker's default: twice the memory
    assert (cfg.network, cfg.network_aliases) == ("appnet", ["web"])
    assert cfg.ulimits == {"nofile": (10, 20)} and cfg.expose == ["80/tcp"]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({}, "config cannot be empty"),
        ({"Image": "x", "HostConfig": {"CpuQuota": 5000}}, "CpuQuota"),
        ({"Image": "x", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "restart policy"),
        ({"Image": "x", "HostConfig": {"Binds": ["a:b:c:d"]}}, "too many colons"),
    ],
)
def test_create_bodies_refused_with_the_field_named(body, word):
    with pytest.raises(HttpError) as e:
        config_from(body, "")
    assert e.value.status == 400 and word.lower() in e.value.message.lower()


def test_no_healthcheck_and_default_network():
    cfg = config_from({"Image": "x", "Healthcheck": {"Test": ["NONE"]}}, "")
    assert cfg.no_healthcheck and cfg.network == ""
    cfg = config_from({"Image": "x", "HostConfig": {"NetworkMode": "default"}}, "")
    assert cfg.network == ""


def test_filters_both_shapes():
    assert filters_of({"status": {"running": True, "exited": False}}) == {"status": ["running"]}
    assert filters_of({"label": ["a=b"]}) == {"label": ["a=b"]}
    with pytest.raises(HttpError):
        filters_of({"x": 3})


def test_since_until():
    assert since_nano("1796445180") == 1796445180 * 10**9
    assert since_nano("1796445180.5") == 1796445180 * 10**9 + 500_000_000
    assert since_nano("") is None
    with pytest.raises(HttpError):
        since_nano("yesterday")


def test_stream_frames_and_detach_keys():
    assert streams.frame("stdout", b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert streams.frame("stderr", b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    assert streams.detach_keys("") == b"\x10\x11"
    assert streams.detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(HttpError):
        streams.detach_keys("ctrl-foo")


def test_builder_step_names():
    assert images._step("[build 2/4] RUN make") == "2/4 : RUN make"
    assert images._step("[1/3] FROM busybox") == "1/3 : FROM busybox"
    assert images._step("odd") == "odd"


# -- HTTP over an in-memory stream --------------------------------------------------------


class FakeApi:
    """Enough of Api for the endpoints that answer without the fleet."""

    execs = Execs()


async def _exchange(data: bytes, *, timeout: float = 5.0, close: bool = True) -> bytes:
    client, srv = trio.testing.memory_stream_pair()
    out = b""

    async def serve() -> None:
        await server.serve_connection(FakeApi(), srv, timeout)
        await srv.aclose()  # as serve()'s handler closes a connection

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await client.send_all(data)
        if close:
            await client.send_eof()
        while chunk := await client.receive_some(65536):
            out += chunk
    return out


async def test_ping_and_keep_alive():
    out = await _exchange(
        b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\nGET /v1.44/version HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    first, _, rest = out.partition(b"\r\n\r\nOK")
    assert first.startswith(b"HTTP/1.1 200 OK") and b"api-version: 1.50" in first.lower()
    assert b"HTTP/1.1 200" in rest and b'"ApiVersion":"1.50"' in rest


async def test_malformed_unknown_and_oversized():
    out = await _exchange(b"NOT HTTP\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b"malformed HTTP request" in out
    out = await _exchange(b"GET /v1.50/nope HTTP/1.1\r\nHost: x\r\n\r\n")
    body = json.loads(out.partition(b"\r\n\r\n")[2])
    assert out.startswith(b"HTTP/1.1 404") and body == {"message": "page not found: GET /nope"}
    out = await _exchange(b"GET /_ping HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431")
    out = await _exchange(b"GET /v1.12/info HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b"too old" in out


async def test_a_body_that_never_arrives(autojump_clock):
    out = await _exchange(
        b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{",
        timeout=2.0,
        close=False,
    )
    assert out.startswith(b"HTTP/1.1 408") and b"did not arrive whole within 2s" in out


async def test_unknown_exec_is_404():
    out = await _exchange(b"GET /exec/nope/json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404") and b"No such exec instance: nope" in out
