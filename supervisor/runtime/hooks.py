"""OCI hooks: poststart and poststop run; the others are refused.

poststart hooks run in the runtime's namespaces once the container's process
has started (after `run`, or after `start`), poststop hooks once the container
is deleted; each gets the container's state as JSON on its stdin, and a hook
that fails or outlives its `timeout` is a warning, not an error, as the spec
says. The hooks that run before the container's process (prestart,
createRuntime, createContainer, startContainer) need the container's setup to
stop half-way for them; until it can, a config with any is refused, naming the
field: a hook that sets up a network or a device, silently skipped, would leave
a container that looks started and is not what was asked.

The hooks a container needs after it is created are kept in its state
directory (hooks.json), so that a `start` or `delete` from another process
runs them. This module is imported only where a config has hooks.
"""

from __future__ import annotations

import os
import sys

from protocols import lite, minijson, oci_lite
from supervisor.errors import SpecError

BEFORE = ("prestart", "create_runtime", "create_container", "start_container")
FILE = "hooks.json"


def validate(hooks: oci_lite.Hooks | None) -> None:
    if hooks is None:
        return
    for kind in BEFORE:
        if getattr(hooks, kind):
            name = oci_lite.Hooks._json.get(kind, kind)
            raise SpecError(
                f"hooks.{name}",
                "not supported yet: hooks that run before the container's process are "
                "refused rather than skipped (poststart and poststop hooks run)",
            )
    for kind in ("poststart", "poststop"):
        for i, h in enumerate(getattr(hooks, kind) or []):
            if not h.path.startswith("/"):
                raise SpecError(f"hooks.{kind}[{i}].path", f"must be absolute, got {h.path!r}")
            if h.timeout is not None and h.timeout <= 0:
                raise SpecError(f"hooks.{kind}[{i}].timeout", "must be a positive number")


def keep(state_dir: str, hooks: oci_lite.Hooks | None) -> None:
    """Write the container's poststart and poststop hooks beside its state."""
    if hooks is None or not (hooks.poststart or hooks.poststop):
        return

    def copy(hs: list | None) -> list | None:  # lite or the daemon's msgspec hooks alike
        if not hs:
            return None
        return [oci_lite.Hook(path=h.path, args=h.args, env=h.env, timeout=h.timeout) for h in hs]

    data = lite.to_builtins(
        oci_lite.Hooks(poststart=copy(hooks.poststart), poststop=copy(hooks.poststop))
    )
    with open(os.path.join(state_dir, FILE), "wb") as f:
        f.write(minijson.dumps(data))


def kept(state_dir: str) -> oci_lite.Hooks | None:
    try:
        with open(os.path.join(state_dir, FILE), "rb") as f:
            return lite.from_json(oci_lite.Hooks, minijson.loads(f.read()))  # type: ignore[return-value]
    except FileNotFoundError:
        return None


def run(kind: str, hooks: list, state: dict) -> None:
    """Run `hooks` in order, each with `state` on its stdin; a failure is a
    warning on stderr and the next hook still runs."""
    import subprocess  # only where there are hooks

    data = minijson.dumps(state)
    for h in hooks:
        env = None if h.env is None else dict(e.partition("=")[::2] for e in h.env)
        try:
            p = subprocess.run(
                h.args or [h.path],
                executable=h.path,
                input=data,
                env=env,
                capture_output=True,
                timeout=h.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            _warn(kind, h.path, f"still running after its timeout of {h.timeout} s: killed")
            continue
        except OSError as e:
            _warn(kind, h.path, e.strerror or str(e))
            continue
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip()
            _warn(kind, h.path, f"exit status {p.returncode}" + (f": {err}" if err else ""))


def _warn(kind: str, path: str, why: str) -> None:
    sys.stderr.write(f"corral: warning: {kind} hook {path}: {why}\n")
