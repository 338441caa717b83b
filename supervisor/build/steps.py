"""What each instruction does to an image's configuration, and the history
line it leaves, as Docker's builder (the classic one, which dockerd 20.10
here runs) records them: `/bin/sh -c #(nop)  ENV A=b` for a configuration
step, `/bin/sh -c make` for a RUN (`|1 V=x /bin/sh -c make` when build args
are in scope), `/bin/sh -c #(nop) COPY file:<sha> in /dest `. Pure: the daemon's
builder runs RUN, COPY and ADD; everything else happens here.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from msgspec.structs import replace

from protocols.image import Healthcheck, RunConfig
from supervisor import units
from supervisor.build.dockerfile import Instruction, expand, json_array
from supervisor.errors import BuildError

DEFAULT_SHELL = ["/bin/sh", "-c"]
# Build args every build has, without an ARG line (not written in history).
PROXY_ARGS = tuple(
    n
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for n in (base, base.lower())
)


@dataclass
class StageState:
    """A stage's configuration as its instructions change it."""

    config: RunConfig = field(default_factory=RunConfig)
    args: dict[str, str] = field(default_factory=dict)  # ARGs declared in this stage
    author: str = ""
    global_args: dict[str, str] = field(default_factory=dict)  # ARGs before the first FROM

    @property
    def shell(self) -> list[str]:
        return list(self.config.shell or DEFAULT_SHELL)

    def env(self) -> dict[str, str]:
        return dict(e.partition("=")[::2] for e in self.config.env or [])

    def variables(self) -> dict[str, str]:
        """What ${X} sees: the stage's ARGs under its ENV."""
        return {**self.args, **self.env()}


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def with_path(cfg: RunConfig) -> RunConfig:
    """A stage's start: the image's Env with PATH, Docker's default where the
    image has none (Docker's builder writes it into the image it makes)."""
    env = list(cfg.env or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    return replace(cfg, env=env)


def _pairs(rest: str, what: str, line: int) -> list[tuple[str, str]]:
    """ENV/LABEL: `k=v k2="v 2"`, or the older `k v` (one pair)."""
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as e:
        raise BuildError(f"Dockerfile:{line}: {what}: {e}") from None
    if words and "=" not in words[0]:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise BuildError(f"Dockerfile:{line}: {what} names {key} without a value")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise BuildError(f"Dockerfile:{line}: {what} {w!r}: KEY=VALUE")
        out.append((key, value))
    return out


def go_list(words: list[str]) -> str:
    """A list as Go's %q prints one, what Docker's history shows: ["a" "b"]."""
    return "[" + " ".join(json.dumps(w) for w in words) + "]"


def nop(state: StageState, text: str) -> str:
    """A configuration step's history line (`#(nop)` and two spaces)."""
    return " ".join(state.shell) + " #(nop)  " + text


def _duration_ns(value: str, flag: str, line: int) -> int:
    seconds = units.go_duration(value)
    if seconds is None:
        raise BuildError(f"Dockerfile:{line}: HEALTHCHECK --{flag}={value}: a duration (30s)")
    return int(seconds * 1e9)


def _words(ins: Instruction, state: StageState, variables: dict[str, str]) -> list[str]:
    """A CMD/ENTRYPOINT/SHELL-form command: the JSON array, else the shell line."""
    if ins.json is not None:
        return list(ins.json)
    return [*state.shell, ins.rest]


def apply(ins: Instruction, state: StageState, build_args: dict[str, str]) -> tuple[str, set[str]]:
    """Carry out a configuration instruction on `state` (ENV, LABEL, CMD, ...).
    Returns its history line and the build args it consumed. BuildError names
    the line of a value that is wrong."""
    v = state.variables()
    cfg = state.config
    used: set[str] = set()
    line = ins.line
    c = ins.cmd
    if c == "ENV":
        env = state.env()
        pairs = _pairs(expand(ins.rest, v), "ENV", line)
        for key, value in pairs:
            env.pop(key, None)
            env[key] = value
        state.config = replace(cfg, env=[f"{k}={x}" for k, x in env.items()])
        return nop(state, "ENV " + " ".join(f"{k}={x}" for k, x in pairs)), used
    if c == "LABEL":
        labels = dict(cfg.labels or {})
        pairs = _pairs(expand(ins.rest, v), "LABEL", line)
        labels.update(pairs)
        state.config = replace(cfg, labels=labels)
        return nop(state, "LABEL " + " ".join(f"{k}={x}" for k, x in pairs)), used
    if c == "ARG":
        text = []
        for word in ins.rest.split():
            name, eq, default = word.partition("=")
            if not name.replace("_", "a").isalnum():
                raise BuildError(f"Dockerfile:{line}: ARG {word!r}: a name (and =default)")
            if name in build_args:
                state.args[name] = build_args[name]
                used.add(name)
            elif eq:
                state.args[name] = expand(default, v)
            elif name in state.global_args:  # ARG NAME: the global one's value, in scope
                state.args[name] = state.global_args[name]
            else:
                state.args.pop(name, None)
            text.append(word)
        return nop(state, "ARG " + " ".join(text)), used
    if c in ("CMD", "ENTRYPOINT"):
        words = _words(ins, state, v)
        if c == "CMD":
            state.config = replace(cfg, cmd=words)
        else:  # Docker: setting ENTRYPOINT drops the CMD the base image had
            state.config = replace(cfg, entrypoint=words, cmd=None)
        return nop(state, f"{c} {go_list(words)}"), used
    if c == "SHELL":
        if ins.json is None:
            raise BuildError(f"Dockerfile:{line}: SHELL requires the arguments to be in JSON form")
        state.config = replace(cfg, shell=list(ins.json))
        return nop(state, f"SHELL {go_list(list(ins.json))}"), used
    if c == "WORKDIR":
        path = expand(ins.rest, v)
        if not path.startswith("/"):
            path = (cfg.working_dir or "/").rstrip("/") + "/" + path
        state.config = replace(cfg, working_dir=clean_abs(path))
        return " ".join(state.shell) + " #(nop) WORKDIR " + state.config.working_dir, used
    if c == "USER":
        user = expand(ins.rest, v).strip()
        if not user:
            raise BuildError(f"Dockerfile:{line}: USER needs a user")
        state.config = replace(cfg, user=user)
        return nop(state, f"USER {user}"), used
    if c == "EXPOSE":
        ports = dict(cfg.exposed_ports or {})
        words = expand(ins.rest, v).split()
        for p in words:
            num, _, proto = p.partition("/")
            lo, _, hi = num.partition("-")
            try:
                first, last = int(lo), int(hi or lo)
            except ValueError:
                raise BuildError(f"Dockerfile:{line}: EXPOSE {p!r}: PORT[/tcp|udp]") from None
            if proto not in ("", "tcp", "udp", "sctp"):
                raise BuildError(f"Dockerfile:{line}: EXPOSE {p!r}: tcp, udp or sctp")
            for n in range(first, last + 1):
                ports[f"{n}/{proto or 'tcp'}"] = {}
        state.config = replace(cfg, exposed_ports=ports)
        return nop(state, "EXPOSE " + " ".join(sorted(words))), used
    if c == "VOLUME":
        vols = dict(cfg.volumes or {})
        words = ins.json if ins.json is not None else expand(ins.rest, v).split()
        if not words:
            raise BuildError(f"Dockerfile:{line}: VOLUME needs a path")
        for w in words:
            vols[expand(w, v)] = {}
        state.config = replace(cfg, volumes=vols)
        return nop(state, "VOLUME " + "[" + " ".join(words) + "]"), used
    if c == "STOPSIGNAL":
        sig = expand(ins.rest, v).strip()
        state.config = replace(cfg, stop_signal=sig)
        return nop(state, f"STOPSIGNAL {sig}"), used
    if c == "MAINTAINER":
        state.author = ins.rest
        return nop(state, f"MAINTAINER {ins.rest}"), used
    if c == "ONBUILD":
        trigger = ins.rest.strip()
        state.config = replace(cfg, on_build=[*(cfg.on_build or []), trigger])
        return nop(state, f"ONBUILD {trigger}"), used
    if c == "HEALTHCHECK":
        state.config = replace(cfg, healthcheck=_healthcheck(ins, state))
        return nop(state, f"HEALTHCHECK {ins.rest}"), used
    raise BuildError(f"Dockerfile:{line}: {c} is not a configuration step")


def _healthcheck(ins: Instruction, state: StageState) -> Healthcheck:
    kind, _, rest = ins.rest.partition(" ")
    line = ins.line
    if kind.upper() == "NONE":
        return Healthcheck(test=["NONE"])
    if kind.upper() != "CMD":
        raise BuildError(f"Dockerfile:{line}: HEALTHCHECK CMD ... or HEALTHCHECK NONE")
    rest = rest.strip()
    as_json = json_array(rest)
    test = ["CMD", *as_json] if as_json is not None else ["CMD-SHELL", rest]
    f = ins.flags
    retries = 0
    if "retries" in f:
        try:
            retries = int(f["retries"])
        except ValueError:
            raise BuildError(f"Dockerfile:{line}: HEALTHCHECK --retries: a number") from None
    return Healthcheck(
        test=test,
        interval=_duration_ns(f["interval"], "interval", line) if "interval" in f else 0,
        timeout=_duration_ns(f["timeout"], "timeout", line) if "timeout" in f else 0,
        start_period=_duration_ns(f["start-period"], "start-period", line)
        if "start-period" in f
        else 0,
        retries=retries,
    )


def clean_abs(path: str) -> str:
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/" + "/".join(parts)


def run_command(ins: Instruction, state: StageState) -> list[str]:
    """The argv of a RUN: its JSON array, or the shell and its line (with
    heredocs: the line and each heredoc, as the shell reads them; a RUN that is
    only a heredoc runs the heredoc as the script)."""
    if ins.json is not None:
        return list(ins.json)
    script = ins.rest
    if ins.heredocs:
        names = {h.name for h in ins.heredocs}
        only = all(w.lstrip("<-'\"").rstrip("'\"") in names for w in ins.rest.split())
        if only and len(ins.heredocs) == 1:
            script = ins.heredocs[0].content
        else:
            script += "\n" + "".join(h.content + h.name + "\n" for h in ins.heredocs)
    return [*state.shell, script]


def run_env(state: StageState, build_args: dict[str, str]) -> tuple[list[str], list[str]]:
    """(the RUN's environment, the build args in it as K=V for history): the
    stage's ENV, its ARGs not shadowed by ENV, and the proxy args given."""
    env = state.env()
    used = {k: x for k, x in state.args.items() if k not in env}
    proxies = {k: build_args[k] for k in PROXY_ARGS if k in build_args and k not in env}
    full = [*(state.config.env or []), *(f"{k}={x}" for k, x in {**used, **proxies}.items())]
    return full, [f"{k}={x}" for k, x in sorted(used.items())]


def run_created_by(argv: list[str], args_in_history: list[str]) -> str:
    prefix = [f"|{len(args_in_history)}", *args_in_history] if args_in_history else []
    return " ".join([*prefix, *argv])
