"""A container's configuration, as Docker's flags give it, to an OCI spec.

Pure: the daemon decides here what the runtime will be asked to do.
"""

from __future__ import annotations

import functools
import os
import stat

import msgspec

from protocols import oci
from protocols.api import ContainerConfig
from supervisor.errors import SpecError
from supervisor.runtime import spec as specs
from supervisor.runtime import users

CPU_PERIOD = 100_000  # microseconds, Docker's


def env_with_defaults(env: list[str], hostname: str, tty: bool) -> list[str]:
    """Docker's: PATH unless given, HOSTNAME, TERM with a tty; later wins."""
    out: dict[str, str] = {}
    out["PATH"] = specs.DEFAULT_PATH.split("=", 1)[1]
    out["HOSTNAME"] = hostname
    if tty:
        out["TERM"] = "xterm"
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return [f"{k}={v}" for k, v in out.items()]


def resources(cfg: ContainerConfig) -> oci.Resources:
    memory = None
    if cfg.memory is not None or cfg.memory_swap is not None or cfg.memory_reservation:
        memory = oci.Memory(
            limit=cfg.memory, swap=cfg.memory_swap, reservation=cfg.memory_reservation
        )
    cpu = None
    if cfg.cpus is not None or cfg.cpu_shares or cfg.cpuset_cpus or cfg.cpuset_mems:
        cpu = oci.CPU(
            quota=int(cfg.cpus * CPU_PERIOD) if cfg.cpus is not None else None,
            period=CPU_PERIOD if cfg.cpus is not None else None,
            shares=cfg.cpu_shares or None,
            cpus=cfg.cpuset_cpus or None,
            mems=cfg.cpuset_mems or None,
        )
    pids = oci.Pids(limit=cfg.pids_limit) if cfg.pids_limit is not None else None
    # Every device denied but those the runtime allows back (Docker's rules).
    devices = [oci.DeviceCgroup(allow=False, access="rwm")]
    return oci.Resources(devices=devices, memory=memory, cpu=cpu, pids=pids, block_io=block_io(cfg))


def block_io(cfg: ContainerConfig) -> oci.BlockIO | None:
    """--device-read-bps and the like, with each PATH made major:minor here,
    on the host whose devices they are."""
    lists = {
        "throttle_read_bps_device": ("--device-read-bps", cfg.device_read_bps),
        "throttle_write_bps_device": ("--device-write-bps", cfg.device_write_bps),
        "throttle_read_iops_device": ("--device-read-iops", cfg.device_read_iops),
        "throttle_write_iops_device": ("--device-write-iops", cfg.device_write_iops),
    }
    if not any(given for _, given in lists.values()):
        return oci.BlockIO(weight=cfg.blkio_weight) if cfg.blkio_weight else None
    out: dict = {"weight": cfg.blkio_weight or None}
    for field, (flag, given) in lists.items():
        throttles = []
        for entry in given:
            path, _, rate = entry.rpartition(":")
            try:
                st = os.stat(path)
            except OSError as e:
                raise SpecError(flag, f"{path}: {e.strerror}") from None
            if not stat.S_ISBLK(st.st_mode):
                raise SpecError(flag, f"{path} is not a block device")
            if not rate.isdigit():
                raise SpecError(flag, f"{entry!r}: the rate is not a number")
            dev = st.st_rdev
            throttles.append(
                oci.ThrottleDevice(major=os.major(dev), minor=os.minor(dev), rate=int(rate))
            )
        out[field] = throttles or None
    return oci.BlockIO(**out)


def user_mounts(cfg: ContainerConfig, volume_path) -> list[oci.Mount]:
    """-v/--mount/--tmpfs as OCI mounts, parents before children.

    `volume_path(name)` gives a named volume's data directory."""
    out = []
    for m in sorted(cfg.mounts, key=lambda m: m.target.count("/")):
        flags = [*m.flags, "ro" if m.readonly else "rw"]
        if m.type == "tmpfs":
            opts = ["nosuid", "nodev", f"mode={m.tmpfs_mode:o}", *flags]
            if m.tmpfs_size:
                opts.append(f"size={m.tmpfs_size}")
            out.append(oci.Mount(destination=m.target, type="tmpfs", source="tmpfs", options=opts))
            continue
        source = m.source if m.type == "bind" else str(volume_path(m.source))
        out.append(
            oci.Mount(
                destination=m.target,
                type="bind",
                source=source,
                options=["rbind", m.propagation, *flags],
            )
        )
    return out


