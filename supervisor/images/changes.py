"""`commit --change`: Dockerfile instructions applied to an image's configuration,
the ones Docker's commit takes (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER,
WORKDIR, STOPSIGNAL, VOLUME). Pure."""

from __future__ import annotations

import json
import shlex

import msgspec

from protocols.image import RunConfig
from supervisor.errors import SpecError


def _words(rest: str, what: str) -> list[str]:
    """CMD/ENTRYPOINT's two forms: a JSON array (exec form) or a shell line."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError as e:
            raise SpecError("--change", f"{what} {rest!r}: not a JSON array ({e.msg})") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SpecError("--change", f"{what} {rest!r}: a JSON array of strings")
        return value
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str, what: str) -> list[tuple[str, str]]:
    """ENV/LABEL: `k=v k2="v 2"`, or the older `k v` (one pair, the rest its value)."""
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        key, _, value = rest.partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise SpecError("--change", f"{what} {rest!r}: KEY=VALUE pairs")
        out.append((key, value))
    return out


def apply(cfg: RunConfig, changes: list[str]) -> RunConfig:
    for change in changes:
        instruction, _, rest = change.strip().partition(" ")
        what, rest = instruction.upper(), rest.strip()
        if not rest:
            raise SpecError("--change", f"{change!r}: {what or 'an instruction'} needs a value")
        if what == "CMD":
            cfg = msgspec.structs.replace(cfg, cmd=_words(rest, what))
        elif what == "ENTRYPOINT":
            cfg = msgspec.structs.replace(cfg, entrypoint=_words(rest, what))
        elif what == "ENV":
            env = {e.partition("=")[0]: e for e in cfg.env or []}
            for key, value in _pairs(rest, what):
                env.pop(key, None)
                env[key] = f"{key}={value}"
            cfg = msgspec.structs.replace(cfg, env=list(env.values()))
        elif what == "LABEL":
            cfg = msgspec.structs.replace(
                cfg, labels={**(cfg.labels or {}), **dict(_pairs(rest, what))}
            )
        elif what == "EXPOSE":
            ports = {p if "/" in p else f"{p}/tcp": {} for p in rest.split()}
            cfg = msgspec.structs.replace(cfg, exposed_ports={**(cfg.exposed_ports or {}), **ports})
        elif what == "VOLUME":
            paths = _words(rest, what) if rest.startswith("[") else rest.split()
            cfg = msgspec.structs.replace(
                cfg, volumes={**(cfg.volumes or {}), **{p: {} for p in paths}}
            )
        elif what == "USER":
            cfg = msgspec.structs.replace(cfg, user=rest)
        elif what == "WORKDIR":
            cfg = msgspec.structs.replace(cfg, working_dir=rest)
        elif what == "STOPSIGNAL":
            cfg = msgspec.structs.replace(cfg, stop_signal=rest)
        else:
            raise SpecError(
                "--change",
                f"{instruction!r} is not one commit takes: CMD, ENTRYPOINT, ENV, EXPOSE, "
                "LABEL, USER, WORKDIR, STOPSIGNAL, VOLUME",
            )
    return cfg
