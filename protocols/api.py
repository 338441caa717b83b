"""Client <-> daemon messages: one tagged union each way.

Every message is a frozen msgspec Struct tagged with its class name in the
field "msg". New fields are only ever appended, with defaults, so older peers
keep decoding newer messages (msgspec's schema-evolution rules).
"""

from __future__ import annotations

import msgspec

from protocols.build import Build, BuilderPrune, BuildProgress, BuildResult
from protocols.compose import (
    ComposeAction,
    ComposeDown,
    ComposeList,
    ComposeProgress,
    ComposeProjects,
    ComposeUp,
    ProjectSummary,
)
from protocols.container import ContainerConfig, MountSpec
from protocols.events import Event, Gap

__all__ = ["MountSpec", "ProjectSummary"]  # defined beside, for api.X readers


class _Msg(
    msgspec.Struct, frozen=True, tag=True, tag_field="msg", kw_only=True, omit_defaults=True
):
    pass


# -- requests ------------------------------------------------------------------------------


class Hello(_Msg):
    version: int
    client: str = ""


class Ping(_Msg):
    pass


class Create(_Msg):
    config: ContainerConfig


class Start(_Msg):
    id: str


class Stop(_Msg):
    id: str
    timeout: int | None = None  # seconds; None: the container's stop_timeout
    signal: str = ""  # stop -s: instead of the container's stop signal


class Restart(_Msg):
    id: str
    timeout: int | None = None
    signal: str = ""


class Kill(_Msg):
    id: str
    signal: str = "SIGKILL"


class Remove(_Msg):
    id: str
    force: bool = False
    volumes: bool = False


class List(_Msg):
    all: bool = False
    filters: dict[str, list[str]] = {}
    size: bool = False  # ps -s: fill size_rw and size_root_fs (a walk of each container)


class Inspect(_Msg):
    id: str


class CopyFrom(_Msg):
    """A tar of `path` in the running container: Archive chunks, then End."""

    id: str
    path: str


class Export(_Msg):
    """docker export: the running container's root filesystem as a tar (what is
    mounted in it, /proc, volumes..., left out): Archive chunks, then End."""

    id: str


class CopyTo(_Msg):
    """Unpack a tar into the running container's existing directory `path`:
    the client sends it as StdinData chunks and a StdinClose; answered with Ok."""

    id: str
    path: str


class Rename(_Msg):
    id: str
    name: str


class Update(_Msg):
    """docker update: new resource limits (and restart policy) for a container,
    applied at once if it runs; None/"" leaves a setting as it is. Answered
    with Ok."""

    id: str
    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    restart: str = ""


class SystemDf(_Msg):
    """docker system df: an InspectResult with Images, Containers and Volumes, each
    {Total, Active, Size, Reclaimable} (bytes)."""


class Info(_Msg):
    """docker info: the engine and its host, as an InspectResult (Docker's keys)."""


class ContainerPrune(_Msg):
    """Remove every container that is not running (created, exited, dead):
    ContainersRemoved."""


class Top(_Msg):
    """The container's processes, as `docker top` shows them: TopResult."""

    id: str


class Diff(_Msg):
    """What the container changed in its root: DiffResult."""

    id: str


class Logs(_Msg):
    id: str
    follow: bool = False
    since_nano: int | None = None
    tail: int | None = None
    timestamps: bool = False
    until_nano: int | None = None  # only records up to this time; a follow ends then


class Wait(_Msg):
    id: str


class Attach(_Msg):
    """Stream the container's output from now until it exits, then its status.
    With `stdin`, the client may send StdinData/StdinClose."""

    id: str
    stdin: bool = False
    start: bool = False  # start the container once attached (what `run` does)
    height: int = 0  # the client's terminal, for a -t container's pty (0: unknown)
    width: int = 0


class Exec(_Msg):
    id: str
    cmd: list[str]
    env: list[str] = []
    workdir: str = ""
    user: str = ""
    tty: bool = False
    stdin: bool = False
    detach: bool = False  # answer ExecStarted and leave it running (exec -d)
    height: int = 0  # the client's terminal, for a -t exec's pty (0: unknown)
    width: int = 0


class Resize(_Msg):
    """The client's terminal changed size: resize the pty of a -t container, or of
    the running -t exec `exec_id` in it. Answered with Ok."""

    id: str
    height: int
    width: int
    exec_id: str = ""


class StdinData(_Msg):
    data: bytes


