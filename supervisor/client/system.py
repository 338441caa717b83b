"""The engine as a whole: info, version, system df and prune, container
prune, and the event stream as Docker's `events` prints it."""

from __future__ import annotations

import sys
import time

from protocols import lite
from protocols.lite import api
from protocols.wire import PROTOCOL_VERSION
from supervisor.client.connection import Client, confirm
from supervisor.client.flags import parse_filters, parse_time
from supervisor.client.format import decimal_size, render_one, short_size, templated


def _system_df(c: Client, args) -> int:
    d = c.call(api.SystemDf()).data
    if args.format == "json":
        print(lite.to_json(d))
        return 0
    print(f"{'TYPE':<16}{'TOTAL':<10}{'ACTIVE':<10}{'SIZE':<12}RECLAIMABLE")
    for label, key in (
        ("Images", "Images"),
        ("Containers", "Containers"),
        ("Local Volumes", "Volumes"),
    ):
        u = d[key]
        pct = round(100 * u["Reclaimable"] / u["Size"]) if u["Size"] else 0
        print(
            f"{label:<16}{u['Total']:<10}{u['Active']:<10}{decimal_size(u['Size']):<12}"
            f"{decimal_size(u['Reclaimable'])} ({pct}%)"
        )
    return 0


def cmd_system(c: Client, args) -> int:
    """system prune: stopped containers, unused networks, then the images nothing
    uses (untagged only without -a), then with --volumes unused anonymous volumes."""
    if args.scmd == "df":
        return _system_df(c, args)
    what = [
        "all stopped containers",
        "all networks not used by at least one container",
        *(["all anonymous volumes not used by at least one container"] if args.volumes else []),
        "all images without at least one container associated to them"
        if args.all
        else "all dangling images",
    ]
    if not confirm(args, "This will remove:\n" + "".join(f"  - {w}\n" for w in what)):
        return 0

    containers = c.call(api.ContainerPrune()).ids
    networks = c.call(api.NetworkPrune()).removed
    images = c.call(api.ImagePrune(all=args.all))
    volumes = c.call(api.VolumePrune()) if args.volumes else None
    # Docker's report: a section for each kind that lost something, then the total.
    sections = [
        ("Deleted Containers:", containers),
        ("Deleted Networks:", networks),
        ("Deleted Volumes:", volumes.removed if volumes else []),
        (
            "Deleted Images:",
            [f"untagged: {t}" for t in images.tags]
            + [f"deleted: {i}" for i in [*images.ids, *images.deleted]],
        ),
    ]
    for title, lines in sections:
        if lines:
            print(title, *lines, "", sep="\n")
    reclaimed = images.size + (volumes.reclaimed_bytes if volumes else 0)
    print(f"Total reclaimed space: {short_size(reclaimed)}")
    return 0


def cmd_info(c: Client, args) -> int:
    d = c.call(api.Info()).data
    if args.format:
        templated(args.format, [d], {})
        return 0
    gib = d["MemTotal"] / 2**30
    print(
        f"Client: corral\n\nServer:\n"
        f" Containers: {d['Containers']}\n"
        f"  Running: {d['ContainersRunning']}\n"
        f"  Paused: {d['ContainersPaused']}\n"
        f"  Stopped: {d['ContainersStopped']}\n"
        f" Images: {d['Images']}\n"
        f" Volumes: {d['Volumes']}\n"
        f" Server Version: {d['ServerVersion']}\n"
        f" Storage Driver: {d['Driver']}\n"
        f" Logging Driver: {d['LoggingDriver']}\n"
        f" Cgroup Driver: {d['CgroupDriver']}\n"
        f" Cgroup Version: {d['CgroupVersion']}\n"
        f" Network: {' '.join(d['Networks'])}\n"
        f" Security Options:\n"
        + "".join(f"  {o}\n" for o in d["SecurityOptions"])
        + f" Kernel Version: {d['KernelVersion']}\n"
        f" Operating System: {d['OperatingSystem']}\n"
        f" OSType: {d['OSType']}\n"
        f" Architecture: {d['Architecture']}\n"
        f" CPUs: {d['NCPU']}\n"
        f" Total Memory: {gib:.2f}GiB\n"
        f" Name: {d['Name']}\n"
        f" Docker Root Dir: {d['DockerRootDir']}",
    )
    return 0


