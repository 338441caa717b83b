"""The container commands: run, create, start, stop, restart, kill, rm, pause,
unpause, ps, inspect, logs, wait, exec, cp, export, top, diff, rename, update,
stats, port. Errors go to stderr, data to stdout; exit statuses are Docker's
(docs/daemon.md). The streams are attach.py."""

from __future__ import annotations

import os
import sys
import time

from protocols import lite
from protocols.lite import api
from supervisor.client.attach import attach, parse_detach_keys, pump, terminal_size
from supervisor.client.connection import (
    Client,
    DaemonError,
    UsageError,
    each,
)
from supervisor.client.flags import (
    config_from,
    env_from,
    parse_filters,
)
from supervisor.client.format import ago, binary_size, decimal_size, templated
from supervisor.client.tables import columns


def _create(c: Client, args, cfg: api.ContainerConfig | None = None) -> api.Created:
    """Create, pulling the image first as `--pull` says (Docker's default: when
    it is missing); the pull's progress goes to stderr, as Docker's does."""
    cfg = cfg or config_from(args)
    if args.cidfile and os.path.exists(args.cidfile):  # Docker's check, before anything
        raise UsageError(
            f"container ID file found, make sure the other container isn't "
            f"running or delete {args.cidfile}"
        )
    if cfg.image and args.pull == "always":
        _pull_for_run(c, cfg.image, args.platform)
    try:
        created = c.call(api.Create(config=cfg))
    except DaemonError as e:
        if not cfg.image or args.pull != "missing" or e.kind != "not_found":
            raise
        print(f"Unable to find image '{with_tag(cfg.image)}' locally", file=sys.stderr)
        _pull_for_run(c, cfg.image, args.platform)
        created = c.call(api.Create(config=cfg))
    if args.cidfile:
        try:
            with open(args.cidfile, "x") as f:
                f.write(created.id)
        except OSError as e:
            raise UsageError(f"--cidfile {args.cidfile}: {e.strerror}") from None
    return created


def with_tag(ref: str) -> str:
    """`ref` as Docker names it in messages: with the tag a pull would use."""
    if "@" in ref or ":" in ref.rpartition("/")[2]:
        return ref
    return ref + ":latest"


def _pull_for_run(c: Client, image: str, platform: str) -> None:
    from supervisor.client.images import progress

    done = progress(c, api.ImagePull(ref=image, platform=platform), out=sys.stderr)
    print(f"Digest: {done.digest or done.ids[0]}", file=sys.stderr)


def cmd_create(c: Client, args) -> int:
    created = _create(c, args)
    print(created.id)
    return 0


def _needs_a_tty(args) -> None:
    """-it with a stdin that is no terminal: Docker's refusal (the container
    would wait for a terminal that never comes)."""
    if args.interactive and args.tty and not args.__dict__.get("detach") and not os.isatty(0):
        raise NotATty


class NotATty(Exception):
    pass


def cmd_run(c: Client, args) -> int:
    keys = parse_detach_keys(args.detach_keys)
    cfg = config_from(args)  # every flag and value checked before the terminal is
    _needs_a_tty(args)
    created = _create(c, args, cfg)
    if args.detach:
        c.call(api.Start(id=created.id))
        print(created.id)
        return 0
    return attach(
        c,
        created.id,
        stdin=args.interactive,
        tty=args.tty,
        start=True,
        sig_proxy=args.sig_proxy,
        detach_keys=keys,
    )


def cmd_start(c: Client, args) -> int:
    rc = 0
    for ref in args.containers:
        try:
            if args.attach:
                return attach(c, ref, stdin=False, tty=False, start=True)
            c.call(api.Start(id=ref))
            print(ref)
        except DaemonError as e:
            print(f"corral: Error response from daemon: {e}", file=sys.stderr)
            rc = 1
    return rc


def cmd_stop(c, args):
    return each(c, args.containers, lambda r: api.Stop(id=r, timeout=args.time, signal=args.signal))


def cmd_restart(c, args):
    return each(
        c, args.containers, lambda r: api.Restart(id=r, timeout=args.time, signal=args.signal)
    )


def cmd_kill(c, args):
    return each(c, args.containers, lambda r: api.Kill(id=r, signal=args.signal))


def cmd_rm(c, args):
    return each(
        c, args.containers, lambda r: api.Remove(id=r, force=args.force, volumes=args.volumes)
    )


def cmd_pause(c, args):
    return each(c, args.containers, lambda r: api.Pause(id=r))


