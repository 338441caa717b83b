"""`corral volume ...`: volumes."""

from __future__ import annotations

import sys

from protocols import lite
from protocols.lite import api
from supervisor.client.connection import Client, DaemonError, confirm, each
from supervisor.client.flags import parse_filters
from supervisor.client.format import print_inspect, rfc3339, short_size


def cmd_volume(c: Client, args) -> int:
    if args.vcmd == "create":
        from supervisor.client.flags import labels_from

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
        print_inspect(out, args.format)
        return rc
    if args.vcmd == "rm":
        return each(c, args.names, lambda n: api.VolumeRemove(name=n, force=args.force))
    if args.vcmd == "prune":
        which = "all local volumes" if args.all else "anonymous local volumes"
        if not confirm(args, f"This will remove {which} not used by at least one container."):
            return 0
        filters = {"all": ["true"]} if args.all else {}
        res = c.call(api.VolumePrune(filters=filters))
        for name in res.removed:
            print(name)

        print(f"Total reclaimed space: {short_size(res.reclaimed_bytes)}")
        return 0
    return 2


def docker_volume(v: api.Volume) -> dict:
    """`docker volume inspect`'s shape (and Corral's Anonymous, UsedBy)."""
    return {
        "CreatedAt": rfc3339(v.created_nano),
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": "local",
        "Anonymous": v.anonymous,
        "UsedBy": v.in_use_by,
    }
