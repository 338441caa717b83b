"""Against a real registry: Debian's docker-registry on 127.0.0.1, started here."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import shutil
import socket
import subprocess
import sys
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_registry(base: Path, auth: str = ""):
    """docker-registry on 127.0.0.1 with `auth` (YAML of its auth: section);
    its request log (JSON lines, bytes written per request) in base/registry.log."""
    port = free_port()
    data = base / "registry-data"
    config = base / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {data}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: info\n  formatter: json\n"
        f"  accesslog:\n    disabled: true\n{auth}"
    )
    with open(base / "registry.log", "wb") as logf:
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=logf, stderr=logf)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, (base / "registry.log").read_text()
                assert time.monotonic() < deadline, "the registry did not start"
                time.sleep(0.05)
        yield f"localhost:{port}", data
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture
def registry(tmp_path):
    with serve_registry(tmp_path) as r:
        yield r


@pytest.fixture
def token_registry(tmp_path):
    """A registry that wants bearer tokens from tests/integration/token_server.py."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("token_server.py")),
            str(tokens),
            "alice",
            "s3cret",
            "corral-test-registry",
            "corral-test-issuer",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())
        auth = (
            "auth:\n  token:\n"
            f"    realm: http://127.0.0.1:{port}/token\n"
            "    service: corral-test-registry\n"
            "    issuer: corral-test-issuer\n"
            f"    rootcertbundle: {tokens / 'cert.pem'}\n"
        )
        with serve_registry(tmp_path, auth) as (host, _):
            yield host, tokens / "requests.log"
    finally:
        server.terminate()
        server.wait()
        server.stdout.close()


@pytest.fixture
def basic_registry(tmp_path):
    """A registry with an htpasswd file (bcrypt), as Docker's docs deploy one."""
    bcrypt = pytest.importorskip("bcrypt")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_bytes(b"bob:" + bcrypt.hashpw(b"hunter2", bcrypt.gensalt()) + b"\n")
    auth = f"auth:\n  htpasswd:\n    realm: corral-test\n    path: {htpasswd}\n"
    with serve_registry(tmp_path, auth) as (host, _):
        yield host


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
    # Digest: the manifest's, as Docker prints it (the image id is the config's).
    manifest = _manifest(host, "team/bb", "v1")
    digest = next(line.split()[1] for line in out.splitlines() if line.startswith("Digest:"))
    assert digest == "sha256:" + hashlib.sha256(_manifest_bytes(host, "team/bb", "v1")).hexdigest()
    assert digest != manifest["config"]["digest"]
    # `images`: a registry with a port in the repository, the tag apart, columns apart.
    head, row = ok(daemon.cli("images")).splitlines()[:2]
    assert head.split("   ")[0].strip() == "REPOSITORY"
    cells = [c for c in row.split("  ") if c.strip()]
    assert [c.strip() for c in cells[:2]] == [f"{host}/team/bb", "v1"]
    assert "ago" in row or "seconds" in row or "N/A" in row
    out = ok(daemon.cli("pull", ref))
    assert "Already exists" in out and "up to date" in out
    assert ok(daemon.cli("pull", "-q", ref)) == ref + "\n"  # Docker's -q: the name only
    assert ok(daemon.cli("run", "--rm", ref, "echo", "pulled")) == "pulled\n"


def _manifest_bytes(host: str, repo: str, tag: str) -> bytes:
    import urllib.request

    req = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def _manifest(host: str, repo: str, tag: str) -> dict:
    return json.loads(_manifest_bytes(host, repo, tag))


def test_a_pulled_image_keeps_its_digests_and_id(daemon, registry, imported, tmp_path):
    """Pushed elsewhere, a pulled image's layers and config are the bytes it
    was pulled as; saved and loaded, it keeps its id (the kept blobs)."""
    host, _ = registry
    imported_id = ok(daemon.cli("image", "inspect", "-f", "{{.Id}}", imported)).strip()
    ok(daemon.cli("tag", imported, f"{host}/a/bb:v1"))
    ok(daemon.cli("push", f"{host}/a/bb:v1"))  # GNU tar's bytes, as imported, gzipped
    assert _manifest(host, "a/bb", "v1")["config"]["digest"] == imported_id
    ok(daemon.cli("rmi", f"{host}/a/bb:v1"))
    ok(daemon.cli("rmi", imported))
    ok(daemon.cli("pull", f"{host}/a/bb:v1"))
    pulled_id = ok(daemon.cli("image", "inspect", "-f", "{{.Id}}", f"{host}/a/bb:v1")).strip()
    ok(daemon.cli("tag", f"{host}/a/bb:v1", f"{host}/b/bb:v1"))
    ok(daemon.cli("push", f"{host}/b/bb:v1"))
    a, b = _manifest(host, "a/bb", "v1"), _manifest(host, "b/bb", "v1")
    assert [x["digest"] for x in b["layers"]] == [x["digest"] for x in a["layers"]]
    assert b["config"]["digest"] == a["config"]["digest"] == pulled_id
    saved = tmp_path / "pulled.tar"
    ok(daemon.cli("save", "-o", str(saved), f"{host}/b/bb:v1"))
    ok(daemon.cli("rmi", f"{host}/a/bb:v1", f"{host}/b/bb:v1"))
    ok(daemon.cli("load", "-i", str(saved)))
    loaded_id = ok(daemon.cli("image", "inspect", "-f", "{{.Id}}", f"{host}/b/bb:v1")).strip()
    assert loaded_id == pulled_id
    assert ok(daemon.cli("run", "--rm", f"{host}/b/bb:v1", "echo", "same")) == "same\n"


