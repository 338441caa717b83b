"""Parsing Docker's -v, --mount and --tmpfs."""

from __future__ import annotations

import pytest

from supervisor.mounts import (
    MountError,
    check_targets,
    parse_mount,
    parse_tmpfs,
    parse_volume,
)


def test_v_bind_named_anonymous():
    b = parse_volume("/srv/data:/data:ro,rslave")
    assert (b.type, b.source, b.target, b.readonly, b.propagation, b.create_source) == (
        "bind",
        "/srv/data",
        "/data",
        True,
        "rslave",
        True,
    )
    n = parse_volume("db:/var/lib/db")
    assert (n.type, n.source, n.readonly, n.propagation) == ("volume", "db", False, "rprivate")
    a = parse_volume("/cache")
    assert (a.type, a.source, a.target) == ("volume", "", "/cache")
    assert parse_volume("db:/x:nocopy").nocopy


def test_mount_bind_requires_nothing_created():
    m = parse_mount("type=bind,source=/etc,target=/hostetc,readonly,nosuid")
    assert (m.type, m.create_source, m.readonly, m.flags) == ("bind", False, True, ["nosuid"])


def test_mount_volume_and_tmpfs():
    v = parse_mount("type=volume,src=vol1,dst=/v,volume-nocopy")
    assert (v.source, v.target, v.nocopy) == ("vol1", "/v", True)
    t = parse_mount("type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=700")
    assert (t.tmpfs_size, t.tmpfs_mode) == (64 << 20, 0o700)
    t2 = parse_tmpfs("/t:size=1m,mode=755,noexec")
    assert (t2.tmpfs_size, t2.tmpfs_mode, t2.flags) == (1 << 20, 0o755, ["noexec"])


@pytest.mark.parametrize(
    ("parse", "text", "msg"),
    [
        (parse_volume, "rel/dir:/x", "neither an absolute path"),
        (parse_volume, "/a:relative", "must be absolute"),
        (parse_volume, "/a:/b:bogus", "unknown option"),
        (parse_volume, "/a:/", "cannot mount over"),
        (parse_mount, "type=bind,target=/x", "absolute path"),
        (parse_mount, "type=nfs,target=/x", "unknown type"),
        (parse_mount, "type=bind,source=/a", "target is required"),
        (parse_mount, "type=bind,source=/a,target=/b,bind-propagation=odd", "bind-propagation"),
        (parse_tmpfs, "/t:size=lots", "invalid size"),
    ],
)
def test_bad_flags_are_named(parse, text, msg):
    with pytest.raises(MountError, match=msg):
        parse(text)


def test_duplicate_targets_refused():
    with pytest.raises(MountError, match="duplicate mount point"):
        check_targets([parse_volume("a:/x"), parse_tmpfs("/x")])
