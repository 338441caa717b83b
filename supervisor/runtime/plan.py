"""From an OCI spec to the C core's plan: what to mount, which limits, which ids.

Everything that is decision lives here in Python, as pure functions; the C
child only carries the records out in order (native/corral.h documents each).
"""

from __future__ import annotations

import os
import resource
import struct

from protocols.lite import Lite
from protocols.lite import oci as oci_lite
from supervisor import _native
from supervisor.errors import SpecError
from supervisor.runtime.cgroups import DeviceRule, Limits
from supervisor.runtime.spec import PROPAGATION

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the runtime reads specs with oci_lite, not msgspec
    from collections.abc import Iterable

    from protocols import oci

T = _native.TAG
MS = _native.MS

# mount(8) option words -> (set these flags, clear these flags)
_FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "ro": (MS["rdonly"], 0),
    "rw": (0, MS["rdonly"]),
    "nosuid": (MS["nosuid"], 0),
    "suid": (0, MS["nosuid"]),
    "nodev": (MS["nodev"], 0),
    "dev": (0, MS["nodev"]),
    "noexec": (MS["noexec"], 0),
    "exec": (0, MS["noexec"]),
    "sync": (MS["synchronous"], 0),
    "async": (0, MS["synchronous"]),
    "dirsync": (MS["dirsync"], 0),
    "remount": (MS["remount"], 0),
    "mand": (MS["mandlock"], 0),
    "nomand": (0, MS["mandlock"]),
    "atime": (0, MS["noatime"]),
    "noatime": (MS["noatime"], 0),
    "diratime": (0, MS["nodiratime"]),
    "nodiratime": (MS["nodiratime"], 0),
    "bind": (MS["bind"], 0),
    "rbind": (MS["bind"] | MS["rec"], 0),
    "relatime": (MS["relatime"], 0),
    "norelatime": (0, MS["relatime"]),
    "strictatime": (MS["strictatime"], 0),
    "nostrictatime": (0, MS["strictatime"]),
    "lazytime": (MS["lazytime"], 0),
    "nolazytime": (0, MS["lazytime"]),
    "defaults": (0, 0),
}
_PROP_FLAG = {
    "private": MS["private"],
    "shared": MS["shared"],
    "slave": MS["slave"],
    "unbindable": MS["unbindable"],
    "rec": MS["rec"],
}


class MountOptions(Lite):
    flags: int
    propagation: int
    data: str


def parse_mount_options(options: Iterable[str]) -> MountOptions:
    """Split mount(8) words into MS_* flags, propagation flags and fs data."""
    flags = prop = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            on, off = _FLAG_OPTIONS[opt]
            flags = (flags | on) & ~off
        elif opt in PROPAGATION:
            for word in PROPAGATION[opt]:
                prop |= _PROP_FLAG[word]
        else:
            data.append(opt)
    return MountOptions(flags, prop, ",".join(data))


def propagation_flags(name: str | None) -> int:
    flags = 0
    for word in PROPAGATION[name or "rprivate"]:
        flags |= _PROP_FLAG[word]
    return flags


def capability_mask(names: Iterable[str] | None) -> int:
    mask = 0
    for n in names or ():
        mask |= 1 << _native.CAPS[n]
    return mask


# What runc allows after a spec's own device rules (libcontainer's
# AllowedDevices): mknod of any node (opening one is what the rules guard), the
# OCI default devices, ptys, the console and /dev/net/tun.
ALLOWED_DEVICES = (
    DeviceRule(True, "c", None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3),  # null
    DeviceRule(True, "c", 1, 5),  # zero
    DeviceRule(True, "c", 1, 7),  # full
    DeviceRule(True, "c", 1, 8),  # random
    DeviceRule(True, "c", 1, 9),  # urandom
    DeviceRule(True, "c", 5, 0),  # tty
    DeviceRule(True, "c", 5, 1),  # console
    DeviceRule(True, "c", 5, 2),  # ptmx
    DeviceRule(True, "c", 136, None),  # pts/*
    DeviceRule(True, "c", 10, 200),  # net/tun
)


