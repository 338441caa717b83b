"""`corral daemon`: the supervisor, in the foreground.

State under --root (default /var/lib/corral): containers, the event journal.
Runtime state and the socket under --run-root (default /run/corral). SIGTERM
or SIGINT stops the daemon gracefully: it stops listening and exits, and the
containers keep running (their monitors are their parents); the next daemon
adopts them.
"""

from __future__ import annotations

import argparse
import fcntl
import grp
import logging
import os
import signal
import socket as stdsocket
import sys
from pathlib import Path

import structlog
import trio

from supervisor.daemon import systemd
from supervisor.daemon.restart import Backoff, parse_duration
from supervisor.daemon.systemd import DEFAULT_SCOPE
from supervisor.errors import CgroupError
from supervisor.units import (
    DEFAULT_LOG_MAX_FILES,
    DEFAULT_LOG_MAX_SIZE,
    parse_log_opts,
    parse_size,
)

log = structlog.get_logger("corral.daemon")

DEFAULT_ROOT = "/var/lib/corral"
DEFAULT_RUN_ROOT = "/run/corral"


def configure_logging(level: str) -> None:
    """Console lines on a terminal, JSON lines otherwise (for journald, files)."""
    renderer = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _size_flag(value: str) -> int:
    try:
        n = parse_size(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if n < 64 * 1024:
        raise argparse.ArgumentTypeError(f"{value!r} is below the 64k the journal needs")
    return n


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="corral daemon", description="Run the Corral daemon.")
    p.add_argument(
        "--root", default=DEFAULT_ROOT, help=f"persistent state (default {DEFAULT_ROOT})"
    )
    p.add_argument(
        "--run-root",
        default=DEFAULT_RUN_ROOT,
        help=f"runtime state and the socket (default {DEFAULT_RUN_ROOT})",
    )
    p.add_argument("--socket", help="the API socket (default RUN_ROOT/corral.sock)")
    p.add_argument(
        "--docker-socket",
        default=None,
        help="the Docker Engine API's socket (default RUN_ROOT/docker.sock; '' for none)",
    )
    p.add_argument(
        "-H",
        "--host",
        action="append",
        default=[],
        metavar="tcp://ADDRESS:PORT",
        help="the Docker API on TCP too: only with --tlsverify and its certificates",
    )
    p.add_argument("--tlsverify", action="store_true", help="verify clients' certificates")
    p.add_argument("--tlscacert", default="", help="the CA clients' certificates are signed by")
    p.add_argument("--tlscert", default="", help="the server's TLS certificate")
    p.add_argument("--tlskey", default="", help="the server's TLS key")
    p.add_argument(
        "--cgroup-manager",
        choices=("auto", "cgroupfs", "systemd"),
        default="auto",
        help="who makes the containers' cgroups: cgroupfs (the daemon, under --cgroup-parent)"
        " or systemd (a delegated scope asked for over D-Bus); auto: systemd when systemd"
        " runs the daemon as a service on a cgroup v2 host",
    )
    p.add_argument(
        "--cgroup-parent",
        default=None,
        help="the containers' parent cgroup: a path with cgroupfs (/corral), a NAME.scope with"
        f" systemd ({DEFAULT_SCOPE})",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--bridge", default="corral0", help="the default network's bridge (corral0)")
    p.add_argument(
        "--events-max-size",
        type=_size_flag,
        default="64m",
        help="the event journal's size; past it the older half is dropped (64m)",
    )
    p.add_argument(
        "--max-concurrent-downloads",
        type=int,
        default=0,
        help="layers a pull fetches at once (default: half the CPUs, 1 to 3)",
    )
    p.add_argument(
        "--log-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="containers' default log rotation, as dockerd's: max-size=20m max-file=5 "
        "(max-size=-1: none)",
    )
    p.add_argument(
        "--handshake-timeout",
        default="10s",
        help="a connection that has not said Hello by then is closed (10s)",
    )
    p.add_argument(
        "--max-buffered",
        type=_size_flag,
        default="256m",
        help="unfinished messages all connections may hold together (256m)",
    )
    p.add_argument("--restart-delay", default="100ms", help="first restart backoff (100ms)")
    p.add_argument("--restart-max-delay", default="1m", help="longest restart backoff (1m)")
    p.add_argument(
        "--restart-reset-after", default="10s", help="a run this long resets the backoff (10s)"
    )
    args = p.parse_args(argv)
    for h in args.host:
        if h.startswith("unix://"):
            if args.docker_socket is None:
                args.docker_socket = h
            continue
        if not h.startswith("tcp://"):
            p.error(f"-H {h}: tcp://ADDRESS:PORT or unix://PATH")
        if not (args.tlsverify and args.tlscacert and args.tlscert and args.tlskey):
            p.error(
                f"-H {h}: the Docker API on TCP needs --tlsverify with --tlscacert, --tlscert "
                "and --tlskey (without them it is a root shell for anyone who can reach it)"
            )
    try:
        size, files = parse_log_opts(args.log_opt)
    except ValueError as e:
        p.error(str(e))
    args.log_max_size = size or DEFAULT_LOG_MAX_SIZE
    args.log_max_files = files or (1 if size else DEFAULT_LOG_MAX_FILES)
    return args


def bind_socket(path: Path) -> trio.socket.SocketType:
    """Bind the API socket: root and the `corral` group only (0660)."""
    if path.exists():
        probe = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            raise SystemExit(f"corral daemon: another daemon answers on {path}")
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # a stale socket from a crashed daemon
        finally:
            probe.close()
    raw = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    old = os.umask(0o117)  # the socket is born 0660: no window where others can connect
    try:
        raw.bind(str(path))
    finally:
        os.umask(old)
    try:
        os.chown(path, 0, grp.getgrnam("corral").gr_gid)
    except KeyError:
        os.chmod(path, 0o600)  # no corral group: root only
    raw.listen(128)
    return trio.socket.from_stdlib_socket(raw)


async def serve(args: argparse.Namespace) -> None:
    # Here, not at the top: `corral daemon --help` (and its flags' tests) need
    # none of the daemon, nor the C core it loads.
    from supervisor.daemon.fleet import Fleet
    from supervisor.daemon.journal import Journal
    from supervisor.daemon.projects import Projects
    from supervisor.daemon.routes import ROUTES
    from supervisor.daemon.server import Connection, InputBudget, Limits, disconnected

    root, run_root = Path(args.root), Path(args.run_root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    run_root.mkdir(parents=True, exist_ok=True, mode=0o711)
    lock = open(root / "daemon.lock", "w")  # noqa: SIM115  (held for the daemon's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"corral daemon: another daemon uses {root}") from None
    journal = Journal(root / "events.journal", max_bytes=args.events_max_size)
    backoff = Backoff(
        initial=parse_duration(args.restart_delay),
        maximum=parse_duration(args.restart_max_delay),
        reset_after=parse_duration(args.restart_reset_after),
    )
    fleet = Fleet(
        root,
        run_root,
        journal,
        cgroup_parent=await _cgroup_parent(args),
        backoff=backoff,
        bridge=args.bridge,
    )
    fleet.max_downloads = args.max_concurrent_downloads
    fleet.log_limits = (args.log_max_size, args.log_max_files)
    projects = Projects(fleet, root)
    sock_path = Path(args.socket or run_root / "corral.sock")
    sock = bind_socket(sock_path)
    listener = trio.SocketListener(sock)

    limits = Limits(
        handshake_timeout=parse_duration(args.handshake_timeout),
        budget=InputBudget(args.max_buffered),
    )

    docker = await _docker_listeners(args, run_root)

    async def handle(stream: trio.SocketStream) -> None:
        conn = Connection(stream, fleet, ROUTES, limits, projects)
        try:
            await conn.serve()
        except Exception as e:  # one connection never takes the daemon down
            if not disconnected(e):
                log.exception("connection.failed", peer=conn.peer)
        finally:
            await stream.aclose()

    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(fleet.run)
                await nursery.start(projects.run)  # after the fleet: it resumes on it
                nursery.start_soon(trio.serve_listeners, handle, [listener])
                if docker:
                    from supervisor.dockerapi.context import Api
                    from supervisor.dockerapi.server import serve as serve_docker

                    await nursery.start(
                        serve_docker, Api(fleet, ROUTES, projects), docker, limits.handshake_timeout
                    )
                systemd.notify("READY=1", f"MAINPID={os.getpid()}")
                log.info(
                    "daemon.ready",
                    socket=str(sock_path),
                    root=str(root),
                    containers=len(fleet.units),
                    last_event=journal.last_seq,
                )
                async for signum in signals:
                    systemd.notify("STOPPING=1")
                    log.info("daemon.stopping", signal=signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        fleet.release_default_bridge()
        sock_path.unlink(missing_ok=True)
        if args.docker_socket != "":
            _docker_socket_path(args, run_root).unlink(missing_ok=True)
        journal.close()
        lock.close()
    log.info("daemon.stopped")


async def _cgroup_parent(args: argparse.Namespace) -> str:
    """Where the containers' cgroups go, by --cgroup-manager (systemd.py says why
    a scope): a cgroupfs path as given, or the systemd scope's cgroup."""
    manager = args.cgroup_manager
    if manager == "auto":  # a parent given as a path says cgroupfs
        by_systemd = systemd.run_by_systemd() and not (args.cgroup_parent or "").startswith("/")
        manager = "systemd" if by_systemd else "cgroupfs"
    if manager == "cgroupfs":
        return args.cgroup_parent or "/corral"
    if not systemd.booted():
        raise SystemExit(
            "corral daemon: --cgroup-manager systemd: no systemd on a cgroup v2 host here"
        )
    from supervisor import _native

    try:
        group = await trio.to_thread.run_sync(
            systemd.ensure_scope, args.cgroup_parent or DEFAULT_SCOPE, _native.INIT
        )
    except CgroupError as e:
        raise SystemExit(f"corral daemon: --cgroup-manager systemd: {e}") from None
    log.info("daemon.cgroup_manager", manager="systemd", parent=group)
    return group


def _docker_socket_path(args: argparse.Namespace, run_root: Path) -> Path:
    if args.docker_socket:
        return Path(args.docker_socket.removeprefix("unix://"))
    return run_root / "docker.sock"


async def _docker_listeners(args: argparse.Namespace, run_root: Path) -> list:
    """The Docker API's listeners: its unix socket (0660, root and the corral
    group, as docker.sock), and TCP only with TLS and client certificates."""
    out: list = []
    if args.docker_socket != "":
        out.append(trio.SocketListener(bind_socket(_docker_socket_path(args, run_root))))
    tcp = [h for h in args.host if h.startswith("tcp://")]
    if tcp:
        from supervisor.dockerapi.server import tcp_listeners, tls_context

        try:
            ctx = tls_context(args.tlscacert, args.tlscert, args.tlskey)
        except OSError as e:
            raise SystemExit(f"corral daemon: TLS: {e}") from None
        for h in tcp:
            out += await tcp_listeners(h.removeprefix("tcp://"), ctx)
    return out


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    if os.geteuid() != 0:
        print("corral daemon: must run as root", file=sys.stderr)
        return 1
    trio.run(serve, args)
    return 0
