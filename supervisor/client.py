"""A blocking client for the daemon's socket: the standard library and
protocols/ only (no trio), so `corral ps` starts in milliseconds."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import msgspec

from protocols import api
from protocols.wire import PROTOCOL_VERSION, Codec, FrameBuffer, frame

DEFAULT_SOCKET = "/run/corral/corral.sock"


class DaemonError(Exception):
    """The daemon answered with an Error."""

    def __init__(self, err: api.Error) -> None:
        super().__init__(err.message)
        self.kind, self.exit_code = err.kind, err.exit_code


class Unreachable(Exception):
    pass


def socket_path(flag: str | None = None) -> str:
    return flag or os.environ.get("CORRAL_SOCKET") or DEFAULT_SOCKET


class Client:
    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise Unreachable(
                f"cannot connect to the Corral daemon at {path}: {e.strerror}. "
                "Is `corral daemon` running?"
            ) from None
        except PermissionError:
            raise Unreachable(
                f"permission denied on {path}: the socket is for root and the corral group"
            ) from None
        self.enc = msgspec.msgpack.Encoder()
        self.codec = Codec(api.Response)
        self.buf = FrameBuffer()
        self.pending: list[bytes] = []
        welcome = self.call(api.Hello(version=PROTOCOL_VERSION, client="corral-cli"))
        assert isinstance(welcome, api.Welcome)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, msg: msgspec.Struct) -> None:
        self.sock.sendall(frame(self.enc.encode(msg)))

    def recv(self):
        while not self.pending:
            data = self.sock.recv(1 << 16)
            if not data:
                raise Unreachable("the daemon closed the connection")
            self.pending.extend(self.buf.feed(data))
        msg = self.codec.decode(self.pending.pop(0))
        if isinstance(msg, api.Error):
            raise DaemonError(msg)
        return msg

    def has_buffered(self) -> bool:
        return bool(self.pending)

    def call(self, req: msgspec.Struct):
        self.send(req)
        return self.recv()

    def stream(self, req: msgspec.Struct) -> Iterator:
        """Responses until End (not yielded) or Exited (yielded, last)."""
        self.send(req)
        while True:
            msg = self.recv()
            if isinstance(msg, api.End):
                return
            yield msg
            if isinstance(msg, api.Exited):
                return

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
