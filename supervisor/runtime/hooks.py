"""OCI hooks, each kind at the point of the lifecycle the runtime spec gives it.

- prestart (deprecated in the spec, still what many tools install) and
  createRuntime: during create, once the container's namespaces are made and
  its mounts are in place, before pivot_root; in the runtime's namespaces.
- createContainer: right after them, in the container's namespaces (its mount
  namespace before pivot_root, so the hook's path is found as the runtime
  sees it).
- startContainer: during start, after pivot_root, just before the container's
  process execs; in the container's namespaces, its path found in the
  container's root.
- poststart: once the process has started; poststop: once the container is
  deleted; both in the runtime's namespaces.

Each hook gets the container's state as JSON on its stdin. One that fails or
outlives its `timeout` before the process starts is an error (HookError: the
container is removed, or killed for startContainer); after it, a warning and
the next hook still runs, as the spec says. The container's setup waits for
the first three kinds on a FIFO (native/container.c, wait_for_hooks).

The hooks a container needs after it is created are kept in its state
directory (hooks.json), so that a `start` or `delete` from another process
runs them. This module is imported only where a config has hooks.
"""

from __future__ import annotations

import os
import select
import sys

from protocols import lite
from protocols.lite import minijson
from protocols.lite import oci as oci_lite
from supervisor import _native
from supervisor.errors import HookError, SetupError, SpecError

KINDS = (
    "prestart",
    "create_runtime",
    "create_container",
    "start_container",
    "poststart",
    "poststop",
)
BEFORE_PIVOT = ("prestart", "create_runtime", "create_container")
FILE = "hooks.json"
# A hook "in the container's namespaces" enters all of these (setns on a pidfd:
# one the container shares with the host is entered as it is).
CONTAINER_NS = (
    _native.NS_FLAGS["mount"]
    | _native.NS_FLAGS["uts"]
    | _native.NS_FLAGS["ipc"]
    | _native.NS_FLAGS["network"]
    | _native.NS_FLAGS["pid"]
    | _native.NS_FLAGS["cgroup"]
)


def json_name(kind: str) -> str:
    return oci_lite.Hooks._json.get(kind, kind)


def validate(hooks: oci_lite.Hooks | None) -> None:
    if hooks is None:
        return
    for kind in KINDS:
        for i, h in enumerate(getattr(hooks, kind) or []):
            where = f"hooks.{json_name(kind)}[{i}]"
            if not h.path.startswith("/"):
                raise SpecError(f"{where}.path", f"must be absolute, got {h.path!r}")
            if h.timeout is not None and h.timeout <= 0:
                raise SpecError(f"{where}.timeout", "must be a positive number")


def any_before_pivot(hooks) -> bool:
    return hooks is not None and any(getattr(hooks, k) for k in BEFORE_PIVOT)


def keep(state_dir: str, hooks: oci_lite.Hooks | None) -> None:
    """Write the container's startContainer, poststart and poststop hooks
    beside its state."""
    if hooks is None or not (hooks.start_container or hooks.poststart or hooks.poststop):
        return

    def copy(hs: list | None) -> list | None:  # lite or the daemon's msgspec hooks alike
        if not hs:
            return None
        return [oci_lite.Hook(path=h.path, args=h.args, env=h.env, timeout=h.timeout) for h in hs]

    data = lite.to_builtins(
        oci_lite.Hooks(
            start_container=copy(hooks.start_container),
            poststart=copy(hooks.poststart),
            poststop=copy(hooks.poststop),
        )
    )
    with open(os.path.join(state_dir, FILE), "wb") as f:
        f.write(minijson.dumps(data))


def kept(state_dir: str) -> oci_lite.Hooks | None:
    try:
        with open(os.path.join(state_dir, FILE), "rb") as f:
            return lite.from_json(oci_lite.Hooks, minijson.loads(f.read()))  # type: ignore[return-value]
    except FileNotFoundError:
        return None


def run(kind: str, hooks: list, state: dict, *, in_container: int = -1) -> None:
    """Run `hooks` in order, each with `state` on its stdin; `in_container`, a
    pidfd, runs them in that process's namespaces. Before the container's
    process starts a failure raises HookError; after, it is a warning on
    stderr and the next hook still runs."""
    fatal = kind in (*BEFORE_PIVOT, "start_container")
    data = minijson.dumps(state)
    for h in hooks:
        why = _run_one(kind, h, data, in_container)
        if why is None:
            continue
        if fatal:
            raise HookError(json_name(kind), h.path, why)
        sys.stderr.write(f"corral: warning: {json_name(kind)} hook {h.path}: {why}\n")


def _run_one(kind: str, h, data: bytes, in_container: int) -> str | None:
    """Run one hook; what went wrong, or None."""
    env = list(h.env) if h.env is not None else [f"{k}={v}" for k, v in os.environ.items()]
    r, w = os.pipe2(os.O_CLOEXEC)
    out = os.memfd_create("corral-hook-output", os.MFD_CLOEXEC)  # stdout and stderr
    try:
        try:
            _pid, pidfd = _native.spawn(
                h.path,
                list(h.args or [h.path]),
                env,
                [r, out, out],
                setsid=False,
                ns_pidfd=in_container,
                ns_types=CONTAINER_NS if in_container >= 0 else 0,
                what=f"{kind} hook",
            )
        except SetupError as e:
            return os.strerror(e.errno) if e.errno else str(e)
        os.close(r)
        r = -1
        try:
            os.write(w, data)  # the state is small: the pipe holds it all
        except BrokenPipeError:
            pass
        os.close(w)
        w = -1
        try:
            p = select.poll()
            p.register(pidfd, select.POLLIN)
            if not p.poll(None if h.timeout is None else h.timeout * 1000):
                import _signal

                _signal.pidfd_send_signal(pidfd, _signal.SIGKILL)
                os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
                return f"still running after its timeout of {h.timeout} s: killed"
            info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        finally:
            os.close(pidfd)
        assert info is not None
        if info.si_code == os.CLD_EXITED and info.si_status == 0:
            return None
        os.lseek(out, 0, os.SEEK_SET)
        said = os.read(out, 4096).decode(errors="replace").strip()
        how = (
            f"exit status {info.si_status}"
            if info.si_code == os.CLD_EXITED
            else f"killed by signal {info.si_status}"
        )
        return how + (f": {said}" if said else "")
    finally:
        for fd in (r, w, out):
            if fd >= 0:
                os.close(fd)
