"""The values both the client and the daemon check (supervisor/checks.py)."""

from __future__ import annotations

import pytest

from supervisor import checks


def test_names():
    assert checks.name("/web.1") == "web.1"
    for bad in ("", "a", "-x", "we b", "é1", "a" * 254, "a\0b"):
        with pytest.raises(ValueError, match="Invalid container name"):
            checks.name(bad)
    assert checks.name("a" * 253) == "a" * 253


def test_env_and_nul():
    checks.env("A=1")
    checks.env("A=")
    with pytest.raises(ValueError, match="invalid environment variable: =value"):
        checks.env("=value")
    with pytest.raises(ValueError, match="NUL"):
        checks.env("A=x\0y")
    with pytest.raises(ValueError, match=r"cmd.*NUL"):
        checks.no_nul("cmd", "ec\0ho")


def test_cpus():
    checks.cpus(0.5, 2)
    checks.cpus(2.0, 2)
    for bad in (float("nan"), float("inf"), -1.0, 0.0, 0.001):
        with pytest.raises(ValueError):
            checks.cpus(bad, 2)
    with pytest.raises(ValueError, match="only 2 CPUs"):
        checks.cpus(3, 2)
