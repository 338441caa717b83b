"""The embedded DNS server: one per network, on its gateway, answering A
queries for the names, aliases and short ids of the containers on it (as
Docker's embedded DNS does), so names follow containers that restart or are
replaced. It answers nothing else (no forwarding: REFUSED), and never looks
anything up elsewhere.

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


def answer(data: bytes, lookup: Callable[[str], str | None]) -> bytes | None:
    q = parse_query(data)
    if q is None:
        return None
    qid, flags, name, qtype, end = q
    question = data[12:end]
    rd = flags & 0x0100
    addr = lookup(name)
    if addr is None:
        # Not one of ours: NXDOMAIN for names we own no record of.
        hdr = struct.pack(">HHHHHH", qid, 0x8000 | 0x0400 | rd | 3, 1, 0, 0, 0)
        return hdr + question
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
    *,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer on address:53; `lookup(name, asker's address)` gives the A record."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await sock.bind((address, 53))
        task_status.started()
        while True:
            data, peer = await sock.recvfrom(512)
            reply = answer(data, functools.partial(_ask, lookup, peer[0]))
            if reply is not None:
                await sock.sendto(reply, peer)
