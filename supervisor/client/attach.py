"""Streams a user watches: the output of run, start -a, attach and exec,
stdin from the terminal, the signals the client passes on, the detach keys and
the terminal's size.
"""

from __future__ import annotations

import os
import sys

from protocols import lite
from protocols.lite import api
from supervisor.client.connection import Client, DaemonError, Unreachable, UsageError


def attach(
    c: Client,
    id: str,
    *,
    stdin: bool,
    tty: bool,
    start: bool,
    sig_proxy: bool = True,
    detach_keys: bytes = b"",
) -> int:
    h, w = terminal_size() if tty else (0, 0)
    req = api.Attach(id=id, stdin=stdin, start=start, height=h, width=w)
    proxy = id if sig_proxy and not tty else None
    return pump(c, req, stdin=stdin, tty=tty, proxy_to=proxy, detach_keys=detach_keys)


def terminal_size() -> tuple[int, int]:
    """(rows, columns) of the terminal we run on; (0, 0) when there is none."""
    for fd in (1, 0, 2):
        try:
            size = os.get_terminal_size(fd)
            return size.lines, size.columns
        except OSError:
            continue
    return 0, 0


def _follow_resizes(c: Client, id: str, exec_id: list[str]) -> None:
    """SIGWINCH: send the new size (on a connection of its own, as the stream's is
    busy); `exec_id` holds the exec's id once the daemon has said it."""
    import signal

    def resized(_signum: int, _frame: object) -> None:
        h, w = terminal_size()
        if not h:
            return
        try:
            with Client(c.path) as r:
                r.call(api.Resize(id=id, height=h, width=w, exec_id="".join(exec_id)))
        except (DaemonError, Unreachable):
            pass  # it ended meanwhile: the stream will say so

    signal.signal(signal.SIGWINCH, resized)


DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, Docker's default


def parse_detach_keys(text: str) -> bytes:
    """--detach-keys, Docker's notation: comma-separated `ctrl-X` (X a letter or
    one of @[\\]^_) or single characters; "" turns detaching off."""
    out = bytearray()
    for part in filter(None, text.split(",")):
        if part.startswith("ctrl-") and len(part) == 6:
            code = ord(part[5].upper()) - 64
            if 0 <= code <= 31:
                out.append(code)
                continue
        elif len(part) == 1 and part.isascii():
            out.append(ord(part))
            continue
        raise UsageError(f"--detach-keys: {part!r} is not a key (ctrl-a, ctrl-@, x)")
    return bytes(out)


PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _proxy_signals(c: Client, id: str) -> None:
    """--sig-proxy: a signal this client gets goes to the container (a Kill on a
    connection of its own, as the attach one is busy streaming)."""
    # _signal, not signal: signal.py builds enums of every signal, ~2 ms of the
    # start of `corral run` (which proxies by default) for names we know.
    import _signal

    names = {getattr(_signal, n): n for n in PROXIED}

    def forward(signum: int, _frame: object) -> None:
        try:
            with Client(c.path) as k:
                k.call(api.Kill(id=id, signal=names[signum]))
        except (DaemonError, Unreachable):
            pass  # it is gone: the stream will say how it ended

    for signum in names:
        _signal.signal(signum, forward)


