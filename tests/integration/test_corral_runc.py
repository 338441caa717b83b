"""corral-runc: runc's command line over Corral's runtime, driven as
containerd's shim drives runc (stdio passed through, --pid-file, a console
socket, the caller reaping the container as a subreaper), and by containerd
itself (Debian's 1.6, started here with its own root, state and socket)."""

from __future__ import annotations

import array
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration import engines
from tests.integration.conftest import RUN, _cgroup_leftovers, _drop_cgroup_parent, _reap
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


def _runc() -> str:
    exe = shutil.which("corral-runc", path=str(Path(__file__).parents[2] / ".venv" / "bin"))
    if not exe:
        pytest.skip("corral-runc is not installed (bash scripts/install.sh)")
    return exe


@pytest.fixture
def runc(tmp_path):
    """corral-runc with a root of this test's and containers in a cgroup parent
    of this run's; every container it made deleted afterwards."""
    root = tmp_path / "runc-root"
    exe = _runc()
    parent = f"{RUN}-runc"

    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        return subprocess.run(
            [exe, "--root", str(root), *args], text=True, timeout=60, **kw
        )  # fmt: skip

    run.parent = parent  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        for line in run("list", "-q").stdout.split():
            run("delete", "--force", line)
        _drop_cgroup_parent(parent)


def _bundle(bundle, runc, *args: str, terminal: bool = False, edit=None) -> Path:
    def fix(d: dict) -> None:
        d["linux"]["cgroupsPath"] = f"/{runc.parent}/{secrets.token_hex(3)}"
        if edit:
            edit(d)

    return bundle(*args, terminal=terminal, edit=fix)


@pytest.mark.cgroups
def test_create_start_as_the_shim_does(runc, bundle, tmp_path, subreaper):
    b = _bundle(bundle, runc, "sh", "-c", "read x; echo out:$x; echo err >&2; exit 3")
    pidfile = tmp_path / "init.pid"
    r_in, w_in = os.pipe()
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "wb") as o, open(err, "wb") as e:
        p = runc("create", "--bundle", str(b), "--pid-file", str(pidfile), "c1",
                 stdin=r_in, stdout=o, stderr=e, capture_output=False)  # fmt: skip
    os.close(r_in)
    assert p.returncode == 0, err.read_text()
    pid = int(pidfile.read_text())
    state = json.loads(runc("state", "c1").stdout)
    assert (state["status"], state["pid"], state["bundle"]) == ("created", pid, str(b))
    p = runc("delete", "c1")  # the runtime spec: not while created
    assert p.returncode == 1 and "it is created" in p.stderr
    assert runc("start", "c1").returncode == 0
    os.write(w_in, b"piped\n")
    os.close(w_in)
    assert _reap(pid) == 3  # this process, the subreaper, reaps the container itself
    assert json.loads(runc("state", "c1").stdout)["status"] == "stopped"
    assert (out.read_text(), err.read_text()) == ("out:piped\n", "err\n")
    assert runc("delete", "c1").returncode == 0
    assert runc("delete", "--force", "c1").returncode == 0  # gone: runc's --force is quiet
    assert runc("state", "c1").returncode == 1


