"""Preparing a container: what `create` resolves once (its image's config, its
network by name, its volumes, its log limits: every value checked), and what
each start builds (bind sources, volume contents, the OCI spec).

Pure of lifecycle: nothing here changes a container's status. The blocking
part of a start (a new volume's copy-up) runs in a worker thread.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import trio

from protocols import oci
from protocols.api import ContainerConfig
from supervisor import checks, units
from supervisor.daemon import imageconfig, ocispec, restart
from supervisor.errors import NoSuchContainer, SpecError
from supervisor.images.store import ImageError, ImageStore, NoSuchImage
from supervisor.mounts import MountError, check_targets
from supervisor.network import ports
from supervisor.network.store import DEFAULT_NETWORK, NetworkError, NetworkStore, check_address
from supervisor.runtime import users
from supervisor.runtime.signals import parse_signal
from supervisor.volumes.store import VolumeError, VolumeStore

if TYPE_CHECKING:
    from supervisor.daemon.lifecycle import Lifecycle
    from supervisor.daemon.networking import Networking
    from supervisor.daemon.unit import Unit


class Preparer:
    def __init__(
        self,
        *,
        images: ImageStore,
        volumes: VolumeStore,
        networks: NetworkStore,
        networking: Networking,
        lifecycle: Lifecycle,
        find: Callable[[str], Unit],
        cgroup_parent: str,
        backoff: restart.Backoff,
        tree_work: trio.CapacityLimiter,
    ) -> None:
        self.images, self.volumes, self.networks = images, volumes, networks
        self.networking, self.lifecycle = networking, lifecycle
        self.find = find  # a container by reference (NoSuchContainer)
        self.cgroup_parent = cgroup_parent
        self.backoff = backoff  # the daemon's restart defaults
        # A container's log rotation when it asks for none: (bytes per file or
        # -1 for no limit, files kept). The daemon's --log-opt.
        self.log_limits = (units.DEFAULT_LOG_MAX_SIZE, units.DEFAULT_LOG_MAX_FILES)
        self.tree_work = tree_work
        self._volume_fills: dict[str, trio.Lock] = {}  # copy-ups in progress, by volume

    # -- at create -------------------------------------------------------------------------

    def resolve(self, cfg: ContainerConfig) -> tuple[ContainerConfig, restart.RestartPolicy]:
        """The configuration a new container keeps (every value checked, its
        image's config applied, names resolved to ids) and its restart policy.
        Raises SpecError (or NoSuchImage, NoSuchContainer) naming the problem."""
        # The client checked these too; any client may send anything.
        try:
            checks.container(cfg, os.cpu_count())
            _no_nul(msgspec.to_builtins(cfg))
        except ValueError as e:
            raise SpecError("config", str(e)) from None
        if cfg.memory == 0:  # -m 0: no limit, as Docker reads it
            cfg = msgspec.structs.replace(cfg, memory=None)
        cfg = self._root(cfg)
        if not cfg.cmd:
            raise SpecError("cmd", "no command given, and the image has none")
        cfg = self._network(cfg)
        for flag, mode in (("pid_mode", cfg.pid_mode), ("ipc_mode", cfg.ipc_mode)):
            if mode.startswith("container:"):  # by id from now on, as --network's
                other = self.find(mode.partition(":")[2])
                cfg = msgspec.structs.replace(cfg, **{flag: f"container:{other.id}"})
        ocispec.check_modes(cfg)
        root = self.lookup_root(cfg, "/etc/passwd")
        users.resolve(cfg.user, root)  # refuse unknown users and groups now
        users.group_gids(cfg.group_add, root)
        parse_signal(cfg.stop_signal)
        try:
            policy = restart.policy_of(cfg, self.backoff)
        except ValueError as e:
            raise SpecError("--restart", str(e)) from None
        if cfg.health_on_failure not in ("none", "kill", "restart", "stop"):
            raise SpecError(
                "--health-on-failure", f"{cfg.health_on_failure!r}: none, kill, restart or stop"
            )
        if cfg.health_cmd and (cfg.health_interval <= 0 or cfg.health_retries < 1):
            raise SpecError("--health-interval", "interval must be positive, retries at least 1")
        cfg = self._mounts(cfg)
        return self._log_limits(cfg), policy

    def _root(self, cfg: ContainerConfig) -> ContainerConfig:
        if cfg.image:
            try:
                image_id = self.images.resolve(cfg.image)
                run_config = self.images.config(image_id).config
            except NoSuchImage:
                raise  # not_found: the client pulls it (run --pull missing)
            except ImageError as e:
                raise SpecError("image", str(e)) from None
            return imageconfig.apply(cfg, run_config, image_id)
        if not cfg.rootfs or not os.path.isabs(cfg.rootfs):
            raise SpecError(
                "--rootfs", "an image or an absolute path to a root filesystem is required"
            )
        if not os.path.isdir(cfg.rootfs):
            raise SpecError("--rootfs", f"{cfg.rootfs} is not a directory")
        return msgspec.structs.replace(
            cfg, workdir=cfg.workdir or "/", stop_signal=cfg.stop_signal or "SIGTERM"
        )

    def _network(self, cfg: ContainerConfig) -> ContainerConfig:
        nets = self.networks
        if not cfg.network:
            cfg = msgspec.structs.replace(cfg, network=DEFAULT_NETWORK)
        elif nets.resolve(cfg.network) != cfg.network:  # an id: kept by name
            cfg = msgspec.structs.replace(cfg, network=nets.resolve(cfg.network))
        if cfg.network.startswith("container:"):
            other = self.find(cfg.network.partition(":")[2])
            cfg = msgspec.structs.replace(cfg, network=f"container:{other.id}")
        elif cfg.network in nets.networks:
            pass
        elif cfg.network not in ("none", "host"):
            raise SpecError("--network", f"network {cfg.network} not found")
        elif cfg.ports or cfg.publish_all:
            raise SpecError("-p", f"publishing ports needs a network, not --network {cfg.network}")
        if (cfg.dns or cfg.dns_search or cfg.dns_options) and cfg.network not in nets.networks:
            raise SpecError(
                "--dns", "only on the bridge or a user network (where /etc/resolv.conf is written)"
            )
        for server in cfg.dns:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise SpecError("--dns", f"{server!r} is not an IP address") from None
        if cfg.ipv4_address:  # Docker's rule: on a network made with `network create`
            if cfg.network == DEFAULT_NETWORK or cfg.network not in nets.networks:
                raise SpecError("--ip", "a chosen address needs a user network (network create)")
            try:
                check_address(nets.get(cfg.network), cfg.ipv4_address)
            except NetworkError as e:
                raise SpecError("--ip", str(e)) from None
        try:
            expose = [p for spec in cfg.expose for p in ports.parse_expose(spec)]
            for spec in cfg.ports:
                ports.parse(spec)
        except ports.PortError as e:
            raise SpecError("-p", str(e)) from None
        return msgspec.structs.replace(cfg, expose=list(dict.fromkeys(expose)))

    def _mounts(self, cfg: ContainerConfig) -> ContainerConfig:
        """--volumes-from copied in; bind sources checked; volumes created (an
        anonymous one gets its name now, so every restart mounts the same one)."""
        mounts = list(cfg.mounts)
        for ref in cfg.volumes_from:
            name, _, mode = ref.partition(":")
            if mode not in ("", "ro", "rw"):
                raise SpecError("--volumes-from", f"{ref!r}: the mode is ro or rw")
            other = self.find(name)
            for m in other.config.mounts:
                if m.type == "tmpfs" or any(x.target == m.target for x in mounts):
                    continue
                ro = m.readonly if not mode else mode == "ro"
                mounts.append(msgspec.structs.replace(m, readonly=ro))
        try:
            check_targets(mounts)
        except MountError as e:
            raise SpecError("--mount", str(e)) from None
        resolved = []
        for m in mounts:
            if m.type == "bind" and not m.create_source and not os.path.exists(m.source):
                raise SpecError("--mount", f"bind source path does not exist: {m.source}")
            if m.type == "volume":
                try:
                    meta, new = self.volumes.create(m.source, m.labels, anonymous=not m.source)
                except VolumeError as e:
                    raise SpecError("--volume", str(e)) from None
                if new:
                    self.lifecycle.emit_object(
                        "volume", "create", meta.name, meta.name, {"driver": "local"}
                    )
                m = msgspec.structs.replace(m, source=meta.name)
            resolved.append(m)
        return msgspec.structs.replace(cfg, mounts=resolved, volumes_from=[])

    def _log_limits(self, cfg: ContainerConfig) -> ContainerConfig:
        """The rotation the container keeps for life: as asked, or the daemon's."""
        size, files = cfg.log_max_size, cfg.log_max_files
        try:
            units.check_log_limits(size, files)
        except ValueError as e:
            raise SpecError("--log-opt", str(e)) from None
        if size == 0:
            size, files = self.log_limits[0], files or self.log_limits[1]
        return msgspec.structs.replace(cfg, log_max_size=size, log_max_files=files or 1)

    # -- the image's files ---------------------------------------------------------------

    def lower_dirs(self, cfg: ContainerConfig) -> str:
        """The overlay's lowerdir: the image's layers, top first, or the rootfs."""
        if cfg.image_id:
            return ":".join(str(d) for d in reversed(self.images.layer_dirs(cfg.image_id)))
        return cfg.rootfs

    def lookup_root(self, cfg: ContainerConfig, path: str) -> str:
        """The directory to read `path` of the container's image from: the
        topmost layer that has it (whiteouts are not consulted), or the rootfs."""
        if not cfg.image_id:
            return cfg.rootfs
        dirs = list(reversed(self.images.layer_dirs(cfg.image_id)))
        for d in dirs:
            if os.path.lexists(os.path.join(d, path.lstrip("/"))):
                return str(d)
        return str(dirs[0])

    # -- at each start ---------------------------------------------------------------------

    async def spec(self, u: Unit) -> oci.Spec:
        """What a start needs before the kernel work: mount sources, volume
        contents, the OCI spec (done early by a waiting restart)."""
        cfg = u.config
        for m in cfg.mounts:
            if m.type == "bind" and m.create_source:
                os.makedirs(m.source, exist_ok=True)  # Docker's -v creates it
            elif m.type == "volume":
                if m.source not in self.volumes.volumes:
                    raise SpecError("--volume", f"volume {m.source!r} no longer exists")
                if not m.nocopy:
                    await self._fill_volume(m.source, self.lookup_root(cfg, m.target), m.target)
        mounts = ocispec.user_mounts(cfg, self.volumes.data)
        netns = None
        if cfg.network in self.networks.networks:
            mounts = [*mounts, *self.networking.network_files(u)]
        if cfg.network.startswith("container:"):
            netns = f"/proc/{self._running_pid('--network', cfg.network)}/ns/net"
        joined = {}
        for flag, kind, mode in (("--pid", "pid", cfg.pid_mode), ("--ipc", "ipc", cfg.ipc_mode)):
            if mode.startswith("container:"):
                joined[kind] = f"/proc/{self._running_pid(flag, mode)}/ns/{kind}"
        return ocispec.build(
            u.id,
            cfg,
            str(u.path / "rootfs"),
            f"{self.cgroup_parent}/{u.id}",
            mounts,
            passwd_root=self.lookup_root(cfg, "/etc/passwd"),
            netns_path=netns,
            ns_paths=joined,
        )

    def _running_pid(self, flag: str, mode: str) -> int:
        try:
            other = self.find(mode.partition(":")[2])
        except NoSuchContainer:
            other = None
        if other is None or not other.running:
            raise SpecError(flag, f"{mode}: that container is not running")
        return other.state.pid

    async def _fill_volume(self, name: str, root: str, target: str) -> None:
        """Docker's copy-up of a new volume, in a worker thread (an image can put
        gigabytes there); one copy per volume at a time, so that a second
        container starting on it waits for the first copy to end."""
        lock = self._volume_fills.setdefault(name, trio.Lock())
        async with lock:
            try:
                await trio.to_thread.run_sync(
                    self.volumes.fill_from, name, root, target, limiter=self.tree_work
                )
            except OSError as e:
                raise SpecError("--volume", f"filling volume {name} from {target}: {e}") from None
            finally:
                if not lock.statistics().tasks_waiting:
                    self._volume_fills.pop(name, None)


def _no_nul(value: object) -> None:
    """ValueError naming the first string with a NUL byte in a configuration
    (as msgspec.to_builtins gives it): the kernel would cut it there."""
    todo: list[tuple[str, object]] = [("", value)]
    while todo:
        path, v = todo.pop()
        if isinstance(v, str):
            checks.no_nul(path or "config", v)
        elif isinstance(v, dict):
            todo += [(f"{path}.{k}" if path else str(k), x) for k, x in v.items()]
            for k in v:
                checks.no_nul(f"{path} key" if path else "key", str(k))
        elif isinstance(v, list | tuple):
            todo += [(f"{path}[{i}]", x) for i, x in enumerate(v)]
