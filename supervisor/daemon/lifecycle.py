"""A container's lifecycle: its statuses, the transitions between them, and the
one place where a status changes, a container's state is saved and an event
is emitted (the journal is appended here and nowhere else).

              start                        pause
    created ─────────▶ running ◀───────────────────▶ paused
                        │  ▲        unpause            │
                   exit │  │ start                exit │
                        ▼  │                           ▼
                       exited ◀────────────────────────┘
                        │  ▲
            wait (policy)  │ cancel (stop, kill, rm), exit (its start failed)
                        ▼  │
                      restarting ──start──▶ running

    created, exited, dead ──remove──▶ removing ──destroy──▶ (gone)
    any ──fail──▶ dead        exited ──give_up──▶ exited ("failed": the start limit)

A transition that is not in TABLE is a bug: ImpossibleTransition, never a
silent overwrite. Events that are not a change of status (kill, exec_*,
health_status, rename, update, and the image, network and volume events) go
through `note`/`emit_object` here too, so `grep journal.append` finds one
module.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import structlog

from supervisor.errors import CorralError

if TYPE_CHECKING:
    from supervisor.daemon.journal import Journal
    from supervisor.daemon.store import Store
    from supervisor.daemon.unit import Unit

log = structlog.get_logger("corral.lifecycle")


class Status(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


class On(enum.StrEnum):
    """What happens to a container: the second half of a transition's key."""

    START = "start"  # a run began
    EXIT = "exit"  # its run ended (or a start the policy made failed)
    PAUSE = "pause"
    UNPAUSE = "unpause"
    WAIT = "wait"  # its restart policy starts it again after a backoff
    CANCEL = "cancel"  # a user's stop, kill or rm ends that wait
    GIVE_UP = "give_up"  # it died too often too fast: the policy stops (start limit)
    FOUND_RUNNING = "found_running"  # a new daemon finds it running (adopted)
    FOUND_PAUSED = "found_paused"  # ... or paused
    REMOVE = "remove"
    DESTROY = "destroy"  # removed: the last transition
    FAIL = "fail"  # defunct: its leftovers could not be adopted or removed


S = Status
# (status, what happened) -> (new status, the event emitted: "" for none).
TABLE: dict[tuple[Status, On], tuple[Status, str]] = {
    (S.CREATED, On.START): (S.RUNNING, "start"),
    (S.EXITED, On.START): (S.RUNNING, "start"),
    (S.RESTARTING, On.START): (S.RUNNING, "start"),
    (S.RUNNING, On.EXIT): (S.EXITED, "die"),
    (S.PAUSED, On.EXIT): (S.EXITED, "die"),
    (S.RESTARTING, On.EXIT): (S.EXITED, "die"),
    (S.RUNNING, On.PAUSE): (S.PAUSED, "pause"),
    (S.PAUSED, On.UNPAUSE): (S.RUNNING, "unpause"),
    (S.EXITED, On.WAIT): (S.RESTARTING, ""),
    (S.RESTARTING, On.CANCEL): (S.EXITED, ""),
    (S.EXITED, On.GIVE_UP): (S.EXITED, "failed"),
    (S.RUNNING, On.FOUND_RUNNING): (S.RUNNING, ""),
    (S.PAUSED, On.FOUND_RUNNING): (S.RUNNING, ""),
    (S.RUNNING, On.FOUND_PAUSED): (S.PAUSED, ""),
    (S.PAUSED, On.FOUND_PAUSED): (S.PAUSED, ""),
    (S.CREATED, On.REMOVE): (S.REMOVING, ""),
    (S.EXITED, On.REMOVE): (S.REMOVING, ""),
    (S.DEAD, On.REMOVE): (S.REMOVING, ""),
    (S.REMOVING, On.DESTROY): (S.REMOVING, "destroy"),
    **{(s, On.FAIL): (S.DEAD, "") for s in Status},
}

RUNNING = frozenset({S.RUNNING, S.PAUSED})  # a process exists


class ImpossibleTransition(CorralError):
    """A bug: a change of status the lifecycle does not have."""


class Lifecycle:
    """Changes a container's status, saves its state, emits its events."""

    def __init__(self, journal: Journal, store: Store) -> None:
        self.journal = journal
        self.store = store

    def can(self, u: Unit, on: On) -> bool:
        return (u.state.status, on) in TABLE

    def transition(self, u: Unit, on: On, *, durable: bool = False, **attrs: str) -> Status:
        """`on` happened to `u`: its new status, saved (fsynced with `durable`),
        and the transition's event with `attrs`. Fields of its state the caller
        changed before are saved with it."""
        before = Status(u.state.status)
        try:
            after, action = TABLE[(before, on)]
        except KeyError:
            raise ImpossibleTransition(
                f"container {u.id[:12]}: {on.value} while {before.value}"
            ) from None
        u.state.status = after
        if after != S.REMOVING:  # a removed container's directory is going away
            self.store.save_state(u.id, u.state, durable=durable)
        if action:
            self._emit(u, action, attrs)
        log.debug("lifecycle", container=u.id[:12], on=on.value, status=after.value)
        return after

    def created(self, u: Unit) -> None:
        """A new container: its first state saved, `create` emitted."""
        self.store.save_state(u.id, u.state)
        self._emit(u, "create", {})

    def save(self, u: Unit) -> None:
        """Its state's other fields (health, error, restart bookkeeping) changed."""
        self.store.save_state(u.id, u.state)

    def reconfigured(self, u: Unit, action: str, **attrs: str) -> None:
        """Its record changed (rename, update): saved durably, and said."""
        self.store.save_record(u.rec)
        self._emit(u, action, attrs)

    def note(self, u: Unit, action: str, **attrs: str) -> None:
        """An event that changes no status: kill, exec_*, health_status, rename,
        update, restart (an attempt beginning), oom."""
        self._emit(u, action, attrs)

    def emit_object(
        self, type: str, action: str, id: str, name: str = "", attrs: dict[str, str] | None = None
    ) -> None:
        """An image, network or volume event."""
        self.journal.append(type, action, id, name, attrs or {})

    def _emit(self, u: Unit, action: str, attrs: dict[str, str]) -> None:
        cfg = u.config
        attributes = {**cfg.labels, "name": u.name, **attrs}
        if cfg.image:
            attributes.setdefault("image", cfg.image)
        elif cfg.rootfs:
            attributes.setdefault("rootfs", cfg.rootfs)
        self.journal.append("container", action, u.id, u.name, attributes)
