"""`corral`'s client commands: the arguments parsed, the command run, its
errors said as Docker says them, with Docker's exit statuses (docs/daemon.md).

The client is this package: connection.py (the socket and the protocol),
parser.py and flags.py (the command line), format.py and templates.py (the
output), a module per group of commands (containers, attach, images,
networks, volumes, system). It imports only the standard library, protocols/
and the shared pure modules (checks, units, mounts, cmdline): never trio, the
daemon or the runtime; a command's module is imported when it runs.
"""

from __future__ import annotations

import sys

from supervisor.client import containers
from supervisor.client.connection import (
    Client,
    DaemonError,
    Unreachable,
    UsageError,
    socket_path,
)
from supervisor.client.parser import parse_args


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as e:  # the parser said why; a flag it cannot take is Docker's 125
        return 125 if e.code == 2 else e.code if isinstance(e.code, int) else 0
    if args.cmd == "compose" and args.ccmd == "config":  # the file alone: no daemon needed
        try:
            return COMMANDS["compose"](None, args)
        except UsageError as e:
            print(f"corral: {e}", file=sys.stderr)
            return 1
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
    except containers.NotATty:
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


def _lazy(module: str, name: str):
    """A command whose code lives in another module, imported when it runs."""

    def run(c: Client, args) -> int:
        import importlib

        return getattr(importlib.import_module(module), name)(c, args)

    return run


COMMANDS = {
    "run": containers.cmd_run,
    "create": containers.cmd_create,
    "start": containers.cmd_start,
    "rename": containers.cmd_rename,
    "update": containers.cmd_update,
    "info": _lazy("supervisor.client.system", "cmd_info"),
    "container": _lazy("supervisor.client.system", "cmd_container"),
    "system": _lazy("supervisor.client.system", "cmd_system"),
    "cp": containers.cmd_cp,
    "export": containers.cmd_export,
    "top": containers.cmd_top,
    "diff": containers.cmd_diff,
    "attach": _lazy("supervisor.client.attach", "cmd_attach"),
    "stop": containers.cmd_stop,
    "restart": containers.cmd_restart,
    "kill": containers.cmd_kill,
    "rm": containers.cmd_rm,
    "ps": containers.cmd_ps,
    "inspect": containers.cmd_inspect,
    "logs": containers.cmd_logs,
    "wait": containers.cmd_wait,
    "exec": containers.cmd_exec,
    "pause": containers.cmd_pause,
    "unpause": containers.cmd_unpause,
    "stats": containers.cmd_stats,
    "events": _lazy("supervisor.client.system", "cmd_events"),
    "version": _lazy("supervisor.client.system", "cmd_version"),
    "port": containers.cmd_port,
    "volume": _lazy("supervisor.client.volumes", "cmd_volume"),
    "network": _lazy("supervisor.client.networks", "cmd_network"),
    "import": _lazy("supervisor.client.images", "cmd_import"),
    "pull": _lazy("supervisor.client.images", "cmd_pull"),
    "push": _lazy("supervisor.client.images", "cmd_push"),
    "login": _lazy("supervisor.client.images", "cmd_login"),
    "logout": _lazy("supervisor.client.images", "cmd_logout"),
    "load": _lazy("supervisor.client.images", "cmd_load"),
    "save": _lazy("supervisor.client.images", "cmd_save"),
    "images": _lazy("supervisor.client.images", "cmd_images"),
    "tag": _lazy("supervisor.client.images", "cmd_tag"),
    "rmi": _lazy("supervisor.client.images", "cmd_rmi"),
    "history": _lazy("supervisor.client.images", "cmd_history"),
    "commit": _lazy("supervisor.client.images", "cmd_commit"),
    "image": _lazy("supervisor.client.images", "cmd_image"),
    "compose": _lazy("supervisor.compose.cli", "cmd_compose"),
    "build": _lazy("supervisor.client.build", "cmd_build"),
    "builder": _lazy("supervisor.client.build", "cmd_builder"),
}
