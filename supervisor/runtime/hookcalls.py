"""Where in a container's life its OCI hooks run (hooks.py does the running,
and is imported only where a config has hooks: it costs the CLI's start), and
the removal of a container's state directory, with its poststop hooks."""

from __future__ import annotations

import os

from protocols.lite import oci as oci_lite
from supervisor.runtime.state import ContainerRecord


def hooks_module():
    from supervisor.runtime import hooks  # only where a config has hooks

    return hooks


def run_before_pivot(hooks, state: dict, cpid: int) -> None:
    """prestart and createRuntime hooks in the runtime's namespaces, then
    createContainer hooks in the container's (the setup waits before
    pivot_root meanwhile); HookError if one fails."""
    h = hooks_module()
    h.run("prestart", hooks.prestart or [], state)
    h.run("create_runtime", hooks.create_runtime or [], state)
    if hooks.create_container:
        pidfd = os.pidfd_open(cpid)
        try:
            h.run("create_container", hooks.create_container, state, in_container=pidfd)
        finally:
            os.close(pidfd)


def hook_state(rec: ContainerRecord, status: str) -> dict:
    """The OCI state a hook reads on its stdin."""
    return {
        "ociVersion": oci_lite.OCI_VERSION,
        "id": rec.id,
        "status": status,
        "pid": rec.pid,
        "bundle": rec.bundle,
        "annotations": dict(rec.annotations),
    }


def kept_hooks(state_dir: str):
    """The hooks kept beside a container's state; hooks.py imported only if any."""
    if not os.path.exists(os.path.join(state_dir, "hooks.json")):
        return None
    from supervisor.runtime import hooks

    return hooks.kept(state_dir)


def run_hooks(kind: str, hook_list: list, state: dict, in_container: int = -1) -> None:
    hooks_module().run(kind, hook_list, state, in_container=in_container)


def remove_with_poststop(state_dir: str, rec: ContainerRecord) -> None:
    kept = kept_hooks(state_dir)
    remove_state_dir(state_dir)
    if kept is not None and kept.poststop:
        run_hooks("poststop", kept.poststop, hook_state(rec, "stopped"))


def remove_state_dir(path: str) -> None:
    """Remove a container's state directory: flat, so no shutil (whose import
    costs milliseconds on the CLI's path)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
    os.rmdir(path)
