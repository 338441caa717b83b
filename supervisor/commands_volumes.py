"""`corral volume ...` and `corral network ...`: volumes and networks."""

from __future__ import annotations

import sys
import time

from protocols import api_lite as api
from protocols import lite
from supervisor.client import Client, DaemonError, confirm
from supervisor.commands import _each
from supervisor.commands_flags import parse_filters


def cmd_volume(c: Client, args) -> int:
    if args.vcmd == "create":
        from supervisor.commands_flags import labels_from

        labels = labels_from(args.label)
        print(c.call(api.VolumeCreate(name=args.name, labels=labels)).volume.name)
        return 0
    if args.vcmd == "ls":
        vols = c.call(api.VolumeList(filters=parse_filters(args.filter))).volumes
        if args.quiet:
            for v in vols:
                print(v.name)
        elif args.format == "json":
            for v in vols:
                print(lite.to_json(v))
        else:
            print(f"{'DRIVER':<10}VOLUME NAME")
            for v in vols:
                print(f"{v.driver:<10}{v.name}")
        return 0
    if args.vcmd == "inspect":
        out, rc = [], 0
        for name in args.names:
            try:
                v = c.call(api.VolumeInspect(name=name)).volume
            except DaemonError as e:
                print(f"corral: Error: {e}", file=sys.stderr)
                rc = 1
                continue
            out.append(docker_volume(v))
        _print_inspect(out, args.format)
        return rc
    if args.vcmd == "rm":
        return _each(c, args.names, lambda n: api.VolumeRemove(name=n, force=args.force))
    if args.vcmd == "prune":
        which = "all local volumes" if args.all else "anonymous local volumes"
        if not confirm(args, f"This will remove {which} not used by at least one container."):
            return 0
        filters = {"all": ["true"]} if args.all else {}
        res = c.call(api.VolumePrune(filters=filters))
        for name in res.removed:
            print(name)
        from supervisor.commands_images import _human_size

        print(f"Total reclaimed space: {_human_size(res.reclaimed_bytes)}")
        return 0
    return 2


def cmd_network(c: Client, args) -> int:
    if args.ncmd == "create":
        from supervisor.commands_flags import labels_from
        from supervisor.network import network_id

        n = c.call(
            api.NetworkCreate(
                name=args.name,
                subnet=args.subnet,
                gateway=args.gateway,
                labels=labels_from(args.label),
            )
        ).network
        print(network_id(n.name, n.created_nano))  # Docker prints the id
        return 0
    if args.ncmd == "ls":
        from supervisor.commands_flags import parse_filters
        from supervisor.network import network_id

        nets = c.call(api.NetworkList(filters=parse_filters(args.filter))).networks

        ids = {n.name: network_id(n.name, n.created_nano) for n in nets}
        if args.quiet:  # Docker's -q: ids, which rm, inspect and connect take too
            for n in nets:
                print(ids[n.name] if args.no_trunc else ids[n.name][:12])
            return 0
        rows = [
            {
                "ID": ids[n.name] if args.no_trunc else ids[n.name][:12],
                "Name": n.name,
                "Driver": n.driver,
                "Scope": "local",
                "Subnet": n.subnet,
                "Gateway": n.gateway,
            }
            for n in nets
        ]
        if args.format:
            from supervisor.commands import _templated

            headers = {".ID": "NETWORK ID", ".Name": "NAME", ".Driver": "DRIVER", ".Scope": "SCOPE"}
            _templated(args.format, rows, headers)
            return 0
        from supervisor.tables import columns

        table = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"]]
        table += [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows]
        print("\n".join(columns(table)))
        return 0
    if args.ncmd == "inspect":  # as volume inspect: what there is, then what is not
        out, rc = [], 0
        for name in args.names:
            try:
                out.append(docker_network(c.call(api.NetworkInspect(name=name)).network))
            except DaemonError as e:
                if e.kind != "not_found":
                    raise
                print(f"corral: Error: No such network: {name}", file=sys.stderr)
                rc = 1
        _print_inspect(out, args.format)
        return rc
    if args.ncmd == "prune":
        if not confirm(
            args, "This will remove all custom networks not used by at least one container."
        ):
            return 0
        for name in c.call(api.NetworkPrune()).removed:
            print(name)
        return 0
    if args.ncmd == "connect":
        c.call(
            api.NetworkConnect(
                name=args.network,
                container=args.container,
                ipv4_address=args.ip,
                aliases=args.alias,
            )
        )
        return 0
    if args.ncmd == "disconnect":
        c.call(api.NetworkDisconnect(name=args.network, container=args.container))
        return 0
    return _each(c, args.names, lambda n: api.NetworkRemove(name=n))


def _print_inspect(out: list, fmt: str | None) -> None:
    if fmt:
        from supervisor.commands import _templated

        _templated(fmt, out, {})
    else:
        print(lite.to_json(out, indent=4))


def _rfc3339(nano: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(nano // 10**9))


def docker_volume(v: api.Volume) -> dict:
    """`docker volume inspect`'s shape (and Corral's Anonymous, UsedBy)."""
    return {
        "CreatedAt": _rfc3339(v.created_nano),
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": "local",
        "Anonymous": v.anonymous,
        "UsedBy": v.in_use_by,
    }


def docker_network(n: api.NetworkInfo) -> dict:
    """`docker network inspect`'s shape, for the scripts that read it
    ({{range .IPAM.Config}}{{.Subnet}}{{end}}, .Containers)."""
    from supervisor.network import network_id

    prefix = n.subnet.partition("/")[2]
    return {
        "Name": n.name,
        "Id": network_id(n.name, n.created_nano),
        "Created": _rfc3339(n.created_nano),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}],
        },
        "Internal": False,
        "Attachable": False,
        "Containers": {
            cid: {
                "Name": n.names.get(cid, ""),
                "IPv4Address": f"{addr}/{prefix}",
                "MacAddress": "",
                "IPv6Address": "",
            }
            for cid, addr in n.containers.items()
        },
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": n.labels,
    }
