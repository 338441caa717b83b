"""Converging a project's containers to what its file declares: the work of
`compose up`, `down` and the per-service commands, done by the daemon.

`up` is idempotent: it looks at what exists (containers found by their
com.docker.compose.* labels, networks and volumes by name) and does only what
differs, so a convergence that was cut short (the daemon SIGKILLed) is simply
run again when the daemon starts. Services converge concurrently, each once
what it depends on meets its condition (service_started, service_healthy,
service_completed_successfully); a service whose dependency fails is not
started, and the others still are.

A container whose configuration hash (or image) changed is replaced. When its
service has a health check and publishes no fixed host port, the replacement
starts first under a temporary name (NAME-next), and the old container stops
only once the new one is healthy: no moment without a healthy replica. Else
the old one stops first, as Docker Compose always does. Anonymous volumes
pass from the old container to its replacement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import structlog
import trio

from protocols import api
from protocols import compose as c
from protocols.container import MountSpec
from supervisor.compose import plan
from supervisor.daemon.lifecycle import RUNNING, Status
from supervisor.errors import ComposeError, CorralError, NetworkError, NoSuchImage

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Fleet
    from supervisor.daemon.unit import Unit

log = structlog.get_logger("corral.compose")

Report = Callable[[api.ComposeProgress], None]
NEXT = "-next"  # the suffix of a replacement's name until the swap completes
# After a swap's new container is healthy, the old one leaves the network's DNS
# and keeps serving this long, for the requests already on their way to it,
# before its stop signal (what a Kubernetes preStop sleep gives a pod).
DRAIN_SECONDS = 1.0


def containers_of(f: Fleet, project: str, service: str | None = None) -> list[Unit]:
    """The project's containers (of one service), by their labels, by number."""
    out = [
        u
        for u in f.units.values()
        if not u.removed
        and u.config.labels.get(plan.PROJECT) == project
        and (service is None or u.config.labels.get(plan.SERVICE) == service)
    ]
    return sorted(out, key=lambda u: (_number(u), u.name))


def _number(u: Unit) -> int:
    try:
        return int(u.config.labels.get(plan.NUMBER, "0"))
    except ValueError:
        return 0


# -- networks and volumes ------------------------------------------------------------------


async def ensure_networks(f: Fleet, p: c.Project, used: set[str], report: Report) -> None:
    from supervisor.network import links

    for key in sorted(used):
        n = p.networks[key]
        if n.name in f.networks.networks:
            continue
        if n.external:
            raise ComposeError(f"network {n.name} declared as external, but could not be found")
        report(api.ComposeProgress(kind="Network", name=n.name, status="Creating"))
        labels = {**n.labels, plan.PROJECT: p.name, plan.NETWORK: key}
        try:
            made = f.networks.create(
                n.name, n.subnet or None, n.gateway or None, links.host_routes(), labels=labels
            )
        except NetworkError as e:  # the pool used up, a subnet taken
            raise ComposeError(f"network {n.name}: {e}") from None
        await f.networking.start_network(n.name)
        f.lifecycle.emit_object("network", "create", n.name, n.name, {"subnet": made.subnet})
        report(api.ComposeProgress(kind="Network", name=n.name, status="Created"))


def ensure_volumes(f: Fleet, p: c.Project, used: set[str], report: Report) -> None:
    for key in sorted(used):
        v = p.volumes[key]
        if v.name in f.volumes.volumes:
            continue
        if v.external:
            raise ComposeError(f"external volume {v.name!r} not found")
        report(api.ComposeProgress(kind="Volume", name=v.name, status="Creating"))
        meta, new = f.volumes.create(v.name, {**v.labels, plan.PROJECT: p.name, plan.VOLUME: key})
        if new:
            f.lifecycle.emit_object("volume", "create", meta.name, meta.name, {"driver": "local"})
        report(api.ComposeProgress(kind="Volume", name=v.name, status="Created"))


# -- waiting on conditions -----------------------------------------------------------------


