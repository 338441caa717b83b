"""The event journal: every event, on disk, in order, replayable.

Facts it relies on:
- Events are appended with write(2) to a file opened O_APPEND: once write
  returns, the event is in the page cache and survives the daemon being
  SIGKILLed (only a host crash could lose the last ones: no fsync per event).
- A frame torn by a crash mid-write can only be the last one; it is cut off
  when the journal is opened, and reported.
- Subscribers do not get queues. Each is a cursor (the next sequence number
  it wants) reading from an in-memory ring of recent events or, when it has
  fallen further behind, from the file. A slow subscriber only slows itself,
  holds no memory of its own, and misses nothing; only if the journal was
  compacted past its cursor is it told which events are gone (a Gap) and where
  it resumes.
- A subscriber that has caught up goes "live": append() writes the event's
  frame straight to its socket with one non-blocking write, instead of waking
  its task (a task switch per subscriber per event is what limits a Python
  daemon's fan-out). If the socket cannot take the whole frame, the rest is
  handed back to the subscriber's task, which finishes it and reads on from the
  journal: the switch between the two paths happens within one synchronous
  step of the trio thread, so nothing is lost or repeated.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import structlog
import trio

from protocols.events import Event, Gap, matches
from protocols.wire import HEADER, FrameError, frame

log = structlog.get_logger("corral.journal")

RING = 4096  # events kept in memory
INDEX_EVERY = 256  # a file offset remembered every N events
MAX_BYTES = 64 * 1024 * 1024  # past this the older half is dropped


class LiveSubscriber:
    """A caught-up subscriber that append() writes to directly."""

    def __init__(self, fd: int, filters: dict[str, list[str]]) -> None:
        self.fd = fd
        self.filters = filters
        self.next_seq = 0
        self.pending = b""  # the unwritten rest of a frame, for the task to finish
        self.failed = False
        self.wake = trio.Event()


class Journal:
    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._enc = msgspec.msgpack.Encoder()
        self._dec = msgspec.msgpack.Decoder(Event)
        # Recent events with their encoded frames: a frame is encoded once and
        # the same bytes go to the file and to every subscriber.
        self._ring: deque[Event] = deque(maxlen=RING)
        self._frames: deque[bytes] = deque(maxlen=RING)
        self._index: list[tuple[int, int]] = []  # (seq, offset), ascending
        self.first_seq = 1  # the oldest event still in the file
        self.last_seq = 0
        self._changed = trio.Event()
        self._live: set[LiveSubscriber] = set()
        self._fd = -1
        self._size = 0
        self._open()

    # -- storage -------------------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        good = 0
        first = None
        count = 0
        with os.fdopen(os.dup(fd), "rb") as f:
            for offset, ev in self._scan(f):
                if first is None:
                    first = ev.seq
                if count % INDEX_EVERY == 0:
                    self._index.append((ev.seq, offset))
                count += 1
                self._ring.append(ev)
                self._frames.append(b"")  # encoded again on demand
                self.last_seq = ev.seq
                good = f.tell()
            size = os.fstat(fd).st_size
        if good < size:
            log.warning("journal.torn_tail", path=str(self.path), dropped_bytes=size - good)
            os.ftruncate(fd, good)
        self.first_seq = first if first is not None else 1
        self._fd = fd
        self._size = good
        if self.last_seq == 0:
            self.first_seq = 1

    def _scan(self, f, start: int = 0):
        """(offset, event) for each whole frame from `start`; stops at a torn one."""
        f.seek(start)
        while True:
            offset = f.tell()
            head = f.read(4)
            if len(head) < 4:
                return
            (n,) = HEADER.unpack(head)
            body = f.read(n)
            if len(body) < n:
                return
            try:
                yield offset, self._dec.decode(body)
            except msgspec.DecodeError:
                log.error("journal.corrupt_frame", path=str(self.path), offset=offset)
                return

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        type: str,
        action: str,
        id: str,
        name: str = "",
        attributes: dict[str, str] | None = None,
    ) -> Event:
        ev = Event(
            seq=self.last_seq + 1,
            time_nano=time.time_ns(),
            type=type,
            action=action,
            id=id,
            name=name,
            attributes=attributes or {},
        )
        data = frame(self._enc.encode(ev))
        offset = self._size
        os.write(self._fd, data)
        self._size += len(data)
        if (ev.seq - self.first_seq) % INDEX_EVERY == 0 or not self._index:
            self._index.append((ev.seq, offset))
        self._ring.append(ev)
        self._frames.append(data)
        self.last_seq = ev.seq
        if self._live:
            self._write_live(ev, data)
        self._changed.set()
        self._changed = trio.Event()
        if self._size > self.max_bytes:
            self._compact()
        return ev

    def _write_live(self, ev: Event, data: bytes) -> None:
        for sub in list(self._live):
            sub.next_seq = ev.seq + 1
            if sub.filters and not matches(ev, sub.filters):
                continue
            try:
                n = os.write(sub.fd, data)
            except BlockingIOError:
                n = 0
            except OSError:
                sub.failed = True
                n = len(data)
            if n < len(data) or sub.failed:
                sub.pending = data[n:]
                self._live.discard(sub)
                sub.wake.set()

    def go_live(self, sub: LiveSubscriber, next_seq: int) -> bool:
        """Hand `sub` to append() if it has read everything up to now."""
        if next_seq <= self.last_seq:
            return False
        sub.next_seq = next_seq
        sub.pending = b""
        sub.wake = trio.Event()
        self._live.add(sub)
        return True

    def drop_live(self, sub: LiveSubscriber) -> None:
        self._live.discard(sub)

    def _compact(self) -> None:
        """Keep the newer half of the file (whole frames), atomically."""
        keep_from = self._index[len(self._index) // 2] if len(self._index) > 1 else None
        if keep_from is None:
            return
        seq, offset = keep_from
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            src.seek(offset)
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.rename(tmp, self.path)
        self.close()
        self._index = [(s, o - offset) for s, o in self._index if s >= seq]
        self.first_seq = seq
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        self._size = os.fstat(self._fd).st_size
        log.info("journal.compacted", first_seq=seq)

    # -- reading ---------------------------------------------------------------------------

    def read(self, from_seq: int, limit: int = 512) -> list[Event]:
        """Up to `limit` events with seq >= from_seq, oldest first."""
        return [ev for ev, _ in self.read_framed(from_seq, limit)]

    def read_framed(self, from_seq: int, limit: int = 512) -> list[tuple[Event, bytes]]:
        """Like read(), each event with its wire frame."""
        if from_seq > self.last_seq:
            return []
        if self._ring and from_seq >= self._ring[0].seq:
            start = from_seq - self._ring[0].seq
            end = min(len(self._ring), start + limit)
            out = []
            for i in range(start, end):
                data = self._frames[i]
                if not data:
                    data = self._frames[i] = frame(self._enc.encode(self._ring[i]))
                out.append((self._ring[i], data))
            return out
        return [(ev, frame(self._enc.encode(ev))) for ev in self._read_file(from_seq, limit)]

    def _read_file(self, from_seq: int, limit: int) -> list[Event]:
        i = bisect.bisect_right(self._index, (from_seq, float("inf"))) - 1
        offset = self._index[max(i, 0)][1] if self._index else 0
        out: list[Event] = []
        with open(self.path, "rb") as f:
            for _, ev in self._scan(f, offset):
                if ev.seq >= from_seq:
                    out.append(ev)
                    if len(out) >= limit:
                        break
        return out

    def seq_at(self, time_nano: int) -> int:
        """The first sequence number at or after `time_nano`."""
        if self._ring and self._ring[0].time_nano <= time_nano:
            for ev in self._ring:
                if ev.time_nano >= time_nano:
                    return ev.seq
            return self.last_seq + 1
        with open(self.path, "rb") as f:
            for _, ev in self._scan(f):
                if ev.time_nano >= time_nano:
                    return ev.seq
        return self.last_seq + 1

    async def wait_beyond(self, seq: int) -> None:
        """Return once an event with sequence number > seq exists."""
        while self.last_seq <= seq:
            await self._changed.wait()

    async def follow(
        self,
        from_seq: int,
        filters: dict[str, list[str]] | None = None,
        until_nano: int | None = None,
    ) -> AsyncIterator[Gap | list[tuple[Event, bytes]]]:
        """Batches of (event, frame) from `from_seq` on, live after the replay,
        with no gap and no duplicate at the switch (both come from the same
        sequence). A batch is what was there to read: the caller sends it in
        one write."""
        filters = filters or {}
        next_seq = max(from_seq, 1)
        while True:
            if next_seq < self.first_seq:
                yield Gap(first=next_seq, last=self.first_seq - 1, resume_from=self.first_seq)
                next_seq = self.first_seq
            batch = self.read_framed(next_seq)
            out = []
            for ev, data in batch:
                if until_nano is not None and ev.time_nano > until_nano:
                    if out:
                        yield out
                    return
                next_seq = ev.seq + 1
                if not filters or matches(ev, filters):
                    out.append((ev, data))
            if out:
                yield out
            if batch:
                continue
            if until_nano is not None:
                remaining = (until_nano - time.time_ns()) / 1e9
                if remaining <= 0:
                    return
                with trio.move_on_after(remaining):
                    await self.wait_beyond(next_seq - 1)
            else:
                await self.wait_beyond(next_seq - 1)


__all__ = ["FrameError", "Journal"]