def cmd_unpause(c, args):
    return each(c, args.containers, lambda r: api.Unpause(id=r))


def cmd_ps(c: Client, args) -> int:
    last = 1 if args.latest else args.last
    every = args.all or last >= 0  # -n/-l: whatever their state, as Docker's
    req = api.List(all=every, filters=parse_filters(args.filter), size=args.size)
    rows = c.call(req).containers
    if last >= 0:
        rows = sorted(rows, key=lambda r: r.created_nano, reverse=True)[:last]
    if args.quiet:
        for r in rows:
            print(r.id if args.no_trunc else r.id[:12])
        return 0
    if args.format == "json":
        for r in rows:
            print(lite.to_json(r))
        return 0
    if args.format != "table":
        templated(args.format, [_ps_fields(r, args.no_trunc) for r in rows], PS_HEADERS)
        return 0
    head = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    table = [head + (["SIZE"] if args.size else [])]
    for r in rows:
        cmd = r.command if args.no_trunc or len(r.command) <= 20 else r.command[:19] + "…"
        image = r.image if args.no_trunc or len(r.image) <= 24 else "…" + r.image[-23:]
        row = [
            r.id if args.no_trunc else r.id[:12],
            image,
            f'"{cmd}"',
            ago(r.created_nano),
            r.status,
            _ps_ports(r),
            r.name,
        ]
        table.append(row + ([_ps_size(r)] if args.size else []))
    print("\n".join(columns(table)))
    return 0


def _ps_ports(r: api.ContainerSummary) -> str:
    """Docker's PORTS: 0.0.0.0:8080->80/tcp, ..."""
    return ", ".join(f"{host}->{port}" for port, host in sorted(r.ports.items()))


def _ps_size(r: api.ContainerSummary) -> str:
    """Docker's SIZE: what it wrote (virtual: with its image)."""
    return f"{decimal_size(r.size_rw)} (virtual {decimal_size(r.size_root_fs)})"


PS_HEADERS = {
    ".ID": "CONTAINER ID",
    ".Names": "NAMES",
    ".Command": "COMMAND",
    ".CreatedAt": "CREATED AT",
    ".RunningFor": "CREATED",
    ".Status": "STATUS",
    ".State": "STATE",
    ".Labels": "LABELS",
    ".RestartCount": "RESTARTS",
    ".Image": "IMAGE",
    ".Size": "SIZE",
    ".Ports": "PORTS",
}


def _ps_fields(r: api.ContainerSummary, no_trunc: bool) -> dict:
    """A row as Docker's `ps --format` names its fields."""
    created = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(r.created_nano / 1e9))
    return {
        "ID": r.id if no_trunc else r.id[:12],
        "Names": r.name,
        "Command": f'"{r.command}"',
        "CreatedAt": created,
        "RunningFor": ago(r.created_nano),
        "Status": r.status,
        "State": r.state,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(r.labels.items())),
        "RestartCount": r.restart_count,
        "Image": r.image,
        "Size": _ps_size(r),
        "Ports": _ps_ports(r),
    }