async def until(f: Fleet, check: Callable[[], bool]) -> None:
    """Wait until `check()` holds, looked at again after each event (every
    change of a container's status or health is one)."""
    while True:
        seq = f.journal.last_seq
        if check():
            return
        await f.journal.wait_beyond(seq)


def condition_met(f: Fleet, p: c.Project, dep: str, condition: str) -> bool:
    """Whether service `dep`'s containers meet `condition` now; ComposeError when
    they never will."""
    units = [u for u in containers_of(f, p.name, dep) if not u.name.endswith(NEXT)]
    for u in units:
        st = u.state
        if condition == "service_started":
            if st.status == Status.CREATED:
                return False
        elif condition == "service_healthy":
            if not u.config.health_cmd and u.health_check is None:
                raise ComposeError(
                    f"dependency failed to start: container {u.name} has no healthcheck configured"
                )
            if st.health_status == "unhealthy":
                raise ComposeError(f"dependency failed to start: container {u.name} is unhealthy")
            if st.status not in RUNNING and st.status != Status.RESTARTING:
                if st.status == Status.CREATED:
                    return False
                raise ComposeError(
                    f"dependency failed to start: container {u.name} exited ({st.exit_code})"
                )
            if st.health_status != "healthy":
                return False
        else:  # service_completed_successfully
            if st.status in RUNNING or st.status in (Status.CREATED, Status.RESTARTING):
                return False
            if st.exit_code != 0:
                raise ComposeError(
                    f'service "{dep}" didn\'t complete successfully: exit {st.exit_code}'
                )
    return True


# -- one service ---------------------------------------------------------------------------


def _image_id(f: Fleet, ref: str) -> str:
    try:
        return f.images.resolve(ref)
    except (NoSuchImage, KeyError, ValueError):
        return ""


async def ensure_image(f: Fleet, p: c.Project, name: str, report: Report) -> str:
    """The service's image id: pulled if missing (pull_policy missing/always),
    refused when it has to be built and cannot be."""
    from supervisor.daemon.api_images import run_transfer

    svc = p.services[name]
    ref = plan.image_of(p, name)
    have = _image_id(f, ref)
    if have and svc.pull_policy != "always":
        return have
    if svc.build is not None and not svc.image:
        raise ComposeError(
            f'service "{name}" needs its image {ref} built: run `corral compose build {name}` '
            "or `compose up --build`"
        )
    if svc.pull_policy == "never" and not have:
        raise ComposeError(f'service "{name}": image {ref} is missing and its pull_policy is never')
    report(api.ComposeProgress(kind="Image", name=ref, status="Pulling"))
    try:
        await run_transfer(f, api.ImagePull(ref=ref), lambda *a: None)
    except CorralError as e:
        if have:  # pull_policy always, the registry out of reach: keep what is here
            report(api.ComposeProgress(kind="Image", name=ref, status="Warning", detail=str(e)))
            return have
        raise ComposeError(f'service "{name}": pulling {ref}: {e}') from None
    report(api.ComposeProgress(kind="Image", name=ref, status="Pulled"))
    return _image_id(f, ref)


def _anonymous_volumes(f: Fleet, old: Unit, new_mounts: list[MountSpec]) -> list[MountSpec]:
    """The new configuration's mounts, its anonymous volumes named after the old
    container's at the same paths (and the old one's image volumes kept)."""
    olds = {
        m.target: m.source
        for m in old.config.mounts
        if m.type == "volume"
        and m.source in f.volumes.volumes
        and f.volumes.volumes[m.source].anonymous
    }
    out, seen = [], set()
    for m in new_mounts:
        seen.add(m.target)
        if m.type == "volume" and not m.source and m.target in olds:
            m = msgspec.structs.replace(m, source=olds[m.target])
        out.append(m)
    out.extend(
        MountSpec(type="volume", target=t, source=s) for t, s in olds.items() if t not in seen
    )
    return out


