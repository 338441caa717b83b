"""The event journal: compaction keeps the newer half whole, and a reader that
fell behind it is told what is gone (a Gap) and resumes where events remain;
a torn last frame is cut off at open. No root needed: a file in a tmp dir."""

from __future__ import annotations

import time
from contextlib import aclosing

import pytest
import trio

from protocols.events import Gap
from supervisor.daemon import journal as journal_mod
from supervisor.daemon.journal import Journal


@pytest.fixture
def small(monkeypatch):
    # A small ring and index so that compaction and file reads happen early.
    monkeypatch.setattr(journal_mod, "RING", 16)
    monkeypatch.setattr(journal_mod, "INDEX_EVERY", 8)


def _fill(j: Journal, n: int) -> None:
    for i in range(n):
        j.append("container", "start", f"id{i}", f"name{i}", {"i": str(i)})


def test_compaction_keeps_the_newer_half_in_order(tmp_path, small):
    j = Journal(tmp_path / "events.journal", max_bytes=8 * 1024)
    _fill(j, 600)
    assert j.first_seq > 1 and j.last_seq == 600
    kept = j.read(j.first_seq, limit=10_000)
    assert [e.seq for e in kept] == list(range(j.first_seq, 601))  # whole, no gap inside
    assert (tmp_path / "events.journal").stat().st_size <= 8 * 1024 + 1024
    j.close()
    again = Journal(tmp_path / "events.journal", max_bytes=8 * 1024)  # survives a reopen
    assert (again.first_seq, again.last_seq) == (j.first_seq, 600)
    again.close()


async def test_a_reader_behind_the_compaction_gets_a_gap(tmp_path, small):
    j = Journal(tmp_path / "events.journal", max_bytes=8 * 1024)
    _fill(j, 600)
    got: list = []
    async with aclosing(j.follow(1, until_nano=time.time_ns())) as replay:  # bounded
        async for item in replay:
            got.append(item)
    gap = got[0]
    assert isinstance(gap, Gap)
    assert (gap.first, gap.last, gap.resume_from) == (1, j.first_seq - 1, j.first_seq)
    seqs = [ev.seq for batch in got[1:] for ev, _ in batch]
    assert seqs == list(range(j.first_seq, 601))
    j.close()


async def test_follow_goes_live_without_gap_or_duplicate(tmp_path, small):
    j = Journal(tmp_path / "events.journal")
    _fill(j, 40)  # past the ring: the first reads come from the file
    seen: list[int] = []

    async def reader():
        async with aclosing(j.follow(1)) as live:
            async for batch in live:
                seen.extend(ev.seq for ev, _ in batch)
                if seen[-1] >= 60:
                    return

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        await trio.sleep(0)
        _fill(j, 20)
    assert seen == list(range(1, 61))
    j.close()


def test_a_torn_last_frame_is_cut_off(tmp_path):
    path = tmp_path / "events.journal"
    j = Journal(path)
    _fill(j, 5)
    j.close()
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x01\x00partial")  # a crash mid-write
    again = Journal(path)
    assert again.last_seq == 5
    ev = again.append("container", "die", "x")
    assert ev.seq == 6 and [e.seq for e in again.read(1)] == [1, 2, 3, 4, 5, 6]
    again.close()
