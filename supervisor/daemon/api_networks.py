"""The daemon's network requests: create, list, inspect, remove, connect, disconnect."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from protocols import api
from supervisor.daemon import filters
from supervisor.errors import Conflict, NetworkError, SpecError
from supervisor.network import links, network_id
from supervisor.network.store import Network


def info(n: Network, f: Fleet | None = None) -> api.NetworkInfo:
    names = {}
    if f is not None:
        names = {cid: f.units[cid].name for cid in n.allocations if cid in f.units}
    return api.NetworkInfo(
        name=n.name,
        subnet=n.subnet,
        gateway=n.gateway,
        bridge=n.bridge,
        containers=dict(n.allocations),
        names=names,
        created_nano=n.created_nano,
        labels=dict(n.labels),
        id=network_id(n.name, n.created_nano),
    )


# Docker lists these two beside the bridge: --network host and none.
BUILTIN = (
    api.NetworkInfo(
        name="host", subnet="", gateway="", bridge="", driver="host", id=network_id("host", 0)
    ),
    api.NetworkInfo(
        name="none", subnet="", gateway="", bridge="", driver="null", id=network_id("none", 0)
    ),
)
_BUILTIN_NAMES = {n.name: n for n in BUILTIN}


async def networks_request(f: Fleet, req: msgspec.Struct) -> msgspec.Struct:
    match req:
        case api.NetworkCreate(name=name, subnet=subnet, gateway=gateway, labels=labels):
            try:
                n = f.networks.create(
                    name, subnet or None, gateway or None, links.host_routes(), labels=labels
                )
            except NetworkError as e:
                raise SpecError("network", str(e)) from None
            await f.networking.start_network(name)
            f.lifecycle.emit_object("network", "create", n.name, n.name, {"subnet": n.subnet})
            return api.NetworkResult(network=info(n))
        case api.NetworkList(filters=wanted):
            filters.check_keys(wanted, filters.NETWORK_KEYS)
            every = [info(n) for n in f.networks.networks.values()] + list(BUILTIN)
            return api.NetworkListResult(
                networks=[
                    n
                    for n in every
                    if filters.network(
                        n,
                        n.id,
                        n.name in f.networks.networks and bool(f.network_users(n.name)),
                        wanted,
                    )
                ]
            )
        case api.NetworkInspect(name=name) if name in _BUILTIN_NAMES:
            return api.NetworkResult(network=_BUILTIN_NAMES[name])
        case api.NetworkInspect(name=name):
            n = f.networks.get(f.networks.resolve(name))  # NoSuchNetwork
            return api.NetworkResult(network=info(n, f))
        case api.NetworkPrune():
            removed = []
            for n in list(f.networks.networks.values()):
                if n.name == "bridge" or f.network_users(n.name):
                    continue
                f.networking.stop_network(n.name)
                f.networks.remove(n.name)
                f.lifecycle.emit_object("network", "destroy", n.name, n.name)
                removed.append(n.name)
            return api.PruneResult(removed=removed)
        case api.NetworkRemove(name=name) if name in _BUILTIN_NAMES:
            raise Conflict(f"{name} is a pre-defined network and cannot be removed")
        case api.NetworkRemove(name=name):
            name = f.networks.resolve(name)
            try:
                f.networks.get(name)
            except NetworkError as e:
                raise SpecError("network", str(e)) from None
            if name == "bridge":
                raise Conflict("the default network cannot be removed")
            users = f.network_users(name)
            if users:
                raise Conflict(
                    f"network {name} is in use by container(s) {', '.join(u[:12] for u in users)}"
                )
            f.networking.stop_network(name)
            f.networks.remove(name)
            f.lifecycle.emit_object("network", "destroy", name, name)
            return api.Ok()
        case (
            api.NetworkConnect(name=name, container=ref)
            | api.NetworkDisconnect(name=name, container=ref)
        ):
            c = f.get(ref)
            name = f.networks.resolve(name)
            connect = isinstance(req, api.NetworkConnect)
            try:
                if connect:
                    f.networking.connect(c, name, req.ipv4_address, list(req.aliases))
                else:
                    f.networking.disconnect(c, name)
            except (NetworkError, links.LinkError) as e:
                raise SpecError("network", str(e)) from None
            action = "connect" if connect else "disconnect"
            f.lifecycle.emit_object("network", action, name, name, {"container": c.id})
            return api.Ok()
    raise SpecError("request", f"unexpected {type(req).__name__}")


if TYPE_CHECKING:
    from supervisor.daemon.fleet import Fleet
    from supervisor.daemon.server import Connection


async def request(conn: Connection, req: msgspec.Struct, inbox) -> None:
    await conn.send(await networks_request(conn.fleet, req))


ROUTES = {
    t: request
    for t in (
        api.NetworkCreate,
        api.NetworkList,
        api.NetworkInspect,
        api.NetworkRemove,
        api.NetworkConnect,
        api.NetworkDisconnect,
        api.NetworkPrune,
    )
}