class ServiceWork:
    """One service's convergence: its replicas created, started, replaced or
    removed as the file and the options ask."""

    def __init__(self, f: Fleet, p: c.Project, name: str, req: api.ComposeUp, report: Report):
        self.f, self.p, self.name, self.req, self.report = f, p, name, req, report
        self.svc = p.services[name]
        self.hash = plan.config_hash(self.svc)
        self.changed = False  # a container was created or replaced
        self.image_id = ""
        self.prepared: dict[str, object] = {}  # container id -> its start, prepared early

    def _say(self, who: str, status: str, detail: str = "", error: bool = False) -> None:
        self.report(
            api.ComposeProgress(
                kind="Container", name=who, status=status, detail=detail, error=error
            )
        )

    def _by_number(self) -> dict[int, Unit]:
        by_number: dict[int, Unit] = {}
        for u in containers_of(self.f, self.p.name, self.name):
            n = _number(u)
            if n in by_number or n < 1:  # a duplicate: made by hand, or by another tool
                by_number.setdefault(-len(by_number) - 1, u)
            else:
                by_number[n] = u
        return by_number

    async def create(self) -> None:
        """Before waiting on dependencies (as Docker Compose does): the image, the
        replicas that do not exist yet created, and what their start needs
        prepared, so that a dependency's turn costs its dependents only the
        kernel's part of their start."""
        self.image_id = await ensure_image(self.f, self.p, self.name, self.report)
        await self._finish_interrupted_swaps(containers_of(self.f, self.p.name, self.name))
        want = plan.replicas(self.svc, self.req.scale, self.name)
        have = self._by_number()
        for n in range(1, want + 1):
            if n not in have:
                u = await self._create(
                    plan.container_config(self.p, self.name, n, image_id=self.image_id)
                )
                self.changed = True
                if self.req.start:
                    self.prepared[u.id] = await u.prepare_quietly()

    async def run(self) -> None:
        want = plan.replicas(self.svc, self.req.scale, self.name)
        by_number = self._by_number()
        async with trio.open_nursery() as nursery:
            for n in range(1, want + 1):
                nursery.start_soon(self._replica, n, by_number.get(n), self.image_id)
        extra = sorted((u for k, u in by_number.items() if k > want or k < 1), key=_number)
        for u in reversed(extra):  # scale down: the highest numbers go first
            await self._remove(u)

    async def _finish_interrupted_swaps(self, have: list[Unit]) -> None:
        names = {u.name for u in have}
        for u in have:
            if not u.name.endswith(NEXT):
                continue
            base = u.name[: -len(NEXT)]
            if base in names:  # the old one still serves: drop the half-made new one
                await self._remove(u)
            else:  # the old one is gone: the new one takes its name
                self.f.rename(u, base)

    async def _replica(self, n: int, u: Unit | None, image_id: str) -> None:
        cfg = plan.container_config(self.p, self.name, n, image_id=image_id)
        if u is None:
            u = await self._create(cfg)
            self.changed = True
        elif self._diverged(u, image_id):
            u = await self._replace(u, cfg)
            self.changed = True
            return
        if not self.req.start:
            return
        if u.state.status in RUNNING or u.state.status == Status.RESTARTING:
            self._say(u.name, "Running")
            return
        self._say(u.name, "Starting")
        async with u.lock:
            if not u.running:
                await u.start(prepared=self.prepared.pop(u.id, None))
        self._say(u.name, "Started")

    def _diverged(self, u: Unit, image_id: str) -> bool:
        if self.req.recreate == "never":
            return False
        if self.req.recreate == "force":
            return True
        labels = u.config.labels
        return labels.get(plan.HASH) != self.hash or (
            bool(image_id) and labels.get(plan.IMAGE, image_id) != image_id
        )

    async def _create(self, cfg, name: str = "") -> Unit:
        if name:
            cfg = msgspec.structs.replace(cfg, name=name)
        self._say(cfg.name, "Creating")
        try:
            u = await self.f.create(cfg)
            for key, net in plan.extra_networks(self.p, self.name):
                aliases = plan.aliases(self.p, self.name, key)
                addr = self.svc.networks[key].ipv4_address
                self.f.networking.connect(u, net, addr, aliases)
        except CorralError as e:
            self._say(cfg.name, "Error", str(e), error=True)
            raise ComposeError(f"container {cfg.name}: {e}") from None
        self._say(cfg.name, "Created")
        return u

    def _swappable(self) -> bool:
        """Replace with no downtime: a health check to wait on, and no fixed host
        port or name that two containers cannot hold at once."""
        return (
            self.svc.healthcheck is not None
            and bool(self.svc.healthcheck.test)
            and not any(p.published for p in self.svc.ports)
            and not self.svc.container_name
        )

    async def _replace(self, old: Unit, cfg) -> Unit:
        cfg = msgspec.structs.replace(cfg, mounts=_anonymous_volumes(self.f, old, list(cfg.mounts)))
        if self._swappable() and self.req.start and old.running:
            self._say(old.name, "Recreate")
            new = await self._create(cfg, name=cfg.name + NEXT)
            # Out of the service's DNS until healthy: its aliases are the
            # service's, and a name that resolved to it before its server
            # listens is a failed request (the old one answers meanwhile).
            new.draining = True
            async with new.lock:
                await new.start()
            self._say(new.name, "Waiting")
            try:
                await until(self.f, lambda: condition_met_unit(new))
            except ComposeError as e:
                await self._remove(new, quiet=True)
                self._say(old.name, "Error", str(e), error=True)
                raise ComposeError(f"replacing {old.name}: the new container {e}") from None
            new.draining = False
            old.draining = True
            await trio.sleep(DRAIN_SECONDS)
            await self._remove(old)
            self.f.rename(new, cfg.name)
            self._say(cfg.name, "Recreated")
            return new
        self._say(old.name, "Recreate")
        await self._remove(old, quiet=True)
        new = await self._create(cfg)
        if self.req.start:
            async with new.lock:
                await new.start()
            self._say(new.name, "Started")
        self._say(new.name, "Recreated")
        return new

    async def _remove(self, u: Unit, *, quiet: bool = False) -> None:
        if not quiet:
            self._say(u.name, "Stopping")
        async with u.lock:
            await u.stop(self.req.timeout)
            if not quiet:
                self._say(u.name, "Stopped")
                self._say(u.name, "Removing")
            await u.remove(force=True)
        if not quiet:
            self._say(u.name, "Removed")


