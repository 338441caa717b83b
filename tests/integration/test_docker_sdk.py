"""docker-py (the `docker` package) and Debian's docker-compose 1.29 against
the daemon's Docker API: tools that speak it, unchanged."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import time

import pytest

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]

docker_py = pytest.importorskip("docker")


@pytest.fixture
def client(daemon, rootfs, tmp_path):
    tar = tmp_path / "busybox.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    assert daemon.cli("import", str(tar), "busybox:latest").returncode == 0
    c = docker_py.DockerClient(base_url=f"unix://{daemon.run_root / 'docker.sock'}", version="auto")
    try:
        yield c
    finally:
        c.close()


def test_containers_from_python(client):
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.50"
    out = client.containers.run("busybox", ["sh", "-c", "echo hi; echo err >&2"], remove=True)
    assert out == b"hi\n"  # stdout only, as docker-py reads it
    c = client.containers.run(
        "busybox", ["sh", "-c", "echo started; sleep 100"], detach=True, name="pyc",
        labels={"from": "python"}, environment={"A": "1"}, mem_limit="64m",
    )  # fmt: skip
    c.reload()
    assert c.status == "running" and c.labels == {"from": "python"}
    assert c.attrs["HostConfig"]["Memory"] == 64 << 20
    code, output = c.exec_run(["sh", "-c", "echo $A; exit 3"])
    assert (code, output) == (3, b"1\n")
    code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (out, err) == (b"o\n", b"e\n")
    for _ in range(50):
        if c.logs() == b"started\n":
            break
        time.sleep(0.1)
    assert c.logs() == b"started\n"
    assert [x.name for x in client.containers.list(filters={"label": "from=python"})] == ["pyc"]
    stats = c.stats(stream=False)
    assert stats["pids_stats"]["current"] == 1 and stats["memory_stats"]["usage"] > 0
    # put_archive / get_archive: docker cp's endpoints.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("note")
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    assert c.put_archive("/tmp", buf.getvalue())
    stream, stat = c.get_archive("/tmp/note")
    assert stat["name"] == "note" and stat["size"] == 5
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert t.extractfile("note").read() == b"hello"
    c.kill()
    assert c.wait()["StatusCode"] == 137
    c.remove()
    with pytest.raises(docker_py.errors.NotFound):
        client.containers.get("pyc")


def test_images_networks_volumes_events_from_python(client):
    since = int(time.time()) - 1
    img = client.images.get("busybox")
    assert "busybox:latest" in img.tags
    img.tag("pytag", "1")
    assert "pytag:1" in client.images.get("pytag:1").tags
    client.images.remove("pytag:1")
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as t:
        df = b"FROM busybox\nRUN echo py > /py\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        t.addfile(info, io.BytesIO(df))
    ctx.seek(0)
    built, _ = client.images.build(fileobj=ctx, custom_context=True, tag="pybuilt:1")
    assert "pybuilt:1" in built.tags
    assert client.containers.run("pybuilt:1", ["cat", "/py"], remove=True) == b"py\n"
    net = client.networks.create("pynet", labels={"x": "y"})
    vol = client.volumes.create("pyvol")
    c = client.containers.run(
        "busybox", ["sleep", "100"], detach=True, network="pynet", volumes={"pyvol": {"bind": "/v"}}
    )
    net.reload()
    assert [x.id for x in net.containers] == [c.id]
    assert client.volumes.get("pyvol").attrs["Mountpoint"].endswith("_data")
    c.remove(force=True)
    net.remove()
    vol.remove()
    until = int(time.time()) + 2
    actions = [
        (e["Type"], e["Action"]) for e in client.events(since=since, until=until, decode=True)
    ]
    assert ("container", "create") in actions and ("network", "create") in actions
    assert ("volume", "create") in actions and ("image", "tag") in actions


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose is not installed")
def test_docker_compose_v1_up_and_down(daemon, client, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "docker-compose.yml").write_text(
        'version: "3.7"\n'
        "services:\n"
        "  db:\n"
        "    image: busybox\n"
        "    command: sh -c 'echo db > /tmp/i; httpd -f -p 80 -h /tmp'\n"
        "  web:\n"
        "    image: busybox\n"
        "    command: sh -c 'until wget -q -O - http://db/i; do sleep 0.2; done; sleep 100'\n"
        "    depends_on: [db]\n"
        "    volumes: [data:/data]\n"
        "volumes:\n"
        "  data:\n"
    )
    env = {"DOCKER_HOST": f"unix://{daemon.run_root / 'docker.sock'}", "PATH": "/usr/bin:/bin"}

    def compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker-compose", "-p", "cmp1", *args], cwd=proj, env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    p = compose("up", "-d")
    assert p.returncode == 0, p.stderr
    try:
        names = sorted(c.name for c in client.containers.list())
        assert names == ["cmp1_db_1", "cmp1_web_1"]
        assert "cmp1_web_1" in daemon.cli("ps").stdout  # the same fleet
        for _ in range(100):
            if "db" in compose("logs", "web").stdout:
                break
            time.sleep(0.1)
        assert "db" in compose("logs", "web").stdout  # service names resolve
    finally:
        p = compose("down", "-v")
    assert p.returncode == 0, p.stderr
    assert client.containers.list(all=True) == []
    assert "cmp1_data" not in [v.name for v in client.volumes.list()]
