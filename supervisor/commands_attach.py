"""Streams a user watches: the output of run, start -a, attach and exec,
stdin from the terminal, the signals the client passes on, the detach keys and
the terminal's size.
"""

from __future__ import annotations

import os
import sys

from protocols import api_lite as api
from protocols import lite
from supervisor.client import Client, DaemonError, Unreachable


def attach(
    c: Client, id: str, *, stdin: bool, tty: bool, start: bool, sig_proxy: bool = True
) -> int:
    h, w = terminal_size() if tty else (0, 0)
    req = api.Attach(id=id, stdin=stdin, start=start, height=h, width=w)
    return pump(c, req, stdin=stdin, tty=tty, proxy_to=id if sig_proxy and not tty else None)


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


def pump(c: Client, req: lite.Lite, *, stdin: bool, tty: bool, proxy_to: str | None = None) -> int:
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
        ttymod.setraw(0)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        if not stdin:  # only the daemon to read: no selector (nor its import)
            while True:
                if (code := _handle(c.recv(), out, err, exec_id)) is not None:
                    return code
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(c.sock, selectors.EVENT_READ, "daemon")
        sel.register(0, selectors.EVENT_READ, "stdin")
        held = b""  # a ctrl-p that may start the detach keys
        while True:
            for key, _ in sel.select() if not c.has_buffered() else [(None, 0)]:
                if key is not None and key.data == "stdin":
                    data = os.read(0, 1 << 16)
                    if not data:
                        c.send(api.StdinClose())
                        sel.unregister(0)
                        continue
                    if restore is not None:
                        data, held = held + data, b""
                        if DETACH_KEYS in data:
                            before = data[: data.index(DETACH_KEYS)]
                            if before:
                                c.send(api.StdinData(data=before))
                            return 0
                        if data.endswith(DETACH_KEYS[:1]):
                            data, held = data[:-1], data[-1:]
                    if data:
                        c.send(api.StdinData(data=data))
                    continue
                if (code := _handle(c.recv(), out, err, exec_id)) is not None:
                    return code
    finally:
        if restore is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, restore)


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
        return msg.status_code
    return None


def cmd_attach(c: Client, args) -> int:
    """Docker's attach: the output from now on, stdin if the container has it
    open (and --no-stdin is not given), until it exits; its exit status."""
    data = c.call(api.Inspect(id=args.container)).data
    cfg = data.get("Config", {})
    stdin = bool(cfg.get("OpenStdin")) and not args.no_stdin
    tty = bool(cfg.get("Tty"))
    return attach(c, data["Id"], stdin=stdin, tty=tty, start=False, sig_proxy=args.sig_proxy)
