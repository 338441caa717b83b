"""Every command's help reads as Docker's: a usage line, what it does, and a
line for every flag (issue #15)."""

from __future__ import annotations

from supervisor import cmdline
from supervisor.client.parser import build_parser


def _parsers(p: cmdline.ArgumentParser, path: str = "corral"):
    yield path, p
    if p._sub is not None:
        for name, sub in p._sub.choices.items():
            yield from _parsers(sub, f"{path} {name}")


def test_every_flag_of_every_command_says_what_it_does():
    missing = [
        f"{path} {'/'.join(a.names)}"
        for path, p in _parsers(build_parser())
        for a in p._args
        if a.option and not (a.help or "").strip()
    ]
    assert not missing, missing


def test_help_is_docker_shaped():
    root = build_parser()
    for path, p in _parsers(root):
        if p is root:
            continue
        text = p.format_help()
        assert text.startswith(f"Usage:  {path} "), text[:80]
        assert p.description, f"{path} has no description"
    run = root._sub.choices["run"].format_help()
    assert run.startswith("Usage:  corral run [OPTIONS] (IMAGE | --rootfs DIR) [COMMAND] [ARG...]")
    stop = root._sub.choices["stop"].format_help()
    assert stop.startswith("Usage:  corral stop [OPTIONS] CONTAINER [CONTAINER...]")
