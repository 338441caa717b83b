"""Corral's exceptions: one small hierarchy, each naming what failed.

CorralError                 anything Corral refuses or fails to do
├── SpecError               an invalid config.json / request (names the field)
├── InvalidArgument         a request's argument refused, in Docker's words as they are
├── ContainerError          a lifecycle request that does not fit the state
│   ├── NoSuchContainer
│   ├── ContainerExists
│   └── InvalidState
├── SetupError              the kernel refused a step of container setup
│                           (carries step, errno, path)
└── CgroupError             a cgroup write or read failed (path, errno)
"""

from __future__ import annotations

import errno as _errno
import os


class CorralError(Exception):
    """Base class of every error Corral raises on purpose."""


class SpecError(CorralError):
    """The configuration is invalid; `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid config: {field}: {message}")
        self.field = field


class InvalidArgument(CorralError):
    """An argument of a request refused as it stands ("invalid filter 'colour'"):
    the message is the whole of what is said, as Docker says it."""


class ContainerError(CorralError):
    pass


class NoSuchContainer(ContainerError):
    def __init__(self, id: str) -> None:
        super().__init__(f"container {id!r} does not exist")
        self.id = id


class ContainerExists(ContainerError):
    def __init__(self, id: str) -> None:
        super().__init__(f"container {id!r} already exists")
        self.id = id


class InvalidState(ContainerError):
    pass


# Hints for errnos a user can act on, per step (bubblewrap's mount_strerror idea).
_HINTS = {
    ("mount", _errno.EPERM): "is the target masked or locked by the host?",
    ("mount", _errno.ENODEV): "the filesystem type is not supported by this kernel",
    ("mount", _errno.ENOENT): "the source does not exist",
    ("pivot_root", _errno.EINVAL): "is the root filesystem on a shared mount or the initramfs?",
    ("binding the root filesystem", _errno.ENOENT): "the bundle's root.path does not exist",
    ("looking up the executable", _errno.ENOENT): "check process.args[0] and PATH",
    ("looking up the executable", _errno.EACCES): "the file is not executable",
    ("setrlimit", _errno.EPERM): "a hard limit above the host's needs CAP_SYS_RESOURCE",
    ("joining the cgroup", _errno.ENOSPC): "is cpuset.cpus/mems empty in the cgroup?",
}


class SetupError(CorralError):
    """A step of container setup failed in the kernel.

    Raised in the parent from the record the child wrote to its error pipe:
    `step` names the step ("mount", "pivot_root", ...), `errno` the error,
    `path` what it was applied to and `detail` more context.
    """

    def __init__(self, step: str, err: int, path: str = "", detail: str = "") -> None:
        self.step, self.errno, self.path, self.detail = step, err, path, detail
        where = f" {path}" if path else ""
        what = f" ({detail})" if detail else ""
        name = _errno.errorcode.get(err, str(err)) if err else "failed"
        msg = f"{step}{where}{what}: {name}: {os.strerror(err) if err else 'failed'}"
        hint = _HINTS.get((step, err))
        super().__init__(f"{msg} ({hint})" if hint else msg)

    @property
    def exit_code(self) -> int:
        """Docker's convention: 127 not found, 126 cannot execute, 125 otherwise."""
        if self.step == "looking up the executable" or self.step == "execve":
            return 127 if self.errno == _errno.ENOENT else 126
        return 125


class HookError(ContainerError):
    """An OCI hook that runs before the container's process failed: the spec
    makes that an error, and the container is removed (or, for a
    startContainer hook, killed)."""

    def __init__(self, kind: str, path: str, why: str) -> None:
        self.kind, self.path, self.why = kind, path, why
        super().__init__(f"{kind} hook {path}: {why}")


class CgroupError(CorralError):
    def __init__(self, path: str, err: int, what: str) -> None:
        name = _errno.errorcode.get(err, str(err))
        super().__init__(f"cgroup {what} {path}: {name}: {os.strerror(err)}")
        self.path, self.errno = path, err


class Conflict(CorralError):
    """The request does not fit the container's state or the fleet's names."""