def device_rules(linux: oci.Linux | None) -> tuple[DeviceRule, ...]:
    """The spec's device rules, then runc's allowed devices and the devices the
    spec creates. A spec without rules restricts nothing (the cgroup inherits
    its parent's list); the default spec denies everything first, as runc's."""
    if linux is None:
        return ()
    spec_rules = (linux.resources.devices if linux.resources else None) or []
    rules = []
    for i, d in enumerate(spec_rules):
        typ = d.type or "a"
        if typ not in ("a", "c", "b"):
            raise SpecError(f"linux.resources.devices[{i}].type", f"{typ!r} is not a, c or b")
        access = d.access or "rwm"
        if not access or set(access) - set("rwm"):
            raise SpecError(f"linux.resources.devices[{i}].access", f"{access!r} is not r, w, m")
        rules.append(DeviceRule(d.allow, typ, d.major, d.minor, access))
    if not rules:
        return ()
    # A device the spec creates may be opened, unless a rule of its own says how.
    covered = {(r.type, r.major, r.minor) for r in rules}
    created = [
        DeviceRule(True, t, d.major, d.minor)
        for d in linux.devices or []
        if d.type in ("c", "u", "b")
        and d.major is not None
        and ((t := "c" if d.type in ("c", "u") else "b"), d.major, d.minor) not in covered
    ]
    return (*rules, *ALLOWED_DEVICES, *created)


def limits_from_spec(res: oci.Resources | None, linux: oci.Linux | None = None) -> Limits:
    devices = device_rules(linux)
    if res is None:
        return Limits(devices=devices)
    mem, cpu, pids, bio = res.memory, res.cpu, res.pids, res.block_io
    throttles = []
    for kind, attr in IO_THROTTLES:
        for t in (getattr(bio, attr) or []) if bio else []:
            throttles.append((kind, t.major, t.minor, t.rate))
    return Limits(
        io_throttle=tuple(throttles),
        io_weight=bio.weight if bio and bio.weight else None,  # 0: none, as dockerd writes
        hugetlb=tuple((h.page_size, h.limit) for h in res.hugepage_limits or ()),
        devices=devices,
        memory=mem.limit if mem else None,
        memory_swap=mem.swap if mem else None,
        memory_reservation=mem.reservation if mem else None,
        memory_swappiness=mem.swappiness if mem else None,
        oom_kill_disable=bool(mem and mem.disable_oom_killer),
        cpu_shares=cpu.shares if cpu else None,
        cpu_quota=cpu.quota if cpu else None,
        cpu_period=cpu.period if cpu else None,
        cpuset_cpus=cpu.cpus if cpu else None,
        cpuset_mems=cpu.mems if cpu else None,
        pids=pids.limit if pids else None,
        unified=dict(res.unified or {}),
    )


# OCI's blockIO throttle lists, by the io.max key each becomes.
IO_THROTTLES = (
    ("rbps", "throttle_read_bps_device"),
    ("wbps", "throttle_write_bps_device"),
    ("riops", "throttle_read_iops_device"),
    ("wiops", "throttle_write_iops_device"),
)


# The devices every container gets (OCI runtime-spec "Default Devices").
DEFAULT_DEVICES = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
]
DEFAULT_SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
    ("/proc/kcore", "/dev/core"),
]


