"""The runtime's lifecycle: create, start, state, kill, delete, run.

A container's parent is its monitor (native/monitor.c), never the caller:
`create` starts the monitor without fork(), hands it the plan through a
memfd and waits for its report (created, or the step that failed; before
it, a pause for the hooks that run before pivot_root, where there are any).
Everything else reads the record on disk and talks to the kernel through
pidfds, so any process (the CLI now, the daemon later) can manage a
container it did not create, and containers outlive whoever created them.
"""

from __future__ import annotations

import _signal as signal  # not signal.py, whose enums of every signal cost ~2 ms
import errno
import os
import time

from protocols.lite import oci as oci_lite
from supervisor import _native
from supervisor.errors import (
    CgroupError,
    ContainerExists,
    HookError,
    InvalidState,
    NoSuchContainer,
    SetupError,
    SpecError,
)
from supervisor.runtime import plan as planner
from supervisor.runtime import spec as specs
from supervisor.runtime.cgroups import Limits, Stats, open_cgroup
from supervisor.runtime.hookcalls import (
    hook_state,
    hooks_module,
    kept_hooks,
    remove_state_dir,
    remove_with_poststop,
    run_before_pivot,
    run_hooks,
)
from supervisor.runtime.processes import (
    ctl_write,
    kill_cgroup,
    pidfd_of,
    read_report,
    reap_within,
    release_start,
    resize_pty,
    signal_process,
    spawn_monitor,
    wait_child,
    wait_gone,
    zombie,
)
from supervisor.runtime.state import (
    CgroupRecord,
    ContainerRecord,
    CorruptState,
    ExitRecord,
    alive,
    proc_start_time,
    read_exit,
    read_record,
    write_record,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections and msgspec: annotations only, off the CLI's path
    from collections.abc import Generator, Sequence

    from protocols import oci

DEFAULT_ROOT = "/run/corral/runtime"
DEFAULT_CGROUP_PARENT = "/corral"
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("_.-")


def valid_id(id: str) -> bool:
    """[A-Za-z0-9][A-Za-z0-9_.-]{0,127}, without importing re for it."""
    return 0 < len(id) <= 128 and id[0] in _ID_FIRST and all(c in _ID_REST for c in id)


class Created:
    """A container just created by this process; `monitor_pidfd` is ours to wait on."""

    __slots__ = ("cgroup", "monitor_pidfd", "record")

    def __init__(self, record: ContainerRecord, monitor_pidfd: int, cgroup: object = None):
        self.record = record
        self.monitor_pidfd = monitor_pidfd
        self.cgroup = cgroup  # the cgroup driver it was created with

    def close(self) -> None:
        if self.monitor_pidfd >= 0:
            os.close(self.monitor_pidfd)
            self.monitor_pidfd = -1


class Runtime:
    """Containers under one state root.

    `cgroup_version` forces "v1" or "v2" (default: detected); with
    `cgroup_mount_root` the v2 hierarchy is looked for there.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        *,
        cgroup_parent: str = DEFAULT_CGROUP_PARENT,
        cgroup_version: str | None = None,
        cgroup_mount_root: str | None = None,
    ) -> None:
        self.root = os.fspath(root)  # a string: no pathlib on the CLI's path (~5 ms)
        self.cgroup_parent = cgroup_parent
        self.cgroup_version = cgroup_version
        self.cgroup_mount_root = cgroup_mount_root
        # Each container's cgroup driver, kept from create (or first use) to delete:
        # making one finds its directory in every hierarchy (~50 us on v1), and the
        # daemon asks for it on every kill, pause and status.
        self._cgroups: dict[str, tuple[tuple, object]] = {}

    # -- create / start -------------------------------------------------------------

    def create(self, id: str, bundle: str | os.PathLike[str], **kw) -> Created:
        """Set the container up; create_steps() says how (the arguments are its)."""
        steps = self.create_steps(id, bundle, **kw)
        next(steps)  # the monitor is starting: a blocking read waits for its report
        return finish_create(steps)

    def create_steps(
        self,
        id: str,
        bundle: str | os.PathLike[str],
        *,
        stdio: Sequence[int] | None = None,
        detach: bool = True,
        wait_for_start: bool = True,
        spec: oci.Spec | None = None,
        stdin: int | None = None,
        stdin_fifo: bool = False,
        overlay: tuple[str, str, str] | None = None,
        log_max_size: int = 0,
        log_max_files: int = 1,
        log_file: str | None = None,
        handoff: str | None = None,
        no_pivot: bool = False,
        preserve_fds: int = 0,
    ) -> Generator[int, None, Created]:
        """Set the container up; with `wait_for_start` it waits for `start()`,
        else it runs at once.

        A generator, so that a caller with an event loop need not block while the
        container's namespaces, mounts and exec are made: it yields once, the
        descriptor on which the monitor's report arrives, and returns the Created
        once resumed (finish_create) when that is readable. Closing it instead
        (a cancelled caller) removes everything, as a failure does.

        `stdio` is passed to the container (foreground); None sends its output
        to `container.log` through the monitor (rotated past `log_max_size`
        bytes, `log_max_files` kept), with `stdin` (default /dev/null) as its
        input; `stdin_fifo` gives it instead a FIFO that its monitor keeps a
        writer on (so it reads no EOF when the daemon goes): stdin_writer()
        opens it, close_stdin() ends it. `overlay` = (lowerdirs, upperdir, workdir) makes the root a
        copy-on-write overlay. `handoff` (a console socket path, or "") is
        runc's model: the monitor exits once the container is created and the
        caller's subreaper becomes its parent (plan.Paths.handoff). Raises
        SpecError, CgroupError, ContainerExists or SetupError; on failure
        nothing is left behind.
        """
        if not valid_id(id):
            raise SpecError(
                "id", f"{id!r} must be 1-128 of [A-Za-z0-9_.-], not starting with . - _"
            )
        created_at = time.time_ns()  # before its process can run, let alone exit
        bundle = os.path.abspath(bundle)
        os.makedirs(self.root, 0o700, exist_ok=True)
        state_dir = os.path.join(self.root, id)
        try:
            os.mkdir(state_dir, 0o700)
        except FileExistsError:
            raise ContainerExists(id) from None
        cgroup = None
        pidfd = report = -1
        try:
            if spec is None:
                spec = specs.load(bundle)
            else:
                specs.validate(spec)
            assert spec.root is not None
            rootfs = os.path.realpath(os.path.join(bundle, spec.root.path))
            if not os.path.isdir(rootfs):
                raise SpecError("root.path", f"{rootfs} is not a directory")
            if overlay and any(ns.type == "user" for ns in (spec.linux.namespaces or [])):
                raise SpecError("linux.namespaces", "a user namespace over an overlay root")
            for lower in overlay[0].split(":") if overlay else []:
                if not os.path.isdir(lower):
                    raise SpecError("rootfs", f"{lower} is not a directory")
            linux = spec.linux or oci_lite.Linux()
            cg_path = linux.cgroups_path or f"{self.cgroup_parent}/{id}"
            limits = planner.limits_from_spec(linux.resources, linux)
            cgroup = open_cgroup(
                cg_path,
                self.cgroup_version,
                self.cgroup_mount_root,
                cpuset=bool(limits.cpuset_cpus or limits.cpuset_mems),
            )
            if cgroup.exists():
                if cgroup.pids():
                    raise CgroupError(cg_path, errno.EEXIST, "already in use:")
                # Empty: what an earlier container of this id left (a removal
                # that met EBUSY while its last process was being reaped).
                cgroup.destroy()
            cgroup.create(limits)
            hooks = spec.hooks
            # startContainer hooks run while the process waits to be started.
            start_hooks = hooks is not None and bool(hooks.start_container)
            fifo = hooks_fifo = None
            if wait_for_start or start_hooks:
                fifo = os.path.join(state_dir, "exec.fifo")
                os.mkfifo(fifo, 0o600)
            if hooks is not None and hooks_module().any_before_pivot(hooks):
                hooks_fifo = os.path.join(state_dir, "hooks.fifo")
                os.mkfifo(hooks_fifo, 0o600)
            bpf = None
            if spec.linux is not None and spec.linux.seccomp is not None:
                from supervisor.runtime import seccomp  # only for specs that have one

                bpf = seccomp.compiled(spec.linux.seccomp)
                with open(os.path.join(state_dir, "seccomp.bpf"), "wb") as f:
                    f.write(bpf)  # for execs, later
            ctl = stdin_path = None
            if stdio is None and (spec.process.terminal or stdin_fifo):
                # resizes of a pty no terminal of ours sizes, and the end of stdin
                ctl = os.path.join(state_dir, "ctl.fifo")
                os.mkfifo(ctl, 0o600)
            if stdio is None and stdin_fifo:
                stdin_path = os.path.join(state_dir, "stdin.fifo")
                os.mkfifo(stdin_path, 0o600)
                # Non-blocking: no writer yet; the container gets it blocking.
                stdin = os.open(stdin_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                os.set_blocking(stdin, True)
            paths = planner.Paths(
                rootfs=rootfs,
                bundle=bundle,
                exit_file=os.path.join(state_dir, "exit.json"),
                start_fifo=fifo,
                log_file=None
                if stdio is not None
                else (log_file or os.path.join(state_dir, "container.log")),
                log_max_size=log_max_size,
                log_max_files=log_max_files,
                ctl_fifo=ctl,
                stdin_fifo=stdin_path,
                seccomp=bpf,
                overlay=overlay,
                hooks_fifo=hooks_fifo,
                handoff=handoff,
                no_pivot=no_pivot,
                preserve_fds=preserve_fds,
            )
            plan = planner.build(spec, paths, cgroup)
            try:
                extra = range(3, 3 + preserve_fds)  # ours, passed on as they are
                pid, pidfd, report = spawn_monitor(plan, stdio, detach, stdin, extra)
            finally:
                if stdin_path is not None:
                    os.close(stdin)  # the container has it now
            resumed = False
            try:
                yield report
                resumed = True
            finally:
                # Resumed, or closed by a caller that gave up: the report comes
                # either way (the monitor sends one or exits), and a given-up
                # or failed container is then removed below (its monitor,
                # exiting after a failure, reaped there).
                kind, cpid = read_report(report)
            record = ContainerRecord(
                id=id,
                bundle=bundle,
                rootfs=rootfs,
                pid=cpid,
                pid_start=proc_start_time(cpid) or 0,
                monitor_pid=pid,
                monitor_start=proc_start_time(pid) or 0,
                created_at=created_at,
                cgroup=CgroupRecord(
                    version=cgroup.version, path=cg_path, mount_root=self.cgroup_mount_root
                ),
                annotations=dict(spec.annotations or {}),
                handoff=handoff is not None,
            )
            if hooks_fifo is not None:
                # Paused before pivot_root for the hooks; let it go on after them.
                if kind != _native.REPORT_HOOKS or not resumed:
                    raise SetupError("waiting for the hooks", 0, hooks_fifo, "no pause reported")
                run_before_pivot(hooks, hook_state(record, "creating"), cpid)
                fd = os.open(hooks_fifo, os.O_WRONLY | os.O_CLOEXEC)  # it waits as reader
                try:
                    os.write(fd, b"c")
                finally:
                    os.close(fd)
                read_report(report)  # the setup's end
            os.close(report)
            report = -1
            write_record(state_dir, record)
            if hooks is not None:
                hooks_module().keep(state_dir, hooks)  # for a start or delete elsewhere
                if not wait_for_start:  # run: start it now, its startContainer hooks first
                    if start_hooks:
                        self._start_hooks(state_dir, record)
                        release_start(fifo, id)
                    if hooks.poststart:
                        run_hooks("poststart", hooks.poststart, hook_state(record, "running"))
            return Created(record, pidfd, cgroup)
        except BaseException:
            if report >= 0:
                os.close(report)
            if cgroup is not None and cgroup.exists():
                cgroup.kill_all()
            if pidfd >= 0:  # its container is killed: the monitor goes; reap it
                reap_within(pidfd, 5.0)
                os.close(pidfd)
            if cgroup is not None and cgroup.exists():
                cgroup.destroy()
            remove_state_dir(state_dir)
            raise

    def start(self, id: str) -> None:
        """Let a created container exec its process (its startContainer hooks
        first: one that fails kills it, and raises HookError)."""
        state_dir = self._dir(id)
        fifo = os.path.join(state_dir, "exec.fifo")
        if not os.path.exists(fifo):
            raise InvalidState(f"container {id!r} is {self.status(id)}, not created")
        kept = kept_hooks(state_dir)
        if kept is not None and kept.start_container:
            rec = self.record(id)
            if self.status(id, rec) != "created":
                raise InvalidState(f"container {id!r} is no longer waiting to start")
            self._start_hooks(state_dir, rec)
        release_start(fifo, id)
        if kept is not None and kept.poststart:
            run_hooks("poststart", kept.poststart, hook_state(self.record(id), "running"))

    def _start_hooks(self, state_dir: str, rec: ContainerRecord) -> None:
        """Run the startContainer hooks in the waiting container's namespaces;
        kill it if one fails."""
        kept = kept_hooks(state_dir)
        if kept is None or not kept.start_container:
            return
        pidfd = pidfd_of(rec.pid)
        if pidfd is None:
            raise InvalidState(f"container {rec.id!r} is no longer waiting to start")
        try:
            if not alive(rec.pid, rec.pid_start):  # the pid is another process's now
                raise InvalidState(f"container {rec.id!r} is no longer waiting to start")
            run_hooks("start_container", kept.start_container, hook_state(rec, "created"), pidfd)
        except HookError:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise
        finally:
            os.close(pidfd)

    def run(
        self,
        id: str,
        bundle: str | os.PathLike[str],
        *,
        stdio: Sequence[int] = (0, 1, 2),
        spec: oci.Spec | None = None,
        keep: bool = False,
    ) -> int:
        """Create, start and wait in the foreground; delete unless `keep`.

        Returns the exit status (128+N when killed by signal N).
        """
        created = self.create(
            id, bundle, stdio=stdio, detach=False, wait_for_start=False, spec=spec
        )
        try:
            code = wait_child(created.monitor_pidfd)
        except BaseException:
            created.close()
            self.delete(id, force=True)
            raise
        if not keep:
            self.remove_reaped(created)
        created.close()
        return code

    def remove_reaped(self, created: Created) -> None:
        """Remove a container whose monitor this process has reaped: it is gone,
        so none of delete()'s checks and waits are needed."""
        created.cgroup.destroy()  # type: ignore[attr-defined]
        self._cgroups.pop(created.record.id, None)
        remove_with_poststop(os.path.join(self.root, created.record.id), created.record)

    # -- inspection ---------------------------------------------------------------------

    def _dir(self, id: str) -> str:
        if not valid_id(id) or not os.path.isdir(os.path.join(self.root, id)):
            raise NoSuchContainer(id)
        return os.path.join(self.root, id)

    def record(self, id: str) -> ContainerRecord:
        rec = read_record(self._dir(id))
        if rec is None:
            raise NoSuchContainer(id)
        return rec

    def _cgroup(self, rec: ContainerRecord):
        c = rec.cgroup
        key = (rec.created_at, c.path, c.version, c.mount_root)  # this incarnation's
        kept = self._cgroups.get(rec.id)
        if kept is not None and kept[0] == key:
            return kept[1]
        cgroup = open_cgroup(c.path, c.version, c.mount_root)
        self._cgroups[rec.id] = (key, cgroup)
        return cgroup

    def status(self, id: str, rec: ContainerRecord | None = None) -> str:
        state_dir = self._dir(id)
        rec = rec or read_record(state_dir)
        if rec is None:
            return "creating"
        if rec.handoff:  # no monitor: its own process tells (a zombie is stopped)
            if not alive(rec.pid, rec.pid_start) or zombie(rec.pid):
                return "stopped"
        elif read_exit(state_dir) is not None or not alive(rec.monitor_pid, rec.monitor_start):
            return "stopped"
        if os.path.exists(os.path.join(state_dir, "exec.fifo")):
            return "created"
        # A container whose process is gone but whose monitor has not yet
        # recorded the exit is still "running": stopped means recorded.
        if self._cgroup(rec).frozen():
            return "paused"
        return "running"

    def state(self, id: str) -> oci_lite.State:
        rec = read_record(self._dir(id))
        if rec is None:  # being created, or its creator died mid-create
            return oci_lite.State(
                oci_version=oci_lite.OCI_VERSION, id=id, status="creating", bundle="", pid=0
            )
        status = self.status(id, rec)
        return oci_lite.State(
            oci_version=oci_lite.OCI_VERSION,
            id=id,
            status=status,
            bundle=rec.bundle,
            pid=rec.pid if status != "stopped" else 0,
            annotations=rec.annotations or None,
        )

    def exit_status(self, id: str) -> ExitRecord | None:
        return read_exit(self._dir(id))

    def pids(self, id: str) -> list[int]:
        """The processes in the container's cgroup."""
        return self._cgroup(self.record(id)).pids()

    def stats(self, id: str) -> Stats:
        return self._cgroup(self.record(id)).stats()

    def list(self, unreadable: list[CorruptState] | None = None) -> list[oci_lite.State]:
        """Every container's state; one whose state file cannot be read is left
        out (and appended to `unreadable`), not the whole list."""
        if not os.path.isdir(self.root):
            return []
        out = []
        for name in sorted(os.listdir(self.root)):
            try:
                out.append(self.state(name))
            except NoSuchContainer:
                continue
            except CorruptState as e:
                if unreadable is not None:
                    unreadable.append(e)
        return out

    def exec(
        self,
        id: str,
        process: oci.Process,
        stdio: Sequence[int],
        ctl_fifo: str | None = None,
        handoff: str | None = None,
        preserve_fds: int = 0,
    ) -> tuple[int, int, int]:
        """Start `process` inside running container `id` (setns into its
        namespaces, its cgroup), under a monitor of its own that exits with the
        process's status. Returns (monitor pid, its pidfd, the process's pid);
        the caller reaps the monitor. Raises InvalidState if the container is
        not running, SetupError. `handoff`: as create's (the monitor exits once
        the process runs; the caller's subreaper reaps it)."""
        rec = self.record(id)
        if self.status(id, rec) not in ("created", "running", "paused"):
            raise InvalidState(f"container {id!r} is not running")
        specs.validate_process(process)
        try:  # an exec gets the container's filter, as runc's does
            with open(os.path.join(self._dir(id), "seccomp.bpf"), "rb") as f:
                bpf = f.read()
        except FileNotFoundError:
            bpf = None
        plan = planner.build_exec(
            process, rec.pid, self._cgroup(rec), ctl_fifo, bpf, handoff, preserve_fds
        )
        extra = range(3, 3 + preserve_fds)
        pid, pidfd, report = spawn_monitor(plan, stdio, detach=False, extra=extra)
        try:
            return pid, pidfd, read_report(report)[1]
        except BaseException:
            wait_child(pidfd)
            os.close(pidfd)
            raise
        finally:
            os.close(report)

    def resize(self, id: str, rows: int, cols: int) -> None:
        """Set the size of a detached container's terminal (its monitor applies it)."""
        resize_pty(os.path.join(self._dir(id), "ctl.fifo"), rows, cols)

    def stdin_writer(self, id: str) -> int:
        """A writer (non-blocking, close-on-exec) on a stdin_fifo container's stdin."""
        path = os.path.join(self._dir(id), "stdin.fifo")
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:  # ENXIO: nobody reads it any more
            raise InvalidState(f"container {id!r} has no open stdin ({e.strerror})") from None

    def close_stdin(self, id: str) -> None:
        """Ask the monitor to close its writer: the container reads EOF once the
        caller's writers are closed too."""
        ctl_write(os.path.join(self._dir(id), "ctl.fifo"), "eof")

    # -- signals, removal -------------------------------------------------------------

    def kill(self, id: str, sig: int = signal.SIGTERM) -> None:
        rec = self.record(id)
        status = self.status(id, rec)
        if status == "stopped":
            raise InvalidState(f"container {id!r} is not running")
        signal_process(rec.pid, rec.pid_start, sig)
        if status == "paused" and sig == signal.SIGKILL:
            self._cgroup(rec).thaw()

    def update(self, id: str, limits: Limits) -> None:
        """New resource limits for a created, running or paused container."""
        rec = self.record(id)
        if self.status(id, rec) == "stopped":
            raise InvalidState(f"container {id!r} is not running")
        self._cgroup(rec).update(limits)

    def pause(self, id: str) -> None:
        rec = self.record(id)
        if self.status(id, rec) != "running":
            raise InvalidState(f"container {id!r} is not running")
        self._cgroup(rec).freeze()

    def resume(self, id: str) -> None:
        rec = self.record(id)
        if self.status(id, rec) != "paused":
            raise InvalidState(f"container {id!r} is not paused")
        self._cgroup(rec).thaw()

    def delete(self, id: str, *, force: bool = False, timeout: float = 10.0) -> None:
        """Remove a stopped (or created) container; `force` kills a running one,
        and removes one whose state file cannot be read (see _delete_unreadable)."""
        state_dir = self._dir(id)
        try:
            rec = read_record(state_dir)
        except CorruptState:
            if not force:
                raise
            self._delete_unreadable(id, state_dir)
            return
        if rec is None:
            # Being created, or its creator died mid-create (while its hooks
            # ran, say): its monitor and child may be waiting still.
            if not force:
                raise InvalidState(
                    f"cannot delete container {id!r}: it is being created (use --force)"
                )
            self._delete_unreadable(id, state_dir)
            return
        status = self.status(id, rec)
        if status == "running" and not force and not alive(rec.pid, rec.pid_start):
            # Its process has exited (`kill ... KILL; delete`): the monitor is
            # recording it this moment. Stopped, then, once recorded.
            wait_gone(rec.monitor_pid, rec.monitor_start, timeout)
            status = self.status(id, rec)
        if status in ("created", "running", "paused") and not force:
            # The runtime spec: delete MUST fail unless the container is stopped.
            raise InvalidState(
                f"cannot delete container {id!r}: it is {status} (stop it, or use --force)"
            )
        cgroup = self._cgroup(rec)
        if status != "stopped":
            if cgroup.exists():
                cgroup.kill_all()
            try:
                signal_process(rec.pid, rec.pid_start, signal.SIGKILL)
            except InvalidState:
                pass
            if status == "paused":
                cgroup.thaw()
        wait_gone(rec.monitor_pid, rec.monitor_start, timeout)
        if cgroup.exists():
            # "stopped" with processes left: its monitor died (kill -9) and the
            # container went on, reparented to init. They are found through
            # the cgroup and killed, or the cgroup could never be removed.
            kill_cgroup(cgroup, timeout)
            cgroup.destroy()
        self._cgroups.pop(id, None)
        remove_with_poststop(state_dir, rec)

    def _delete_unreadable(self, id: str, state_dir: str) -> None:
        """`delete --force` of a container whose state.json is unreadable or was
        never written: its pids and cgroup path are not known, so the cgroup is
        looked for where the runtime puts a container's by default (PARENT/ID,
        the common case), every process in it killed (the monitor goes with its
        container), and the cgroup and state directory removed."""
        cgroup = open_cgroup(
            f"{self.cgroup_parent}/{id}", self.cgroup_version, self.cgroup_mount_root
        )
        if cgroup.exists():
            cgroup.kill_all()
            for _ in range(400):  # the kill lands, the monitor records the exit
                if not cgroup.pids() and os.path.exists(os.path.join(state_dir, "exit.json")):
                    break
                time.sleep(0.005)
            cgroup.destroy()
        self._cgroups.pop(id, None)
        remove_state_dir(state_dir)


def finish_create(steps: Generator[int, None, Created]) -> Created:
    """Resume Runtime.create_steps once its report descriptor is readable."""
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("create_steps yielded twice")