def format_event(ev: api.Event) -> str:
    """Docker's line: local time with its zone (...T10:00:00.000000000+01:00)."""
    secs, frac = divmod(ev.time_nano, 10**9)
    local = time.localtime(secs)
    zone = time.strftime("%z", local)  # Go's Z07:00: "Z" for UTC
    zone = "Z" if zone in ("+0000", "-0000") else f"{zone[:3]}:{zone[3:]}"
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{frac:09d}{zone}"
    attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev.attributes.items()))
    return f"{ts} {ev.type} {ev.action} {ev.id} ({attrs})"


def cmd_events(c: Client, args) -> int:
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    req = api.Events(since_nano=since, until_nano=until, filters=parse_filters(args.filter))
    for msg in c.stream(req):
        if isinstance(msg, api.Gap):
            print(
                f"corral: events {msg.first}-{msg.last} are no longer kept; "
                f"resuming at {msg.resume_from}",
                file=sys.stderr,
            )
            continue
        if args.format == "json":
            print(lite.to_json(msg), flush=True)
        elif args.format == "text":
            print(format_event(msg), flush=True)
        else:
            print(render_one(args.format, docker_event(msg)), flush=True)
    return 0


# Docker's event message: Go field names where its JSON names differ.


_EVENT_ALIASES = {
    "Status": "status",
    "ID": "id",
    "From": "from",
    "Scope": "scope",
    "Time": "time",
    "TimeNano": "timeNano",
}


class _GoFields(dict):
    """A JSON object whose keys a Go template may also name by the Go struct's
    fields, as with Docker's events: {{.Status}} is "status", {{.ID}} "id"."""

    def __contains__(self, key: object) -> bool:
        alias = _EVENT_ALIASES.get(key, key)  # type: ignore[call-overload]
        return dict.__contains__(self, key) or dict.__contains__(self, alias)

    def __missing__(self, key: str) -> object:
        if key in _EVENT_ALIASES:
            return dict.__getitem__(self, _EVENT_ALIASES[key])
        raise KeyError(key)


def docker_event(ev: api.Event) -> dict:
    """An event in the shape of Docker's events API message (`docker events
    --format '{{json .}}'`), for scripts written against Docker."""
    secs = ev.time_nano // 10**9
    out = _GoFields()
    if ev.type in ("container", "image"):  # Docker's older fields, for these two only
        out.update(status=ev.action, id=ev.id)
        if ev.type == "container" and "image" in ev.attributes:
            out["from"] = ev.attributes["image"]
    out.update(
        Type=ev.type,
        Action=ev.action,
        # Docker's actors carry their name (a container's, an image's reference).
        Actor={
            "ID": ev.id,
            "Attributes": {**({"name": ev.name} if ev.name else {}), **ev.attributes},
        },
        scope="local",
        time=secs,
        timeNano=ev.time_nano,
    )
    return out


def cmd_version(c: Client, args) -> int:
    """Docker's layout, and --format over {Client, Server} as Docker names them."""
    import platform

    from supervisor import __version__

    server = c.server.partition("/")[2] or c.server
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    info = {
        "Client": {
            "Version": __version__,
            "ApiVersion": str(PROTOCOL_VERSION),
            "PythonVersion": platform.python_version(),
            "Os": "linux",
            "Arch": arch,
        },
        "Server": {"Version": server, "ApiVersion": str(PROTOCOL_VERSION)},
    }
    if args.format:
        templated(args.format, [info], {})
        return 0
    cl, sv = info["Client"], info["Server"]
    print(
        f"Client:\n Version:           {cl['Version']}\n API version:       {cl['ApiVersion']}\n"
        f" Python version:    {cl['PythonVersion']}\n OS/Arch:           linux/{arch}\n\n"
        f"Server: Corral Engine\n Engine:\n  Version:          {sv['Version']}\n"
        f"  API version:      {sv['ApiVersion']}"
    )
    return 0


def cmd_container(c: Client, args) -> int:
    if not confirm(args, "This will remove all stopped containers."):
        return 0
    gone = c.call(api.ContainerPrune()).ids
    for i in gone:
        print(i)
    print(f"Total: {len(gone)} containers removed")
    return 0
