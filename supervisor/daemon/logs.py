"""Reading the logs the monitor writes (CRI format, rotated by size).

    2026-11-29T20:29:14.083560413Z stdout F a whole line
    2026-11-29T20:29:14.083702436Z stderr P a partial line, continued by the next record

Rotation renames container.log to container.log.1 (and .1 to .2, ...), so a
reader holding the old descriptor reads it to its end, then moves on to the
new file: no line is read twice or skipped.
"""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import AsyncIterator, Callable
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


CHUNK = 1 << 20  # bytes read (and records held) at a time
# Reads of a log run in worker threads, a few at a time: a client asking for
# a 4 GB log must not hold the event loop (nor every thread) for its length.
_READERS = trio.CapacityLimiter(4)


def _in_window(rec: Output, since_nano: int | None, until_nano: int | None) -> bool:
    return (since_nano is None or rec.time_nano >= since_nano) and (
        until_nano is None or rec.time_nano <= until_nano
    )


def _parse_block(block: bytes, since_nano: int | None, until_nano: int | None) -> list[Output]:
    """The records of whole lines in `block`, within the time window."""
    out = []
    for line in block.split(b"\n"):
        rec = parse_line(line)
        if rec is not None and _in_window(rec, since_nano, until_nano):
            out.append(rec)
    return out


def _read_block(path: Path, offset: int, end: int | None) -> tuple[bytes, int]:
    """Up to CHUNK bytes of whole lines from `offset` (not past `end`); the
    bytes and the offset after them. A line longer than CHUNK is read whole."""
    with open(path, "rb") as f:
        f.seek(offset)
        want = CHUNK if end is None else min(CHUNK, end - offset)
        data = f.read(max(want, 0))
        cut = data.rfind(b"\n")
        while cut < 0 and data and (end is None or offset + len(data) < end):
            more = f.read(CHUNK if end is None else min(CHUNK, end - offset - len(data)))
            if not more:
                break
            data += more
            cut = data.rfind(b"\n")
    if cut < 0:
        return b"", offset  # no whole line (yet): a record still being written
    return data[:cut], offset + cut + 1


def _tail_start(
    files: list[Path],
    ends: list[int | None],
    tail: int,
    since_nano: int | None,
    until_nano: int | None,
) -> tuple[int, int]:
    """Where the last `tail` records in the window begin: (index into `files`,
    offset). Reads backwards from the end, a block at a time, so that `--tail 2`
    of a 4 GB log reads kilobytes."""
    if tail <= 0:
        return len(files), 0
    found = 0
    for i in range(len(files) - 1, -1, -1):
        try:
            with open(files[i], "rb") as f:
                end = f.seek(0, os.SEEK_END) if ends[i] is None else ends[i]
                for line, at in _lines_backwards(f, _last_line_end(f, end)):
                    rec = parse_line(line)
                    if rec is not None and _in_window(rec, since_nano, until_nano):
                        found += 1
                        if found == tail:
                            return i, at
        except FileNotFoundError:
            continue  # rotated away while we read
    return 0, 0


_BACK = 64 * 1024  # bytes read per step backwards


def _last_line_end(f, end: int) -> int:
    """The offset just past the last newline before `end` (0: none): what
    follows it is a record still being written."""
    pos = end
    while pos > 0:
        start = max(0, pos - _BACK)
        f.seek(start)
        cut = f.read(pos - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def _lines_backwards(f, end: int):
    """(line, its offset) of the whole lines before `end` (which follows a
    newline), last first."""
    carry = b""  # the start of a line that began in an earlier block
    pos = end
    while pos > 0:
        start = max(0, pos - _BACK)
        f.seek(start)
        data = f.read(pos - start)
        if pos == end:
            data = data[:-1]  # the newline ending the last line
        lines = (data + carry).split(b"\n")
        carry = lines.pop(0) if start > 0 else b""
        offset = start + (len(carry) + 1 if start > 0 else 0)
        starts = []
        for line in lines:
            starts.append(offset)
            offset += len(line) + 1
        yield from zip(reversed(lines), reversed(starts), strict=True)
        pos = start


async def read_existing(
    path: Path,
    since_nano: int | None,
    tail: int | None,
    upto: int | None = None,
    until_nano: int | None = None,
) -> AsyncIterator[list[Output]]:
    """The records already written (between since and until; the last `tail`
    of them), in batches of at most CHUNK bytes of log, read in worker threads;
    of the current file only its first `upto` bytes, so that a follower
    starting at `upto` neither repeats nor skips."""
    files = log_files(path)
    ends = [upto if p == path else None for p in files]
    first, offset = 0, 0
    if tail is not None and tail >= 0:
        first, offset = await trio.to_thread.run_sync(
            _tail_start, files, ends, tail, since_nano, until_nano, limiter=_READERS
        )
    for i in range(first, len(files)):
        pos = offset if i == first else 0
        while True:
            try:
                block, pos = await trio.to_thread.run_sync(
                    _read_block, files[i], pos, ends[i], limiter=_READERS
                )
            except FileNotFoundError:
                break  # rotated away while we read
            if not block:
                break
            batch = _parse_block(block, since_nano, until_nano)
            if batch:
                yield batch


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
