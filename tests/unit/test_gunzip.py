"""The layer unpacker's gzip reader: members, padding, truncation, bounds."""

import gzip
import io
import os
import zlib

import pytest

from supervisor.images.layer import _Gunzip

DATA = os.urandom(100_000) + b"a" * 3_000_000  # spans several megabyte reads


def read_all(blob: bytes, n: int) -> bytes:
    g = _Gunzip(io.BytesIO(blob))
    out = []
    while chunk := g.read(n):
        out.append(chunk)
    return b"".join(out)


@pytest.mark.parametrize("n", [1000, 1 << 20])
@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (gzip.compress(DATA), DATA),
        (gzip.compress(DATA) + gzip.compress(b"xyz"), DATA + b"xyz"),
        (gzip.compress(b"abc") + gzip.compress(b"xyz"), b"abcxyz"),
        (gzip.compress(DATA) + b"\0" * 5000, DATA),
        (gzip.compress(DATA) + b"\0" * 5 + gzip.compress(b"q"), DATA + b"q"),
        (b"", b""),
    ],
    ids=["one", "two-members", "two-small", "padding", "padding-then-member", "empty"],
)
def test_reads_what_gzip_reads(blob: bytes, expected: bytes, n: int) -> None:
    assert read_all(blob, n) == expected
    assert gzip.decompress(blob) == expected  # the same as the standard library


GOOD = gzip.compress(DATA)


@pytest.mark.parametrize(
    ("blob", "error"),
    [
        (GOOD[:-3], EOFError),
        (GOOD[:-1], EOFError),
        (GOOD[: len(GOOD) // 2], EOFError),
        (GOOD + b"junk", zlib.error),
        (GOOD[:-8] + b"\0" * 8, zlib.error),  # a wrong CRC
    ],
    ids=["truncated-trailer", "last-byte-missing", "half", "trailing-junk", "bad-crc"],
)
def test_refuses_broken_streams(blob: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_all(blob, 1 << 20)


def test_output_is_bounded_per_read() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))
    assert len(_Gunzip(io.BytesIO(bomb)).read(1 << 20)) == 1 << 20
