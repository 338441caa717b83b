"""Parsing -p and --expose values: pure string handling, Docker's messages."""

from __future__ import annotations

import pytest

from supervisor.network.ports import PortError, parse, parse_expose


def test_publish_forms():
    assert parse("80") == ("0.0.0.0", 0, 80, "tcp")
    assert parse("8080:80") == ("0.0.0.0", 8080, 80, "tcp")
    assert parse("127.0.0.1:8080:80/tcp") == ("127.0.0.1", 8080, 80, "tcp")
    assert parse("127.0.0.1::80") == ("127.0.0.1", 0, 80, "tcp")
    assert parse("[::1]:8080:80") == ("::1", 8080, 80, "tcp")
    assert parse("53:53/udp")[3] == "udp"
    for bad, message in (
        ("80/sctp", "invalid proto: sctp"),
        ("web:80", "invalid hostPort: web"),
        ("a:b:c", "invalid IP address: a"),
        ("99999:80", "invalid hostPort: 99999"),
        ("127.0.0.1:41999:99999", "invalid containerPort: 99999"),
        ("8080:0", "invalid containerPort: 0"),
        ("8080:-1", "invalid containerPort: -1"),
    ):
        with pytest.raises(PortError, match=message):
            parse(bad)


def test_expose_forms():
    assert parse_expose("80") == ["80/tcp"]
    assert parse_expose("53/udp") == ["53/udp"]
    assert parse_expose("8000-8002") == ["8000/tcp", "8001/tcp", "8002/tcp"]
    for bad in ("http", "0", "70000", "90-80", "80/sctp"):
        with pytest.raises(PortError, match="invalid"):
            parse_expose(bad)