class StdinClose(_Msg):
    pass


class Pause(_Msg):
    id: str


class Unpause(_Msg):
    id: str


class Stats(_Msg):
    ids: list[str] = []  # empty: every running container
    stream: bool = True
    all: bool = False  # with no ids: every container (stopped ones as zeros)


class Events(_Msg):
    since_seq: int | None = None  # replay from this sequence number
    since_nano: int | None = None  # or from this time
    until_nano: int | None = None
    filters: dict[str, list[str]] = {}


class VolumeCreate(_Msg):
    name: str = ""  # "": a generated name
    labels: dict[str, str] = {}


class VolumeList(_Msg):
    filters: dict[str, list[str]] = {}  # name, label, dangling


class VolumeInspect(_Msg):
    name: str


class VolumeRemove(_Msg):
    name: str
    force: bool = False


class VolumePrune(_Msg):
    filters: dict[str, list[str]] = {}


class ImageImport(_Msg):
    path: str  # a root filesystem tar on the daemon's host
    ref: str = ""


class ImageLoad(_Msg):
    path: str  # a docker-save archive, or an OCI image layout (directory or tar)


class ImageSave(_Msg):
    ref: str
    path: str


class ImageCommit(_Msg):
    """docker commit: a new image of the container's changes (its upper layer)
    on top of its image, with its configuration. Answered with ImagesDone."""

    id: str
    ref: str = ""
    message: str = ""
    author: str = ""
    pause: bool = True  # freeze a running container while its changes are read
    changes: list[str] = []  # --change: Dockerfile instructions (CMD, ENV, ...) applied


class ImageList(_Msg):
    filters: dict[str, list[str]] = {}  # dangling, label, reference, before, since


class ImageTag(_Msg):
    source: str
    target: str


class ImageRemove(_Msg):
    ref: str
    force: bool = False


class ImageInspect(_Msg):
    ref: str


class ImagePrune(_Msg):
    all: bool = False


class ImagePull(_Msg):
    ref: str
    platform: str = "linux/amd64"
    insecure: bool = False  # plain HTTP (always so for localhost registries)


class ImagePush(_Msg):
    ref: str  # the local image, pushed under this name
    insecure: bool = False


class Login(_Msg):
    registry: str
    username: str
    password: str


class Logout(_Msg):
    """Forget the registry's credentials: Ok (Docker's: also when there were none)."""

    registry: str


class NetworkCreate(_Msg):
    name: str
    subnet: str = ""
    gateway: str = ""
    labels: dict[str, str] = {}


class NetworkList(_Msg):
    filters: dict[str, list[str]] = {}  # name, id, label, driver, type, scope, dangling


class NetworkInspect(_Msg):
    name: str


class NetworkRemove(_Msg):
    name: str


class NetworkPrune(_Msg):
    """Remove every network no container uses (the default one stays):
    PruneResult with their names."""


class NetworkConnect(_Msg):
    name: str
    container: str
    ipv4_address: str = ""  # --ip: its address there ("": the next free one)
    aliases: list[str] = []  # --alias: more names on that network only


class NetworkDisconnect(_Msg):
    name: str
    container: str


Request = (
    Hello
    | Ping
    | Create
    | Start
    | Stop
    | Restart
    | Kill
    | Remove
    | List
    | Inspect
    | Rename
    | Update
    | Info
    | SystemDf
    | ContainerPrune
    | CopyFrom
    | Export
    | CopyTo
    | Top
    | Diff
    | Logs
    | Wait
    | Attach
    | Exec
    | Resize
    | StdinData
    | StdinClose
    | Pause
    | Unpause
    | Stats
    | Events
    | VolumeCreate
    | VolumeList
    | VolumeInspect
    | VolumeRemove
    | VolumePrune
    | ImageImport
    | ImageLoad
    | ImageSave
    | ImageCommit
    | ImageList
    | ImageTag
    | ImageRemove
    | ImageInspect
    | ImagePrune
    | ImagePull
    | ImagePush
    | Login
    | Logout
    | NetworkCreate
    | NetworkList
    | NetworkInspect
    | NetworkRemove
    | NetworkPrune
    | NetworkConnect
    | NetworkDisconnect
    | ComposeUp
    | ComposeDown
    | ComposeAction
    | ComposeList
    | Build
    | BuilderPrune
)


# -- responses -----------------------------------------------------------------------------


class Welcome(_Msg):
    version: int
    server: str


