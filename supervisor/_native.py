"""The one module that owns the cffi `lib`: typed wrappers over the C core.

Nothing else imports `lib`. Constants are read from the kernel's and our own
headers through cffi's API mode (native/build_ffi.py), never written here.
"""

from __future__ import annotations

import os

from supervisor._corral_native import ffi, lib  # type: ignore[import-not-found]
from supervisor.errors import SetupError

_LIBEXEC = os.path.join(os.path.dirname(os.path.realpath(__file__)), "libexec")
MONITOR = os.path.join(_LIBEXEC, "corral-monitor")
INIT = os.path.join(_LIBEXEC, "corral-init")  # run --init

# Constants, typed for the rest of the package.
NS_FLAGS: dict[str, int] = {
    "mount": lib.CLONE_NEWNS,
    "uts": lib.CLONE_NEWUTS,
    "ipc": lib.CLONE_NEWIPC,
    "network": lib.CLONE_NEWNET,
    "pid": lib.CLONE_NEWPID,
    "cgroup": lib.CLONE_NEWCGROUP,
    "user": lib.CLONE_NEWUSER,
    "time": lib.CLONE_NEWTIME,
}
_NAMES = dir(lib)  # once: it lists every constant (the syscalls' too)
MS: dict[str, int] = {
    name[3:].lower(): getattr(lib, name) for name in _NAMES if name.startswith("MS_")
}
CAPS: dict[str, int] = {name: getattr(lib, name) for name in _NAMES if name.startswith("CAP_")}
S_IFCHR: int = lib.S_IFCHR
S_IFBLK: int = lib.S_IFBLK
S_IFIFO: int = lib.S_IFIFO

TAG = {
    name[len("CORRAL_T_") :]: getattr(lib, name) for name in _NAMES if name.startswith("CORRAL_T_")
}
# Syscall numbers of this build's architecture, from the C library's headers.
SYSCALLS: dict[str, int] = {
    name[len("__NR_") :]: getattr(lib, name) for name in _NAMES if name.startswith("__NR_")
}
AUDIT_ARCH: int = lib.CORRAL_AUDIT_ARCH
MOUNT_FS: int = lib.CORRAL_MOUNT_FS
MOUNT_BIND: int = lib.CORRAL_MOUNT_BIND
MOUNT_REMOUNT: int = lib.CORRAL_MOUNT_REMOUNT
REPORT_SIZE: int = ffi.sizeof("struct corral_report")


def step_name(step: int) -> str:
    return ffi.string(lib.corral_step_name(step)).decode()


def spawn(
    path: str,
    argv: list[str],
    env: list[str],
    fds: list[int],
    *,
    setsid: bool,
    ns_pidfd: int = -1,
    ns_types: int = 0,
    what: str = "spawning the monitor",
) -> tuple[int, int]:
    """Start `path` without fork(): clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD).

    `fds[i]` becomes descriptor i in the child (-1: closed there). With
    `ns_pidfd`, the child first enters that process's `ns_types` namespaces
    (setns on a pidfd), and `path` is found in its mount namespace. Returns
    (pid, pidfd). Raises SetupError naming `what` and errno.
    """
    keep = [ffi.new("char[]", a.encode()) for a in argv]
    keep_env = [ffi.new("char[]", e.encode()) for e in env]
    c_argv = ffi.new("char *[]", [*keep, ffi.NULL])
    c_env = ffi.new("char *[]", [*keep_env, ffi.NULL])
    c_fds = ffi.new("int[]", fds)
    pidfd = ffi.new("int *")
    ffi.errno = 0
    pid = lib.corral_spawn(
        path.encode(), c_argv, c_env, c_fds, len(fds), int(setsid), ns_pidfd, ns_types, pidfd
    )
    if pid < 0:
        raise SetupError(what, ffi.errno, path)
    return pid, pidfd[0]


def parse_report(data: bytes) -> tuple[int, int, SetupError | None]:
    """Decode the monitor's report: (kind, pid, error or None)."""
    if len(data) != REPORT_SIZE:
        return (
            lib.CORRAL_R_FAILED,
            0,
            SetupError("the monitor", 0, "", "it exited before reporting (see its stderr)"),
        )
    r = ffi.from_buffer("struct corral_report *", data)
    if r.kind in (lib.CORRAL_R_CREATED, lib.CORRAL_R_HOOKS):
        return r.kind, r.pid, None
    e = r.error
    err = SetupError(
        step_name(e.step),
        e.err,
        ffi.string(e.path).decode(errors="replace"),
        ffi.string(e.detail).decode(errors="replace"),
    )
    return r.kind, r.pid, err


