"""The runtime CLI end to end, as a user types it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import RUN, _drop_cgroup_parent, cli
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


@pytest.fixture
def rt_cli(corral_cli, tmp_path):
    root = tmp_path / "state"
    parent = f"/{RUN}-clicmd"
    base = [*corral_cli, "runtime", "--root", str(root), "--cgroup-parent", parent]
    try:
        yield base
    finally:
        for line in cli([*base, "list", "-q"]).stdout.split():
            cli([*base, "delete", "--force", line])
        assert not _drop_cgroup_parent(parent.lstrip("/"))


def make_bundle(tmp_path: Path, rootfs: Path, corral_cli, args: list[str], tool=None) -> Path:
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "rootfs").symlink_to(rootfs)
    if tool is None:
        assert cli([*corral_cli, "runtime", "spec", "-b", str(b)]).returncode == 0
    else:
        subprocess.run(tool, cwd=b, check=True)
    d = json.loads((b / "config.json").read_text())
    d["process"]["args"] = args
    (b / "config.json").write_text(json.dumps(d))
    return b


def test_spec_then_run_passes_stdio_and_exit_code(tmp_path, rootfs, corral_cli, rt_cli):
    b = make_bundle(
        tmp_path, rootfs, corral_cli, ["sh", "-c", "echo hi; read x; echo got $x; exit 3"]
    )
    p = subprocess.run(
        [*rt_cli, "run", "-b", str(b), "one"],
        input="line\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The default spec asks for a terminal (as runc's does): output comes through a pty.
    assert p.returncode == 3, p.stderr
    assert "hi" in p.stdout and "got line" in p.stdout


def test_spec_refuses_to_overwrite(tmp_path, corral_cli):
    assert cli([*corral_cli, "runtime", "spec", "-b", str(tmp_path)]).returncode == 0
    p = cli([*corral_cli, "runtime", "spec", "-b", str(tmp_path)])
    assert p.returncode != 0 and "already exists" in p.stderr


@pytest.mark.parametrize("tool", ["runc", "crun"])
def test_config_from_other_runtimes_runs_unmodified(tool, tmp_path, rootfs, corral_cli, rt_cli):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    b = make_bundle(
        tmp_path, rootfs, corral_cli, ["sh", "-c", "hostname; exit 4"], tool=[tool, "spec"]
    )
    p = subprocess.run(
        [*rt_cli, "run", "-b", str(b), "other"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 4, p.stderr
    assert p.stdout.strip() in ("runc", "crun")


def test_lifecycle_commands(tmp_path, rootfs, corral_cli, rt_cli):
    b = make_bundle(tmp_path, rootfs, corral_cli, ["sleep", "1000"])
    assert cli([*rt_cli, "create", "-b", str(b), "lc"]).returncode == 0
    st = json.loads(cli([*rt_cli, "state", "lc"]).stdout)
    assert st["status"] == "created" and st["id"] == "lc" and st["pid"] > 0
    assert cli([*rt_cli, "start", "lc"]).returncode == 0
    assert json.loads(cli([*rt_cli, "state", "lc"]).stdout)["status"] == "running"
    listed = json.loads(cli([*rt_cli, "list", "--format", "json"]).stdout)
    assert [c["id"] for c in listed] == ["lc"]
    p = cli([*rt_cli, "delete", "lc"])
    assert p.returncode != 0 and "running" in p.stderr
    assert cli([*rt_cli, "kill", "lc", "KILL"]).returncode == 0
    for _ in range(3000):
        if json.loads(cli([*rt_cli, "state", "lc"]).stdout)["status"] == "stopped":
            break
    assert cli([*rt_cli, "delete", "lc"]).returncode == 0
    p = cli([*rt_cli, "state", "lc"])
    assert p.returncode != 0 and "does not exist" in p.stderr


def test_invalid_config_names_the_field(tmp_path, rootfs, corral_cli, rt_cli):
    b = make_bundle(tmp_path, rootfs, corral_cli, ["true"])
    d = json.loads((b / "config.json").read_text())
    d["process"]["user"]["uid"] = "root"
    (b / "config.json").write_text(json.dumps(d))
    p = cli([*rt_cli, "run", "-b", str(b), "bad"])
    assert p.returncode == 125
    assert "$.process.user.uid" in p.stderr and "int" in p.stderr


def test_rlimit_above_host_is_refused(tmp_path, rootfs, corral_cli, rt_cli):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    b = make_bundle(tmp_path, rootfs, corral_cli, ["true"])
    d = json.loads((b / "config.json").read_text())
    d["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1}]
    (b / "config.json").write_text(json.dumps(d))
    p = cli([*rt_cli, "run", "-b", str(b), "rl"])
    assert p.returncode == 125 and "process.rlimits[0]" in p.stderr and "host" in p.stderr


def test_exec_not_found_exit_127(tmp_path, rootfs, corral_cli, rt_cli):
    b = make_bundle(tmp_path, rootfs, corral_cli, ["no-such-command"])
    p = subprocess.run(
        [*rt_cli, "run", "-b", str(b), "nf"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 127
    assert "no-such-command" in p.stderr and "not found" in p.stderr


def test_detached_run_then_delete(tmp_path, rootfs, corral_cli, rt_cli):
    b = make_bundle(tmp_path, rootfs, corral_cli, ["sh", "-c", "echo detached-hello; sleep 1000"])
    assert cli([*rt_cli, "run", "-d", "-b", str(b), "det"]).returncode == 0
    assert json.loads(cli([*rt_cli, "state", "det"]).stdout)["status"] == "running"
    assert cli([*rt_cli, "delete", "--force", "det"]).returncode == 0


def test_format_templates_in_ps_inspect_and_images(daemon, rootfs):
    """The Go templates scripts pass to docker: ps, inspect -f, images."""
    cid = daemon.cli(
        "run", "-d", "--name", "fmt", "-l", "tier=web", "--rootfs", str(rootfs), "sleep", "60"
    ).stdout.strip()
    try:
        ps = daemon.cli("ps", "--format", "{{.Names}} {{.State}} {{.Labels}}").stdout
        assert "fmt running tier=web" in ps.splitlines(), ps
        table = daemon.cli("ps", "--format", "table {{.ID}}\\t{{.Names}}").stdout.splitlines()
        assert table[0].split() == ["CONTAINER", "ID", "NAMES"] and cid[:12] in table[1]
        pid = daemon.cli("inspect", "-f", "{{.State.Pid}}", "fmt").stdout.strip()
        assert pid.isdigit() and int(pid) > 1
        labels = daemon.cli("inspect", "--format", "{{json .Config.Labels}}", "fmt").stdout
        assert '"tier":"web"' in labels
        bad = daemon.cli("ps", "--format", "{{range .ID}}")
        assert bad.returncode != 0 and "--format" in bad.stderr
    finally:
        daemon.cli("rm", "-f", cid)


def test_ulimit_shm_size_and_add_host(daemon, rootfs):
    script = "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; grep db.local /etc/hosts"
    p = daemon.cli(
        "run",
        "--rm",
        "--ulimit",
        "nofile=512:768",
        "--shm-size",
        "8m",
        "--add-host",
        "db.local:10.1.2.3",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        script,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "512" and lines[1] == "768", lines
    assert lines[2].split()[1] == "8192", lines[2]
    assert lines[3].split() == ["10.1.2.3", "db.local"], lines
    p = daemon.cli("run", "--rm", "--add-host", "nope", "--rootfs", str(rootfs), "true")
    assert p.returncode == 125 and "NAME:IP" in p.stderr, p.stderr
    p = daemon.cli("run", "--rm", "--ulimit", "nofile=9:8", "--rootfs", str(rootfs), "true")
    assert p.returncode != 0 and "soft <= hard" in p.stderr, p.stderr


def test_init_runs_the_command_reaps_and_forwards(daemon, rootfs):
    script = (
        "echo pid=$$; sh -c 'sleep 0.05 &'; sleep 0.5; "
        "echo zombies=$(grep -l '^[0-9]* ([^)]*) Z' /proc/[0-9]*/stat 2>/dev/null | wc -l); exit 5"
    )
    p = daemon.cli("run", "--rm", "--init", "--rootfs", str(rootfs), "sh", "-c", script)
    assert p.returncode == 5, p.stderr
    assert "pid=2" in p.stdout and "zombies=0" in p.stdout, p.stdout
    cid = daemon.cli(
        "run",
        "-d",
        "--init",
        "--rootfs",
        str(rootfs),
        "sh",
        "-c",
        'trap "exit 9" TERM; while :; do sleep 0.05; done',
    ).stdout.strip()
    assert daemon.cli("stop", "-t", "20", cid).returncode == 0
    state = json.loads(daemon.cli("inspect", cid).stdout)[0]["State"]
    assert state["ExitCode"] == 9, state  # SIGTERM reached the command through init
    daemon.cli("rm", cid)


def test_container_and_system_prune(daemon, rootfs):
    running = daemon.cli("run", "-d", "--rootfs", str(rootfs), "sleep", "60").stdout.strip()
    exited = daemon.cli("run", "-d", "--rootfs", str(rootfs), "true").stdout.strip()
    created = daemon.cli("create", "--rootfs", str(rootfs), "true").stdout.strip()
    daemon.cli("wait", exited)
    out = daemon.cli("container", "prune", "-f").stdout
    assert exited in out and created in out and running not in out, out
    left = daemon.cli("ps", "-aq", "--no-trunc").stdout.split()
    assert left == [running], left
    assert daemon.cli("network", "create", "spare").returncode == 0
    out = daemon.cli("system", "prune", "-f", "--volumes").stdout
    assert out == "Deleted Networks:\nspare\n\nTotal reclaimed space: 0B\n", out  # Docker's
    assert "spare" not in daemon.cli("network", "ls", "--format", "{{.Name}}").stdout
    daemon.cli("rm", "-f", running)


def test_exec_runs_in_the_container_as_runc_exec(tmp_path, rootfs, corral_cli, rt_cli):
    b = make_bundle(tmp_path, rootfs, corral_cli, ["sleep", "1000"])
    d = json.loads((b / "config.json").read_text())
    d["process"]["terminal"] = False
    d["process"]["env"].append("FROM_CONFIG=yes")
    (b / "config.json").write_text(json.dumps(d))
    assert cli([*rt_cli, "run", "-d", "-b", str(b), "ex"]).returncode == 0
    script = "echo $FROM_CONFIG $FOO $(id -u):$(id -g) $(pwd) $(hostname); cat /proc/1/comm"
    p = cli([*rt_cli, "exec", "-e", "FOO=bar", "-u", "1000:1001", "--cwd", "/tmp", "ex",
             "sh", "-c", script])  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["yes", "bar", "1000:1001", "/tmp", "corral", "sleep"]
    assert cli([*rt_cli, "exec", "ex", "sh", "-c", "exit 7"]).returncode == 7
    pids = json.loads(cli([*rt_cli, "ps", "-f", "json", "ex"]).stdout)
    table = cli([*rt_cli, "ps", "ex"]).stdout.splitlines()
    assert len(pids) == 1 and table[0].split() == ["PID", "CMD"]
    assert table[1].split() == [str(pids[0]), "sleep", "1000"]
    p = cli([*rt_cli, "exec", "ex", "/nonexistent"])
    assert p.returncode != 0 and "/nonexistent" in p.stderr, p.stderr
    assert cli([*rt_cli, "kill", "ex", "KILL"]).returncode == 0
    p = cli([*rt_cli, "exec", "nosuch", "true"])
    assert p.returncode != 0 and "nosuch" in p.stderr


def _with_hooks(b: Path, hooks: dict) -> None:
    d = json.loads((b / "config.json").read_text())
    d["process"]["terminal"] = False
    d["hooks"] = hooks
    (b / "config.json").write_text(json.dumps(d))


def test_poststart_and_poststop_hooks_get_the_state(tmp_path, rootfs, corral_cli, rt_cli):
    """OCI hooks after the process starts and after delete, with the state on
    stdin; a failing one is a warning; run, and create + start alike."""
    b = make_bundle(tmp_path, rootfs, corral_cli, ["sh", "-c", "echo ran"])
    out = tmp_path / "hooks"
    out.mkdir()
    sh = shutil.which("sh")

    def hook(name: str) -> dict:
        return {"path": sh, "args": ["sh", "-c", f"cat > {out}/{name}.$N"], "env": ["N=1"]}

    failing = {"path": sh, "args": ["sh", "-c", "echo nope >&2; exit 3"]}
    _with_hooks(b, {"poststart": [hook("poststart"), failing], "poststop": [hook("poststop")]})
    p = cli([*rt_cli, "run", "-b", str(b), "hk"])
    assert p.returncode == 0 and p.stdout == "ran\n", p.stderr
    assert "poststart hook" in p.stderr and "exit status 3: nope" in p.stderr
    started = json.loads((out / "poststart.1").read_text())
    assert started["id"] == "hk" and started["status"] == "running" and started["pid"] > 0
    assert started["bundle"] == str(b)
    assert json.loads((out / "poststop.1").read_text())["status"] == "stopped"
    # create, start, delete from separate processes: the hooks kept in the state dir.
    for f in out.iterdir():
        f.unlink()
    assert cli([*rt_cli, "create", "-b", str(b), "hk2"]).returncode == 0
    assert not any(out.iterdir())
    assert cli([*rt_cli, "start", "hk2"]).returncode == 0
    assert json.loads((out / "poststart.1").read_text())["id"] == "hk2"
    assert not (out / "poststop.1").exists()
    assert cli([*rt_cli, "delete", "--force", "hk2"]).returncode == 0
    assert json.loads((out / "poststop.1").read_text())["id"] == "hk2"


def test_hooks_before_the_process_run_in_order_in_their_namespaces(
    tmp_path, rootfs, corral_cli, rt_cli
):
    """prestart and createRuntime in the runtime's namespaces, createContainer in
    the container's before pivot_root (its mounts there, under the root's path),
    startContainer inside the container's root just before its process; each
    with the state on stdin; run, and create + start from separate processes."""
    b = make_bundle(tmp_path, rootfs, corral_cli, ["true"])
    out = tmp_path / "hooks"
    out.mkdir()
    sh = shutil.which("sh")
    root = str(rootfs)

    def host_hook(name: str) -> dict:
        script = (
            f"cat > {out}/{name}; echo {name} >> {out}/order; hostname > {out}/{name}.host; "
            f"test -e {root}/proc/1/status && echo mounted > {out}/{name}.proc; true"
        )
        return {"path": sh, "args": ["sh", "-c", script]}

    # Found in the container's root (busybox's sh), writing through a bind mount
    # that only the container has.
    script = "cat > /out/startContainer; echo startContainer >> /out/order; hostname > /out/startContainer.host"  # noqa: E501
    inside = {"path": "/bin/sh", "args": ["sh", "-c", script]}
    hooks = {
        "prestart": [host_hook("prestart")],
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [inside],
        "poststart": [host_hook("poststart")],
    }
    d = json.loads((b / "config.json").read_text())
    d["process"]["terminal"] = False
    d["hooks"] = hooks
    d["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                        "options": ["rbind", "rw"]})  # fmt: skip
    (b / "config.json").write_text(json.dumps(d))
    host = socket.gethostname()

    p = cli([*rt_cli, "run", "-b", str(b), "pre"])
    assert p.returncode == 0, p.stderr
    order = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart"]
    assert (out / "order").read_text().split() == order
    for name in ("prestart", "createRuntime", "createContainer"):
        state = json.loads((out / name).read_text())
        assert state["id"] == "pre" and state["status"] == "creating" and state["pid"] > 0
    assert json.loads((out / "startContainer").read_text())["status"] == "created"
    # Namespaces: the runtime's for the first two, the container's for the others.
    for name in ("prestart", "createRuntime", "poststart"):
        assert (out / f"{name}.host").read_text().strip() == host
        assert not (out / f"{name}.proc").exists()  # the container's /proc is not there
    assert (out / "createContainer.host").read_text().strip() == d["hostname"]
    assert (out / "createContainer.proc").read_text().strip() == "mounted"
    assert (out / "startContainer.host").read_text().strip() == d["hostname"]

    for f in out.iterdir():
        f.unlink()
    assert cli([*rt_cli, "create", "-b", str(b), "pre2"]).returncode == 0
    assert (out / "order").read_text().split() == order[:3]
    assert cli([*rt_cli, "start", "pre2"]).returncode == 0
    assert (out / "order").read_text().split() == order
    assert cli([*rt_cli, "delete", "--force", "pre2"]).returncode == 0


def test_a_failing_hook_before_the_process_fails_the_container(
    tmp_path, rootfs, corral_cli, rt_cli
):
    """The spec: an error, and the container goes (a failed create leaves nothing;
    a failed startContainer hook kills it)."""
    b = make_bundle(tmp_path, rootfs, corral_cli, ["sleep", "1000"])
    sh = shutil.which("sh")
    failing = {"path": sh, "args": ["sh", "-c", "echo nope >&2; exit 3"]}
    _with_hooks(b, {"createRuntime": [failing]})
    p = cli([*rt_cli, "run", "-b", str(b), "bad"])
    assert p.returncode == 125, p.stderr
    assert "createRuntime hook " + sh + ": exit status 3: nope" in p.stderr, p.stderr
    assert not (tmp_path / "state" / "bad").exists()
    _with_hooks(b, {"createContainer": [{"path": "/no/such/hook"}]})
    p = cli([*rt_cli, "run", "-b", str(b), "bad"])
    assert p.returncode == 125 and "createContainer hook /no/such/hook" in p.stderr, p.stderr
    assert not (tmp_path / "state" / "bad").exists()
    slow = {"path": sh, "args": ["sh", "-c", "sleep 100"], "timeout": 1}
    _with_hooks(b, {"prestart": [slow]})
    p = cli([*rt_cli, "run", "-b", str(b), "bad"])
    assert p.returncode == 125 and "timeout of 1 s: killed" in p.stderr, p.stderr

    _with_hooks(b, {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]})
    assert cli([*rt_cli, "create", "-b", str(b), "bad2"]).returncode == 0
    p = cli([*rt_cli, "start", "bad2"])
    assert p.returncode != 0 and "startContainer hook /bin/sh: exit status 4" in p.stderr
    state = json.loads(cli([*rt_cli, "state", "bad2"]).stdout)
    assert state["status"] == "stopped"  # killed, never ran its process
    assert cli([*rt_cli, "delete", "bad2"]).returncode == 0
    _with_hooks(b, {"poststop": [{"path": "relative/hook"}]})
    p = cli([*rt_cli, "run", "-b", str(b), "ref"])
    assert p.returncode == 125 and "hooks.poststop[0].path" in p.stderr, p.stderr


def test_an_unreadable_state_file_is_named_and_force_deleted(tmp_path, rootfs, corral_cli, rt_cli):
    b = make_bundle(tmp_path, rootfs, corral_cli, ["sleep", "1000"])
    d = json.loads((b / "config.json").read_text())
    d["process"]["terminal"] = False
    (b / "config.json").write_text(json.dumps(d))
    for name in ("bad", "good"):
        assert cli([*rt_cli, "run", "-d", "-b", str(b), name]).returncode == 0
    state = tmp_path / "state" / "bad" / "state.json"
    state.write_text('{"id": 5}')
    p = cli([*rt_cli, "list", "-q"])
    assert p.returncode == 0 and p.stdout.split() == ["good"], p.stderr
    assert f"state file {state} is unreadable" in p.stderr and "$.id" in p.stderr
    p = cli([*rt_cli, "delete", "bad"])
    assert p.returncode != 0 and "unreadable" in p.stderr
    p = cli([*rt_cli, "delete", "--force", "bad"])  # its container killed, its cgroup gone
    assert p.returncode == 0, p.stderr
    assert not (tmp_path / "state" / "bad").exists()
    assert cli([*rt_cli, "list", "-q"]).stdout.split() == ["good"]


def test_a_creator_that_dies_while_hooks_run_leaves_a_container_force_delete_removes(
    tmp_path, rootfs, corral_cli, rt_cli
):
    """The setup waits before pivot_root while the hooks run; if the creating
    process dies then, `delete` refuses the half-made container and `delete
    --force` kills what waits (the child, its monitor) and removes its cgroup."""
    b = make_bundle(tmp_path, rootfs, corral_cli, ["true"])
    mark = tmp_path / "hook.pid"
    sh = shutil.which("sh")
    _with_hooks(b, {"createRuntime": [{"path": sh, "args": ["sh", "-c", f"echo $$ > {mark}; exec sleep 1000"]}]})  # fmt: skip  # noqa: E501
    proc = subprocess.Popen([*rt_cli, "run", "-d", "-b", str(b), "half"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    hook = None
    try:
        for _ in range(3000):
            if mark.exists() and mark.read_text().strip():
                break
            time.sleep(0.01)
        hook = int(mark.read_text())
        proc.kill()
        proc.wait()
        p = cli([*rt_cli, "state", "half"])
        assert json.loads(p.stdout)["status"] == "creating", p.stdout + p.stderr
        p = cli([*rt_cli, "delete", "half"])
        assert p.returncode != 0 and "being created" in p.stderr
        p = cli([*rt_cli, "delete", "--force", "half"])
        assert p.returncode == 0, p.stderr
        assert not (tmp_path / "state" / "half").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if hook is not None:
            try:
                os.kill(hook, signal.SIGKILL)  # the hook outlives its killed creator
            except ProcessLookupError:
                pass
