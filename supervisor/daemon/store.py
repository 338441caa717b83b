"""What the daemon keeps of each container, under ROOT/containers/ID/.

    config.json  ContainerRecord: identity and what was asked (written once)
    state.json   RunState: what happened (rewritten on each change)
    upper/ work/ the copy-on-write layer of its root filesystem
    rootfs/      the (empty) mount point of that root inside the container
    container.log  its output, written by the monitor (CRI format)

Both files are replaced atomically (write, rename), so a daemon crash never
tears them. config.json and the record of an exit are also fsynced: they must
survive a host crash. The running state is not (an fsync costs a quarter to a
full millisecond here, and after a host crash nothing is running anyway: the
next daemon finds the runtime state gone and says so). A torn or corrupt file
is reported and the container skipped; nothing else is lost.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import structlog

from protocols.api import ContainerConfig
from supervisor import fstree
from supervisor.daemon.lifecycle import Status
from supervisor.runtime.state import atomic_write

log = structlog.get_logger("corral.store")

_REMOVED = ".removed-"  # a removed container's directory, until it is deleted


class ContainerRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    created_nano: int
    config: ContainerConfig


class HealthResult(msgspec.Struct, frozen=True, kw_only=True):
    start_nano: int
    end_nano: int
    exit_code: int
    output: str


class RunState(msgspec.Struct, kw_only=True):
    """Mutable: the daemon updates it and writes it back."""

    status: Status = Status.CREATED  # changed by lifecycle.py alone
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_nano: int = 0
    finished_nano: int = 0
    restart_count: int = 0
    stopped_by_user: bool = False
    restart_delay: float = 0.0  # the last backoff wait, seconds
    next_restart_nano: int = 0  # while restarting: when the next attempt starts
    health_status: str = ""  # "", starting, healthy, unhealthy
    failing_streak: int = 0
    health_log: list[HealthResult] = []  # the last five checks
    ports: dict[str, str] = {}  # "80/tcp" -> "0.0.0.0:8080" while running
    networks: dict[str, int] = {}  # networks joined by `network connect` -> N of its ethN
    # `network connect --ip/--alias`: per network joined, its chosen address and names.
    network_ips: dict[str, str] = {}
    network_aliases: dict[str, list[str]] = {}
    gave_up: bool = False  # its restart policy's start limit was hit (restart.py)


class Store:
    def __init__(self, root: Path) -> None:
        self.dir = root / "containers"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._rec = msgspec.json.Decoder(ContainerRecord)
        self._state = msgspec.json.Decoder(RunState)

    def path(self, id: str) -> Path:
        return self.dir / id

    def create(self, rec: ContainerRecord) -> Path:
        d = self.path(rec.id)
        d.mkdir(mode=0o700)
        for sub in ("upper", "work", "rootfs"):
            (d / sub).mkdir(mode=0o755)
        # A --rm container need not survive a host crash (Docker removes those
        # at its next start): no fsync, a half millisecond of `run --rm` here.
        durable = not rec.config.auto_remove
        atomic_write(d / "config.json", msgspec.json.encode(rec), durable=durable)
        return d  # no state.json yet: a container without one is "created"

    def save_record(self, rec: ContainerRecord) -> None:
        """config.json again (a rename), durably as at create."""
        atomic_write(self.path(rec.id) / "config.json", msgspec.json.encode(rec), durable=True)

    def save_state(self, id: str, state: RunState, *, durable: bool = False) -> None:
        atomic_write(self.path(id) / "state.json", msgspec.json.encode(state), durable=durable)

    def sync_state(self, id: str) -> None:
        """fsync state.json (and its directory entry) after a non-durable save."""
        for path, flags in (
            (self.path(id) / "state.json", os.O_RDONLY),
            (self.path(id), os.O_RDONLY | os.O_DIRECTORY),
        ):
            fd = os.open(path, flags | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def remove(self, id: str) -> Path:
        """Take a container's directory out of the store at once (a rename);
        returns where it went, for purge() to delete: a big tree takes a while,
        so the daemon does that in a worker thread."""
        trash = self.dir / f"{_REMOVED}{id}"
        try:
            os.rename(self.path(id), trash)
        except FileNotFoundError:
            pass
        return trash

    def removed(self) -> list[Path]:
        """What a removal that a crash cut short left behind."""
        return [d for d in self.dir.iterdir() if d.name.startswith(_REMOVED)]

    @staticmethod
    def purge(path: Path) -> None:
        try:
            fstree.rmtree(path)
        except OSError as e:
            log.error("store.purge_failed", path=str(path), error=str(e))

    def load_all(self) -> list[tuple[ContainerRecord, RunState]]:
        out = []
        for d in sorted(self.dir.iterdir()):
            if not d.is_dir() or d.name.startswith(_REMOVED):
                continue
            try:
                rec = self._rec.decode((d / "config.json").read_bytes())
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
                log.error("store.skipped", container=d.name, file="config.json", error=str(e))
                continue
            try:
                state = self._state.decode((d / "state.json").read_bytes())
            except FileNotFoundError:
                state = RunState()
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
                log.error("store.state_unreadable", container=d.name, error=str(e))
                state = RunState(status=Status.DEAD, error=f"state file unreadable: {e}")
            out.append((rec, state))
        return out
