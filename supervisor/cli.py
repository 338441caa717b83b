"""`corral`: the command line.

The entry point stays thin: it imports only what the chosen command needs,
so `corral runtime run` never pays for trio or the daemon.
"""

from __future__ import annotations

import sys

USAGE = """usage: corral COMMAND ...

Commands:
  runtime   run OCI bundles directly (spec, run, create, start, state, kill,
            delete, list, pause, resume, busybox-rootfs)

Run 'corral runtime --help' for details."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] == "runtime":
        from supervisor.runtime.cli import main as runtime_main

        return runtime_main(argv[1:])
    print(f"corral: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
    return 125


if __name__ == "__main__":
    sys.exit(main())
