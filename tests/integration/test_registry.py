"""Against a real registry: Debian's docker-registry on 127.0.0.1, started here."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.probe import needs_busybox, needs_root

pytestmark = [
    needs_root,
    needs_busybox,
    pytest.mark.skipif(
        not shutil.which("docker-registry"), reason="Debian's docker-registry is not installed"
    ),
]


def ok(p):
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture
def registry(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "registry-data"
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {data}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the registry did not start"
                time.sleep(0.05)
        yield f"localhost:{port}", data
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture
def imported(daemon, rootfs, tmp_path):
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    ok(daemon.cli("import", str(tar), "bb:local"))
    return "bb:local"


def test_push_pull_and_pull_again_with_nothing_to_fetch(daemon, registry, imported):
    host, _ = registry
    ref = f"{host}/team/bb:v1"
    ok(daemon.cli("tag", imported, ref))
    out = ok(daemon.cli("push", ref))
    assert "Pushed" in out and "digest: sha256:" in out
    assert "Pushed" not in ok(daemon.cli("push", ref))  # nothing uploaded twice
    ok(daemon.cli("rmi", ref))
    ok(daemon.cli("rmi", imported))
    assert ok(daemon.cli("images", "-q")).strip() == ""
    out = ok(daemon.cli("pull", ref))
    assert "Pull complete" in out and "Downloaded newer image" in out
    out = ok(daemon.cli("pull", ref))
    assert "Already exists" in out and "up to date" in out
    assert ok(daemon.cli("run", "--rm", ref, "echo", "pulled")) == "pulled\n"


def test_skopeo_reads_what_we_push(daemon, registry, imported, tmp_path):
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed")
    host, _ = registry
    ok(daemon.cli("tag", imported, f"{host}/x/bb:v2"))
    ok(daemon.cli("push", f"{host}/x/bb:v2"))
    p = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{host}/x/bb:v2"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Os"] == "linux"


def test_tampered_blob_is_refused(daemon, registry, imported):
    host, data = registry
    ref = f"{host}/bad/bb:v1"
    ok(daemon.cli("tag", imported, ref))
    ok(daemon.cli("push", ref))
    ok(daemon.cli("rmi", ref))
    ok(daemon.cli("rmi", imported))
    blobs = sorted(
        (data / "docker" / "registry" / "v2" / "blobs").rglob("data"),
        key=lambda p: -p.stat().st_size,
    )
    layer = blobs[0]  # the biggest blob: the layer
    raw = bytearray(layer.read_bytes())
    raw[-100] ^= 0xFF
    layer.write_bytes(bytes(raw))
    p = daemon.cli("pull", ref)
    assert p.returncode != 0 and "digest mismatch" in p.stderr
    assert ok(daemon.cli("images", "-q")).strip() == ""
    downloads = Path(daemon.root) / "images" / "downloads"
    assert not downloads.exists() or not any(downloads.iterdir())


def test_pull_of_a_missing_image_names_it(daemon, registry):
    host, _ = registry
    p = daemon.cli("pull", f"{host}/nothing/here:v9")
    assert p.returncode != 0 and "not found" in p.stderr
