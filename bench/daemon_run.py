"""`corral run --rm` against `docker run --rm` and `podman run --rm`.

    sudo .venv/bin/python bench/daemon_run.py [--rounds N]

The same busybox root filesystem for all three (imported as an image for docker
and podman), `--network none`, `/bin/true`, rounds interleaved. dockerd (Debian's
docker.io) is started by hand with its own data root and socket,
--iptables=false --bridge=none; podman uses cgroupfs and file events (no systemd
here) and limits that fit this host (its default RLIMIT_NOFILE/NPROC are above
the host's hard limits). Also: the daemon's part of a run, measured from an
in-process client (Create, then Attach with start, until Exited): the request's
round trip, an upper bound of the daemon's own time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    CORRAL,
    DaemonProc,
    fmt,
    fresh_bytecode,
    import_image,
    log,
    make_bundle,
    podman_cli,
    reexec_in_private_mountns,
    rootfs_tar,
    spawn_wait,
    start_dockerd,
    summary,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    reexec_in_private_mountns()
    fresh_bytecode()
    from protocols.lite import api
    from supervisor.client.connection import Client

    base = Path(tempfile.mkdtemp(prefix="corral-bench-run-"))
    daemon = DaemonProc(base / "corral")
    (base / "corral").mkdir()
    dockerd = None
    podman = None
    try:
        bundle = make_bundle(base, ["/bin/true"])
        rootfs = bundle / "rootfs"
        tar = rootfs_tar(rootfs, base)
        daemon.start()
        env = {**os.environ, "CORRAL_SOCKET": daemon.socket}
        os.environ["CORRAL_SOCKET"] = daemon.socket
        runs: dict[str, list[str]] = {
            "corral": [
                str(CORRAL),
                "run",
                "--rm",
                "--network",
                "none",
                "--rootfs",
                str(rootfs),
                "/bin/true",
            ],
        }
        dockerd = start_dockerd(base)
        if dockerd:
            import_image(dockerd[1], tar, "bench-busybox")
            runs["docker"] = [
                *dockerd[1],
                "run",
                "--rm",
                "--network",
                "none",
                "bench-busybox",
                "true",
            ]
        podman = podman_cli(base)
        if podman:
            import_image(podman, tar, "bench-busybox")
            runs["podman"] = [
                *podman,
                "run",
                "--rm",
                "--network",
                "none",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
                "bench-busybox",
                "true",
            ]
        for argv in runs.values():  # warm up each
            spawn_wait(argv)
        results: dict[str, list[float]] = {k: [] for k in runs}
        results["daemon_part"] = []
        # crun's whole run of the same root filesystem as an OCI bundle: the issue's
        # yardstick for the daemon's part, measured in the same run.
        crun = shutil.which("crun")
        if crun:
            crun_argv = [crun, "--root", str(base / "crun"), "run", "-b", str(bundle)]
            spawn_wait([*crun_argv, "warm"])
            results["crun"] = []
        client = Client(daemon.socket)
        cfg = api.ContainerConfig(
            network="none", rootfs=str(rootfs), cmd=["/bin/true"], auto_remove=True
        )
        for i in range(args.rounds):
            for name, argv in runs.items():
                results[name].append(spawn_wait(argv))
            if crun:
                results["crun"].append(spawn_wait([*crun_argv, f"c{i}"]))
            t = time.perf_counter()
            created = client.call(api.Create(config=cfg))
            for msg in client.stream(api.Attach(id=created.id, start=True)):
                assert not isinstance(msg, api.Error)
            results["daemon_part"].append((time.perf_counter() - t) * 1000)
            if i % 10 == 0:
                log(f"round {i}")
        client.close()
        del env
        s = {k: summary(v) for k, v in results.items()}
        print("| what | median | p10 - p90 | runs |")
        print("| --- | --- | --- | --- |")
        print(fmt("`corral run --rm --network none --rootfs R /bin/true`", s["corral"]))
        if "docker" in s:
            print(fmt("`docker run --rm --network none busybox true`", s["docker"]))
        if "podman" in s:
            print(fmt("`podman run --rm --network none busybox true`", s["podman"]))
        print(
            fmt(
                "daemon's part (Create + Attach/start to Exited, in-process client)",
                s["daemon_part"],
            )
        )
        if "crun" in s:
            print(fmt("`crun run` of the same root filesystem (OCI bundle), whole", s["crun"]))
        print()
        for other in ("docker", "podman"):
            if other in s:
                print(f"- {other} / corral: {s[other]['median'] / s['corral']['median']:.2f}x")
        if "crun" in s:
            ratio = s["daemon_part"]["median"] / s["crun"]["median"]
            print(f"- daemon's part / crun's whole run: {ratio:.2f}x")
    finally:
        daemon.stop()
        if dockerd:
            subprocess.run([*dockerd[1], "rm", "-f", "-a"], capture_output=True)
            dockerd[0].send_signal(signal.SIGTERM)
            dockerd[0].wait()
        if podman:
            subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
