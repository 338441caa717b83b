"""User networks: real bridges, veths and an embedded DNS, between real containers."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]

SERVE = "echo {body} > /tmp/index.html; httpd -f -p 80 -h /tmp"
FETCH = (
    "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://{host}/ && exit 0; "
    "sleep 0.1; done; exit 1"
)


def ok(p):
    assert p.returncode == 0, p.stderr
    return p.stdout


def links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


@pytest.fixture
def net(daemon):
    name = "n" + secrets.token_hex(4)
    ok(daemon.cli("network", "create", name))
    return name


def test_containers_reach_each_other_by_name_and_alias(daemon, rootfs, net):
    ok(
        daemon.cli(
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            net,
            "--network-alias",
            "www",
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            SERVE.format(body="v1"),
        )
    )
    for host in ("web", "www"):
        out = ok(
            daemon.cli(
                "run",
                "--rm",
                "--network",
                net,
                "--rootfs",
                str(rootfs),
                "sh",
                "-c",
                FETCH.format(host=host),
            )
        )
        assert out.strip() == "v1"
    info = json.loads(ok(daemon.cli("network", "inspect", net)))[0]
    assert len(info["containers"]) == 1 and info["bridge"] in links()


def test_name_follows_a_replaced_container(daemon, rootfs, net):
    ok(
        daemon.cli(
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            net,
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            SERVE.format(body="old"),
        )
    )
    ok(daemon.cli("rm", "-f", "db"))
    ok(
        daemon.cli(
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            net,
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            SERVE.format(body="new"),
        )
    )
    out = ok(
        daemon.cli(
            "run",
            "--rm",
            "--network",
            net,
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            FETCH.format(host="db"),
        )
    )
    assert out.strip() == "new"


def test_separate_networks_cannot_talk(daemon, rootfs, net):
    other = "n" + secrets.token_hex(4)
    ok(daemon.cli("network", "create", other))
    ok(
        daemon.cli(
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            net,
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            SERVE.format(body="secret"),
        )
    )
    addr = json.loads(ok(daemon.cli("network", "inspect", net)))[0]["containers"]
    ip = next(iter(addr.values()))
    out = ok(
        daemon.cli(
            "run",
            "--rm",
            "--network",
            other,
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            f"nc -w 1 {ip} 80 </dev/null && echo REACHED || echo isolated; "
            "wget -q -O - http://srv/ 2>/dev/null || echo no-name",
        )
    )
    assert "REACHED" not in out and "isolated" in out and "no-name" in out


def test_nothing_left_after_containers_and_networks_go(daemon, rootfs):
    before = links()
    name = "n" + secrets.token_hex(4)
    ok(daemon.cli("network", "create", "--subnet", "10.89.200.0/24", name))
    p = daemon.cli("network", "create", "--subnet", "10.89.200.128/25", name + "x")
    assert p.returncode != 0 and "overlaps" in p.stderr
    cid = ok(
        daemon.cli("run", "-d", "--network", name, "--rootfs", str(rootfs), "sleep", "1000")
    ).strip()
    assert "crv" + cid[:10] in links()
    p = daemon.cli("network", "rm", name)
    assert p.returncode == 1 and "in use" in p.stderr
    ok(daemon.cli("rm", "-f", cid))
    assert "crv" + cid[:10] not in links()  # the veth went with the namespace
    ok(daemon.cli("network", "rm", name))
    assert links() == before
