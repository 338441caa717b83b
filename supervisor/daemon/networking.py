"""The daemon's side of networking: each network's bridge and DNS server, a
container's address, /etc files, veths and published ports.

It reads the fleet's containers through `units()` (id -> Unit) and serves the
DNS servers in a nursery of its own; a run's port proxies are served by the
container's own unit (unit.py), from the sockets bind_ports() bound.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog
import trio

from protocols import oci
from supervisor.errors import Conflict, SpecError
from supervisor.network import links, ports
from supervisor.network import nat as nat_mod
from supervisor.network.dns import host_servers
from supervisor.network.dns import serve as serve_dns
from supervisor.network.store import DEFAULT_NETWORK, NetworkError, NetworkStore, check_address

log = structlog.get_logger("corral.network")

if TYPE_CHECKING:
    from supervisor.daemon.lifecycle import Lifecycle
    from supervisor.daemon.unit import Unit as Container
    from supervisor.network.nat import Nat


# The files bound over a networked container's /etc. Their bind targets are
# empty files in its upper directory, no change of its own: diff and commit pass
# over them (Docker keeps them in an "init" layer).
NETWORK_FILES = ("hosts", "hostname", "resolv.conf")
PLACEHOLDERS = frozenset(f"etc/{name}" for name in NETWORK_FILES)

MAX_SLOTS = 10  # eth0..eth9: a host veth name, "crN" + 10 of the id, stays under 16


def host_if(cid: str, slot: int) -> str:
    """The host end of a container's veth on its slot-th network."""
    return ("crv" if slot == 0 else f"cr{slot}") + cid[:10]


