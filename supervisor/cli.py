"""`corral`: the command line.

The entry point stays thin: it imports only what the chosen command needs,
so `corral runtime run` never pays for trio or the daemon.
"""

from __future__ import annotations

import sys

USAGE = """usage: corral [-H SOCKET] COMMAND ...

Containers (through the daemon, Docker's words and flags):
  run, create, start, stop, restart, kill, rm, ps, inspect, logs, wait,
  exec, attach, cp, export, top, diff, rename, pause, unpause, update,
  stats, port, events, container

Images, networks and volumes:
  pull, push, login, logout, images, import, load, save, commit, tag, rmi,
  history, image, build, builder, network, volume

Fleets (a Compose file, kept by the daemon):
  compose (up, down, ps, logs, events, start, stop, restart, config, ls, ...)

The engine:
  info, version, system (df, prune)

Without a daemon:
  daemon    run the daemon in the foreground ('corral daemon --help')
  runtime   run OCI bundles directly (spec, run, create, start, exec, ps,
            state, kill, delete, list, pause, resume, busybox-rootfs)

Run 'corral COMMAND --help' for a command's flags."""


def _without_typing_extensions() -> None:
    """msgspec imports typing_extensions when it is installed (anyio, which the
    daemon's httpx needs, installs it) for three names Python 3.11's typing has
    too, and falls back to typing when the import fails. That import is 9 ms of a
    ~50 ms client command on the project's VM; a None in sys.modules makes it fail
    at once. Only for client and runtime commands: the daemon imports anyio."""
    sys.modules.setdefault("typing_extensions", None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `corral ... | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] in ("-v", "--version"):  # Docker's `docker -v`, no daemon asked
        from supervisor import __version__

        print(f"Corral version {__version__}")
        return 0
    if argv[0] != "daemon":
        _without_typing_extensions()
    if argv[0] == "runtime":
        from supervisor.runtime.cli import main as runtime_main

        return runtime_main(argv[1:])
    if argv[0] == "daemon":
        from supervisor.daemon.main import main as daemon_main

        return daemon_main(argv[1:])
    from supervisor.client.main import main as client_main

    return client_main(argv)


if __name__ == "__main__":
    sys.exit(main())