class PlanWriter:
    """Encodes records: u32 tag, u32 length, payload padded to 8 bytes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def add(self, tag: int, payload: bytes = b"") -> None:
        pad = -len(payload) % 8
        self._parts.append(struct.pack("=II", tag, len(payload)) + payload + b"\0" * pad)

    def strs(self, tag: int, *values: str, prefix: bytes = b"") -> None:
        self.add(tag, prefix + b"".join(os.fsencode(v) + b"\0" for v in values))

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class Paths(Lite):
    """Host-side files the plan refers to."""

    rootfs: str
    bundle: str
    exit_file: str
    start_fifo: str | None = None
    log_file: str | None = None
    log_max_size: int = 0  # bytes per log file; 0: unbounded
    log_max_files: int = 1
    ctl_fifo: str | None = None  # the monitor reads "ROWS COLS" resizes of the pty here
    seccomp: bytes | None = None  # the compiled filter (supervisor/runtime/seccomp.py)
    stdin_fifo: str | None = None  # the container's stdin, on which the monitor keeps a writer
    # Copy-on-write root: (lowerdirs joined by ":", upperdir, workdir); the
    # overlay is mounted at `rootfs` inside the container's mount namespace.
    overlay: tuple[str, str, str] | None = None
    # The setup waits on this FIFO before pivot_root while the caller runs the
    # prestart, createRuntime and createContainer hooks.
    hooks_fifo: str | None = None
    # runc's model (corral-runc): the monitor hands the created container over
    # to the caller's subreaper and exits; the pty master goes to this console
    # socket ("" for none). None: the monitor stays its parent.
    handoff: str | None = None
    no_pivot: bool = False  # move the root over / and chroot (runc --no-pivot)
    preserve_fds: int = 0  # the caller's descriptors 3.. passed on (runc --preserve-fds)


def build(spec: oci.Spec, paths: Paths, cgroup) -> bytes:
    """The plan for `spec`, with the cgroup already created."""
    w = PlanWriter()
    process = spec.process
    assert process is not None and spec.root is not None
    linux = spec.linux or oci_lite.Linux()

    w.strs(T["ROOTFS"], paths.rootfs)
    if paths.overlay:
        w.strs(T["OVERLAY"], *paths.overlay)
    if spec.root.readonly:
        w.add(T["ROOTFS_RO"])
    w.add(T["ROOT_PROPAGATION"], struct.pack("=Q", propagation_flags(linux.rootfs_propagation)))
    ns_flags = 0
    for ns in linux.namespaces or []:
        if ns.path:
            w.strs(T["NS_PATH"], ns.path, prefix=struct.pack("=Q", _native.NS_FLAGS[ns.type]))
        else:
            ns_flags |= _native.NS_FLAGS[ns.type]
    w.add(T["NAMESPACES"], struct.pack("=Q", ns_flags))
    if ns_flags & _native.NS_FLAGS["user"]:
        for tag, maps in (("UID_MAP", linux.uid_mappings), ("GID_MAP", linux.gid_mappings)):
            w.strs(T[tag], "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps or []))
    if spec.hostname:
        w.strs(T["HOSTNAME"], spec.hostname)

    has_dev = False
    for m in spec.mounts or []:
        has_dev |= m.destination == "/dev"
        _add_mount(w, m, paths.bundle, cgroup)
    if has_dev:
        for path, major, minor in DEFAULT_DEVICES:
            w.add(
                T["DEVICE"],
                struct.pack("=IIIII", _native.S_IFCHR | 0o666, major, minor, 0, 0)
                + os.fsencode(path)
                + b"\0",
            )
        for target, link in DEFAULT_SYMLINKS:
            w.strs(T["SYMLINK"], target, link)
    for d in linux.devices or []:
        kind = {
            "c": _native.S_IFCHR,
            "u": _native.S_IFCHR,
            "b": _native.S_IFBLK,
            "p": _native.S_IFIFO,
        }[d.type]
        mode = kind | (d.file_mode if d.file_mode is not None else 0o666)
        w.add(
            T["DEVICE"],
            struct.pack("=IIIII", mode, d.major or 0, d.minor or 0, d.uid or 0, d.gid or 0)
            + os.fsencode(d.path)
            + b"\0",
        )
    for key, value in (linux.sysctl or {}).items():
        w.strs(T["SYSCTL"], key, value)
    for path in linux.masked_paths or []:
        w.strs(T["MASK"], path)
    for path in linux.readonly_paths or []:
        w.strs(T["READONLY"], path)

    _add_process(w, process)
    for f in cgroup.join_files():
        w.strs(T["CGROUP_JOIN"], f)
    if cgroup.clone_dir():
        w.strs(T["CGROUP_DIR"], cgroup.clone_dir())
    if cgroup.oom_file():
        w.strs(T["OOM_FILE"], cgroup.oom_file())
    w.strs(T["EXIT_FILE"], paths.exit_file)
    if paths.start_fifo:
        w.strs(T["START_FIFO"], paths.start_fifo)
    if paths.hooks_fifo:
        w.strs(T["HOOKS_FIFO"], paths.hooks_fifo)
    if paths.log_file:
        w.strs(T["LOG_FILE"], paths.log_file)
        if paths.log_max_size:
            w.add(T["LOG_LIMITS"], struct.pack("=QI", paths.log_max_size, paths.log_max_files))
    if paths.ctl_fifo:
        w.strs(T["CTL_FIFO"], paths.ctl_fifo)
    if paths.seccomp:
        w.add(T["SECCOMP"], paths.seccomp)
    if paths.stdin_fifo:
        w.strs(T["STDIN_FIFO"], paths.stdin_fifo)
    if paths.handoff is not None:
        w.strs(T["HANDOFF"], paths.handoff)
    if paths.no_pivot:
        w.add(T["NO_PIVOT"])
    if paths.preserve_fds:
        w.add(T["PRESERVE_FDS"], struct.pack("=I", paths.preserve_fds))
    return w.bytes()


# Namespaces an exec joins, as /proc/PID/ns names; the pid namespace is
# entered by the monitor (it applies to children), the rest by the child.
_EXEC_NAMESPACES = {
    "pid": "pid",
    "mnt": "mount",
    "uts": "uts",
    "ipc": "ipc",
    "net": "network",
    "cgroup": "cgroup",
}


def build_exec(
    process: oci.Process,
    pid: int,
    cgroup,
    ctl_fifo: str | None = None,
    seccomp: bytes | None = None,
    handoff: str | None = None,
    preserve_fds: int = 0,
) -> bytes:
    """The plan for a process joining the running container whose init is
    `pid`; `handoff` and `preserve_fds` as Paths'."""
    w = PlanWriter()
    w.add(T["JOIN"])
    w.add(T["NAMESPACES"], struct.pack("=Q", 0))
    user = f"/proc/{pid}/ns/user"
    if os.stat(user).st_ino != os.stat("/proc/self/ns/user").st_ino:
        # Its own user namespace: entered first, so that the others, which it
        # owns, are joined as its root, and the process runs mapped.
        w.strs(T["NS_PATH"], user, prefix=struct.pack("=Q", _native.NS_FLAGS["user"]))
    for proc_name, spec_name in _EXEC_NAMESPACES.items():
        w.strs(
            T["NS_PATH"],
            f"/proc/{pid}/ns/{proc_name}",
            prefix=struct.pack("=Q", _native.NS_FLAGS[spec_name]),
        )
    _add_process(w, process)
    for f in cgroup.join_files():
        w.strs(T["CGROUP_JOIN"], f)
    if cgroup.clone_dir():
        w.strs(T["CGROUP_DIR"], cgroup.clone_dir())
    if ctl_fifo:
        w.strs(T["CTL_FIFO"], ctl_fifo)
    if seccomp:
        w.add(T["SECCOMP"], seccomp)
    if handoff is not None:
        w.strs(T["HANDOFF"], handoff)
    if preserve_fds:
        w.add(T["PRESERVE_FDS"], struct.pack("=I", preserve_fds))
    return w.bytes()


