"""User networks: real bridges, veths and an embedded DNS, between real containers."""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
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


# A UDP echo server run in a container's network namespace (busybox has none).
UDP_ECHO = """
import ctypes, socket, sys
ns = open(f"/proc/{sys.argv[1]}/ns/net")
if ctypes.CDLL(None, use_errno=True).setns(ns.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
    raise OSError(ctypes.get_errno(), "setns")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"echo:" + data, peer)
"""


def fetch_local(port: int) -> bytes:
    """GET / from 127.0.0.1:port, retried until the server in the container listens."""
    for _ in range(50):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        except OSError:
            time.sleep(0.05)
    return b""


@pytest.fixture
def net(daemon):
    name = "n" + secrets.token_hex(4)
    ok(daemon.cli("network", "create", name))
    return name


def serve(daemon, rootfs, network: str, name: str, body: str, *flags: str) -> str:
    """A detached busybox httpd answering `body` on port 80; its id."""
    args = ("-d", "--name", name, "--network", network, *flags, "--rootfs", str(rootfs))
    return ok(daemon.cli("run", *args, "sh", "-c", SERVE.format(body=body))).strip()


def fetch_from(daemon, rootfs, network: str, script: str, *flags: str) -> str:
    """The output of a one-off container on `network` running `script`."""
    args = ("run", "--rm", "--network", network, *flags, "--rootfs", str(rootfs))
    return ok(daemon.cli(*args, "sh", "-c", script))


def test_containers_reach_each_other_by_name_and_alias(daemon, rootfs, net):
    serve(daemon, rootfs, net, "web", "v1", "--network-alias", "www")
    settings = json.loads(ok(daemon.cli("inspect", "web")))[0]["NetworkSettings"]
    address = settings["Networks"][net]["IPAddress"]
    assert settings["IPAddress"] == address and "www" in settings["Networks"][net]["Aliases"]
    for host in ("web", "www", address):  # the address inspect gives is the one it serves on
        assert fetch_from(daemon, rootfs, net, FETCH.format(host=host)).strip() == "v1"
    info = json.loads(ok(daemon.cli("network", "inspect", net)))[0]  # Docker's shape
    assert info["Name"] == net and info["Driver"] == "bridge"
    assert info["Options"]["com.docker.network.bridge.name"] in links()
    (member,) = info["Containers"].values()
    assert member["Name"] == "web" and member["IPv4Address"].startswith(address + "/")
    subnet = ok(
        daemon.cli("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", net)
    )
    assert subnet.strip() == info["IPAM"]["Config"][0]["Subnet"]
    listed = ok(daemon.cli("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.ID}}"))
    assert f"{net} bridge {info['Id'][:12]}" in listed.splitlines()
    # Docker's table and -q (ids), and an id prefix wherever a name goes.
    head, *rows = ok(daemon.cli("network", "ls")).splitlines()
    assert head.split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [info["Id"][:12], net, "bridge", "local"] in [r.split() for r in rows]
    assert info["Id"][:12] in ok(daemon.cli("network", "ls", "-q")).split()
    by_id = json.loads(ok(daemon.cli("network", "inspect", info["Id"][:8])))[0]
    assert by_id["Name"] == net


def test_the_gateways_mac_stays_as_containers_come_and_go(daemon, rootfs, net):
    """A bridge left to the kernel takes its lowest port's MAC, so each
    container that joins or leaves can change the gateway's address under the
    others' neighbour caches (their DNS and way out then dark for seconds).
    Corral's bridges have an address of their own."""
    bridge = json.loads(ok(daemon.cli("network", "inspect", net)))[0]["Options"][
        "com.docker.network.bridge.name"
    ]
    sysfs = Path("/sys/class/net") / bridge
    assert (sysfs / "addr_assign_type").read_text().strip() == "3"  # NET_ADDR_SET
    before = (sysfs / "address").read_text()
    ids = [serve(daemon, rootfs, net, f"m{i}", "x") for i in range(4)]
    assert (sysfs / "address").read_text() == before
    for cid in ids:
        ok(daemon.cli("rm", "-f", cid))
        assert (sysfs / "address").read_text() == before


