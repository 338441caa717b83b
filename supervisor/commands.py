"""Docker's words with Docker's flags: the `corral` client commands.

Only the standard library, protocols/ and supervisor.client: never trio, the
daemon or the runtime. Errors go to stderr, data to stdout; exit codes are
Docker's (125 when the daemon refused, the container's own status for run,
wait and exec). The flags are commands_flags.py, the streams commands_attach.py.
"""

from __future__ import annotations

import os
import sys
import time

from protocols import api_lite as api
from protocols import lite
from protocols.wire import PROTOCOL_VERSION
from supervisor.client import (
    Client,
    DaemonError,
    Unreachable,
    UsageError,
    confirm,
    socket_path,
)
from supervisor.commands_attach import attach, cmd_attach, parse_detach_keys, pump, terminal_size
from supervisor.commands_flags import (
    config_from,
    env_from,
    parse_args,
    parse_filters,
    parse_time,
)
from supervisor.tables import columns


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as e:  # the parser said why; a flag it cannot take is Docker's 125
        return 125 if e.code == 2 else e.code if isinstance(e.code, int) else 0
    try:
        client = Client(socket_path(args.socket))
    except KeyboardInterrupt:
        return 130
    except Unreachable as e:
        print(f"corral: {e}", file=sys.stderr)
        return 125
    try:
        return COMMANDS[args.cmd](client, args)
    except UsageError as e:
        print(f"corral: {e}", file=sys.stderr)
        return 125
    except NotATty:
        print("the input device is not a TTY", file=sys.stderr)
        return 1
    except DaemonError as e:
        print(f"corral: Error response from daemon: {e}", file=sys.stderr)
        return e.exit_code if args.cmd in ("run", "exec") else 1
    except Unreachable as e:
        print(f"corral: {e}", file=sys.stderr)
        return 125
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:  # Ctrl-C on a stream (logs -f, events, stats, wait): quietly
        return 130
    finally:
        client.close()


# -- commands ---------------------------------------------------------------------------


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
    from supervisor.commands_images import _progress

    done = _progress(c, api.ImagePull(ref=image, platform=platform), out=sys.stderr)
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


def _each(c: Client, refs: list[str], make) -> int:
    rc = 0
    for ref in refs:
        try:
            c.call(make(ref))
            print(ref)
        except DaemonError as e:
            print(f"corral: Error response from daemon: {e}", file=sys.stderr)
            rc = 1
    return rc


def cmd_stop(c, args):
    return _each(
        c, args.containers, lambda r: api.Stop(id=r, timeout=args.time, signal=args.signal)
    )


def cmd_restart(c, args):
    return _each(
        c, args.containers, lambda r: api.Restart(id=r, timeout=args.time, signal=args.signal)
    )


def cmd_kill(c, args):
    return _each(c, args.containers, lambda r: api.Kill(id=r, signal=args.signal))


def cmd_rm(c, args):
    return _each(
        c, args.containers, lambda r: api.Remove(id=r, force=args.force, volumes=args.volumes)
    )


def cmd_pause(c, args):
    return _each(c, args.containers, lambda r: api.Pause(id=r))


def cmd_unpause(c, args):
    return _each(c, args.containers, lambda r: api.Unpause(id=r))


def _ago(nano: int) -> str:
    s = (time.time_ns() - nano) / 1e9
    if s < 60:
        return f"{int(s)} seconds ago" if s >= 2 else "Less than a second ago"
    if s < 3600:
        return f"{int(s // 60)} minutes ago" if s >= 120 else "About a minute ago"
    if s < 172800:
        return f"{round(s / 3600)} hours ago"
    return f"{int(s // 86400)} days ago"


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
        _templated(args.format, [_ps_fields(r, args.no_trunc) for r in rows], PS_HEADERS)
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
            _ago(r.created_nano),
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
    return f"{_human(r.size_rw)} (virtual {_human(r.size_root_fs)})"


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
        "RunningFor": _ago(r.created_nano),
        "Status": r.status,
        "State": r.state,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(r.labels.items())),
        "RestartCount": r.restart_count,
        "Image": r.image,
        "Size": _ps_size(r),
        "Ports": _ps_ports(r),
    }


def _templated(fmt: str, rows: list, headers: dict[str, str]) -> None:
    """--format TEMPLATE (or 'table TEMPLATE'): a line per row."""
    from supervisor import templates

    try:
        if fmt.startswith("table"):
            lines = templates.table(fmt, rows, headers)
        else:
            lines = [templates.render(fmt, r) for r in rows]
    except templates.TemplateError as e:
        raise UsageError(f"--format: {e}") from None
    for line in lines:
        print(line)


def cmd_cp(c: Client, args) -> int:
    """`cp HOSTPATH C:PATH` copies into the container's directory PATH, or as PATH
    (a new name, or a file it replaces: the daemon decides, as Docker's does);
    `cp C:PATH HOSTPATH` copies out, into HOSTPATH if it is a directory, else as
    HOSTPATH. `-` is a tar on stdout or from stdin (into an existing directory).
    Archives go as tar; host-side extraction uses tarfile's data filter (no
    absolute paths, no '..', no links out, no devices)."""
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


def cmd_container(c: Client, args) -> int:
    if not confirm(args, "This will remove all stopped containers."):
        return 0
    gone = c.call(api.ContainerPrune()).ids
    for i in gone:
        print(i)
    print(f"Total: {len(gone)} containers removed")
    return 0


