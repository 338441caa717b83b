"""Shared pieces of the benchmarks: a bundle, timing, summaries."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PY = REPO / ".venv" / "bin" / "python"
CORRAL = REPO / ".venv" / "bin" / "corral"


def make_bundle(base: Path, args: list[str]) -> Path:
    """A busybox bundle with Corral's default spec (all namespaces, network too)."""
    from supervisor.runtime.rootfs import make_busybox_rootfs

    bundle = base / "bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    if not (bundle / "rootfs").exists():
        make_busybox_rootfs(bundle / "rootfs")
    subprocess.run(
        [str(CORRAL), "runtime", "spec", "--force", "-b", str(bundle), "--no-terminal", *args],
        check=True,
    )
    return bundle


def rootfs_tar(rootfs: Path, base: Path) -> Path:
    """The root filesystem as base/rootfs.tar, for every engine's `import`."""
    tar = base / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    return tar


def import_image(cli: list[str], tar: Path, name: str, env: dict | None = None) -> None:
    """`CLI import TAR NAME` (corral, docker and podman take the same words);
    RuntimeError with its stderr if it fails."""
    p = subprocess.run([*cli, "import", str(tar), name], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cli)} import {name}: {p.stderr[-1500:]}")


def spawn_wait(argv: list[str]) -> float:
    """Wall time of one whole process, started with posix_spawn (vfork), in ms."""
    devnull = os.open("/dev/null", os.O_RDWR)
    try:
        t = time.perf_counter()
        pid = os.posix_spawn(
            argv[0],
            argv,
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)],
        )
        _, status = os.waitpid(pid, 0)
        ms = (time.perf_counter() - t) * 1000
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} exited with {os.waitstatus_to_exitcode(status)}")
    return ms


def timed(argv: list[str], env: dict | None = None) -> float:
    """Wall time of one whole command, in ms; RuntimeError with its stderr if it fails."""
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    ms = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))}: {p.stderr[-1500:]}")
    return ms


def summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    n = len(s)
    return {
        "n": n,
        "median": statistics.median(s),
        "p10": s[max(0, int(n * 0.10) - 1)],
        "p90": s[min(n - 1, int(n * 0.90))],
        "p99": s[min(n - 1, int(n * 0.99))],
    }


def fmt(name: str, s: dict[str, float], unit: str = "ms") -> str:
    return (
        f"| {name} | {s['median']:.2f} {unit} | {s['p10']:.2f} - {s['p90']:.2f} | {int(s['n'])} |"
    )


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def monitor_pids(run_root: Path) -> list[int]:
    """The monitors of one daemon's containers (from its runtime state files),
    not every corral-monitor on the machine: other engines, checkouts and
    benches run their own."""
    import json

    pids = []
    for state in (run_root / "runtime").glob("*/state.json"):
        try:
            pids.append(json.loads(state.read_text())["monitor_pid"])
        except (OSError, ValueError, KeyError):
            continue  # being created or removed meanwhile
    return pids


UNIFIED = "/sys/fs/cgroup/unified/cgroup.controllers"


def fresh_bytecode() -> None:
    """Compile Corral's modules first: with PYTHONDONTWRITEBYTECODE set (this VM's
    shell sets it) a module edited since the last compile is compiled again by
    every command, ~15 ms of a 30 ms `corral run`; scripts/install.sh compiles
    them too."""
    import compileall

    for pkg in ("supervisor", "protocols"):
        compileall.compile_dir(str(REPO / pkg), quiet=1)


def reexec_in_private_mountns() -> None:
    """crun 1.8 refuses this machine's hybrid cgroups ("drop all controllers from
    cgroupv2"): re-run this script in a private mount namespace in which the empty
    cgroup2 mount's cgroup.controllers is covered by /dev/null. Everything the
    script runs, Corral included, runs in it alike (Corral never reads that file)."""
    import sys

    if os.environ.get("CORRAL_BENCH_INNER") or not os.path.exists(UNIFIED):
        return
    os.environ["CORRAL_BENCH_INNER"] = "1"
    cmd = f"mount --bind /dev/null {UNIFIED} && exec {sys.executable} {' '.join(sys.argv)}"
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd])


