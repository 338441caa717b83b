"""Subnet choice for networks: pure arithmetic over what is taken."""

from __future__ import annotations

import ipaddress
import re

import pytest

from supervisor.network.store import DEFAULT_POOL, POOL, NetworkError, NetworkStore


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(text)


def default(store: NetworkStore, taken: list[ipaddress.IPv4Network]):
    return store.create(
        "bridge", None, None, [*taken, POOL], bridge="br0", pool=DEFAULT_POOL, prefix=16
    )


def test_default_network_takes_10_88_then_the_next_free_16(tmp_path):
    assert default(NetworkStore(tmp_path / "a"), []).subnet == "10.88.0.0/16"
    # podman's default bridge (10.88.0.0/16) is a host route: skip it and 10.89 (user pool)
    assert default(NetworkStore(tmp_path / "b"), [net("10.88.0.0/16")]).subnet == "10.90.0.0/16"
    with pytest.raises(NetworkError, match="no free subnet"):
        default(NetworkStore(tmp_path / "c"), [net("10.0.0.0/8")])


def test_user_networks_avoid_the_default_and_each_other(tmp_path):
    store = NetworkStore(tmp_path)
    assert default(store, []).gateway == "10.88.0.1"
    assert store.create("a", None, None, []).subnet == "10.89.0.0/24"
    assert store.create("b", None, None, [net("10.89.1.0/24")]).subnet == "10.89.2.0/24"
    with pytest.raises(NetworkError, match=re.escape("overlaps 10.88.0.0/16")):
        store.create("c", "10.88.5.0/24", None, [])
    with pytest.raises(NetworkError, match="invalid network name 'bridge'"):
        store.create("bridge", None, None, [])  # only the daemon makes the default
    with pytest.raises(NetworkError, match=re.escape("not in 10.89.9.0/24")):
        store.create("d", "10.89.9.0/24", "10.1.1.1", [])
