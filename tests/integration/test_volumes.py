"""Volumes with real mounts through the daemon."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


def ok(p):
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_named_volume_outlives_its_containers_and_the_daemon(daemon, rootfs):
    ok(
        daemon.cli(
            "run",
            "--rm",
            "-v",
            "db:/data",
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            "echo row1 > /data/table",
        )
    )
    daemon.stop()
    daemon.start()
    out = ok(
        daemon.cli(
            "run",
            "--rm",
            "--mount",
            "type=volume,source=db,target=/var/db",
            "--rootfs",
            str(rootfs),
            "cat",
            "/var/db/table",
        )
    )
    assert out == "row1\n"
    assert "db" in ok(daemon.cli("volume", "ls", "-q")).split()


def test_read_only_bind_refuses_writes(daemon, rootfs, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in").write_text("from host\n")
    out = ok(
        daemon.cli(
            "run",
            "--rm",
            "-v",
            f"{host}:/shared:ro",
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            "cat /shared/in; echo x > /shared/out 2>&1; echo rc=$?",
        )
    )
    assert "from host" in out and "rc=1" in out
    assert not (host / "out").exists()
    out = ok(
        daemon.cli(
            "run",
            "--rm",
            "-v",
            f"{host}:/shared",
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            "echo written > /shared/out",
        )
    )
    assert (host / "out").read_text() == "written\n"


def test_mount_bind_source_must_exist_but_v_creates_it(daemon, rootfs, tmp_path):
    p = daemon.cli(
        "run",
        "--rm",
        "--mount",
        f"type=bind,source={tmp_path}/nope,target=/x",
        "--rootfs",
        str(rootfs),
        "true",
    )
    assert p.returncode == 125 and "does not exist" in p.stderr
    ok(daemon.cli("run", "--rm", "-v", f"{tmp_path}/made:/x", "--rootfs", str(rootfs), "true"))
    assert (tmp_path / "made").is_dir()


def test_symlink_at_mount_target_cannot_escape(daemon, rootfs, tmp_path):
    image = tmp_path / "image"
    shutil.copytree(rootfs, image, symlinks=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(str(victim), image / "data")  # /data -> a host path, absolute
    os.symlink("../../../../../../.." + str(victim), image / "data2")
    host = tmp_path / "src"
    host.mkdir()
    (host / "payload").write_text("p\n")
    out = ok(
        daemon.cli(
            "run",
            "--rm",
            "-v",
            f"{host}:/data",
            "-v",
            "vol:/data2/sub",
            "--rootfs",
            str(image),
            "sh",
            "-c",
            "cat /data/payload; ls -d /data2/sub",
        )
    )
    assert "p" in out
    assert list(victim.iterdir()) == []  # nothing was mounted or created on the host
    assert str(victim) not in Path("/proc/mounts").read_text()


def test_anonymous_volumes_go_with_rm_v(daemon, rootfs):
    ok(
        daemon.cli(
            "run",
            "--name",
            "anon",
            "-v",
            "/cache",
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            "echo c > /cache/f",
        )
    )
    vols = ok(daemon.cli("volume", "ls", "-q")).split()
    assert len(vols) == 1 and len(vols[0]) == 64
    ok(daemon.cli("rm", "anon"))
    assert ok(daemon.cli("volume", "ls", "-q")).split() == vols  # plain rm keeps it
    out = ok(daemon.cli("volume", "prune", "-f"))
    assert out.rstrip().splitlines()[-1] == "Total reclaimed space: 2B"  # Docker's words
    assert ok(daemon.cli("volume", "ls", "-q")).split() == []
    ok(daemon.cli("run", "--name", "anon2", "-v", "/cache", "--rootfs", str(rootfs), "true"))
    ok(daemon.cli("rm", "-v", "anon2"))
    assert ok(daemon.cli("volume", "ls", "-q")).split() == []


def test_volume_in_use_refuses_rm(daemon, rootfs):
    ok(daemon.cli("volume", "create", "--label", "tier=db", "pinned"))
    ok(daemon.cli("create", "--name", "holder", "-v", "pinned:/p", "--rootfs", str(rootfs), "true"))
    p = daemon.cli("volume", "rm", "pinned")
    assert p.returncode == 1 and "in use" in p.stderr
    info = json.loads(ok(daemon.cli("volume", "inspect", "pinned")))[0]
    assert info["Labels"] == {"tier": "db"} and len(info["UsedBy"]) == 1
    ok(daemon.cli("rm", "holder"))
    ok(daemon.cli("volume", "rm", "pinned"))


def test_new_volume_is_filled_from_the_image(daemon, rootfs):
    def run(*cmd: str) -> str:
        # --network none: on a network /etc/hostname is the container's own, mounted over.
        args = ("--rm", "--network", "none", "-v", "etcvol:/etc", "--rootfs", str(rootfs))
        return ok(daemon.cli("run", *args, *cmd))

    assert run("cat", "/etc/hostname") == "corral\n"
    # Filled once: later changes in the volume stay.
    run("sh", "-c", "echo changed > /etc/hostname")
    assert run("cat", "/etc/hostname") == "changed\n"


def test_read_only_root_tmpfs_and_volumes_from(daemon, rootfs):
    out = ok(
        daemon.cli(
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch:size=1m,noexec",
            "-v",
            "rw:/rw",
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            "touch /x 2>&1; touch /scratch/ok && touch /rw/ok && echo writable; "
            "grep ' /scratch ' /proc/mounts",
        )
    )
    assert "Read-only file system" in out and "writable" in out
    assert "noexec" in out and "size=1024k" in out
    ok(
        daemon.cli(
            "create", "--name", "src", "-v", "shared:/shared", "--rootfs", str(rootfs), "true"
        )
    )
    ok(
        daemon.cli(
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "--rootfs",
            str(rootfs),
            "sh",
            "-c",
            "echo via-from > /shared/f",
        )
    )
    p = daemon.cli(
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        "cat /shared/f; echo y > /shared/g",
    )
    assert "via-from" in p.stdout and "Read-only" in p.stderr


def test_volume_events(daemon, rootfs):
    ok(daemon.cli("run", "--rm", "-v", "evvol:/v", "--rootfs", str(rootfs), "true"))
    ok(daemon.cli("volume", "rm", "evvol"))
    acts = [e["action"] for e in daemon.events("type=volume")]
    assert acts == ["create", "mount", "unmount", "destroy"]