def condition_met_unit(u: Unit) -> bool:
    """A replacement is ready: healthy (ComposeError if unhealthy or exited)."""
    st = u.state
    if st.health_status == "unhealthy":
        raise ComposeError(f"container {u.name} is unhealthy")
    if st.status not in RUNNING and st.status != Status.RESTARTING:
        raise ComposeError(f"container {u.name} exited ({st.exit_code})")
    return st.health_status == "healthy"


# -- a project -----------------------------------------------------------------------------


async def up(f: Fleet, req: api.ComposeUp, report: Report) -> None:
    """Converge to `req.project`. ComposeError (after every service that could be
    done is) names the services that failed."""
    p = req.project
    names = plan.with_dependencies(p, list(req.services)) if req.services else plan.order(p)
    nets = {k for s in names for k in p.services[s].networks if not p.services[s].network_mode}
    vols = {
        v.source for s in names for v in p.services[s].volumes if v.type == "volume" and v.source
    }
    await ensure_networks(f, p, nets, report)
    ensure_volumes(f, p, vols, report)
    await _orphans(f, p, req, report)
    done = {s: trio.Event() for s in names}
    failures: dict[str, str] = {}
    works = {s: ServiceWork(f, p, s, req, report) for s in names}
    said: set[tuple[str, str]] = set()  # (container, Waiting|Healthy): each said once

    created = {s: trio.Event() for s in names}

    async def create(name: str) -> None:
        # After what it depends on has started, during the wait for it to be
        # healthy: the roots' own starts go first.
        for dep in p.services[name].depends_on:
            if dep in done:
                await done[dep].wait()
        try:
            await works[name].create()
        except CorralError as e:
            failures[name] = str(e)
            log.warning("compose.service_failed", project=p.name, service=name, error=str(e))
        finally:
            created[name].set()

    async def service(name: str) -> None:
        try:
            for dep, d in sorted(p.services[name].depends_on.items()):
                if dep not in done:
                    continue
                await done[dep].wait()
                if dep in failures:
                    if d.required:
                        raise ComposeError(f"dependency {dep} failed: {failures[dep]}")
                    continue
                if req.start:
                    await _wait_for(f, p, dep, d.condition, report, said)
                    if d.restart and works[dep].changed and not works[name].changed:
                        await _restart_dependent(f, p, name, report)
            await created[name].wait()
            if name in failures:
                return
            await works[name].run()
        except CorralError as e:
            failures[name] = str(e)
            log.warning("compose.service_failed", project=p.name, service=name, error=str(e))
        finally:
            done[name].set()

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(create, name)
            nursery.start_soon(service, name)
    if failures:
        first = next(s for s in names if s in failures)
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise ComposeError(f"{failures[first]}{more}")


