"""`corral compose COMMAND`: Docker Compose's commands over the daemon.

The client reads and normalizes the file (load.py) and hands the whole
project to the daemon (`up`), which converges to it and keeps it; the rest
(ps, logs, events, stop...) find the project's containers by their labels, as
Docker Compose does. Progress goes to stderr as Docker Compose prints it when
not on a terminal (" Container app-web-1  Started"); data to stdout.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import msgspec

from protocols import api as full
from protocols.lite import api
from supervisor.client.connection import Client, DaemonError, UsageError
from supervisor.client.format import ago
from supervisor.client.tables import columns
from supervisor.compose import ComposeError, load, normalize, plan
from supervisor.compose.render import config_text

PROJECT_LABEL = plan.PROJECT


def _options(args, services: list[str] | None = None) -> load.Options:
    return load.Options(
        files=list(args.file),
        project_name=args.project_name,
        project_dir=args.project_directory,
        env_files=list(args.env_file),
        profiles=list(args.profile),
        services=services or [],
    )


def _load(args, services: list[str] | None = None) -> load.Loaded:
    loaded = load.load(_options(args, services))
    for w in loaded.warnings:
        print(f"WARN[0000] {w}", file=sys.stderr)
    return loaded


def project_name(args) -> str:
    """-p, else the file's project (for commands that need no more of it)."""
    if args.project_name:
        return normalize.project_name(args.project_name)
    env = os.environ.get("COMPOSE_PROJECT_NAME")
    if env:
        return normalize.project_name(env)
    return _load(args).project.name


def _say(step) -> None:
    if step.kind == "Warning":
        print(f"WARN[0000] {step.detail}", file=sys.stderr, flush=True)
        return
    line = f" {step.kind} {step.name}  {step.status}"
    if step.detail:
        line += f" ({step.detail})" if not step.error else f": {step.detail}"
    print(line, file=sys.stderr, flush=True)


def _converge(c: Client, req_bytes: bytes) -> int:
    """Send a request whose answer is ComposeProgress steps, then Ok or Error."""
    c.send_encoded(req_bytes)
    try:
        while True:
            msg = c.recv()
            if isinstance(msg, api.ComposeProgress):
                _say(msg)
            elif isinstance(msg, api.Ok):
                return 0
    except KeyboardInterrupt:
        print(
            "\ncorral: the daemon goes on with the work; `corral compose ps` shows where it is",
            file=sys.stderr,
        )
        return 130


def _encode(msg: msgspec.Struct) -> bytes:
    return msgspec.msgpack.encode(msg)


# -- commands ------------------------------------------------------------------------------


def cmd_up(c: Client, args) -> int:
    if args.force_recreate and args.no_recreate:
        raise UsageError("--force-recreate and --no-recreate are incompatible")
    if args.build and args.no_build:
        raise UsageError("--build and --no-build are incompatible")
    loaded = _load(args, args.services)
    p = loaded.project
    scale = {}
    for s in args.scale:
        name, eq, n = s.partition("=")
        if not eq or not n.isdigit():
            raise UsageError(f"invalid --scale {s!r}: SERVICE=N")
        if name not in p.services:
            raise UsageError(f"--scale {s}: no such service: {name}")
        scale[name] = int(n)
    if args.build or not args.no_build:
        rc = _build_missing(c, p, args.services, always=args.build)
        if rc:
            return rc
    req = full.ComposeUp(
        project=p,
        services=list(args.services),
        scale=scale,
        recreate="force" if args.force_recreate else "never" if args.no_recreate else "diverged",
        remove_orphans=args.remove_orphans,
        start=not args.no_start,
        timeout=args.timeout,
    )
    rc = _converge(c, _encode(req))
    if rc or args.detach or args.no_start:
        return rc
    return _attached(c, p.name, list(args.services))


def _build_missing(c: Client, p, services: list[str], *, always: bool) -> int:
    """compose's `build:`: the images to build (all with --build, else the
    missing ones)."""
    from supervisor.compose import build

    return build.build_services(c, p, services, always=always)


def cmd_build(c: Client, args) -> int:
    p = _load(args, args.services).project
    from supervisor.compose import build

    return build.build_services(c, p, list(args.services), always=True, no_cache=args.no_cache)


