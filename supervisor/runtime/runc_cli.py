"""`corral-runc`: Corral's runtime behind runc's command line, for engines that
drive an OCI runtime by runc's flags (containerd's shim, dockerd's
--add-runtime, CRI-O).

What differs from `corral runtime`: runc's model of who is the container's
parent. containerd's shim is a subreaper that reaps the container itself and
reads its status; so `create`, `run -d` and `exec -d` hand the container over
(the monitor exits once it is created, plan.Paths.handoff) instead of keeping
a monitor as its parent; its stdio are the caller's (FIFOs or pipes the shim
passes), or a pty whose master goes to --console-socket. Errors go to stderr
and, with --log, to that file as runc writes them (JSON lines with
--log-format json: the shim reads the last one as the create's error).
"""

from __future__ import annotations

import os
import sys
import time

from supervisor import cmdline as argparse
from supervisor.errors import CorralError, SetupError, SpecError

TYPE_CHECKING = False  # typing's own import is ~6 ms of a runc call
if TYPE_CHECKING:
    from supervisor.runtime.container import Runtime

# The shim runs the runtime four times per container (create, start, delete,
# delete --force): each verb imports only what it needs, and the last of them
# (for a container already gone) nothing but this module.

DEFAULT_ROOT = "/run/corral-runc"
VERSION = "1.1.0"  # the runc command line this follows


class Log:
    """runc's --log and --log-format: where errors (and --debug lines) go."""

    def __init__(self, path: str, fmt: str, debug: bool) -> None:
        self.path, self.fmt, self.debug = path, fmt, debug

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            import json

            line = json.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f'time="{now}" level={level} msg="{msg}"'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def error(self, msg: str) -> None:
        self.write("error", msg)
        print(f"corral-runc: {msg}", file=sys.stderr)


def _signal(value: str) -> int:
    from supervisor.runtime.cli import _signal_arg

    return _signal_arg(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corral-runc", description="Corral's runtime, as runc.")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"state directory ({DEFAULT_ROOT})")
    p.add_argument("--log", default="", help="errors (and --debug lines) to this file")
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="cgroups through systemd")
    p.add_argument("--criu", default="criu", help="the criu binary (checkpoint, restore)")
    p.add_argument("--rootless", default="auto", help="accepted: Corral runs as root only")
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    def creating(s) -> None:
        s.add_argument("-b", "--bundle", default=".")
        s.add_argument("--pid-file", default="")
        s.add_argument("--console-socket", default="")
        s.add_argument("--no-pivot", action="store_true")
        s.add_argument("--no-new-keyring", action="store_true")
        s.add_argument("--preserve-fds", type=int, default=0)
        s.add_argument("id")

    creating(sub.add_parser("create", help="create a container"))
    s = sub.add_parser("run", help="create and start a container")
    creating(s)
    s.add_argument("-d", "--detach", action="store_true")
    s.add_argument("--keep", action="store_true")
    for name in ("start", "pause", "resume", "state"):
        sub.add_parser(name).add_argument("id")
    s = sub.add_parser("kill", help="signal a container's init (--all: every process)")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("id")
    s.add_argument("signal", nargs="?", default="SIGTERM", type=_signal)
    s = sub.add_parser("delete", help="delete a stopped container")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("id")
    s = sub.add_parser("exec", help="run a process in a container")
    s.add_argument("-p", "--process", default="", help="the process, as config.json's")
    s.add_argument("-d", "--detach", action="store_true")
    s.add_argument("--pid-file", default="")
    s.add_argument("--console-socket", default="")
    s.add_argument("-t", "--tty", action="store_true")
    s.add_argument("--cwd", default="")
    s.add_argument("-e", "--env", action="append", default=[])
    s.add_argument("-u", "--user", default="")
    s.add_argument("--preserve-fds", type=int, default=0)
    s.add_argument("id")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("ps", help="a container's processes")
    s.add_argument("-f", "--format", choices=("table", "json"), default="table")
    s.add_argument("id")
    s = sub.add_parser("list", help="the containers")
    s.add_argument("-f", "--format", choices=("table", "json"), default="table")
    s.add_argument("-q", "--quiet", action="store_true")
    s = sub.add_parser("update", help="a container's resource limits")
    s.add_argument("-r", "--resources", default="", help="a LinuxResources JSON file, - stdin")
    s.add_argument("--memory", default="")
    s.add_argument("--memory-swap", default="")
    s.add_argument("--cpu-shares", default="")
    s.add_argument("--cpu-quota", default="")
    s.add_argument("--cpu-period", default="")
    s.add_argument("--cpuset-cpus", default="")
    s.add_argument("--cpuset-mems", default="")
    s.add_argument("--pids-limit", default="")
    s.add_argument("id")
    s = sub.add_parser("events", help="a container's stats")
    s.add_argument("--stats", action="store_true", help="one stats event, then exit")
    s.add_argument("--interval", default="5s")
    s.add_argument("id")
    sub.add_parser("features", help="what this runtime supports, as JSON")
    s = sub.add_parser("spec", help="write a default config.json")
    s.add_argument("-b", "--bundle", default=".")
    s.add_argument("--rootless", action="store_true")
    for name in ("checkpoint", "restore"):
        s = sub.add_parser(name)
        s.add_argument("--image-path", default="")
        s.add_argument("-b", "--bundle", default=".")
        s.add_argument("id")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    log = Log(args.log, args.log_format, args.debug)
    if args.version:
        print(f"runc version {VERSION} (corral-runc)\nspec: 1.1.0")
        return 0
    if not args.cmd:
        log.error("a command is required (create, start, state, kill, delete, ...)")
        return 1
    try:
        if args.systemd_cgroup and args.cmd in ("create", "run"):
            from supervisor.runtime.cgroups.scopes import booted

            if not booted():
                raise CorralError(
                    "--systemd-cgroup: systemd is not running here on a cgroup v2 host "
                    "(no /run/systemd/system, or a v1 hierarchy): use cgroupfs paths"
                )
        if (
            args.cmd == "delete"
            and args.force
            and not os.path.isdir(os.path.join(args.root, args.id))
        ):
            return 0  # runc's delete --force of a container that is gone
        from supervisor.runtime.container import Runtime

        rt = Runtime(args.root)
        return _dispatch(rt, args) or 0
    except SetupError as e:
        log.error(str(e))
        return e.exit_code if args.cmd == "run" else 1
    except CorralError as e:
        log.error(str(e))
        return 1