class Networking:
    def __init__(
        self,
        networks: NetworkStore,
        units: Callable[[], dict[str, Container]],
        lifecycle: Lifecycle,
        nat: Nat | None = None,
    ) -> None:
        self.networks = networks
        self._units = units
        self.lifecycle = lifecycle
        self._dns: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self.nat = nat
        self._up: set[str] = set()  # networks whose bridge this daemon brought up

    @property
    def containers(self) -> dict[str, Container]:
        return self._units()

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The networks' DNS servers live in this task's nursery."""
        async with trio.open_nursery() as self._nursery:
            task_status.started()
            await trio.sleep_forever()

    async def start_network(self, name: str) -> None:
        """The bridge (made if missing; host veths on it that no running container
        of ours owns removed: a crash can leave one) and the network's DNS server."""
        n = self.networks.get(name)
        links.ensure_bridge(n.bridge, n.gateway, n.prefix)
        self._up.add(name)
        self._outbound(n.bridge)
        owned = {
            host_if(c.id, 0 if c.config.network == name else c.state.networks[name])
            for c in self.containers.values()
            if c.running and (c.config.network == name or name in c.state.networks)
        }
        for port in links.bridge_ports(n.bridge):
            if port not in owned:
                links.delete_link(port)
                log.warning("network.leftover_removed", network=name, link=port)
        scope = trio.CancelScope()
        self._dns[name] = scope
        assert self._nursery is not None
        await self._nursery.start(self._serve_dns, n.name, n.gateway, scope)

    async def _serve_dns(
        self,
        name: str,
        gateway: str,
        scope: trio.CancelScope,
        *,
        task_status=trio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope:
            await serve_dns(
                gateway,
                lambda q, asker: self._resolve(name, q, asker),
                lambda asker: self._upstreams(name, asker),
                task_status=task_status,
            )

    def _outbound(self, bridge: str) -> None:
        """The bridge's way out: forwarding and masquerade where nftables is
        there (nat.py), else no routing at all (isolated, and no outbound)."""
        on = self.nat is not None and self.nat.available
        try:
            if on:
                self.sync_nat()
            nat_mod.set_forwarding(bridge, on)
        except (NetworkError, OSError) as e:
            log.warning("network.outbound_unavailable", bridge=bridge, error=str(e))
            nat_mod.set_forwarding(bridge, False)

    def sync_nat(self) -> None:
        """Corral's nftables table for the bridges that are up now."""
        if self.nat is None or not self.nat.available:
            return
        bridges = [
            nat_mod.Bridge(n.bridge, n.subnet)
            for name, n in self.networks.networks.items()
            if name in self._up
        ]
        self.nat.sync(bridges)

    def release_default_bridge(self) -> None:
        """At shutdown: the default bridge goes if no running container uses it
        (the next daemon makes it again); user networks' bridges stay."""
        n = self.networks.networks.get(DEFAULT_NETWORK)
        if n is not None and not any(
            c.running and c.config.network == DEFAULT_NETWORK for c in self.containers.values()
        ):
            links.delete_link(n.bridge)
            self._up.discard(DEFAULT_NETWORK)
            try:
                self.sync_nat()
            except NetworkError as e:
                log.warning("network.nat_sync_failed", error=str(e))

    def stop_network(self, name: str) -> None:
        scope = self._dns.pop(name, None)
        if scope is not None:
            scope.cancel()
        n = self.networks.get(name)
        links.delete_link(n.bridge)
        self._up.discard(name)
        try:
            self.sync_nat()
        except NetworkError as e:
            log.warning("network.nat_sync_failed", error=str(e))

    def _asker(self, network: str, asker: str) -> Container | None:
        n = self.networks.networks.get(network)
        if n is None:
            return None
        return next(
            (self.containers.get(cid) for cid, a in n.allocations.items() if a == asker), None
        )

    def _upstreams(self, network: str, asker: str) -> list[str]:
        """Where a name of no container goes: the asker's --dns, else the host's."""
        who = self._asker(network, asker)
        if who is not None and who.config.dns:
            return list(who.config.dns)
        return host_servers()

    def _resolve(self, network: str, query: str, asker: str) -> str | None:
        """A running container's address by name, alias or short id: on this
        network first, then on the other networks of the container asking (its
        resolv.conf names only its first network's server)."""
        n = self.networks.networks.get(network)
        if n is None:
            return None
        searched = [n]
        who = self._asker(network, asker)
        if who is not None:
            for name in (who.config.network, *who.state.networks):
                other = self.networks.networks.get(name)
                if other is not None and other not in searched:
                    searched.append(other)
        # A resolver tries the asker's --dns-search domains first: web.corp.test is web.
        candidates = [query]
        if who is not None:
            candidates += [
                query[: -len(d) - 1]
                for d in who.config.dns_search
                if query.endswith("." + d.lower().strip("."))
            ]
        for net in searched:
            for cid, addr in net.allocations.items():
                c = self.containers.get(cid)
                if c is None or not c.running or c.draining:
                    continue
                aliases = [*c.config.network_aliases, *c.state.network_aliases.get(net.name, [])]
                names = {c.name.lower(), cid[:12], *(a.lower() for a in aliases)}
                if any(q in names for q in candidates):
                    return addr
        return None

    def network_files(self, c: Container) -> list[oci.Mount]:
        """/etc/hosts, /etc/hostname and /etc/resolv.conf for a container on a user
        network (its address allocated now), bound into it."""
        n = self.networks.get(c.config.network)
        try:
            addr = self.networks.allocate(n, c.id, c.config.ipv4_address)
        except NetworkError as e:
            raise SpecError("--ip", str(e)) from None
        hostname = c.config.hostname or c.id[:12]
        texts = (
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
            f"{addr}\t{hostname} {c.name}\n"
            + "".join(f"{ip}\t{name}\n" for name, ip in _extra_hosts(c.config.extra_hosts)),
            hostname + "\n",
            resolv_conf(n.gateway, c.config.dns_search, c.config.dns_options),
        )
        files = dict(zip(NETWORK_FILES, texts, strict=True))
        out = []
        for name, text in files.items():
            path = c.path / name
            path.write_text(text)
            out.append(
                oci.Mount(
                    destination=f"/etc/{name}",
                    type="bind",
                    source=str(path),
                    options=["rbind", "rprivate", "rw"],
                )
            )
        return out

    def wire(self, c: Container, pid: int) -> None:
        """eth0 on its network, then eth1... on those `network connect` added."""
        n = self.networks.get(c.config.network)
        links.attach(pid, n.bridge, host_if(c.id, 0), n.allocations[c.id], n.prefix, n.gateway)
        for name, slot in c.state.networks.items():
            self._attach_extra(c, pid, name, slot)

    def _attach_extra(self, c: Container, pid: int, name: str, slot: int) -> None:
        n = self.networks.get(name)
        addr = self.networks.allocate(n, c.id, c.state.network_ips.get(name, ""))
        try:
            links.attach(
                pid, n.bridge, host_if(c.id, slot), addr, n.prefix, n.gateway, f"eth{slot}"
            )
        except links.LinkError:
            self.networks.release(n, c.id)
            raise

    def release_addresses(self, c: Container) -> None:
        """Its addresses on every network (its veths went with its namespace)."""
        for n in self.networks.networks.values():
            if c.id in n.allocations:
                self.networks.release(n, c.id)

    def connect(
        self, c: Container, name: str, address: str = "", aliases: list[str] | None = None
    ) -> None:
        """`network connect [--ip A] [--alias N]`: now if it runs, else at its next
        start."""
        n = self.networks.get(name)  # NetworkError if there is none
        if address:
            if name == DEFAULT_NETWORK:
                raise Conflict("a chosen address needs a user network (network create)")
            check_address(n, address)
        if c.config.network not in self.networks.networks:
            raise Conflict(
                f"container {c.name} is on --network {c.config.network}: "
                "only a container on a network can join another"
            )
        if name == c.config.network or name in c.state.networks:
            raise Conflict(f"container {c.name} is already connected to network {name}")
        free = [s for s in range(1, MAX_SLOTS) if s not in c.state.networks.values()]
        if not free:
            raise Conflict(f"container {c.name} is on {MAX_SLOTS} networks already")
        c.state.network_ips = (
            {**c.state.network_ips, name: address}
            if address
            else {k: v for k, v in c.state.network_ips.items() if k != name}
        )
        c.state.network_aliases = {
            **{k: v for k, v in c.state.network_aliases.items() if k != name},
            **({name: list(aliases)} if aliases else {}),
        }
        if c.running:
            self._attach_extra(c, c.state.pid, name, free[0])
        c.state.networks = {**c.state.networks, name: free[0]}
        self.lifecycle.save(c)

    def disconnect(self, c: Container, name: str) -> None:
        self.networks.get(name)
        if name == c.config.network:
            raise Conflict(f"container {c.name} cannot leave {name}, the network it was run on")
        slot = c.state.networks.get(name)
        if slot is None:
            raise Conflict(f"container {c.name} is not connected to network {name}")
        if c.running:
            links.delete_link(host_if(c.id, slot))  # its peer, ethN, goes with it
            n = self.networks.get(name)
            if c.id in n.allocations:
                self.networks.release(n, c.id)
        c.state.networks = {k: v for k, v in c.state.networks.items() if k != name}
        c.state.network_ips = {k: v for k, v in c.state.network_ips.items() if k != name}
        c.state.network_aliases = {k: v for k, v in c.state.network_aliases.items() if k != name}
        self.lifecycle.save(c)

    def bind_ports(self, c: Container) -> list[Callable[[], Awaitable[None]]]:
        """Bind every published port now (a taken one fails the start); returns
        the proxies to serve for as long as the run lasts (the unit serves them
        in the run's own nursery)."""
        specs = [ports.parse(spec) for spec in c.config.ports]
        if c.config.publish_all:  # -P: the exposed ports -p left, on free host ports
            taken = {f"{cport}/{proto}" for _, _, cport, proto in specs}
            specs += [ports.parse(p) for p in c.config.expose if p not in taken]
        if not specs:
            return []
        addr = self.networks.get(c.config.network).allocations[c.id]
        bound: list[tuple[socket.socket, int, str]] = []
        try:
            for host, hport, cport, proto in specs:
                sock = ports.bind(host, hport, proto)
                bound.append((sock, cport, proto))
                c.state.ports[f"{cport}/{proto}"] = f"{host}:{sock.getsockname()[1]}"
        except BaseException:
            for sock, _, _ in bound:
                sock.close()
            c.state.ports = {}
            raise

        def proxy(sock: socket.socket, cport: int, proto: str):
            serve = ports.proxy_udp if proto == "udp" else ports.proxy
            return lambda: serve(sock, addr, cport)

        return [proxy(sock, cport, proto) for sock, cport, proto in bound]

    def network_users(self, name: str) -> list[str]:
        return [
            c.id
            for c in self.containers.values()
            if c.config.network == name or name in c.state.networks
        ]


def _extra_hosts(entries: list[str]) -> list[tuple[str, str]]:
    """--add-host NAME:IP (IPv6 addresses have colons: the name is before the
    first one)."""
    out = []
    for e in entries:
        name, sep, ip = e.partition(":")
        if not sep or not name or not ip:
            raise SpecError("--add-host", f"{e!r} is not NAME:IP")
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise SpecError("--add-host", f"{e!r}: {ip!r} is not an IP address") from None
        out.append((name, ip))
    return out


def resolv_conf(server: str, search: list[str], options: list[str]) -> str:
    """The network's DNS server (which forwards what it does not know), Docker's
    ndots:0, and --dns-search / --dns-option."""
    lines = [f"nameserver {server}"]
    if search:
        lines.append("search " + " ".join(search))
    lines.append("options " + " ".join(["ndots:0", *(o for o in options if o != "ndots:0")]))
    return "\n".join(lines) + "\n"
