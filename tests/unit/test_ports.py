"""Parsing -p and --expose values: pure string handling."""

from __future__ import annotations

import pytest

from supervisor.network.ports import PortError, parse, parse_expose


def test_publish_forms():
    assert parse("80") == ("0.0.0.0", 0, 80, "tcp")
    assert parse("8080:80") == ("0.0.0.0", 8080, 80, "tcp")
    assert parse("127.0.0.1:8080:80/tcp") == ("127.0.0.1", 8080, 80, "tcp")
    assert parse("127.0.0.1::80") == ("127.0.0.1", 0, 80, "tcp")
    assert parse("53:53/udp")[3] == "udp"
    for bad in ("80/sctp", "web:80", "a:b:c"):
        with pytest.raises(PortError, match=bad):
            parse(bad)


def test_expose_forms():
    assert parse_expose("80") == ["80/tcp"]
    assert parse_expose("53/udp") == ["53/udp"]
    assert parse_expose("8000-8002") == ["8000/tcp", "8001/tcp", "8002/tcp"]
    for bad in ("http", "0", "70000", "90-80", "80/sctp"):
        with pytest.raises(PortError, match="--expose"):
            parse_expose(bad)
