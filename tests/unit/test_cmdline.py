"""supervisor/cmdline.py against argparse, on the client's own command table."""

from __future__ import annotations

import argparse

import pytest

from supervisor import cmdline
from supervisor.client.parser import build_parser

# Command lines argparse and cmdline read alike (no abbreviations, no options
# between a nargs="+" positional's words: there they differ on purpose).
SAME = [
    ["run", "--rm", "-e", "A=1", "-m", "64m", "--rootfs", "/r", "/bin/true"],
    ["run", "-it", "--name=web", "-p", "8080:80", "-p8443:443", "busybox", "sh", "-c", "x"],
    ["run", "-dit", "-e", "A", "--env=B=2", "--memory-swap", "-1", "busybox"],
    ["run", "--rm", "busybox", "ls", "-l", "--color", "/"],
    ["run", "--sig-proxy=false", "--health-interval", "1m30s", "--cpus", "1.5", "img"],
    ["run", "--pull", "never", "--stop-timeout", "3", "--restart", "on-failure:2", "img"],
    ["run", "-v", "/a:/b:ro", "--mount", "type=tmpfs,target=/t", "--tmpfs", "/x", "img"],
    ["create", "--entrypoint", "", "-u", "1000:1000", "-w", "/tmp", "-h", "host", "img"],
    ["-H", "/s", "ps", "-a", "--format", "json"],
    ["--socket=/s", "ps", "-aq", "--no-trunc", "-f", "name=x", "-f", "label=a"],
    ["network", "connect", "n", "c"],
    ["network", "create", "--subnet", "10.1.0.0/24", "net1"],
    ["exec", "-it", "c", "sh", "-c", "echo"],
    ["exec", "-e", "A=1", "-w", "/", "-u", "0", "c", "ls"],
    ["rm", "-fv", "a", "b", "c"],
    ["stop", "-t", "3", "a"],
    ["kill", "-s", "HUP", "a", "b"],
    ["logs", "-f", "--tail", "10", "-t", "c"],
    ["image", "ls"],
    ["images", "-q"],
    ["volume", "create", "v1"],
    ["volume", "create"],
    ["commit", "-p", "false", "c"],
    ["commit", "c", "repo:tag"],
    ["stats", "--no-stream"],
    ["events", "--since", "10m", "--filter", "event=die"],
    ["cp", "c:/etc/hosts", "/tmp/x"],
    ["system", "prune", "-a", "--volumes", "-f"],
    ["container", "prune"],
    ["pull", "localhost:5000/busybox:latest"],
    ["login", "-u", "me", "-p", "pw", "localhost:5000"],
    ["wait", "a", "b"],
]


def _vars(ns) -> dict:
    return {k: v for k, v in vars(ns).items()}


@pytest.mark.parametrize("argv", SAME, ids=lambda a: " ".join(a)[:40])
def test_parses_as_argparse_does(argv: list[str]) -> None:
    ours = build_parser(engine=cmdline).parse_args(argv)
    theirs = build_parser(engine=argparse).parse_args(argv)
    assert _vars(ours) == _vars(theirs)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--bogus-flag", "img"], "unrecognized arguments: --bogus-flag"),
        (["stop"], "the following arguments are required: containers"),
        (["run", "-m", "lots", "img"], "argument -m/--memory: invalid size: 'lots'"),
        (["run", "--pull", "sometimes", "img"], "argument --pull: invalid choice: 'sometimes'"),
        (["stop", "-t", "soon", "a"], "argument -t/--time: invalid int value: 'soon'"),
        (["run", "--name"], "argument --name: expected one argument"),
        (["run", "-e", "--rm", "img"], "argument -e/--env: expected one argument"),
        (["rn", "x"], "argument COMMAND: invalid choice: 'rn'"),
        (["run", "--rm=yes", "img"], "ignored explicit argument 'yes'"),
        (["run", "--sig-proxy=maybe", "img"], "invalid boolean: 'maybe'"),
        (["network"], "the following arguments are required: ncmd"),
        (["login", "localhost:5000"], "the following arguments are required: -u/--username"),
    ],
)
def test_errors_name_the_problem_and_exit_2(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser(engine=cmdline).parse_args(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and err.startswith("corral")
    assert err.rstrip().endswith("--help'.") and "usage:" not in err  # Docker's two lines


def test_docker_style_where_argparse_differs() -> None:
    p = build_parser(engine=cmdline)
    # exec: what follows the container is the command's, flags included.
    ns = p.parse_args(["exec", "c", "ls", "-l"])
    assert ns.container == "c" and ns.command == ["ls", "-l"] and not ns.interactive
    ns = p.parse_args(["exec", "c", "-it", "sh"])
    assert ns.command == ["-it", "sh"] and not ns.tty
    # Options between several positionals, as Docker's CLI takes them.
    ns = p.parse_args(["rm", "a", "-f", "b"])
    assert ns.containers == ["a", "b"] and ns.force
    # "--" ends the options and is not the image (argparse keeps it in REMAINDER).
    assert p.parse_args(["run", "--", "img", "--not-a-flag"]).command == ["img", "--not-a-flag"]
    # Long flags are whole words: no abbreviation.
    with pytest.raises(SystemExit):
        p.parse_args(["run", "--netw", "none", "img"])


def test_help_lists_flags_and_exits_0(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser(engine=cmdline).parse_args(["run", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert out.startswith("Usage:  corral run [OPTIONS] (IMAGE | --rootfs DIR) [COMMAND] [ARG...]")
    assert "-m, --memory MEMORY" in out and "--pull {missing,always,never}" in out
    with pytest.raises(SystemExit):
        build_parser(engine=cmdline).parse_args(["image", "--help"])
    out = capsys.readouterr().out
    assert "ls" in out and "prune" in out


def test_what_it_does_not_do_is_refused_not_ignored() -> None:
    with pytest.raises(TypeError, match="const"):
        cmdline.ArgumentParser(prog="t").add_argument("-x", const=1)


def test_appended_defaults_are_not_shared() -> None:
    p = cmdline.ArgumentParser(prog="t")
    p.add_argument("-e", action="append", default=[])
    assert p.parse_args(["-e", "1"]).e == ["1"]
    assert p.parse_args([]).e == []


@pytest.mark.parametrize(
    ("argv", "same_as"),
    [
        (["container", "ls", "-a"], ["ps", "-a"]),
        (["-H", "/s", "container", "rm", "-f", "x"], ["-H", "/s", "rm", "-f", "x"]),
        (["image", "pull", "busybox"], ["pull", "busybox"]),
    ],
)
def test_management_commands_name_the_top_level_ones(argv, same_as) -> None:
    from supervisor.client.parser import parse_args

    assert parse_args(argv) == parse_args(same_as)
    assert parse_args(["container", "prune"]).ccmd == "prune"  # its own


def test_top_level_help_and_version_need_no_daemon(capsys) -> None:
    from supervisor import __version__
    from supervisor.cli import main

    assert main(["--version"]) == 0 and capsys.readouterr().out == f"Corral version {__version__}\n"
    assert main(["-h"]) == 0 and "usage: corral" in capsys.readouterr().out


def test_the_usage_lists_every_command() -> None:
    """`corral --help` names each command the parser knows, and no other."""
    import re

    from supervisor.cli import USAGE

    p = build_parser(engine=argparse)
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    listed = set()
    for line in USAGE.split("\n\n")[1:-2]:
        body = line.split(":", 1)[1]
        listed |= {w for w in re.findall(r"[a-z]+", re.sub(r"\(.*?\)", "", body))}
    assert listed == set(sub.choices)
