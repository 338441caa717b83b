"""The fleet's side of networking: each network's bridge and DNS server, a
container's address, /etc files, veth and published ports.

A mixin of Fleet (it reads the fleet's containers, network store and nursery),
kept apart so that fleet.py holds the containers' lifecycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from protocols import oci
from supervisor.network import links, ports
from supervisor.network.dns import serve as serve_dns
from supervisor.network.store import DEFAULT_NETWORK, NetworkStore

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Container


class FleetNetworks:
    containers: dict[str, Container]
    networks: NetworkStore
    _dns: dict[str, trio.CancelScope]
    _nursery: trio.Nursery | None

    async def start_network(self, name: str) -> None:
        """The bridge (made if missing) and the network's DNS server."""
        n = self.networks.get(name)
        links.ensure_bridge(n.bridge, n.gateway, n.prefix)
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
            await serve_dns(gateway, lambda q: self._resolve(name, q), task_status=task_status)

    def release_default_bridge(self) -> None:
        """At shutdown: the default bridge goes if no running container uses it
        (the next daemon makes it again); user networks' bridges stay."""
        n = self.networks.networks.get(DEFAULT_NETWORK)
        if n is not None and not any(
            c.running and c.config.network == DEFAULT_NETWORK for c in self.containers.values()
        ):
            links.delete_link(n.bridge)

    def stop_network(self, name: str) -> None:
        scope = self._dns.pop(name, None)
        if scope is not None:
            scope.cancel()
        n = self.networks.get(name)
        links.delete_link(n.bridge)

    def _resolve(self, network: str, query: str) -> str | None:
        n = self.networks.networks.get(network)
        if n is None:
            return None
        for cid, addr in n.allocations.items():
            c = self.containers.get(cid)
            if c is None or not c.running:
                continue
            names = {c.name.lower(), cid[:12], *(a.lower() for a in c.config.network_aliases)}
            if query in names:
                return addr
        return None

    def _network_files(self, c: Container) -> list[oci.Mount]:
        """/etc/hosts, /etc/hostname and /etc/resolv.conf for a container on a user
        network (its address allocated now), bound into it."""
        n = self.networks.get(c.config.network)
        addr = self.networks.allocate(n, c.id)
        hostname = c.config.hostname or c.id[:12]
        files = {
            "hosts": f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
            f"{addr}\t{hostname} {c.name}\n",
            "hostname": hostname + "\n",
            "resolv.conf": f"nameserver {n.gateway}\noptions ndots:0\n",
        }
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

    def _connect(self, c: Container, pid: int) -> None:
        n = self.networks.get(c.config.network)
        links.attach(pid, n.bridge, "crv" + c.id[:10], n.allocations[c.id], n.prefix, n.gateway)

    def _publish(self, c: Container) -> None:
        """Bind every published port now (a taken one fails the start), then proxy
        them in one task whose scope the container's exit cancels."""
        specs = [ports.parse(spec) for spec in c.config.ports]
        if c.config.publish_all:  # -P: the exposed ports -p left, on free host ports
            taken = {f"{cport}/{proto}" for _, _, cport, proto in specs}
            specs += [ports.parse(p) for p in c.config.expose if p not in taken]
        if not specs:
            return
        addr = self.networks.get(c.config.network).allocations[c.id]
        bound = []
        try:
            for host, hport, cport, proto in specs:
                sock = ports.bind(host, hport, proto)
                bound.append((sock, cport, proto))
                c.state.ports[f"{cport}/{proto}"] = f"{host}:{sock.getsockname()[1]}"
        except BaseException:
            for sock, _, _ in bound:
                sock.close()
            raise
        scope = trio.CancelScope()
        c.port_scope = scope

        async def serve_all() -> None:
            with scope:
                async with trio.open_nursery() as nursery:
                    for sock, cport, proto in bound:
                        serve = ports.proxy_udp if proto == "udp" else ports.proxy
                        nursery.start_soon(serve, sock, addr, cport)

        assert self._nursery is not None
        self._nursery.start_soon(serve_all)

    def network_users(self, name: str) -> list[str]:
        return [c.id for c in self.containers.values() if c.config.network == name]
