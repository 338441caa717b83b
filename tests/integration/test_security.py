"""A daemon container's security profile on the real kernel: seccomp (the
default profile, unconfined, a profile file, execs under their container's
filter) and the device rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]

# A user namespace needs no capability, so only seccomp stops this in a container.
USERNS = "unshare -U true && echo userns-ok || echo userns-refused"


def run(daemon, rootfs, *args: str):
    return daemon.cli("run", "--rm", *args, "--rootfs", str(rootfs), "sh", "-c", USERNS)


def test_default_profile_is_on_and_refuses_what_docker_refuses(daemon, rootfs):
    p = daemon.cli(
        "run", "--rm", "--rootfs", str(rootfs), "sh", "-c", "grep Seccomp: /proc/self/status"
    )
    assert p.returncode == 0 and p.stdout.split() == ["Seccomp:", "2"], p.stdout + p.stderr
    p = run(daemon, rootfs)
    assert "userns-refused" in p.stdout and "Operation not permitted" in p.stderr, p.stdout
    p = run(daemon, rootfs, "--security-opt", "seccomp=unconfined")
    assert "userns-ok" in p.stdout, p.stdout + p.stderr


def test_a_profile_file_and_execs_under_the_containers_filter(daemon, rootfs, tmp_path):
    """A profile from a file (read by the client, as Docker's is): everything
    allowed but mkdir/mkdirat, refused with EACCES, for the container and for an
    exec in it."""
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    f = tmp_path / "profile.json"
    f.write_text(json.dumps(profile))
    cid = daemon.cli(
        "run", "-d", "--security-opt", f"seccomp={f}", "--rootfs", str(rootfs), "sleep", "60"
    ).stdout.strip()
    try:
        p = daemon.cli("exec", cid, "mkdir", "/tmp/x")
        assert p.returncode != 0 and "Permission denied" in p.stderr, p.stderr
        p = daemon.cli("exec", cid, "sh", "-c", USERNS)  # allowed by this profile
        assert "userns-ok" in p.stdout, p.stdout + p.stderr
        inspect = json.loads(daemon.cli("inspect", cid).stdout)[0]
        assert inspect["HostConfig"]["SecurityOpt"][0].startswith("seccomp={")
    finally:
        daemon.cli("rm", "-f", cid)


def test_bad_security_opts_are_named(daemon, rootfs, tmp_path):
    p = daemon.cli("run", "--security-opt", "apparmor=x", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "'apparmor=x' is not supported" in p.stderr, p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": 3}')
    p = daemon.cli("run", "--security-opt", f"seccomp={bad}", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "seccomp profile" in p.stderr, p.stderr
    p = daemon.cli(
        "run", "--security-opt", "seccomp=/nonexistent.json", "--rootfs", str(rootfs), "true"
    )
    assert p.returncode != 0 and "No such file" in p.stderr, p.stderr


@pytest.mark.cgroups
def test_daemon_containers_cannot_open_host_devices(daemon, rootfs):
    """mknod is allowed (CAP_MKNOD, Docker's), opening the node is not: the
    device rules deny all but the usual devices (/dev/loop-control: 10:237)."""
    script = (
        "mknod /tmp/d c 10 237 && echo mknod-ok; "
        "(exec 3< /tmp/d) 2>&1 && echo open-ok || echo open-refused; "
        "head -c 4 /dev/urandom | wc -c"
    )
    p = daemon.cli("run", "--rm", "--rootfs", str(rootfs), "sh", "-c", script)
    assert p.stdout.split()[0] == "mknod-ok" and "open-refused" in p.stdout, p.stdout
    assert p.stdout.split()[-1] == "4", p.stdout


def _caps(daemon, rootfs, *flags: str) -> int:
    p = daemon.cli(
        "run", "--rm", *flags, "--rootfs", str(rootfs), "sh", "-c", "grep CapBnd /proc/self/status"
    )
    assert p.returncode == 0, p.stderr
    return int(p.stdout.split()[1], 16)


def test_cap_add_and_drop_and_the_syscalls_they_unlock(daemon, rootfs):
    default = _caps(daemon, rootfs)
    net_raw, sys_admin = 1 << 13, 1 << 21
    assert default & net_raw and not default & sys_admin
    assert _caps(daemon, rootfs, "--cap-drop", "NET_RAW") == default & ~net_raw
    assert _caps(daemon, rootfs, "--cap-drop", "ALL", "--cap-add", "CAP_KILL") == 1 << 5
    # CAP_SYS_ADMIN: the capability and the seccomp rules Docker ties to it
    script = "unshare -m true && echo mount-ns-ok"
    p = daemon.cli("run", "--rm", "--rootfs", str(rootfs), "sh", "-c", script)
    assert "mount-ns-ok" not in p.stdout
    p = daemon.cli(
        "run", "--rm", "--cap-add", "SYS_ADMIN", "--rootfs", str(rootfs), "sh", "-c", script
    )
    assert "mount-ns-ok" in p.stdout, p.stdout + p.stderr
    p = daemon.cli("run", "--rm", "--cap-add", "FLY", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "unknown capability 'FLY'" in p.stderr, p.stderr


@pytest.mark.cgroups
def test_privileged_and_device(daemon, rootfs):
    script = (
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; "
        "(exec 3< /dev/loop-control) && echo open-ok"
    )
    p = daemon.cli("run", "--rm", "--privileged", "--rootfs", str(rootfs), "sh", "-c", script)
    lines = dict(line.split(":\t") for line in p.stdout.splitlines() if ":\t" in line)
    status = Path("/proc/self/status").read_text().splitlines()
    ours = next(line.split()[1] for line in status if line.startswith("CapBnd"))
    assert lines["Seccomp"] == "0" and lines["CapEff"] == ours, p.stdout
    assert "open-ok" in p.stdout, p.stdout + p.stderr
    dev = "/dev/loop-control:/dev/lc:r"
    script = "(exec 3< /dev/lc) && echo read-ok; (exec 3> /dev/lc) 2>&1 || echo write-refused"
    p = daemon.cli("run", "--rm", "--device", dev, "--rootfs", str(rootfs), "sh", "-c", script)
    assert "read-ok" in p.stdout and "write-refused" in p.stdout, p.stdout + p.stderr
    p = daemon.cli("run", "--rm", "--device", "/etc/passwd", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "is not a device" in p.stderr, p.stderr
