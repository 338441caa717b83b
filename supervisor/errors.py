"""Corral's exceptions: one small hierarchy, each naming what failed. Every
module raises these (and defines none of its own), so this is the whole list.

CorralError                 anything Corral refuses or fails to do
├── SpecError               an invalid config.json / request (names the field)
├── InvalidArgument         a request's argument refused, in Docker's words as they are
├── NotFound                a thing no one has (the client's `not_found`)
│   ├── NoSuchContainer
│   ├── NoSuchImage         (an ImageError too)
│   ├── NoSuchNetwork       (a NetworkError too)
│   └── NoSuchVolume        (a VolumeError too)
├── Conflict                a request that does not fit the state or the names
├── ContainerError          a runtime container that does not fit the request
│   ├── ContainerExists
│   ├── InvalidState
│   └── HookError           an OCI hook before the process failed
├── SetupError              the kernel refused a step of container setup
│                           (carries step, errno, path)
├── CgroupError             a cgroup write or read failed (path, errno)
├── CorruptState            a runtime state file that cannot be read
├── ImpossibleTransition    a bug: a change of status the lifecycle lacks
├── ImageError              an image or a store that cannot do what is asked
│   ├── LayerError          a layer that cannot be unpacked safely (names the entry)
│   └── RegistryError       a registry's refusal or a malformed answer
├── NetworkError            a network that cannot do what is asked
│   ├── LinkError           a netlink step failed (names the link)
│   └── PortError           a port that cannot be published
├── VolumeError
├── CopyError               cp/export: names the step, the path and errno
├── ComposeError            a Compose project that cannot be read (names the file
│                           and key) or brought to what it declares (names the
│                           service and why)
└── BuildError              a Dockerfile that cannot be read (names its line) or
                            built (names the step and what failed)
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


class NotFound(CorralError):
    """A thing no one has: the client's `not_found` (and Docker's 404)."""


class ContainerError(CorralError):
    pass


class NoSuchContainer(NotFound, ContainerError):
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


class CorruptState(CorralError):
    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        super().__init__(f"state file {path} is unreadable: {why}")
        self.path = path


class ImpossibleTransition(CorralError):
    """A bug: a change of status the lifecycle does not have (lifecycle.py)."""


class ImageError(CorralError):
    pass


class NoSuchImage(NotFound, ImageError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")
        self.ref = ref


class LayerError(ImageError):
    """A layer that cannot be unpacked safely; the message names the entry."""


class RegistryError(ImageError):
    pass


class NetworkError(CorralError):
    pass


class NoSuchNetwork(NotFound, NetworkError):
    """A name no network has."""


class LinkError(NetworkError):
    pass


class PortError(NetworkError):
    pass


class VolumeError(CorralError):
    pass


class NoSuchVolume(NotFound, VolumeError):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such volume: {name}")
        self.id = name


class CopyError(CorralError):
    """cp or export could not do a step: it names the step, the path and errno."""

    def __init__(self, step: str, path: str, err: int = 0) -> None:
        what = f": {_errno.errorcode.get(err, err)}: {os.strerror(err)}" if err else ""
        super().__init__(f"{step} {path}{what}")
        self.step, self.path, self.errno = step, path, err


class ComposeError(CorralError, ValueError):
    """A Compose project that cannot be read or converged: the message names the
    file and key, or the service and what stopped it."""


class BuildError(CorralError, ValueError):
    """A Dockerfile that cannot be read (`Dockerfile:LINE: what`) or a step that
    failed (the step, and its output or the reason)."""
