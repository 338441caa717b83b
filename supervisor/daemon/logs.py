"""Reading the logs the monitor writes (CRI format, rotated by size).

    2026-11-29T20:29:14.083560413Z stdout F a whole line
    2026-11-29T20:29:14.083702436Z stderr P a partial line, continued by the next record

Rotation renames container.log to container.log.1 (and .1 to .2, ...), so a
reader holding the old descriptor reads it to its end, then moves on to the
new file: no line is read twice or skipped.
"""

from __future__ import annotations

import calendar
import io
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import trio

from protocols.api import Output

POLL = 0.02  # seconds between looks at a growing log


def parse_time(ts: bytes) -> int:
    """RFC 3339 with nanoseconds ("...T20:29:14.083560413Z") to ns since the epoch."""
    secs = calendar.timegm(time.strptime(ts[:19].decode(), "%Y-%m-%dT%H:%M:%S"))
    frac = ts[20:-1] if len(ts) > 20 else b"0"
    return secs * 1_000_000_000 + int(frac.ljust(9, b"0")[:9])


def parse_line(line: bytes) -> Output | None:
    """One record, or None for a line that is not one (a torn write)."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
        return None
    try:
        t = parse_time(parts[0])
    except ValueError:
        return None
    content = parts[3] if len(parts) == 4 else b""
    data = content if parts[2] == b"P" else content + b"\n"
    return Output(stream=parts[1].decode(), data=data, time_nano=t)


def log_files(path: Path) -> list[Path]:
    """Oldest first: path.N ... path.1, path."""
    rotated = []
    for p in path.parent.glob(path.name + ".*"):
        suffix = p.name[len(path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if path.exists() else [])


def _records(f, since_nano: int | None, until_nano: int | None) -> Iterator[Output]:
    for line in f:
        if not line.endswith(b"\n"):
            break  # a record still being written
        rec = parse_line(line[:-1])
        if rec is None or (since_nano is not None and rec.time_nano < since_nano):
            continue
        if until_nano is not None and rec.time_nano > until_nano:
            continue
        yield rec


def read_existing(
    path: Path,
    since_nano: int | None,
    tail: int | None,
    upto: int | None = None,
    until_nano: int | None = None,
) -> list[Output]:
    """The records already written (between since and until, the last `tail` of
    them); of the current file only its first `upto` bytes, so that a follower
    starting at `upto` neither repeats nor skips."""
    out: deque[Output] = deque(maxlen=tail if tail is not None and tail >= 0 else None)
    for p in log_files(path):
        try:
            with open(p, "rb") as f:
                if p == path and upto is not None:
                    f = io.BytesIO(f.read(upto))
                out.extend(_records(f, since_nano, until_nano))
        except FileNotFoundError:
            continue  # rotated away while we read
    return list(out)


def end_offset(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def follow(
    path: Path, *, offset: int | None, exited: Callable[[], trio.Event]
) -> AsyncIterator[Output]:
    """Records from `offset` (None: the end of the file when first opened) until
    the container has stopped and everything it wrote has been read.

    `exited()` gives the event set when the current run ends: waiting on it
    (with a short timeout for new output) ends the stream as soon as the
    container does, not a polling interval later."""
    f = None
    buf = b""
    try:
        while f is None:
            try:
                f = open(path, "rb")  # noqa: SIM115 (held across awaits, closed below)
            except FileNotFoundError:
                if exited().is_set():
                    return
                with trio.move_on_after(POLL):
                    await exited().wait()
        size = os.fstat(f.fileno()).st_size
        f.seek(size if offset is None or offset > size else offset)
        stopped = False
        while True:
            chunk = f.read(1 << 16)
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    rec = parse_line(line)
                    if rec is not None:
                        yield rec
                continue
            # At the end of this file: has it been rotated under us?
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and st.st_ino != os.fstat(f.fileno()).st_ino:
                f.close()
                f = open(path, "rb")  # noqa: SIM115
                buf = b""
                continue
            if stopped:
                return
            if exited().is_set():
                stopped = True  # one more pass reads what it wrote last
                continue
            with trio.move_on_after(POLL):
                await exited().wait()
    finally:
        if f is not None:
            f.close()