def _attached(c: Client, project: str, services: list[str]) -> int:
    """`up` without -d: follow the logs; Ctrl-C stops the project (as Docker
    Compose does), a second Ctrl-C leaves it as it is."""
    print("Attaching to project " + project + " (Ctrl-C stops it)", file=sys.stderr)
    try:
        _follow_logs(c, project, services, follow=True, tail=None, timestamps=False, prefix=True)
    except KeyboardInterrupt:
        print("Gracefully stopping... (press Ctrl+C again to force)", file=sys.stderr)
        with Client(c.path) as c2:
            return _converge(
                c2, _encode(full.ComposeAction(project=project, action="stop", services=services))
            )
    return 0


def cmd_down(c: Client, args) -> int:
    req = full.ComposeDown(
        project=project_name(args),
        volumes=args.volumes,
        remove_orphans=args.remove_orphans,
        timeout=args.timeout,
    )
    return _converge(c, _encode(req))


def cmd_action(c: Client, args) -> int:
    if args.ccmd == "rm" and not args.force and not _confirm_rm(c, args):
        return 0
    if args.ccmd == "rm" and args.stop:
        req = full.ComposeAction(project=project_name(args), action="stop", services=args.services)
        rc = _converge(c, _encode(req))
        if rc:
            return rc
    req = full.ComposeAction(
        project=project_name(args),
        action=args.ccmd,
        services=list(args.services),
        timeout=getattr(args, "timeout", None),
        signal=getattr(args, "signal", ""),
    )
    return _converge(c, _encode(req))


