"""/networks and /volumes in Docker's shapes, over Corral's handlers."""

from __future__ import annotations

from protocols import api
from supervisor.daemon.inspect import rfc3339
from supervisor.dockerapi.context import Api, filters_of
from supervisor.dockerapi.http import Exchange, HttpError

# -- networks --------------------------------------------------------------------------------


def network(a: Api, n: api.NetworkInfo, detail: bool) -> dict:
    prefix = n.subnet.rpartition("/")[2]
    containers = {}
    if detail:
        for cid, address in n.containers.items():
            u = a.fleet.units.get(cid)
            containers[cid] = {
                "Name": n.names.get(cid, ""),
                "EndpointID": cid,
                "MacAddress": _mac(address),
                "IPv4Address": f"{address}/{prefix}" if address else "",
                "IPv6Address": "",
            }
            if u is None:
                containers.pop(cid)
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": rfc3339(n.created_nano),
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": None if n.driver != "bridge" else {},
            "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}] if n.subnet else [],
        },
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": n.bridge} if n.bridge else {},
        "Labels": n.labels,
    }


def _mac(address: str) -> str:
    """Corral's MACs: 02:42 and the IPv4 address (network/links.py)."""
    try:
        parts = [int(x) for x in address.split(".")]
    except ValueError:
        return ""
    return "02:42:" + ":".join(f"{p:02x}" for p in parts) if len(parts) == 4 else ""


async def network_list(a: Api, ex: Exchange) -> None:
    res = await a.call(api.NetworkList(filters=filters_of(ex.json_arg("filters"))))
    await ex.send_json(200, [network(a, n, False) for n in res.networks])


async def network_inspect(a: Api, ex: Exchange, id: str) -> None:
    res = await a.call(api.NetworkInspect(name=_network_name(a, id)))
    await ex.send_json(200, network(a, res.network, True))


def _network_name(a: Api, ref: str) -> str:
    """A network by name, id or id prefix (Docker's rules)."""
    from supervisor.daemon.api_networks import BUILTIN, info

    every = [info(n) for n in a.fleet.networks.networks.values()] + list(BUILTIN)
    for n in every:
        if ref in (n.name, n.id):
            return n.name
    found = [n for n in every if ref and n.id.startswith(ref)]
    return found[0].name if len(found) == 1 else ref


async def network_create(a: Api, ex: Exchange) -> None:
    b = await ex.json(required=True)
    name = b.get("Name") or ""
    if not name:
        raise HttpError(400, "a network needs a name")
    driver = b.get("Driver") or "bridge"
    if driver != "bridge":
        raise HttpError(400, f"network driver {driver!r} is not supported by Corral (bridge only)")
    if b.get("EnableIPv6") or b.get("Internal"):
        raise HttpError(400, "IPv6 and internal networks are not supported by Corral")
    configs = ((b.get("IPAM") or {}).get("Config")) or []
    if len(configs) > 1:
        raise HttpError(400, "one IPAM config (subnet) per network")
    cfg = configs[0] if configs else {}
    if name in a.fleet.networks.networks:
        raise HttpError(409, f"network with name {name} already exists")
    res = await a.call(
        api.NetworkCreate(
            name=name,
            subnet=cfg.get("Subnet") or "",
            gateway=cfg.get("Gateway") or "",
            labels=dict(b.get("Labels") or {}),
        )
    )
    await ex.send_json(201, {"Id": res.network.id, "Warning": ""})


async def network_remove(a: Api, ex: Exchange, id: str) -> None:
    await a.call(api.NetworkRemove(name=_network_name(a, id)))
    await ex.send(204)


async def network_connect(a: Api, ex: Exchange, id: str) -> None:
    b = await ex.json(required=True)
    ep = b.get("EndpointConfig") or {}
    await a.call(
        api.NetworkConnect(
            name=_network_name(a, id),
            container=b.get("Container") or "",
            aliases=list(ep.get("Aliases") or []),
            ipv4_address=((ep.get("IPAMConfig") or {}).get("IPv4Address")) or "",
        )
    )
    await ex.send(200, b"", "text/plain")


async def network_disconnect(a: Api, ex: Exchange, id: str) -> None:
    b = await ex.json(required=True)
    await a.call(
        api.NetworkDisconnect(name=_network_name(a, id), container=b.get("Container") or "")
    )
    await ex.send(200, b"", "text/plain")


async def network_prune(a: Api, ex: Exchange) -> None:
    res = await a.call(api.NetworkPrune())
    await ex.send_json(200, {"NetworksDeleted": res.removed or None})


# -- volumes ---------------------------------------------------------------------------------


def volume(v: api.Volume) -> dict:
    return {
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": v.mountpoint,
        "CreatedAt": rfc3339(v.created_nano).split(".")[0] + "Z",
        "Labels": v.labels or None,
        "Scope": "local",
        "Options": None,
    }


async def volume_list(a: Api, ex: Exchange) -> None:
    res = await a.call(api.VolumeList(filters=filters_of(ex.json_arg("filters"))))
    await ex.send_json(200, {"Volumes": [volume(v) for v in res.volumes], "Warnings": None})


async def volume_create(a: Api, ex: Exchange) -> None:
    b = await ex.json()
    if (b.get("Driver") or "local") != "local":
        raise HttpError(400, f"volume driver {b['Driver']!r} is not supported by Corral (local)")
    if b.get("DriverOpts"):
        raise HttpError(400, "volume driver options are not supported by Corral")
    res = await a.call(
        api.VolumeCreate(name=b.get("Name") or "", labels=dict(b.get("Labels") or {}))
    )
    await ex.send_json(201, volume(res.volume))


async def volume_inspect(a: Api, ex: Exchange, name: str) -> None:
    res = await a.call(api.VolumeInspect(name=name))
    await ex.send_json(200, volume(res.volume))


async def volume_remove(a: Api, ex: Exchange, name: str) -> None:
    await a.call(api.VolumeRemove(name=name, force=ex.flag("force")))
    await ex.send(204)


async def volume_prune(a: Api, ex: Exchange) -> None:
    res = await a.call(api.VolumePrune(filters=filters_of(ex.json_arg("filters"))))
    await ex.send_json(
        200, {"VolumesDeleted": res.removed or None, "SpaceReclaimed": res.reclaimed_bytes}
    )
