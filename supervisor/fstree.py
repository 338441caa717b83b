"""Directory trees walked, measured, copied and removed without recursion.

A container can make a tree as deep as it likes (mkdir a; cd a; over and
over): the kernel bounds a *path* (PATH_MAX, 4096 bytes per lookup), not a
depth. So nothing here recurses (Python's stack ends near 1,000 frames) and
nothing names an entry by its full path (a 2,048-deep path of one-letter
names is already past PATH_MAX): every operation is relative to the
descriptor of the entry's own directory, and the walk keeps one descriptor per
level of the path it is on. The depth is then bounded by the open-file limit
(the daemon raises its soft limit to the hard one at start: 20,000 here).

Descriptors are opened with O_NOFOLLOW: a symlink is an entry, never a way
out of the tree.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import NamedTuple

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Entry(NamedTuple):
    dir_fd: int  # the directory holding it: valid until the walk moves on
    name: str
    st: os.stat_result  # lstat
    rel: str  # relative to the top, "/"-joined (may be longer than PATH_MAX)
    depth: int  # 0 for the top's own entries


def open_dir(path: str | os.PathLike[str], dir_fd: int | None = None) -> int:
    return os.open(path, _DIR_FLAGS, dir_fd=dir_fd)


def walk(top_fd: int, *, sort: bool = False, one_fs: bool = False) -> Iterator[Entry]:
    """Every entry below the open directory `top_fd`, parents before their
    children (pre-order). A directory is descended into after it is yielded;
    `one_fs` leaves out what is mounted on another filesystem (its directory
    itself is yielded). Entries that vanish meanwhile are passed over."""
    top_dev = os.fstat(top_fd).st_dev
    stack: list[tuple[int, Iterator[str], str]] = [(top_fd, iter(_names(top_fd, sort)), "")]
    try:
        while stack:
            fd, names, prefix = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                if fd != top_fd:
                    os.close(fd)
                continue
            try:
                st = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                continue
            rel = prefix + name
            yield Entry(fd, name, st, rel, len(stack) - 1)
            if not stat.S_ISDIR(st.st_mode) or (one_fs and st.st_dev != top_dev):
                continue
            try:
                sub = open_dir(name, fd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            stack.append((sub, iter(_names(sub, sort)), rel + "/"))
    finally:
        for fd, _, _ in stack:
            if fd != top_fd:
                os.close(fd)


def _names(fd: int, sort: bool) -> list[str]:
    names = os.listdir(fd)
    return sorted(names) if sort else names


def du(path: str | os.PathLike[str]) -> int:
    """Bytes held by the files under `path` (sizes of non-directories), 0 if
    it is gone."""
    try:
        fd = open_dir(path)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    try:
        return sum(e.st.st_size for e in walk(fd) if not stat.S_ISDIR(e.st.st_mode))
    finally:
        os.close(fd)


def rmtree(path: str | os.PathLike[str], dir_fd: int | None = None) -> None:
    """Remove `path` (relative to `dir_fd` if given) and everything below it;
    nothing if it is not there. Children first, each directory emptied through
    its own descriptor, so depth costs descriptors, not stack or path length."""
    try:
        st = os.lstat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path, dir_fd=dir_fd)
        return
    top = open_dir(path, dir_fd)
    try:
        _empty(top)
    finally:
        os.close(top)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path, dir_fd=dir_fd)


def _empty(top_fd: int) -> None:
    """Remove everything in the open directory `top_fd`, depth first."""
    # Each level: its descriptor, the subdirectories still to empty, and its
    # own name in the level above (which removes it once it is empty).
    stack: list[tuple[int, list[str], str]] = [(top_fd, _unlink_files(top_fd), "")]
    try:
        while stack:
            fd, subdirs, own_name = stack[-1]
            if subdirs:
                name = subdirs.pop()
                try:
                    sub = open_dir(name, fd)
                except FileNotFoundError:
                    continue
                stack.append((sub, _unlink_files(sub), name))
                continue
            stack.pop()
            if stack:
                os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(own_name, dir_fd=stack[-1][0])
    finally:
        for fd, _, _ in stack[1:]:
            os.close(fd)


def _unlink_files(fd: int) -> list[str]:
    """Unlink every non-directory in `fd`; returns its subdirectories."""
    dirs = []
    for name in os.listdir(fd):
        try:
            st = os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            dirs.append(name)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    return dirs


def copy_tree(src_fd: int, dst_fd: int) -> None:
    """Copy what the open directory `src_fd` holds into the open directory
    `dst_fd`, keeping modes, owners, times and extended attributes:
    directories, regular files (the kernel copies: copy_file_range), symlinks
    as links, device nodes and FIFOs as new nodes (mknod: a device's contents
    are never read), sockets left out. Nothing is followed out of `src_fd`."""
    dst_stack: list[int] = [dst_fd]
    dirs: list[tuple[int, str, os.stat_result]] = []  # times are set last
    try:
        for e in walk(src_fd):
            del_to = e.depth + 1
            while len(dst_stack) > del_to:
                os.close(dst_stack.pop())
            out = dst_stack[-1]
            mode = e.st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(e.name, 0o700, dir_fd=out)
                sub = open_dir(e.name, out)
                _meta(out, e.name, e.st, e.dir_fd)
                dst_stack.append(sub)
                dirs.append((out, e.name, e.st))
                continue
            if stat.S_ISREG(mode):
                _copy_file(e.dir_fd, e.name, out, e.st)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(e.name, dir_fd=e.dir_fd), e.name, dir_fd=out)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(e.name, stat.S_IFMT(mode) | 0o600, e.st.st_rdev, dir_fd=out)
            else:
                continue  # a socket: nothing to copy (Docker leaves them out too)
            _meta(out, e.name, e.st, e.dir_fd)
            _times(out, e.name, e.st)
        # Directory times after their contents were written; deepest first is
        # not needed: a child's mtime change touches only its own parent, set below.
        for parent, name, st in reversed(dirs):
            _times(parent, name, st)
    finally:
        for fd in dst_stack[1:]:
            os.close(fd)


def _copy_file(src_dir: int, name: str, dst_dir: int, st: os.stat_result) -> None:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):  # swapped meanwhile
            return
        dst = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dst_dir,
        )
        try:
            left = st.st_size
            while left > 0:
                try:
                    n = os.copy_file_range(src, dst, min(left, 1 << 30))
                except OSError:  # across filesystems on old kernels: by hand
                    n = _copy_chunk(src, dst)
                if n == 0:
                    break  # it shrank meanwhile
                left -= n
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_chunk(src: int, dst: int) -> int:
    data = os.read(src, 1 << 20)
    if data:
        os.write(dst, data)
    return len(data)


def _meta(dst_dir: int, name: str, st: os.stat_result, src_dir: int) -> None:
    """Owner, mode and extended attributes of `name` as the source has them."""
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        return
    os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    s = os.open(name, flags, dir_fd=src_dir)
    try:
        d = os.open(name, flags, dir_fd=dst_dir)
        try:
            for key in os.listxattr(s):
                if key.startswith("trusted.overlay."):
                    continue  # overlayfs's own bookkeeping, not the file's
                with contextlib.suppress(OSError):
                    os.setxattr(d, key, os.getxattr(s, key))
        finally:
            os.close(d)
    except OSError:
        pass  # no xattrs here (ENOTSUP): modes and owners are what matters
    finally:
        os.close(s)


def _times(dst_dir: int, name: str, st: os.stat_result) -> None:
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)


def tar_info(e: Entry, arcname: str, links: dict[tuple[int, int], str] | None = None):
    """A TarInfo for the entry, read through its directory's descriptor (never
    its path); a regular file seen before under another name (same inode, in
    `links`) becomes a hard link to that name. None for a socket."""
    import tarfile

    st, mode = e.st, e.st.st_mode
    info = tarfile.TarInfo(arcname)
    info.mode, info.uid, info.gid, info.mtime = (
        stat.S_IMODE(mode),
        st.st_uid,
        st.st_gid,
        st.st_mtime,
    )
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if links is not None and st.st_nlink > 1:
            if key in links:
                info.type, info.linkname = tarfile.LNKTYPE, links[key]
                return info
            links[key] = arcname
        info.size = st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(e.name, dir_fd=e.dir_fd)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None
    return info


def add_to_tar(tar, e: Entry, info) -> None:
    """Append `info` (from tar_info) to `tar`, with the file's contents read
    through its directory's descriptor."""
    import tarfile

    if info.type != tarfile.REGTYPE:
        tar.addfile(info)
        return
    fd = os.open(e.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=e.dir_fd)
    with os.fdopen(fd, "rb") as f:
        info.size = os.fstat(fd).st_size  # as it is now, should it have changed
        tar.addfile(info, f)


