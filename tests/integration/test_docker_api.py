"""The Docker Engine API, driven by the docker CLI on the PATH (28.x) against
the daemon's docker.sock, and compared with what the same commands print
against Debian's dockerd (started by the test where it can run)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_registry import serve_registry
from tests.probe import needs_busybox, needs_root

pytestmark = [
    needs_root,
    needs_busybox,
    pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed"),
]


class Docker:
    """The docker CLI pointed at one daemon's socket."""

    def __init__(self, host: str, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DOCKER_HOST": host,
            "DOCKER_CONFIG": str(home),  # no credentials or contexts of the host's
            "DOCKER_BUILDKIT": "0",
        }
        self.env.pop("DOCKER_CONTEXT", None)

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60):
        return subprocess.run(
            ["docker", *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )

    def ok(self, *args: str, **kw) -> str:
        p = self(*args, **kw)
        assert p.returncode == 0, f"docker {' '.join(args)}: {p.stderr}"
        return p.stdout


@pytest.fixture
def docker(daemon, rootfs, tmp_path) -> Docker:
    tar = tmp_path / "busybox.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    assert daemon.cli("import", str(tar), "busybox:latest").returncode == 0
    return Docker(f"unix://{daemon.run_root / 'docker.sock'}", tmp_path / "docker-config")


def test_version_negotiation_and_ping(docker, daemon):
    assert docker.ok("version", "--format", "{{.Server.APIVersion}}").strip() == "1.50"
    assert docker.ok("version", "--format", "{{.Server.MinAPIVersion}}").strip() == "1.41"
    old = Docker(docker.env["DOCKER_HOST"], daemon.root.parent / "old")
    old.env["DOCKER_API_VERSION"] = "1.40"
    p = old("ps")
    assert p.returncode != 0 and "1.40 is too old" in p.stderr
    old.env["DOCKER_API_VERSION"] = "1.41"
    assert old("ps").returncode == 0  # the oldest served
    status, headers, body = raw(daemon, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and body == b"OK"
    assert headers["api-version"] == "1.50" and headers["ostype"] == "linux"


def test_run_rm_streams_and_exit_status(docker, daemon):
    p = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    assert docker.ok("ps", "-aq") == ""  # --rm: removed
    p = docker("run", "--rm", "busybox", "no-such-command")
    assert p.returncode == 127
    p = docker("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input="piped in\n")
    assert (p.returncode, p.stdout) == (0, "PIPED IN\n")


def _pty_session(env: dict, argv: list[str], lines: list[bytes]) -> tuple[int, bytes]:
    """Run argv on a pseudo-terminal, type `lines`, return (status, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    out = b""
    try:
        for line in lines:
            out += _read_for(fd, 5.0, lambda o: o.rstrip().endswith(b"#"))
            os.write(fd, line)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def _read_for(fd: int, seconds: float, done) -> bytes:
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not done(got):
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                got += os.read(fd, 4096)
            except OSError:
                break
    return got


def test_run_it_and_exec_it_through_a_terminal(docker):
    code, out = _pty_session(
        docker.env,
        ["docker", "run", "-it", "--rm", "busybox", "sh"],
        [b"echo in-tty $((6*7)); tty\r", b"exit 5\r"],
    )
    assert code == 5, out
    assert b"in-tty 42" in out and b"/dev/pts/0" in out
    docker.ok("run", "-d", "--name", "it", "busybox", "sleep", "100")
    code, out = _pty_session(
        docker.env, ["docker", "exec", "-it", "it", "sh"], [b"echo $((2+3))x\r", b"exit 2\r"]
    )
    assert code == 2 and b"5x" in out, out


def test_exec_logs_follow_and_cp(docker, tmp_path):
    docker.ok("run", "-d", "--name", "w1", "busybox", "sh", "-c", "echo first; sleep 100")
    assert docker.ok("exec", "w1", "hostname").strip() == docker.ok("ps", "-q").strip()
    assert docker("exec", "w1", "sh", "-c", "exit 4").returncode == 4
    assert docker.ok("exec", "-i", "w1", "cat", input="to exec\n") == "to exec\n"
    assert docker.ok("exec", "-e", "X=1", "-w", "/etc", "w1", "sh", "-c", "echo $X $PWD") == (
        "1 /etc\n"
    )
    assert docker.ok("logs", "w1") == "first\n"
    p = docker("logs", "--timestamps", "w1")
    assert p.stdout.endswith("Z first\n") and p.stdout[:4].isdigit()
    # logs -f ends when the container does.
    docker.ok("run", "-d", "--name", "f1", "busybox", "sh", "-c", "echo a; sleep 1; echo b >&2")
    p = docker("logs", "-f", "f1")
    assert (p.stdout, p.stderr) == ("a\n", "b\n")
    assert docker.ok("wait", "f1").strip() == "0"
    # cp both ways, a directory and a file.
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("copied in\n")
    docker.ok("cp", str(src), "w1:/tmp/")
    assert docker.ok("exec", "w1", "cat", "/tmp/src/sub/f") == "copied in\n"
    docker.ok("cp", "w1:/etc/hostname", str(tmp_path / "h"))
    assert (tmp_path / "h").read_text().strip() == docker.ok("exec", "w1", "hostname").strip()
    docker.ok("cp", "w1:/tmp/src", str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "f").read_text() == "copied in\n"
    p = docker("cp", "w1:/no/such", str(tmp_path / "x"))
    assert p.returncode == 1 and "Could not find the file /no/such" in p.stderr
    assert "A /tmp/src" in docker.ok("diff", "w1")
    assert "sleep 100" in docker.ok("top", "w1")


def test_one_fleet_with_corral(docker, daemon):
    """A container made by docker shows in corral ps and the reverse; an event
    of one is seen by the other's subscribers."""
    docker.ok("run", "-d", "--name", "from-docker", "--label", "k=v", "busybox", "sleep", "100")
    assert (
        daemon.cli("run", "-d", "--name", "from-corral", "busybox", "sleep", "100").returncode == 0
    )
    assert "from-docker" in daemon.cli("ps").stdout
    names = docker.ok("ps", "--format", "{{.Names}} {{.Image}} {{.State}}").splitlines()
    assert sorted(names) == ["from-corral busybox running", "from-docker busybox running"]
    assert docker.ok("ps", "--filter", "label=k=v", "--format", "{{.Names}}") == "from-docker\n"
    assert docker.ok("ps", "-a", "--filter", "name=corral", "-q") != ""
    out = docker.ok(
        "inspect", "-f", "{{.State.Running}} {{.Config.Labels.k}} {{.Name}}", "from-docker"
    )
    assert out == "true v /from-docker\n"
    docker.ok("stop", "-t", "1", "from-corral")
    until = str(int(time.time()) + 2)  # the CLI sends whole seconds: the one under way too
    events = docker.ok(
        "events", "--since", "1m", "--until", until, "--filter", "container=from-corral",
        "--format", "{{.Action}}",
    ).split()  # fmt: skip
    assert events[:2] == ["create", "start"] and "die" in events
    assert any(e["action"] == "start" for e in daemon.events("container=from-docker"))
    stats = docker.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "from-docker")
    assert stats == "from-docker 1\n"
    docker.ok("rename", "from-docker", "renamed")
    docker.ok("pause", "renamed")
    assert docker.ok("inspect", "-f", "{{.State.Status}}", "renamed") == "paused\n"
    docker.ok("unpause", "renamed")
    docker.ok("update", "--memory", "64m", "--memory-swap", "128m", "renamed")
    assert docker.ok("inspect", "-f", "{{.HostConfig.Memory}}", "renamed") == f"{64 << 20}\n"
    docker.ok("kill", "renamed")
    assert docker.ok("wait", "renamed").strip() == "137"
    gone = docker.ok("inspect", "-f", "{{.Id}}", "renamed").strip()
    assert gone in docker.ok("container", "prune", "-f").split()
    p = docker("rm", "no-such")
    assert p.returncode == 1 and "No such container: no-such" in p.stderr


def test_networks_volumes_and_system(docker, daemon):
    docker.ok("network", "create", "--subnet", "10.201.0.0/24", "--label", "a=b", "appnet")
    docker.ok("volume", "create", "--label", "c=d", "appvol")
    script = "echo kept > /data/f; echo db > /tmp/i; httpd -f -p 80 -h /tmp"
    docker.ok(
        "run", "-d", "--name", "db", "--network", "appnet", "-v", "appvol:/data",
        "busybox", "sh", "-c", script,
    )  # fmt: skip
    out = docker.ok(
        "run", "--rm", "--network", "appnet", "busybox", "wget", "-q", "-O", "-", "http://db/i"
    )
    assert out == "db\n"  # by name, on the user network
    assert (
        docker.ok("run", "--rm", "-v", "appvol:/data:ro", "busybox", "cat", "/data/f") == "kept\n"
    )
    net = json.loads(docker.ok("network", "inspect", "appnet"))[0]
    assert net["IPAM"]["Config"][0]["Subnet"] == "10.201.0.0/24" and net["Labels"] == {"a": "b"}
    assert [c["Name"] for c in net["Containers"].values()] == ["db"]
    assert "appnet" in docker.ok("network", "ls", "--format", "{{.Name}}").split()
    docker.ok("run", "-d", "--name", "other", "busybox", "sleep", "100")
    docker.ok("network", "connect", "--alias", "o2", "appnet", "other")
    assert docker.ok("exec", "db", "ping", "-c", "1", "-W", "2", "o2").count("1 packets received")
    docker.ok("network", "disconnect", "appnet", "other")
    vol = json.loads(docker.ok("volume", "inspect", "appvol"))[0]
    assert vol["Labels"] == {"c": "d"} and vol["Mountpoint"].endswith("/_data")
    assert docker.ok("volume", "ls", "-q").split() == ["appvol"]
    df = docker.ok("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
    assert "Images 1 1" in df and "Containers 2 2" in df and "Local Volumes 1 1" in df
    info = json.loads(docker.ok("info", "--format", "{{json .}}"))
    assert info["ContainersRunning"] == 2 and info["Driver"] == "overlay2"
    docker.ok("rm", "-f", "db", "other")
    assert docker("network", "rm", "appnet").returncode == 0
    assert docker.ok("volume", "rm", "appvol") == "appvol\n"
    assert "No such volume" in docker("volume", "inspect", "appvol").stderr


def test_build_images_save_load(docker, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nCOPY a.txt /a.txt\nRUN echo built >> /a.txt\nCMD cat /a.txt\n"
    )
    (ctx / "a.txt").write_text("from context\n")
    (ctx / ".dockerignore").write_text("secret\n")
    (ctx / "secret").write_text("not sent\n")
    p = docker("build", "-t", "mine:1", str(ctx))
    assert p.returncode == 0, p.stderr
    assert "Step 1/4 : FROM busybox" in p.stdout and "Successfully tagged mine:1" in p.stdout
    assert docker.ok("run", "--rm", "mine:1") == "from context\nbuilt\n"
    again = docker.ok("build", "-t", "mine:1", str(ctx))
    assert "Using cache" in again
    history = docker.ok("history", "--format", "{{.CreatedBy}}", "mine:1").splitlines()
    assert "echo built >> /a.txt" in history[1]
    docker.ok("tag", "mine:1", "mine:2")
    assert sorted(docker.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()) == [
        "busybox:latest", "mine:1", "mine:2",
    ]  # fmt: skip
    docker.ok("save", "-o", str(tmp_path / "m.tar"), "mine:1")
    assert "Untagged: mine:2" in docker.ok("rmi", "mine:2")
    out = docker.ok("rmi", "mine:1")
    assert "Untagged: mine:1" in out and "Deleted: sha256:" in out
    assert "Loaded image: mine:1" in docker.ok("load", "-i", str(tmp_path / "m.tar"))
    assert docker.ok("run", "--rm", "mine:1") == "from context\nbuilt\n"
    docker.ok("run", "--name", "c1", "busybox", "sh", "-c", "echo changed > /f")
    docker.ok("commit", "-m", "a change", "c1", "committed:1")
    assert docker.ok("run", "--rm", "committed:1", "cat", "/f") == "changed\n"
    p = docker("build", "-f", "Nope", str(ctx))
    assert p.returncode == 1 and "Nope" in p.stderr
    p = docker("search", "busybox")
    assert p.returncode == 1 and "not supported" in p.stderr


@pytest.mark.skipif(not shutil.which("docker-registry"), reason="docker-registry is not installed")
def test_pull_and_push_with_a_local_registry(docker, tmp_path):
    with serve_registry(tmp_path) as (host, _):
        docker.ok("tag", "busybox", f"{host}/bb:1")
        out = docker.ok("push", f"{host}/bb:1")
        assert "digest: sha256:" in out
        docker.ok("rmi", f"{host}/bb:1")
        out = docker.ok("pull", f"{host}/bb:1")
        assert f"Status: Image is up to date for {host}/bb:1" in out or "Downloaded newer" in out
        assert docker.ok("run", "--rm", f"{host}/bb:1", "echo", "pulled") == "pulled\n"
        p = docker("pull", f"{host}/nothing:here")
        assert p.returncode == 1 and "nothing" in p.stderr


def raw(daemon, request: bytes, *, read_timeout: float = 30) -> tuple[int, dict, bytes]:
    """One request written raw to docker.sock; (status, headers, body)."""
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(read_timeout)
        s.connect(str(daemon.run_root / "docker.sock"))
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        want = int(headers.get("content-length", "0"))
        while len(body) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body


def test_bad_http_gets_an_answer_and_the_daemon_serves_on(docker, daemon):
    status, _, body = raw(daemon, b"GARBAGE\r\n\r\n")
    assert status == 400 and "malformed HTTP request" in json.loads(body)["message"]
    status, _, body = raw(daemon, b"GET /v1.50/no/such/thing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404 and json.loads(body) == {"message": "page not found: GET /no/such/thing"}
    big = b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (100 * 1024) + b"\r\n\r\n"
    status, _, _ = raw(daemon, big)
    assert status == 431
    bad_json = b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{nope"
    status, _, body = raw(daemon, bad_json)
    assert status == 400 and "invalid JSON body" in json.loads(body)["message"]
    status, _, body = raw(
        daemon,
        b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 47\r\n\r\n{"Image":"busybox","HostConfig":{"CpuQuota":5}}',
    )
    assert status == 400 and "HostConfig.CpuQuota" in json.loads(body)["message"]
    assert docker.ok("ps", "-q") == ""  # still serving


def test_a_body_that_never_arrives_times_out_alone(daemon, tmp_path, rootfs):
    import socket

    daemon.stop()
    daemon.extra_args = ["--handshake-timeout", "1s"]
    daemon.start()
    with socket.socket(socket.AF_UNIX) as stalled:
        stalled.connect(str(daemon.run_root / "docker.sock"))
        stalled.sendall(
            b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        )
        # Meanwhile others are served.
        status, _, _ = raw(daemon, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
        stalled.settimeout(30)
        answer = b""
        while chunk := stalled.recv(65536):  # the daemon closes after its answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive whole" in answer


def _daemon_fds(daemon) -> int:
    return len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))


def test_clients_that_leave_mid_stream_leak_nothing(docker, daemon):
    import socket

    docker.ok("run", "-d", "--name", "s1", "busybox", "sleep", "100")
    docker.ok("ps")
    before = _daemon_fds(daemon)
    streams = [
        b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /containers/s1/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /containers/s1/stats HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /containers/s1/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"POST /containers/s1/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\n"
        b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
    ]
    for _ in range(5):
        socks = []
        for req in streams:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(daemon.run_root / "docker.sock"))
            s.sendall(req)
            s.settimeout(10)
            assert s.recv(12).startswith(b"HTTP/1.1 "), req
            socks.append(s)
        for s in socks:
            s.close()
    deadline = time.monotonic() + 20
    while _daemon_fds(daemon) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _daemon_fds(daemon) <= before
    assert docker.ok("ps", "--format", "{{.Names}}") == "s1\n"


def test_tcp_needs_tls_with_client_certificates(daemon, tmp_path):
    p = daemon.cli("daemon", "--root", str(tmp_path / "r"), "-H", "tcp://127.0.0.1:2399")
    assert p.returncode == 2 and "needs --tlsverify" in p.stderr


@pytest.fixture
def certs(tmp_path):
    pytest.importorskip("cryptography")
    from tests.integration.tls_certs import make_certs

    return make_certs(tmp_path / "certs")


def test_tls_tcp_with_client_certificates(daemon, certs, docker):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    daemon.stop()
    daemon.extra_args = [
        "-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
        "--tlscert", str(certs / "server-cert.pem"), "--tlskey", str(certs / "server-key.pem"),
    ]  # fmt: skip
    daemon.start()
    tls = Docker(f"tcp://127.0.0.1:{port}", certs / "cfg")
    tls.env.update(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(certs / "client"))
    assert tls.ok("version", "--format", "{{.Server.APIVersion}}") == "1.50\n"
    assert tls.ok("run", "--rm", "busybox", "echo", "over tls") == "over tls\n"
    no_cert = Docker(f"tcp://127.0.0.1:{port}", certs / "cfg2")
    no_cert.env.pop("DOCKER_TLS_VERIFY", None)
    p = no_cert("version")
    assert "Server:" not in p.stdout or p.returncode != 0


from tests.integration.test_build_vs_docker import dockerd  # noqa: E402, F401  (the fixture)

# (args, what to compare): the same docker CLI against dockerd and against Corral.
SAME = [
    (["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"], "all"),
    (["run", "--rm", "busybox", "no-such-command"], "status"),
    (["run", "--name", "cmp-exited", "busybox", "sh", "-c", "echo logged; exit 2"], "all"),
    (
        ["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.Config.Cmd}}", "cmp-exited"],
        "all",
    ),
    (["logs", "cmp-exited"], "all"),
    (["wait", "cmp-exited"], "all"),
    (["ps", "-a", "--format", "{{.Names}} {{.Image}} {{.Command}}"], "all"),
    (["stop", "cmp-exited"], "all"),
    (["kill", "cmp-exited"], "status"),
    (["create", "--name", "cmp-created", "busybox", "sleep", "100"], "status"),
    (["ps", "-a", "--filter", "status=created", "--format", "{{.Names}} {{.Status}}"], "all"),
    (["start", "cmp-created"], "all"),
    (["exec", "cmp-created", "sh", "-c", "echo in exec; exit 6"], "all"),
    (["top", "cmp-created", "-o", "args"], "status"),
    (["cp", "cmp-created:/etc/passwd", "-"], "status"),
    (["rm", "cmp-created"], "status"),
    (["rm", "-f", "cmp-created", "cmp-exited"], "all"),
    (["rm", "no-such"], "all"),
    (["volume", "create", "cmp-vol"], "all"),
    (["volume", "ls", "--format", "{{.Name}} {{.Driver}}"], "all"),
    (["volume", "rm", "cmp-vol"], "all"),
    (["images", "--format", "{{.Repository}}:{{.Tag}}"], "all"),
    (["image", "inspect", "-f", "{{.Os}} {{.Architecture}}", "busybox"], "all"),
    (["image", "inspect", "no-such-image"], "status"),
]


def test_the_same_commands_print_the_same_as_against_dockerd(docker, dockerd, rootfs, tmp_path):  # noqa: F811
    tar = tmp_path / "bb.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    peer = Docker(dockerd[-1], tmp_path / "peer-config")
    peer.ok("import", str(tar), "busybox:latest")
    try:
        for args, what in SAME:
            theirs, ours = peer(*args), docker(*args)
            assert ours.returncode == theirs.returncode, (args, theirs.stderr, ours.stderr)
            if what == "all":
                assert (ours.stdout, ours.stderr) == (theirs.stdout, theirs.stderr), args
    finally:
        peer("rm", "-f", "cmp-created", "cmp-exited")
        peer("volume", "rm", "cmp-vol")
        peer("rmi", "busybox:latest")
