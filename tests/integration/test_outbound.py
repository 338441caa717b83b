"""Outbound traffic from bridge networks (issue #18): masquerade and
forwarding rules in Corral's own nftables table. This machine reaches only the
package registries, so "outside" is a network namespace made by the test, with
a veth to the host: a server there sees who connects."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

import pytest

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]

OUTSIDE_NET = "198.51.100"  # TEST-NET-2: nothing on this host uses it

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8000)); s.listen(8)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nhello from outside\\n")
    c.close()
    print(peer[0], flush=True)
"""


def _nft_tables() -> str:
    import nftables

    return nftables.Nftables().cmd("list tables")[1]


@pytest.fixture
def outside():
    pytest.importorskip("nftables", reason="python3-nftables is not installed")
    from pyroute2 import IPRoute, NetNS, netns

    name = f"corral-out-{secrets.token_hex(3)}"
    host_if = f"cro{secrets.token_hex(3)}"
    netns.create(name)
    server = None
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": "eth0", "net_ns_fd": name})
            idx = ipr.link_lookup(ifname=host_if)[0]
            ipr.addr("add", index=idx, address=f"{OUTSIDE_NET}.254", prefixlen=24)
            ipr.link("set", index=idx, state="up")
        with NetNS(name) as ns:
            idx = ns.link_lookup(ifname="eth0")[0]
            ns.addr("add", index=idx, address=f"{OUTSIDE_NET}.1", prefixlen=24)
            ns.link("set", index=idx, state="up")
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        server = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{name}",
                sys.executable,
                "-c",
                SERVER,
                f"{OUTSIDE_NET}.1",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        yield server
    finally:
        if server is not None:
            server.kill()
            server.wait()
            server.stdout.close()
        with IPRoute() as ipr:
            for idx in ipr.link_lookup(ifname=host_if):
                ipr.link("del", index=idx)
        netns.remove(name)


def test_containers_reach_the_outside_masqueraded_and_networks_stay_apart(daemon, outside, rootfs):
    for net in ("neta", "netb"):
        assert daemon.cli("network", "create", net).returncode == 0
    from supervisor.network.nat import table_name

    table = f"table inet {table_name(str(daemon.root))}"
    assert table in _nft_tables(), "Corral's table is there while its networks are"
    got = daemon.cli(
        "run", "--rm", "--network", "neta", "--rootfs", str(rootfs),
        "wget", "-q", "-O-", f"http://{OUTSIDE_NET}.1:8000/",
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert got.stdout == "hello from outside\n"
    # The outside saw the host's address, not the container's: masqueraded.
    assert outside.stdout.readline().strip() == f"{OUTSIDE_NET}.254"
    # The default network too.
    got = daemon.cli(
        "run", "--rm", "--rootfs", str(rootfs), "wget", "-q", "-O-", f"http://{OUTSIDE_NET}.1:8000/"
    )
    assert got.stdout == "hello from outside\n", got.stderr
    # Isolation: a container on one network cannot reach one on another.
    started = daemon.cli("run", "-d", "--name", "inb", "--network", "netb", "--rootfs", str(rootfs),
                         "httpd", "-f", "-p", "80")  # fmt: skip
    assert started.returncode == 0, started.stderr
    b_ip = daemon.cli("inspect", "-f", "{{.NetworkSettings.Networks.netb.IPAddress}}", "inb")
    b_ip = b_ip.stdout.strip()
    assert b_ip
    cross = daemon.cli(
        "run", "--rm", "--network", "neta", "--rootfs", str(rootfs),
        "ping", "-c", "1", "-W", "1", b_ip,
    )  # fmt: skip
    assert cross.returncode != 0  # dropped between networks
    same = daemon.cli(
        "run", "--rm", "--network", "netb", "--rootfs", str(rootfs),
        "ping", "-c", "1", "-W", "2", b_ip,
    )  # fmt: skip
    assert same.returncode == 0, same.stdout + same.stderr  # and fine within one
    # Gone with the networks: the table leaves the host as it was.
    daemon.cli("rm", "-f", "inb")
    for net in ("neta", "netb"):
        assert daemon.cli("network", "rm", net).returncode == 0
    daemon.stop()
    deadline = time.monotonic() + 10
    while table in _nft_tables():
        assert time.monotonic() < deadline, _nft_tables()
        time.sleep(0.1)
