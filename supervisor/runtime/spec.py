"""The OCI config: Docker's defaults, loading, and validation.

`default_spec()` is what `corral runtime spec` writes: runc's layout with
Docker's security profile (its 14 capabilities, masked and read-only paths).
`load()` decodes a bundle's config.json and `validate()` refuses what Corral
cannot run, naming the field, before anything is created.
"""

from __future__ import annotations

import os
import resource

from protocols import lite
from protocols.lite import minijson
from protocols.lite import oci as oci_lite
from supervisor.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from protocols import oci

# Docker's default capability set (moby oci/caps/defaults.go).
DOCKER_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
DOCKER_MASKED = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
DOCKER_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup")


def default_mounts() -> list[oci.Mount]:
    from protocols import oci  # msgspec: for the daemon and `runtime spec`, not `run`

    M = oci.Mount
    return [
        M(destination="/proc", type="proc", source="proc", options=["nosuid", "noexec", "nodev"]),
        M(
            destination="/dev",
            type="tmpfs",
            source="tmpfs",
            options=["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        M(
            destination="/dev/pts",
            type="devpts",
            source="devpts",
            options=["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        M(
            destination="/dev/shm",
            type="tmpfs",
            source="shm",
            options=["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        M(
            destination="/dev/mqueue",
            type="mqueue",
            source="mqueue",
            options=["nosuid", "noexec", "nodev"],
        ),
        M(
            destination="/sys",
            type="sysfs",
            source="sysfs",
            options=["nosuid", "noexec", "nodev", "ro"],
        ),
        M(
            destination="/sys/fs/cgroup",
            type="cgroup",
            source="cgroup",
            options=["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]


def default_spec(
    args: list[str] | None = None, *, terminal: bool = True, rootfs: str = "rootfs"
) -> oci.Spec:
    """A config like `runc spec` writes, with Docker's security defaults."""
    from protocols import oci

    caps = list(DOCKER_CAPS)
    return oci.Spec(
        oci_version=oci.OCI_VERSION,
        process=oci.Process(
            terminal=terminal,
            args=args or ["sh"],
            env=[DEFAULT_PATH, "TERM=xterm"],
            cwd="/",
            user=oci.User(uid=0, gid=0),
            capabilities=oci.Capabilities(bounding=caps, effective=caps, permitted=caps),
            rlimits=[oci.Rlimit(type="RLIMIT_NOFILE", hard=1024, soft=1024)],
            no_new_privileges=True,
        ),
        root=oci.Root(path=rootfs, readonly=False),
        hostname="corral",
        mounts=default_mounts(),
        linux=oci.Linux(
            namespaces=[oci.Namespace(type=t) for t in NAMESPACES],
            masked_paths=list(DOCKER_MASKED),
            readonly_paths=list(DOCKER_READONLY),
            # Every device denied, then the runtime allows the usual ones back
            # (plan.ALLOWED_DEVICES): runc's spec says the same.
            resources=oci.Resources(devices=[oci.DeviceCgroup(allow=False, access="rwm")]),
        ),
    )


def load(bundle: str | os.PathLike[str]) -> oci_lite.Spec:
    """Read and validate BUNDLE/config.json. Raises SpecError naming the field.

    Decoded by oci_lite (generated from protocols/oci.py, held to msgspec's
    answers by tests/unit/test_oci_lite.py), not msgspec: importing msgspec
    would be most of `corral runtime run`'s start."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SpecError("config.json", f"{path} does not exist") from None
    try:
        raw = minijson.loads(data)
        refuse_unapplied(raw)
        spec = lite.from_json(oci_lite.Spec, raw)
    except lite.ValidationError as e:
        # "Expected `int`, got `str` - at `$.process.user.uid`", as msgspec says it.
        msg = str(e)
        field = msg.rsplit("at `", 1)[-1].rstrip("`") if "at `" in msg else "config.json"
        raise SpecError(field, msg.split(" - at ")[0]) from None
    except (minijson.JSONError, UnicodeDecodeError) as e:
        raise SpecError("config.json", f"not valid JSON: {e}") from None
    validate(spec)
    return spec  # type: ignore[return-value]


# Settings of the runtime spec that Corral does not apply. The spec says a
# setting that cannot be applied MUST be an error, so each is named and
# refused, never dropped (runc and crun apply or refuse them too).
_UNAPPLIED = {
    ("process", "apparmorProfile"): "AppArmor profiles are not applied by Corral",
    ("process", "selinuxLabel"): "SELinux labels are not applied by Corral",
    ("linux", "mountLabel"): "SELinux mount labels are not applied by Corral",
    ("linux", "intelRdt"): "Intel RDT is not supported by Corral",
    ("linux", "personality"): "personality(2) domains are not set by Corral",
}
_UNAPPLIED_RESOURCES = {
    ("memory", "kernel"): "kernel memory limits are not supported (deprecated by the kernel)",
    ("memory", "kernelTCP"): "kernel TCP memory limits are not supported by Corral",
    ("cpu", "realtimeRuntime"): "real-time CPU limits are not applied by Corral",
    ("cpu", "realtimePeriod"): "real-time CPU limits are not applied by Corral",
    ("cpu", "idle"): "SCHED_IDLE cgroups are not applied by Corral",
    ("cpu", "burst"): "CPU burst is not applied by Corral",
    ("blockIO", "leafWeight"): "leaf weights (v1's CFQ) are not applied by Corral",
    ("blockIO", "weightDevice"): "per-device block I/O weights are not applied by Corral",
    ("network",): "net_cls and net_prio (classID, priorities) are not applied by Corral",
    ("rdma",): "RDMA limits are not applied by Corral",
}


def _set(value: object) -> bool:
    """Asked for: null, false and empty are the spec's "unset"; 0 is a value."""
    return value is not None and value is not False and value not in ([], {}, "")


def refuse_unapplied(raw: object) -> None:
    """SpecError naming the first setting of config.json Corral would not apply."""
    if not isinstance(raw, dict):
        return
    for (part, key), why in _UNAPPLIED.items():
        section = raw.get(part)
        if isinstance(section, dict) and _set(section.get(key)):
            raise SpecError(f"{part}.{key}", why)
    linux = raw.get("linux")
    if isinstance(linux, dict):
        refuse_unapplied_resources(linux.get("resources"), "linux.resources")


def refuse_unapplied_resources(res: object, where: str = "resources") -> None:
    """The same, for a LinuxResources object (config.json's, or `update -r`'s)."""
    if not isinstance(res, dict):
        return
    for path, why in _UNAPPLIED_RESOURCES.items():
        value: object = res
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if path[-1] == "leafWeight" and value == 0:
            continue  # no weight: dockerd writes 0 (a weight is 10 to 1000)
        if _set(value):
            raise SpecError(f"{where}.{'.'.join(path)}", why)


def _host_hard_limit(res: int) -> int:
    return resource.getrlimit(res)[1]


def validate(spec: oci.Spec) -> None:
    """Refuse, naming the field, what cannot be run as asked."""
    if spec.process is None:
        raise SpecError("process", "missing: there is nothing to run")
    validate_process(spec.process)
    _validate_rest(spec)


def validate_process(p: oci.Process) -> None:
    """The process part of validation, shared by exec."""
    from supervisor import _native  # the kernel's names, from the C build

    if not p.args:
        raise SpecError("process.args", "must name at least the program to run")
    if not p.cwd.startswith("/"):
        raise SpecError("process.cwd", f"must be absolute, got {p.cwd!r}")
    for i, e in enumerate(p.env or []):
        if "=" not in e:
            raise SpecError(f"process.env[{i}]", f"{e!r} is not NAME=VALUE")
    if p.user.uid < 0 or p.user.gid < 0:
        raise SpecError("process.user", "uid and gid must not be negative")
    size = p.console_size
    if size is not None and not (0 <= size.height <= 0xFFFF and 0 <= size.width <= 0xFFFF):
        raise SpecError("process.consoleSize", f"{size.height}x{size.width} is out of range")
    if p.capabilities is not None:
        for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
            for i, name in enumerate(getattr(p.capabilities, kind) or []):
                if name not in _native.CAPS:
                    raise SpecError(
                        f"process.capabilities.{kind}[{i}]", f"unknown capability {name!r}"
                    )
    for i, rl in enumerate(p.rlimits or []):
        field = f"process.rlimits[{i}]"
        res = getattr(resource, rl.type, None)
        if not rl.type.startswith("RLIMIT_") or res is None:
            raise SpecError(f"{field}.type", f"unknown resource {rl.type!r}")
        if rl.soft > rl.hard:
            raise SpecError(field, f"soft limit {rl.soft} is above the hard limit {rl.hard}")
        host = _host_hard_limit(res)
        if host != resource.RLIM_INFINITY and rl.hard > host:
            raise SpecError(
                field, f"{rl.type} hard limit {rl.hard} is above the host's hard limit {host}"
            )


def _validate_userns(linux, new_userns: bool) -> None:
    """A new user namespace needs both maps, each mapping the namespace's root
    (its setup runs as uid and gid 0 there); maps need the namespace."""
    for field, maps in (("uidMappings", linux.uid_mappings), ("gidMappings", linux.gid_mappings)):
        if not new_userns:
            if maps:
                raise SpecError(f"linux.{field}", "needs a user namespace in linux.namespaces")
            continue
        if not maps:
            raise SpecError(f"linux.{field}", "a user namespace needs it")
        if len(maps) > 340:  # the kernel's limit on lines
            raise SpecError(f"linux.{field}", "at most 340 ranges")
        for i, m in enumerate(maps):
            if m.size <= 0 or m.container_id < 0 or m.host_id < 0:
                raise SpecError(f"linux.{field}[{i}]", "ids must not be negative, size positive")
        if not any(m.container_id <= 0 < m.container_id + m.size for m in maps):
            raise SpecError(f"linux.{field}", "must map id 0 (the namespace's root)")


def _validate_without_mount_ns(spec: oci.Spec, linux) -> None:
    """No mount namespace of its own: the container is chrooted into its root
    in the caller's (or a joined) mount namespace, where nothing may be
    mounted, remounted or pivoted (runc refuses the same)."""
    why = 'needs a new mount namespace (linux.namespaces has no new "mount")'
    for field, value in (
        ("mounts", spec.mounts),
        ("linux.maskedPaths", linux.masked_paths),
        ("linux.readonlyPaths", linux.readonly_paths),
        ("linux.devices", linux.devices),
        ("linux.sysctl", linux.sysctl),
        ("linux.rootfsPropagation", linux.rootfs_propagation),
        ("root.readonly", spec.root.readonly if spec.root else False),
    ):
        if value:
            raise SpecError(field, why)


def _validate_rest(spec: oci.Spec) -> None:
    from supervisor import _native  # the kernel's names, from the C build

    if spec.root is None or not spec.root.path:
        raise SpecError("root.path", "missing: the container needs a root filesystem")
    if getattr(spec, "hooks", None) is not None:
        from supervisor.runtime import hooks  # only for configs that have some

        hooks.validate(spec.hooks)  # type: ignore[arg-type]
    linux = spec.linux or oci_lite.Linux()
    seen: set[str] = set()
    for i, ns in enumerate(linux.namespaces or []):
        if ns.type not in _native.NS_FLAGS:
            raise SpecError(f"linux.namespaces[{i}].type", f"unknown namespace {ns.type!r}")
        if ns.type in seen:
            raise SpecError(f"linux.namespaces[{i}]", f"{ns.type} namespace listed twice")
        if ns.type == "time" or (ns.type == "user" and ns.path):
            what = "joining a user namespace" if ns.type == "user" else "time namespaces"
            raise SpecError(f"linux.namespaces[{i}]", f"{what}: not supported yet")
        if ns.path and not os.path.exists(ns.path):
            raise SpecError(f"linux.namespaces[{i}].path", f"{ns.path} does not exist")
        seen.add(ns.type)
    _validate_userns(linux, "user" in seen)
    if spec.hostname and "uts" not in seen:
        raise SpecError("hostname", "setting a hostname needs a new uts namespace")
    if "mount" not in seen or any(ns.type == "mount" and ns.path for ns in linux.namespaces or []):
        _validate_without_mount_ns(spec, linux)
    for i, m in enumerate(spec.mounts or []):
        if not m.destination.startswith("/"):
            raise SpecError(f"mounts[{i}].destination", f"must be absolute, got {m.destination!r}")
    if linux.rootfs_propagation and linux.rootfs_propagation not in PROPAGATION:
        raise SpecError("linux.rootfsPropagation", f"unknown value {linux.rootfs_propagation!r}")
    res = linux.resources
    if res is not None:
        limit = res.memory.limit if res.memory else None
        if limit is not None and 0 < limit < 6 * 1024 * 1024:
            raise SpecError(
                "linux.resources.memory.limit",
                "below the 6 MiB minimum Docker also enforces",
            )
        if (
            res.cpu
            and res.cpu.quota is not None
            and res.cpu.quota > 0
            and (res.cpu.period or 100000) < 1000
        ):
            raise SpecError("linux.resources.cpu.period", "must be at least 1000 microseconds")


PROPAGATION = {
    "private": ("private",),
    "rprivate": ("private", "rec"),
    "shared": ("shared",),
    "rshared": ("shared", "rec"),
    "slave": ("slave",),
    "rslave": ("slave", "rec"),
    "unbindable": ("unbindable",),
    "runbindable": ("unbindable", "rec"),
}
