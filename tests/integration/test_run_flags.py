"""Docker's resource, namespace and bookkeeping flags of `run`, `update` and
`info`, looked at from inside the container and through inspect."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.conftest import RUN
from tests.integration.test_daemon import wait_until
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]

# The container's own cgroup files: v1 hierarchies or the v2 one, mounted by
# its cgroup namespace at /sys/fs/cgroup.
CGROUP_FILES = (
    "for f in cpu/cpu.shares cpu.weight cpuset/cpuset.cpus cpuset.cpus "
    "memory/memory.soft_limit_in_bytes memory.low; do "
    "[ -f /sys/fs/cgroup/$f ] && echo $f=$(cat /sys/fs/cgroup/$f); done; "
)


def _inspect(daemon, ref: str) -> dict:
    p = daemon.cli("inspect", ref)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)[0]


@pytest.mark.cgroups
def test_resources_groups_sysctls_and_oom_score(daemon, rootfs):
    with open("/proc/sys/net/ipv4/ip_default_ttl") as f:
        host_forward = f.read()
    script = (
        CGROUP_FILES + "echo oom=$(cat /proc/self/oom_score_adj); "
        "echo ttl=$(cat /proc/sys/net/ipv4/ip_default_ttl); echo groups=$(id -G)"
    )
    p = daemon.cli(
        *("run", "-d", "-c", "512", "--cpuset-cpus", "0", "--memory-reservation", "32m"),
        *(
            "--oom-score-adj",
            "500",
            "--sysctl",
            "net.ipv4.ip_default_ttl=33",
            "--group-add",
            "1234",
        ),
        *("--rootfs", str(rootfs), "sh", "-c", script + "; sleep 60"),
    )
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    try:
        wait_until(lambda: "groups=" in daemon.cli("logs", cid).stdout, "output")
        out = dict(
            line.split("=", 1) for line in daemon.cli("logs", cid).stdout.splitlines() if line
        )
        if "cpu/cpu.shares" in out:  # v1
            assert out["cpu/cpu.shares"] == "512"
            assert out["cpuset/cpuset.cpus"] == "0"
            assert out["memory/memory.soft_limit_in_bytes"] == str(32 << 20)
        else:  # v2: shares as runc converts them
            assert out["cpu.weight"] == str(1 + ((512 - 2) * 9999) // 262142)
            assert out["cpuset.cpus"] == "0" and out["memory.low"] == str(32 << 20)
        assert out["oom"] == "500" and out["ttl"] == "33"
        assert "1234" in out["groups"].split()
        host = _inspect(daemon, cid)["HostConfig"]
        assert (host["CpuShares"], host["CpusetCpus"], host["OomScoreAdj"]) == (512, "0", 500)
        assert host["Sysctls"] == {"net.ipv4.ip_default_ttl": "33"} and host["GroupAdd"] == ["1234"]
    finally:
        daemon.cli("rm", "-f", cid)
    with open("/proc/sys/net/ipv4/ip_default_ttl") as f:
        assert f.read() == host_forward  # the container's own namespace's, not the host's


@pytest.mark.cgroups
def test_bad_resource_flags_are_refused_by_name(daemon, rootfs):
    cases = [
        (["--sysctl", "kernel.hostname=x"], "not a namespaced sysctl"),
        (["--network", "host", "--sysctl", "net.ipv4.ip_default_ttl=33"], "--network host"),
        (["--oom-score-adj", "5000"], "--oom-score-adj"),
        (["--pid", "sideways"], "--pid"),
        (["--ipc", "container:no-such-container"], "no-such-container"),
        (["--group-add", "nosuchgroup"], "nosuchgroup"),
        (["--sysctl", "novalue"], "KEY=VALUE"),
        (["--blkio-weight", "5"], "--blkio-weight"),
    ]
    for flags, message in cases:
        p = daemon.cli("run", "--rm", *flags, "--rootfs", str(rootfs), "true")
        assert p.returncode != 0 and message in p.stderr, (flags, p.stderr)


def test_pid_and_ipc_namespaces_shared_or_none(daemon, rootfs):
    marker = Path("/dev/shm") / f"{RUN}-ipc-marker"
    other = daemon.cli(
        "run", "-d", "--name", "pidsrc", "--rootfs", str(rootfs), "sleep", "60"
    ).stdout.strip()
    marker.write_text("host")
    try:
        # Another container's PID namespace: its sleep is there to see.
        p = daemon.cli(
            "run", "--rm", "--pid", "container:pidsrc", "--rootfs", str(rootfs), "ps", "-o", "args"
        )
        assert p.returncode == 0 and "sleep 60" in p.stdout, p.stdout + p.stderr
        # The host's: this shell is not PID 1, and the host's PID 1 is there.
        p = daemon.cli(
            "run", "--rm", "--pid", "host", "--rootfs", str(rootfs), "sh", "-c", "echo $$"
        )
        assert p.returncode == 0 and p.stdout.strip() != "1", p.stdout + p.stderr
        # The host's IPC namespace and /dev/shm; none: no /dev/shm at all.
        p = daemon.cli(
            "run",
            "--rm",
            "--ipc",
            "host",
            "--rootfs",
            str(rootfs),
            "cat",
            f"/dev/shm/{marker.name}",
        )
        assert p.stdout == "host", p.stdout + p.stderr
        p = daemon.cli("run", "--rm", "--ipc", "none", "--rootfs", str(rootfs), "ls", "/dev/shm")
        assert p.returncode != 0, p.stdout
        p = daemon.cli("run", "--rm", "--rootfs", str(rootfs), "ls", f"/dev/shm/{marker.name}")
        assert p.returncode != 0, "a private /dev/shm sees the host's"
        info = _inspect(daemon, other)["HostConfig"]
        assert info["PidMode"] == "" and info["IpcMode"] == "private"
    finally:
        marker.unlink()
        daemon.cli("rm", "-f", other)


def test_cidfile_and_label_file(daemon, rootfs, tmp_path):
    cidfile = tmp_path / "cid"
    labels = tmp_path / "labels"
    labels.write_text("# a comment\ntier=web\n\nowner=ops\n")
    p = daemon.cli(
        *("run", "-d", "--cidfile", str(cidfile), "--label-file", str(labels)),
        *("-l", "owner=me", "--rootfs", str(rootfs), "sleep", "60"),
    )
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    try:
        assert cidfile.read_text() == cid
        assert _inspect(daemon, cid)["Config"]["Labels"] == {"tier": "web", "owner": "me"}
        again = daemon.cli("run", "-d", "--cidfile", str(cidfile), "--rootfs", str(rootfs), "true")
        assert again.returncode != 0 and "container ID file found" in again.stderr
    finally:
        daemon.cli("rm", "-f", cid)


@pytest.mark.cgroups
def test_update_changes_a_running_containers_limits(daemon, rootfs):
    files = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max "
        "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null"
    )
    cid = daemon.cli(
        "run", "-d", "-m", "64m", "--pids-limit", "20", "--rootfs", str(rootfs), "sleep", "60"
    ).stdout.strip()
    try:
        before = daemon.cli("exec", cid, "sh", "-c", files).stdout.split()
        assert before == [str(64 << 20), "20"], before
        p = daemon.cli(
            *("update", "-m", "256m", "--memory-swap", "512m", "--pids-limit", "50"),
            *("--cpus", "0.5", "--restart", "on-failure:3", cid),
        )
        assert p.returncode == 0 and p.stdout.strip() == cid, p.stderr
        after = daemon.cli("exec", cid, "sh", "-c", files).stdout.split()
        assert after == [str(256 << 20), "50"], after
        host = _inspect(daemon, cid)["HostConfig"]
        assert host["Memory"] == 256 << 20 and host["NanoCpus"] == 500_000_000
        assert host["RestartPolicy"]["Name"] == "on-failure"
        assert host["RestartPolicy"]["MaximumRetryCount"] == 3
        events = daemon.cli("events", "--since", "0", "--until", "0s", "--filter", "event=update")
        assert cid in events.stdout, events.stdout
        p = daemon.cli("update", cid)
        assert p.returncode != 0 and "nothing to update" in p.stderr
        p = daemon.cli("update", "-m", "1g", cid)  # above memory+swap (512m)
        assert p.returncode != 0 and "--memory-swap" in p.stderr, p.stderr
        daemon.cli("stop", "-t", "0", cid)
        assert daemon.cli("update", "--pids-limit", "7", cid).returncode == 0  # stored
        assert _inspect(daemon, cid)["HostConfig"]["PidsLimit"] == 7
    finally:
        daemon.cli("rm", "-f", cid)


@pytest.mark.cgroups
def test_blkio_weight_is_applied_or_refused_never_ignored(daemon, rootfs):
    """--blkio-weight: io.weight on v2 (runc's conversion: 300 -> 2930, or
    BFQ's io.bfq.weight as given); on a v1 host without CFQ/BFQ, a refusal
    that says so."""
    p = daemon.cli(
        "run", "-d", "--blkio-weight", "300", "--network", "none", "--rootfs", str(rootfs),
        "sleep", "60",
    )  # fmt: skip
    if p.returncode != 0:
        assert "blkio.weight" in p.stderr and "CFQ/BFQ" in p.stderr, p.stderr
        assert not Path("/sys/fs/cgroup/cgroup.controllers").exists(), "refused on v2"
        return
    cid = p.stdout.strip()
    try:
        assert _inspect(daemon, cid)["HostConfig"]["BlkioWeight"] == 300
        read = "cat /sys/fs/cgroup/io.weight /sys/fs/cgroup/io.bfq.weight 2>/dev/null"
        out = daemon.cli("exec", cid, "sh", "-c", read).stdout.split()
        assert out[:2] in (["default", "2930"], ["default", "300"]), out
    finally:
        daemon.cli("rm", "-f", cid)


def test_ps_last_and_latest(daemon, rootfs):
    ids = [daemon.cli("create", "--rootfs", str(rootfs), "true").stdout.strip() for _ in range(3)]
    try:
        assert daemon.cli("ps", "-q", "--no-trunc", "-l").stdout.split() == [ids[-1]]
        assert daemon.cli("ps", "-q", "--no-trunc", "-n", "2").stdout.split() == ids[:0:-1]
        assert daemon.cli("container", "ls", "-q").stdout.split() == []  # none running
    finally:
        daemon.cli("rm", *ids)


def test_info_and_version_name_the_engine(daemon):
    p = daemon.cli("info")
    assert p.returncode == 0, p.stderr
    version = "2" if not Path("/sys/fs/cgroup/memory").is_dir() else "1"
    assert f"Cgroup Version: {version}" in p.stdout and "Storage Driver: overlay2" in p.stdout
    p = daemon.cli("info", "--format", "{{.NCPU}}")
    assert p.stdout.strip() == str(os.cpu_count())
    p = daemon.cli("version")
    assert "Server: Corral Engine" in p.stdout and "Version:" in p.stdout, p.stdout
    p = daemon.cli("version", "--format", "{{.Server.Version}} {{.Client.Version}}")
    server, client = p.stdout.split()
    assert server == client and server[0].isdigit(), p.stdout


def test_logs_until(daemon, rootfs):
    cid = daemon.cli(
        "run", "-d", "--rootfs", str(rootfs), "sh", "-c", "echo one; sleep 1; echo two"
    ).stdout.strip()
    try:
        assert daemon.cli("wait", cid).stdout.strip() == "0"
        stamped = daemon.cli("logs", "-t", cid).stdout.splitlines()
        assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two"]
        import calendar
        import time

        first = stamped[0].split(" ", 1)[0]  # 2026-11-30T01:02:03.123456789Z
        secs = calendar.timegm(time.strptime(first[:19], "%Y-%m-%dT%H:%M:%S"))
        between = f"{secs + int(first[20:29]) / 1e9 + 0.5:.3f}"
        assert daemon.cli("logs", "--until", between, cid).stdout == "one\n"
        assert daemon.cli("logs", "--since", between, cid).stdout == "two\n"
        # Following with --until in the past: what there was, and the stream ends.
        assert daemon.cli("logs", "-f", "--until", between, cid).stdout == "one\n"
    finally:
        daemon.cli("rm", "-f", cid)


def test_events_in_dockers_shape_for_templates(daemon, rootfs):
    cid = daemon.cli(
        "run", "-d", "--name", "evshape", "--rootfs", str(rootfs), "true"
    ).stdout.strip()
    daemon.cli("wait", cid)
    base = ["events", "--since", "1m", "--until", "0s", "--filter", f"container={cid}"]
    p = daemon.cli(*base, "--filter", "event=die", "--format", "{{json .}}")
    assert p.returncode == 0, p.stderr
    ev = json.loads(p.stdout.splitlines()[0])
    assert (ev["status"], ev["id"], ev["Type"], ev["Action"]) == ("die", cid, "container", "die")
    assert ev["Actor"]["ID"] == cid and ev["Actor"]["Attributes"]["exitCode"] == "0"
    assert ev["Actor"]["Attributes"]["name"] == "evshape" and ev["scope"] == "local"
    assert ev["timeNano"] // 10**9 == ev["time"]
    p = daemon.cli(*base, "--format", "{{.Status}} {{.Actor.Attributes.name}} {{.Type}}")
    assert p.stdout.splitlines()[:3] == [
        "create evshape container",
        "start evshape container",
        "die evshape container",
    ], p.stdout
    daemon.cli("rm", cid)


def test_ps_filters_dockers_other_keys(daemon, rootfs):
    ids = {}
    for name, code in (("f-zero", 0), ("f-three", 3)):
        ids[name] = daemon.cli(
            "run", "-d", "--name", name, "--rootfs", str(rootfs), "sh", "-c", f"exit {code}"
        ).stdout.strip()
        daemon.cli("wait", name)
    ids["f-live"] = daemon.cli(
        "run", "-d", "--name", "f-live", "-v", "fvol:/data", "--rootfs", str(rootfs), "sleep", "60"
    ).stdout.strip()

    def names(*flags: str) -> set[str]:
        p = daemon.cli("ps", "--format", "{{.Names}}", *flags)
        assert p.returncode == 0, p.stderr
        return set(p.stdout.split())

    try:
        assert names("--filter", "exited=3") == {"f-three"}  # implies -a, as Docker's
        assert names("-a", "--filter", "exited=0", "--filter", "exited=3") == {"f-zero", "f-three"}
        assert names("--filter", "volume=fvol") == {"f-live"}
        assert names("--filter", "volume=/data") == {"f-live"}
        assert names("-a", "--filter", "before=f-three") == {"f-zero"}
        assert names("-a", "--filter", "since=f-zero") == {"f-three", "f-live"}
        assert names("--filter", "health=none") == {"f-live"}
        assert names("-a", "--filter", "network=bridge") == {"f-zero", "f-three", "f-live"}
        p = daemon.cli("ps", "--filter", "colour=blue")
        assert p.returncode != 0 and "invalid filter" in p.stderr
    finally:
        daemon.cli("rm", "-f", *ids.values())
        daemon.cli("volume", "rm", "fvol")


def test_inspect_finds_images_networks_and_volumes_too(daemon, rootfs):
    net = "insp" + RUN[-4:]
    assert daemon.cli("network", "create", net).returncode == 0
    assert daemon.cli("volume", "create", "inspvol").returncode == 0
    try:
        p = daemon.cli("inspect", "-f", "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}}", net)
        assert p.returncode == 0 and p.stdout.startswith(net + " "), p.stderr
        p = daemon.cli("inspect", "--type", "volume", "-f", "{{.Name}}", "inspvol")
        assert p.stdout.strip() == "inspvol", p.stderr
        p = daemon.cli("inspect", "no-such-thing")
        assert p.returncode == 1 and "No such object: no-such-thing" in p.stderr, p.stderr
        p = daemon.cli("inspect", "--type", "network", "inspvol")
        assert p.returncode == 1 and "No such network: inspvol" in p.stderr, p.stderr
        p = daemon.cli("network", "inspect", "-f", "{{.Name}}", net, "inspvol")
        assert p.returncode == 1 and p.stdout.strip() == net  # what there is, then the error
        assert "Error: No such network: inspvol" in p.stderr, p.stderr
    finally:
        daemon.cli("network", "rm", net)
        daemon.cli("volume", "rm", "inspvol")


def test_stop_with_a_signal_of_its_own(daemon, rootfs):
    script = "trap 'echo got-int; exit 7' INT; while :; do sleep 0.1; done"
    cid = daemon.cli("run", "-d", "--rootfs", str(rootfs), "sh", "-c", script).stdout.strip()
    try:
        p = daemon.cli("stop", "-s", "NOPE", cid)
        assert p.returncode != 0 and "NOPE" in p.stderr, p.stderr
        assert daemon.cli("stop", "-s", "SIGINT", "-t", "30", cid).returncode == 0
        state = _inspect(daemon, cid)["State"]
        assert state["ExitCode"] == 7, state  # the trap ran: SIGINT, not SIGTERM or KILL
        assert "got-int" in daemon.cli("logs", cid).stdout
    finally:
        daemon.cli("rm", "-f", cid)