def pump(
    c: Client,
    req: lite.Lite,
    *,
    stdin: bool,
    tty: bool,
    proxy_to: str | None = None,
    detach_keys: bytes = DETACH_KEYS,
) -> int:
    """Send `req`, copy Output to our stdout/stderr and our stdin to the daemon,
    until Exited; return its status. On a terminal in raw mode, ctrl-p ctrl-q
    detaches (the container goes on) and returns 0."""
    c.send(req)
    if proxy_to is not None:
        _proxy_signals(c, proxy_to)
    exec_id: list[str] = []
    if tty and getattr(req, "height", 0):
        _follow_resizes(c, req.id, exec_id)  # type: ignore[attr-defined]
    restore = None
    if stdin and tty and os.isatty(0):
        import termios
        import tty as ttymod

        restore = termios.tcgetattr(0)
        ttymod.setraw(0, termios.TCSANOW)  # TCSAFLUSH, its default, drops type-ahead
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        if stdin and not _pollable(0):
            # A regular file or /dev/null: epoll refuses them (they are always
            # ready). A thread copies it to the daemon while we read the output.
            _send_file_stdin(c)
            stdin = False
        if not stdin:  # only the daemon to read: no selector (nor its import)
            while True:
                if (code := _handle(c.recv(), out, err, exec_id)) is not None:
                    return code
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(c.sock, selectors.EVENT_READ, "daemon")
        sel.register(0, selectors.EVENT_READ, "stdin")
        held = b""  # the start of the detach keys, maybe
        while True:
            for key, _ in sel.select() if not c.has_buffered() else [(None, 0)]:
                if key is not None and key.data == "stdin":
                    data = os.read(0, 1 << 16)
                    if not data:
                        c.send(api.StdinClose())
                        sel.unregister(0)
                        continue
                    if restore is not None and detach_keys:
                        data, held = held + data, b""
                        if detach_keys in data:
                            before = data[: data.index(detach_keys)]
                            if before:
                                c.send(api.StdinData(data=before))
                            return 0
                        held = _partial_keys(data, detach_keys)  # may start the sequence
                        data = data[: len(data) - len(held)]
                    if data:
                        c.send(api.StdinData(data=data))
                    continue
                if (code := _handle(c.recv(), out, err, exec_id)) is not None:
                    return code
    finally:
        if restore is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, restore)


def _pollable(fd: int) -> bool:
    """Whether epoll takes `fd`: pipes, sockets and terminals; not regular
    files, nor character devices other than terminals (/dev/null)."""
    import stat

    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISBLK(mode):
        return False
    return not stat.S_ISCHR(mode) or os.isatty(fd)


def _send_file_stdin(c: Client) -> None:
    """Copy our stdin (a file) to the daemon from a thread, then close it."""
    import threading

    def copy() -> None:
        try:
            while data := os.read(0, 1 << 16):
                c.send(api.StdinData(data=data))
            c.send(api.StdinClose())
        except (Unreachable, OSError):
            pass  # the stream has ended: the main thread reports how

    threading.Thread(target=copy, daemon=True).start()


def _partial_keys(data: bytes, keys: bytes) -> bytes:
    """The longest end of `data` that begins `keys` (held until the next read)."""
    for n in range(min(len(keys) - 1, len(data)), 0, -1):
        if data.endswith(keys[:n]):
            return data[-n:]
    return b""


def _handle(msg: lite.Lite, out, err, exec_id: list[str]) -> int | None:
    """One message of the stream: output written, an exec's id kept; the exit
    status once it comes."""
    if isinstance(msg, api.Output):
        stream = err if msg.stream == "stderr" else out
        stream.write(msg.data)
        stream.flush()
    elif isinstance(msg, api.ExecStarted):
        exec_id.append(msg.exec_id)
    elif isinstance(msg, api.Exited):
        if msg.error:  # its setup failed after the start (between it and execve)
            err.write(f"corral: {msg.error}\n".encode())
            err.flush()
        return msg.status_code
    return None


def cmd_attach(c: Client, args) -> int:
    """Docker's attach: the output from now on, stdin if the container has it
    open (and --no-stdin is not given), until it exits; its exit status."""
    data = c.call(api.Inspect(id=args.container)).data
    cfg = data.get("Config", {})
    stdin = bool(cfg.get("OpenStdin")) and not args.no_stdin
    tty = bool(cfg.get("Tty"))
    keys = parse_detach_keys(args.detach_keys)
    return attach(
        c, data["Id"], stdin=stdin, tty=tty, start=False, sig_proxy=args.sig_proxy, detach_keys=keys
    )
