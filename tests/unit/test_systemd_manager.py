"""The systemd cgroup manager's choices that need no systemd."""

from __future__ import annotations

import argparse

import pytest

from supervisor.daemon import main, systemd
from supervisor.errors import CgroupError


@pytest.mark.parametrize("name", ["corral", "a/b.scope", "corral.service", ""])
def test_a_systemd_parent_must_be_a_scope_name(name):
    with pytest.raises(CgroupError, match=r"NAME\.scope"):
        systemd.ensure_scope(name, "/bin/false")


def _args(manager: str, parent: str | None) -> argparse.Namespace:
    return argparse.Namespace(cgroup_manager=manager, cgroup_parent=parent)


async def test_cgroupfs_unless_systemd_runs_the_daemon(monkeypatch):
    monkeypatch.setattr(systemd, "run_by_systemd", lambda: False)
    assert await main._cgroup_parent(_args("auto", None)) == "/corral"
    assert await main._cgroup_parent(_args("cgroupfs", "/mine")) == "/mine"


async def test_a_path_given_says_cgroupfs_even_under_systemd(monkeypatch):
    monkeypatch.setattr(systemd, "run_by_systemd", lambda: True)
    assert await main._cgroup_parent(_args("auto", "/mine")) == "/mine"


async def test_systemd_asked_for_where_there_is_none_is_an_error(monkeypatch):
    monkeypatch.setattr(systemd, "booted", lambda: False)
    with pytest.raises(SystemExit, match="no systemd"):
        await main._cgroup_parent(_args("systemd", None))
