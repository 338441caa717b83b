"""The same docker CLI against Corral's Docker API socket and against dockerd,
in one run, so that the difference is the engine behind the socket:

- `docker run --rm busybox true` (create, attach, wait, start, exit, remove);
  on the default network and with --network none (dockerd here runs with
  --bridge=none, so its default is no network at all: the none figures are the
  like-for-like ones);
- `docker ps` with 100 running containers in each engine.

    sudo .venv/bin/python bench/docker_api.py [--rounds N] [--containers 100]

Rounds interleave the engines; each figure is the whole docker command's
wall time (the same CLI binary both ways), median and p10-p90.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    reexec_in_private_mountns,
    rootfs_tar,
    start_dockerd,
    summary,
    timed,
)


def http_get(sock: str, path: str) -> float:
    """One GET over a fresh unix connection, read whole; ms."""
    import socket

    t = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    ms = (time.perf_counter() - t) * 1000
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {path}: {data[:200]!r}")
    return ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--containers", type=int, default=100)
    args = ap.parse_args()
    reexec_in_private_mountns()
    fresh_bytecode()
    docker = shutil.which("docker")
    if not docker:
        sys.exit("the docker CLI is not installed")
    base = Path(tempfile.mkdtemp(prefix="cb-dapi-", dir="/tmp"))
    (base / "corral").mkdir()
    daemon = DaemonProc(base / "corral", cgroup_parent="/corral-bench-dapi")
    dockerd = None
    engines: dict[str, list[str]] = {}
    try:
        bundle = make_bundle(base, ["/bin/true"])
        tar = rootfs_tar(bundle / "rootfs", base)
        daemon.start()
        env = {**os.environ, "CORRAL_SOCKET": daemon.socket}
        import_image([str(CORRAL)], tar, "busybox", env=env)
        engines["corral"] = [docker, "-H", f"unix://{base / 'corral' / 'run' / 'docker.sock'}"]
        dockerd = start_dockerd(base)
        if dockerd is None:
            sys.exit("dockerd could not be started: nothing to compare with")
        engines["dockerd"] = dockerd[1]
        import_image(dockerd[1], tar, "busybox")
        runs = {
            "run --rm (default network)": ["run", "--rm", "busybox", "true"],
            "run --rm --network none": ["run", "--rm", "--network", "none", "busybox", "true"],
        }
        results: dict[str, dict[str, list[float]]] = {k: {} for k in engines}
        for cli in engines.values():  # warm-up
            for argv in runs.values():
                timed([*cli, *argv])
        for r in range(args.rounds):
            for name, cli in engines.items():
                for what, argv in runs.items():
                    results[name].setdefault(what, []).append(timed([*cli, *argv]))
            if r % 10 == 0:
                log(f"round {r}: " + ", ".join(
                    f"{k} {v['run --rm --network none'][-1]:.0f} ms" for k, v in results.items()
                ))  # fmt: skip
        log(f"starting {args.containers} containers in each engine")
        for cli in engines.values():
            for i in range(args.containers):
                timed([*cli, "run", "-d", "--network", "none", "--name", f"ps{i}",
                       "busybox", "sleep", "3600"])  # fmt: skip
        for name, cli in engines.items():
            rows = subprocess.run([*cli, "ps", "-q"], capture_output=True, text=True).stdout
            assert len(rows.split()) == args.containers, (name, len(rows.split()))
            timed([*cli, "ps"])
        for _ in range(args.rounds):
            for name, cli in engines.items():
                results[name].setdefault(f"ps ({args.containers} running)", []).append(
                    timed([*cli, "ps"])
                )
                # The engine alone: the same request without the CLI's own start.
                results[name].setdefault(
                    f"GET /containers/json, no CLI ({args.containers} running)", []
                ).append(http_get(cli[-1].removeprefix("unix://"), "/v1.41/containers/json"))
        floor = [timed([docker, "--version"]) for _ in range(args.rounds)]
        print("| engine | command | median | p10 - p90 | rounds |")
        print("| --- | --- | --- | --- | --- |")
        for name, by in results.items():
            for what, samples in by.items():
                print(fmt(f"{name} | docker {what}", summary(samples)))
        print(fmt("(the CLI alone) | docker --version", summary(floor)))
        print()
        for what in results["corral"]:
            c = summary(results["corral"][what])["median"]
            d = summary(results["dockerd"][what])["median"]
            print(f"docker {what}: dockerd / corral (medians) = {d / c:.2f}x")
        print("\n" + json.dumps(results))
    finally:
        for cli in engines.values():
            if cli:
                ids = subprocess.run([*cli, "ps", "-aq"], capture_output=True, text=True).stdout
                if ids.split():
                    subprocess.run([*cli, "rm", "-f", *ids.split()], capture_output=True)
        daemon.stop()
        if dockerd:
            dockerd[0].terminate()
            dockerd[0].wait()
            subprocess.run(["umount", "-R", str(base / "docker")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
