"""`corral runtime ...`: the OCI runtime commands, in the shape of runc's.

Imports only the runtime (never trio or the daemon): it starts in
milliseconds, which the benchmarks measure.
"""

from __future__ import annotations

import _signal as signal  # not signal.py, whose enums of every signal cost ~2 ms
import os
import sys

from protocols import lite
from supervisor import cmdline as argparse  # argparse's API, not its ~3 ms of imports
from supervisor.errors import CorralError, SetupError, SpecError
from supervisor.runtime import spec as specs
from supervisor.runtime.container import DEFAULT_ROOT, Runtime
from supervisor.runtime.processes import wait_child as _wait_child
from supervisor.runtime.signals import parse_signal

# Signals a foreground `run` passes on to the container (through its monitor).
_FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def _signal_arg(value: str) -> int:
    try:
        return parse_signal(value)
    except SpecError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corral runtime", description="Run OCI bundles.")
    p.add_argument(
        "--root",
        default=os.environ.get("CORRAL_RUNTIME_ROOT", DEFAULT_ROOT),
        help=f"state directory (default {DEFAULT_ROOT})",
    )
    p.add_argument(
        "--cgroup-parent",
        default="/corral",
        help="cgroup for containers whose config names none (default /corral)",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("spec", help="write a default config.json")
    s.add_argument("-b", "--bundle", default=".")
    s.add_argument("--force", action="store_true", help="overwrite an existing config.json")
    s.add_argument("--no-terminal", action="store_true", help="do not ask for a terminal")
    s.add_argument("command", nargs=argparse.REMAINDER, help="the process to run (default: sh)")

    for name, help in (
        ("run", "create and start a container"),
        ("create", "create a container, to be started with `start`"),
    ):
        s = sub.add_parser(name, help=help)
        s.add_argument("-b", "--bundle", default=".")
        s.add_argument("id")
        if name == "run":
            s.add_argument("-d", "--detach", action="store_true")
            s.add_argument("--keep", action="store_true", help="do not delete after exit")

    for name, help in (
        ("start", "start a created container"),
        ("state", "print a container's state as JSON"),
        ("pause", "freeze a container's processes"),
        ("resume", "thaw a paused container"),
    ):
        sub.add_parser(name, help=help).add_argument("id")

    s = sub.add_parser("exec", help="run a process in a running container")
    s.add_argument("-t", "--tty", action="store_true", help="a terminal for it")
    s.add_argument("--cwd", default="", help="its working directory (default the config's)")
    s.add_argument("-e", "--env", action="append", default=[], help="NAME=VALUE, more or over")
    s.add_argument("-u", "--user", default="", help="UID[:GID] (default the config's)")
    s.add_argument("id")
    s.add_argument("command", nargs=argparse.REMAINDER, help="the process and its arguments")

    s = sub.add_parser("ps", help="the processes in a container, as runc ps")
    s.add_argument("-f", "--format", choices=("table", "json"), default="table")
    s.add_argument("id")

    s = sub.add_parser("kill", help="signal a container's init process")
    s.add_argument("id")
    s.add_argument("signal", nargs="?", default="SIGTERM", type=_signal_arg)

    s = sub.add_parser("delete", help="delete a stopped container")
    s.add_argument("-f", "--force", action="store_true", help="kill it first if running")
    s.add_argument("id")

    s = sub.add_parser("list", help="list containers")
    s.add_argument("-q", "--quiet", action="store_true", help="ids only")
    s.add_argument("-f", "--format", choices=("table", "json"), default="table")

    s = sub.add_parser("busybox-rootfs", help="build a busybox root filesystem (no network)")
    s.add_argument("dir")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    rt = Runtime(args.root, cgroup_parent=args.cgroup_parent)
    try:
        return _dispatch(rt, args)
    except SetupError as e:
        print(f"corral: {e}", file=sys.stderr)
        return e.exit_code
    except CorralError as e:
        print(f"corral: {e}", file=sys.stderr)
        return 125 if args.cmd == "run" else 1


def _dispatch(rt: Runtime, args: argparse.Namespace) -> int:
    cmd = args.cmd
    if cmd == "spec":
        import msgspec  # the config is written from protocols/oci.py's Structs

        from protocols import oci

        path = os.path.join(args.bundle, "config.json")
        if os.path.exists(path) and not args.force:
            raise CorralError(f"{path} already exists (use --force to overwrite)")
        spec = specs.default_spec(args.command or None, terminal=not args.no_terminal)
        data = msgspec.json.format(oci.encode(spec), indent=2)
        with open(path, "wb") as f:
            f.write(data + b"\n")
        return 0
    if cmd == "run":
        if args.detach:
            rt.create(args.id, args.bundle, stdio=None, detach=True, wait_for_start=False).close()
            return 0
        return _run_foreground(rt, args)
    if cmd == "create":
        rt.create(args.id, args.bundle, stdio=None, detach=True).close()
        return 0
    if cmd == "exec":
        return _exec(rt, args)
    if cmd == "ps":
        print_ps(rt, args.id, args.format)
        return 0
    if cmd == "start":
        rt.start(args.id)
    elif cmd == "state":
        print(_json(rt.state(args.id), indent=2))
    elif cmd == "kill":
        rt.kill(args.id, args.signal)
    elif cmd == "pause":
        rt.pause(args.id)
    elif cmd == "resume":
        rt.resume(args.id)
    elif cmd == "delete":
        rt.delete(args.id, force=args.force)
    elif cmd == "list":
        unreadable: list[CorralError] = []
        states = rt.list(unreadable)
        for e in unreadable:
            print(f"corral: warning: {e}", file=sys.stderr)
        print_list(states, args.quiet, args.format)
    elif cmd == "busybox-rootfs":
        from supervisor.runtime.rootfs import make_busybox_rootfs

        make_busybox_rootfs(args.dir)
    return 0


def print_ps(rt: Runtime, id: str, fmt: str) -> None:
    """runc ps: the container's pids (json), or a table with their commands."""
    pids = sorted(rt.pids(id))
    if fmt == "json":
        print(_json(pids))
        return
    print(f"{'PID':>8}  CMD")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().rstrip(b"\0").split(b"\0")
        except OSError:  # gone meanwhile
            continue
        print(f"{pid:>8}  {b' '.join(argv).decode(errors='replace')}")


def print_list(states: list, quiet: bool, fmt: str) -> None:
    """runc list: ids (-q), JSON states, or a table."""
    if quiet:
        for s in states:
            print(s.id)
    elif fmt == "json":
        print(_json(states))
    else:
        print(f"{'ID':<24} {'PID':>8} {'STATUS':<10} BUNDLE")
        for s in states:
            print(f"{s.id:<24} {s.pid or 0:>8} {s.status:<10} {s.bundle}")


def _json(obj: object, indent: int | None = None) -> str:
    import json

    compact = (",", ":") if indent is None else None  # as msgspec.json wrote it
    return json.dumps(lite.to_builtins(obj), indent=indent, separators=compact)


class _Forwarder:
    """The signals this CLI gets, passed on to a monitor (which passes them to
    its process). Installed before the monitor exists: a signal that arrives
    meanwhile is held and passed on once there is one."""

    def __init__(self) -> None:
        self.pidfd = -1
        self.pending: list[int] = []
        self.previous: dict[int, object] = {}

    def __enter__(self) -> _Forwarder:
        self.previous = {s: signal.signal(s, self._handle) for s in _FORWARDED}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)

    def to(self, pidfd: int) -> None:
        self.pidfd = pidfd
        for s in self.pending:
            self._handle(s, None)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.pidfd < 0:
            self.pending.append(signum)
            return
        try:
            signal.pidfd_send_signal(self.pidfd, signum)
        except ProcessLookupError:
            pass


