"""The client's command line: every command's flags (supervisor/cmdline.py, a
small argparse), and the ContainerConfig that run and create build from theirs.

Only the standard library and protocols/: the client imports it first.
"""

from __future__ import annotations

from supervisor import cmdline
from supervisor.client.build_args import add_build
from supervisor.client.compose_args import add_compose
from supervisor.client.flags import (
    _boolean,
    _device_rate_bytes,
    _device_rate_ops,
    _duration,
    parse_size,
    parse_time,
)
from supervisor.cmdline import Namespace


def _resource_flags(p: cmdline.ArgumentParser) -> None:
    """The limits run/create set and update changes."""
    p.add_argument("-m", "--memory", type=parse_size, help="memory limit: 64m, 1g (0: none)")
    p.add_argument(
        "--memory-swap",
        type=lambda v: -1 if v == "-1" else parse_size(v),
        help="memory plus swap limit (-1: unlimited swap; default twice --memory)",
    )
    p.add_argument(
        "--memory-reservation", type=parse_size, help="a soft limit, kept under pressure"
    )
    p.add_argument("--cpus", type=float, help="number of CPUs: 1.5")
    p.add_argument("-c", "--cpu-shares", type=int, help="relative CPU weight (default 1024)")
    p.add_argument("--cpuset-cpus", default="", help="CPUs it may use: 0-3, 0,2")
    p.add_argument("--cpuset-mems", default="", help="memory nodes it may use: 0-1")
    p.add_argument("--pids-limit", type=int, help="most processes at once (-1: unlimited)")