def _write_pid(path: str, pid: int) -> None:
    """--pid-file, written whole (a reader never sees a half-written number)."""
    if not path:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _preserve_fds(n: int) -> int:
    """--preserve-fds N: our descriptors 3..N+2, each checked open."""
    if n < 0:
        raise SpecError("--preserve-fds", f"{n} is not a count")
    for fd in range(3, 3 + n):
        try:
            os.fstat(fd)
        except OSError:
            raise SpecError("--preserve-fds", f"descriptor {fd} is not open") from None
    return n


def _dispatch(rt: Runtime, args) -> int | None:
    cmd = args.cmd
    if cmd in ("create", "run"):
        from supervisor.runtime import spec as specs
        from supervisor.runtime.cli import _run_foreground

        preserve = _preserve_fds(args.preserve_fds)
        spec = specs.load(args.bundle)
        terminal = spec.process is not None and spec.process.terminal
        if cmd == "run" and not args.detach:
            if args.console_socket:
                raise SpecError("--console-socket", "only with create, or run --detach")
            if args.systemd_cgroup:
                raise SpecError("--systemd-cgroup", "only with create, or run --detach")
            return _run_foreground(rt, args)
        if terminal and not args.console_socket:
            raise SpecError(
                "process.terminal",
                "a detached container with a terminal needs --console-socket (for its pty)",
            )
        scope = None
        if args.systemd_cgroup:
            spec, scope = _systemd_scope(spec, args.id)
        try:
            created = rt.create(
                args.id, args.bundle, stdio=(0, 1, 2), detach=True, spec=spec,
                wait_for_start=cmd == "create", handoff=args.console_socket,
                no_pivot=args.no_pivot, preserve_fds=preserve,
            )  # fmt: skip
        finally:
            if scope is not None:  # in or failed, the holder goes: the scope lives by the container
                from supervisor.runtime.cgroups.scopes import release

                release(*scope)
        created.close()
        _write_pid(args.pid_file, created.record.pid)
        return 0
    if cmd == "start":
        rt.start(args.id)
    elif cmd == "state":
        _state(rt, args.id)
    elif cmd == "kill":
        _kill(rt, args)
    elif cmd == "delete":
        rt.delete(args.id, force=args.force)
    elif cmd == "pause":
        rt.pause(args.id)
    elif cmd == "resume":
        rt.resume(args.id)
    elif cmd == "exec":
        return _exec(rt, args)
    elif cmd == "ps":
        from supervisor.runtime.cli import print_ps

        print_ps(rt, args.id, args.format)
    elif cmd == "list":
        from supervisor.runtime.cli import print_list

        print_list(rt.list(), args.quiet, args.format)
    elif cmd == "update":
        _update(rt, args)
    elif cmd == "events":
        return _events(rt, args)
    elif cmd == "features":
        from supervisor.runtime.features import features

        print(_json_out(features(), indent=2))
    elif cmd == "spec":
        _spec(args)
    elif cmd in ("checkpoint", "restore"):
        _criu(args)
    return 0