def _add_process(w: PlanWriter, process: oci.Process) -> None:
    if process.terminal:
        w.add(T["TERMINAL"])
        size = process.console_size
        if size is not None and size.height and size.width:
            w.add(T["CONSOLE_SIZE"], struct.pack("=II", size.height, size.width))
    for rl in process.rlimits or []:
        w.add(T["RLIMIT"], struct.pack("=IIQQ", getattr(resource, rl.type), 0, rl.soft, rl.hard))
    if process.oom_score_adj is not None:
        w.add(T["OOM_SCORE_ADJ"], struct.pack("=i", process.oom_score_adj))
    w.strs(T["CWD"], process.cwd)
    user = process.user
    w.add(T["USER"], struct.pack("=II", user.uid, user.gid))
    w.add(
        T["GROUPS"],
        struct.pack(f"={len(user.additional_gids or [])}I", *(user.additional_gids or [])),
    )
    if user.umask is not None:
        w.add(T["UMASK"], struct.pack("=I", user.umask))
    caps = process.capabilities
    if caps is not None:
        inheritable, permitted = capability_mask(caps.inheritable), capability_mask(caps.permitted)
        # The kernel raises an ambient cap only if it is permitted and
        # inheritable; runc and crun skip the others (runc spec lists ambient
        # caps without inheritable ones), and so do we.
        ambient = capability_mask(caps.ambient) & inheritable & permitted
        w.add(
            T["CAPS"],
            struct.pack(
                "=5Q",
                capability_mask(caps.bounding),
                capability_mask(caps.effective),
                inheritable,
                permitted,
                ambient,
            ),
        )
    if process.no_new_privileges:
        w.add(T["NO_NEW_PRIVS"])
    for a in process.args:
        w.strs(T["ARG"], a)
    for e in process.env or []:
        w.strs(T["ENV"], e)


