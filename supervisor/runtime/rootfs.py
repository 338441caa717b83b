"""A busybox root filesystem built locally from Debian's busybox-static.

The README's first run and the tests need a root filesystem without a
network: one static binary, a link per applet, and the few files a
container expects in /etc.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

from supervisor.errors import CorralError

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

_PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
_GROUP = """root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
"""


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            return path
    raise CorralError("busybox not found: install Debian's busybox-static")


def has_interpreter(path: str) -> bool:
    """Does the ELF file at `path` name a dynamic loader (a PT_INTERP header)?"""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
            raise CorralError(f"{path} is not a 64-bit ELF executable")
        order = "<" if head[5] == 1 else ">"
        (phoff,) = struct.unpack_from(order + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(
        struct.unpack_from(order + "I", table, i * phentsize)[0] == 3  # PT_INTERP
        for i in range(phnum)
    )


def make_busybox_rootfs(dest: str | os.PathLike[str], busybox: str | None = None) -> Path:
    """Populate `dest` with busybox and its applet links; returns the path."""
    busybox = busybox or find_busybox()
    # A dynamically linked busybox would need the host's libc inside: refuse it.
    if has_interpreter(busybox):
        raise CorralError(f"{busybox} is not static: install busybox-static")
    root = Path(dest)
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "var/www",
        "run",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run(
        [busybox, "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = root / applet
        if link.name == "busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("/bin/busybox", link)
    (root / "etc" / "passwd").write_text(_PASSWD)
    (root / "etc" / "group").write_text(_GROUP)
    (root / "etc" / "hostname").write_text("corral\n")
    return root