REPORT_CREATED: int = lib.CORRAL_R_CREATED
REPORT_HOOKS: int = lib.CORRAL_R_HOOKS


def reap(pidfd: int) -> int:
    """waitid() on a child's pidfd; its status as a shell gives it (128+signal
    when a signal ended it)."""
    info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
    assert info is not None
    return info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status


def pidfd_open(pid: int) -> int:
    """A pidfd for `pid` (os.pidfd_open, kept here so callers need one import)."""
    return os.pidfd_open(pid)


def plan_check(plan: bytes) -> int:
    """Parse `plan` with the C parser the monitor uses; the record count.

    Raises SetupError (step "reading the plan") for a malformed plan.
    """
    err = ffi.new("struct corral_error *")
    n = lib.corral_plan_check(plan, len(plan), err)
    if n < 0:
        raise SetupError(step_name(err.step), err.err, "", ffi.string(err.detail).decode())
    return n


def _open_in_root(root: str, path: str, flags: int) -> int:
    ffi.errno = 0
    fd = lib.corral_open_in_root(root.encode(), path.encode(), flags)
    if fd < 0:
        raise OSError(ffi.errno, os.strerror(ffi.errno), f"{root}:{path}")
    return fd


# A path this long or longer is resolved in hops (the kernel takes PATH_MAX, 4096
# bytes with the NUL, per lookup; a container's tree can be deeper than that).
_HOP = 3800


def open_in_root(root: str, path: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor for `path` resolved inside `root` (never outside it), at any
    length: a path past PATH_MAX is resolved a part at a time, each part inside
    the directory the last reached (so '..' and absolute symlinks there stop at
    that directory: never further out than `root`).

    Raises OSError with the errno and the path.
    """
    if len(path.encode()) < _HOP:
        return _open_in_root(root, path, flags)
    hops = _split(path)
    fd = _open_in_root(root, hops[0], os.O_PATH | os.O_DIRECTORY)
    try:
        for i, hop in enumerate(hops[1:], 2):
            ffi.errno = 0
            nxt = lib.corral_open_beneath(
                fd, hop.encode(), flags if i == len(hops) else os.O_PATH | os.O_DIRECTORY
            )
            if nxt < 0:
                raise OSError(ffi.errno, os.strerror(ffi.errno), f"{root}:{path}")
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _split(path: str) -> list[str]:
    """`path` in parts of fewer than _HOP bytes, cut at slashes."""
    hops, cur = [], ""
    for comp in path.split("/"):
        if cur and len(cur.encode()) + len(comp.encode()) + 1 >= _HOP:
            hops.append(cur)
            cur = ""
        cur = f"{cur}/{comp}" if cur else comp
    hops.append(cur or "/")
    return hops


def setns(fd: int, nstype: int) -> None:
    ffi.errno = 0
    if lib.corral_setns(fd, nstype) < 0:
        raise SetupError("setns", ffi.errno, f"/proc/self/fd/{fd}")


def bpf_device_attach(program: bytes, cgroup_fd: int) -> None:
    """Attach an eBPF device program to a cgroup v2 directory; OSError names
    bpf() and, when the verifier refused the program, what it said."""
    if lib.corral_bpf_device_attach(program, len(program) // 8, cgroup_fd, ffi.NULL, 0) == 0:
        return
    err = ffi.errno
    log = ffi.new("char[]", 4096)
    lib.corral_bpf_device_attach(program, len(program) // 8, cgroup_fd, log, 4096)
    said = [
        line
        for line in ffi.string(log).decode(errors="replace").strip().splitlines()
        if not line.startswith("processed ")
    ]
    detail = f" (the verifier: {said[-1]})" if said else ""
    raise OSError(err, f"bpf(BPF_PROG_LOAD/ATTACH, a device program){detail}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2); OSError names the call, the target and errno."""
    if lib.corral_mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()):
        err = ffi.errno
        raise OSError(err, f"mount({fstype} on {target}): {os.strerror(err)}")


def umount(target: str, detach: bool = True) -> None:
    """umount2(2), lazily (MNT_DETACH) by default."""
    if lib.corral_umount(target.encode(), 2 if detach else 0):  # MNT_DETACH
        err = ffi.errno
        raise OSError(err, f"umount2({target}): {os.strerror(err)}")
