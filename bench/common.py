"""Shared pieces of the benchmarks: a bundle, timing, summaries."""

from __future__ import annotations

import os
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