@pytest.mark.cgroups
def test_the_native_front_serves_the_shims_per_container_verbs(runc, bundle, tmp_path, subreaper):
    """start, kill, delete and delete --force of a plain handed-over container
    are native/runc_front.c's alone (CORRAL_RUNC_NATIVE_ONLY=1 makes a
    hand-over to Python exit 125); what it does not serve, it hands over."""
    native = {**os.environ, "CORRAL_RUNC_NATIVE_ONLY": "1"}
    b = _bundle(bundle, runc, "sleep", "100")
    cgroup = json.loads((b / "config.json").read_text())["linux"]["cgroupsPath"]
    pidfile = tmp_path / "pid"
    quiet = {"capture_output": False, "stdin": subprocess.DEVNULL,
             "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # fmt: skip
    p = runc("create", "--bundle", str(b), "--pid-file", str(pidfile), "n1", **quiet)
    assert p.returncode == 0
    pid = int(pidfile.read_text())
    p = runc("delete", "n1", env=native)  # created: refusing it is Python's to say
    assert p.returncode == 125 and "hand over" in p.stderr, p.stderr
    assert runc("delete", "n1").returncode == 1  # and Python does
    assert runc("start", "n1", env=native).returncode == 0
    assert json.loads(runc("state", "n1").stdout)["status"] == "running"
    p = runc("delete", "n1", env=native)  # running: Python's too
    assert p.returncode == 125, p.stderr
    assert runc("kill", "n1", "SIGKILL", env=native).returncode == 0
    assert _reap(pid) == -9
    assert _cgroup_leftovers(runc.parent), "its cgroup is there until the delete"
    assert runc("delete", "n1", env=native).returncode == 0
    assert not (tmp_path / "runc-root" / "n1").exists()
    assert not _cgroup_leftovers(runc.parent), cgroup
    assert runc("delete", "--force", "n1", env=native).returncode == 0
    assert runc("kill", "n1", "KILL").returncode == 1  # gone: Python says so


def _console_socket(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(1)
    return s


def _recv_fd(listener: socket.socket) -> int:
    conn, _ = listener.accept()
    with conn:
        fds = array.array("i")
        _msg, ancdata, _flags, _addr = conn.recvmsg(16, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: fds.itemsize])
    return fds[0]


def test_a_terminal_through_the_console_socket(runc, bundle, tmp_path, subreaper):
    b = _bundle(bundle, runc, "sh", "-c", "tty; read x; echo got:$x; exit 5", terminal=True)
    p = runc("create", "--bundle", str(b), "t1")
    assert p.returncode == 1 and "--console-socket" in p.stderr  # runc's rule too
    listener = _console_socket(tmp_path / "console.sock")
    try:
        sock = str(tmp_path / "console.sock")
        p = runc("create", "--bundle", str(b), "--console-socket", sock,
                 "--pid-file", str(tmp_path / "pid"), "t1")  # fmt: skip
        assert p.returncode == 0, p.stderr
        master = _recv_fd(listener)
    finally:
        listener.close()
    try:
        runc("start", "t1")
        os.write(master, b"typed\n")
        assert _reap(int((tmp_path / "pid").read_text())) == 5
        text = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the pty's last user is gone
                break
            if not chunk:
                break
            text += chunk
    finally:
        os.close(master)
    assert b"/dev/pts/0" in text and b"got:typed" in text


def test_exec_process_file_detached(runc, bundle, tmp_path, subreaper):
    b = _bundle(bundle, runc, "sleep", "100")
    # Detached, its stdio are still ours (runc's too): not pipes we wait on.
    quiet = {"capture_output": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    p = runc("run", "--detach", "--bundle", str(b), "--pid-file", str(tmp_path / "pid"), "r1",
             **quiet)  # fmt: skip
    assert p.returncode == 0
    assert json.loads(runc("state", "r1").stdout)["status"] == "running"
    proc = json.loads((b / "config.json").read_text())["process"]
    proc["args"] = ["sh", "-c", "echo from exec > /dev/shm/x; exit 6"]
    (tmp_path / "process.json").write_text(json.dumps(proc))
    p = runc("exec", "--process", str(tmp_path / "process.json"), "--detach",
             "--pid-file", str(tmp_path / "epid"), "r1", **quiet)  # fmt: skip
    assert p.returncode == 0
    assert _reap(int((tmp_path / "epid").read_text())) == 6
    assert runc("exec", "r1", "cat", "/dev/shm/x").stdout == "from exec\n"
    pids = json.loads(runc("ps", "--format", "json", "r1").stdout)
    assert int((tmp_path / "pid").read_text()) in pids
    assert runc("pause", "r1").returncode == 0
    assert json.loads(runc("state", "r1").stdout)["status"] == "paused"
    assert runc("resume", "r1").returncode == 0
    res = json.dumps({"memory": {"limit": 64 << 20}, "pids": {"limit": 50}})
    assert runc("update", "--resources", "-", "r1", input=res).returncode == 0
    ev = json.loads(runc("events", "--stats", "r1").stdout)
    assert ev["type"] == "stats" and ev["data"]["pids"]["current"] >= 1
    p = runc("update", "--resources", "-", "r1", input='{"blockIO": {"leafWeight": 500}}')
    assert p.returncode == 1 and "blockIO.leafWeight" in p.stderr
    assert runc("kill", "r1", "KILL").returncode == 0
    assert _reap(int((tmp_path / "pid").read_text())) == -9
    assert runc("delete", "r1").returncode == 0


@pytest.mark.cgroups
def test_what_cannot_be_applied_is_refused(runc, bundle, tmp_path):
    def net_cls(d):
        d["linux"].setdefault("resources", {})["network"] = {"classID": 1048577}

    b = _bundle(bundle, runc, "true", edit=net_cls)
    log = tmp_path / "log.json"
    p = subprocess.run(
        [_runc(), "--root", str(tmp_path / "runc-root"), "--log", str(log), "--log-format",
         "json", "create", "--bundle", str(b), "s1"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 1 and "linux.resources.network" in p.stderr
    last = json.loads(log.read_text().splitlines()[-1])  # what the shim reports
    assert last["level"] == "error" and "net_cls" in last["msg"]
    assert runc("list", "-q").stdout == ""  # nothing left
    # --preserve-fds: our descriptor 3 is the container's 3 (the shell's
    # redirection gives corral-runc one).
    b = _bundle(bundle, runc, "sh", "-c", "echo through fd 3 >&3")
    out3 = tmp_path / "fd3"
    p = subprocess.run(
        ["bash", "-c", f'exec "$@" 3>{out3}', "_", _runc(), "--root", str(tmp_path / "runc-root"),
         "run", "--preserve-fds", "1", "--bundle", str(b), "pf1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0 and out3.read_text() == "through fd 3\n", p.stderr
    p = runc("run", "--preserve-fds", "2", "--bundle", str(b), "pf2")
    assert p.returncode == 1 and "descriptor" in p.stderr
    # --no-pivot: the root moved over / and chrooted into (a ramdisk root).
    b = _bundle(bundle, runc, "sh", "-c", "ls /bin/busybox && echo no-pivot ok")
    p = runc("run", "--no-pivot", "--bundle", str(b), "np1")
    assert (p.returncode, p.stdout) == (0, "/bin/busybox\nno-pivot ok\n"), p.stderr
    # --systemd-cgroup: no systemd here (refused, saying so), or (in the v2
    # VM) a cgroupfs path where SLICE:PREFIX:NAME belongs; the flag is
    # harmless where it does not apply.
    p = runc("--systemd-cgroup", "create", "--bundle", str(b), "sd1", stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and "--systemd-cgroup" in p.stderr, p.stderr
    assert runc("--systemd-cgroup", "list", "-q").returncode == 0
    features = json.loads(runc("features").stdout)
    assert "createContainer" in features["hooks"]
    assert "SCMP_ACT_ERRNO" in features["linux"]["seccomp"]["actions"]
    assert runc("--version").stdout.startswith("runc version")


# -- containerd ---------------------------------------------------------------------------


@pytest.fixture
def containerd(tmp_path, daemon, rootfs):
    """Debian's containerd with a root, state and socket of its own; busybox
    imported from an archive `corral save` wrote; ctr's argv (a namespace of
    this test's, whose cgroup parent is removed afterwards)."""
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.skip("containerd is not installed (apt-get install containerd)")
    base = tmp_path / "ctd"
    base.mkdir()
    sock = base / "c.sock"
    (base / "config.toml").write_text(
        f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n'
    )
    log = open(base / "containerd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(["containerd", "--config", str(base / "config.toml")],
                            stdout=log, stderr=log)  # fmt: skip
    ns = f"{RUN}-ctd"
    ctr = ["ctr", "--address", str(sock), "--namespace", ns]
    try:
        for _ in range(200):
            if subprocess.run([*ctr, "version"], capture_output=True).returncode == 0:
                break
            assert proc.poll() is None, (base / "containerd.log").read_text()[-2000:]
            time.sleep(0.05)
        tar = tmp_path / "bb.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
        assert daemon.cli("import", str(tar), "busybox:latest").returncode == 0
        assert daemon.cli("save", "-o", str(base / "img.tar"), "busybox").returncode == 0
        subprocess.run([*ctr, "images", "import", "--base-name", "docker.io/library/busybox",
                        str(base / "img.tar")], check=True, capture_output=True)  # fmt: skip
        yield ctr
    finally:
        for c in subprocess.run([*ctr, "c", "ls", "-q"], capture_output=True,
                                text=True).stdout.split():  # fmt: skip
            subprocess.run([*ctr, "task", "kill", "-s", "SIGKILL", c], capture_output=True)
            subprocess.run([*ctr, "task", "rm", "-f", c], capture_output=True)
            subprocess.run([*ctr, "c", "rm", c], capture_output=True)
        proc.terminate()
        proc.wait()
        log.close()
        subprocess.run(["umount", "-R", str(base / "root")], capture_output=True)
        assert not _drop_cgroup_parent(ns)


IMAGE = "docker.io/library/busybox:latest"


def test_containerd_drives_corral_runc(containerd, tmp_path):
    ctr, rb = containerd, ["--runc-binary", _runc()]

    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*ctr, *args], capture_output=True, text=True, timeout=60, **kw)

    p = run("run", "--rm", *rb, IMAGE, "c1", "sh", "-c", "echo hello from corral-runc; exit 3")
    assert (p.returncode, p.stdout) == (3, "hello from corral-runc\n"), p.stderr
    assert run("run", "-d", *rb, IMAGE, "c2", "sleep", "100").returncode == 0
    tasks = run("task", "ls").stdout
    assert "c2" in tasks and "RUNNING" in tasks
    p = run("task", "exec", "--exec-id", "e1", "c2", "sh", "-c", "echo in exec; exit 4")
    assert (p.returncode, p.stdout) == (4, "in exec\n"), p.stderr
    assert run("task", "pause", "c2").returncode == 0
    assert "PAUSED" in run("task", "ls").stdout
    assert run("task", "resume", "c2").returncode == 0
    assert (
        "memory.usage_in_bytes" in run("task", "metrics", "c2").stdout
        or "memory" in run("task", "metrics", "c2").stdout
    )
    assert run("task", "kill", "-s", "SIGKILL", "c2").returncode == 0
    for _ in range(100):
        if "STOPPED" in run("task", "ls").stdout:
            break
        time.sleep(0.05)
    assert "STOPPED" in run("task", "ls").stdout
    assert run("task", "rm", "c2").returncode == 0
    assert run("c", "rm", "c2").returncode == 0
    # -t: the pty's master through the console socket, to ctr's terminal.
    script = f"{' '.join(ctr)} run -t --rm --runc-binary {_runc()} {IMAGE} c3 sh"
    p = subprocess.run(
        ["script", "-qec", script, "/dev/null"],
        input="echo tty-$((6*7)); tty\nexit 7\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "tty-42" in p.stdout and "/dev/pts/0" in p.stdout, p.stdout + p.stderr
    assert run("c", "ls", "-q").stdout == ""


# -- dockerd --------------------------------------------------------------------------------


@pytest.fixture
def dockerd_corral(tmp_path, rootfs):
    """Debian's dockerd with `--add-runtime corral=corral-runc`, busybox
    imported; the docker CLI's argv."""
    with engines.dockerd(tmp_path / "dd", ("--add-runtime", f"corral={_runc()}")) as cli:
        tar = tmp_path / "bb.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
        subprocess.run([*cli, "import", str(tar), "busybox"], check=True, capture_output=True)
        yield cli


def test_dockerd_drives_corral_runc(dockerd_corral):
    def docker(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*dockerd_corral, *args], capture_output=True, text=True,
                              timeout=60, **kw)  # fmt: skip

    p = docker("run", "--runtime", "corral", "--rm", "busybox", "sh", "-c", "echo hi; exit 4")
    assert (p.returncode, p.stdout) == (4, "hi\n"), p.stderr
    assert docker("run", "-d", "--runtime", "corral", "--name", "d1", "busybox",
                  "sh", "-c", "echo started; sleep 100").returncode == 0  # fmt: skip
    assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", "d1").stdout == "corral\n"
    p = docker("exec", "d1", "sh", "-c", "echo in exec; exit 3")
    assert (p.returncode, p.stdout) == (3, "in exec\n")
    for _ in range(50):
        if docker("logs", "d1").stdout == "started\n":
            break
        time.sleep(0.1)
    assert docker("logs", "d1").stdout == "started\n"
    assert docker("pause", "d1").returncode == 0
    assert docker("inspect", "-f", "{{.State.Status}}", "d1").stdout == "paused\n"
    assert docker("unpause", "d1").returncode == 0
    stats = docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "d1").stdout
    assert stats.split()[0] == "d1"
    assert docker("kill", "d1").returncode == 0
    assert docker("wait", "d1").stdout == "137\n"
    p = subprocess.run(
        ["script", "-qec", " ".join([*dockerd_corral, "run", "-it", "--rm", "--runtime",
                                     "corral", "busybox", "sh"]), "/dev/null"],
        input="echo tty-$((6*7)); tty\nexit 7\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "tty-42" in p.stdout and "/dev/pts/0" in p.stdout, p.stdout + p.stderr
