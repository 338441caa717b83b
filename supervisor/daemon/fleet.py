"""The fleet: every container the daemon knows, and what happens to them.

Each running container has one watcher task in the fleet's nursery, parked
on its monitor's pidfd (trio.lowlevel.wait_readable): no SIGCHLD handler, no
thread, no polling. When the monitor exits, the watcher records the exit the
monitor wrote (exit code, OOM), emits `die` and wakes those waiting, then
removes the runtime's side of the container and applies the restart policy
(fleet_restarts.py; execs are fleet_exec.py, networking fleet_networks.py).
A daemon that was SIGKILLed finds, when it starts again, each container either
still running (it adopts the monitor through a new pidfd) or exited meanwhile
(it records the real exit code from the monitor's file).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import time
from functools import partial
from pathlib import Path

import msgspec
import structlog
import trio

from protocols import oci
from protocols.api import ContainerConfig
from supervisor import checks, units
from supervisor.daemon import health, imageconfig, ocispec, restart
from supervisor.daemon.fleet_exec import FleetExec
from supervisor.daemon.fleet_info import FleetInfo
from supervisor.daemon.fleet_networks import FleetNetworks
from supervisor.daemon.fleet_restarts import FleetRestarts
from supervisor.daemon.imagegate import ImageGate
from supervisor.daemon.journal import Journal
from supervisor.daemon.restart import Backoff
from supervisor.daemon.store import ContainerRecord, RunState, Store
from supervisor.errors import (
    Conflict,
    CorralError,
    InvalidState,
    NoSuchContainer,
    SetupError,
    SpecError,
)
from supervisor.images.credentials import Credentials
from supervisor.images.store import ImageError, ImageStore, NoSuchImage
from supervisor.network import links, ports
from supervisor.network.store import (
    DEFAULT_NETWORK,
    DEFAULT_POOL,
    POOL,
    NetworkError,
    NetworkStore,
    check_address,
)
from supervisor.runtime import Runtime, users
from supervisor.runtime.container import Created, finish_create
from supervisor.runtime.signals import parse_signal
from supervisor.runtime.state import alive
from supervisor.volumes.spec import MountError, check_targets
from supervisor.volumes.store import VolumeError, VolumeStore

log = structlog.get_logger("corral.fleet")

_ADJ = (
    "brave",
    "calm",
    "eager",
    "fond",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "proud",
    "quiet",
    "sharp",
    "tender",
    "vivid",
    "witty",
    "zealous",
)
_NOUN = (
    "badger",
    "bison",
    "crane",
    "dingo",
    "eagle",
    "ferret",
    "gecko",
    "heron",
    "ibex",
    "jackal",
    "koala",
    "lemur",
    "marten",
    "newt",
    "otter",
    "puffin",
    "quokka",
    "raven",
)


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


class Container:
    def __init__(self, rec: ContainerRecord, state: RunState, path: Path) -> None:
        self.rec = rec
        self.state = state
        self.path = path
        self.exited = trio.Event()  # set whenever it is not running
        self.stdin_w: int | None = None
        self.stdin_pumps: set[trio.CancelScope] = set()  # attached clients' stdin copies
        self.lock = trio.Lock()  # one lifecycle change at a time
        self.restart_scope: trio.CancelScope | None = None  # a waiting restart
        self.port_scope: trio.CancelScope | None = None  # its published ports' proxies
        self.health_scope: trio.CancelScope | None = None  # the current run's checks
        self.unsettled = False  # exited; the runtime's leftovers not yet removed

    @property
    def id(self) -> str:
        return self.rec.id

    @property
    def name(self) -> str:
        return self.rec.name

    @property
    def config(self) -> ContainerConfig:
        return self.rec.config

    @property
    def running(self) -> bool:
        return self.state.status in ("running", "paused")

    @property
    def log_path(self) -> Path:
        return self.path / "container.log"


class Fleet(FleetNetworks, FleetRestarts, FleetExec, FleetInfo):
    def __init__(
        self,
        root: Path,
        run_root: Path,
        journal: Journal,
        *,
        cgroup_parent: str = "/corral",
        backoff: Backoff | None = None,
        bridge: str = "corral0",
    ) -> None:
        self.store = Store(root)
        self.max_downloads = 0  # layers a pull fetches at once (0: transfer's default)
        # A container's log rotation when it asks for none: (bytes per file or
        # -1 for no limit, files kept). The daemon's --log-opt.
        self.log_limits = (units.DEFAULT_LOG_MAX_SIZE, units.DEFAULT_LOG_MAX_FILES)
        self.volumes = VolumeStore(root)
        self.images = ImageStore(root)
        self.image_gate = ImageGate()  # rmi and prune apart from pulls, loads, commits
        self.credentials = Credentials(root / "auth.json")
        self.networks = NetworkStore(root)
        self.bridge = bridge  # the default network's bridge device
        self._dns: dict[str, trio.CancelScope] = {}
        self.runtime = Runtime(run_root / "runtime", cgroup_parent=cgroup_parent)
        self.exec_ctls: dict[str, Path] = {}  # running -t execs' resize FIFOs, by exec id
        self.exec_ctl_dir = run_root / "exec"
        self.copy_mounts = run_root / "cp"
        self.cgroup_parent = cgroup_parent
        self.journal = journal
        self.containers: dict[str, Container] = {}
        self.names: dict[str, str] = {}
        self.backoff = backoff or Backoff()  # the daemon's defaults
        self._nursery: trio.Nursery | None = None
        # Policy restarts go through this one at a time: a start is a few
        # milliseconds of synchronous work, and 200 containers whose backoffs
        # end together would otherwise hold the loop for a second; one at a time,
        # every other task (a `ps`, a die) gets its turn between two starts.
        self._restart_gate = trio.Lock()
        self._volume_fills: dict[str, trio.Lock] = {}  # copy-ups in progress, by volume
        # Tree work in worker threads (removals, copy-ups, sizes): a few at once.
        self._tree_work = trio.CapacityLimiter(4)

    # -- running --------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from supervisor.daemon import copy as copying

        copying.clear_mounts(self.copy_mounts)  # a crashed daemon's, mid-copy
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if DEFAULT_NETWORK not in self.networks.networks:
                try:
                    self.networks.create(
                        DEFAULT_NETWORK,
                        None,
                        None,
                        [*links.host_routes(), POOL],
                        bridge=self.bridge,
                        pool=DEFAULT_POOL,
                        prefix=16,
                    )
                except NetworkError as e:  # the daemon serves; only the default is missing
                    log.warning("network.default_unavailable", error=str(e))
            for trash in self.store.removed():  # removals a crash cut short
                nursery.start_soon(
                    partial(
                        trio.to_thread.run_sync, self.store.purge, trash, limiter=self._tree_work
                    )
                )
            to_start = self._load()
            # Addresses of containers that no longer run, before anything awaits:
            # a start (a restart policy's, say) allocates while it awaits.
            for n in self.networks.networks.values():
                for cid in list(n.allocations):
                    c = self.containers.get(cid)
                    if c is None or not c.running:
                        self.networks.release(n, cid)
            for name in list(self.networks.networks):
                await self.start_network(name)
            for c in to_start:  # those their policy starts with the daemon
                async with c.lock:
                    await self._start_logged(c, reason="daemon start")
            task_status.started()
            await trio.sleep_forever()

    def _load(self) -> list[Container]:
        """Adopt what the store and the runtime say exists; returns the stopped
        containers that their restart policy starts now."""
        to_start = []
        for rec, state in self.store.load_all():
            c = Container(rec, state, self.store.path(rec.id))
            self.containers[rec.id] = c
            self.names[rec.name] = rec.id
            try:
                if self._adopt(c):
                    to_start.append(c)
            except Exception as e:  # one container's leftovers never stop the daemon
                log.exception("fleet.adopt_failed", container=rec.id[:12], name=rec.name)
                c.state.status = "dead"
                c.state.error = f"adopting it after a daemon restart failed: {e}"
                c.state.pid = 0
                c.exited.set()
        return to_start

    def _adopt(self, c: Container) -> bool:
        """Take over one container the store knows; True when its restart
        policy starts it now."""
        rec, state = c.rec, c.state
        try:
            rt = self.runtime.record(rec.id)
        except (NoSuchContainer, CorralError):
            rt = None
        if state.status == "restarting":
            c.exited.set()  # it was waiting out its backoff: wait the rest
            left = max(0.0, (state.next_restart_nano - time.time_ns()) / 1e9)
            self._schedule_restart(c, state.restart_delay, wait=left)
            return False
        if not c.running:
            c.exited.set()
            try:  # also one whose creation a crash cut short (no record)
                self.runtime.delete(rec.id, force=True)
            except NoSuchContainer:
                pass
            return state.status == "exited" and restart.start_on_daemon_start(
                restart.parse_policy(c.config.restart),
                stopped_by_user=state.stopped_by_user,
                exit_code=state.exit_code,
                restart_count=state.restart_count,
                died_while_down=False,
            )
        if rt is None:
            try:  # what a creation cut short left (a monitor, a waiting child)
                self.runtime.delete(rec.id, force=True)
            except NoSuchContainer:
                pass
            state.error = "its runtime state is gone (was the host restarted?)"
            self._record_exit(c, 255, False, time.time_ns())
            self._settle(c)
            return False
        status = self.runtime.status(rec.id, rt)
        if status == "stopped":
            self._finish(c)  # exited while the daemon was away
            return False
        try:
            pidfd = os.pidfd_open(rt.monitor_pid)
        except ProcessLookupError:
            self._finish(c)
            return False
        if not alive(rt.monitor_pid, rt.monitor_start):
            os.close(pidfd)
            self._finish(c)
            return False
        state.status = "paused" if status == "paused" else "running"
        state.pid = rt.pid
        self.store.save_state(c.id, state)
        if c.config.open_stdin:  # the monitor kept its stdin open for us
            try:
                c.stdin_w = self.runtime.stdin_writer(c.id)
            except CorralError as e:
                log.error("fleet.stdin_lost", container=c.id[:12], error=str(e))
        log.debug("fleet.adopted", container=c.id[:12], name=c.name, pid=rt.pid)
        self._spawn_watch(c, pidfd, ours=False)
        if c.config.ports:  # the proxies died with the last daemon: again
            c.state.ports = {}
            try:
                self._publish(c)
            except CorralError as e:
                log.error("fleet.republish_failed", container=c.id[:12], error=str(e))
        return False

    def _spawn_watch(self, c: Container, pidfd: int, *, ours: bool) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._watch, c, pidfd, ours)

    async def _watch(self, c: Container, pidfd: int, ours: bool) -> None:
        try:
            await trio.lowlevel.wait_readable(pidfd)
            if ours:
                try:
                    os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
                except ChildProcessError:
                    pass
        finally:
            os.close(pidfd)
        try:
            self._read_exit(c)
            # Those waiting on the exit (attach, wait) report it before the clean-up.
            await trio.lowlevel.cancel_shielded_checkpoint()
            self._settle(c)
        except Exception:  # a bug in one container's bookkeeping never ends the daemon
            log.exception("fleet.exit_handling_failed", container=c.id[:12], name=c.name)

    def _finish(self, c: Container) -> None:
        """The monitor is gone: record how the container ended, then clean up."""
        self._read_exit(c)
        self._settle(c)

    def _read_exit(self, c: Container) -> None:
        ex = None
        try:
            ex = self.runtime.exit_status(c.id)
        except (NoSuchContainer, CorralError) as e:
            log.error("fleet.exit_unreadable", container=c.id[:12], error=str(e))
        if ex is None:
            # Its monitor was killed (kill -9?) and the container may run on,
            # reparented to init: its processes are killed (through its
            # cgroup) before the exit is told to anyone.
            c.state.error = "its monitor died without recording the exit"
            try:
                self.runtime.delete(c.id, force=True)
            except NoSuchContainer:
                pass
            except CorralError as e:
                log.error("fleet.orphans_not_killed", container=c.id[:12], error=str(e))
            self._record_exit(c, 255, False, time.time_ns())
        else:
            failed = ex.setup_error()  # between the start and execve
            if failed is not None:
                c.state.error = str(failed)
            self._record_exit(c, ex.exit_code, ex.oom_killed, ex.finished_at)

    def _record_exit(self, c: Container, code: int, oom: bool, finished: int) -> None:
        if c.stdin_w is not None:
            os.close(c.stdin_w)
            c.stdin_w = None
        if c.health_scope is not None:
            c.health_scope.cancel()
            c.health_scope = None
        self.release_addresses(c)  # its veths went with its namespace
        if c.port_scope is not None:
            c.port_scope.cancel()
            c.port_scope = None
        c.state.ports = {}
        c.state.status = "exited"
        c.state.exit_code = code
        c.state.oom_killed = oom
        c.state.finished_nano = finished
        c.state.pid = 0
        self.store.save_state(c.id, c.state)  # atomic: safe from a daemon crash
        if oom:
            self.emit(c, "oom")
        self.emit(c, "die", exitCode=str(code), finishedAt=str(finished))
        for m in c.config.mounts:
            if m.type == "volume":
                self.emit_volume(m.source, "unmount", container=c.id)
        c.exited.set()
        c.unsettled = True
        log.debug("fleet.died", container=c.id[:12], name=c.name, exit_code=code, oom=oom)

    def _settle(self, c: Container) -> None:
        """After the exit is reported: make it durable, remove what the runtime
        left (its state, the cgroup), then restart or auto-remove as configured.
        A crash before this leaves a stopped runtime container, which _load()
        removes for any container recorded as exited."""
        if not c.unsettled:
            return
        c.unsettled = False
        if not c.config.auto_remove:  # a --rm container is gone in a moment anyway
            try:
                self.store.sync_state(c.id)
            except OSError as e:
                log.error("fleet.state_sync_failed", container=c.id[:12], error=str(e))
        try:
            self.runtime.delete(c.id, force=True)
        except NoSuchContainer:
            pass
        except CorralError as e:
            log.error("fleet.runtime_delete_failed", container=c.id[:12], error=str(e))
        self._after_exit(c)

    def emit(self, c: Container, action: str, **attrs: str) -> None:
        attributes = {**c.config.labels, "name": c.name, **attrs}
        if c.config.image:
            attributes.setdefault("image", c.config.image)
        elif c.config.rootfs:
            attributes.setdefault("rootfs", c.config.rootfs)
        self.journal.append("container", action, c.id, c.name, attributes)

    # -- lookup ---------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full id, name, or unique id prefix (Docker's rules)."""
        if ref in self.containers:
            return self.containers[ref]
        name = ref.lstrip("/")
        if name in self.names:
            return self.containers[self.names[name]]
        matches = [c for i, c in self.containers.items() if i.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise Conflict(f"multiple containers match {ref!r}: use more of the id")
        raise NoSuchContainer(ref)

    # -- lifecycle ------------------------------------------------------------------------

    def create(self, cfg: ContainerConfig) -> Container:
        # The client checked these too; any client may send anything.
        try:
            checks.container(cfg, os.cpu_count())
            _no_nul(msgspec.to_builtins(cfg))
        except ValueError as e:
            raise SpecError("config", str(e)) from None
        if cfg.memory == 0:  # -m 0: no limit, as Docker reads it
            cfg = msgspec.structs.replace(cfg, memory=None)
        if cfg.image:
            try:
                image_id = self.images.resolve(cfg.image)
                run_config = self.images.config(image_id).config
            except NoSuchImage:
                raise  # not_found: the client pulls it (run --pull missing)
            except ImageError as e:
                raise SpecError("image", str(e)) from None
            cfg = imageconfig.apply(cfg, run_config, image_id)
        elif not cfg.rootfs or not os.path.isabs(cfg.rootfs):
            raise SpecError(
                "--rootfs", "an image or an absolute path to a root filesystem is required"
            )
        elif not os.path.isdir(cfg.rootfs):
            raise SpecError("--rootfs", f"{cfg.rootfs} is not a directory")
        else:
            cfg = msgspec.structs.replace(
                cfg, workdir=cfg.workdir or "/", stop_signal=cfg.stop_signal or "SIGTERM"
            )
        if not cfg.cmd:
            raise SpecError("cmd", "no command given, and the image has none")
        if not cfg.network:
            cfg = msgspec.structs.replace(cfg, network=DEFAULT_NETWORK)
        elif self.networks.resolve(cfg.network) != cfg.network:  # an id: kept by name
            cfg = msgspec.structs.replace(cfg, network=self.networks.resolve(cfg.network))
        if cfg.network.startswith("container:"):
            other = self.get(cfg.network.partition(":")[2])  # NoSuchContainer if absent
            cfg = msgspec.structs.replace(cfg, network=f"container:{other.id}")
        elif cfg.network in self.networks.networks:
            pass
        elif cfg.network not in ("none", "host"):
            raise SpecError("--network", f"network {cfg.network} not found")
        elif cfg.ports or cfg.publish_all:
            raise SpecError("-p", f"publishing ports needs a network, not --network {cfg.network}")
        if (cfg.dns or cfg.dns_search or cfg.dns_options) and (
            cfg.network not in self.networks.networks
        ):
            raise SpecError(
                "--dns", "only on the bridge or a user network (where /etc/resolv.conf is written)"
            )
        for server in cfg.dns:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise SpecError("--dns", f"{server!r} is not an IP address") from None
        if cfg.ipv4_address:  # Docker's rule: on a network made with `network create`
            if cfg.network == DEFAULT_NETWORK or cfg.network not in self.networks.networks:
                raise SpecError("--ip", "a chosen address needs a user network (network create)")
            try:
                check_address(self.networks.get(cfg.network), cfg.ipv4_address)
            except NetworkError as e:
                raise SpecError("--ip", str(e)) from None
        try:
            expose = [p for spec in cfg.expose for p in ports.parse_expose(spec)]
            for spec in cfg.ports:
                ports.parse(spec)
        except ports.PortError as e:
            raise SpecError("-p", str(e)) from None
        cfg = msgspec.structs.replace(cfg, expose=list(dict.fromkeys(expose)))
        for flag, mode in (("pid_mode", cfg.pid_mode), ("ipc_mode", cfg.ipc_mode)):
            if mode.startswith("container:"):  # by id from now on, as --network's
                other = self.get(mode.partition(":")[2])  # NoSuchContainer if absent
                cfg = msgspec.structs.replace(cfg, **{flag: f"container:{other.id}"})
        ocispec.check_modes(cfg)
        root = self.lookup_root(cfg, "/etc/passwd")
        users.resolve(cfg.user, root)  # refuse unknown users and groups now
        users.group_gids(cfg.group_add, root)
        parse_signal(cfg.stop_signal)
        try:
            restart.parse_policy(cfg.restart)
        except ValueError as e:
            raise SpecError("--restart", str(e)) from None
        if cfg.health_on_failure not in ("none", "kill", "restart", "stop"):
            raise SpecError(
                "--health-on-failure", f"{cfg.health_on_failure!r}: none, kill, restart or stop"
            )
        if cfg.health_cmd and (cfg.health_interval <= 0 or cfg.health_retries < 1):
            raise SpecError("--health-interval", "interval must be positive, retries at least 1")
        cfg = self._resolve_mounts(cfg)
        cfg = self._resolve_log_limits(cfg)
        id = secrets.token_hex(32)
        if cfg.name:
            name = checks.name(cfg.name)  # checked above: a valid name
            if name in self.names:
                raise Conflict(
                    f'the name "{name}" is already in use by container '
                    f"{self.names[name][:12]}: remove or rename that container"
                )
        else:
            name = self._generate_name()
        rec = ContainerRecord(id=id, name=name, created_nano=time.time_ns(), config=cfg)
        state = RunState()
        path = self.store.create(rec)
        c = Container(rec, state, path)
        c.exited.set()
        self.containers[id] = c
        self.names[name] = id
        self.emit(c, "create")
        return c

    def _resolve_log_limits(self, cfg: ContainerConfig) -> ContainerConfig:
        """The rotation the container keeps for life: as asked, or the daemon's."""
        size, files = cfg.log_max_size, cfg.log_max_files
        try:
            units.check_log_limits(size, files)
        except ValueError as e:
            raise SpecError("--log-opt", str(e)) from None
        if size == 0:
            size, files = self.log_limits[0], files or self.log_limits[1]
        return msgspec.structs.replace(cfg, log_max_size=size, log_max_files=files or 1)

    def _resolve_mounts(self, cfg: ContainerConfig) -> ContainerConfig:
        """--volumes-from copied in; bind sources checked; volumes created (an
        anonymous one gets its name now, so every restart mounts the same one)."""
        mounts = list(cfg.mounts)
        for ref in cfg.volumes_from:
            name, _, mode = ref.partition(":")
            if mode not in ("", "ro", "rw"):
                raise SpecError("--volumes-from", f"{ref!r}: the mode is ro or rw")
            other = self.get(name)
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
                    self.emit_volume(meta.name, "create", driver="local")
                m = msgspec.structs.replace(m, source=meta.name)
            resolved.append(m)
        return msgspec.structs.replace(cfg, mounts=resolved, volumes_from=[])

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

    def image_users(self, image_id: str) -> list[str]:
        return [c.id for c in self.containers.values() if c.config.image_id == image_id]

    def emit_volume(self, name: str, action: str, **attrs: str) -> None:
        self.journal.append("volume", action, name, name, attrs)

    def volume_users(self, name: str) -> list[str]:
        """Containers (any state) whose configuration mounts volume `name`."""
        return [
            c.id
            for c in self.containers.values()
            if any(m.type == "volume" and m.source == name for m in c.config.mounts)
        ]

    def _generate_name(self) -> str:
        while True:
            name = f"{secrets.choice(_ADJ)}_{secrets.choice(_NOUN)}_{secrets.randbelow(1000)}"
            if name not in self.names:
                return name

    async def prepare(self, c: Container) -> oci.Spec:
        """What a start needs before the kernel work: mount sources, volume
        contents, the OCI spec (done early by a waiting restart)."""
        cfg = c.config
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
            mounts = [*mounts, *self._network_files(c)]
        if cfg.network.startswith("container:"):
            other = self.containers.get(cfg.network.partition(":")[2])
            if other is None or not other.running:
                raise SpecError("--network", f"{cfg.network}: that container is not running")
            netns = f"/proc/{other.state.pid}/ns/net"
        joined = {}
        for flag, kind, mode in (("--pid", "pid", cfg.pid_mode), ("--ipc", "ipc", cfg.ipc_mode)):
            if mode.startswith("container:"):
                other = self.containers.get(mode.partition(":")[2])
                if other is None or not other.running:
                    raise SpecError(flag, f"{mode}: that container is not running")
                joined[kind] = f"/proc/{other.state.pid}/ns/{kind}"
        return ocispec.build(
            c.id,
            cfg,
            str(c.path / "rootfs"),
            f"{self.cgroup_parent}/{c.id}",
            mounts,
            passwd_root=self.lookup_root(cfg, "/etc/passwd"),
            netns_path=netns,
            ns_paths=joined,
        )

    async def _fill_volume(self, name: str, root: str, target: str) -> None:
        """Docker's copy-up of a new volume, in a worker thread (an image can put
        gigabytes there); one copy per volume at a time, so that a second
        container starting on it waits for the first copy to end."""
        lock = self._volume_fills.setdefault(name, trio.Lock())
        async with lock:
            try:
                await trio.to_thread.run_sync(
                    self.volumes.fill_from, name, root, target, limiter=self._tree_work
                )
            except OSError as e:
                raise SpecError("--volume", f"filling volume {name} from {target}: {e}") from None
            finally:
                if not lock.statistics().tasks_waiting:
                    self._volume_fills.pop(name, None)

    async def start(
        self, c: Container, spec: oci.Spec | None = None, console: tuple[int, int] = (0, 0)
    ) -> None:
        """Start `c`; `console`: the (rows, columns) its -t terminal starts with.
        The caller holds c.lock. While the kernel makes the container (namespaces,
        mounts, exec: milliseconds) the daemon serves everyone else. A --rm
        container that fails to start is removed, as Docker's is."""
        try:
            await self._start(c, spec, console)
        except CorralError:
            if c.config.auto_remove and not c.running:
                self.spawn(self._auto_remove, c)  # once the caller lets go of the lock
            raise

    async def _start(self, c: Container, spec: oci.Spec | None, console: tuple[int, int]) -> None:
        if c.running:
            return
        self._settle(c)  # exited a moment ago: the last run's leftovers go first
        if c.restart_scope is not None:  # started by hand while waiting: no second start
            c.restart_scope.cancel()
            c.restart_scope = None
        cfg = c.config
        if spec is None:
            spec = await self.prepare(c)
        if cfg.tty and console[0] and console[1]:
            size = oci.ConsoleSize(height=console[0], width=console[1])
            spec = msgspec.structs.replace(
                spec, process=msgspec.structs.replace(spec.process, console_size=size)
            )
        try:
            on_network = cfg.network in self.networks.networks
            created = await self._runtime_create(
                c.id,
                str(c.path),
                stdio=None,
                detach=True,
                wait_for_start=on_network,  # its network is made before it runs
                spec=spec,
                stdin_fifo=cfg.open_stdin,  # held by the monitor: it outlives us
                overlay=(self.lower_dirs(cfg), str(c.path / "upper"), str(c.path / "work")),
                log_max_size=max(cfg.log_max_size, 0),  # -1 (and 0, stored before
                log_max_files=max(cfg.log_max_files, 1),  # defaults): no rotation
                log_file=str(c.log_path),
            )
            if on_network:
                try:
                    self._connect(c, created.record.pid)
                    self._publish(c)
                    self.runtime.start(c.id)
                except (CorralError, OSError) as e:
                    if c.port_scope is not None:
                        c.port_scope.cancel()
                    c.state.ports = {}
                    created.close()
                    self.runtime.delete(c.id, force=True)
                    self.release_addresses(c)
                    raise SpecError("--network", f"connecting to {cfg.network}: {e}") from None
        except CorralError as e:
            c.state.error = str(e)
            c.state.exit_code = e.exit_code if isinstance(e, SetupError) else 125
            self.store.save_state(c.id, c.state)
            raise
        if cfg.open_stdin:
            c.stdin_w = self.runtime.stdin_writer(c.id)
        c.exited = trio.Event()
        c.state.status = "running"
        c.state.pid = created.record.pid
        c.state.started_nano = time.time_ns()
        c.state.error = ""
        c.state.oom_killed = False
        c.state.stopped_by_user = False
        c.state.next_restart_nano = 0
        if cfg.health_cmd:
            c.state.health_status = "starting"
            c.state.failing_streak = 0
        self.store.save_state(c.id, c.state)
        for m in cfg.mounts:
            if m.type == "volume":
                self.emit_volume(
                    m.source,
                    "mount",
                    container=c.id,
                    destination=m.target,
                    **{"read/write": str(not m.readonly).lower()},
                )
        self.emit(c, "start")
        self._spawn_watch(c, created.monitor_pidfd, ours=True)
        if cfg.health_cmd:
            assert self._nursery is not None
            c.health_scope = trio.CancelScope()
            self._nursery.start_soon(health.check_loop, self, c, c.health_scope)

    def kill(self, c: Container, sig: int, *, by_user: bool = True) -> None:
        """Signal the container's init. By the user, a kill also means no restart
        follows (and a waiting one is cancelled); a health check's does not."""
        if by_user and self._cancel_restart(c):
            return
        if not c.running:
            raise Conflict(f"container {c.id[:12]} is not running")
        if by_user:
            c.state.stopped_by_user = True
        try:
            self.runtime.kill(c.id, sig)
        except InvalidState:
            raise Conflict(f"container {c.id[:12]} is not running") from None
        self.emit(c, "kill", signal=str(sig))

    async def stop(self, c: Container, timeout: int | None = None, sig: str = "") -> None:
        """The stop signal (`sig`, else the container's), `timeout` seconds, then
        SIGKILL (Docker's stop)."""
        if self._cancel_restart(c):
            self.emit(c, "stop")
            return
        if not c.running:
            return
        c.state.stopped_by_user = True
        timeout = c.config.stop_timeout if timeout is None else timeout
        if c.state.status == "paused":
            self.runtime.resume(c.id)
        try:
            self.kill(c, parse_signal(sig or c.config.stop_signal))
        except Conflict:
            pass
        with trio.move_on_after(max(timeout, 0)):
            await c.exited.wait()
        if not c.exited.is_set():
            try:
                self.kill(c, signal.SIGKILL)
            except Conflict:
                pass
            await c.exited.wait()
        self.emit(c, "stop")

    async def _runtime_create(self, id: str, bundle: str, **kw) -> Created:
        """Runtime.create without blocking the event loop on the monitor's report."""
        steps = self.runtime.create_steps(id, bundle, **kw)
        report = next(steps)
        try:
            await trio.lowlevel.wait_readable(report)
        except BaseException:
            try:
                steps.close()  # cancelled: the half-made container is removed
            except CorralError:
                pass  # its set-up failed too: the cancellation is what goes on
            raise
        return finish_create(steps)

    async def restart(self, c: Container, timeout: int | None = None, sig: str = "") -> None:
        await self.stop(c, timeout, sig)
        await self.start(c)
        self.emit(c, "restart")

    def spawn(self, fn, *args) -> None:
        """Run `fn(*args)` as a task of the fleet (it outlives the caller's scope)."""
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    async def stop_unhealthy(self, c: Container) -> None:
        """--health-on-failure=stop: a stop, after which no policy restarts it."""
        async with c.lock:
            await self.stop(c)

    async def restart_unhealthy(self, c: Container) -> None:
        """--health-on-failure=restart: stop and start, counted as a restart."""
        async with c.lock:
            if not c.running:
                return
            await self.stop(c)
            c.state.restart_count += 1
            self.emit(c, "restart", attempt=str(c.state.restart_count), reason="unhealthy")
            await self._start_logged(c, reason="unhealthy")

    def pause(self, c: Container) -> None:
        if c.state.status != "running":
            raise Conflict(f"container {c.id[:12]} is not running")
        self.runtime.pause(c.id)
        c.state.status = "paused"
        self.store.save_state(c.id, c.state)
        self.emit(c, "pause")

    def unpause(self, c: Container) -> None:
        if c.state.status != "paused":
            raise Conflict(f"container {c.id[:12]} is not paused")
        self.runtime.resume(c.id)
        c.state.status = "running"
        self.store.save_state(c.id, c.state)
        self.emit(c, "unpause")

    async def remove(self, c: Container, *, force: bool = False, volumes: bool = False) -> None:
        """Remove the container; with `volumes`, its anonymous volumes too (rm -v)."""
        self._cancel_restart(c)
        if c.running:
            if not force:
                raise Conflict(
                    f"cannot remove container {c.id[:12]}: it is {c.state.status}; "
                    "stop it first or use force"
                )
            c.state.stopped_by_user = True
            if c.state.status == "paused":
                self.runtime.resume(c.id)
            try:
                self.kill(c, signal.SIGKILL)
            except Conflict:
                pass
            await c.exited.wait()
        c.unsettled = False  # what _settle would do, the removal does
        if c.id not in self.containers:
            return
        try:
            self.runtime.delete(c.id, force=True)
        except NoSuchContainer:
            pass
        trash = self.store.remove(c.id)
        del self.containers[c.id]
        self.names.pop(c.name, None)
        self.emit(c, "destroy")
        await trio.to_thread.run_sync(self.store.purge, trash, limiter=self._tree_work)
        if volumes or c.config.auto_remove:  # --rm takes its anonymous volumes along
            for m in c.config.mounts:
                meta = self.volumes.volumes.get(m.source) if m.type == "volume" else None
                if meta is not None and meta.anonymous and not self.volume_users(m.source):
                    self.volumes.remove(m.source)
                    self.emit_volume(m.source, "destroy")
