"""systemd scopes that hold containers' cgroups (cgroup v2, systemd as PID 1).

A transient scope is asked for over D-Bus (StartTransientUnit) with
Delegate=yes: the tree under it is Corral's, and systemd never writes there.
A scope needs a process when it is made and lives while one is in it: a
`corral-init --hold` is its first process, moved at once to the scope's `hold`
leaf so that the scope's own cgroup holds none and may hand controllers down.

Two users: the daemon's `--cgroup-manager systemd` keeps one scope for all its
containers, the holder staying (ensure_scope); corral-runc's
`--systemd-cgroup` makes one scope per container, as runc and crun do, the
container in its `container` leaf (crun's layout) and the holder gone once the
container is in (start_scope, then release).
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import structlog

from supervisor.errors import CgroupError

log = structlog.get_logger()

CGROUP_ROOT = "/sys/fs/cgroup"
HOLD = "hold"  # the leaf of the process that keeps a scope alive
CONTAINER = "container"  # a per-container scope's leaf for the container

_SYSTEMD = "org.freedesktop.systemd1"
_MANAGER = "/org/freedesktop/systemd1"


def booted() -> bool:
    """Is systemd the init system (sd_booted(3)), on a pure cgroup v2 host?"""
    return os.path.isdir("/run/systemd/system") and os.path.exists(
        os.path.join(CGROUP_ROOT, "cgroup.controllers")
    )


def parse_runc_path(cgroups_path: str) -> tuple[str, str]:
    """runc's systemd cgroupsPath, "SLICE:PREFIX:NAME", as (slice, scope unit):
    "system.slice:cri-containerd:ID" -> ("system.slice", "cri-containerd-ID.scope");
    an empty slice is system.slice."""
    parts = cgroups_path.split(":")
    if len(parts) != 3 or not parts[2] or "/" in cgroups_path:
        why = "with --systemd-cgroup, cgroupsPath is SLICE:PREFIX:NAME, not"
        raise CgroupError(cgroups_path, errno.EINVAL, why)
    slice_, prefix, name = parts
    if slice_ and not slice_.endswith(".slice"):
        raise CgroupError(slice_, errno.EINVAL, "not a systemd slice (NAME.slice):")
    return slice_ or "system.slice", f"{prefix}-{name}.scope" if prefix else f"{name}.scope"


def _bus():
    from jeepney.io.blocking import open_dbus_connection

    try:
        return open_dbus_connection(bus="SYSTEM")
    except (OSError, KeyError) as e:
        raise CgroupError(
            "/run/dbus/system_bus_socket", errno.ECONNREFUSED, f"no D-Bus system bus ({e}):"
        ) from None


def ensure_scope(name: str, holder: str) -> str:
    """The cgroup (a path under the v2 mount) of the delegated scope `name`,
    made now if systemd has no such scope running. `holder` is the program
    that keeps it (corral-init); a scope found without one gets a new one.
    Blocking (D-Bus, waits for systemd): call it from a worker thread."""
    if not name.endswith(".scope") or "/" in name:
        raise CgroupError(name, errno.EINVAL, "a systemd cgroup parent must be a NAME.scope:")
    with _bus() as bus:
        group = _running_scope(bus, name)
        if group is None:
            group, _pid = _start_scope(bus, name, holder, "", "Corral's containers")
            return group
    cgroup = os.path.join(CGROUP_ROOT, group.lstrip("/"))
    if not _pids(os.path.join(cgroup, HOLD)):  # its holder was killed: a new one
        os.makedirs(os.path.join(cgroup, HOLD), exist_ok=True)
        pid = _spawn_holder(holder)
        Path(cgroup, HOLD, "cgroup.procs").write_text(str(pid))
        log.info("systemd.scope_held_again", scope=name, holder=pid)
    return group


def start_scope(name: str, slice_: str, holder: str) -> tuple[str, int]:
    """A new delegated scope for one container, in `slice_`: its cgroup and
    its holder's pid (in the `hold` leaf). The caller puts the container in
    the CONTAINER leaf, then release()s the holder. A scope of that name
    already running is an error, as runc's is."""
    with _bus() as bus:
        if _running_scope(bus, name) is not None:
            raise CgroupError(name, errno.EEXIST, "a systemd scope of that name already runs:")
        return _start_scope(bus, name, holder, slice_, f"corral-runc container {name}")