def test_chosen_address_on_a_user_network(daemon, rootfs):
    name = "n" + secrets.token_hex(4)
    ok(daemon.cli("network", "create", "--subnet", "10.89.201.0/24", name))
    serve(daemon, rootfs, name, "fixed", "at .50", "--ip", "10.89.201.50")
    settings = json.loads(ok(daemon.cli("inspect", "fixed")))[0]["NetworkSettings"]
    assert settings["Networks"][name]["IPAddress"] == "10.89.201.50"
    got = fetch_from(daemon, rootfs, name, FETCH.format(host="10.89.201.50"))
    assert got.strip() == "at .50"
    refusals = [
        (["--network", name, "--ip", "10.89.201.50"], "already in use"),
        (["--network", name, "--ip", "10.89.202.5"], "not in network"),
        (["--network", name, "--ip", "10.89.201.255"], "network, broadcast or gateway"),
        (["--ip", "10.89.201.60"], "user network"),  # the default network
    ]
    for flags, message in refusals:
        p = daemon.cli("run", "--rm", *flags, "--rootfs", str(rootfs), "true")
        assert p.returncode != 0 and message in p.stderr, (flags, p.stderr)
    ok(daemon.cli("rm", "-f", "fixed"))
    ok(daemon.cli("network", "rm", name))


def test_name_follows_a_replaced_container(daemon, rootfs, net):
    serve(daemon, rootfs, net, "db", "old")
    ok(daemon.cli("rm", "-f", "db"))
    serve(daemon, rootfs, net, "db", "new")
    assert fetch_from(daemon, rootfs, net, FETCH.format(host="db")).strip() == "new"


