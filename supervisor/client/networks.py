"""`corral network ...`: networks (ids are the daemon's, 64 hex digits)."""

from __future__ import annotations

import sys

from protocols.lite import api
from supervisor.client.connection import Client, DaemonError, confirm, each
from supervisor.client.flags import labels_from, parse_filters
from supervisor.client.format import print_inspect, rfc3339, templated
from supervisor.client.tables import columns


def cmd_network(c: Client, args) -> int:
    if args.ncmd == "create":
        n = c.call(
            api.NetworkCreate(
                name=args.name,
                subnet=args.subnet,
                gateway=args.gateway,
                labels=labels_from(args.label),
            )
        ).network
        print(n.id)  # Docker prints the id
        return 0
    if args.ncmd == "ls":
        nets = c.call(api.NetworkList(filters=parse_filters(args.filter))).networks

        ids = {n.name: n.id for n in nets}
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
            headers = {".ID": "NETWORK ID", ".Name": "NAME", ".Driver": "DRIVER", ".Scope": "SCOPE"}
            templated(args.format, rows, headers)
            return 0

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
        print_inspect(out, args.format)
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
    return each(c, args.names, lambda n: api.NetworkRemove(name=n))


def docker_network(n: api.NetworkInfo) -> dict:
    """`docker network inspect`'s shape, for the scripts that read it
    ({{range .IPAM.Config}}{{.Subnet}}{{end}}, .Containers)."""
    prefix = n.subnet.partition("/")[2]
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": rfc3339(n.created_nano),
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