def _container_flags(p: cmdline.ArgumentParser) -> None:
    p.add_argument("--name", help="a name for the container")
    p.add_argument(
        "--rootfs", help="a root filesystem directory (copy-on-write) instead of an image"
    )
    p.add_argument("--entrypoint", help="override the image's ENTRYPOINT")
    p.add_argument(
        "-e", "--env", action="append", default=[], help="KEY=VALUE, or KEY (its value here)"
    )
    p.add_argument("--env-file", action="append", default=[], help="a file of KEY=VALUE lines")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    p.add_argument("-u", "--user", default="", help="USER[:GROUP], names or ids")
    p.add_argument("-h", "--hostname", default="", help="the container's host name")
    p.add_argument("-l", "--label", action="append", default=[], help="KEY=VALUE metadata")
    _resource_flags(p)
    p.add_argument("--oom-score-adj", type=int, help="-1000 (never killed) .. 1000")
    p.add_argument("--group-add", action="append", default=[], help="another group: name or gid")
    p.add_argument("--sysctl", action="append", default=[], help="KEY=VALUE, namespaced")
    p.add_argument("--pid", default="", help="host, or container:NAME (its PID namespace)")
    p.add_argument("--ipc", default="", help="private, shareable, none, host, container:NAME")
    p.add_argument("--cidfile", help="write the container's id to this (new) file")
    p.add_argument("--label-file", action="append", default=[], help="a file of KEY=VALUE lines")
    p.add_argument(
        "--stop-signal", default="", help="signal to stop it (default: the image's, SIGTERM)"
    )
    p.add_argument(
        "--stop-timeout", type=int, default=10, help="seconds from the stop signal to SIGKILL"
    )
    p.add_argument(
        "-i", "--interactive", action="store_true", help="keep stdin open and pass it on"
    )
    p.add_argument("-t", "--tty", action="store_true", help="a pseudo-terminal")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument(
        "--network",
        default="",
        help="bridge (the default), none, host, container:NAME, or a network made with "
        "`network create`",
    )
    p.add_argument(
        "--network-alias", action="append", default=[], help="another name on its network"
    )
    p.add_argument("--ip", default="", help="its IPv4 address on a user network")
    p.add_argument("--dns", action="append", default=[], help="a DNS server for other names")
    p.add_argument("--dns-search", action="append", default=[], help="a search domain")
    p.add_argument("--dns-option", action="append", default=[], help="a resolv.conf option")
    p.add_argument(
        "-p", "--publish", action="append", default=[], help="[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp]"
    )
    p.add_argument("--expose", action="append", default=[], help="PORT[-PORT][/tcp|udp], for -P")
    p.add_argument(
        "-P", "--publish-all", action="store_true", help="exposed ports on free host ports"
    )
    p.add_argument(
        "--log-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="log rotation: max-size=10m (-1: none), max-file=3 (default: the daemon's, 20m x 5)",
    )
    p.add_argument(
        "--log-driver",
        default="json-file",
        choices=("json-file", "local", "k8s-file"),
        help="accepted for scripts: each is Corral's own rotated log, which `logs` reads",
    )
    p.add_argument("--restart", default="no", help="no, on-failure[:N], always, unless-stopped")
    p.add_argument("--restart-delay", type=_duration, help="first backoff wait (default 100ms)")
    p.add_argument("--restart-max-delay", type=_duration, help="longest wait (default 1m)")
    p.add_argument(
        "--restart-burst",
        type=int,
        default=0,
        help="this many exits within --restart-window and the policy gives up (0: never)",
    )
    p.add_argument(
        "--restart-window",
        type=_duration,
        default=10.0,
        help="the window of --restart-burst (default 10s)",
    )
    p.add_argument(
        "--restart-reset-after",
        type=_duration,
        help="a run this long resets the backoff (default 10s)",
    )
    p.add_argument("--health-cmd", help="a shell command that exits 0 when healthy")
    p.add_argument(
        "--health-interval", type=_duration, default=30.0, help="time between checks (30s)"
    )
    p.add_argument(
        "--health-timeout", type=_duration, default=30.0, help="a check's longest run (30s)"
    )
    p.add_argument(
        "--health-retries", type=int, default=3, help="failures in a row that mean unhealthy"
    )
    p.add_argument(
        "--health-start-period",
        type=_duration,
        default=0.0,
        help="failures in this first time do not count (0s)",
    )
    p.add_argument("--no-healthcheck", action="store_true", help="no check, not even the image's")
    p.add_argument(
        "--health-on-failure",
        default="none",
        choices=("none", "kill", "restart", "stop"),
        help="what to do once unhealthy (Podman's flag; default none)",
    )
    p.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        help="/host:/ctr[:ro], NAME:/ctr[:ro] or /ctr (anonymous)",
    )
    p.add_argument(
        "--mount",
        action="append",
        default=[],
        help="type=bind|volume|tmpfs,source=..,target=..[,readonly]",
    )
    p.add_argument("--tmpfs", action="append", default=[], help="/path[:size=64m,mode=1777]")
    p.add_argument("--read-only", action="store_true", help="a read-only root filesystem")
    p.add_argument("--volumes-from", action="append", default=[], help="CONTAINER[:ro|rw]")
    p.add_argument("--cap-add", action="append", default=[], help="a capability (or ALL)")
    p.add_argument("--cap-drop", action="append", default=[], help="a capability (or ALL)")
    p.add_argument(
        "--privileged",
        action="store_true",
        help="every capability and host device, no seccomp filter, nothing masked",
    )
    p.add_argument(
        "--device", action="append", default=[], help="HOST[:CONTAINER[:rwm]]: a host device"
    )
    p.add_argument(
        "--ulimit", action="append", default=[], help="NAME=SOFT[:HARD], e.g. nofile=1024:2048"
    )
    p.add_argument("--shm-size", type=parse_size, default=0, help="size of /dev/shm (64m)")
    p.add_argument(
        "--blkio-weight", type=int, default=0, help="relative block I/O weight, 10-1000 (0: none)"
    )
    for flag, what in (("bps", "bytes a second (1mb)"), ("iops", "operations a second")):
        for way in ("read", "write"):
            p.add_argument(
                f"--device-{way}-{flag}",
                action="append",
                default=[],
                type=_device_rate_bytes if flag == "bps" else _device_rate_ops,
                help=f"PATH:RATE: a block device's {way} limit, {what}",
            )
    p.add_argument("--add-host", action="append", default=[], help="NAME:IP in /etc/hosts")
    p.add_argument("--init", action="store_true", help="a small init as PID 1: reaps, forwards")
    p.add_argument(
        "--security-opt",
        action="append",
        default=[],
        help="seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false]",
    )
    p.add_argument("command", nargs=cmdline.REMAINDER, help="IMAGE [COMMAND] [ARG...]")


