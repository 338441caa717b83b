"""POST /containers/create's body (Docker's Config, HostConfig and
NetworkingConfig) to the ContainerConfig `corral create` sends: parsed once,
here, with every field Corral does not have named in a 400 rather than
dropped in silence."""

from __future__ import annotations

from protocols.api import ContainerConfig, MountSpec
from supervisor import checks
from supervisor.dockerapi.http import HttpError
from supervisor.mounts import MountError, parse_mount, parse_tmpfs, parse_volume

NS = 1_000_000_000

# Fields that clients send with their zero values: accepted when zero, refused
# when asked for (Corral has no such feature), so nothing is silently ignored.
_UNSUPPORTED_HOST = (
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemorySwappiness",
    "Links",
    "UsernsMode",
    "UTSMode",
    "CgroupnsMode",
    "Runtime",
    "DeviceRequests",
    "DeviceCgroupRules",
    "StorageOpt",
    "VolumeDriver",
)
_ZERO = (None, 0, "", [], {}, False, -1)


def _list(v) -> list:
    return list(v) if v else []


def _restart(policy: dict | None) -> str:
    if not policy:
        return "no"
    name = policy.get("Name") or "no"
    if name == "on-failure" and policy.get("MaximumRetryCount"):
        return f"on-failure:{int(policy['MaximumRetryCount'])}"
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise HttpError(400, f"invalid restart policy {name!r}")
    return name


def _ports(bindings: dict | None) -> list[str]:
    out = []
    for key, binds in (bindings or {}).items():
        port, _, proto = key.partition("/")
        for b in binds or [{}]:
            ip, hport = (b or {}).get("HostIp", ""), (b or {}).get("HostPort", "")
            if ":" in ip and not ip.startswith("["):
                ip = f"[{ip}]"
            out.append(f"{ip}:{hport}:{port}/{proto or 'tcp'}")
    return out


def _mount(m: dict):
    kind = m.get("Type", "volume")
    parts = [f"type={kind}", f"target={m.get('Target', '')}"]
    if m.get("Source"):
        parts.append(f"source={m['Source']}")
    if m.get("ReadOnly"):
        parts.append("readonly")
    bind = m.get("BindOptions") or {}
    if bind.get("Propagation"):
        parts.append(f"bind-propagation={bind['Propagation']}")
    vol = m.get("VolumeOptions") or {}
    if vol.get("NoCopy"):
        parts.append("volume-nocopy")
    parts += [f"volume-label={k}={v}" for k, v in (vol.get("Labels") or {}).items()]
    tmp = m.get("TmpfsOptions") or {}
    if tmp.get("SizeBytes"):
        parts.append(f"tmpfs-size={tmp['SizeBytes']}")
    if tmp.get("Mode"):
        parts.append(f"tmpfs-mode={tmp['Mode']:o}")
    spec = parse_mount(",".join(parts))
    if kind == "bind" and bind.get("CreateMountpoint"):
        spec.create_source = True
    return spec


def _mounts(hc: dict) -> list[MountSpec]:
    try:
        out = [parse_volume(b) for b in _list(hc.get("Binds"))]
        out += [_mount(m) for m in _list(hc.get("Mounts"))]
        for target, opts in (hc.get("Tmpfs") or {}).items():
            out.append(parse_tmpfs(f"{target}:{opts}" if opts else target))
    except MountError as e:
        raise HttpError(400, f"invalid mount config: {e}") from None
    # The parsers are the client's (protocols/lite): the daemon's own structs here.
    return [MountSpec(**{k: getattr(m, k) for k in m.__slots__}) for m in out]


def _devices(devs: list | None) -> list[str]:
    out = []
    for d in devs or []:
        host = d.get("PathOnHost", "")
        inner = d.get("PathInContainer") or host
        perms = d.get("CgroupPermissions") or "rwm"
        out.append(f"{host}:{inner}:{perms}")
    return out


def _rates(entries: list | None, key: str) -> list[str]:
    return [f"{e['Path']}:{int(e[key])}" for e in entries or []]


def _network(hc: dict, nc: dict) -> tuple[str, list[str], str]:
    """(network, aliases, address) from NetworkMode and EndpointsConfig."""
    mode = hc.get("NetworkMode") or ""
    endpoints = (nc or {}).get("EndpointsConfig") or {}
    if mode in ("", "default") and len(endpoints) == 1:
        mode = next(iter(endpoints))
    if mode in ("default", "bridge"):
        mode = ""
    if len(endpoints) > 1:
        raise HttpError(400, "a container is created on one network: connect it to the others")
    ep = endpoints.get(mode or "bridge") or next(iter(endpoints.values()), None) or {}
    aliases = _list(ep.get("Aliases"))
    address = ((ep.get("IPAMConfig") or {}).get("IPv4Address")) or ""
    return mode, aliases, address


def _duration(ns: int | None, default: float) -> float:
    return ns / NS if ns else default