def _confirm_rm(c: Client, args) -> bool:
    rows = [
        r for r in _containers(c, project_name(args), args.services, every=True)
        if r.state not in ("running", "paused", "restarting")
    ]  # fmt: skip
    if not rows:
        print("No stopped containers", file=sys.stderr)
        return False
    sys.stdout.write(f"Going to remove {', '.join(r.name for r in rows)}\nAre you sure? [yN] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _containers(c: Client, project: str, services: list[str], *, every: bool) -> list:
    filters = {"label": [f"{PROJECT_LABEL}={project}"]}
    rows = c.call(api.List(all=every, filters=filters)).containers
    if services:
        rows = [r for r in rows if r.labels.get(plan.SERVICE) in services]
    return sorted(rows, key=lambda r: r.name)


def cmd_ps(c: Client, args) -> int:
    rows = _containers(c, project_name(args), args.services, every=args.all)
    if args.quiet:
        for r in rows:
            print(r.id)
        return 0
    if args.services_only:
        for s in sorted({r.labels.get(plan.SERVICE, "") for r in rows}):
            print(s)
        return 0
    if args.format == "json":
        for r in rows:
            print(json.dumps(_ps_json(r)))
        return 0
    table = [["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]]
    for r in rows:
        cmd = r.command if len(r.command) <= 20 else r.command[:19] + "…"
        table.append(
            [
                r.name,
                r.image,
                f'"{cmd}"',
                r.labels.get(plan.SERVICE, ""),
                ago(r.created_nano),
                r.status,
                ", ".join(f"{h}->{p}" for p, h in sorted(r.ports.items())),
            ]
        )
    print("\n".join(columns(table)))
    return 0


def _ps_json(r) -> dict:
    return {
        "ID": r.id,
        "Name": r.name,
        "Image": r.image,
        "Command": r.command,
        "Project": r.labels.get(PROJECT_LABEL, ""),
        "Service": r.labels.get(plan.SERVICE, ""),
        "CreatedAt": r.created_nano // 10**9,
        "State": r.state,
        "Status": r.status,
        "Labels": r.labels,
        "Publishers": [{"URL": h, "TargetPort": p} for p, h in sorted(r.ports.items())],
    }


def cmd_logs(c: Client, args) -> int:
    tail = None if args.tail == "all" else int(args.tail)
    _follow_logs(
        c,
        project_name(args),
        list(args.services),
        follow=args.follow,
        tail=tail,
        timestamps=args.timestamps,
        prefix=not args.no_log_prefix,
    )
    return 0


def _follow_logs(
    c: Client,
    project: str,
    services: list[str],
    *,
    follow: bool,
    tail: int | None,
    timestamps: bool,
    prefix: bool,
) -> None:
    """Each container's log in its own connection and thread, lines prefixed
    with the container's name (Docker Compose's `NAME  | line`)."""
    rows = _containers(c, project, services, every=True)
    width = max((len(r.name) for r in rows), default=0)
    lock = threading.Lock()
    out = sys.stdout.buffer

    def pump(r) -> None:
        head = f"{r.name.ljust(width)}  | ".encode() if prefix else b""
        partial = b""
        try:
            with Client(c.path) as cc:
                req = api.Logs(id=r.id, follow=follow, tail=tail, timestamps=timestamps)
                for msg in cc.stream(req):
                    if not isinstance(msg, api.Output):
                        continue
                    data = partial + msg.data
                    *lines, partial = data.split(b"\n")
                    stamp = b""
                    if timestamps:
                        secs, frac = divmod(msg.time_nano, 10**9)
                        stamp = (
                            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z "
                        ).encode()
                    with lock:
                        for line in lines:
                            out.write(head + stamp + line + b"\n")
                        out.flush()
        except DaemonError:
            return  # removed meanwhile
        if partial:
            with lock:
                out.write(head + partial + b"\n")
                out.flush()

    threads = [threading.Thread(target=pump, args=(r,), daemon=True) for r in rows]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # a timeout, so Ctrl-C reaches the main thread


def cmd_events(c: Client, args) -> int:
    project = project_name(args)
    req = api.Events(filters={"label": [f"{PROJECT_LABEL}={project}"], "type": ["container"]})
    for msg in c.stream(req):
        if not isinstance(msg, api.Event):
            continue
        service = msg.attributes.get(plan.SERVICE, "")
        if args.services and service not in args.services:
            continue
        secs, frac = divmod(msg.time_nano, 10**9)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(secs)) + f".{frac // 1000:06d}"
        if args.json:
            print(
                json.dumps(
                    {
                        "time": stamp,
                        "type": msg.type,
                        "action": msg.action,
                        "id": msg.id,
                        "service": service,
                        "attributes": {
                            k: v
                            for k, v in msg.attributes.items()
                            if not k.startswith("com.docker.compose.")
                        },
                    }
                ),
                flush=True,
            )
            continue
        attrs = ", ".join(
            f"{k}={v}"
            for k, v in sorted(msg.attributes.items())
            if not k.startswith("com.docker.compose.") or k == plan.SERVICE
        )
        print(f"{stamp} {msg.type} {msg.action} {msg.id} ({attrs})", flush=True)
    return 0


def cmd_config(c: Client | None, args) -> int:
    loaded = _load(args, args.services)
    p = loaded.project
    if args.quiet:
        return 0
    if args.services_only:
        for s in plan.order(p):
            print(s)
        return 0
    if args.volumes:
        for v in p.volumes:
            print(v)
        return 0
    if args.profiles:
        for prof in sorted({x for s in p.services.values() for x in s.profiles}):
            print(prof)
        return 0
    sys.stdout.write(config_text(p, args.format))
    return 0


def cmd_ls(c: Client, args) -> int:
    projects = c.call(api.ComposeList(all=args.all)).projects
    if args.quiet:
        for p in projects:
            print(p.name)
        return 0
    if args.format == "json":
        print(
            json.dumps(
                [
                    {"Name": p.name, "Status": p.status, "ConfigFiles": ",".join(p.config_files)}
                    for p in projects
                ]
            )
        )
        return 0
    table = [["NAME", "STATUS", "CONFIG FILES"]]
    for p in projects:
        status = p.status + (" (converging)" if p.converging else "")
        table.append([p.name, status, ",".join(p.config_files)])
    print("\n".join(columns(table)))
    return 0


def cmd_exec(c: Client, args) -> int:
    from supervisor.client.containers import cmd_exec as exec_
    from supervisor.cmdline import Namespace

    if not args.command:
        raise UsageError('"compose exec" requires a COMMAND')
    project = project_name(args)
    rows = [
        r for r in _containers(c, project, [args.service], every=False)
        if r.labels.get(plan.NUMBER) == str(args.index)
    ]  # fmt: skip
    if not rows:
        raise UsageError(f"service {args.service!r} is not running (replica {args.index})")
    tty = not args.no_TTY and os.isatty(0) and os.isatty(1)
    ns = Namespace(
        container=rows[0].id,
        command=list(args.command),
        env=list(args.env),
        env_file=[],
        workdir=args.workdir,
        user=args.user,
        tty=tty,
        interactive=not args.detach,
        detach=args.detach,
        detach_keys="ctrl-p,ctrl-q",
    )
    return exec_(c, ns)


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "ps": cmd_ps,
    "logs": cmd_logs,
    "events": cmd_events,
    "config": cmd_config,
    "ls": cmd_ls,
    "exec": cmd_exec,
    "build": cmd_build,
    **{verb: cmd_action for verb in ("start", "stop", "restart", "pause", "unpause", "kill", "rm")},
}


def cmd_compose(c: Client | None, args) -> int:
    try:
        return COMMANDS[args.ccmd](c, args)
    except ComposeError as e:  # the file: Docker Compose's exit status 1
        print(f"corral compose: {e}", file=sys.stderr)
        return 1
