"""The README's commands, run as written, in order (issue #15).

Every ```sh block is taken from README.md. Only the places a test must own
are substituted: the temporary directories the tour names (/tmp/...) and the
state of the runtime and the daemon (a daemon of this test's, reached through
$CORRAL_SOCKET, replaces `corral daemon &`). The blocks run as one bash
script, whose stdin is a pseudo-terminal on which "exit" is typed ahead for the
interactive shells the tour opens. Each command that fails is recorded (an
ERR trap); the tour's own `exit 3` examples are the only failures allowed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]

README = Path(__file__).resolve().parents[2] / "README.md"
REPO = README.parent


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)


def test_the_two_commands_are_the_first_block():
    first = sh_blocks()[0]
    assert "bash scripts/demo.sh" in first and "bash scripts/test.sh" in first
    # scripts/test.sh is what CI runs (and runs this test): not run again here.
    assert (REPO / ".ci" / "run").read_text().strip().endswith("bash scripts/test.sh")


def test_demo_script_runs():
    p = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "hello from an image" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert "from an image, into a volume" in p.stdout


def _tour_script(tmp: Path, runtime_flags: str, docker_sock: str = "") -> str:
    body = "\n".join(sh_blocks()[1:])
    # The Docker API: this test's daemon's socket; without the docker CLI its
    # lines are left out (and said so in the output).
    body = body.replace("unix:///run/corral/docker.sock", f"unix://{docker_sock}")
    if not shutil.which("docker"):
        body = re.sub(r"^docker .*$", "echo 'no docker CLI: left out'", body, flags=re.M)
    # The host's temporary files the tour names (paths inside containers stay).
    owned = r"/tmp/(bundle|busybox\.tar|web-hostname|httpd\.conf|fleet|img)"
    body = re.sub(owned, rf"{tmp}/\1", body)
    serve = "true  # the daemon of this test serves CORRAL_SOCKET"
    body = re.sub(r"^corral daemon &.*$", serve, body, flags=re.M)
    # The runtime's state and cgroup parent: this test's own, never the host's default.
    body = re.sub(
        r"\bcorral runtime (?!busybox-rootfs|spec)", f"corral runtime {runtime_flags} ", body
    )
    return (
        "failures=$1\n"
        'trap \'echo "$?:$BASH_COMMAND" >> "$failures"\' ERR\n'
        f"export PATH={REPO}/.venv/bin:$PATH\n"
        f"cd {REPO}\n" + body
    )


def _answer_prompts(proc: subprocess.Popen, out: Path, master: int, deadline: float) -> None:
    """Type `exit` at each interactive shell's prompt the tour opens, as a
    user would, until the tour ends."""
    answered = 0
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the tour did not finish"
        prompts = out.read_text(errors="replace").count("/ # ")
        if prompts > answered:
            answered = prompts
            os.write(master, b"exit\n")
        time.sleep(0.05)


def test_the_tour_runs_as_written(daemon, tmp_path):
    import pty

    from tests.integration.conftest import RUN, _drop_cgroup_parent

    rt_parent = f"/{RUN}-readme"
    script = tmp_path / "tour.sh"
    script.write_text(
        _tour_script(
            tmp_path,
            f"--root {tmp_path}/rt --cgroup-parent {rt_parent}",
            str(daemon.run_root / "docker.sock"),
        )
    )
    failures = tmp_path / "failures"
    failures.touch()
    master, slave = pty.openpty()
    out = tmp_path / "out"
    try:
        with open(out, "w") as f:
            proc = subprocess.Popen(
                ["bash", str(script), str(failures)],
                stdin=slave,
                stdout=f,
                stderr=subprocess.STDOUT,
                env={**daemon.env, "COLUMNS": "120"},
                start_new_session=True,  # its background jobs (logs -f, events) go with it
            )
            try:
                _answer_prompts(proc, out, master, deadline=time.monotonic() + 240)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        os.close(master)
        os.close(slave)
        subprocess.run(
            [sys.executable, "-m", "supervisor.cli", "runtime", "--root", f"{tmp_path}/rt",
             "delete", "--force", "web"], capture_output=True, check=False,
        )  # fmt: skip
        left = _drop_cgroup_parent(rt_parent.lstrip("/"))
    text = out.read_text(errors="replace")
    failed = [line for line in failures.read_text().splitlines() if not line.startswith("3:")]
    assert not failed, f"{failed}\n{text[-3000:]}"
    assert not left, left
    assert "Traceback" not in text, text[-3000:]
    for expected in (
        "hi from ",
        "exit: 3",
        "hello from an image",
        "(healthy)",
        "db\n",
        "80/tcp -> 127.0.0.1:8080",
        "kept\n",
    ):
        assert expected in text, f"{expected!r} not in the tour's output:\n{text[-3000:]}"
    if shutil.which("docker"):
        assert "hello from the docker CLI" in text and "from-docker" in text
    assert (tmp_path / "web-hostname").read_text().strip()
    time.sleep(0)  # the daemon fixture removes what the tour left running