def _systemd_scope(spec, id: str):
    """--systemd-cgroup, as runc's: cgroupsPath "SLICE:PREFIX:NAME" is the
    transient scope PREFIX-NAME.scope in SLICE, made over D-Bus (Delegate=yes);
    the container goes in its `container` leaf (crun's layout), where its
    limits are Corral's to write and systemd's never. Returns the spec with
    that cgroup path, and (scope cgroup, holder pid) for release()."""
    from protocols import lite
    from supervisor import _native
    from supervisor.runtime.cgroups import scopes

    path = (spec.linux.cgroups_path if spec.linux else None) or f"system.slice:corral-runc:{id}"
    slice_, unit = scopes.parse_runc_path(path)
    group, holder = scopes.start_scope(unit, slice_, _native.INIT)
    linux = lite.replace(spec.linux, cgroups_path=f"{group}/{scopes.CONTAINER}")
    return lite.replace(spec, linux=linux), (group, holder)


def _json_out(obj: object, indent: int | None = None) -> str:
    from supervisor.runtime.cli import _json

    return _json(obj, indent)


def _state(rt: Runtime, id: str) -> None:
    """runc's state JSON (containerd's shim reads status and pid)."""
    rec = rt.record(id)
    st = rt.state(id)
    print(
        _json_out(
            {
                "ociVersion": st.oci_version,
                "id": id,
                "pid": st.pid,
                "status": st.status,
                "bundle": rec.bundle,
                "rootfs": rec.rootfs,
                "created": _rfc3339(rec.created_at),
                "owner": "",
                **({"annotations": rec.annotations} if rec.annotations else {}),
            },
            indent=2,
        )
    )


