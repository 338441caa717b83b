"""Peer engines started by tests: Debian's dockerd with its own data root and
socket (no iptables, no bridge), stopped and unmounted whatever happens."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def dockerd(base: Path, extra: tuple[str, ...] = ()) -> Iterator[list[str]]:
    """dockerd under `base` with `extra` flags; yields the docker CLI's argv.
    Skips the test, saying why, where dockerd is missing or cannot run."""
    if not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.skip("dockerd or the docker CLI is not installed (apt-get install docker.io)")
    base.mkdir(parents=True, exist_ok=True)
    sock = base / "docker.sock"
    with open(base / "dockerd.log", "ab") as log:
        proc = subprocess.Popen(
            ["dockerd", "--iptables=false", "--bridge=none", "--data-root", str(base / "data"),
             "--exec-root", str(base / "exec"), "-H", f"unix://{sock}",
             "--pidfile", str(base / "docker.pid"), *extra],
            stdout=log, stderr=log,
        )  # fmt: skip
    cli = [shutil.which("docker") or "docker", "-H", f"unix://{sock}"]
    try:
        for _ in range(300):
            if subprocess.run([*cli, "info"], capture_output=True).returncode == 0:
                break
            if proc.poll() is not None:
                pytest.skip(f"dockerd exited here: {(base / 'dockerd.log').read_text()[-500:]}")
            time.sleep(0.1)
        else:
            pytest.skip("dockerd did not answer within 30 s")
        yield cli
    finally:
        ids = subprocess.run([*cli, "ps", "-aq"], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([*cli, "rm", "-f", *ids], capture_output=True)
        proc.terminate()
        proc.wait()
        subprocess.run(["umount", "-R", str(base / "data")], capture_output=True)
