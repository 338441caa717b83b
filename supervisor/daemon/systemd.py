"""What the daemon asks of systemd, when systemd runs it: sd_notify, and the
containers' cgroups (`--cgroup-manager systemd`).

Why a scope of its own and not the service's delegated subtree: on cgroup v2 a
cgroup that hands controllers to its children may hold no process (the "no
internal processes" rule), and systemd (before 254's DelegateSubgroup=) puts
a restarted service's new main process in the service's own cgroup. Had the
containers' cgroups lived under corral.service, that cgroup would hand
controllers down, and `systemctl restart corral` would fail with 219/CGROUP
while the containers ran on (tried in the systemd VM, systemd 252).

So the containers live in a transient scope (corral-containers.scope by
default) that the daemon asks systemd for over D-Bus, with Delegate=yes: the
tree under it is Corral's, and systemd never writes there. A scope lives while
a process is in it; one `corral-init --hold` in its `hold` leaf keeps it while
no container runs. The daemon and the monitors stay in corral.service, whose
cgroup then hands nothing down: a restart finds it as systemd expects, and the
containers, in another unit, never notice.
"""

from __future__ import annotations

import errno
import os
import socket as stdsocket
import subprocess
import time
from pathlib import Path

import structlog

from supervisor.errors import CgroupError

log = structlog.get_logger()

CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_SCOPE = "corral-containers.scope"
HOLD = "hold"  # the leaf of the process that keeps the scope alive

_SYSTEMD = "org.freedesktop.systemd1"
_MANAGER = "/org/freedesktop/systemd1"


def notify(*lines: str) -> None:
    """sd_notify(3) for a Type=notify service: one datagram to $NOTIFY_SOCKET
    (a path, or @ for the abstract namespace). Nothing when not run by systemd."""
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_DGRAM | stdsocket.SOCK_CLOEXEC) as s:
        try:
            s.sendto("\n".join(lines).encode(), addr)
        except OSError as e:
            log.warning("systemd.notify_failed", socket=addr, error=str(e))


def booted() -> bool:
    """Is systemd the init system (sd_booted(3)), on a pure cgroup v2 host?"""
    return os.path.isdir("/run/systemd/system") and os.path.exists(
        os.path.join(CGROUP_ROOT, "cgroup.controllers")
    )


def run_by_systemd() -> bool:
    """Are we a systemd unit's process (systemd sets INVOCATION_ID for each)?"""
    return booted() and bool(os.environ.get("INVOCATION_ID"))


def ensure_scope(name: str, holder: str) -> str:
    """The cgroup (a path under the v2 mount) of the delegated scope `name`,
    made now if systemd has no such scope running. `holder` is the program
    that keeps it (corral-init); a scope found without one gets a new one.
    Blocking (D-Bus, waits for systemd): call it from a worker thread."""
    if not name.endswith(".scope") or "/" in name:
        raise CgroupError(name, errno.EINVAL, "a systemd cgroup parent must be a NAME.scope:")
    from jeepney.io.blocking import open_dbus_connection

    try:
        bus = open_dbus_connection(bus="SYSTEM")
    except (OSError, KeyError) as e:
        raise CgroupError(
            "/run/dbus/system_bus_socket", errno.ECONNREFUSED, f"no D-Bus system bus ({e}):"
        ) from None
    with bus:
        group = _running_scope(bus, name)
        if group is None:
            return _start_scope(bus, name, holder)
    cgroup = os.path.join(CGROUP_ROOT, group.lstrip("/"))
    if not _pids(os.path.join(cgroup, HOLD)):  # its holder was killed: a new one
        os.makedirs(os.path.join(cgroup, HOLD), exist_ok=True)
        pid = _spawn_holder(holder)
        Path(cgroup, HOLD, "cgroup.procs").write_text(str(pid))
        log.info("systemd.scope_held_again", scope=name, holder=pid)
    return group


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


def _start_scope(bus, name: str, holder: str) -> str:
    """StartTransientUnit: a scope with Delegate=yes, the holder its process;
    then the holder moved to its leaf, so the scope's own cgroup holds no
    process and may hand controllers down."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.wrappers import DBusErrorResponse, unwrap_msg

    pid = _spawn_holder(holder)
    manager = DBusAddress(_MANAGER, bus_name=_SYSTEMD, interface=f"{_SYSTEMD}.Manager")
    props = [
        ("Description", ("s", "Corral's containers")),
        ("PIDs", ("au", [pid])),
        ("Delegate", ("b", True)),
        # The containers outlive a stop of this scope's job only as its
        # processes do: a stop kills them all, as stopping a machine would.
        ("CollectMode", ("s", "inactive-or-failed")),
    ]
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
    return group


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
