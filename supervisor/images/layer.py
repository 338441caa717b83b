"""Unpacking a layer tar, safely, into a directory overlayfs can use.

This is where engines get broken into. The rules:
- Every entry's path is relative to the layer: leading "/" and "./" are
  dropped; a ".." component is refused outright.
- Parents are opened with openat2(RESOLVE_IN_ROOT) from the layer's root, so a
  symlink unpacked earlier (`a -> /etc`) is followed, if at all, inside the
  layer, never out of it; the entry itself is created relative to that
  descriptor and never through a symlink (O_NOFOLLOW, no-follow chown/utime).
- A hard link's target must already exist in this layer, resolved the same way.
- Whiteouts become what overlayfs reads: `.wh.NAME` a 0:0 character device
  NAME, `.wh..wh..opq` the xattr trusted.overlay.opaque=y on its directory.
- Modes, owners, mtimes, devices and PAX xattrs are applied as the tar says.
A refused archive raises LayerError naming the entry, and the caller removes
the partial directory: nothing is left behind.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import zlib
from pathlib import Path
from typing import IO

from supervisor import fstree
from supervisor.errors import LayerError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def clean_path(name: str) -> str:
    """The entry's path relative to the layer; LayerError for '..' or empty."""
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise LayerError(f"entry {name!r} climbs out of the layer ('..')")
        parts.append(part)
    return "/".join(parts)


class _Layer:
    def __init__(self, root: Path) -> None:
        self.root = str(root)

    def open_dir(self, rel: str) -> int:
        from supervisor import _native  # the C core, once a layer is unpacked

        return _native.open_in_root(self.root, rel or "/", os.O_PATH | os.O_DIRECTORY)

    def parent_fd(self, rel: str) -> tuple[int, str]:
        """(descriptor of the parent directory, last component), creating parents."""
        parent, _, leaf = rel.rpartition("/")
        try:
            return self.open_dir(parent), leaf
        except FileNotFoundError:
            pass
        return self.open_dir(self._mkdirs(parent)), leaf

    def _mkdirs(self, rel: str) -> str:
        """mkdir -p inside the layer, following symlinks as the container would
        (an absolute target from the layer's root, ".." never above it); returns
        the resolved, symlink-free path. The layer directory is private to this
        unpack, so checking each component with lstat cannot be raced."""
        todo = [p for p in rel.split("/") if p]
        done: list[str] = []
        links = 0
        while todo:
            comp = todo.pop(0)
            if comp == ".":
                continue
            if comp == "..":
                if done:
                    done.pop()
                continue
            path = os.path.join(self.root, *done, comp)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                done.append(comp)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > 40:
                    raise LayerError(f"too many levels of symbolic links under {rel!r}")
                target = os.readlink(path)
                if target.startswith("/"):
                    done = []
                todo = [p for p in target.split("/") if p] + todo
            elif stat.S_ISDIR(st.st_mode):
                done.append(comp)
            else:
                raise LayerError(f"{'/'.join([*done, comp])} is not a directory (under {rel!r})")
        return "/".join(done)


GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def compression(head: bytes) -> str:
    """ "gzip", "zstd" or "" (a plain tar), from a blob's first four bytes."""
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    return "zstd" if head[:4] == ZSTD_MAGIC else ""


def decompressed(fileobj: IO[bytes]) -> IO[bytes]:
    """The tar inside a layer blob: plain, gzip or zstd, told by its first bytes."""
    raw = _Peek(fileobj)
    kind = compression(raw.peek(4))
    if kind == "gzip":
        return _Gunzip(raw)  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard  # only for zstd layers

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw  # type: ignore[return-value]


def unpack(fileobj: IO[bytes], dest: Path) -> str:
    """Unpack the tar stream (plain, gzip or zstd, told by its first bytes) into
    `dest` (created empty); returns the diff id: the sha256 of the uncompressed tar."""
    hasher = _HashingReader(decompressed(fileobj))
    dest.mkdir(mode=0o755)
    layer = _Layer(dest)
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    try:
        # 1 MiB reads, not tarfile's 10 KiB records: a tenth of the calls, each
        # of which lets another thread take the GIL.
        with tarfile.open(fileobj=hasher, mode="r|", bufsize=1 << 20) as tar:
            for member in tar:
                rel = clean_path(member.name)
                if not rel:
                    if member.isdir():
                        dirs.append(("", member))
                    continue
                if member.islnk():
                    _hardlink(layer, member, rel)
                    continue
                _entry(layer, tar, member, rel)
                if member.isdir():
                    dirs.append((rel, member))
        hasher.drain()
        # Directory mtimes last: creating their children changed them.
        for rel, member in reversed(dirs):
            _times(layer, rel, member, follow=True)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise LayerError(f"unpacking the layer: {e}") from None
    except Exception as e:  # zstandard.ZstdError, without importing it for gzip layers
        if type(e).__name__ != "ZstdError":
            raise
        raise LayerError(f"unpacking the zstd layer: {e}") from None
    return "sha256:" + hasher.digest()


