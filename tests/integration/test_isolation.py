"""From inside a real container: namespaces, root, security profile, identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.runtime import spec as specs
from tests.integration.conftest import run_captured
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]

DOCKER_CAPEFF = sum(1 << n for n in (0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31))


def sh(rt, bundle, tmp_path, script: str, *, edit=None, id="c"):
    b = bundle("sh", "-c", script, edit=edit)
    return run_captured(rt, id, b, tmp_path)


def test_pid1_and_no_host_processes(runtime, bundle, tmp_path):
    code, out, _ = sh(runtime, bundle, tmp_path, "echo $$; ps -o pid,comm; true")
    lines = out.split("\n")
    assert code == 0
    assert lines[0] == "1"
    pids = [line.split()[0] for line in lines[2:] if line.strip()]
    # Only the shell and ps itself: nothing of the host.
    assert pids[0] == "1" and len(pids) == 2, out


def test_hostname_and_uts(runtime, bundle, tmp_path):
    def edit(d):
        d["hostname"] = "webby"

    code, out, _ = sh(
        runtime, bundle, tmp_path, "hostname; cat /proc/sys/kernel/hostname", edit=edit
    )
    assert code == 0 and out.split() == ["webby", "webby"]


def test_root_is_the_rootfs_and_no_host_path_shows(runtime, bundle, tmp_path, rootfs):
    marker = tmp_path / "host-only-marker"
    marker.write_text("host")
    code, out, _ = sh(
        runtime,
        bundle,
        tmp_path,
        f"ls /; test -e {marker} && echo LEAK; test -e /work && echo LEAK; "
        "grep -c ' / ' /proc/self/mountinfo; readlink /proc/1/exe",
    )
    assert code == 0
    assert "LEAK" not in out
    assert set(out.split()) >= {"bin", "etc", "proc", "sys", "dev", "tmp"}
    assert out.split()[-1] == "/bin/busybox"  # the container's program, no host binary


def test_default_capabilities_are_dockers(runtime, bundle, tmp_path):
    code, out, _ = sh(
        runtime, bundle, tmp_path, "grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status"
    )
    caps = dict(line.split(":\t") for line in out.strip().split("\n"))
    assert code == 0
    assert int(caps["CapEff"], 16) == DOCKER_CAPEFF
    assert int(caps["CapBnd"], 16) == DOCKER_CAPEFF
    assert int(caps["CapPrm"], 16) == DOCKER_CAPEFF
    assert int(caps["CapInh"], 16) == 0 and int(caps["CapAmb"], 16) == 0


def test_no_new_privs(runtime, bundle, tmp_path):
    code, out, _ = sh(runtime, bundle, tmp_path, "grep NoNewPrivs /proc/self/status")
    assert code == 0 and out.split() == ["NoNewPrivs:", "1"]


@pytest.mark.parametrize("path", [p for p in specs.DOCKER_MASKED if p != "/proc/kcore"])
def test_masked_paths_read_empty(runtime, bundle, tmp_path, path):
    # Each path that exists on this kernel must read empty (a file) or list
    # nothing (a directory); one that does not exist has nothing to hide.
    script = (
        f"if [ -d {path} ]; then ls -A {path} | wc -l; "
        f"elif [ -e {path} ]; then cat {path} | wc -c; else echo absent; fi"
    )
    code, out, _ = sh(runtime, bundle, tmp_path, script)
    assert code == 0
    assert out.strip() in ("0", "absent"), f"{path}: {out!r}"
    if Path(path).exists():
        assert out.strip() == "0"


def test_masked_files_present_on_host_are_hidden(runtime, bundle, tmp_path):
    # /proc/interrupts exists on every kernel: on the host it has content.
    assert Path("/proc/interrupts").read_text()
    code, out, _ = sh(runtime, bundle, tmp_path, "wc -c < /proc/interrupts")
    assert code == 0 and out.strip() == "0"


@pytest.mark.parametrize("path", ["/proc/sys/kernel/domainname", "/proc/sysrq-trigger"])
def test_readonly_paths_refuse_writes(runtime, bundle, tmp_path, path):
    if not Path(path).exists():
        pytest.skip(f"{path} does not exist on this kernel")
    code, out, err = sh(runtime, bundle, tmp_path, f"echo x > {path} && echo WROTE; true")
    assert code == 0
    assert "WROTE" not in out
    assert "Read-only file system" in err


def test_readonly_mounts_listed_ro(runtime, bundle, tmp_path):
    code, out, _ = sh(
        runtime, bundle, tmp_path, "grep -E ' /proc/(sys|bus|fs|irq) ' /proc/self/mountinfo"
    )
    assert code == 0
    for line in out.strip().split("\n"):
        assert " ro," in line or " ro " in line, line


def test_user_group_env_cwd(runtime, bundle, tmp_path):
    def edit(d):
        d["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [1002, 1003]}
        d["process"]["env"].append("GREETING=hello world")
        d["process"]["cwd"] = "/tmp"

    code, out, _ = sh(
        runtime, bundle, tmp_path, "id -u; id -g; id -G; echo $GREETING; pwd", edit=edit
    )
    lines = out.strip().split("\n")
    assert code == 0
    assert lines[0] == "1000" and lines[1] == "1001"
    assert set(lines[2].split()) == {"1001", "1002", "1003"}
    assert lines[3] == "hello world" and lines[4] == "/tmp"


def test_non_root_user_has_no_effective_caps(runtime, bundle, tmp_path):
    def edit(d):
        d["process"]["user"] = {"uid": 65534, "gid": 65534}

    code, out, _ = sh(runtime, bundle, tmp_path, "grep CapEff /proc/self/status", edit=edit)
    assert code == 0 and int(out.split()[1], 16) == 0


def test_rlimits_applied(runtime, bundle, tmp_path):
    def edit(d):
        d["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]

    code, out, _ = sh(runtime, bundle, tmp_path, "ulimit -n; ulimit -Hn", edit=edit)
    assert code == 0 and out.split() == ["321", "654"]


def test_only_stdio_descriptors_reach_the_container(runtime, bundle, tmp_path):
    code, out, _ = sh(runtime, bundle, tmp_path, "ls /proc/self/fd")
    # 0, 1, 2 and the descriptor ls itself opens on the directory.
    assert code == 0 and set(out.split()) <= {"0", "1", "2", "3"}


def test_network_namespace_has_only_loopback_and_it_is_up(runtime, bundle, tmp_path):
    code, out, _ = sh(
        runtime,
        bundle,
        tmp_path,
        "ls /sys/class/net; cat /sys/class/net/lo/operstate; "
        "(httpd -f -p 127.0.0.1:8080 -h /etc &) ; sleep 0.2; "
        "wget -q -O - http://127.0.0.1:8080/hostname",
    )
    assert code == 0
    assert out.split()[0] == "lo"
    assert out.split()[1] in ("unknown", "up")  # lo reports "unknown" when up
    assert out.split()[2] == "corral"


def test_devices_and_dev_layout(runtime, bundle, tmp_path):
    code, out, _ = sh(
        runtime,
        bundle,
        tmp_path,
        "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo ok; ls -l /dev/ptmx /dev/fd",
    )
    assert code == 0
    assert out.split("\n")[0].strip() == "4" and "ok" in out
    assert "pts/ptmx" in out and "/proc/self/fd" in out


def test_terminal_allocates_a_pty(runtime, bundle, tmp_path):
    b = bundle("sh", "-c", "tty", terminal=True)
    code, out, _ = run_captured(runtime, "t", b, tmp_path)
    assert code == 0 and out.strip() == "/dev/pts/0"


def test_sysctl_applied_inside(runtime, bundle, tmp_path):
    def edit(d):
        d["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}

    code, out, _ = sh(runtime, bundle, tmp_path, "cat /proc/sys/net/ipv4/ip_forward", edit=edit)
    assert code == 0 and out.strip() == "1"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() in ("0", "1")


def test_seccomp_profile_from_config_json(runtime, bundle, tmp_path):
    """A bundle's own profile (read by oci_lite, not the daemon's msgspec):
    Docker's default refuses unshare(CLONE_NEWUSER), which needs no capability."""
    import msgspec

    from supervisor.runtime import seccomp

    def edit(d):
        profile = seccomp.default_profile(specs.DOCKER_CAPS)
        d["linux"]["seccomp"] = msgspec.to_builtins(profile)

    script = "grep Seccomp: /proc/self/status; unshare -U true && echo ok || echo refused"
    code, out, _ = sh(runtime, bundle, tmp_path, script, edit=edit)
    assert code == 0 and out.split() == ["Seccomp:", "2", "refused"], out
    code, out, _ = sh(runtime, bundle, tmp_path, script, id="free")
    assert code == 0 and out.split() == ["Seccomp:", "0", "ok"], out
