"""`corral compose`'s command line: Docker Compose's global flags (-f, -p,
--project-directory, --env-file, --profile) and its commands with their flags.
The commands themselves are supervisor/compose/cli.py, imported when one runs
(it reads YAML, which `corral ps` never needs)."""

from __future__ import annotations

from supervisor import cmdline


def _services(s, what: str = "the services (default: all)") -> None:
    s.add_argument("services", nargs="*", help=what)


def _timeout(s) -> None:
    s.add_argument(
        "-t", "--timeout", type=int, default=None, help="seconds to wait for a stop before killing"
    )


def add_compose(sub) -> None:
    p = sub.add_parser("compose", help="define and run a fleet of containers from a Compose file")
    p.add_argument(
        "-f", "--file", action="append", default=[], help="a Compose file (repeat: merged in order)"
    )
    p.add_argument("-p", "--project-name", default="", help="the project's name (default: folder)")
    p.add_argument(
        "--project-directory", default="", help="where relative paths start (default: file's)"
    )
    p.add_argument(
        "--env-file", action="append", default=[], help="variables for ${VAR} (default: .env)"
    )
    p.add_argument(
        "--profile", action="append", default=[], help="enable the services of this profile"
    )
    cc = p.add_subparsers(dest="ccmd", required=True, metavar="COMMAND")

    s = cc.add_parser("up", help="create and start the project's containers")
    s.add_argument("-d", "--detach", action="store_true", help="in the background: do not follow")
    s.add_argument(
        "--scale", action="append", default=[], help="SERVICE=N replicas (overrides the file)"
    )
    s.add_argument(
        "--remove-orphans", action="store_true", help="remove containers of services not in file"
    )
    s.add_argument(
        "--force-recreate", action="store_true", help="recreate even what did not change"
    )
    s.add_argument("--no-recreate", action="store_true", help="never recreate what exists")
    s.add_argument("--no-start", action="store_true", help="create, do not start")
    s.add_argument("--build", action="store_true", help="build images before starting")
    s.add_argument("--no-build", action="store_true", help="never build a missing image")
    s.add_argument("--wait", action="store_true", help="wait until running and healthy (with -d)")
    _timeout(s)
    _services(s)

    s = cc.add_parser("down", help="stop and remove the project's containers and networks")
    s.add_argument("-v", "--volumes", action="store_true", help="remove its volumes too")
    s.add_argument(
        "--remove-orphans", action="store_true", help="also containers of services not in file"
    )
    _timeout(s)

    s = cc.add_parser("ps", help="list the project's containers")
    s.add_argument("-a", "--all", action="store_true", help="stopped ones too")
    s.add_argument("-q", "--quiet", action="store_true", help="ids only")
    s.add_argument(
        "--services", dest="services_only", action="store_true", help="the services' names only"
    )
    s.add_argument("--format", default="table", choices=("table", "json"), help="table or json")
    _services(s)

    s = cc.add_parser("logs", help="the output of the project's containers")
    s.add_argument("-f", "--follow", action="store_true", help="keep following new output")
    s.add_argument("-t", "--timestamps", action="store_true", help="show when each line came")
    s.add_argument("-n", "--tail", default="all", help="lines from the end of each log")
    s.add_argument("--no-log-prefix", action="store_true", help="without the container's name")
    s.add_argument("--no-color", action="store_true", help="plain text (the only kind here)")
    _services(s)

    s = cc.add_parser("events", help="the project's events, as they happen")
    s.add_argument("--json", action="store_true", help="one JSON object a line")
    _services(s)

    for verb, what in (
        ("start", "start the services' stopped containers"),
        ("stop", "stop the services' containers"),
        ("restart", "restart the services' containers"),
        ("pause", "pause the services' containers"),
        ("unpause", "unpause the services' containers"),
    ):
        s = cc.add_parser(verb, help=what)
        if verb in ("stop", "restart"):
            _timeout(s)
        _services(s)
    s = cc.add_parser("kill", help="signal the services' containers")
    s.add_argument("-s", "--signal", default="SIGKILL", help="the signal (default SIGKILL)")
    _services(s)
    s = cc.add_parser("rm", help="remove the services' stopped containers")
    s.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    s.add_argument("-s", "--stop", action="store_true", help="stop them first")
    _services(s)

    s = cc.add_parser("config", help="the normalized project, as the daemon receives it")
    s.add_argument(
        "--services", dest="services_only", action="store_true", help="the services' names only"
    )
    s.add_argument("--volumes", action="store_true", help="the volumes' names only")
    s.add_argument("--profiles", action="store_true", help="the profiles' names only")
    s.add_argument("-q", "--quiet", action="store_true", help="only check the file")
    s.add_argument("--format", default="yaml", choices=("yaml", "json"), help="yaml or json")
    _services(s)

    s = cc.add_parser("ls", help="the projects the daemon keeps")
    s.add_argument("-a", "--all", action="store_true", help="stopped ones too")
    s.add_argument("--format", default="table", choices=("table", "json"), help="table or json")
    s.add_argument("-q", "--quiet", action="store_true", help="names only")

    s = cc.add_parser("build", help="build the services' images (those with build:)")
    s.add_argument("--no-cache", action="store_true", help="run every step, no cache")
    _services(s)

    s = cc.add_parser("exec", help="run a command in a service's running container")
    s.add_argument("-d", "--detach", action="store_true", help="in the background")
    s.add_argument("-T", "--no-TTY", action="store_true", help="no pseudo-terminal")
    s.add_argument("-e", "--env", action="append", default=[], help="KEY=VALUE")
    s.add_argument("-u", "--user", default="", help="USER[:GROUP]")
    s.add_argument("-w", "--workdir", default="", help="working directory")
    s.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    s.add_argument("service", help="the service")
    s.add_argument("command", nargs=cmdline.REMAINDER, help="COMMAND [ARG...]")