def _entry(layer: _Layer, tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str) -> None:
    pfd, leaf = layer.parent_fd(rel)
    try:
        if leaf == OPAQUE:
            # setxattr through /proc/self/fd/N works on an O_PATH directory.
            os.setxattr(f"/proc/self/fd/{pfd}", "trusted.overlay.opaque", b"y")
            return
        if leaf.startswith(WHITEOUT):
            name = leaf[len(WHITEOUT) :]
            if name in ("", ".", ".."):  # `.wh..` would whiteout the layer's parent
                raise LayerError(f"entry {m.name!r}: a whiteout of {name or 'nothing'!r}")
            _remove(pfd, name)
            os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
            return
        if m.isdir():
            try:
                os.mkdir(leaf, m.mode & 0o7777, dir_fd=pfd)
            except FileExistsError:
                st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    _remove(pfd, leaf)
                    os.mkdir(leaf, m.mode & 0o7777, dir_fd=pfd)
        elif m.isreg():
            _remove(pfd, leaf)
            fd = os.open(
                leaf,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=pfd,
            )
            with os.fdopen(fd, "wb") as out:
                src = tar.extractfile(m)
                assert src is not None
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        elif m.issym():
            _remove(pfd, leaf)
            os.symlink(m.linkname, leaf, dir_fd=pfd)
        elif m.ischr() or m.isblk() or m.isfifo():
            _remove(pfd, leaf)
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            os.mknod(leaf, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
        else:
            raise LayerError(f"entry {m.name!r}: unsupported type {m.type!r}")
        _meta(pfd, leaf, m)
    finally:
        os.close(pfd)


def _hardlink(layer: _Layer, m: tarfile.TarInfo, rel: str) -> None:
    from supervisor import _native

    target = clean_path(m.linkname)
    try:
        tfd = _native.open_in_root(layer.root, target, os.O_PATH | os.O_NOFOLLOW)
    except OSError:
        raise LayerError(
            f"hard link {m.name!r} points at {m.linkname!r}, which is not in this layer"
        ) from None
    pfd, leaf = layer.parent_fd(rel)
    try:
        _remove(pfd, leaf)
        # Link the resolved object itself (AT_EMPTY_PATH through /proc), not a path.
        os.link(f"/proc/self/fd/{tfd}", leaf, dst_dir_fd=pfd, follow_symlinks=True)
    finally:
        os.close(pfd)
        os.close(tfd)


def _meta(pfd: int, leaf: str, m: tarfile.TarInfo) -> None:
    os.chown(leaf, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
    if not m.issym():
        os.chmod(leaf, m.mode & 0o7777, dir_fd=pfd)
        xattrs = {
            k[len("SCHILY.xattr.") :]: v
            for k, v in m.pax_headers.items()
            if k.startswith("SCHILY.xattr.")
        }
        if xattrs and (m.isreg() or m.isdir()):
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(leaf, flags, dir_fd=pfd)
            try:
                for k, v in xattrs.items():
                    os.setxattr(fd, k, v.encode("utf-8", "surrogateescape"))
            finally:
                os.close(fd)
    os.utime(leaf, ns=(int(m.mtime * 1e9),) * 2, dir_fd=pfd, follow_symlinks=False)


def _times(layer: _Layer, rel: str, m: tarfile.TarInfo, *, follow: bool) -> None:
    if not rel:
        os.utime(layer.root, ns=(int(m.mtime * 1e9),) * 2)
        return
    pfd, leaf = layer.parent_fd(rel)
    try:
        os.utime(leaf, ns=(int(m.mtime * 1e9),) * 2, dir_fd=pfd, follow_symlinks=False)
    finally:
        os.close(pfd)


def _remove(pfd: int, name: str) -> None:
    """Whatever is at `name` goes (a later entry replaces an earlier one)."""
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        fstree.rmtree(name, dir_fd=pfd)
    else:
        os.unlink(name, dir_fd=pfd)


class _Peek:
    """A stream whose first bytes can be looked at before it is read."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.head = b""

    def peek(self, n: int) -> bytes:
        while len(self.head) < n:
            more = self.f.read(n - len(self.head))
            if not more:
                break
            self.head += more
        return self.head[:n]

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                data, self.head = self.head + self.f.read(), b""  # loop-safe: unpack thread
                return data
            data, self.head = self.head[:n], self.head[n:]
            if len(data) < n:
                data += self.f.read(n - len(data))
            return data
        return self.f.read(n)


class _Gunzip:
    """gzip members decompressed a megabyte of input at a time.

    GzipFile reads its input 8 KiB at a time: for a 50 MB layer, 6,400 trips
    through Python, each a chance for the unpacking thread to lose the GIL to
    the download. zlib checks each member's CRC and length; output is bounded
    per call (max_length), so a small bomb of a layer cannot fill memory.
    Members may follow each other (pigz, pgzip); zero padding after the last
    is allowed, as gzip allows it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.z = zlib.decompressobj(31)
        self.pending = b""  # compressed input not yet given to zlib
        self.started = False  # bytes of the current member seen
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = 1 << 20
        while not self.eof:
            if not self.pending:
                self.pending = self.f.read(1 << 20)
                if not self.pending and not self.started:
                    self.eof = True  # the end, between members
                    break
            if not self.started:  # between members: zero padding is skipped
                self.pending = self.pending.lstrip(b"\0")
                if not self.pending:
                    continue
            dry = not self.pending  # zlib may still hold output for no input
            self.started = True
            out = self.z.decompress(self.pending, n)
            self.pending = self.z.unconsumed_tail
            if self.z.eof:  # what follows is in unused_data (and may be in the tail too)
                self.pending = self.z.unused_data
                self.z = zlib.decompressobj(31)
                self.started = False
            elif dry and not out:
                raise EOFError("the gzip stream ends in the middle of a member")
            if out:
                return out
        return b""


class _HashingReader:
    """Hashes the uncompressed tar as tarfile reads it (the diff id)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return self.h.hexdigest()