def _add_mount(w: PlanWriter, m: oci.Mount, bundle: str, cgroup) -> None:
    opts = parse_mount_options(m.options or [])
    fstype = m.type or ""
    if fstype == "bind" or opts.flags & MS["bind"]:
        src = m.source or ""
        if not os.path.isabs(src):
            src = os.path.join(bundle, src)
        _mount_rec(
            w,
            _native.MOUNT_BIND,
            opts.flags | MS["bind"],
            opts.propagation,
            src,
            m.destination,
            "",
            "",
        )
        return
    if fstype == "cgroup":
        _add_cgroup_mount(w, m.destination, opts, cgroup)
        return
    _mount_rec(
        w,
        _native.MOUNT_FS,
        opts.flags,
        opts.propagation,
        m.source or fstype,
        m.destination,
        fstype,
        opts.data,
    )


def _add_cgroup_mount(w: PlanWriter, dest: str, opts: MountOptions, cgroup) -> None:
    """cgroup2 where the container's cgroup is v2; on v1 a tmpfs with each
    hierarchy mounted in it (the container is in its cgroup namespace, so each
    shows the container's own cgroup as its root), then made read-only."""
    if cgroup.version == "v2":
        _mount_rec(
            w, _native.MOUNT_FS, opts.flags, opts.propagation, "cgroup2", dest, "cgroup2", ""
        )
        return
    base_flags = opts.flags & ~MS["rdonly"]
    _mount_rec(w, _native.MOUNT_FS, base_flags, 0, "tmpfs", dest, "tmpfs", "mode=755")
    # Only the hierarchies the container joined: in the others its cgroup
    # namespace root would be the host's cgroup, and show the host's tree.
    for cm in cgroup.mounts:
        name = os.path.basename(cm.path)
        data = ",".join(o for o in cm.options.split(",") if o not in ("rw", "ro"))
        _mount_rec(w, _native.MOUNT_FS, opts.flags, 0, "cgroup", f"{dest}/{name}", "cgroup", data)
    if opts.flags & MS["rdonly"]:
        w.strs(T["TMPFS_RO"], dest)


def _mount_rec(
    w: PlanWriter, kind: int, flags: int, prop: int, src: str, dest: str, fstype: str, data: str
) -> None:
    w.strs(T["MOUNT"], src, dest, fstype, data, prefix=struct.pack("=QQI", flags, prop, kind))