def config_from(body: dict, name: str) -> ContainerConfig:
    """ContainerConfig from a create body. HttpError(400) names what is wrong."""
    hc = body.get("HostConfig") or {}
    for key in _UNSUPPORTED_HOST:
        if hc.get(key) not in _ZERO and not (key == "CgroupnsMode" and hc[key] == "private"):
            raise HttpError(400, f"HostConfig.{key} is not supported by Corral")
    health = body.get("Healthcheck") or {}
    test = _list(health.get("Test"))
    no_health = test == ["NONE"]
    if test and test[0] == "CMD-SHELL":
        test = ["sh", "-c", *test[1:]]
    elif test and test[0] == "CMD":
        test = test[1:]
    else:
        test = []
    network, aliases, address = _network(hc, body.get("NetworkingConfig") or {})
    log = ((hc.get("LogConfig") or {}).get("Config")) or {}
    try:
        from supervisor.units import parse_log_opts

        log_size, log_files = parse_log_opts([f"{k}={v}" for k, v in log.items()])
    except ValueError as e:
        raise HttpError(400, f"invalid LogConfig: {e}") from None
    ulimits = {u["Name"]: (int(u["Soft"]), int(u["Hard"])) for u in _list(hc.get("Ulimits"))}
    entrypoint = body.get("Entrypoint")
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    image = body.get("Image") or ""
    if not image:
        raise HttpError(400, "config cannot be empty in order to create a container")
    memory = hc.get("Memory") or None
    swap = hc.get("MemorySwap")
    cfg = ContainerConfig(
        name=name or None,
        image=image,
        cmd=_list(cmd),
        entrypoint=None if entrypoint is None else _list(entrypoint),
        env=_list(body.get("Env")),
        workdir=body.get("WorkingDir") or "/",
        user=body.get("User") or "",
        hostname=body.get("Hostname") or "",
        labels=dict(body.get("Labels") or {}),
        tty=bool(body.get("Tty")),
        open_stdin=bool(body.get("OpenStdin")),
        stop_signal=body.get("StopSignal") or "SIGTERM",
        stop_timeout=int(body["StopTimeout"]) if body.get("StopTimeout") is not None else 10,
        expose=sorted(body.get("ExposedPorts") or {}),
        health_cmd=test,
        no_healthcheck=no_health,
        health_interval=_duration(health.get("Interval"), 30.0),
        health_timeout=_duration(health.get("Timeout"), 30.0),
        health_retries=int(health.get("Retries") or 3),
        health_start_period=_duration(health.get("StartPeriod"), 0.0),
        memory=memory,
        memory_swap=swap if swap else (2 * memory if memory else None),
        memory_reservation=hc.get("MemoryReservation") or None,
        cpus=hc["NanoCpus"] / NS if hc.get("NanoCpus") else None,
        cpu_shares=hc.get("CpuShares") or None,
        cpuset_cpus=hc.get("CpusetCpus") or "",
        cpuset_mems=hc.get("CpusetMems") or "",
        pids_limit=hc.get("PidsLimit") if (hc.get("PidsLimit") or 0) > 0 else None,
        restart=_restart(hc.get("RestartPolicy")),
        auto_remove=bool(hc.get("AutoRemove")),
        network=network,
        network_aliases=aliases,
        ipv4_address=address,
        ports=_ports(hc.get("PortBindings")),
        publish_all=bool(hc.get("PublishAllPorts")),
        mounts=_mounts(hc),
        read_only=bool(hc.get("ReadonlyRootfs")),
        volumes_from=_list(hc.get("VolumesFrom")),
        security_opt=_list(hc.get("SecurityOpt")),
        cap_add=_list(hc.get("CapAdd")),
        cap_drop=_list(hc.get("CapDrop")),
        privileged=bool(hc.get("Privileged")),
        devices=_devices(hc.get("Devices")),
        blkio_weight=hc.get("BlkioWeight") or 0,
        device_read_bps=_rates(hc.get("BlkioDeviceReadBps"), "Rate"),
        device_write_bps=_rates(hc.get("BlkioDeviceWriteBps"), "Rate"),
        device_read_iops=_rates(hc.get("BlkioDeviceReadIOps"), "Rate"),
        device_write_iops=_rates(hc.get("BlkioDeviceWriteIOps"), "Rate"),
        ulimits=ulimits,
        shm_size=hc.get("ShmSize") or 0,
        extra_hosts=_list(hc.get("ExtraHosts")),
        init=bool(hc.get("Init")),
        group_add=_list(hc.get("GroupAdd")),
        sysctls=dict(hc.get("Sysctls") or {}),
        oom_score_adj=hc.get("OomScoreAdj") or None,
        pid_mode=hc.get("PidMode") or "",
        ipc_mode=hc.get("IpcMode") or "",
        dns=_list(hc.get("Dns")),
        dns_search=_list(hc.get("DnsSearch")),
        dns_options=_list(hc.get("DnsOptions")),
        log_max_size=log_size,
        log_max_files=log_files,
    )
    try:
        checks.container(cfg)
    except ValueError as e:
        raise HttpError(400, str(e)) from None
    return cfg