def test_separate_networks_cannot_talk(daemon, rootfs, net):
    other = "n" + secrets.token_hex(4)
    ok(daemon.cli("network", "create", other))
    serve(daemon, rootfs, net, "srv", "secret")
    members = json.loads(ok(daemon.cli("network", "inspect", net)))[0]["Containers"]
    ip = next(iter(members.values()))["IPv4Address"].partition("/")[0]
    out = fetch_from(
        daemon,
        rootfs,
        other,
        f"nc -w 1 {ip} 80 </dev/null && echo REACHED || echo isolated; "
        "wget -q -O - http://srv/ 2>/dev/null || echo no-name",
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


def test_published_port_reachable_from_host_loopback(daemon, rootfs, net):
    import socket

    with socket.socket() as s:  # a free port on the loopback for the host side
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve(daemon, rootfs, net, "pub", "published", "-p", f"127.0.0.1:{port}:80")
    assert ok(daemon.cli("port", "pub")).strip() == f"80/tcp -> 127.0.0.1:{port}"
    assert fetch_local(port) == b"published\n"
    listed = ok(daemon.cli("ps", "--filter", "name=pub")).splitlines()
    assert listed[0].split()[-2:] == ["PORTS", "NAMES"] and f"127.0.0.1:{port}->80/tcp" in listed[1]
    p = daemon.cli(
        "run", "-d", "--network", net, "-p", f"127.0.0.1:{port}:80", "--rootfs", str(rootfs), "true"
    )
    assert p.returncode != 0 and "already allocated" in p.stderr
    ok(daemon.cli("rm", "-f", "pub"))
    # Released with the container: a new listener (SO_REUSEADDR, as any server
    # sets it, past the closed connections' TIME_WAIT) can bind it.
    for _ in range(100):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
                break
            except OSError:
                import time

                time.sleep(0.02)
    else:
        raise AssertionError(f"port {port} still held after rm")


def test_publishing_needs_a_network(daemon, rootfs):
    args = ("--rm", "--network", "none", "-p", "8080:80", "--rootfs", str(rootfs), "true")
    p = daemon.cli("run", *args)
    assert p.returncode == 125 and "needs a network" in p.stderr


def test_publish_all_on_the_default_network(daemon, rootfs):
    # No --network: the default bridge; -P puts each exposed port on a free host port.
    args = ("--expose", "80", "--expose", "8000-8001/tcp", "-P", "--rootfs", str(rootfs))
    ok(daemon.cli("run", "-d", "--name", "all", *args, "sh", "-c", SERVE.format(body="all")))
    lines = ok(daemon.cli("port", "all")).splitlines()
    assert [ln.split(" -> ")[0] for ln in lines] == ["80/tcp", "8000/tcp", "8001/tcp"]
    port = int(lines[0].rsplit(":", 1)[1])
    assert fetch_local(port) == b"all\n"
    info = json.loads(ok(daemon.cli("inspect", "all")))[0]
    assert set(info["Config"]["ExposedPorts"]) == {"80/tcp", "8000/tcp", "8001/tcp"}
    assert info["HostConfig"]["NetworkMode"] == "bridge"
    p = daemon.cli("run", "--rm", "--expose", "80/sctp", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "--expose 80/sctp" in p.stderr


def test_published_udp_port(daemon, rootfs, net):
    import socket
    import subprocess
    import sys

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a free host UDP port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ("--network", net, "-p", f"127.0.0.1:{port}:5353/udp", "--rootfs", str(rootfs))
    ok(daemon.cli("run", "-d", "--name", "dns", *args, "sleep", "1000"))
    assert ok(daemon.cli("port", "dns")).strip() == f"5353/udp -> 127.0.0.1:{port}"
    pid = json.loads(ok(daemon.cli("inspect", "dns")))[0]["State"]["Pid"]
    server = subprocess.Popen(
        [sys.executable, "-c", UDP_ECHO, str(pid)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(10)  # a lost datagram fails the test instead of hanging it
            for word in (b"one", b"two"):  # one flow, both ways, twice
                c.sendto(word, ("127.0.0.1", port))
                assert c.recv(2048) == b"echo:" + word
    finally:
        server.kill()
        server.communicate()  # reaps it and closes its pipe


def test_network_connect_and_disconnect(daemon, rootfs, net):
    other = "n" + secrets.token_hex(4)
    ok(daemon.cli("network", "create", other))
    serve(daemon, rootfs, net, "srv", "joined")
    address = json.loads(ok(daemon.cli("inspect", "srv")))[0]["NetworkSettings"]["IPAddress"]
    cli = ("-d", "--name", "cli", "--network", other, "--rootfs", str(rootfs))
    cid = ok(daemon.cli("run", *cli, "sleep", "1000")).strip()
    get = ("exec", "cli", "sh", "-c", FETCH.format(host=address))
    # One try, cut short: unreachable is dropped, not refused (busybox's wget -T crashes).
    try_once = ("exec", "cli", "timeout", "2", "wget", "-q", "-O", "-", f"http://{address}/")

    def nics() -> list[str]:
        return ok(daemon.cli("exec", "cli", "ls", "/sys/class/net")).split()

    assert daemon.cli(*try_once).returncode != 0  # separate networks
    ok(daemon.cli("network", "connect", net, "cli"))
    assert nics() == ["eth0", "eth1", "lo"] and "cr1" + cid[:10] in links()
    assert ok(daemon.cli(*get)).strip() == "joined"
    assert ok(daemon.cli(*try_once)).strip() == "joined"  # the negative checks' tool works
    # By name too: the first network's DNS server answers for the joined one.
    by_name = ("exec", "cli", "sh", "-c", FETCH.format(host="srv"))
    assert ok(daemon.cli(*by_name)).strip() == "joined"
    settings = json.loads(ok(daemon.cli("inspect", "cli")))[0]["NetworkSettings"]
    assert set(settings["Networks"]) == {net, other}
    p = daemon.cli("network", "connect", net, "cli")
    assert p.returncode != 0 and "already connected" in p.stderr
    p = daemon.cli("network", "rm", net)
    assert p.returncode != 0 and "in use" in p.stderr
    ok(daemon.cli("network", "disconnect", net, "cli"))
    assert nics() == ["eth0", "lo"] and "cr1" + cid[:10] not in links()
    assert daemon.cli(*try_once).returncode != 0
    # A stopped container joins at its next start.
    ok(daemon.cli("stop", "-t", "0", "cli"))
    ok(daemon.cli("network", "connect", net, "cli"))
    ok(daemon.cli("start", "cli"))
    assert nics() == ["eth0", "eth1", "lo"]
    p = daemon.cli("network", "disconnect", other, "cli")
    assert p.returncode != 0 and "the network it was run on" in p.stderr


def test_connect_with_a_chosen_address_and_alias(daemon, rootfs, net):
    joined = "n" + secrets.token_hex(4)
    ok(daemon.cli("network", "create", "--subnet", "10.89.202.0/24", joined))
    serve(daemon, rootfs, net, "multi", "two networks")
    ok(daemon.cli("network", "connect", "--ip", "10.89.202.77", "--alias", "svc", joined, "multi"))
    networks = json.loads(ok(daemon.cli("inspect", "multi")))[0]["NetworkSettings"]["Networks"]
    assert networks[joined]["IPAddress"] == "10.89.202.77"
    # On the joined network its alias answers; on its first one it does not.
    out = fetch_from(daemon, rootfs, joined, FETCH.format(host="svc"))
    assert out.strip() == "two networks"
    p = daemon.cli("run", "--rm", "--network", net, "--rootfs", str(rootfs), "nslookup", "svc")
    assert "10.89.202.77" not in p.stdout
    ok(daemon.cli("network", "disconnect", joined, "multi"))
    p = daemon.cli("network", "connect", "--ip", "10.89.203.1", joined, "multi")
    assert p.returncode != 0 and "not in network" in p.stderr, p.stderr
    ok(daemon.cli("rm", "-f", "multi"))
    ok(daemon.cli("network", "rm", joined))


def test_daemon_start_removes_veths_no_container_owns(daemon, rootfs, net):
    from pyroute2 import IPRoute

    cid = ok(daemon.cli("run", "-d", "--network", net, "--rootfs", str(rootfs), "sleep", "1000"))
    info = json.loads(ok(daemon.cli("network", "inspect", net)))[0]
    bridge = info["Options"]["com.docker.network.bridge.name"]
    stray = "crv" + secrets.token_hex(5)  # as a crash between veth and start leaves one
    with IPRoute() as ipr:
        ipr.link("add", ifname=stray, kind="veth", peer=stray + "p")
        ipr.link(
            "set", index=ipr.link_lookup(ifname=stray)[0], master=ipr.link_lookup(ifname=bridge)[0]
        )
    try:
        daemon.stop()
        daemon.start()
        assert stray not in links() and stray + "p" not in links()
        assert "crv" + cid.strip()[:10] in links()  # the running container keeps its own
    finally:
        from supervisor.network.links import delete_link

        delete_link(stray)


FAKE_DNS = """
import socket, struct, sys
sys.path.insert(0, {repo!r})
from supervisor.network.dns import parse_query
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.77", 53))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(512)
    q = parse_query(data)
    if q is None:
        continue
    qid, flags, name, qtype, end = q
    found = name == "ext.test" and qtype == 1
    hdr = struct.pack(">HHHHHH", qid, 0x8180, 1, 1 if found else 0, 0, 0)
    rr = struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("192.0.2.7")
    s.sendto(hdr + data[12:end] + (rr if found else b""), peer)
"""


def test_other_names_go_to_the_dns_servers_given(daemon, rootfs, net):
    """The network's DNS server answers its containers' names and forwards the
    rest to --dns (here a fake upstream on the host's loopback)."""
    import subprocess
    import sys

    repo = str(Path(__file__).resolve().parents[2])
    upstream = subprocess.Popen(
        [sys.executable, "-c", FAKE_DNS.format(repo=repo)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert upstream.stdout is not None and upstream.stdout.readline() == "ready\n"
        serve(daemon, rootfs, net, "named", "x")
        flags = ["--dns", "127.0.0.77", "--dns-search", "corp.test", "--dns-option", "timeout:1"]
        out = fetch_from(
            daemon,
            rootfs,
            net,
            "cat /etc/resolv.conf; nslookup ext.test; nslookup named",
            *flags,
        )
        assert "search corp.test" in out and "options ndots:0 timeout:1" in out, out
        assert "192.0.2.7" in out, out  # forwarded
        named = json.loads(ok(daemon.cli("inspect", "named")))[0]["NetworkSettings"]["IPAddress"]
        assert named in out, out  # still answered by the network's own server
        p = daemon.cli(
            "run",
            "--rm",
            "--network",
            "none",
            "--dns",
            "127.0.0.77",
            "--rootfs",
            str(rootfs),
            "true",
        )
        assert p.returncode != 0 and "--dns" in p.stderr, p.stderr
        p = daemon.cli(
            "run", "--rm", "--network", net, "--dns", "dns.example", "--rootfs", str(rootfs), "true"
        )
        assert p.returncode != 0 and "not an IP address" in p.stderr, p.stderr
    finally:
        upstream.kill()
        upstream.wait()
        upstream.stdout.close()


def test_a_network_by_its_id(daemon, rootfs):
    """The ids `network ls` shows work where names do: run, connect, rm."""
    name = "n" + secrets.token_hex(4)
    ok(daemon.cli("network", "create", name))
    nid = json.loads(ok(daemon.cli("network", "inspect", name)))[0]["Id"]
    p = daemon.cli("run", "--rm", "--network", nid[:10], "--rootfs", str(rootfs), "true")
    assert p.returncode == 0, p.stderr
    ok(daemon.cli("run", "-d", "--name", "byid", "--rootfs", str(rootfs), "sleep", "60"))
    ok(daemon.cli("network", "connect", nid[:10], "byid"))
    networks = json.loads(ok(daemon.cli("inspect", "byid")))[0]["NetworkSettings"]["Networks"]
    assert name in networks  # kept by its name
    ok(daemon.cli("rm", "-f", "byid"))
    ok(daemon.cli("network", "rm", nid[:10]))
    assert name not in ok(daemon.cli("network", "ls", "--format", "{{.Name}}")).split()
