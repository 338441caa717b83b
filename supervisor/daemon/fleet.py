"""The fleet: the registry of the daemon's containers, by id and by name, and
their adoption when the daemon starts.

Each container is a Unit (unit.py): its own supervisor task in the fleet's
nursery. The fleet composes what the units use (the runtime behind the
launcher, the stores, networking, the lifecycle that emits events) and keeps
the map; it does nothing to a container itself. A daemon that was SIGKILLed
finds, when it starts again, each container either still running (its unit
adopts the monitor through a new pidfd) or exited meanwhile (the real exit code
is read from the monitor's file).
"""

from __future__ import annotations

import secrets
import time
from functools import partial
from pathlib import Path

import msgspec
import structlog
import trio

from protocols.api import ContainerConfig
from supervisor.build.cache import BuildCache
from supervisor.daemon import copy as copying
from supervisor.daemon import restart
from supervisor.daemon.contents import container_root
from supervisor.daemon.execs import Execs
from supervisor.daemon.imagegate import ImageGate
from supervisor.daemon.journal import Journal
from supervisor.daemon.launch import Launcher
from supervisor.daemon.lifecycle import RUNNING, Lifecycle, On, Status
from supervisor.daemon.networking import Networking
from supervisor.daemon.prepare import Preparer
from supervisor.daemon.store import ContainerRecord, RunState, Store
from supervisor.daemon.unit import Unit
from supervisor.errors import Conflict, NoSuchContainer, SpecError
from supervisor.images.credentials import Credentials
from supervisor.images.store import ImageStore
from supervisor.network import links
from supervisor.network.nat import Nat
from supervisor.network.store import DEFAULT_NETWORK, DEFAULT_POOL, POOL, NetworkError, NetworkStore
from supervisor.runtime import Runtime
from supervisor.volumes.store import VolumeStore

log = structlog.get_logger("corral.fleet")

# Docker's generated names: an adjective and a noun.
_ADJ = [
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
]
_NOUN = [
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
]


