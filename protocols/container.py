"""What a container is asked to be: its configuration, as `corral create`/`run`
send it and the daemon stores it (ContainerConfig), with its mounts.

Frozen msgspec Structs; new fields only appended, with defaults (the
schema-evolution rules api.py follows). protocols/lite/api.py mirrors them.
"""

from __future__ import annotations

import msgspec


class MountSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A -v / --mount / --tmpfs, parsed (supervisor/volumes/spec.py)."""

    type: str  # bind | volume | tmpfs
    target: str
    source: str = ""  # bind: host path; volume: name ("" = anonymous, named at create)
    readonly: bool = False
    propagation: str = "rprivate"
    flags: list[str] = []  # nosuid, nodev, noexec
    create_source: bool = False  # -v creates a missing bind source; --mount refuses
    nocopy: bool = False  # volume: do not fill a new volume from the image
    labels: dict[str, str] = {}  # volume-label=
    tmpfs_size: int = 0  # bytes; 0: the kernel's default (half of RAM)
    tmpfs_mode: int = 0o1777


class ContainerConfig(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What `corral create`/`run` asks for; stored with the container."""

    name: str | None = None
    rootfs: str = ""  # until images exist: a host directory, used copy-on-write
    cmd: list[str] = []
    env: list[str] = []
    workdir: str = "/"
    user: str = ""  # uid[:gid] or name[:group], resolved in the rootfs
    hostname: str = ""
    labels: dict[str, str] = {}
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # memory+swap bytes; -1 unlimited
    cpus: float | None = None
    pids_limit: int | None = None
    stop_signal: str = "SIGTERM"
    stop_timeout: int = 10  # seconds
    tty: bool = False
    open_stdin: bool = False
    auto_remove: bool = False
    network: str = ""  # "": the daemon's default network ("bridge")
    # --log-opt max-size, max-file. Asked: 0 is the daemon's default (its own
    # --log-opt, Docker's local driver's 20m x 5 unless set), -1 no limit.
    # Stored (resolved at create): the bytes per file, or -1 (or 0, before
    # defaults existed) for no rotation; files kept, 0 as asked: the default.
    log_max_size: int = 0
    log_max_files: int = 0
    # Restart policy: no | on-failure[:N] | always | unless-stopped; backoff in
    # seconds (None: the daemon's defaults, themselves Docker's by default).
    restart: str = "no"
    restart_delay: float | None = None
    restart_max_delay: float | None = None
    restart_reset_after: float | None = None
    # Health check: the command runs inside the container, as exec does.
    health_cmd: list[str] = []
    health_interval: float = 30.0  # seconds
    health_timeout: float = 30.0
    health_retries: int = 3
    health_start_period: float = 0.0
    health_on_failure: str = "none"  # none | kill | restart | stop (Podman's flag)
    mounts: list[MountSpec] = []
    read_only: bool = False  # a read-only root (volumes and tmpfs stay writable)
    volumes_from: list[str] = []  # CONTAINER[:ro|rw], resolved at create
    image: str = ""  # an image reference instead of rootfs
    image_id: str = ""  # set by the daemon at create: the image it resolved to
    entrypoint: list[str] | None = None  # --entrypoint (None: the image's)
    no_healthcheck: bool = False  # --no-healthcheck: not even the image's
    network_aliases: list[str] = []  # more names on a user network
    ports: list[str] = []  # -p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp]
    expose: list[str] = []  # PORT[/tcp|udp]: --expose, with the image's ExposedPorts at create
    publish_all: bool = False  # -P: every exposed port on a free host port
    # --security-opt: "seccomp=unconfined", "seccomp=" + a profile's JSON (the
    # client reads the file, as Docker's does), "no-new-privileges[=true|false]".
    security_opt: list[str] = []
    cap_add: list[str] = []  # NET_ADMIN or CAP_NET_ADMIN; ALL
    cap_drop: list[str] = []
    privileged: bool = False  # every capability and device, no seccomp, no masked paths
    devices: list[str] = []  # --device HOST[:CONTAINER[:rwm]]
    ulimits: dict[
        str, tuple[int, int]
    ] = {}  # --ulimit nofile=1024:2048 -> {"nofile": (soft, hard)}
    shm_size: int = 0  # bytes of /dev/shm; 0: Docker's 64 MiB
    extra_hosts: list[str] = []  # --add-host NAME:IP, lines for /etc/hosts
    init: bool = False  # --init: corral-init is PID 1 and runs the command
    cpu_shares: int | None = None  # -c/--cpu-shares: relative weight (v1 shares, 2..262144)
    cpuset_cpus: str = ""  # --cpuset-cpus 0-2,4
    cpuset_mems: str = ""  # --cpuset-mems 0
    memory_reservation: int | None = None  # bytes: a soft limit (v2 memory.low)
    group_add: list[str] = []  # more groups for the process: names (the image's) or gids
    sysctls: dict[str, str] = {}  # --sysctl: namespaced ones only (net.*, kernel.shm*...)
    oom_score_adj: int | None = None  # -1000..1000
    pid_mode: str = ""  # "" (its own), host, container:NAME
    ipc_mode: str = ""  # "" / private / shareable (its own), none, host, container:NAME
    ipv4_address: str = ""  # --ip: its address on a user network ("": the next free one)
    dns: list[str] = []  # --dns: where its network's DNS server forwards its other names
    dns_search: list[str] = []  # --dns-search: resolv.conf's search domains
    dns_options: list[str] = []  # --dns-option: resolv.conf's options (with ndots:0)
    # --device-read-bps and the like: "PATH:RATE", RATE in bytes or operations a
    # second, PATH a block device on the daemon's host.
    device_read_bps: list[str] = []
    device_write_bps: list[str] = []
    device_read_iops: list[str] = []
    device_write_iops: list[str] = []
    blkio_weight: int = 0  # --blkio-weight 10-1000: v2 io.weight (or io.bfq.weight); 0 none
    # The start limit (systemd's StartLimitBurst, s6's "permanently failed"):
    # this many exits within restart_window seconds and the restart policy gives
    # up, the container stays exited. 0: no limit (Docker's behaviour).
    restart_burst: int = 0
    restart_window: float = 10.0
