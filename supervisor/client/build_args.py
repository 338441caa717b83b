"""`corral build` and `corral builder`'s command lines (Docker's flags); the
commands are supervisor/client/build.py."""

from __future__ import annotations


def add_build(sub) -> None:
    s = sub.add_parser("build", help="build an image from a Dockerfile", usage="[OPTIONS] PATH")
    s.add_argument("-t", "--tag", action="append", default=[], help="NAME[:TAG] (repeatable)")
    s.add_argument("-f", "--file", default="", help="the Dockerfile (default: PATH/Dockerfile)")
    s.add_argument(
        "--build-arg", action="append", default=[], help="KEY=VALUE for an ARG (repeatable)"
    )
    s.add_argument("--target", default="", help="the stage to build (default: the last)")
    s.add_argument("--no-cache", action="store_true", help="run every step, no cache")
    s.add_argument("--pull", action="store_true", help="pull FROM images even when present")
    s.add_argument("--label", action="append", default=[], help="KEY=VALUE on the image")
    s.add_argument(
        "--progress",
        default="auto",
        choices=("auto", "plain", "tty"),
        help="how steps are shown: auto, plain or tty",
    )
    s.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    s.add_argument("--iidfile", default="", help="write the image id to this file")
    s.add_argument("path", help="the build context: a folder")
    b = sub.add_parser("builder", help="manage the build cache").add_subparsers(
        dest="bcmd", required=True
    )
    s = b.add_parser("prune", help="empty the build cache")
    s.add_argument("-a", "--all", action="store_true", help="all of it (the only kind here)")
    s.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