class DaemonProc:
    """A corral daemon under a temporary root, for benchmarks."""

    def __init__(self, base: Path, cgroup_parent: str = "/corral-bench-d") -> None:
        self.base = base
        self.socket = str(base / "run" / "corral.sock")
        self.cgroup_parent = cgroup_parent
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import socket

        log = open(self.base / "daemon.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(CORRAL),
                "daemon",
                "--root",
                str(self.base / "root"),
                "--run-root",
                str(self.base / "run"),
                "--cgroup-parent",
                self.cgroup_parent,
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(600):
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("daemon did not start")

    def stop(self) -> None:
        from protocols.lite import api
        from supervisor.client.connection import Client

        if self.proc is None:
            return
        try:
            with Client(self.socket) as c:
                for s in c.call(api.List(all=True)).containers:
                    c.call(api.Remove(id=s.id, force=True))
        finally:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None
            from supervisor.runtime.cgroups import remove_parent

            remove_parent(self.cgroup_parent)  # containers' parents stay when they go


def _host_network() -> tuple[set[str], set[str]]:
    """The host's links and nftables tables, by name."""
    import nftables

    nft = nftables.Nftables()
    _rc, out, _err = nft.cmd("list tables")
    return set(os.listdir("/sys/class/net")), set(out.splitlines())


def _undo_podman_network(before: tuple[set[str], set[str]]) -> None:
    """What podman's CNI made on the host during the run (its bridge, the
    iptables-nft tables it adds rules to), removed if it was not there before."""
    import nftables

    from supervisor.network.links import delete_link

    links, tables = before
    now_links, now_tables = _host_network()
    if "cni-podman0" in now_links - links:
        delete_link("cni-podman0")
    nft = nftables.Nftables()
    for t in now_tables - tables:
        if t in ("table ip filter", "table ip nat"):
            nft.cmd(f"delete {t}")


def podman_cli(base: Path) -> list[str] | None:
    """podman with its own storage under `base`, cgroupfs and file events (no
    systemd on this machine); None where podman is not installed. What its
    CNI networking adds to the host is removed when the benchmark exits."""
    import atexit
    import shutil

    exe = shutil.which("podman")
    if exe is None:
        log("podman: not installed (apt-get install podman): left out of this run")
        return None
    atexit.register(_undo_podman_network, _host_network())
    runroot = base / "podman-run"
    if len(str(runroot)) > 50:  # podman refuses a longer runroot, and says little
        log(
            f"podman: its run root {runroot} is over the 50 characters podman takes: "
            "left out of this run (set TMPDIR to a shorter directory, e.g. /tmp)"
        )
        return None
    return [
        exe,
        "--root",
        str(base / "podman"),
        "--runroot",
        str(base / "podman-run"),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]


def start_dockerd(
    base: Path, extra: list[str] | None = None
) -> tuple[subprocess.Popen, list[str]] | None:
    """Debian's dockerd under `base` (its own data root and socket, no iptables,
    no bridge; `extra` flags more), for comparisons; (process, docker CLI argv)
    or None."""
    if not shutil.which("dockerd") or not shutil.which("docker"):
        log("docker: dockerd or the docker CLI is not installed (apt-get install docker.io)")
        return None
    sock = base / "docker.sock"
    logf = open(base / "dockerd.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            "dockerd",
            "--iptables=false",
            "--bridge=none",
            "--data-root",
            str(base / "docker"),
            "--exec-root",
            str(base / "dexec"),
            "-H",
            f"unix://{sock}",
            "--pidfile",
            str(base / "docker.pid"),
            *(extra or []),
        ],
        stdout=logf,
        stderr=logf,
    )
    cli = [shutil.which("docker"), "-H", f"unix://{sock}"]
    for _ in range(300):
        if subprocess.run([*cli, "info"], capture_output=True).returncode == 0:
            return proc, cli
        time.sleep(0.1)
    proc.terminate()
    proc.wait()
    log(f"docker: dockerd did not answer within 30 s (see {base / 'dockerd.log'})")
    return None
