"""A blocking client for the daemon's socket: the standard library and
protocols' msgspec-free mirror (protocols/lite/__init__.py) only, no trio, no msgspec,
so `corral ps` starts in milliseconds."""

from __future__ import annotations

# _socket, not socket: socket.py wraps it with enums and selectors, ~3 ms of a
# client's start on the project's VM for nothing a blocking Unix-socket client uses.
import _socket
import os

from protocols import lite
from protocols.lite import api
from protocols.wire import PROTOCOL_VERSION, FrameBuffer, frame

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections.abc imports collections: ~1.5 ms of the client's start
    from collections.abc import Iterator

DEFAULT_SOCKET = "/run/corral/corral.sock"


class DaemonError(Exception):
    """The daemon answered with an Error."""

    def __init__(self, err: api.Error) -> None:
        super().__init__(err.message)
        self.kind, self.exit_code = err.kind, err.exit_code


class Unreachable(Exception):
    pass


class UsageError(Exception):
    """A flag or value the command cannot take: said before anything is asked
    of the daemon, and the command exits 125, as Docker's do."""


def confirm(args, warning: str) -> bool:
    """Docker's prompt before a prune: WARNING, then [y/N] on stdin; -f skips it."""
    import sys

    if getattr(args, "force", False):
        return True
    sys.stdout.write(f"WARNING! {warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def socket_path(flag: str | None = None) -> str:
    return flag or os.environ.get("CORRAL_SOCKET") or DEFAULT_SOCKET


class Client:
    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
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
        self.buf = FrameBuffer()
        self.pending: list[bytes] = []
        welcome = self.call(api.Hello(version=PROTOCOL_VERSION, client="corral-cli"))
        assert isinstance(welcome, api.Welcome)
        self.server = welcome.server

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, msg: lite.Lite) -> None:
        try:
            self.sock.sendall(frame(lite.encode(msg)))
        except (BrokenPipeError, ConnectionResetError):
            raise Unreachable("the daemon closed the connection (did it stop?)") from None

    def send_encoded(self, body: bytes) -> None:
        """A message msgspec encoded (compose's project: the same wire bytes as
        its lite mirror would write, without building one)."""
        try:
            self.sock.sendall(frame(body))
        except (BrokenPipeError, ConnectionResetError):
            raise Unreachable("the daemon closed the connection (did it stop?)") from None

    def recv(self):
        while not self.pending:
            try:
                data = self.sock.recv(1 << 16)
            except ConnectionResetError:
                data = b""
            if not data:
                raise Unreachable("the daemon closed the connection (did it stop?)")
            self.pending.extend(self.buf.feed(data))
        msg = lite.decode(self.pending.pop(0))
        if isinstance(msg, api.Error):
            raise DaemonError(msg)
        return msg

    def has_buffered(self) -> bool:
        return bool(self.pending)

    def call(self, req: lite.Lite):
        self.send(req)
        return self.recv()

    def stream(self, req: lite.Lite) -> Iterator:
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


def each(c: Client, refs: list[str], make) -> int:
    """make(ref) asked of the daemon for each ref, as Docker's multi-container
    commands do: each one's name printed, an error said, the rest still done."""
    import sys

    rc = 0
    for ref in refs:
        try:
            c.call(make(ref))
            print(ref)
        except DaemonError as e:
            print(f"corral: Error response from daemon: {e}", file=sys.stderr)
            rc = 1
    return rc