def _run_foreground(rt: Runtime, args: argparse.Namespace) -> int:
    created = None
    with _Forwarder() as fwd:
        try:
            created = rt.create(
                args.id,
                args.bundle,
                stdio=(0, 1, 2),
                detach=False,
                wait_for_start=False,
                no_pivot=getattr(args, "no_pivot", False),  # corral-runc run's flags
                preserve_fds=getattr(args, "preserve_fds", 0),
            )
            fwd.to(created.monitor_pidfd)
            code = _wait_child(created.monitor_pidfd)
        except BaseException:
            if created is not None:
                created.close()
                rt.delete(args.id, force=True)
            raise
    if not args.keep:
        rt.remove_reaped(created)
    created.close()
    return code


def _exec(rt: Runtime, args: argparse.Namespace) -> int:
    """`runc exec`: the process the container's config.json runs, with its
    capabilities, rlimits and no_new_privs, for another command (and what the
    flags change); stdio passed through; exits with its status."""
    if not args.command:
        raise SpecError("command", "exec needs the program to run")
    return exec_foreground(rt, args.id, _exec_process(rt, args))


def exec_foreground(rt: Runtime, id: str, process: object, preserve_fds: int = 0) -> int:
    """An exec with our stdio, our signals passed on; its exit status."""
    with _Forwarder() as fwd:
        _pid, pidfd, _child = rt.exec(id, process, (0, 1, 2), preserve_fds=preserve_fds)
        try:
            fwd.to(pidfd)
            return _wait_child(pidfd)
        finally:
            os.close(pidfd)


def _exec_process(rt: Runtime, args: argparse.Namespace) -> object:
    base = specs.load(rt.record(args.id).bundle).process
    assert base is not None  # load() refuses a config without one
    env = {e.partition("=")[0]: e for e in base.env or []}
    for e in args.env:
        if "=" not in e:
            raise SpecError("--env", f"{e!r} is not NAME=VALUE")
        env[e.partition("=")[0]] = e
    user = base.user
    if args.user:
        uid, _, gid = args.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise SpecError("--user", f"{args.user!r} is not UID[:GID] (numbers)")
        user = lite.replace(user, uid=int(uid), gid=int(gid or uid), additional_gids=None)
    return lite.replace(
        base,
        args=list(args.command),
        cwd=args.cwd or base.cwd,
        env=list(env.values()),
        user=user,
        terminal=args.tty,
    )