class _Unbuilt:
    """Stands in for the parser of a command that is not being run."""

    def add_argument(self, *a: object, **kw: object) -> None:
        return None

    def add_parser(self, *a: object, **kw: object) -> _Unbuilt:
        return self

    def add_subparsers(self, **kw: object) -> _Unbuilt:
        return self


class _OneCommand:
    """Builds only the chosen command's parser (the ~50 others would be built for
    nothing: with argparse they cost about 20 ms of a 70 ms `corral run`)."""

    def __init__(self, sub: cmdline.SubParsers, only: str | None) -> None:
        self.sub, self.only = sub, only

    def add_parser(self, name: str, **kw: object):
        if self.only is None or name == self.only:
            return self.sub.add_parser(name, **kw)
        return _Unbuilt()


def _command_name(argv: list[str]) -> str | None:
    """The command in argv, past the global -H/--socket option."""
    it = iter(argv)
    for a in it:
        if a in ("-H", "--socket"):
            next(it, None)
        elif not a.startswith("-"):
            return a
        elif not (a.startswith("--socket=") or (a.startswith("-H") and len(a) > 2)):
            return None
    return None


# Docker's management commands that name a top-level one: `container ls` is `ps`,
# `image pull` is `pull`. (container prune, image ls/rm/inspect/... are their own.)
_CONTAINER_VERBS = {"ls": "ps", "list": "ps", "ps": "ps"} | {
    v: v
    for v in [
        "attach",
        "commit",
        "cp",
        "create",
        "diff",
        "exec",
        "export",
        "inspect",
        "kill",
        "logs",
        "pause",
        "port",
        "rename",
        "restart",
        "rm",
        "run",
        "start",
        "stats",
        "stop",
        "top",
        "unpause",
        "update",
        "wait",
    ]
}
_IMAGE_VERBS = {v: v for v in ("pull", "push", "tag", "save", "load", "import", "build")}


def _unalias(argv: list[str]) -> list[str]:
    name = _command_name(argv)
    if name not in ("container", "image"):
        return argv
    i = argv.index(name)
    verbs = _CONTAINER_VERBS if name == "container" else _IMAGE_VERBS
    if i + 1 < len(argv) and argv[i + 1] in verbs:
        return [*argv[:i], verbs[argv[i + 1]], *argv[i + 2 :]]
    return argv


def parse_args(argv: list[str]) -> Namespace:
    argv = _unalias(argv)
    only = _command_name(argv)
    parser = build_parser(only)
    if only is not None and not parser.has_command:  # a typo: list every command
        parser = build_parser()
    return parser.parse_args(argv)


def _detach_keys_flag(p) -> None:
    p.add_argument(
        "--detach-keys",
        default="ctrl-p,ctrl-q",
        help="the keys that detach a -it session (Docker's notation; '' turns it off)",
    )


def _sig_proxy_flag(p) -> None:
    p.add_argument(
        "--sig-proxy",
        type=_boolean,
        default=True,
        metavar="BOOL",
        help="send the signals this client gets to the container (not with -t; default true)",
    )


def _images_flags(s) -> None:
    s.add_argument("-q", "--quiet", action="store_true", help="ids only")
    s.add_argument("--digests", action="store_true", help="a DIGEST column")
    s.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help="dangling=true, reference=, label=, before=, since=",
    )
    s.add_argument("--format", default="table", help="table, json, or a Go template")


