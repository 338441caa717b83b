"""A fleet as the Compose file declares it, normalized: what `corral compose`
sends the daemon (api.ComposeUp) and the daemon stores and converges to.

The loader (supervisor/compose/) reads the YAML, interpolates, merges and
checks it, and fills these Structs: every short form made long, every size in
bytes and duration in seconds, relative paths made absolute, so the daemon
never reads YAML and two spellings of one configuration hash the same. Field
names are the Compose Specification's, so `corral compose config` prints them
as `docker compose config` does. Frozen; new fields only appended, with
defaults (the rules api.py follows).
"""

from __future__ import annotations

import msgspec


class _S(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    pass


class _Msg(
    msgspec.Struct, frozen=True, tag=True, tag_field="msg", kw_only=True, omit_defaults=True
):
    """A message of api.py's Request or Response union (the same options)."""


class Port(_S):
    target: int
    published: str = ""  # "": a free host port; "8080" or a range "8080-8081"
    host_ip: str = ""
    protocol: str = "tcp"
    mode: str = "ingress"


class ServiceVolume(_S):
    type: str  # volume | bind | tmpfs
    target: str
    source: str = ""  # volume: its key in the project's volumes ("": anonymous); bind: a path
    read_only: bool = False
    create_host_path: bool = True  # bind: make a missing source (the short syntax's way)
    propagation: str = ""
    nocopy: bool = False
    tmpfs_size: int = 0  # bytes
    tmpfs_mode: int = 0


class ServiceNetwork(_S):
    aliases: list[str] = []
    ipv4_address: str = ""


class Dependency(_S):
    condition: str = "service_started"  # service_healthy | service_completed_successfully
    required: bool = True
    restart: bool = False


class Healthcheck(_S):
    test: list[str] = []  # the command itself ("CMD"/"CMD-SHELL" resolved)
    interval: float | None = None  # seconds; None: Docker's 30 s
    timeout: float | None = None
    retries: int | None = None
    start_period: float | None = None
    disable: bool = False


class Limits(_S):
    cpus: float | None = None
    memory: int | None = None  # bytes
    pids: int | None = None


class Resources(_S):
    limits: Limits | None = None
    reservations: Limits | None = None  # memory only: a soft limit


class RestartPolicy(_S):
    condition: str = "any"  # none | on-failure | any
    max_attempts: int | None = None
    delay: float | None = None  # seconds
    window: float | None = None


class Deploy(_S):
    replicas: int | None = None
    resources: Resources | None = None
    restart_policy: RestartPolicy | None = None


class Logging(_S):
    driver: str = ""
    options: dict[str, str] = {}


class Ulimit(_S):
    soft: int
    hard: int


class ServiceBuild(_S):
    context: str  # an absolute path
    dockerfile: str = "Dockerfile"
    args: dict[str, str] = {}
    target: str = ""
    labels: dict[str, str] = {}
    no_cache: bool = False


class Service(_S):
    image: str = ""
    build: ServiceBuild | None = None
    command: list[str] | None = None  # None: the image's
    entrypoint: list[str] | None = None
    environment: dict[str, str] = {}  # env_file's and environment's, resolved
    ports: list[Port] = []
    expose: list[str] = []
    volumes: list[ServiceVolume] = []
    tmpfs: list[str] = []
    networks: dict[str, ServiceNetwork] = {}  # key in the project's networks
    network_mode: str = ""  # host | none | bridge ("": the networks above)
    depends_on: dict[str, Dependency] = {}
    healthcheck: Healthcheck | None = None
    restart: str = ""  # no | always | on-failure[:N] | unless-stopped
    deploy: Deploy | None = None
    stop_signal: str = ""
    stop_grace_period: float | None = None  # seconds
    labels: dict[str, str] = {}
    container_name: str = ""
    hostname: str = ""
    user: str = ""
    working_dir: str = ""
    init: bool = False
    read_only: bool = False
    privileged: bool = False
    tty: bool = False
    stdin_open: bool = False
    cap_add: list[str] = []
    cap_drop: list[str] = []
    security_opt: list[str] = []
    ulimits: dict[str, Ulimit] = {}
    sysctls: dict[str, str] = {}
    extra_hosts: list[str] = []  # NAME:IP
    dns: list[str] = []
    dns_search: list[str] = []
    logging: Logging | None = None
    profiles: list[str] = []
    scale: int | None = None  # the old key for deploy.replicas
    pull_policy: str = ""  # always | missing | never | build
    # The service-level spellings of deploy's limits, and docker run's flags.
    cpus: float | None = None
    mem_limit: int | None = None
    mem_reservation: int | None = None
    memswap_limit: int | None = None
    pids_limit: int | None = None
    cpu_shares: int | None = None
    cpuset: str = ""
    shm_size: int = 0
    oom_score_adj: int | None = None
    group_add: list[str] = []
    devices: list[str] = []
    dns_opt: list[str] = []
    pid: str = ""
    ipc: str = ""


class ProjectNetwork(_S):
    name: str  # the engine's name: PROJECT_KEY unless the file names it
    external: bool = False
    driver: str = "bridge"
    labels: dict[str, str] = {}
    subnet: str = ""  # ipam.config[0]
    gateway: str = ""


class ProjectVolume(_S):
    name: str
    external: bool = False
    driver: str = "local"
    labels: dict[str, str] = {}


class Project(_S):
    name: str
    services: dict[str, Service]
    networks: dict[str, ProjectNetwork] = {}
    volumes: dict[str, ProjectVolume] = {}
    working_dir: str = ""  # the project's folder: where relative paths were resolved
    config_files: list[str] = []


# -- the messages (in api.py's unions) -------------------------------------------------------


class ComposeUp(_Msg):
    """Store `project` as the desired state of its fleet and converge to it
    (networks, volumes, then services in dependency order): ComposeProgress as
    it goes, then Ok, or an Error that names what failed. The daemon finishes
    without the client, and after its own restart."""

    project: Project
    services: list[str] = []  # only these and what they depend on ([]: all)
    scale: dict[str, int] = {}  # --scale SERVICE=N
    recreate: str = "diverged"  # diverged | force (--force-recreate) | never (--no-recreate)
    remove_orphans: bool = False
    start: bool = True  # --no-start: create only
    timeout: int | None = None  # -t: seconds to stop what is replaced


class ComposeDown(_Msg):
    """Stop and remove the project's containers (dependents first), its
    networks, and with `volumes` its volumes; forget its desired state:
    ComposeProgress, then Ok."""

    project: str
    volumes: bool = False
    remove_orphans: bool = False
    timeout: int | None = None


class ComposeAction(_Msg):
    """start | stop | restart | pause | unpause | kill | rm of the project's
    containers, in dependency order (reversed for stop): ComposeProgress, then
    Ok."""

    project: str
    action: str
    services: list[str] = []  # []: every service
    timeout: int | None = None
    signal: str = ""  # kill


class ComposeList(_Msg):
    """The projects the daemon keeps (compose ls): ComposeProjects."""

    all: bool = False  # also those with no running container


class ComposeProgress(_Msg):
    """One step of a project's convergence, as Docker Compose prints them:
    kind Network | Volume | Container, then e.g. Creating, Created, Starting,
    Started, Waiting, Healthy, Recreate, Stopping, Removed; `error` for one that
    failed (its detail says why)."""

    kind: str
    name: str
    status: str
    detail: str = ""
    error: bool = False


class ProjectSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    status: str  # "running(3)", "exited(1), running(2)": Docker Compose's words
    config_files: list[str] = []
    converging: bool = False  # an up or down the daemon has not finished


class ComposeProjects(_Msg):
    projects: list[ProjectSummary]