async def _wait_for(
    f: Fleet, p: c.Project, dep: str, condition: str, report: Report, said: set
) -> None:
    """Until service `dep` meets `condition`, saying so once per container."""

    def say(status: str) -> None:
        for u in containers_of(f, p.name, dep):
            if not u.name.endswith(NEXT) and (u.name, status) not in said:
                said.add((u.name, status))
                report(api.ComposeProgress(kind="Container", name=u.name, status=status))

    say("Waiting")
    await until(f, lambda: condition_met(f, p, dep, condition))
    if condition == "service_healthy":
        say("Healthy")
    elif condition == "service_completed_successfully":
        say("Exited")


async def _restart_dependent(f: Fleet, p: c.Project, name: str, report: Report) -> None:
    for u in containers_of(f, p.name, name):
        if u.running:
            report(api.ComposeProgress(kind="Container", name=u.name, status="Restarting"))
            async with u.lock:
                await u.restart()


async def _orphans(f: Fleet, p: c.Project, req: api.ComposeUp, report: Report) -> None:
    orphans = [
        u for u in containers_of(f, p.name) if u.config.labels.get(plan.SERVICE) not in p.services
    ]
    if not orphans:
        return
    if not req.remove_orphans:
        report(
            api.ComposeProgress(
                kind="Warning",
                name=p.name,
                status="orphans",
                detail=f"Found orphan containers ({', '.join(u.name for u in orphans)}) for this "
                "project. If you removed or renamed this service in your compose file, you can "
                "run this command with the --remove-orphans flag to clean it up.",
            )
        )
        return
    for u in orphans:
        await ServiceWork(f, p, u.config.labels[plan.SERVICE], req, report)._remove(u)