def test_repo_digests_and_a_pull_by_digest(daemon, registry, imported):
    """RepoDigests as Docker keeps them: after push and pull, `name@digest`
    names the image; a pull by digest leaves it untagged; run takes it."""
    host, _ = registry
    ref = f"{host}/pin/bb:v1"
    ok(daemon.cli("tag", imported, ref))
    pushed = ok(daemon.cli("push", ref)).split("digest: ")[1].split()[0]
    pinned = f"{host}/pin/bb@{pushed}"
    info = json.loads(ok(daemon.cli("image", "inspect", ref)))[0]
    assert info["RepoDigests"] == [pinned]
    ok(daemon.cli("rmi", ref))
    ok(daemon.cli("rmi", imported))
    out = ok(daemon.cli("pull", pinned))
    assert f"Downloaded newer image for {pinned}" in out
    rows = [r.split() for r in ok(daemon.cli("images", "--digests")).splitlines()]
    assert rows[0][:4] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE"]
    assert rows[1][:3] == [f"{host}/pin/bb", "<none>", pushed]  # untagged, pinned
    shown = ok(daemon.cli("images", "--format", "{{.Repository}}@{{.Digest}} {{.Tag}}"))
    assert shown.split() == [pinned, "<none>"]
    assert ok(daemon.cli("run", "--rm", pinned, "echo", "pinned")) == "pinned\n"
    assert json.loads(ok(daemon.cli("image", "inspect", pinned)))[0]["RepoTags"] == []
    ok(daemon.cli("rmi", pinned))
    assert ok(daemon.cli("images", "-q")).strip() == ""


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


def _push_then_forget(daemon, imported: str, ref: str) -> None:
    ok(daemon.cli("tag", imported, ref))
    ok(daemon.cli("push", ref))
    ok(daemon.cli("rmi", ref))
    ok(daemon.cli("rmi", imported))


def test_token_auth(daemon, token_registry, imported):
    host, requests = token_registry
    ref = f"{host}/team/bb:v1"
    ok(daemon.cli("tag", imported, ref))
    p = daemon.cli("push", ref)  # an anonymous token carries no access
    assert p.returncode != 0 and "corral login" in p.stderr, p.stderr
    p = daemon.cli("login", "-u", "alice", "-p", "wrong", host)
    assert p.returncode != 0 and "refused" in p.stderr, p.stderr
    ok(daemon.cli("login", "-u", "alice", "--password-stdin", host, input="s3cret\n"))
    ok(daemon.cli("push", ref))
    ok(daemon.cli("rmi", ref))
    ok(daemon.cli("rmi", imported))
    assert "Pull complete" in ok(daemon.cli("pull", ref))
    assert ok(daemon.cli("run", "--rm", ref, "echo", "with a token")) == "with a token\n"
    asked = [json.loads(line) for line in requests.read_text().splitlines()]
    granted = {s for r in asked if r["user"] == "alice" for s in r.get("scope", [])}
    assert "repository:team/bb:pull,push" in granted or "repository:team/bb:push,pull" in granted
    assert any(s == "repository:team/bb:pull" for s in granted)


