"""`cp` and `export`: files in and out of a container, as tar archives.

A running container's root is reached through /proc/PID/root of its first
process (its overlay is mounted only in its own mount namespace); a stopped
one's overlay is mounted for the copy, under the daemon's run root, and
unmounted after (stopped_root). Every path is resolved inside the root with
openat2(RESOLVE_IN_ROOT): a symlink in the container, absolute or full of '..',
stays within it. Below the first resolution everything is done relative to
directory descriptors without following symlinks (O_NOFOLLOW, lstat with dir_fd).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from supervisor import _native, fstree
from supervisor.errors import CopyError, SpecError

CHUNK = 1 << 20
_MS_NOSUID, _MS_NODEV = _native.MS["nosuid"], _native.MS["nodev"]


def proc_root(pid: int) -> str:
    """A running container's root, from the host."""
    return f"/proc/{pid}/root"


@contextlib.contextmanager
def stopped_root(mount_dir: Path, lowerdirs: str, upper: Path, work: Path) -> Iterator[str]:
    """A stopped container's root: its overlay mounted at `mount_dir` for as long
    as the block runs (nothing may start the container meanwhile: the caller
    does the whole copy without yielding to other tasks)."""
    mount_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = f"lowerdir={lowerdirs},upperdir={upper},workdir={work}"
    try:
        _native.mount("overlay", str(mount_dir), "overlay", _MS_NOSUID | _MS_NODEV, data)
    except OSError as e:
        mount_dir.rmdir()
        raise CopyError("mounting the container's root at", str(mount_dir), e.errno or 0) from None
    try:
        yield str(mount_dir)
    finally:
        _native.umount(str(mount_dir))
        mount_dir.rmdir()


def clear_mounts(parent: Path) -> None:
    """At daemon start: roots a crashed daemon left mounted for a copy."""
    if not parent.is_dir():
        return
    for d in parent.iterdir():
        with contextlib.suppress(OSError):
            _native.umount(str(d))
        with contextlib.suppress(OSError):
            d.rmdir()


def _open(root: str, path: str, flags: int) -> int:
    try:
        return _native.open_in_root(root, path, flags | os.O_CLOEXEC)
    except OSError as e:
        raise CopyError("opening in the container", path, e.errno or 0) from None