def _human(n: int) -> str:
    """Docker's sizes: decimal units, four significant digits (16.43MB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.4g}{unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n}B"


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
            f"{label:<16}{u['Total']:<10}{u['Active']:<10}{_human(u['Size']):<12}"
            f"{_human(u['Reclaimable'])} ({pct}%)"
        )
    return 0


def cmd_system(c: Client, args) -> int:
    """system prune: stopped containers, unused networks, then the images nothing
    uses (untagged only without -a), then with --volumes unused anonymous volumes."""
    if args.scmd == "df":
        return _system_df(c, args)
    from supervisor.commands_images import _human_size

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
    print(f"Total reclaimed space: {_human_size(reclaimed)}")
    return 0


def cmd_update(c: Client, args) -> int:
    return _each(
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


def cmd_info(c: Client, args) -> int:
    d = c.call(api.Info()).data
    if args.format:
        _templated(args.format, [d], {})
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
        _templated(args.format, out, {})
    else:
        print(lite.to_json(out, indent=4))
    return rc


def _inspect_one(c: Client, kind: str, ref: str) -> object:
    if kind == "container":
        return c.call(api.Inspect(id=ref)).data
    if kind == "image":
        return c.call(api.ImageInspect(ref=ref)).data
    from supervisor.commands_volumes import docker_network, docker_volume

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


def _binary(n: float) -> str:
    """Docker's memory sizes: binary units (1.5MiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}B"


def _stats_fields(s: api.StatsSample) -> dict:
    return {
        "Container": s.id[:12],
        "ID": s.id,
        "Name": s.name,
        "CPUPerc": f"{s.cpu_percent:.2f}%",
        "MemUsage": f"{_binary(s.memory_usage)} / {_binary(s.memory_limit or 0)}",
        "MemPerc": f"{s.memory_percent:.2f}%",
        "NetIO": f"{_human(s.net_rx)} / {_human(s.net_tx)}",
        "BlockIO": f"{_human(s.block_read)} / {_human(s.block_written)}",
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
        _templated(fmt, [_stats_fields(s) for s in batch], STATS_HEADERS)
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
            print(_render_one(args.format, docker_event(msg)), flush=True)
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


def _render_one(fmt: str, obj: object) -> str:
    from supervisor import templates

    try:
        return templates.render(fmt, obj)
    except templates.TemplateError as e:
        raise UsageError(f"--format: {e}") from None


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
        _templated(args.format, [info], {})
        return 0
    cl, sv = info["Client"], info["Server"]
    print(
        f"Client:\n Version:           {cl['Version']}\n API version:       {cl['ApiVersion']}\n"
        f" Python version:    {cl['PythonVersion']}\n OS/Arch:           linux/{arch}\n\n"
        f"Server: Corral Engine\n Engine:\n  Version:          {sv['Version']}\n"
        f"  API version:      {sv['ApiVersion']}"
    )
    return 0


def _lazy(module: str, name: str):
    """A command whose code lives in another module, imported when it runs."""

    def run(c: Client, args) -> int:
        import importlib

        return getattr(importlib.import_module(module), name)(c, args)

    return run


def cmd_port(c: Client, args) -> int:
    ports = c.call(api.Inspect(id=args.container)).data["NetworkSettings"]["Ports"]
    for key, binds in sorted(ports.items()):
        for b in binds:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0


COMMANDS = {
    "run": cmd_run,
    "create": cmd_create,
    "start": cmd_start,
    "rename": cmd_rename,
    "update": cmd_update,
    "info": cmd_info,
    "container": cmd_container,
    "system": cmd_system,
    "cp": cmd_cp,
    "export": cmd_export,
    "top": cmd_top,
    "diff": cmd_diff,
    "attach": cmd_attach,
    "stop": cmd_stop,
    "restart": cmd_restart,
    "kill": cmd_kill,
    "rm": cmd_rm,
    "ps": cmd_ps,
    "inspect": cmd_inspect,
    "logs": cmd_logs,
    "wait": cmd_wait,
    "exec": cmd_exec,
    "pause": cmd_pause,
    "unpause": cmd_unpause,
    "stats": cmd_stats,
    "events": cmd_events,
    "version": cmd_version,
    "port": cmd_port,
    "volume": _lazy("supervisor.commands_volumes", "cmd_volume"),
    "network": _lazy("supervisor.commands_volumes", "cmd_network"),
    "import": _lazy("supervisor.commands_images", "cmd_import"),
    "pull": _lazy("supervisor.commands_images", "cmd_pull"),
    "push": _lazy("supervisor.commands_images", "cmd_push"),
    "login": _lazy("supervisor.commands_images", "cmd_login"),
    "logout": _lazy("supervisor.commands_images", "cmd_logout"),
    "load": _lazy("supervisor.commands_images", "cmd_load"),
    "save": _lazy("supervisor.commands_images", "cmd_save"),
    "images": _lazy("supervisor.commands_images", "cmd_images"),
    "tag": _lazy("supervisor.commands_images", "cmd_tag"),
    "rmi": _lazy("supervisor.commands_images", "cmd_rmi"),
    "history": _lazy("supervisor.commands_images", "cmd_history"),
    "commit": _lazy("supervisor.commands_images", "cmd_commit"),
    "image": _lazy("supervisor.commands_images", "cmd_image"),
}
