"""Images end to end: archives made by tools we did not write (umoci, skopeo),
run through the daemon; an image in use cannot be removed; 100 containers of
one image cost their writes only."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]
needs_tools = pytest.mark.skipif(
    not (shutil.which("umoci") and shutil.which("skopeo")),
    reason="umoci and skopeo are not installed",
)


def ok(p):
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, rootfs):
    """An OCI layout made by umoci from the busybox rootfs, and a docker-save
    archive made from it by skopeo."""
    if not (shutil.which("umoci") and shutil.which("skopeo")):
        pytest.skip("umoci and skopeo are not installed")
    base = tmp_path_factory.mktemp("layouts")
    run = lambda *a: subprocess.run(a, cwd=base, check=True, capture_output=True)  # noqa: E731
    run("umoci", "init", "--layout", "oci")
    run("umoci", "new", "--image", "oci:app")
    run("umoci", "unpack", "--image", "oci:app", "bundle")
    subprocess.run(["cp", "-a", f"{rootfs}/.", str(base / "bundle" / "rootfs")], check=True)
    (base / "bundle" / "rootfs" / "app.txt").write_text("from the image\n")
    run("umoci", "repack", "--image", "oci:app", "bundle")
    run(
        "umoci",
        "config",
        "--image",
        "oci:app",
        "--config.cmd",
        "sh",
        "--config.cmd=-c",
        "--config.cmd=cat app.txt; echo $GREETING; id -u",
        "--config.env",
        "GREETING=hello-from-config",
        "--config.workingdir",
        "/",
        "--config.user",
        "65534",
        "--config.label",
        "made-by=umoci",
    )
    run("skopeo", "copy", "oci:oci:app", f"docker-archive:{base}/app.tar:app:docker")
    return base


@needs_tools
def test_oci_layout_from_umoci_loads_and_runs(daemon, layouts):
    out = ok(daemon.cli("load", "-i", str(layouts / "oci")))
    assert "oci:app" in out
    out = ok(daemon.cli("run", "--rm", "oci:app"))
    assert out.split() == ["from", "the", "image", "hello-from-config", "65534"]
    # Flags override the image's defaults.
    out = ok(daemon.cli("run", "--rm", "-e", "GREETING=flag", "-u", "0", "oci:app"))
    assert out.split()[-2:] == ["flag", "0"]
    out = ok(daemon.cli("run", "--rm", "oci:app", "echo", "replaced"))
    assert out == "replaced\n"
    info = json.loads(ok(daemon.cli("image", "inspect", "oci:app")))[0]
    assert info["Config"]["Labels"] == {"made-by": "umoci"} and info["Os"] == "linux"


@needs_tools
def test_docker_save_archive_from_skopeo_loads_and_runs(daemon, layouts):
    out = ok(daemon.cli("load", "-i", str(layouts / "app.tar")))
    assert "app:docker" in out
    assert "from the image" in ok(daemon.cli("run", "--rm", "app:docker"))


@needs_tools
def test_tampered_layout_is_refused(daemon, layouts, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(layouts / "oci", bad)
    index = json.loads((bad / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((bad / "blobs" / "sha256" / manifest_digest).read_text())
    layer = bad / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    p = daemon.cli("load", "-i", str(bad))
    assert p.returncode != 0
    assert "digest mismatch" in p.stderr or "unpacking" in p.stderr
    assert ok(daemon.cli("images", "-q")).strip() == ""


def test_import_run_and_rmi_in_use(daemon, rootfs, tmp_path):
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    image_id = ok(daemon.cli("import", str(tar), "bb:imported")).strip()
    assert image_id.startswith("sha256:")
    ok(daemon.cli("create", "--name", "user", "bb:imported", "true"))
    # As Docker: Config.Image is the name asked for, Image the image's id.
    shown = ok(daemon.cli("inspect", "-f", "{{.Config.Image}} {{.Image}}", "user")).split()
    assert shown == ["bb:imported", image_id]
    p = daemon.cli("rmi", "bb:imported")
    assert p.returncode == 1 and "in use" in p.stderr
    ok(daemon.cli("tag", "bb:imported", "bb:other"))
    assert "Untagged: bb:other" in ok(daemon.cli("rmi", "bb:other"))  # one of two tags
    ok(daemon.cli("rm", "user"))
    out = ok(daemon.cli("rmi", "bb:imported"))
    assert "Deleted" in out
    assert ok(daemon.cli("images", "-q")).strip() == ""


def test_hundred_containers_cost_only_their_writes(daemon, rootfs, tmp_path):
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    ok(daemon.cli("import", str(tar), "bb:many"))
    from protocols.lite import api

    c = daemon.client()
    ids = [
        c.call(api.Create(config=api.ContainerConfig(image="bb:many", cmd=["true"]))).id
        for _ in range(100)
    ]
    containers = Path(daemon.root) / "containers"
    used = sum(
        f.stat().st_size for i in ids for f in (containers / i / "upper").rglob("*") if f.is_file()
    )
    assert used == 0  # nothing copied: the layer is shared
    layers = list((Path(daemon.root) / "images" / "layers").iterdir())
    assert len(layers) == 1
    for i in ids:
        c.call(api.Remove(id=i))


@needs_tools
def test_zstd_layers_load_and_run(daemon, layouts, tmp_path):
    """skopeo recompresses the layout's layers with zstd (tar+zstd media type)."""
    zst = tmp_path / "zst"
    p = subprocess.run(
        [
            "skopeo",
            "copy",
            "--dest-compress-format",
            "zstd",
            f"oci:{layouts}/oci:app",
            f"oci:{zst}:z",
        ],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        pytest.skip(f"this skopeo cannot write zstd: {p.stderr.strip()}")
    index = json.loads((zst / "index.json").read_text())
    manifest = zst / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
    types = {layer["mediaType"] for layer in json.loads(manifest.read_text())["layers"]}
    assert types == {"application/vnd.oci.image.layer.v1.tar+zstd"}, types
    ok(daemon.cli("load", "-i", str(zst)))
    assert ok(daemon.cli("run", "--rm", "zst:z", "cat", "/app.txt")) == "from the image\n"


def test_commit_keeps_the_changes_and_the_configuration(daemon, rootfs, tmp_path):
    """A file added, one removed (a whiteout), a directory replaced (opaque), and
    the container's command and environment become the new image's defaults."""
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    ok(daemon.cli("import", str(tar), "base:1"))
    script = (
        "echo new > /new.txt; rm /bin/true; rm -rf /usr && mkdir /usr && echo x > /usr/only; "
        "sleep 60"
    )
    cid = ok(daemon.cli("run", "-d", "-e", "MODE=committed", "base:1", "sh", "-c", script)).strip()
    wait = daemon.cli("exec", cid, "sh", "-c", "while [ ! -e /usr/only ]; do sleep 0.05; done")
    assert wait.returncode == 0, wait.stderr
    image_id = ok(daemon.cli("commit", "-m", "a test", cid, "derived:1")).strip()
    assert image_id.startswith("sha256:")
    # history: newest first, Docker's columns; the base's entry is <missing>.
    head, newest, older = ok(daemon.cli("history", "derived:1")).splitlines()
    assert head.split() == ["IMAGE", "CREATED", "CREATED", "BY", "COMMENT"]
    assert newest.startswith(image_id.removeprefix("sha256:")[:12])
    assert "corral commit" in newest and newest.rstrip().endswith("a test")
    assert older.startswith("<missing>") and "corral import" in older
    assert ok(daemon.cli("history", "-q", "derived:1")).split() == [image_id[7:19]]
    # --change: Dockerfile instructions over the container's configuration.
    changes = ['CMD ["sh", "-c", "echo $GREETING"]', "ENV GREETING=changed", "WORKDIR /usr"]
    flags = [x for ch in changes for x in ("-c", ch)]
    ok(daemon.cli("commit", *flags, cid, "changed:1"))
    assert ok(daemon.cli("run", "--rm", "changed:1")) == "changed\n"
    assert (
        ok(daemon.cli("image", "inspect", "-f", "{{.Config.WorkingDir}}", "changed:1")) == "/usr\n"
    )
    p = daemon.cli("commit", "-c", "RUN make", cid)
    assert p.returncode != 0 and "RUN" in p.stderr, p.stderr
    ok(daemon.cli("rmi", "changed:1"))
    daemon.cli("rm", "-f", cid)
    out = ok(
        daemon.cli(
            "run",
            "--rm",
            "derived:1",
            "sh",
            "-c",
            "cat /new.txt; ls /bin/true 2>&1 | grep -c 'No such'; ls /usr; echo $MODE",
        )
    )
    assert out.split() == ["new", "1", "only", "committed"], out
    # the placeholders of its network files are not part of the image
    probe = ["sh", "-c", "test -e /etc/hosts && echo has-hosts || echo no-hosts"]
    derived = ok(daemon.cli("run", "--rm", "--network", "none", "derived:1", *probe))
    assert derived == ok(daemon.cli("run", "--rm", "--network", "none", "base:1", *probe))
    info = json.loads(ok(daemon.cli("image", "inspect", "derived:1")))[0]
    assert info["Config"]["Cmd"] == ["sh", "-c", script]
    assert info["Comment"] == "a test" and info["History"][-1]["comment"] == "a test"
    # the base image is untouched
    assert ok(daemon.cli("run", "--rm", "base:1", "sh", "-c", "ls /usr | wc -l")).strip() != "1"


def test_system_df_counts_shared_layers_once(daemon, rootfs, tmp_path):
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    ok(daemon.cli("import", str(tar), "df:one"))
    ok(daemon.cli("volume", "create", "dfvol"))
    ok(daemon.cli("create", "--name", "df-idle", "df:one", "true"))
    script = "head -c 5000 /dev/zero > /big; echo x > /data/x; sleep 60"
    ok(
        daemon.cli(
            "run", "-d", "--name", "df-busy", "-v", "dfvol:/data", "df:one", "sh", "-c", script
        )
    )
    for _ in range(100):
        usage = json.loads(ok(daemon.cli("system", "df", "--format", "json")))
        if usage["Containers"]["Size"] >= 5000 and usage["Volumes"]["Size"] >= 2:
            break
    base = usage["Images"]["Size"]
    assert (usage["Images"]["Total"], usage["Images"]["Active"]) == (1, 1)
    assert base > tar.stat().st_size  # the imported tar kept, and its files unpacked
    # An image on top of df:one's layer (the container's 5000-byte file): the
    # shared layer counts once, and only the new one could be reclaimed.
    ok(daemon.cli("commit", "df-busy", "df:two"))
    usage = json.loads(ok(daemon.cli("system", "df", "--format", "json")))
    images, containers, volumes = usage["Images"], usage["Containers"], usage["Volumes"]
    assert (images["Total"], images["Active"]) == (2, 1)
    # The new layer: its 5000-byte file unpacked, and its blob kept (the layer's
    # tar: the file again, its header, tar's padding).
    assert images["Size"] == base + images["Reclaimable"]
    assert 5000 + 5000 + 512 <= images["Reclaimable"] < 5000 + 30000
    assert (containers["Total"], containers["Active"]) == (2, 1)
    assert containers["Size"] >= 5000 and containers["Reclaimable"] == 0
    assert (volumes["Total"], volumes["Active"], volumes["Reclaimable"]) == (1, 1, 0)
    q = ["images", "-q"]
    one = ok(daemon.cli(*q, "-f", "reference=df:one")).split()
    both = ok(daemon.cli(*q, "-f", "reference=df")).split()
    assert len(one) == 1 and len(both) == 2 and one[0] in both
    assert ok(daemon.cli(*q, "-f", "dangling=true")).split() == []
    p = daemon.cli("images", "-f", "colour=red")
    assert p.returncode != 0 and "invalid filter" in p.stderr
    ancestors = ok(daemon.cli("ps", "-a", "--filter", "ancestor=df:one", "--format", "{{.Names}}"))
    assert set(ancestors.split()) == {"df-busy", "df-idle"}
    table = ok(daemon.cli("system", "df")).splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert table[1].split()[:3] == ["Images", "2", "1"]
    sizes = ok(daemon.cli("ps", "-s", "--filter", "name=df-busy")).splitlines()
    assert sizes[0].split()[-1] == "SIZE" and "df:one" in sizes[1], sizes
    assert "(virtual" in sizes[1] and sizes[1].split()[-3].endswith("kB"), sizes
    untagged = ok(daemon.cli("commit", "df-idle")).strip()  # no name: a dangling image
    dangling = ok(daemon.cli(*q, "-f", "dangling=true")).split()
    assert len(dangling) == 1 and untagged.removeprefix("sha256:").startswith(dangling[0])
    assert dangling[0] not in ok(daemon.cli(*q, "-f", "dangling=false")).split()
    ok(daemon.cli("rm", "-f", "df-busy", "df-idle"))
    ok(daemon.cli("volume", "rm", "dfvol"))


def test_save_and_load_through_stdout_and_stdin(daemon, rootfs, tmp_path):
    """docker save IMAGE > x.tar, docker load < x.tar; the archive also reads
    with skopeo (a tool we did not write)."""
    import sys

    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    image_id = ok(daemon.cli("import", str(tar), "rt:1")).strip()
    cli = [sys.executable, "-m", "supervisor.cli"]
    saved = tmp_path / "saved.tar"
    with open(saved, "wb") as out:
        p = subprocess.run(
            [*cli, "save", "rt:1"], env=daemon.env, stdout=out, stderr=subprocess.PIPE
        )
    assert p.returncode == 0, p.stderr
    ok(daemon.cli("save", "-o", str(tmp_path / "by-path.tar"), "rt:1"))
    assert saved.stat().st_size > 100_000
    if shutil.which("skopeo"):
        info = subprocess.run(
            ["skopeo", "inspect", f"docker-archive:{saved}"], capture_output=True, text=True
        )
        assert info.returncode == 0 and '"Layers"' in info.stdout, info.stderr
    ok(daemon.cli("rmi", "rt:1"))
    with open(saved, "rb") as inp:
        p = subprocess.run(
            [*cli, "load"], env=daemon.env, stdin=inp, capture_output=True, text=True
        )
    assert p.returncode == 0 and "Loaded image: rt:1" in p.stdout, p.stdout + p.stderr
    # The same image: the layer's kept blob is the tar the config names.
    assert ok(daemon.cli("image", "inspect", "-f", "{{.Id}}", "rt:1")).strip() == image_id
    assert ok(daemon.cli("run", "--rm", "rt:1", "echo", "loaded")) == "loaded\n"
    arch = ok(daemon.cli("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "rt:1")).strip()
    assert arch.startswith("linux/"), arch
    ok(daemon.cli("rmi", "rt:1"))
    assert not list((daemon.root / "tmp").iterdir())  # the spooled archives are gone


def test_image_prune_reports_as_docker_does(daemon, rootfs, tmp_path):
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    kept = ok(daemon.cli("import", str(tar), "keep")).strip()
    ok(daemon.cli("tag", "keep", "keep:two"))
    assert ok(daemon.cli("rmi", "keep")) == "Untagged: keep:latest\n"  # one tag of two
    (tmp_path / "extra").write_text("x")
    subprocess.run(["tar", "-rf", str(tar), "-C", str(tmp_path), "extra"], check=True)
    dangling = ok(daemon.cli("import", str(tar))).strip()  # no name: dangling
    out = ok(daemon.cli("image", "prune", "-f"))
    assert out.startswith("Deleted Images:\n") and f"deleted: {dangling}" in out
    assert out.rstrip().splitlines()[-1].startswith("Total reclaimed space: ")
    assert not out.rstrip().endswith(" 0B")
    assert ok(daemon.cli("images", "-q")).split() == [kept[7:19]]
    out = ok(daemon.cli("image", "prune", "-a", "-f"))
    assert "untagged: keep:two" in out and f"deleted: {kept}" in out
    assert ok(daemon.cli("image", "prune", "-f")) == "Total reclaimed space: 0B\n"


def test_a_refused_load_leaves_no_layer(daemon, rootfs, tmp_path):
    """An archive whose config names other diff ids than its layers is refused,
    and the layers unpacked before the refusal go (none is an image's)."""
    import tarfile

    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    ok(daemon.cli("import", str(tar), "src:1"))
    saved = tmp_path / "saved.tar"
    ok(daemon.cli("save", "-o", str(saved), "src:1"))
    ok(daemon.cli("rmi", "src:1"))
    layers = Path(daemon.root) / "images" / "layers"
    assert not any(layers.iterdir())
    bad = tmp_path / "bad.tar"
    with tarfile.open(saved) as src, tarfile.open(bad, "w") as dst:
        manifest = json.loads(src.extractfile("manifest.json").read())
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name == manifest[0]["Config"]:
                cfg = json.loads(data)
                cfg["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
                data = json.dumps(cfg).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    p = daemon.cli("load", "-i", str(bad))
    assert p.returncode != 0 and "do not match the config's diff ids" in p.stderr, p.stderr
    assert not any(layers.iterdir())
    assert ok(daemon.cli("images", "-q")).strip() == ""


def test_the_daemon_serves_while_an_image_is_imported(daemon, rootfs, tmp_path):
    """An import reads its archive in a worker thread: while it waits on a FIFO
    nobody writes yet, the daemon answers others (before, it stalled whole)."""
    import os
    import sys

    fifo = tmp_path / "rootfs.fifo"
    os.mkfifo(fifo)
    cli = [sys.executable, "-m", "supervisor.cli", "import", str(fifo), "slow:1"]
    importing = subprocess.Popen(cli, env=daemon.env, stdout=subprocess.PIPE, text=True)
    try:
        p = daemon.cli("run", "--rm", "--rootfs", str(rootfs), "echo", "served", timeout=30)
        assert p.returncode == 0 and p.stdout == "served\n", p.stderr
        assert importing.poll() is None  # still waiting for its archive
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(fifo), "."], check=True)
        out, _ = importing.communicate(timeout=60)
        assert importing.returncode == 0 and out.startswith("sha256:")
    finally:
        if importing.poll() is None:
            with open(fifo, "wb"):  # let the daemon's open() return, then its read end
                pass
            importing.kill()
            importing.wait()
    assert ok(daemon.cli("run", "--rm", "slow:1", "echo", "imported")) == "imported\n"


def test_images_are_listed_newest_first(daemon, rootfs, tmp_path):
    import time

    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    ok(daemon.cli("import", str(tar), "older"))
    time.sleep(1.1)  # `created` has whole seconds
    (tmp_path / "f").write_text("x")
    subprocess.run(["tar", "-rf", str(tar), "-C", str(tmp_path), "f"], check=True)
    ok(daemon.cli("import", str(tar), "newer"))
    assert ok(daemon.cli("images", "--format", "{{.Repository}}")).split() == ["newer", "older"]
