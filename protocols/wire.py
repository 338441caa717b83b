"""The wire: length-prefixed msgpack frames over a Unix stream socket.

Each frame is a 4-byte big-endian length followed by that many bytes of
msgpack. A connection starts with the client's `Hello` and the daemon's
`Welcome` (or an `Error` and a close). docs/protocol.md has the whole story.
Standard library only: the daemon decodes payloads with msgspec (protocols/api.py),
the client with protocols/lite/__init__.py.
"""

from __future__ import annotations

import struct

PROTOCOL_VERSION = 1
MAX_FRAME = 16 * 1024 * 1024  # a frame above this is refused, and the connection closed
HEADER = struct.Struct(">I")


class FrameError(Exception):
    """A frame that cannot be read: oversized, truncated, or not msgpack."""


def frame(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME:
        raise FrameError(f"frame of {len(payload)} bytes is above the {MAX_FRAME}-byte limit")
    return HEADER.pack(len(payload)) + payload


class FrameBuffer:
    """Accumulates bytes from a stream and yields complete frame payloads."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame  # a larger frame is refused (FrameError)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out = []
        while len(self._buf) >= 4:
            (n,) = HEADER.unpack_from(self._buf)
            if n > self.max_frame:
                raise FrameError(f"frame of {n} bytes is above the {self.max_frame}-byte limit")
            if len(self._buf) < 4 + n:
                break
            out.append(bytes(self._buf[4 : 4 + n]))
            del self._buf[: 4 + n]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)