class Ok(_Msg):
    pass


class Error(_Msg):
    """kind: not_found, conflict, invalid, unsupported, protocol, internal."""

    kind: str
    message: str
    exit_code: int = 125  # what `corral run` exits with (Docker's 125/126/127)


class Created(_Msg):
    id: str
    name: str


class ContainerSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    command: str
    created_nano: int
    state: str  # created, running, paused, restarting, exited, dead
    status: str  # "Up 3 minutes", "Exited (0) 2 seconds ago", as Docker words it
    labels: dict[str, str] = {}
    restart_count: int = 0
    size_rw: int = 0  # bytes the container wrote (its upper layer), with List.size
    size_root_fs: int = 0  # those and its image's layers
    image: str = ""
    ports: dict[str, str] = {}  # "80/tcp" -> "0.0.0.0:8080", while it runs


class ContainerList(_Msg):
    containers: list[ContainerSummary]


class ContainersRemoved(_Msg):
    ids: list[str]


class Archive(_Msg):
    data: bytes


class TopResult(_Msg):
    titles: list[str]
    processes: list[list[str]]


class DiffResult(_Msg):
    changes: list[tuple[str, str]]  # ("A" added | "C" changed | "D" deleted, path)


class InspectResult(_Msg):
    data: dict  # Docker's `inspect` shape (see supervisor/daemon/inspect.py)


class Output(_Msg):
    """A chunk of a container's or exec's output."""

    stream: str  # stdout | stderr
    data: bytes
    time_nano: int = 0


class End(_Msg):
    """The end of a stream of Output."""


class Exited(_Msg):
    status_code: int
    oom_killed: bool = False
    error: str = ""


class ExecStarted(_Msg):
    exec_id: str


class StatsSample(_Msg):
    id: str
    name: str
    time_nano: int
    cpu_usage_ns: int
    memory_usage: int
    memory_limit: int | None
    pids: int
    # Docker's columns: CPU use since the previous sample (100 = one core), memory
    # against the limit (the host's memory without one), bytes through its
    # interfaces but lo.
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0  # bytes from and to block devices
    block_written: int = 0


class Volume(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    driver: str = "local"
    mountpoint: str
    created_nano: int
    labels: dict[str, str] = {}
    anonymous: bool = False
    in_use_by: list[str] = []  # container ids


class VolumeResult(_Msg):
    volume: Volume


class VolumeListResult(_Msg):
    volumes: list[Volume]


class PruneResult(_Msg):
    removed: list[str]
    reclaimed_bytes: int = 0


class ImageSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tags: list[str] = []
    digests: list[str] = []  # name@digest, as pulled or pushed (Docker's RepoDigests)
    created: str = ""
    size: int = 0  # bytes of its layers
    containers: int = 0


class ImageListResult(_Msg):
    images: list[ImageSummary]


class Progress(_Msg):
    """A pull's or push's step for one layer, as Docker shows them."""

    id: str
    status: str
    current: int = 0
    total: int = 0


class ImagesDone(_Msg):
    """The result of import/load/rmi/prune/pull: image ids and what was done to them."""

    ids: list[str] = []
    tags: list[str] = []
    deleted: list[str] = []
    digest: str = ""  # pull: the manifest's (an index's, for a multi-platform image)
    size: int = 0  # prune: the bytes the removed layers took


class NetworkInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    subnet: str
    gateway: str
    bridge: str
    containers: dict[str, str] = {}  # container id -> address
    names: dict[str, str] = {}  # container id -> name
    created_nano: int = 0
    labels: dict[str, str] = {}
    driver: str = "bridge"  # host and none (listed too) are "host" and "null"
    id: str = ""  # 64 hex digits, derived from its name and creation


class NetworkResult(_Msg):
    network: NetworkInfo


class NetworkListResult(_Msg):
    networks: list[NetworkInfo]


Response = (
    Welcome
    | Ok
    | Error
    | Created
    | ContainerList
    | InspectResult
    | TopResult
    | ContainersRemoved
    | Archive
    | DiffResult
    | Output
    | End
    | Exited
    | ExecStarted
    | StatsSample
    | Event
    | Gap
    | VolumeResult
    | VolumeListResult
    | PruneResult
    | ImageListResult
    | ImagesDone
    | Progress
    | NetworkResult
    | NetworkListResult
    | ComposeProgress
    | ComposeProjects
    | BuildProgress
    | BuildResult
)
