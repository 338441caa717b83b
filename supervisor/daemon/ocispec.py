"""A container's configuration, as Docker's flags give it, to an OCI spec.

Pure: the daemon decides here what the runtime will be asked to do.
"""

from __future__ import annotations

import msgspec

from protocols import oci
from protocols.api import ContainerConfig
from supervisor.errors import SpecError
from supervisor.runtime import seccomp, users
from supervisor.runtime import spec as specs

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
    if cfg.memory is not None or cfg.memory_swap is not None:
        memory = oci.Memory(limit=cfg.memory, swap=cfg.memory_swap)
    cpu = None
    if cfg.cpus is not None:
        cpu = oci.CPU(quota=int(cfg.cpus * CPU_PERIOD), period=CPU_PERIOD)
    pids = oci.Pids(limit=cfg.pids_limit) if cfg.pids_limit is not None else None
    # Every device denied but those the runtime allows back (Docker's rules).
    devices = [oci.DeviceCgroup(allow=False, access="rwm")]
    return oci.Resources(devices=devices, memory=memory, cpu=cpu, pids=pids)


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


def security(cfg: ContainerConfig, process: oci.Process) -> tuple[bool, oci.Seccomp | None]:
    """--security-opt: (no_new_privileges, the seccomp profile or None)."""
    nnp = process.no_new_privileges
    caps = (process.capabilities.bounding or []) if process.capabilities else []
    profile: oci.Seccomp | None = seccomp.default_profile(caps)
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


def build(
    id: str,
    cfg: ContainerConfig,
    mountpoint: str,
    cgroups_path: str,
    mounts: list[oci.Mount] | None = None,
    passwd_root: str | None = None,
    netns_path: str | None = None,
) -> oci.Spec:
    """The OCI spec for container `id`; its root is the overlay at `mountpoint`,
    read-only with --read-only; `mounts` (volumes, binds, tmpfs) come after
    the standard ones."""
    hostname = cfg.hostname or id[:12]
    uid, gid, extra = users.resolve(cfg.user, passwd_root or cfg.rootfs)
    base = specs.default_spec(cfg.cmd, terminal=cfg.tty, rootfs=mountpoint)
    assert base.process is not None and base.linux is not None
    process = msgspec.structs.replace(
        base.process,
        env=env_with_defaults(cfg.env, hostname, cfg.tty),
        cwd=cfg.workdir or "/",
        user=oci.User(uid=uid, gid=gid, additional_gids=extra or None),
    )
    namespaces = []
    for n in base.linux.namespaces or []:
        if n.type == "network" and cfg.network == "host":
            continue  # the host's network namespace: none of its own
        if n.type == "network" and netns_path:
            n = oci.Namespace(type="network", path=netns_path)
        namespaces.append(n)
    nnp, profile = security(cfg, process)
    process = msgspec.structs.replace(process, no_new_privileges=nnp)
    linux = msgspec.structs.replace(
        base.linux,
        namespaces=namespaces,
        cgroups_path=cgroups_path,
        resources=resources(cfg),
        seccomp=profile,
    )
    return msgspec.structs.replace(
        base,
        process=process,
        hostname=hostname,
        linux=linux,
        root=oci.Root(path=mountpoint, readonly=cfg.read_only),
        mounts=[*(base.mounts or []), *(mounts or [])],
        annotations=dict(cfg.labels) or None,
    )