def cmd_cp(c: Client, args) -> int:
    """`cp HOSTPATH C:PATH` copies into the container's directory PATH, or as PATH
    (a new name, or a file it replaces: the daemon decides, as Docker's does);
    `cp C:PATH HOSTPATH` copies out, into HOSTPATH if it is a directory, else as
    HOSTPATH. `-` is a tar on stdout or from stdin (into an existing directory).
    Archives go as tar; the host side unpacks through descriptors, nothing
    outside DEST (_extract_here): no tarfile filter, so any Python 3.11 serves."""
    import io
    import tarfile

    src, dest = args.source, args.dest
    if ":" in src and not src.startswith(("/", ".")) and dest == "-":
        if sys.stdout.isatty():  # Docker's: a tar is not for a terminal
            raise UsageError("cp to '-' writes a tar: redirect stdout")
        ref, path = src.split(":", 1)
        for msg in c.stream(api.CopyFrom(id=ref, path=path)):
            sys.stdout.buffer.write(msg.data)
        sys.stdout.buffer.flush()
        return 0
    if src == "-":  # a tar on stdin, unpacked into the container's directory
        if ":" not in dest:
            raise UsageError("cp - needs CONTAINER:DIR")
        ref, path = dest.split(":", 1)
        c.send(api.CopyTo(id=ref, path=path.rstrip("/") + "/" if path != "/" else path))
        while chunk := sys.stdin.buffer.read(1 << 20):
            c.send(api.StdinData(data=chunk))
        c.send(api.StdinClose())
        c.recv()
        return 0
    if ":" in src and not src.startswith(("/", ".")):
        ref, path = src.split(":", 1)
        buf = io.BytesIO()
        for msg in c.stream(api.CopyFrom(id=ref, path=path)):
            buf.write(msg.data)
        buf.seek(0)
        _extract_here(buf, dest, top=os.path.basename(path.rstrip("/")))
        return 0
    if ":" not in dest:
        raise UsageError("cp needs CONTAINER:PATH on one side")
    ref, path = dest.split(":", 1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        try:
            tar.add(src, arcname=os.path.basename(os.path.abspath(src)))
        except OSError as e:
            raise UsageError(f"cp: {src}: {e.strerror}") from None
    c.send(api.CopyTo(id=ref, path=path))
    data = buf.getvalue()
    for i in range(0, len(data), 1 << 20):
        c.send(api.StdinData(data=data[i : i + (1 << 20)]))
    c.send(api.StdinClose())
    c.recv()
    return 0


def _extract_here(data, dest: str, *, top: str) -> None:
    """What `cp C:PATH DEST` received, unpacked on this side: into DEST if it is
    a directory, else as DEST (the top entry renamed). Nothing lands outside
    it, at any depth (fstree.extract_tar); no Python tarfile filter needed."""
    import tarfile

    from supervisor import fstree

    into_dir = os.path.isdir(dest) or top in ("", ".")
    where = dest if into_dir else os.path.dirname(os.path.abspath(dest))
    try:
        fd = fstree.open_dir(where)
    except OSError as e:
        raise UsageError(f"cp: {where}: {e.strerror}") from None
    try:
        with tarfile.open(fileobj=data, mode="r|") as tar:
            fstree.extract_tar(tar, fd, top_as=None if into_dir else os.path.basename(dest))
    except (fstree.UnsafeEntry, tarfile.TarError) as e:
        raise UsageError(f"cp: {e}") from None
    except OSError as e:
        raise UsageError(f"cp: writing {dest}: {e.strerror}: {e.filename}") from None
    finally:
        os.close(fd)


def cmd_export(c: Client, args) -> int:
    if args.output is None and sys.stdout.isatty():
        raise UsageError("export writes a tar: give -o FILE or redirect stdout")
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        for msg in c.stream(api.Export(id=args.container)):
            out.write(msg.data)
    finally:
        if args.output:
            out.close()
    return 0


def cmd_update(c: Client, args) -> int:
    return each(
        c,
        args.containers,
        lambda r: api.Update(
            id=r,
            memory=args.memory,
            memory_swap=args.memory_swap,
            memory_reservation=args.memory_reservation,
            cpus=args.cpus,
            cpu_shares=args.cpu_shares,
            cpuset_cpus=args.cpuset_cpus,
            cpuset_mems=args.cpuset_mems,
            pids_limit=args.pids_limit,
            restart=args.restart,
        ),
    )


def cmd_rename(c: Client, args) -> int:
    c.call(api.Rename(id=args.container, name=args.name))
    return 0


def cmd_top(c: Client, args) -> int:
    r = c.call(api.Top(id=args.container))
    print("\n".join(columns([r.titles, *r.processes])))
    return 0


def cmd_diff(c: Client, args) -> int:
    for kind, path in c.call(api.Diff(id=args.container)).changes:
        print(kind, path)
    return 0


def cmd_inspect(c: Client, args) -> int:
    """Containers, or what else the name is, as Docker's inspect looks: an
    image, a network, a volume (--type to say which)."""
    out, rc = [], 0
    kinds = [args.type] if args.type else ["container", "image", "network", "volume"]
    for ref in args.containers:
        for kind in kinds:
            try:
                out.append(_inspect_one(c, kind, ref))
                break
            except DaemonError as e:
                if e.kind != "not_found" or kind == kinds[-1]:
                    what = args.type or "object"
                    msg = f"No such {what}: {ref}" if e.kind == "not_found" else str(e)
                    print(f"corral: Error: {msg}", file=sys.stderr)
                    rc = 1
                    break
    if args.format:
        templated(args.format, out, {})
    else:
        print(lite.to_json(out, indent=4))
    return rc


def _inspect_one(c: Client, kind: str, ref: str) -> object:
    if kind == "container":
        return c.call(api.Inspect(id=ref)).data
    if kind == "image":
        return c.call(api.ImageInspect(ref=ref)).data
    from supervisor.client.networks import docker_network
    from supervisor.client.volumes import docker_volume

    if kind == "network":
        return docker_network(c.call(api.NetworkInspect(name=ref)).network)
    return docker_volume(c.call(api.VolumeInspect(name=ref)).volume)


def cmd_logs(c: Client, args) -> int:
    tail = None if args.tail == "all" else int(args.tail)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for msg in c.stream(
        api.Logs(
            id=args.container,
            follow=args.follow,
            since_nano=args.since,
            until_nano=args.until,
            tail=tail,
            timestamps=args.timestamps,
        )
    ):
        if isinstance(msg, api.Output):
            f = err if msg.stream == "stderr" else out
            if args.timestamps:
                secs, frac = divmod(msg.time_nano, 10**9)
                f.write(
                    time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)).encode()
                    + f".{frac:09d}Z ".encode()
                )
            f.write(msg.data)
            f.flush()
    return 0


