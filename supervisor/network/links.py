"""Bridges and veths through netlink (pyroute2).

Facts relied on:
- A netlink socket belongs to the network namespace its thread was in when it
  was created. The daemon's thread enters a container's namespace (setns),
  opens the socket, and returns at once; the socket keeps configuring the
  container's namespace. (pyroute2's NetNS would fork a helper per namespace.)
- Moving one end of a veth pair into the container's namespace and the
  namespace's end (when the container's last process exits) take the other
  end with them: a container's host-side veth needs no cleanup of its own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from collections.abc import Iterator

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from supervisor.errors import LinkError


@contextlib.contextmanager
def in_netns(path: str) -> Iterator[None]:
    """Run the block with this thread in the network namespace at `path`."""
    from supervisor import _native  # setns: the C core, loaded when first needed

    newnet = _native.NS_FLAGS["network"]
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _native.setns(target, newnet)
        try:
            yield
        finally:
            _native.setns(own, newnet)
    finally:
        os.close(target)
        os.close(own)


def ensure_bridge(name: str, gateway: str, prefix: int) -> None:
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=name):
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except NetlinkError as e:
                raise LinkError(f"creating bridge {name}: {e}") from None
        idx = ipr.link_lookup(ifname=name)[0]
        _fix_mac(ipr, idx, name)
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx)}
        if gateway not in have:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefix)
        ipr.link("set", index=idx, state="up")
    # Isolation first: the host routes between interfaces when ip_forward is
    # on, and would carry one network's packets to another. With forwarding off
    # on the bridge, what arrives on it is never routed elsewhere; nat.py turns
    # it on once Corral's nftables rules (masquerade, no crossing between
    # networks) are in place.
    with open(f"/proc/sys/net/ipv4/conf/{name}/forwarding", "w") as f:
        f.write("0")


def _fix_mac(ipr: IPRoute, idx: int, name: str) -> None:
    """Give the bridge a MAC address of its own. Left to the kernel, a bridge
    takes the lowest MAC among its ports and changes it as containers come and
    go; the containers' neighbour caches then hold the gateway's old address,
    whose frames the host drops, and DNS and every way out go dark for
    seconds (10 to 40 s, seen as a swap's failed lookups). An address set by
    hand stays (the kernel's NET_ADDR_SET), as Docker sets docker0's."""
    try:
        # loop-safe: a sysfs attribute, a few bytes from memory, once per bridge start
        with open(f"/sys/class/net/{name}/addr_assign_type") as f:
            if f.read().strip() == "3":  # NET_ADDR_SET: fixed already
                return
    except OSError:
        pass
    mac = bytearray(secrets.token_bytes(6))
    mac[0] = (mac[0] & 0xFE) | 0x02  # unicast, locally administered
    try:
        ipr.link("set", index=idx, address=":".join(f"{b:02x}" for b in mac))
    except NetlinkError as e:
        raise LinkError(f"setting bridge {name}'s address: {e}") from None


def delete_link(name: str) -> None:
    with IPRoute() as ipr:
        for idx in ipr.link_lookup(ifname=name):
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=idx)


def bridge_ports(bridge: str) -> list[str]:
    """The names of the links enslaved to `bridge` (none if it does not exist)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=bridge)
        if not found:
            return []
        return [
            link.get_attr("IFLA_IFNAME")
            for link in ipr.get_links()
            if link.get_attr("IFLA_MASTER") == found[0]
        ]


def mac_of(address: str) -> str:
    """The MAC of the interface that has IPv4 `address`: 02:42 and the address's
    four bytes, as Docker makes them. Derived, not random, so that an address
    freed by one container and given to the next keeps its MAC: the neighbours'
    ARP caches stay right, and a replaced container is reachable at once (a
    random MAC leaves peers sending to the old one until their entry expires,
    tens of seconds)."""
    a, b, c, d = (int(x) for x in address.split("."))
    return f"02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


def attach(
    pid: int,
    bridge: str,
    host_if: str,
    address: str,
    prefix: int,
    gateway: str,
    ifname: str = "eth0",
) -> None:
    """A veth from `bridge` into the network namespace of `pid`, as `ifname` with
    `address`/`prefix`; eth0 gets the default route, through `gateway`.

    The pair is made with its peer already in the container's namespace and its
    host end already on the bridge (one netlink request): moving a device
    between namespaces afterwards waits for an RCU grace period, and made
    attaching take 26 ms here instead of 5."""
    netns = f"/proc/{pid}/ns/net"
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as ipr:
            for idx in ipr.link_lookup(ifname=host_if):
                ipr.link("del", index=idx)  # a leftover of a crashed start
            ipr.link(
                "add",
                ifname=host_if,
                kind="veth",
                master=ipr.link_lookup(ifname=bridge)[0],
                peer={"ifname": ifname, "net_ns_fd": fd, "address": mac_of(address)},
            )
            ipr.link("set", index=ipr.link_lookup(ifname=host_if)[0], state="up")
    except (NetlinkError, IndexError) as e:
        delete_link(host_if)
        raise LinkError(f"connecting to {bridge}: {e}") from None
    finally:
        os.close(fd)
    try:
        with in_netns(netns):
            inner = IPRoute()
        with inner:
            idx = inner.link_lookup(ifname=ifname)[0]
            inner.addr("add", index=idx, address=address, prefixlen=prefix)
            inner.link("set", index=idx, state="up")
            if ifname == "eth0":
                inner.route("add", dst="0.0.0.0/0", gateway=gateway)
    except NetlinkError as e:
        delete_link(host_if)
        raise LinkError(f"configuring {ifname} of pid {pid}: {e}") from None


def host_routes() -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes, to refuse a subnet that overlaps one."""
    out = []
    with IPRoute() as ipr:
        for r in ipr.get_routes(family=2):
            dst = r.get_attr("RTA_DST")
            if dst:
                out.append(ipaddress.ip_network(f"{dst}/{r['dst_len']}", strict=False))
    return out