def _history_flags(s) -> None:
    s.add_argument("-q", "--quiet", action="store_true", help="image ids only")
    s.add_argument("--no-trunc", action="store_true", help="CREATED BY in full")
    s.add_argument("image", help="NAME[:TAG] or id")


def _docker_help(engine) -> dict:
    """Docker's help layout, which only cmdline draws (argparse keeps its own)."""
    return {"docker_help": True} if engine is cmdline else {}


def build_parser(only: str | None = None, engine=cmdline) -> cmdline.ArgumentParser:
    """The whole command line, or only the parser of command `only`; `engine`
    is cmdline, or argparse itself (tests compare the two)."""
    p = engine.ArgumentParser(prog="corral", add_help=True, **_docker_help(engine))
    p.add_argument("-H", "--socket", help="daemon socket (or $CORRAL_SOCKET)")
    subparsers = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub = _OneCommand(subparsers, only)
    for name in ("run", "create"):
        s = sub.add_parser(
            name,
            add_help=False,
            help="create and run a new container" if name == "run" else "create a container",
            usage="[OPTIONS] (IMAGE | --rootfs DIR) [COMMAND] [ARG...]",
        )
        s.add_argument("--help", action="help", help="show this help and exit")
        if name == "run":
            s.add_argument(
                "-d", "--detach", action="store_true", help="run in the background; print the id"
            )
            _sig_proxy_flag(s)
            _detach_keys_flag(s)
        s.add_argument(
            "--pull",
            choices=("missing", "always", "never"),
            default="missing",
            help="pull the image before creating (default: when it is missing)",
        )
        s.add_argument("--platform", default="linux/amd64", help="the image's platform, to pull")
        _container_flags(s)
    s = sub.add_parser("attach", help="attach to a running container's output (and stdin)")
    s.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    _sig_proxy_flag(s)
    _detach_keys_flag(s)
    s.add_argument("container", help="the container: name or id")
    s = sub.add_parser("start", help="start containers")
    s.add_argument("-a", "--attach", action="store_true", help="attach its output; its exit status")
    s.add_argument("containers", nargs="+", help="containers: names or ids")
    for name in ("stop", "restart"):
        s = sub.add_parser(name, help=f"{name} containers")
        s.add_argument(
            "-t", "--time", type=int, help="seconds to wait before SIGKILL (its --stop-timeout)"
        )
        s.add_argument("-s", "--signal", default="", help="instead of its stop signal")
        s.add_argument("containers", nargs="+", help="containers: names or ids")
    s = sub.add_parser("kill", help="signal containers")
    s.add_argument("-s", "--signal", default="SIGKILL", help="the signal (SIGKILL)")
    s.add_argument("containers", nargs="+", help="containers: names or ids")
    s = sub.add_parser("rm", help="remove containers")
    s.add_argument("-f", "--force", action="store_true", help="kill a running one first")
    s.add_argument("-v", "--volumes", action="store_true", help="its anonymous volumes too")
    s.add_argument("containers", nargs="+", help="containers: names or ids")
    s = sub.add_parser("ps", help="list containers")
    s.add_argument("-a", "--all", action="store_true", help="all of them (default: running)")
    s.add_argument("-q", "--quiet", action="store_true", help="ids only")
    s.add_argument("--no-trunc", action="store_true", help="whole ids and commands")
    s.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help="status=, name=, id=, label=, exited=, ancestor=, network=, volume=, health=, "
        "before=, since=",
    )
    s.add_argument("--format", default="table", help="table, json, or a Go template")
    s.add_argument("-n", "--last", type=int, default=-1, help="the N last created (all states)")
    s.add_argument("-l", "--latest", action="store_true", help="the last created (all states)")
    s.add_argument("-s", "--size", action="store_true", help="what each wrote, and with its image")
    s = sub.add_parser("cp", help="copy files into or out of a container")
    s.add_argument("source", help="HOSTPATH or CONTAINER:PATH")
    s.add_argument("dest", help="CONTAINER:PATH or HOSTPATH: a directory to copy into, or a name")
    s = sub.add_parser("export", help="a running container's filesystem as a tar")
    s.add_argument("-o", "--output", help="a file (default: stdout)")
    s.add_argument("container", help="the container: name or id")
    ct = sub.add_parser("container", help="manage containers").add_subparsers(
        dest="ccmd", required=True
    )
    s = ct.add_parser("prune", help="remove every container that is not running")
    s.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    sy = sub.add_parser("system", help="the engine as a whole").add_subparsers(
        dest="scmd", required=True
    )
    s = sy.add_parser("df", help="disk used by images, containers and volumes")
    s.add_argument("--format", default="table", help="table or json")
    s = sy.add_parser("prune", help="stopped containers, unused images (-a) and volumes")
    s.add_argument("-a", "--all", action="store_true", help="every unused image, not only untagged")
    s.add_argument("--volumes", action="store_true", help="unused anonymous volumes too")
    s.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    s = sub.add_parser("update", help="change a container's resource limits or restart policy")
    _resource_flags(s)
    s.add_argument(
        "--restart", default="", help="new policy: no, on-failure[:N], always, unless-stopped"
    )
    s.add_argument("containers", nargs="+", help="containers: names or ids")
    s = sub.add_parser("info", help="the engine and its host")
    s.add_argument("-f", "--format", help="a Go template, e.g. '{{.CgroupVersion}}'")
    s = sub.add_parser("rename", help="a container's new name")
    s.add_argument("container", help="the container: name or id")
    s.add_argument("name", help="the new name")
    s = sub.add_parser("top", help="a container's processes")
    s.add_argument("container", help="the container: name or id")
    s = sub.add_parser("diff", help="what a container changed in its root")
    s.add_argument("container", help="the container: name or id")
    s = sub.add_parser("inspect", help="low-level information, as JSON")
    s.add_argument("-f", "--format", help="a Go template, e.g. '{{.State.Pid}}'")
    s.add_argument(
        "--type",
        choices=("container", "image", "network", "volume"),
        help="what the names are (default: the first kind that has it)",
    )
    s.add_argument("containers", nargs="+", help="containers: names or ids")
    s = sub.add_parser("logs", help="a container's output")
    s.add_argument("-f", "--follow", action="store_true", help="go on with what it writes")
    s.add_argument(
        "--since", type=parse_time, help="only what was written since: 10m, a time, a timestamp"
    )
    s.add_argument("--until", type=parse_time, help="only what was written before this time")
    s.add_argument("-n", "--tail", default="all", help="the last N lines (all)")
    s.add_argument("-t", "--timestamps", action="store_true", help="each line's time")
    s.add_argument("container", help="the container: name or id")
    s = sub.add_parser("wait", help="wait for containers to stop; print their exit codes")
    s.add_argument("containers", nargs="+", help="containers: names or ids")
    s = sub.add_parser(
        "exec",
        add_help=False,
        help="run a command in a running container",
        usage="[OPTIONS] CONTAINER COMMAND [ARG...]",
    )
    s.add_argument("--help", action="help", help="show this help and exit")
    s.add_argument("-e", "--env", action="append", default=[], help="KEY=VALUE, or KEY")
    s.add_argument("--env-file", action="append", default=[], help="a file of KEY=VALUE lines")
    s.add_argument("-w", "--workdir", default="", help="working directory (the container's)")
    s.add_argument("-u", "--user", default="", help="USER[:GROUP] (the container's)")
    s.add_argument("-i", "--interactive", action="store_true", help="pass stdin on")
    s.add_argument("-t", "--tty", action="store_true", help="a pseudo-terminal")
    s.add_argument("-d", "--detach", action="store_true", help="in the background")
    _detach_keys_flag(s)
    s.add_argument("container", help="the container: name or id")
    s.add_argument("command", nargs=cmdline.REMAINDER, help="COMMAND [ARG...]")
    for name in ("pause", "unpause"):
        s = sub.add_parser(name, help=f"{name} containers")
        s.add_argument("containers", nargs="+", help="containers: names or ids")
    s = sub.add_parser("stats", help="resource usage")
    s.add_argument("-a", "--all", action="store_true", help="all containers (default: running)")
    s.add_argument("--no-stream", action="store_true", help="one sample, then exit")
    s.add_argument(
        "--format",
        default="table",
        help="table, json, or a Go template: '{{.Name}} {{.CPUPerc}} {{.MemUsage}}'",
    )
    s.add_argument("containers", nargs="*")
    s = sub.add_parser("events", help="the event stream")
    s.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help="type=, container=, event=, label=, image=, network=, volume=",
    )
    s.add_argument("--since", help="replay from: 10m, a time, a timestamp")
    s.add_argument("--until", help="stop at: 0s (now), a time, a timestamp")
    s.add_argument(
        "--format",
        default="text",
        help="text, json (Corral's event), or a Go template over Docker's event: '{{json .}}'",
    )
    s = sub.add_parser("version", help="client and daemon versions")
    s.add_argument("-f", "--format", help="a Go template, e.g. '{{.Server.Version}}'")
    s = sub.add_parser("port", help="a container's published ports")
    s.add_argument("container", help="the container: name or id")
    s = sub.add_parser("pull", help="an image from a registry")
    s.add_argument("--platform", default="linux/amd64", help="which of a multi-platform image")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress: the name only")
    s.add_argument("--insecure", action="store_true", help="plain HTTP (always for localhost)")
    s.add_argument("ref", help="NAME[:TAG|@DIGEST]")
    s = sub.add_parser("push", help="an image to a registry")
    s.add_argument("--insecure", action="store_true", help="plain HTTP (always for localhost)")
    s.add_argument("ref", help="NAME[:TAG]")
    s = sub.add_parser("logout", help="forget a registry's credentials")
    s.add_argument("registry", help="HOST[:PORT]")
    s = sub.add_parser("login", help="credentials for a registry")
    s.add_argument("-u", "--username", required=True, help="the user name")
    s.add_argument("-p", "--password", help="the password (--password-stdin is safer)")
    s.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    s.add_argument("registry", help="HOST[:PORT]")
    s = sub.add_parser("import", help="a root filesystem tar as an image")
    s.add_argument("file", help="a tar of a root filesystem")
    s.add_argument("ref", nargs="?", default="", help="NAME[:TAG] for it")
    s = sub.add_parser("load", help="images from a docker-save archive or an OCI layout")
    s.add_argument("-i", "--input", help="a file or OCI layout (default: the archive on stdin)")
    s = sub.add_parser("save", help="an image as a docker-save archive")
    s.add_argument("-o", "--output", help="a file (default: stdout)")
    s.add_argument("image", help="NAME[:TAG] or id")
    _images_flags(sub.add_parser("images", help="list images"))
    s = sub.add_parser("tag", help="another name for an image")
    s.add_argument("source", help="an image: NAME[:TAG] or id")
    s.add_argument("target", help="its new NAME[:TAG]")
    s = sub.add_parser("rmi", help="remove images")
    s.add_argument("-f", "--force", action="store_true", help="its tags even while it is used")
    s.add_argument("images", nargs="+", help="NAME[:TAG] or ids")
    s = sub.add_parser("history", help="an image's history")
    _history_flags(s)
    s = sub.add_parser("commit", help="a new image from a container's changes")
    s.add_argument("-m", "--message", default="", help="a commit message")
    s.add_argument(
        "-c", "--change", action="append", default=[], help="a Dockerfile instruction: 'CMD [..]'"
    )
    s.add_argument("-a", "--author", default="", help="the image's author")
    s.add_argument(
        "-p",
        "--pause",
        type=_boolean,
        default=True,
        metavar="BOOL",
        help="pause it while its files are read (true)",
    )
    s.add_argument("container", help="the container: name or id")
    s.add_argument("ref", nargs="?", default="", help="NAME[:TAG] for the image")
    im = sub.add_parser("image", help="manage images").add_subparsers(dest="icmd", required=True)
    s = im.add_parser("inspect", help="image details, as JSON")
    s.add_argument("-f", "--format", help="a Go template, e.g. '{{.Config.Cmd}}'")
    s.add_argument("images", nargs="+", help="NAME[:TAG] or ids")
    _images_flags(im.add_parser("ls", help="list images"))
    s = im.add_parser("rm", help="remove images")
    s.add_argument("-f", "--force", action="store_true", help="its tags even while it is used")
    s.add_argument("images", nargs="+", help="NAME[:TAG] or ids")
    s = im.add_parser("prune", help="remove unused images")
    s.add_argument("-a", "--all", action="store_true", help="every unused one, not only untagged")
    s.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    _history_flags(im.add_parser("history", help="an image's history"))
    nw = sub.add_parser("network", help="manage networks").add_subparsers(
        dest="ncmd", required=True
    )
    s = nw.add_parser("create", help="a bridge network")
    s.add_argument(
        "-d", "--driver", default="bridge", choices=("bridge",), help="bridge (the only one)"
    )
    s.add_argument("--subnet", default="", help="its IPv4 subnet, CIDR (default: a free /24)")
    s.add_argument("--gateway", default="", help="the bridge's address (default: the first)")
    s.add_argument("--label", action="append", default=[], help="KEY=VALUE metadata")
    s.add_argument("name", help="the network's name")
    s = nw.add_parser("ls", help="list networks")
    s.add_argument("-q", "--quiet", action="store_true", help="ids only")
    s.add_argument("--no-trunc", action="store_true", help="whole ids")
    s.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help="name=, id=, label=, driver=, type=custom|builtin, dangling=true",
    )
    s.add_argument("--format", help="a Go template: {{.ID}} {{.Name}} {{.Driver}} {{.Subnet}}")
    s = nw.add_parser("inspect", help="network details, as JSON")
    s.add_argument("-f", "--format", help="a Go template, e.g. '{{.IPAM.Config}}'")
    s.add_argument("names", nargs="+", help="names or ids")
    s = nw.add_parser("rm", help="remove networks")
    s.add_argument("names", nargs="+", help="names or ids")
    s = nw.add_parser("prune", help="remove every network no container uses")
    s.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    for verb in ("connect", "disconnect"):
        s = nw.add_parser(verb, help=f"{verb} a container (as ethN; eth0 stays)")
        if verb == "connect":
            s.add_argument("--ip", default="", help="its address on that network")
            s.add_argument("--alias", action="append", default=[], help="a name there")
        s.add_argument("network")
        s.add_argument("container", help="the container: name or id")
    v = sub.add_parser("volume", help="manage volumes").add_subparsers(dest="vcmd", required=True)
    s = v.add_parser("create", help="create a volume")
    s.add_argument("--label", action="append", default=[], help="KEY=VALUE metadata")
    s.add_argument("name", nargs="?", default="", help="its name (default: a random one)")
    s = v.add_parser("ls", help="list volumes")
    s.add_argument("-q", "--quiet", action="store_true", help="names only")
    s.add_argument(
        "-f", "--filter", action="append", default=[], help="name=, label=, dangling=, driver="
    )
    s.add_argument("--format", choices=("table", "json"), default="table", help="table or json")
    s = v.add_parser("inspect", help="volume details, as JSON")
    s.add_argument("-f", "--format", help="a Go template, e.g. '{{.Mountpoint}}'")
    s.add_argument("names", nargs="+", help="volume names")
    s = v.add_parser("rm", help="remove volumes")
    s.add_argument("-f", "--force", action="store_true", help="even while containers use them")
    s.add_argument("names", nargs="+", help="volume names")
    s = v.add_parser("prune", help="remove unused anonymous volumes (-a: named too)")
    s.add_argument("-a", "--all", action="store_true", help="named ones too")
    s.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    add_compose(sub)
    add_build(sub)
    p.has_command = bool(subparsers.choices)  # type: ignore[attr-defined]
    return p
