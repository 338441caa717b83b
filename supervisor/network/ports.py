"""Published ports: a userland proxy in the daemon, as Docker falls back to.

This host has no iptables, and a proxy works on any host without touching its
firewall: for each `-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]` the daemon
listens on the host address and splices each TCP connection to the container's
address on its network; UDP datagrams go through one connected socket per client
address, which carries the replies back and is dropped after UDP_IDLE seconds
without traffic. The socket is bound when the container starts, so a port
already taken is an error then, naming the port.
"""

from __future__ import annotations

import errno
import socket

import trio

from supervisor import checks
from supervisor.errors import PortError

UDP_IDLE = 90.0  # seconds a client's UDP flow lives without traffic (as Docker's proxy)


def parse(spec: str) -> tuple[str, int, int, str]:
    """'8080:80', '127.0.0.1:8080:80/tcp', '80' -> (host ip, host port, port, proto)."""
    try:
        return checks.publish(spec)
    except ValueError as e:
        raise PortError(str(e)) from None


def parse_expose(spec: str) -> list[str]:
    """'80', '53/udp', '8000-8002/tcp' -> ['80/tcp'] ... (one entry per port)."""
    try:
        return checks.expose(spec)
    except ValueError as e:
        raise PortError(str(e)) from None


def bind(host: str, port: int, proto: str = "tcp") -> socket.socket:
    """The listening socket, bound now so that a taken port fails the start."""
    udp = proto == "udp"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    if not udp:  # for UDP it would let a second daemon share the port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            raise PortError(f"port {host}:{port} is already allocated") from None
        raise PortError(f"publishing {host}:{port}: {e.strerror}") from None
    if not udp:
        s.listen(128)
    return s


async def proxy(sock: socket.socket, target: str, port: int) -> None:
    """Serve connections on `sock` until cancelled, each spliced to target:port."""
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))

    async def handle(client: trio.SocketStream) -> None:
        async with client:
            try:
                upstream = await trio.open_tcp_stream(target, port)
            except OSError:
                return  # nothing listens in the container (yet): the client sees a close
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(_pump, client, upstream)
                nursery.start_soon(_pump, upstream, client)

    async with listener:
        await trio.serve_listeners(handle, [listener])


async def _pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
    try:
        while data := await src.receive_some(65536):
            await dst.send_all(data)
        await dst.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def proxy_udp(sock: socket.socket, target: str, port: int) -> None:
    """Relay datagrams on `sock` to target:port and the replies back, until cancelled."""
    front = trio.socket.from_stdlib_socket(sock)
    flows: dict[tuple[str, int], trio.socket.SocketType] = {}

    async def replies(client: tuple[str, int], up: trio.socket.SocketType) -> None:
        try:
            while True:
                with trio.move_on_after(UDP_IDLE) as idle:
                    data = await up.recv(65535)
                if idle.cancelled_caught:
                    return
                await front.sendto(data, client)
        except OSError:
            return  # ECONNREFUSED: nothing listens there; the next datagram retries
        finally:
            if flows.get(client) is up:
                del flows[client]
            up.close()

    with front:
        async with trio.open_nursery() as nursery:
            while True:
                data, client = await front.recvfrom(65535)
                up = flows.get(client)
                if up is None:
                    up = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    await up.connect((target, port))
                    flows[client] = up
                    nursery.start_soon(replies, client, up)
                try:
                    await up.send(data)
                except OSError:
                    pass  # a refused earlier datagram reported here: this one is lost too
