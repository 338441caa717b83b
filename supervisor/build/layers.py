"""What COPY and ADD put in a layer, made in a work directory (then tarred by
the image store): sources chosen from a root (the build context, or another
stage's or image's files) by path or by Go-style glob, never leaving that
root and never following a link (a symlink is copied as the link it is);
directories copied by their contents, as Docker does; owners 0:0 unless
--chown, modes kept unless --chmod; the destination's missing parents made
(0755) and its existing ones carried with their own mode and owner, as a
layer's diff holds them. ADD unpacks a local tar archive (plain, gzip,
bzip2, xz) in place of copying it.

And the checksum a cache key needs: a hash of what would be copied (paths,
types, modes, link targets, contents), not of times.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from supervisor import fstree
from supervisor.errors import BuildError


@dataclass(frozen=True)
class Source:
    root: Path  # what it is relative to (the context, a stage's root)
    rel: str  # "" for the root itself

    @property
    def path(self) -> Path:
        return self.root / self.rel if self.rel else self.root


def _clean(rel: str) -> str:
    """A source path made relative to its root, `..` unable to climb out."""
    parts: list[str] = []
    for part in PurePosixPath("/" + rel).parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _glob(root: Path, pattern: str) -> list[str]:
    """Paths under `root` matching a Go filepath.Match pattern, element by element."""
    matches = [""]
    for part in pattern.split("/"):
        nxt = []
        for base in matches:
            d = root / base if base else root
            if not any(ch in part for ch in "*?["):
                cand = f"{base}/{part}" if base else part
                if os.path.lexists(root / cand):
                    nxt.append(cand)
                continue
            try:
                names = sorted(os.listdir(d)) if d.is_dir() and not d.is_symlink() else []
            except OSError:
                names = []
            nxt += [f"{base}/{n}" if base else n for n in names if fnmatch.fnmatchcase(n, part)]
        matches = nxt
    return matches


def sources(root: Path, patterns: list[str], what: str) -> list[Source]:
    """The sources `patterns` name under `root`. BuildError for one that names
    nothing, in Docker's words."""
    out: list[Source] = []
    for pattern in patterns:
        rel = _clean(pattern)
        if any(ch in rel for ch in "*?["):
            found = _glob(root, rel)
            if not found:
                raise BuildError(
                    f"{what}: no source files were specified: {pattern!r} matches nothing"
                )
            out += [Source(root, f) for f in found]
        else:
            if not os.path.lexists(root / rel if rel else root):
                raise BuildError(
                    f"{what}: file not found in build context or excluded by .dockerignore: "
                    f"stat {pattern}: file does not exist"
                )
            out.append(Source(root, rel))
    return out


def checksum(srcs: list[Source]) -> str:
    """The content's hash: each entry's path (relative to its source), type,
    mode, link target and content."""
    h = hashlib.sha256()
    for s in srcs:
        h.update(b"\0src\0" + s.rel.encode())
        p = s.path
        st = os.lstat(p)
        entries = [("", st)]
        if stat.S_ISDIR(st.st_mode):
            top = fstree.open_dir(p)
            try:
                entries += [(e.rel, e.st) for e in fstree.walk(top, sort=True)]
            finally:
                os.close(top)
        for rel, est in entries:
            h.update(f"\0{rel}\0{stat.S_IFMT(est.st_mode)}\0{stat.S_IMODE(est.st_mode)}".encode())
            full = p / rel if rel else p
            if stat.S_ISLNK(est.st_mode):
                h.update(os.readlink(full).encode())
            elif stat.S_ISREG(est.st_mode):
                with open(full, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Owner:
    uid: int = 0
    gid: int = 0


def parse_chown(value: str, rootfs: Path | None) -> Owner:
    """--chown=USER[:GROUP], names looked up in the stage's /etc/passwd and
    /etc/group (ids as they are)."""
    user, _, group = value.partition(":")

    def lookup(name: str, table: str, uid_field: bool) -> tuple[int, int | None]:
        if name.isdigit():
            return int(name), None
        if rootfs is not None:
            try:
                for line in (rootfs / "etc" / table).read_text().splitlines():
                    f = line.split(":")
                    if len(f) > 3 and f[0] == name:
                        return int(f[2]), (int(f[3]) if uid_field else None)
            except (OSError, ValueError):
                pass
        raise BuildError(
            f"--chown={value}: no {('user', 'group')[not uid_field]} {name!r} in the image"
        )

    uid, primary = lookup(user, "passwd", True)
    gid = lookup(group, "group", False)[0] if group else (primary if primary is not None else uid)
    return Owner(uid, gid)


def parse_chmod(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise BuildError(f"--chmod={value}: an octal mode (e.g. 755)") from None
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"--chmod={value}: an octal mode (e.g. 755)")
    return mode


def _parents(work: Path, dest: str, base: Path | None) -> None:
    """dest's parents in the work directory: as they are in `base` (the image's
    root) when they exist there, else 0755 root."""
    path = work
    sofar = ""
    for part in PurePosixPath(dest).parts[1:-1]:
        sofar = f"{sofar}/{part}"
        path = path / part
        if path.exists():
            continue
        path.mkdir()
        st = None
        if base is not None:
            try:
                st = os.lstat(str(base) + sofar)
            except OSError:
                st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))
            os.lchown(path, st.st_uid, st.st_gid)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            os.chmod(path, 0o755)


