"""The embedded DNS server: one per network, on its gateway, answering A
queries for the names, aliases and short ids of the containers on it (as
Docker's embedded DNS does), so names follow containers that restart or are
replaced. Any other name is forwarded, as the query came, to the asking
container's --dns servers or else the host's (/etc/resolv.conf), and the first
answer relayed; the daemon forwards from the host's namespace, so a loopback
resolver (systemd-resolved's 127.0.0.53) serves too.

The wire format (RFC 1035) is small enough to read here: a 12-byte header,
one question (labels, type, class); the answer points back at the question.
"""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import Callable

import trio

A, IN = 1, 1


def parse_query(data: bytes) -> tuple[int, int, str, int, int] | None:
    """(id, flags, name, qtype, end of the question) or None if not a query."""
    if len(data) < 12:
        return None
    qid, flags, qd, _an, _ns, _ar = struct.unpack(">HHHHHH", data[:12])
    if flags & 0x8000 or qd != 1:
        return None
    pos, labels = 12, []
    while pos < len(data):
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 or pos + 1 + n > len(data):
            return None
        labels.append(data[pos + 1 : pos + 1 + n].decode(errors="replace"))
        pos += 1 + n
    if pos + 4 > len(data):
        return None
    qtype, _qclass = struct.unpack(">HH", data[pos : pos + 4])
    return qid, flags, ".".join(labels).lower().rstrip("."), qtype, pos + 4


NOT_OURS = b""  # answer(): a name no container has, for the upstream servers


def failure(data: bytes, rcode: int) -> bytes | None:
    """A reply to query `data` with no answer: NXDOMAIN (3), SERVFAIL (2)."""
    q = parse_query(data)
    if q is None:
        return None
    qid, flags, _name, _qtype, end = q
    hdr = struct.pack(">HHHHHH", qid, 0x8000 | (flags & 0x0100) | 0x0080 | rcode, 1, 0, 0, 0)
    return hdr + data[12:end]


def host_servers(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's nameservers, in order."""
    try:
        with open(path) as f:
            return [
                parts[1]
                for line in f
                if len(parts := line.split()) >= 2 and parts[0] == "nameserver"
            ]
    except OSError:
        return []


def answer(data: bytes, lookup: Callable[[str], str | None]) -> bytes | None:
    """Our reply to `data`; NOT_OURS for a name to forward; None: not a query."""
    q = parse_query(data)
    if q is None:
        return None
    qid, flags, name, qtype, end = q
    question = data[12:end]
    rd = flags & 0x0100
    addr = lookup(name)
    if addr is None:
        return NOT_OURS
    if qtype != A:
        hdr = struct.pack(">HHHHHH", qid, 0x8000 | 0x0400 | rd, 1, 0, 0, 0)
        return hdr + question  # the name exists, but has no record of that type
    hdr = struct.pack(">HHHHHH", qid, 0x8000 | 0x0400 | rd, 1, 1, 0, 0)
    rr = struct.pack(">HHHIH", 0xC00C, A, IN, 0, 4) + socket.inet_aton(addr)
    return hdr + question + rr


def _ask(lookup: Callable[[str, str], str | None], asker: str, name: str) -> str | None:
    return lookup(name, asker)


async def serve(
    address: str,
    lookup: Callable[[str, str], str | None],
    upstreams: Callable[[str], list[str]] = lambda asker: host_servers(),
    *,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer on address:53; `lookup(name, asker's address)` gives the A record,
    `upstreams(asker's address)` the servers a name of no container goes to."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await sock.bind((address, 53))
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                data, peer = await sock.recvfrom(512)
                reply = answer(data, functools.partial(_ask, lookup, peer[0]))
                if reply == NOT_OURS:
                    nursery.start_soon(_forward, sock, data, peer, upstreams(peer[0]))
                elif reply is not None:
                    await sock.sendto(reply, peer)


FORWARD_TIMEOUT = 2.0  # seconds for each upstream server, as resolv.conf's default is 5


async def _forward(sock, data: bytes, peer, servers: list[str]) -> None:
    """Ask each server in turn; relay the first reply, else SERVFAIL (no server
    answered) or NXDOMAIN (there was none to ask)."""
    for server in servers:
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        up = trio.socket.socket(family, socket.SOCK_DGRAM)
        with up, trio.move_on_after(FORWARD_TIMEOUT):
            try:
                await up.connect((server, 53))
                await up.send(data)
                reply = await up.recv(4096)
            except OSError:
                continue
            if reply[:2] == data[:2]:  # the same query id
                await sock.sendto(reply, peer)
                return
    reply = failure(data, 2 if servers else 3)
    if reply is not None:
        await sock.sendto(reply, peer)
