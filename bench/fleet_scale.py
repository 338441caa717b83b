"""1,000 idle containers: memory per container, and the time to start them.

    sudo .venv/bin/python bench/fleet_scale.py [--containers 1000] [--compare 20]

Memory per container = (the daemon's PSS growth + the PSS of every monitor) /
N, read from /proc/PID/smaps_rollup with all N containers idle (`sleep`). The
containers' own processes are not counted (the same busybox sleep under any
engine). Start time: N containers created and started one after another through
the protocol; for scale, `podman run -d` and `docker run -d` of --compare
containers of the same root filesystem (image), one after another.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    DaemonProc,
    fresh_bytecode,
    import_image,
    log,
    make_bundle,
    monitor_pids,
    podman_cli,
    reexec_in_private_mountns,
    rootfs_tar,
)
from bench.daemon_run import start_dockerd
from protocols.lite import api


def run_n(cli: list[str], tar: Path, n: int, flags: list[str]) -> float:
    """Seconds for `n` detached `sleep` containers of the imported root, one after another."""
    import_image(cli, tar, "scale-busybox")
    t = time.perf_counter()
    for _ in range(n):
        subprocess.run(
            [*cli, "run", "-d", "--network", "none", *flags, "scale-busybox", "sleep", "1000000"],
            check=True,
            capture_output=True,
        )
    return time.perf_counter() - t


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--compare", type=int, default=20)
    args = ap.parse_args()
    reexec_in_private_mountns()
    fresh_bytecode()
    from supervisor.client.connection import Client

    base = Path(tempfile.mkdtemp(prefix="corral-bench-scale-"))
    (base / "d").mkdir()
    daemon = DaemonProc(base / "d", cgroup_parent="/corral-bench-scale")
    dockerd = None
    podman = None
    try:
        bundle = make_bundle(base, ["sleep", "1000000"])
        rootfs = bundle / "rootfs"
        daemon.start()
        assert daemon.proc is not None
        time.sleep(0.5)
        before = pss_kib(daemon.proc.pid)
        c = Client(daemon.socket)
        cfg = api.ContainerConfig(network="none", rootfs=str(rootfs), cmd=["sleep", "1000000"])
        t = time.perf_counter()
        for i in range(args.containers):
            cid = c.call(api.Create(config=cfg)).id
            c.call(api.Start(id=cid))
            if i % 200 == 0:
                log(f"{i} started")
        start_s = time.perf_counter() - t
        time.sleep(2)
        t = time.perf_counter()
        listed = c.call(api.List()).containers
        ps_ms = (time.perf_counter() - t) * 1000
        assert len(listed) == args.containers
        after = pss_kib(daemon.proc.pid)
        monitors = monitor_pids(base / "d" / "run")
        mon_kib = 0
        for pid in monitors:
            try:
                mon_kib += pss_kib(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited meanwhile
        per = (after - before + mon_kib) / args.containers / 1024
        print(
            "| containers | start all (one after another) | per container | daemon PSS "
            "growth | monitors' PSS (sum) | per container: daemon + monitor PSS | `ps` "
            "with all running |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        print(
            f"| {args.containers} | {start_s:.2f} s | {start_s / args.containers * 1000:.1f} ms "
            f"| {(after - before) / 1024:.1f} MiB | {mon_kib / 1024:.1f} MiB "
            f"({len(monitors)} monitors) | {per:.3f} MiB | {ps_ms:.1f} ms |"
        )
        log("removing")
        for s in listed:
            c.call(api.Remove(id=s.id, force=True))
        c.close()

        rows = []
        tar = rootfs_tar(rootfs, base)
        podman = podman_cli(base)
        if podman:
            limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
            rows.append(("podman run -d", run_n(podman, tar, args.compare, limits)))
        dockerd = start_dockerd(base)
        if dockerd:
            rows.append(("docker run -d", run_n(dockerd[1], tar, args.compare, [])))
        print()
        print("| engine | containers | start all | per container |")
        print("| --- | --- | --- | --- |")
        print(
            f"| corral (protocol) | {args.containers} | {start_s:.2f} s | "
            f"{start_s / args.containers * 1000:.1f} ms |"
        )
        for name, secs in rows:
            print(
                f"| {name} | {args.compare} | {secs:.2f} s | {secs / args.compare * 1000:.1f} ms |"
            )
    finally:
        daemon.stop()
        if podman:
            subprocess.run([*podman, "rm", "-f", "-a"], capture_output=True)
            subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
        if dockerd:
            subprocess.run(
                [
                    *dockerd[1],
                    "rm",
                    "-f",
                    *subprocess.run(
                        [*dockerd[1], "ps", "-aq"], capture_output=True, text=True
                    ).stdout.split(),
                ],
                capture_output=True,
            )
            dockerd[0].send_signal(signal.SIGTERM)
            dockerd[0].wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
