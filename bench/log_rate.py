"""How fast a container's output reaches its log: Corral's monitor against
Docker's json-file driver, the same busybox image, in one run.

    sudo .venv/bin/python bench/log_rate.py [--rounds N] [--mbytes M]

Two workloads, each writing M MB to stdout as fast as it can: `yes` (two-byte
lines, the worst case for a per-line log) and 1 KiB lines. Each round times
`run -d` to the end of `wait` (both engines record the exit only after the
output is drained into the log), then checks that the log holds every byte
(`logs | wc -c`, untimed). MB/s is the content's size over that time; the
ratio is Corral's rate over Docker's, per round, median and spread.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    CORRAL,
    DaemonProc,
    fresh_bytecode,
    import_image,
    log,
    make_bundle,
    reexec_in_private_mountns,
    rootfs_tar,
    start_dockerd,
    summary,
)

WORKLOADS = {
    "yes (2-byte lines)": "yes | head -c {n}",
    "1 KiB lines": "yes $(head -c 1023 /dev/zero | tr '\\0' x) | head -c {n}",
}


def timed_run(cli: list[str], image: list[str], script: str, n: int) -> float:
    """Seconds from `run -d` to the end of `wait`; checks the logged bytes."""
    t = time.perf_counter()
    cid = subprocess.run(
        [
            *cli,
            "run",
            "-d",
            "--network",
            "none",
            *image,
            "sh",
            "-c",
            script,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run([*cli, "wait", cid], check=True, capture_output=True)
    seconds = time.perf_counter() - t
    logs = subprocess.Popen([*cli, "logs", cid], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    got = 0
    assert logs.stdout is not None
    while chunk := logs.stdout.read(1 << 20):
        got += len(chunk)
    logs.wait()
    subprocess.run([*cli, "rm", "-f", cid], check=True, capture_output=True)
    if got != n:
        raise RuntimeError(f"{cli[0]}: the log holds {got} bytes of {n}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mbytes", type=int, default=20)
    args = ap.parse_args()
    reexec_in_private_mountns()
    fresh_bytecode()
    n = args.mbytes * 1_000_000
    base = Path(tempfile.mkdtemp(prefix="corral-bench-log-"))
    (base / "corral").mkdir()
    daemon = DaemonProc(base / "corral")
    dockerd = None
    try:
        bundle = make_bundle(base, ["true"])
        rootfs = bundle / "rootfs"
        tar = rootfs_tar(rootfs, base)
        daemon.start()
        corral = [str(CORRAL)]
        os.environ["CORRAL_SOCKET"] = daemon.socket
        dockerd = start_dockerd(base)
        if dockerd is None:
            log("docker: dockerd is not installed (apt-get install docker.io): Corral alone")
        else:
            import_image(dockerd[1], tar, "bench-busybox")
        print("| workload | engine | MB/s (median) | p10 - p90 | rounds |")
        print("| --- | --- | --- | --- | --- |")
        for name, script in WORKLOADS.items():
            script = script.format(n=n)
            rates: dict[str, list[float]] = {"corral": [], "docker": []}
            ratios = []
            for _ in range(args.rounds):
                # No rotation: Corral's default keeps 20m x 5, Docker's json-file all.
                unlimited = ["--log-opt", "max-size=-1", "--rootfs", str(rootfs)]
                c = n / 1e6 / timed_run(corral, unlimited, script, n)
                rates["corral"].append(c)
                if dockerd is not None:
                    d = n / 1e6 / timed_run(dockerd[1], ["bench-busybox"], script, n)
                    rates["docker"].append(d)
                    ratios.append(c / d)
            for engine, samples in rates.items():
                if samples:
                    s = summary(samples)
                    print(
                        f"| {name} | {engine} | {s['median']:.1f} | "
                        f"{s['p10']:.1f} - {s['p90']:.1f} | {int(s['n'])} |"
                    )
            if ratios:
                s = summary(ratios)
                print(
                    f"| {name} | corral / docker | {s['median']:.2f}x | "
                    f"{s['p10']:.2f} - {s['p90']:.2f} | {int(s['n'])} |"
                )
            sys.stdout.flush()
    finally:
        daemon.stop()
        if dockerd is not None:
            dockerd[0].terminate()
            dockerd[0].wait()
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
