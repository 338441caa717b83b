"""Networks and their address allocations: ROOT/networks/NAME.json, written
atomically and fsynced, so allocations survive a daemon restart; the daemon
releases, at start, those of containers no longer running."""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path

import msgspec

from supervisor.errors import NetworkError, NoSuchNetwork
from supervisor.network import network_id
from supervisor.runtime.state import atomic_write

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
POOL = ipaddress.ip_network("10.89.0.0/16")  # default subnets are /24s from here
# The default network's /16: 10.88.0.0 first, then the next free one up to 10.95
# (10.89, the user networks' pool, is passed as taken).
DEFAULT_POOL = ipaddress.ip_network("10.88.0.0/13")
DEFAULT_NETWORK = "bridge"


class Network(msgspec.Struct, kw_only=True):
    name: str
    subnet: str
    gateway: str
    bridge: str
    created_nano: int
    labels: dict[str, str] = {}
    allocations: dict[str, str] = {}  # container id -> address

    @property
    def prefix(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen


class NetworkStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "networks"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        dec = msgspec.json.Decoder(Network)
        self.networks: dict[str, Network] = {}
        for p in sorted(self.dir.glob("*.json")):
            try:
                n = dec.decode(p.read_bytes())
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            self.networks[n.name] = n

    def save(self, n: Network) -> None:
        atomic_write(self.dir / f"{n.name}.json", msgspec.json.encode(n), durable=True)

    def resolve(self, ref: str) -> str:
        """The network's name for `ref`: a name, or a unique prefix of an id
        (`network ls` shows ids); unknown refs come back as they are, so that
        get() names them in its error."""
        if ref in self.networks or len(ref) < 3:
            return ref
        hits = [
            n.name
            for n in self.networks.values()
            if network_id(n.name, n.created_nano).startswith(ref)
        ]
        return hits[0] if len(hits) == 1 else ref

    def get(self, name: str) -> Network:
        try:
            return self.networks[name]
        except KeyError:
            raise NoSuchNetwork(f"network {name} not found") from None

    def create(
        self,
        name: str,
        subnet: str | None,
        gateway: str | None,
        taken: list[ipaddress.IPv4Network],
        *,
        bridge: str | None = None,
        pool: ipaddress.IPv4Network = POOL,
        prefix: int = 24,
        labels: dict[str, str] | None = None,
    ) -> Network:
        reserved = ("none", "host", "default") + (() if bridge else ("bridge",))
        if not _NAME.match(name) or name in reserved:
            raise NetworkError(f"invalid network name {name!r}")
        if name in self.networks:
            raise NetworkError(f"network with name {name} already exists")
        used = [ipaddress.ip_network(n.subnet) for n in self.networks.values()] + taken
        if subnet:
            try:
                net = ipaddress.ip_network(subnet)
            except ValueError as e:
                raise NetworkError(f"invalid subnet {subnet!r}: {e}") from None
            for u in used:
                if net.overlaps(u):
                    raise NetworkError(f"subnet {net} overlaps {u}, already in use")
        else:
            net = next(
                (
                    s
                    for s in pool.subnets(new_prefix=prefix)
                    if not any(s.overlaps(u) for u in used)
                ),
                None,
            )
            if net is None:
                raise NetworkError("no free subnet left in the default pool")
        gw = ipaddress.ip_address(gateway) if gateway else next(net.hosts())
        if gw not in net:
            raise NetworkError(f"gateway {gw} is not in {net}")
        n = Network(
            name=name,
            subnet=str(net),
            gateway=str(gw),
            bridge=bridge or "crl-" + name[:11],
            created_nano=time.time_ns(),
            labels=dict(labels or {}),
        )
        self.save(n)
        self.networks[name] = n
        return n

    def remove(self, name: str) -> None:
        (self.dir / f"{name}.json").unlink(missing_ok=True)
        self.networks.pop(name, None)

    def allocate(self, n: Network, container: str, want: str = "") -> str:
        """An address for `container`: `want` (--ip) if it is free, else the
        first free one."""
        if container in n.allocations:
            return n.allocations[container]
        net = ipaddress.ip_network(n.subnet)
        taken = {n.gateway, *n.allocations.values()}
        if want:
            check_address(n, want)
            if want in taken:
                raise NetworkError(f"address {want} is already in use on network {n.name}")
            n.allocations[container] = want
            self.save(n)
            return want
        for host in net.hosts():
            if str(host) not in taken:
                n.allocations[container] = str(host)
                self.save(n)
                return str(host)
        raise NetworkError(f"network {n.name} has no free address left")

    def release(self, n: Network, container: str) -> None:
        if n.allocations.pop(container, None) is not None:
            self.save(n)


def check_address(n: Network, address: str) -> None:
    """`address` can be a container's on `n`: in its subnet, not its network,
    broadcast or gateway address. NetworkError names what is wrong."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise NetworkError(f"{address!r} is not an IPv4 address") from None
    net = ipaddress.ip_network(n.subnet)
    if ip not in net:
        raise NetworkError(f"{address} is not in network {n.name}'s subnet {n.subnet}")
    if ip in (net.network_address, net.broadcast_address) or address == n.gateway:
        raise NetworkError(f"{address} is network {n.name}'s own (network, broadcast or gateway)")