async def down(f: Fleet, req: api.ComposeDown, p: c.Project | None, report: Report) -> None:
    """Remove the project's containers (dependents first), then its networks,
    and with `volumes` its volumes. Works from the labels alone when the
    daemon has no stored project (made by another client, or forgotten)."""
    units = containers_of(f, req.project)
    services = plan.order(p) if p is not None else []
    rank = {s: i for i, s in enumerate(services)}
    if p is not None and not req.remove_orphans:
        orphans = [u for u in units if u.config.labels.get(plan.SERVICE) not in p.services]
        units = [u for u in units if u not in orphans]
    groups: dict[int, list[Unit]] = {}
    for u in units:
        groups.setdefault(rank.get(u.config.labels.get(plan.SERVICE, ""), len(rank)), []).append(u)

    async def remove(u: Unit) -> None:
        report(api.ComposeProgress(kind="Container", name=u.name, status="Stopping"))
        async with u.lock:
            await u.stop(req.timeout)
            report(api.ComposeProgress(kind="Container", name=u.name, status="Stopped"))
            report(api.ComposeProgress(kind="Container", name=u.name, status="Removing"))
            await u.remove(force=True, volumes=req.volumes)
        report(api.ComposeProgress(kind="Container", name=u.name, status="Removed"))

    for level in sorted(groups, reverse=True):  # dependents first, a level at a time
        async with trio.open_nursery() as nursery:
            for u in groups[level]:
                nursery.start_soon(remove, u)
    for n in sorted(f.networks.networks.values(), key=lambda n: n.name):
        if n.labels.get(plan.PROJECT) != req.project:
            continue
        if f.network_users(n.name):
            report(
                api.ComposeProgress(
                    kind="Network", name=n.name, status="Resource is still in use", error=True
                )
            )
            continue
        report(api.ComposeProgress(kind="Network", name=n.name, status="Removing"))
        f.networking.stop_network(n.name)
        f.networks.remove(n.name)
        f.lifecycle.emit_object("network", "destroy", n.name, n.name)
        report(api.ComposeProgress(kind="Network", name=n.name, status="Removed"))
    if req.volumes:
        for name, meta in sorted(f.volumes.volumes.items()):
            if meta.labels.get(plan.PROJECT) != req.project or f.volume_users(name):
                continue
            report(api.ComposeProgress(kind="Volume", name=name, status="Removing"))
            f.volumes.remove(name)
            f.lifecycle.emit_object("volume", "destroy", name, name)
            report(api.ComposeProgress(kind="Volume", name=name, status="Removed"))


async def act(f: Fleet, req: api.ComposeAction, p: c.Project | None, report: Report) -> None:
    """start, stop, restart, pause, unpause, kill or rm of the project's
    containers: starts in dependency order, stops in reverse."""
    from supervisor.runtime.signals import parse_signal

    units = containers_of(f, req.project)
    if req.services:
        known = {u.config.labels.get(plan.SERVICE) for u in units}
        if p is not None:
            known |= set(p.services)
        unknown = [s for s in req.services if s not in known]
        if unknown:
            raise ComposeError(f"no such service: {', '.join(unknown)}")
        units = [u for u in units if u.config.labels.get(plan.SERVICE) in req.services]
    rank = {s: i for i, s in enumerate(plan.order(p))} if p is not None else {}
    units.sort(key=lambda u: (rank.get(u.config.labels.get(plan.SERVICE, ""), 0), _number(u)))
    if req.action in ("stop", "pause", "kill", "rm"):
        units.reverse()
    verbs = {
        "start": ("Starting", "Started"),
        "stop": ("Stopping", "Stopped"),
        "restart": ("Restarting", "Started"),
        "pause": ("Pausing", "Paused"),
        "unpause": ("Unpausing", "Unpaused"),
        "kill": ("Killing", "Killed"),
        "rm": ("Removing", "Removed"),
    }
    if req.action not in verbs:
        raise ComposeError(f"unknown action {req.action!r}")
    doing, done = verbs[req.action]
    sig = parse_signal(req.signal or "SIGKILL") if req.action == "kill" else 0
    for u in units:
        if req.action in ("start", "unpause") and u.state.status == Status.RUNNING:
            continue
        if req.action in ("stop", "pause", "kill") and not u.running:
            continue
        if req.action == "rm" and u.running:
            continue
        report(api.ComposeProgress(kind="Container", name=u.name, status=doing))
        async with u.lock:
            if req.action == "start":
                await u.start()
            elif req.action == "stop":
                await u.stop(req.timeout)
            elif req.action == "restart":
                await u.restart(req.timeout)
            elif req.action == "pause":
                await u.pause()
            elif req.action == "unpause":
                await u.unpause()
            elif req.action == "kill":
                u.kill(sig)
            else:
                await u.remove()
        report(api.ComposeProgress(kind="Container", name=u.name, status=done))