def test_basic_auth(daemon, basic_registry, imported):
    host = basic_registry
    ref = f"{host}/team/bb:v1"
    ok(daemon.cli("tag", imported, ref))
    p = daemon.cli("push", ref)
    assert p.returncode != 0 and f"corral login {host}" in p.stderr, p.stderr
    p = daemon.cli("login", "-u", "bob", "-p", "nope", host)
    assert p.returncode != 0 and "refused" in p.stderr, p.stderr
    ok(daemon.cli("login", "-u", "bob", "-p", "hunter2", host))
    ok(daemon.cli("push", ref))
    ok(daemon.cli("rmi", ref))
    ok(daemon.cli("rmi", imported))
    p = daemon.cli("run", "--rm", "--pull", "never", ref, "true")
    assert p.returncode == 125 and "No such image" in p.stderr, p.stderr
    p = daemon.cli("run", "--rm", ref, "echo", "basic")  # pulled as it is missing
    assert p.returncode == 0 and p.stdout == "basic\n", p.stderr
    assert f"Unable to find image '{ref}' locally" in p.stderr and "Pull complete" in p.stderr
    ok(daemon.cli("logout", host))
    ok(daemon.cli("rmi", ref))
    p = daemon.cli("pull", ref)  # the credentials are gone
    assert p.returncode != 0 and f"corral login {host}" in p.stderr, p.stderr


def test_interrupted_download_resumes(daemon, registry, imported, tmp_path):
    """A layer's partial download (what an interrupted pull leaves) is resumed
    with a Range request: the registry serves only the rest."""
    host, data = registry
    ref = f"{host}/resume/bb:v1"
    _push_then_forget(daemon, imported, ref)
    blobs = sorted(
        (data / "docker" / "registry" / "v2" / "blobs").rglob("data"),
        key=lambda p: -p.stat().st_size,
    )
    layer = blobs[0]
    digest = layer.parent.name
    whole = layer.read_bytes()
    downloads = Path(daemon.root) / "images" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    have = len(whole) * 2 // 3
    (downloads / f"{digest}.partial").write_bytes(whole[:have])
    log = tmp_path / "registry.log"
    before = len(log.read_bytes())
    assert "Pull complete" in ok(daemon.cli("pull", ref))
    served = [
        json.loads(line)
        for line in log.read_bytes()[before:].decode().splitlines()
        if line.startswith("{")
    ]
    blob_gets = [
        r
        for r in served
        if r.get("http.request.method") == "GET"
        and digest in r.get("http.request.uri", "")
        and "http.response.written" in r
    ]
    assert blob_gets, served
    assert [r["http.response.written"] for r in blob_gets] == [len(whole) - have]
    assert not any(downloads.iterdir())
    assert ok(daemon.cli("run", "--rm", ref, "echo", "resumed")) == "resumed\n"
    # A finished download no layer kept (its pull stopped) goes at the next start;
    # a partial one stays, for the next pull to resume.
    (downloads / ("a" * 64)).write_bytes(b"finished")
    (downloads / ("b" * 64 + ".partial")).write_bytes(b"half")
    daemon.stop()
    daemon.start()
    assert sorted(p.name for p in downloads.iterdir()) == ["b" * 64 + ".partial"]


def _oci_layout(dest: Path, layer_tar: bytes) -> None:
    """A one-layer OCI image layout, written by hand (for layers no tool makes)."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    layer = put(gzip.compress(layer_tar), "application/vnd.oci.image.layer.v1.tar+gzip")
    config = put(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["true"]},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()],
                },
            }
        ).encode(),
        "application/vnd.oci.image.config.v1+json",
    )
    manifest = put(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [layer],
            }
        ).encode(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def test_malicious_layer_from_a_registry_is_refused_and_leaves_nothing(daemon, registry, tmp_path):
    """The layer is unpacked as it downloads: a refused entry stops both, and
    neither a partial download nor a half-unpacked directory stays."""
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed")
    from tests.integration.test_layers import make_tar

    host, _ = registry
    layout = tmp_path / "evil"
    _oci_layout(layout, make_tar([("ok", "file", {}), ("../escape", "file", {})]))
    p = subprocess.run(
        [
            "skopeo",
            "copy",
            "--dest-tls-verify=false",
            f"oci:{layout}:v1",
            f"docker://{host}/evil/bb:v1",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    p = daemon.cli("pull", f"{host}/evil/bb:v1")
    assert p.returncode != 0 and "climbs out" in p.stderr, p.stderr
    assert ok(daemon.cli("images", "-q")).strip() == ""
    images = Path(daemon.root) / "images"
    for sub in ("downloads", "tmp", "layers"):
        d = images / sub
        assert not d.exists() or not any(d.iterdir()), (sub, list(d.iterdir()))
    assert not (Path(daemon.root).parent / "escape").exists()


def test_an_unreachable_registry_is_named(daemon):
    port = free_port()  # nothing listens there
    p = daemon.cli("pull", f"localhost:{port}/nobody/here:v1")
    assert p.returncode != 0
    assert f'Get "http://localhost:{port}/v2/nobody/here/manifests/v1": ConnectError' in p.stderr
    assert ok(daemon.cli("version", "--format", "{{.Server.Version}}")).strip()  # still serving
