"""Reading the CRI logs the monitor writes: --tail from the end, time windows,
rotated files, records still being written (supervisor/daemon/logs.py)."""

from __future__ import annotations

from pathlib import Path

import trio

from supervisor.daemon import logs


def _record(i: int, stream: str = "stdout", partial: bool = False) -> bytes:
    t = f"2026-12-01T10:00:{i // 1000:02d}.{i % 1000:03d}000000Z"
    return f"{t} {stream} {'P' if partial else 'F'} line {i}\n".encode()


def _write(path: Path, records: range, *, torn: bool = False) -> None:
    data = b"".join(_record(i) for i in records)
    if torn:
        data += b"2026-12-01T10:00:59.000000000Z stdout F half a li"
    path.write_bytes(data)


def _read(path: Path, **kw) -> list[str]:
    async def collect():
        out = []
        async for batch in logs.read_existing(
            path, kw.get("since"), kw.get("tail"), kw.get("upto"), kw.get("until")
        ):
            out += [r.data.decode().strip() for r in batch]
        return out

    return trio.run(collect)


def test_tail_reads_the_last_records(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "_BACK", 100)  # blocks smaller than a few lines
    log = tmp_path / "container.log"
    _write(log, range(50), torn=True)
    assert _read(log, tail=3) == ["line 47", "line 48", "line 49"]
    assert _read(log, tail=0) == []
    assert len(_read(log, tail=500)) == 50
    assert _read(log)[-1] == "line 49"  # the torn record is not one


def test_tail_spans_rotated_files_and_windows(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "_BACK", 64)
    log = tmp_path / "container.log"
    _write(tmp_path / "container.log.1", range(0, 10))
    _write(log, range(10, 13))
    assert _read(log, tail=5) == [f"line {i}" for i in range(8, 13)]
    until = logs.parse_time(_record(11)[:30])
    assert _read(log, tail=2, until=until) == ["line 10", "line 11"]
    since = logs.parse_time(_record(9)[:30])
    assert _read(log, since=since) == [f"line {i}" for i in range(9, 13)]


def test_upto_stops_at_the_followers_start(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "CHUNK", 50)  # blocks smaller than a line
    log = tmp_path / "container.log"
    _write(log, range(20))
    upto = len(b"".join(_record(i) for i in range(12)))
    assert _read(log, upto=upto) == [f"line {i}" for i in range(12)]
    assert _read(log, tail=2, upto=upto) == ["line 10", "line 11"]
