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
default, made by supervisor/runtime/cgroups/scopes.py) that the daemon asks
systemd for over D-Bus, with Delegate=yes: the tree under it is Corral's, and
systemd never writes there. The daemon and the monitors stay in
corral.service, whose cgroup then hands nothing down: a restart finds it as
systemd expects, and the containers, in another unit, never notice.
"""

from __future__ import annotations

import os
import socket as stdsocket

import structlog

from supervisor.runtime.cgroups.scopes import booted, ensure_scope

__all__ = ["DEFAULT_SCOPE", "booted", "ensure_scope", "notify", "run_by_systemd"]

log = structlog.get_logger()

DEFAULT_SCOPE = "corral-containers.scope"


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


def run_by_systemd() -> bool:
    """Are we a systemd unit's process (systemd sets INVOCATION_ID for each)?"""
    return booted() and bool(os.environ.get("INVOCATION_ID"))