def release(group: str, holder: int) -> None:
    """The holder's work is done (the container is in the scope): it goes,
    and its leaf with it. The scope now lives as long as the container."""
    try:
        os.kill(holder, 15)
    except ProcessLookupError:
        pass
    leaf = os.path.join(CGROUP_ROOT, group.lstrip("/"), HOLD)
    for _ in range(500):  # the holder leaves the cgroup once it has exited
        try:
            os.rmdir(leaf)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
        time.sleep(0.002)


def _running_scope(bus, name: str) -> str | None:
    """The scope's ControlGroup when systemd runs it, else None."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.wrappers import DBusErrorResponse, Properties, unwrap_msg

    manager = DBusAddress(_MANAGER, bus_name=_SYSTEMD, interface=f"{_SYSTEMD}.Manager")
    try:
        (path,) = unwrap_msg(
            bus.send_and_get_reply(new_method_call(manager, "GetUnit", "s", (name,)))
        )
    except DBusErrorResponse:  # org.freedesktop.systemd1.NoSuchUnit
        return None
    unit = DBusAddress(path, bus_name=_SYSTEMD, interface=f"{_SYSTEMD}.Unit")
    if _get(bus, Properties(unit).get("ActiveState")) != "active":
        return None
    scope = DBusAddress(path, bus_name=_SYSTEMD, interface=f"{_SYSTEMD}.Scope")
    return _get(bus, Properties(scope).get("ControlGroup")) or None


def _get(bus, msg):
    """A property's value (a Get reply's body is one variant: signature, value)."""
    from jeepney.wrappers import unwrap_msg

    ((_sig, value),) = unwrap_msg(bus.send_and_get_reply(msg))
    return value


def _start_scope(bus, name: str, holder: str, slice_: str, what: str) -> tuple[str, int]:
    """StartTransientUnit: a scope with Delegate=yes (in `slice_`, or where
    systemd puts it), the holder its process; then the holder moved to its
    leaf, so the scope's own cgroup holds no process and may hand controllers
    down."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.wrappers import DBusErrorResponse, unwrap_msg

    pid = _spawn_holder(holder)
    manager = DBusAddress(_MANAGER, bus_name=_SYSTEMD, interface=f"{_SYSTEMD}.Manager")
    props = [
        ("Description", ("s", what)),
        ("PIDs", ("au", [pid])),
        ("Delegate", ("b", True)),
        # Gone from systemd once it ends, failed or not (no reset-failed needed).
        ("CollectMode", ("s", "inactive-or-failed")),
    ]
    if slice_:
        props.append(("Slice", ("s", slice_)))
    call = new_method_call(
        manager, "StartTransientUnit", "ssa(sv)a(sa(sv))", (name, "fail", props, [])
    )
    try:
        unwrap_msg(bus.send_and_get_reply(call))
    except DBusErrorResponse as e:
        os.kill(pid, 15)
        raise CgroupError(
            name, errno.EPERM, f"systemd refused the scope ({e.name}: {e.data}):"
        ) from None
    # The job moves the holder; its cgroup file says where once it is done.
    group = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        group = _cgroup_of(pid)
        if group.endswith("/" + name):
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 15)
        raise CgroupError(name, errno.ETIMEDOUT, f"the scope's holder is still in {group!r}:")
    cgroup = os.path.join(CGROUP_ROOT, group.lstrip("/"))
    os.makedirs(os.path.join(cgroup, HOLD), exist_ok=True)
    Path(cgroup, HOLD, "cgroup.procs").write_text(str(pid))
    log.info("systemd.scope_started", scope=name, cgroup=group, holder=pid)
    return group, pid


def _spawn_holder(holder: str) -> int:
    """`corral-init --hold`: it forks the holder, says its pid and exits, so
    the holder is PID 1's child, not the daemon's."""
    out = subprocess.run(
        [holder, "--hold"], stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    if out.returncode != 0:
        raise CgroupError(holder, errno.ECHILD, f"{out.stderr.decode().strip()}:")
    return int(out.stdout)


def _cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def _pids(cgroup: str) -> list[int]:
    try:
        return [int(p) for p in Path(cgroup, "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []
