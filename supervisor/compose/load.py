"""Reading a project: which files, the variables, the YAML, interpolation,
the merge of several files, the check of every key, the profiles; then
normalize.py makes the Structs.

The rules are Docker Compose's: `-f` files merged in order (else compose.yaml
and compose.override.yaml, or their docker-compose.* and .yml spellings, in
the working folder); variables from the shell, over those of `.env` in the
project's folder (or the --env-file files); the project's name from -p, else
COMPOSE_PROJECT_NAME, else the file's `name:`, else the folder's name. A key
Corral does not carry out is an error naming its path, never ignored; `x-`
keys are the user's own and accepted anywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from protocols import compose
from supervisor.compose import ComposeError, keys
from supervisor.compose.interpolate import InterpolationError, interpolate, read_env_file

FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDES = (
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
)


@dataclass
class Options:
    files: list[str] = field(default_factory=list)  # -f, in order
    project_name: str = ""  # -p
    project_dir: str = ""  # --project-directory
    env_files: list[str] = field(default_factory=list)  # --env-file
    profiles: list[str] = field(default_factory=list)  # --profile
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    services: list[str] = field(default_factory=list)  # named on the command line


@dataclass
class Loaded:
    project: compose.Project
    warnings: list[str]
    environment: dict[str, str]  # the variables interpolation saw


class _Loader(yaml.SafeLoader):
    """YAML 1.2's booleans (true/false only), as Compose's Go parser reads them:
    `DEBUG: yes` is the string "yes", not True."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def find_files(opts: Options, cwd: str | None = None) -> list[Path]:
    """The files to merge, in order. ComposeError when there are none."""
    here = Path(cwd or os.getcwd())
    if opts.files:
        out = []
        for f in opts.files:
            p = Path(f) if Path(f).is_absolute() else here / f
            if not p.is_file():
                raise ComposeError(f"open {p}: no such file or directory")
            out.append(p)
        return out
    env_files = opts.environ.get("COMPOSE_FILE", "")
    if env_files:
        return find_files(Options(files=env_files.split(os.pathsep)), cwd)
    base = next((here / n for n in FILES if (here / n).is_file()), None)
    if base is None:
        raise ComposeError(
            f"no configuration file provided: not found (looked for {', '.join(FILES)} in {here})"
        )
    override = next((here / n for n in OVERRIDES if (here / n).is_file()), None)
    return [base, override] if override else [base]


def variables(project_dir: Path, opts: Options) -> dict[str, str]:
    """What ${VAR} reads: the env files' values under the shell's."""
    env: dict[str, str] = {}
    files = opts.env_files or (
        [str(project_dir / ".env")] if (project_dir / ".env").is_file() else []
    )
    for f in files:
        try:
            env.update(read_env_file(f, {**env, **opts.environ}))
        except OSError as e:
            raise ComposeError(f"couldn't read env file {f}: {e.strerror}") from None
        except (ValueError, InterpolationError) as e:
            raise ComposeError(str(e)) from None
    env.update(opts.environ)
    return env


def read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ComposeError(f"reading {path}: {e.strerror}") from None
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ComposeError(f"{path}: invalid YAML: {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ComposeError(f"{path}: the top level must be a mapping, not {type(doc).__name__}")
    return doc


def interpolate_all(node, env: Mapping[str, str], warn: Callable[[str], None], path: str = ""):
    """Every string value (not the keys) interpolated; errors name the path."""
    if isinstance(node, dict):
        return {k: interpolate_all(v, env, warn, _join(path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_all(v, env, warn, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        try:
            return interpolate(node, env, warn)
        except InterpolationError as e:
            raise ComposeError(f"error while interpolating {path}: {e}") from None
    return node


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def merge(base, over, path: str = ""):
    """`over` merged onto `base`, as Compose merges files: mappings key by key,
    lists that are sets appended without repeats, volumes by target, the rest
    replaced (command, entrypoint, a healthcheck's test)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, _join(path, k)) if k in base else v
        return out
    if isinstance(base, list) and isinstance(over, list):
        leaf = path.rsplit(".", 1)[-1]
        if leaf in ("volumes", "tmpfs") and path.startswith("services."):
            by_target = {keys.volume_target(v): v for v in base}
            by_target.update({keys.volume_target(v): v for v in over})
            return list(by_target.values())
        if leaf in keys.APPENDED:
            return base + [v for v in over if v not in base]
    return over


def load(opts: Options, cwd: str | None = None) -> Loaded:
    """The project the files declare. ComposeError says what is wrong and where."""
    files = find_files(opts, cwd)
    project_dir = Path(opts.project_dir).resolve() if opts.project_dir else files[0].parent
    env = variables(project_dir, opts)
    warnings: list[str] = []

    def warn(msg: str) -> None:
        if msg not in warnings:
            warnings.append(msg)

    merged: dict = {}
    for f in files:
        doc = interpolate_all(read_yaml(f), env, warn)
        keys.check(doc, str(f), warn)
        merged = merge(merged, keys.long_forms(doc))
    if "services" not in merged or not merged["services"]:
        raise ComposeError("no service selected: the file has no services")
    name = (
        opts.project_name
        or env.get("COMPOSE_PROJECT_NAME", "")
        or str(merged.get("name") or "")
        or project_dir.name
    )
    from supervisor.compose import normalize

    project = normalize.project(
        merged,
        name=normalize.project_name(name),
        working_dir=project_dir,
        env=env,
        files=[str(f) for f in files],
    )
    profiles = opts.profiles or [p for p in env.get("COMPOSE_PROFILES", "").split(",") if p]
    project = normalize.with_profiles(project, profiles, opts.services)
    return Loaded(project=project, warnings=warnings, environment=env)