class UnsafeEntry(ValueError):
    """A tar entry that would land outside the directory it is unpacked into."""


def clean_name(name: str) -> str:
    """A tar entry's path relative to where it is unpacked: leading '/' and
    '.' parts dropped; UnsafeEntry for a '..' part."""
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeEntry(f"entry {name!r} climbs out ('..')")
        parts.append(part)
    return "/".join(parts)


def extract_tar(tar, dest_fd: int, *, top_as: str | None = None) -> int:
    """Unpack the tar stream `tar` under the open directory `dest_fd`, as
    `docker cp` does on the client's side: entries by their cleaned names (the
    first part renamed to `top_as`, if given), parents opened one part at a
    time without following a symlink (a link in the archive can never redirect
    a later entry), files, directories, symlinks (as they are) and hard links
    within the archive; devices and FIFOs left out. Modes without setuid,
    setgid or sticky; owners are the caller's. Any depth. Returns how many
    entries were written."""
    stack: list[tuple[str, int]] = [("", dest_fd)]  # the directories open now
    made = 0
    try:
        for m in tar:
            rel = _renamed(clean_name(m.name), top_as)
            if not rel:
                continue
            parent, _, leaf = rel.rpartition("/")
            pfd = _descend(stack, parent)
            mode = m.mode & 0o777
            if m.isdir():
                try:
                    os.mkdir(leaf, 0o700, dir_fd=pfd)
                except FileExistsError:
                    if not stat.S_ISDIR(os.lstat(leaf, dir_fd=pfd).st_mode):
                        os.unlink(leaf, dir_fd=pfd)
                        os.mkdir(leaf, 0o700, dir_fd=pfd)
                os.chmod(leaf, mode, dir_fd=pfd)
            elif m.isreg():
                _replace(pfd, leaf)
                fd = os.open(
                    leaf,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=pfd,
                )
                with os.fdopen(fd, "wb") as out:
                    src = tar.extractfile(m)
                    while src is not None and (chunk := src.read(1 << 20)):
                        out.write(chunk)
                    os.fchmod(out.fileno(), mode)
            elif m.issym():
                _replace(pfd, leaf)
                os.symlink(m.linkname, leaf, dir_fd=pfd)
            elif m.islnk():
                target = _renamed(clean_name(m.linkname), top_as)
                tparent, _, tleaf = target.rpartition("/")
                tfd = _open_path(dest_fd, tparent)
                try:
                    _replace(pfd, leaf)
                    os.link(tleaf, leaf, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
                finally:
                    if tfd != dest_fd:
                        os.close(tfd)
            else:
                continue  # devices, FIFOs: not for a copy
            if not m.issym():
                os.utime(leaf, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
            made += 1
    finally:
        for _, fd in stack[1:]:
            os.close(fd)
    return made


def _renamed(rel: str, top_as: str | None) -> str:
    if top_as is None or not rel:
        return rel
    _, _, rest = rel.partition("/")
    return f"{top_as}/{rest}" if rest else top_as


def _replace(dir_fd: int, name: str) -> None:
    """Make room for a new non-directory `name` (a directory there is an error)."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "a directory is in the way", name)
    os.unlink(name, dir_fd=dir_fd)


def _descend(stack: list[tuple[str, int]], rel_dir: str) -> int:
    """The descriptor of `rel_dir`, reusing the open path on `stack` (tar
    entries come parents first, so this is one open per directory), making
    missing directories; never through a symlink."""
    while stack[-1][0] and not (rel_dir == stack[-1][0] or rel_dir.startswith(stack[-1][0] + "/")):
        os.close(stack.pop()[1])
    have, fd = stack[-1]
    rest = rel_dir[len(have) :].lstrip("/") if have else rel_dir
    for part in filter(None, rest.split("/")):
        try:
            sub = open_dir(part, fd)
        except FileNotFoundError:
            os.mkdir(part, 0o755, dir_fd=fd)
            sub = open_dir(part, fd)
        have = f"{have}/{part}" if have else part
        stack.append((have, sub))
        fd = sub
    return fd


def _open_path(top_fd: int, rel_dir: str) -> int:
    """`rel_dir` below `top_fd`, one part at a time, never through a symlink."""
    fd = top_fd
    for part in filter(None, rel_dir.split("/")):
        sub = open_dir(part, fd)
        if fd != top_fd:
            os.close(fd)
        fd = sub
    return fd