def make_dirs(work: Path, path: str, base: Path | None) -> None:
    """WORKDIR's directory and its parents in the work directory (the existing
    ones as `base` has them)."""
    _parents(work, path.rstrip("/") + "/x", base)


def _copy_entry(src: Path, dst: Path, owner: Owner | None, chmod: int | None) -> None:
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        if os.path.lexists(dst):
            _remove(dst)
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISDIR(st.st_mode):
        if not dst.is_dir() or dst.is_symlink():
            if os.path.lexists(dst):
                _remove(dst)
            dst.mkdir()
        os.chmod(dst, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    elif stat.S_ISREG(st.st_mode):
        if os.path.lexists(dst):
            _remove(dst)
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    else:
        return  # devices, FIFOs and sockets are not copied from a context
    uid, gid = (owner.uid, owner.gid) if owner is not None else (0, 0)
    os.lchown(dst, uid, gid)
    if not stat.S_ISLNK(st.st_mode):
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        fstree.rmtree(p)
    else:
        p.unlink()


def _copy_tree(
    src: Path, dst: Path, owner: Owner | None, chmod: int | None, base: Path | None, rel: str
) -> None:
    """The contents of directory `src` into `dst`: `dst` itself as the image has
    it (`base`/`rel`), else made 0755 (never the source folder's own mode: the
    context's root is the client's folder, not the image's)."""
    if not dst.is_dir():
        dst.mkdir()
        st = None
        if base is not None:
            try:
                st = os.lstat(base / rel.lstrip("/")) if rel.strip("/") else None
            except OSError:
                st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            os.chmod(dst, stat.S_IMODE(st.st_mode))
            os.lchown(dst, st.st_uid, st.st_gid)
        else:
            os.chmod(dst, chmod if chmod is not None else 0o755)
            if owner is not None:
                os.lchown(dst, owner.uid, owner.gid)
    top = fstree.open_dir(src)
    try:
        entries = list(fstree.walk(top, sort=True))
    finally:
        os.close(top)
    dirs = []
    for e in entries:
        _copy_entry(src / e.rel, dst / e.rel, owner, chmod)
        if stat.S_ISDIR(e.st.st_mode):
            dirs.append(e)
    for e in reversed(dirs):  # their times, after their contents were written
        os.utime(dst / e.rel, ns=(e.st.st_atime_ns, e.st.st_mtime_ns))


def is_archive(p: Path) -> bool:
    if not p.is_file() or p.is_symlink():
        return False
    try:
        return tarfile.is_tarfile(p)
    except (OSError, tarfile.TarError):
        return False


def place(
    work: Path,
    srcs: list[Source],
    dest: str,
    *,
    base: Path | None,
    owner: Owner | None = None,
    chmod: int | None = None,
    unpack: bool = False,
) -> None:
    """Copy `srcs` to the absolute path `dest` inside the work directory (a
    layer's root). A destination ending in / or several sources: a directory."""
    as_dir = dest.endswith("/") or len(srcs) > 1
    dest = "/" + dest.strip("/") if dest.strip("/") else "/"
    if len(srcs) > 1 and not as_dir:
        raise BuildError(
            "When using COPY with more than one source file, "
            "the destination must be a directory and end with a /"
        )
    target_dir = work / dest.lstrip("/") if dest != "/" else work
    for s in srcs:
        p = s.path
        st = os.lstat(p)
        if unpack and is_archive(p):
            _parents(work, dest.rstrip("/") + "/x", base)
            target_dir.mkdir(parents=True, exist_ok=True)
            _unpack(p, target_dir)
            continue
        if stat.S_ISDIR(st.st_mode):
            if dest.rstrip("/"):
                _parents(work, dest.rstrip("/"), base)  # its parents; itself by _copy_tree
            _copy_tree(p, target_dir, owner, chmod, base, dest)
            continue
        if as_dir or dest == "/":
            _parents(work, dest.rstrip("/") + "/" + p.name, base)
            if not target_dir.exists():
                target_dir.mkdir(mode=0o755)
                os.chmod(target_dir, 0o755)
            _copy_entry(p, target_dir / p.name, owner, chmod)
        else:
            _parents(work, dest, base)
            _copy_entry(p, work / dest.lstrip("/"), owner, chmod)


def _unpack(archive: Path, dest: Path) -> None:
    """ADD's local archive: its entries under `dest` (safely: fstree.extract_tar
    never lets an entry leave `dest`); owners as in the archive."""
    fd = fstree.open_dir(dest)
    try:
        with tarfile.open(archive, "r:*") as tar:
            fstree.extract_tar(tar, fd)
    finally:
        os.close(fd)


def write_file(
    work: Path, dest: str, content: str, mode: int = 0o644, owner: Owner | None = None
) -> None:
    """COPY <<EOF /path: a file of that content."""
    _parents(work, dest, None)
    path = work / dest.lstrip("/")
    path.write_text(content)
    os.chmod(path, mode)
    if owner is not None:
        os.lchown(path, owner.uid, owner.gid)