def cmd_wait(c: Client, args) -> int:
    rc = 0
    for ref in args.containers:
        try:
            print(c.call(api.Wait(id=ref)).status_code, flush=True)
        except DaemonError as e:
            print(f"corral: Error response from daemon: {e}", file=sys.stderr)
            rc = 1
    return rc


def cmd_exec(c: Client, args) -> int:
    _needs_a_tty(args)
    h, w = terminal_size() if args.tty else (0, 0)
    req = api.Exec(
        id=args.container,
        cmd=args.command,
        env=env_from(args),
        workdir=args.workdir,
        user=args.user,
        tty=args.tty,
        stdin=args.interactive,
        height=h,
        width=w,
    )
    if args.detach:
        c.call(lite.replace(req, detach=True, stdin=False))
        return 0
    keys = parse_detach_keys(args.detach_keys)
    return pump(c, req, stdin=args.interactive, tty=args.tty, detach_keys=keys)


STATS_HEADERS = {
    ".Container": "CONTAINER ID",
    ".ID": "CONTAINER ID",
    ".Name": "NAME",
    ".CPUPerc": "CPU %",
    ".MemUsage": "MEM USAGE / LIMIT",
    ".MemPerc": "MEM %",
    ".NetIO": "NET I/O",
    ".BlockIO": "BLOCK I/O",
    ".PIDs": "PIDS",
}
STATS_TABLE = (
    "table {{.Container}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}"
    "\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
)


def _stats_fields(s: api.StatsSample) -> dict:
    return {
        "Container": s.id[:12],
        "ID": s.id,
        "Name": s.name,
        "CPUPerc": f"{s.cpu_percent:.2f}%",
        "MemUsage": f"{binary_size(s.memory_usage)} / {binary_size(s.memory_limit or 0)}",
        "MemPerc": f"{s.memory_percent:.2f}%",
        "NetIO": f"{decimal_size(s.net_rx)} / {decimal_size(s.net_tx)}",
        "BlockIO": f"{decimal_size(s.block_read)} / {decimal_size(s.block_written)}",
        "PIDs": str(s.pids),
    }


def cmd_stats(c: Client, args) -> int:
    """Docker's columns; streamed, the table is drawn again each second (a
    block per second when the output is not a terminal)."""
    req = api.Stats(ids=args.containers, stream=not args.no_stream, all=args.all)
    fmt = STATS_TABLE if args.format == "table" else args.format
    tty = sys.stdout.isatty()
    batch: list[api.StatsSample] = []
    seen: set[str] = set()

    def flush() -> None:
        if fmt == "json" or (not batch and not fmt.startswith("table")):
            return
        if tty and req.stream:
            sys.stdout.write("\x1b[2J\x1b[H")  # Docker redraws in place
        templated(fmt, [_stats_fields(s) for s in batch], STATS_HEADERS)
        sys.stdout.flush()
        batch.clear()
        seen.clear()

    for msg in c.stream(req):
        if fmt == "json":
            print(lite.to_json(msg), flush=True)
            continue
        if msg.id in seen:  # a new round of samples
            flush()
        seen.add(msg.id)
        batch.append(msg)
    flush()
    return 0


def cmd_port(c: Client, args) -> int:
    ports = c.call(api.Inspect(id=args.container)).data["NetworkSettings"]["Ports"]
    for key, binds in sorted(ports.items()):
        for b in binds:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0