def _rfc3339(nano: int) -> str:
    secs, frac = divmod(nano, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def _kill(rt: Runtime, args) -> None:
    if not args.all:
        rt.kill(args.id, args.signal)
        return
    for pid in rt.pids(args.id):
        try:
            os.kill(pid, args.signal)
        except ProcessLookupError:
            pass


def _exec(rt: Runtime, args) -> int:
    from supervisor.runtime.cli import _exec_process, exec_foreground

    preserve = _preserve_fds(args.preserve_fds)
    if args.process:
        process = _process_file(args.process)
    else:
        if not args.command:
            raise SpecError("command", "exec needs a command, or --process FILE")
        process = _exec_process(rt, args)
    if not args.detach:
        return exec_foreground(rt, args.id, process, preserve)
    if process.terminal and not args.console_socket:
        raise SpecError(
            "process.terminal", "a detached exec with a terminal needs --console-socket"
        )
    _mon, pidfd, child = rt.exec(
        args.id, process, (0, 1, 2), handoff=args.console_socket, preserve_fds=preserve
    )
    os.close(pidfd)
    _write_pid(args.pid_file, child)
    return 0


def _process_file(path: str):
    """exec --process: a Process as config.json's (the shim writes one)."""
    from protocols import lite
    from protocols.lite import minijson
    from protocols.lite import oci as oci_lite
    from supervisor.runtime import spec as specs

    try:
        with open(path, "rb") as f:
            data = minijson.loads(f.read())
        process = lite.from_json(oci_lite.Process, data)
    except OSError as e:
        raise SpecError("--process", f"{path}: {e.strerror}") from None
    except (lite.ValidationError, minijson.JSONError) as e:
        raise SpecError("--process", f"{path}: {e}") from None
    specs.validate_process(process)
    return process


def _update(rt: Runtime, args) -> None:
    """update --resources FILE|- (a LinuxResources JSON), or the per-limit flags."""
    from protocols import lite
    from protocols.lite import minijson
    from protocols.lite import oci as oci_lite
    from supervisor.runtime import plan
    from supervisor.runtime import spec as specs

    if args.resources:
        try:
            if args.resources == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(args.resources, "rb") as f:
                    data = f.read()
            obj = minijson.loads(data)
        except OSError as e:
            raise SpecError("--resources", f"{args.resources}: {e.strerror}") from None
        except minijson.JSONError as e:
            raise SpecError("--resources", f"not valid JSON: {e}") from None
    else:
        memory: dict = {}
        cpu: dict = {}
        pids: dict = {}
        for flag, into, key in (
            ("memory", memory, "limit"), ("memory_swap", memory, "swap"),
            ("cpu_shares", cpu, "shares"), ("cpu_quota", cpu, "quota"),
            ("cpu_period", cpu, "period"), ("pids_limit", pids, "limit"),
        ):  # fmt: skip
            value = getattr(args, flag)
            if value:
                from supervisor.units import parse_size

                into[key] = parse_size(value) if flag.startswith("memory") else int(value)
        for flag, key in (("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
            if getattr(args, flag):
                cpu[key] = getattr(args, flag)
        obj = {k: v for k, v in (("memory", memory), ("cpu", cpu), ("pids", pids)) if v}
        if not obj:
            raise SpecError("update", "nothing to update: --resources FILE or a limit flag")
    specs.refuse_unapplied_resources(obj, "--resources")
    try:
        res = lite.from_json(oci_lite.Resources, obj)
    except lite.ValidationError as e:
        raise SpecError("--resources", str(e)) from None
    rt.update(args.id, plan.limits_from_spec(res))


def _events(rt: Runtime, args) -> int:
    """runc's events: {"type": "stats", "id", "data": {...}} lines (--stats: one)."""
    from supervisor.units import go_duration

    interval = go_duration(args.interval) or 5.0
    while True:
        s = rt.stats(args.id)
        data = {
            "cpu": {"usage": {"total": s.cpu_usage_ns}},
            "memory": {"usage": {"usage": s.memory_usage, "limit": s.memory_limit or 0}},
            "pids": {"current": s.pids},
            "blkio": {
                "ioServiceBytesRecursive": [
                    {"op": "Read", "value": s.block_read},
                    {"op": "Write", "value": s.block_written},
                ]
            },
        }
        print(_json_out({"type": "stats", "id": args.id, "data": data}), flush=True)
        if args.stats:
            return 0
        time.sleep(interval)


def _spec(args) -> None:
    import msgspec

    from protocols import oci
    from supervisor.runtime import spec as specs

    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path):
        raise CorralError(f"File {path} exists. Remove it first or use a different directory")
    if args.rootless:
        raise SpecError("--rootless", "Corral runs containers as root only")
    data = msgspec.json.format(oci.encode(specs.default_spec(None, terminal=True)), indent=2)
    with open(path, "wb") as f:
        f.write(data + b"\n")


def _criu(args) -> None:
    """checkpoint/restore need CRIU; where `criu check` fails, that is why."""
    import shutil
    import subprocess

    criu = shutil.which(args.criu) if "/" not in args.criu else args.criu
    if not criu:
        raise CorralError(f"{args.cmd}: criu is not installed ({args.criu} not found)")
    p = subprocess.run([criu, "check"], capture_output=True, text=True)
    if p.returncode != 0:
        why = (p.stderr or p.stdout).strip().splitlines()
        raise CorralError(
            f"{args.cmd}: CRIU cannot run on this host (`criu check`: "
            f"{why[-1] if why else 'failed'})"
        )
    raise CorralError(f"{args.cmd}: not supported by corral-runc yet (CRIU works here)")


if __name__ == "__main__":
    sys.exit(main())
