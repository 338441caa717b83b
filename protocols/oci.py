"""The OCI runtime-spec configuration (config.json), as msgspec Structs.

Decoding is strict about types (a string where a number belongs is an error
that names the field) and tolerant of fields it does not know, so a
config.json written by `runc spec` or `crun spec` decodes unmodified.
Field names follow the spec's JSON through `rename="camel"`; the few the
camel rule gets wrong are named explicitly.
"""

from __future__ import annotations

import msgspec

OCI_VERSION = "1.0.2"


class _Base(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True, frozen=True):
    pass


class User(_Base):
    uid: int
    gid: int
    umask: int | None = None
    additional_gids: list[int] | None = None


class Capabilities(_Base):
    bounding: list[str] | None = None
    effective: list[str] | None = None
    inheritable: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


class Rlimit(_Base):
    type: str
    hard: int
    soft: int


class ConsoleSize(_Base):
    height: int
    width: int


class Process(_Base):
    args: list[str]
    cwd: str  # required by the spec (and by crun)
    user: User
    terminal: bool = False
    console_size: ConsoleSize | None = None
    env: list[str] | None = None
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] | None = None
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str | None = None
    selinux_label: str | None = None


class Root(_Base):
    path: str
    readonly: bool = False


class Mount(_Base):
    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] | None = None


class Namespace(_Base):
    type: str
    path: str | None = None


class IDMapping(_Base):
    container_id: int = msgspec.field(name="containerID")
    host_id: int = msgspec.field(name="hostID")
    size: int


class Device(_Base):
    path: str
    type: str
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class DeviceCgroup(_Base):
    allow: bool
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None


class Memory(_Base):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = msgspec.field(default=None, name="kernelTCP")
    swappiness: int | None = None
    disable_oom_killer: bool | None = msgspec.field(default=None, name="disableOOMKiller")
    use_hierarchy: bool | None = None


class CPU(_Base):
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


class Pids(_Base):
    limit: int


class ThrottleDevice(_Base):
    major: int
    minor: int
    rate: int  # bytes or operations per second


class BlockIO(_Base):
    weight: int | None = None  # 10-1000 (0: none, as dockerd writes)
    throttle_read_bps_device: list[ThrottleDevice] | None = None
    throttle_write_bps_device: list[ThrottleDevice] | None = None
    throttle_read_iops_device: list[ThrottleDevice] | None = msgspec.field(
        default=None, name="throttleReadIOPSDevice"
    )
    throttle_write_iops_device: list[ThrottleDevice] | None = msgspec.field(
        default=None, name="throttleWriteIOPSDevice"
    )


class HugepageLimit(_Base):
    page_size: str  # "2MB", "1GB": as the kernel names hugetlb.<size>.*
    limit: int  # bytes


class Resources(_Base):
    devices: list[DeviceCgroup] | None = None
    hugepage_limits: list[HugepageLimit] | None = None
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = msgspec.field(default=None, name="blockIO")
    unified: dict[str, str] | None = None


class SeccompArg(_Base):
    index: int  # the syscall's argument, 0-5
    value: int
    op: str  # SCMP_CMP_NE, _LT, _LE, _EQ, _GE, _GT, _MASKED_EQ (value: mask, valueTwo)
    value_two: int = 0


class SeccompSyscall(_Base):
    names: list[str]
    action: str  # SCMP_ACT_ALLOW, _ERRNO, _KILL, _KILL_PROCESS, _KILL_THREAD, _TRAP, _LOG, _TRACE
    errno_ret: int | None = None
    args: list[SeccompArg] | None = None  # all must hold


class Seccomp(_Base):
    default_action: str
    default_errno_ret: int | None = None
    architectures: list[str] | None = None
    flags: list[str] | None = None
    syscalls: list[SeccompSyscall] | None = None


class Linux(_Base):
    namespaces: list[Namespace] | None = None
    uid_mappings: list[IDMapping] | None = None
    gid_mappings: list[IDMapping] | None = None
    devices: list[Device] | None = None
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: str | None = None
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    sysctl: dict[str, str] | None = None
    mount_label: str | None = None
    seccomp: Seccomp | None = None


class Hook(_Base):
    path: str  # absolute, in the runtime's mount namespace
    args: list[str] | None = None  # execv's argv: args[0] is the program's name
    env: list[str] | None = None
    timeout: int | None = None  # seconds


class Hooks(_Base):
    # When each kind runs, and in which namespaces: supervisor/runtime/hooks.py.
    prestart: list[Hook] | None = None
    create_runtime: list[Hook] | None = None
    create_container: list[Hook] | None = None
    start_container: list[Hook] | None = None
    poststart: list[Hook] | None = None
    poststop: list[Hook] | None = None


class Spec(_Base):
    # Required fields carry no default: omit_defaults would drop them on output.
    oci_version: str
    process: Process | None = None
    root: Root | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] | None = None
    annotations: dict[str, str] | None = None
    hooks: Hooks | None = None
    linux: Linux | None = None


class State(_Base):
    """What `runtime state` prints: the OCI runtime-spec state."""

    oci_version: str
    id: str
    status: str  # creating | created | running | stopped
    bundle: str
    pid: int | None = None
    annotations: dict[str, str] | None = None


_decoder = msgspec.json.Decoder(Spec)
_encoder = msgspec.json.Encoder()


def decode_spec(data: bytes) -> Spec:
    """Decode a config.json; raises msgspec.ValidationError naming the field."""
    return _decoder.decode(data)


def encode(obj: msgspec.Struct) -> bytes:
    return _encoder.encode(obj)