class Fleet:
    def __init__(
        self,
        root: Path,
        run_root: Path,
        journal: Journal,
        *,
        cgroup_parent: str = "/corral",
        backoff: restart.Backoff | None = None,
        bridge: str = "corral0",
    ) -> None:
        self.store = Store(root)
        self.journal = journal
        self.volumes = VolumeStore(root)
        self.images = ImageStore(root)
        self.build_cache = BuildCache(root)  # the steps `corral build` made (builder.py)
        self.build_dir = run_root / "build"  # contexts and layers while a build runs
        self.image_gate = ImageGate()  # rmi and prune apart from pulls, loads, commits
        self.credentials = Credentials(root / "auth.json")
        self.networks = NetworkStore(root)
        self.bridge = bridge  # the default network's bridge device
        self.runtime = Runtime(run_root / "runtime", cgroup_parent=cgroup_parent)
        self.cgroup_parent = cgroup_parent
        self.copy_mounts = run_root / "cp"  # stopped containers' roots, during a copy
        self.max_downloads = 0  # layers a pull fetches at once (0: transfer's default)
        self.backoff = backoff or restart.Backoff()  # the daemon's defaults
        self.units: dict[str, Unit] = {}
        self.names: dict[str, str] = {}
        # One policy start at a time (restart.py), and a few trees at once in threads.
        self.restart_gate = trio.Lock()
        self.tree_work = trio.CapacityLimiter(4)
        self.lifecycle = Lifecycle(journal, self.store)
        self.networking = Networking(
            self.networks, lambda: self.units, self.lifecycle, Nat(str(root))
        )
        self.preparer = Preparer(
            images=self.images,
            volumes=self.volumes,
            networks=self.networks,
            networking=self.networking,
            lifecycle=self.lifecycle,
            find=self.get,
            cgroup_parent=cgroup_parent,
            backoff=self.backoff,
            tree_work=self.tree_work,
        )
        self.execs = Execs(self.runtime, self.preparer, run_root / "exec")
        self.launcher = Launcher(
            runtime=self.runtime,
            prepare=self.preparer,
            networking=self.networking,
            store=self.store,
            volumes=self.volumes,
            lifecycle=self.lifecycle,
            tree_work=self.tree_work,
            volume_users=self.volume_users,
            execs=self.execs,
        )
        self._nursery: trio.Nursery | None = None

    # -- the fleet's task ------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        copying.clear_mounts(self.copy_mounts)  # a crashed daemon's, mid-copy
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for trash in self.store.removed():  # removals a crash cut short
                nursery.start_soon(
                    partial(
                        trio.to_thread.run_sync, self.store.purge, trash, limiter=self.tree_work
                    )
                )
            await nursery.start(self.networking.serve)
            self._default_network()
            to_start = await self._load()
            # Addresses of containers that no longer run, before anything awaits:
            # a start (a restart policy's, say) allocates while it awaits.
            for n in self.networks.networks.values():
                for cid in list(n.allocations):
                    u = self.units.get(cid)
                    if u is None or not u.running:
                        self.networks.release(n, cid)
            for name in list(self.networks.networks):
                await self.networking.start_network(name)
            for u in to_start:  # those their policy starts with the daemon
                async with u.lock:
                    await u.start_for("daemon start")
            task_status.started()
            await trio.sleep_forever()

    def _default_network(self) -> None:
        if DEFAULT_NETWORK in self.networks.networks:
            return
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

    async def _load(self) -> list[Unit]:
        """Adopt what the store and the runtime say exists; returns the stopped
        containers that their restart policy starts now."""
        to_start = []
        for rec, state in self.store.load_all():
            try:
                policy = restart.policy_of(rec.config, self.backoff)
            except ValueError as e:  # stored by an older daemon that let it pass
                log.error("fleet.bad_policy", container=rec.id[:12], error=str(e))
                policy = restart.RestartPolicy()
            u = await self._register(rec, state, policy)
            try:
                if self._adopt(u):
                    to_start.append(u)
            except Exception as e:  # one container's leftovers never stop the daemon
                log.exception("fleet.adopt_failed", container=rec.id[:12], name=rec.name)
                u.state.error = f"adopting it after a daemon restart failed: {e}"
                u.state.pid = 0
                self.lifecycle.transition(u, On.FAIL)
                u.exited.set()
        return to_start

    def _adopt(self, u: Unit) -> bool:
        """Take over one container; True when its restart policy starts it now."""
        st = u.state
        if st.status == Status.RESTARTING:  # it was waiting out its backoff: wait the rest
            left = max(0.0, (st.next_restart_nano - time.time_ns()) / 1e9)
            self.lifecycle.transition(u, On.CANCEL)  # (back to exited, then waiting again)
            st.stopped_by_user = False
            restart.schedule(u, st.restart_delay, wait=left)
            return False
        if st.status not in RUNNING:
            try:  # also one whose creation a crash cut short (no record)
                self.runtime.delete(u.id, force=True)
            except NoSuchContainer:
                pass
            return st.status == Status.EXITED and restart.start_on_daemon_start(
                u.policy, stopped_by_user=st.stopped_by_user, gave_up=st.gave_up
            )
        run = self.launcher.adopt(u)
        if run is None:
            st.error = "its runtime state is gone (was the host restarted?)"
            st.pid = 0
            self.lifecycle.transition(u, On.EXIT, exitCode="255", finishedAt=str(time.time_ns()))
            u.exited.set()
            return False
        if run.ended:  # exited while the daemon was away: its monitor's record says how
            u.watch(run)
            return False
        paused = self.launcher.found_paused(u)
        st.pid = run.pid
        self.lifecycle.transition(u, On.FOUND_PAUSED if paused else On.FOUND_RUNNING)
        log.debug("fleet.adopted", container=u.id[:12], name=u.name, pid=run.pid)
        u.watch(run)
        return False

    # -- the registry ------------------------------------------------------------------------

    async def _register(self, rec: ContainerRecord, state: RunState, policy) -> Unit:
        u = Unit(
            rec,
            state,
            self.store.path(rec.id),
            lifecycle=self.lifecycle,
            launcher=self.launcher,
            policy=policy,
            restart_gate=self.restart_gate,
            forget=self._forget,
        )
        self.units[rec.id] = u
        self.names[rec.name] = rec.id
        assert self._nursery is not None
        await self._nursery.start(u.supervise)
        return u

    def _forget(self, u: Unit) -> None:
        self.units.pop(u.id, None)
        if self.names.get(u.name) == u.id:
            del self.names[u.name]

    def get(self, ref: str) -> Unit:
        """By full id, name, or unique id prefix (Docker's rules)."""
        if ref in self.units:
            return self.units[ref]
        name = ref.lstrip("/")
        if name in self.names:
            return self.units[self.names[name]]
        matches = [u for i, u in self.units.items() if i.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise Conflict(f"multiple containers match {ref!r}: use more of the id")
        raise NoSuchContainer(ref)

    async def create(self, cfg: ContainerConfig) -> Unit:
        """A new container, as `cfg` asks (every value checked, names resolved)."""
        cfg, policy = self.preparer.resolve(cfg)
        if cfg.name:
            name = cfg.name.lstrip("/")
            if name in self.names:
                raise Conflict(
                    f'the name "{name}" is already in use by container '
                    f"{self.names[name][:12]}: remove or rename that container"
                )
        else:
            name = self._generate_name()
        rec = ContainerRecord(
            id=secrets.token_hex(32), name=name, created_nano=time.time_ns(), config=cfg
        )
        self.store.create(rec)
        u = await self._register(rec, RunState(), policy)
        self.lifecycle.created(u)
        return u

    def _generate_name(self) -> str:
        while True:
            name = f"{secrets.choice(_ADJ)}_{secrets.choice(_NOUN)}_{secrets.randbelow(1000)}"
            if name not in self.names:
                return name

    def rename(self, u: Unit, new: str) -> None:
        from supervisor import checks

        try:
            name = checks.name(new)
        except ValueError as e:
            raise SpecError("name", str(e)) from None
        if name == u.name:
            return
        if name in self.names:
            raise Conflict(
                f'the name "{name}" is already in use by container {self.names[name][:12]}'
            )
        old = u.name
        u.rec = msgspec.structs.replace(u.rec, name=name)
        del self.names[old]
        self.names[name] = u.id
        self.lifecycle.reconfigured(u, "rename", oldName=old)

    # -- who uses what ---------------------------------------------------------------------

    def image_users(self, image_id: str) -> list[str]:
        return [u.id for u in self.units.values() if u.config.image_id == image_id]

    def volume_users(self, name: str) -> list[str]:
        """Containers (any state) whose configuration mounts volume `name`."""
        return [
            u.id
            for u in self.units.values()
            if any(m.type == "volume" and m.source == name for m in u.config.mounts)
        ]

    def network_users(self, name: str) -> list[str]:
        return self.networking.network_users(name)

    def container_root(self, u: Unit):
        """The container's root as the host reaches it (contents.container_root)."""
        return container_root(u, self.preparer.lower_dirs(u.config), self.copy_mounts / u.id)

    def release_default_bridge(self) -> None:
        self.networking.release_default_bridge()

    @property
    def log_limits(self) -> tuple[int, int]:
        return self.preparer.log_limits

    @log_limits.setter
    def log_limits(self, value: tuple[int, int]) -> None:
        self.preparer.log_limits = value