def capabilities(cfg: ContainerConfig) -> list[str]:
    """Docker's default set, with --cap-drop then --cap-add applied (ALL works in
    both), or with --privileged every capability we hold (what the kernel has and
    our bounding set keeps: a container cannot be given more)."""
    from supervisor import _native  # the kernel's capability numbers, from its headers

    known = {n: b for n, b in _native.CAPS.items() if _bounding() >> b & 1}
    if cfg.privileged:
        return sorted(known, key=known.__getitem__)

    def names(values: list[str], flag: str) -> set[str]:
        out = set()
        for v in values:
            name = v.upper()
            if name == "ALL":
                out |= set(known)
                continue
            name = name if name.startswith("CAP_") else "CAP_" + name
            if name not in _native.CAPS:
                raise SpecError(flag, f"unknown capability {v!r}")
            if name not in known:
                raise SpecError(flag, f"{v!r}: this daemon does not hold it, so cannot give it")
            out.add(name)
        return out

    caps = set(specs.DOCKER_CAPS) - names(cfg.cap_drop, "--cap-drop")
    caps |= names(cfg.cap_add, "--cap-add")
    return sorted(caps, key=known.__getitem__)


@functools.cache
def _bounding() -> int:
    """This process's capability bounding set (CapBnd)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << 64) - 1


def device_mounts(cfg: ContainerConfig) -> tuple[list[oci.Device], list[oci.DeviceCgroup]]:
    """--device (and every host device with --privileged): the nodes to create in
    the container and the rules that let it open them."""
    specs_ = list(cfg.devices)
    if cfg.privileged:
        specs_ += [
            f"/dev/{name}"
            for name in sorted(os.listdir("/dev"))
            if _is_device(f"/dev/{name}") and name not in ("console", "ptmx", "tty")
        ]
    devices, rules = [], []
    for text in specs_:
        parts = text.split(":")
        host, inside = parts[0], parts[1] if len(parts) > 1 and parts[1] else parts[0]
        perms = parts[2] if len(parts) > 2 else "rwm"
        if not perms or set(perms) - set("rwm"):
            raise SpecError("--device", f"{text!r}: permissions are a mix of r, w and m")
        try:
            st = os.stat(host)
        except OSError as e:
            raise SpecError("--device", f"{host}: {e.strerror}") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise SpecError("--device", f"{host} is not a device")
        typ = "c" if stat.S_ISCHR(st.st_mode) else "b"
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        devices.append(
            oci.Device(
                path=inside,
                type=typ,
                major=major,
                minor=minor,
                file_mode=stat.S_IMODE(st.st_mode),
                uid=0,
                gid=0,
            )
        )
        rules.append(oci.DeviceCgroup(allow=True, type=typ, major=major, minor=minor, access=perms))
    return devices, rules


def _is_device(path: str) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def security(cfg: ContainerConfig, process: oci.Process) -> tuple[bool, oci.Seccomp | None]:
    """--security-opt: (no_new_privileges, the seccomp profile or None)."""
    from supervisor.runtime import seccomp  # the syscall table: the C build's headers

    nnp = process.no_new_privileges
    caps = (process.capabilities.bounding or []) if process.capabilities else []
    profile: oci.Seccomp | None = None if cfg.privileged else seccomp.default_profile(caps)
    for opt in cfg.security_opt:
        key, eq, value = opt.partition("=")
        if key == "seccomp" and value == "unconfined":
            profile = None
        elif key == "seccomp" and eq:
            profile = seccomp.from_docker(value, caps)
        elif key == "no-new-privileges" and value in ("", "true", "false"):
            nnp = value != "false"
        else:
            raise SpecError(
                "--security-opt", f"{opt!r} is not supported (seccomp=, no-new-privileges)"
            )
    return nnp, profile


# Docker's rule for --sysctl: only what a container's own namespaces scope (the
# IPC ones, and net.* with a network namespace of its own).
_IPC_SYSCTLS = (
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
)


def check_sysctls(cfg: ContainerConfig) -> None:
    for key in cfg.sysctls:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if cfg.ipc_mode == "host" or cfg.ipc_mode.startswith("container:"):
                raise SpecError("--sysctl", f"{key} is not allowed with --ipc {cfg.ipc_mode}")
        elif key.startswith("net."):
            if cfg.network == "host" or cfg.network.startswith("container:"):
                raise SpecError("--sysctl", f"{key} is not allowed with --network {cfg.network}")
        else:
            raise SpecError("--sysctl", f"{key} is not a namespaced sysctl: the host's own")


def check_modes(cfg: ContainerConfig) -> None:
    if cfg.pid_mode not in ("", "host") and not cfg.pid_mode.startswith("container:"):
        raise SpecError("--pid", f"{cfg.pid_mode!r}: host or container:NAME")
    ipc_modes = ("", "private", "shareable", "none", "host")
    if cfg.ipc_mode not in ipc_modes and not cfg.ipc_mode.startswith("container:"):
        raise SpecError(
            "--ipc", f"{cfg.ipc_mode!r}: private, shareable, none, host or container:NAME"
        )
    if cfg.oom_score_adj is not None and not -1000 <= cfg.oom_score_adj <= 1000:
        raise SpecError("--oom-score-adj", f"{cfg.oom_score_adj} is not in -1000..1000")
    if cfg.blkio_weight and not 10 <= cfg.blkio_weight <= 1000:
        raise SpecError("--blkio-weight", f"{cfg.blkio_weight} is not in 10..1000")
    if cfg.cpu_shares is not None and cfg.cpu_shares and not 2 <= cfg.cpu_shares <= 262144:
        raise SpecError("--cpu-shares", f"{cfg.cpu_shares} is not in 2..262144")
    check_sysctls(cfg)


def build(
    id: str,
    cfg: ContainerConfig,
    mountpoint: str,
    cgroups_path: str,
    mounts: list[oci.Mount] | None = None,
    passwd_root: str | None = None,
    netns_path: str | None = None,
    ns_paths: dict[str, str] | None = None,
) -> oci.Spec:
    """The OCI spec for container `id`; its root is the overlay at `mountpoint`,
    read-only with --read-only; `mounts` (volumes, binds, tmpfs) come after
    the standard ones. `ns_paths`: {"pid" | "ipc": a namespace to join}, for
    --pid/--ipc container:NAME."""
    hostname = cfg.hostname or id[:12]
    uid, gid, extra = users.resolve(cfg.user, passwd_root or cfg.rootfs)
    extra = sorted({*extra, *users.group_gids(cfg.group_add, passwd_root or cfg.rootfs)})
    base = specs.default_spec(cfg.cmd, terminal=cfg.tty, rootfs=mountpoint)
    assert base.process is not None and base.linux is not None
    caps = capabilities(cfg)
    rlimits = {rl.type: rl for rl in base.process.rlimits or []}
    for name, (soft, hard) in cfg.ulimits.items():
        key = "RLIMIT_" + name.upper()
        rlimits[key] = oci.Rlimit(type=key, soft=soft, hard=hard)
    process = msgspec.structs.replace(
        base.process,
        args=["/dev/init", *cfg.cmd] if cfg.init else base.process.args,
        rlimits=list(rlimits.values()) or None,
        env=env_with_defaults(cfg.env, hostname, cfg.tty),
        cwd=cfg.workdir or "/",
        user=oci.User(uid=uid, gid=gid, additional_gids=extra or None),
        capabilities=oci.Capabilities(bounding=caps, effective=caps, permitted=caps),
        oom_score_adj=cfg.oom_score_adj,
    )
    joined = {"network": netns_path, **(ns_paths or {})}
    host = {"network": cfg.network == "host", "pid": cfg.pid_mode == "host"}
    host["ipc"] = cfg.ipc_mode == "host"
    namespaces = []
    for n in base.linux.namespaces or []:
        if host.get(n.type):
            continue  # the host's namespace: none of its own
        if joined.get(n.type):
            n = oci.Namespace(type=n.type, path=joined[n.type])
        namespaces.append(n)
    nnp, profile = security(cfg, process)
    process = msgspec.structs.replace(process, no_new_privileges=nnp)
    devices, allowed = device_mounts(cfg)
    res = resources(cfg)
    res = msgspec.structs.replace(res, devices=[*(res.devices or []), *allowed])
    linux = msgspec.structs.replace(
        base.linux,
        namespaces=namespaces,
        cgroups_path=cgroups_path,
        resources=res,
        seccomp=profile,
        devices=[*(base.linux.devices or []), *devices] or None,
        sysctl={**(base.linux.sysctl or {}), **cfg.sysctls} or None,
    )
    std_mounts = base.mounts or []
    if cfg.ipc_mode == "none":  # Docker's: no /dev/shm at all
        std_mounts = [m for m in std_mounts if m.destination != "/dev/shm"]
    elif cfg.ipc_mode == "host":  # the host's /dev/shm, as its IPC namespace is
        std_mounts = [
            oci.Mount(destination="/dev/shm", type="bind", source="/dev/shm", options=["rbind"])
            if m.destination == "/dev/shm"
            else m
            for m in std_mounts
        ]
    if cfg.shm_size and cfg.ipc_mode != "host":
        std_mounts = [
            msgspec.structs.replace(
                m,
                options=[
                    *(o for o in m.options or [] if not o.startswith("size=")),
                    f"size={cfg.shm_size // 1024}k",
                ],
            )
            if m.destination == "/dev/shm"
            else m
            for m in std_mounts
        ]
    if cfg.privileged:  # Docker's --privileged: nothing masked or read-only
        linux = msgspec.structs.replace(linux, masked_paths=None, readonly_paths=None)
        std_mounts = [
            msgspec.structs.replace(m, options=[o for o in m.options or [] if o != "ro"])
            if m.type in ("sysfs", "cgroup")
            else m
            for m in std_mounts
        ]
    return msgspec.structs.replace(
        base,
        process=process,
        hostname=hostname,
        linux=linux,
        root=oci.Root(path=mountpoint, readonly=cfg.read_only),
        mounts=[*std_mounts, *_init_mount(cfg), *(mounts or [])],
        annotations=dict(cfg.labels) or None,
    )


def _init_mount(cfg: ContainerConfig) -> list[oci.Mount]:
    from supervisor import _native

    """--init: the static corral-init, read-only at /dev/init (in the container's
    own /dev, so a read-only root or one without /sbin takes it too)."""
    if not cfg.init:
        return []
    return [
        oci.Mount(
            destination="/dev/init",
            type="bind",
            source=_native.INIT,
            options=["bind", "ro", "nosuid", "nodev"],
        )
    ]