def path_stat(root: str, path: str) -> dict | None:
    """Docker's PathStat of `path` in the root (name, size, mode with Go's type
    bits, mtime, linkTarget), as `docker cp` reads it from a header; None if
    there is nothing there. A symlink is described, not followed."""
    try:
        fd = _native.open_in_root(root, path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        target = ""
        if stat.S_ISLNK(st.st_mode):
            with contextlib.suppress(OSError):
                target = os.readlink("", dir_fd=fd)
    finally:
        os.close(fd)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        mode |= 1 << 31  # Go's os.ModeDir
    elif stat.S_ISLNK(st.st_mode):
        mode |= 1 << 27  # os.ModeSymlink
    return {
        "name": os.path.basename(path.rstrip("/")) or "/",
        "size": st.st_size,
        "mode": mode,
        "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
        "linkTarget": target,
    }


def archive(root: str, path: str, *, one_fs: bool = False) -> IO[bytes]:
    """A tar of `path` (a file, a directory and all below it, or a symlink as
    itself) under its base name (`/`: its entries at the top), in a spooled
    temporary file, rewound. `one_fs`: directories on another filesystem than
    `path`'s (/proc, /sys, /dev, volumes) are left out, as `export` wants.
    Devices, FIFOs and sockets are left out, as `docker cp` leaves them. The
    walk is iterative and relative to descriptors: any depth (fstree)."""
    name = os.path.basename(path.rstrip("/")) or "."
    parent = _open(root, os.path.dirname(path.rstrip("/")) or "/", os.O_PATH | os.O_DIRECTORY)
    out = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115  (the caller's)
    try:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            if name == ".":  # the root: its entries at the top of the archive
                _add_tree(tar, parent, ".", "", one_fs)
            else:
                st = os.lstat(name, dir_fd=parent)
                top = fstree.Entry(parent, name, st, name, 0)
                _add(tar, top, name)
                if stat.S_ISDIR(st.st_mode):
                    _add_tree(tar, parent, name, name + "/", one_fs)
    except FileNotFoundError:
        out.close()
        raise CopyError("reading in the container", path, errno.ENOENT) from None
    except BaseException:
        out.close()
        raise
    finally:
        os.close(parent)
    out.seek(0)
    return out


def _add_tree(tar: tarfile.TarFile, dfd: int, name: str, prefix: str, one_fs: bool) -> None:
    """Everything below directory `name` of `dfd`, under `prefix`."""
    top = fstree.open_dir(name, dfd)
    try:
        for e in fstree.walk(top, sort=True, one_fs=one_fs):
            _add(tar, e, prefix + e.rel)
    finally:
        os.close(top)


def _add(tar: tarfile.TarFile, e: fstree.Entry, arcname: str) -> None:
    mode = e.st.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        info = fstree.tar_info(e, arcname)
        info.mtime = int(info.mtime)  # whole seconds: no PAX header per entry
        fstree.add_to_tar(tar, e, info)


def extract(root: str, dest: str, data: IO[bytes]) -> int:
    """Unpack the tar in `data` (one top entry: what the client copies) as
    `docker cp` does: into `dest` if it is a directory; else as `dest` itself,
    a new name in an existing directory or a file to replace (not with a
    directory; a `dest` ending in '/' must be a directory). Files are the
    container root's, with the archive's modes; hard links, devices and '..' are
    refused. Returns how many entries."""
    from supervisor.images.layer import LayerError, clean_path

    into, new_name = _destination(root, dest)
    n = 0
    top = None
    try:
        with tarfile.open(fileobj=data, mode="r|") as tar:
            for m in tar:
                try:
                    rel = clean_path(m.name)
                except LayerError as e:
                    raise SpecError("cp", str(e)) from None
                if not rel:
                    continue
                first, _, rest = rel.partition("/")
                if top is None:
                    top = first
                    if new_name is not None and m.isdir() and _is_file(root, dest):
                        raise SpecError("cp", f"cannot copy a directory over the file {dest}")
                elif first != top and new_name is not None:
                    raise SpecError("cp", "the archive has more than one top entry")
                if new_name is not None:
                    rel = f"{new_name}/{rest}" if rest else new_name
                parent, leaf = os.path.split(rel)
                pfd = _native.open_in_root(
                    root, os.path.join(into, parent), os.O_PATH | os.O_DIRECTORY
                )
                try:
                    _write(tar, m, pfd, leaf)
                finally:
                    os.close(pfd)
                n += 1
    except (tarfile.TarError, EOFError) as e:
        raise SpecError("cp", f"not a tar archive: {e}") from None
    except OSError as e:
        raise CopyError("writing into the container at", dest, e.errno or 0) from None
    return n


def _destination(root: str, dest: str) -> tuple[str, str | None]:
    """(the directory to unpack into, the name the top entry takes there or None
    to keep its own)."""
    try:
        os.close(_native.open_in_root(root, dest, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        return dest, None
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise CopyError("opening in the container", dest, e.errno or 0) from None
        if dest.endswith("/") or (e.errno == errno.ENOTDIR and not _is_file(root, dest)):
            raise CopyError("opening in the container", dest, e.errno or 0) from None
    parent, name = os.path.split(dest.rstrip("/"))
    if not name or name in (".", ".."):
        raise CopyError("copying to: not a name to copy to", dest)
    os.close(_open(root, parent or "/", os.O_PATH | os.O_DIRECTORY))  # it must exist
    return parent or "/", name


def _is_file(root: str, path: str) -> bool:
    """Whether `path` in the container is there and not a directory."""
    try:
        fd = _native.open_in_root(root, path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return not stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _write(tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, leaf: str) -> None:
    mode = m.mode & 0o7777
    if m.isdir():
        try:
            os.mkdir(leaf, mode, dir_fd=pfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(leaf, dir_fd=pfd).st_mode):
                raise
        return
    try:
        if stat.S_ISDIR(os.lstat(leaf, dir_fd=pfd).st_mode):
            raise IsADirectoryError(21, "Is a directory", leaf)
        os.unlink(leaf, dir_fd=pfd)
    except FileNotFoundError:
        pass
    if m.isreg():
        fd = os.open(
            leaf,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode,
            dir_fd=pfd,
        )
        src = tar.extractfile(m)
        assert src is not None
        with os.fdopen(fd, "wb") as f:
            while chunk := src.read(CHUNK):
                f.write(chunk)
            os.fchmod(f.fileno(), mode)
    elif m.issym():
        os.symlink(m.linkname, leaf, dir_fd=pfd)
    else:
        raise SpecError("cp", f"{m.name!r}: only files, directories and symlinks are copied")
