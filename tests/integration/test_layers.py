"""Layer unpacking against crafted archives: what must work, what must be refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from supervisor.images.layer import LayerError
from supervisor.images.store import ImageStore
from tests.probe import needs_root

pytestmark = [needs_root]


def make_tar(entries) -> bytes:
    """entries: (name, kind, extra) with kind file|dir|sym|link|chr|fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            data = None
            if kind == "file":
                data = extra.get("data", b"x")
                info.size = len(data)
                info.mode = extra.get("mode", 0o644)
                info.uid, info.gid = extra.get("uid", 0), extra.get("gid", 0)
                info.pax_headers = extra.get("pax", {})
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = extra.get("mode", 0o755)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, extra["to"]
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, extra["to"]
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                info.mode = 0o666
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def layer_dir(store: ImageStore, data: bytes) -> Path:
    _diff, chain = store.add_layer(io.BytesIO(data), None)
    return store.layers / chain.removeprefix("sha256:") / "diff"


def test_ordinary_entries_are_applied_as_the_tar_says(store):
    data = make_tar(
        [
            ("etc/", "dir", {"mode": 0o750}),
            (
                "etc/conf",
                "file",
                {
                    "data": b"k=v\n",
                    "mode": 0o640,
                    "uid": 1000,
                    "gid": 1001,
                    "pax": {"SCHILY.xattr.user.note": "hello"},
                },
            ),
            ("etc/link", "sym", {"to": "/etc/conf"}),
            ("etc/hard", "link", {"to": "etc/conf"}),
            ("dev/null", "chr", {}),
            ("run/fifo", "fifo", {}),
        ]
    )
    d = layer_dir(store, data)
    st = os.stat(d / "etc" / "conf")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 1000, 1001)
    assert os.getxattr(d / "etc" / "conf", "user.note") == b"hello"
    assert os.readlink(d / "etc" / "link") == "/etc/conf"  # content, not followed
    assert os.stat(d / "etc" / "hard").st_ino == st.st_ino
    assert stat.S_ISCHR(os.lstat(d / "dev" / "null").st_mode)
    assert stat.S_ISFIFO(os.lstat(d / "run" / "fifo").st_mode)
    assert os.stat(d / "etc").st_mode & 0o7777 == 0o750
    assert int(os.stat(d / "etc" / "conf").st_mtime) == 1_700_000_000


def test_whiteouts_and_opaque_dirs_become_overlayfs_markers(store):
    data = make_tar(
        [("gone/.wh.file", "file", {"data": b""}), ("var/.wh..wh..opq", "file", {"data": b""})]
    )
    d = layer_dir(store, data)
    st = os.lstat(d / "gone" / "file")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(d / "var", "trusted.overlay.opaque") == b"y"


def test_gzip_layer_and_its_diff_id(store):
    data = make_tar([("a", "file", {"data": b"A"})])
    diff_id, _ = store.add_layer(io.BytesIO(gzip.compress(data)), None)
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ([("../escape", "file", {})], "climbs out"),
        ([("a/../../escape", "file", {})], "climbs out"),
        ([("h", "link", {"to": "/etc/passwd"})], "not in this layer"),
        ([("c", "sym", {"to": "/etc"}), ("h", "link", {"to": "c/shadow"})], "not in this layer"),
        ([("h", "link", {"to": "../../../etc/passwd"})], "climbs out"),
    ],
)
def test_malicious_layers_are_refused_and_leave_nothing(store, entries, why):
    before = set(store.layers.iterdir())
    with pytest.raises(LayerError, match=why):
        store.add_layer(io.BytesIO(make_tar(entries)), None)
    assert set(store.layers.iterdir()) == before
    assert list(store.tmp.iterdir()) == []


def test_symlinks_in_a_layer_cannot_send_writes_outside(store, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    data = make_tar(
        [
            ("abs", "sym", {"to": str(victim)}),
            ("abs/pwned", "file", {"data": b"p"}),
            ("rel", "sym", {"to": "../../../../../../../.." + str(victim)}),
            ("rel/pwned2", "file", {"data": b"p"}),
        ]
    )
    d = layer_dir(store, data)
    assert list(victim.iterdir()) == []
    # The writes landed inside the layer, where the links point from its root.
    inside = d / str(victim).lstrip("/")
    assert (inside / "pwned").read_bytes() == b"p" and (inside / "pwned2").exists()


def test_same_layer_is_unpacked_once(store):
    data = make_tar([("f", "file", {"data": b"same"})])
    d1 = layer_dir(store, data)
    d2 = layer_dir(store, data)
    assert d1 == d2 and len(list(store.layers.iterdir())) == 1
