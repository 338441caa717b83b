"""`corral build` end to end (issue #18), offline: a busybox image imported in
each test's daemon, Dockerfiles built by the CLI, the results run."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]


@pytest.fixture
def image(daemon, rootfs, tmp_path):
    tar = tmp_path / "bb.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    p = daemon.cli("import", str(tar), "busybox:latest")
    assert p.returncode == 0, p.stderr
    return "busybox"


def ok(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    d = tmp_path / "ctx"
    d.mkdir(exist_ok=True)
    (d / "Dockerfile").write_text(textwrap.dedent(dockerfile))
    for name, text in (files or {}).items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    return d


def build(daemon, d: Path, *args: str):
    return daemon.cli("build", "--progress", "plain", *args, str(d), timeout=180)


def run(daemon, image: str, *cmd: str) -> str:
    return ok(daemon.cli("run", "--rm", "--network", "none", image, *cmd))


def test_multi_stage_copy_from_and_target(daemon, image, tmp_path):
    d = context(
        tmp_path,
        """
        FROM busybox AS build
        RUN mkdir /out && echo built > /out/artifact
        FROM busybox AS unused
        RUN echo never >&2; exit 1
        FROM busybox
        COPY --from=build /out/artifact /srv/
        CMD ["cat", "/srv/artifact"]
        """,
    )
    p = build(daemon, d, "-t", "ms:1")
    ok(p)
    assert "never" not in p.stderr  # a stage the target does not need is not built
    assert run(daemon, "ms:1") == "built\n"
    # --target builds only up to that stage
    ok(build(daemon, d, "-t", "ms:build", "--target", "build"))
    assert run(daemon, "ms:build", "cat", "/out/artifact") == "built\n"
    p = build(daemon, d, "--target", "nope")
    assert p.returncode == 1 and "target stage 'nope' could not be found" in p.stderr


def test_copy_honours_dockerignore_and_keeps_outside_links_as_links(daemon, image, tmp_path):
    d = context(
        tmp_path,
        """
        FROM busybox
        COPY . /app/
        """,
        {"keep.txt": "kept\n", "skip.log": "x", "big/blob": "y", "big/yes": "z"},
    )
    (d / ".dockerignore").write_text("*.log\nbig\n!big/yes\n")
    os.symlink("/etc/shadow", d / "outside")
    ok(build(daemon, d, "-t", "ign:1"))
    listing = run(daemon, "ign:1", "sh", "-c", "cd /app && find . | sort")
    assert listing.split() == [".", "./.dockerignore", "./Dockerfile", "./big", "./big/yes",
                               "./keep.txt", "./outside"]  # fmt: skip
    assert run(daemon, "ign:1", "readlink", "/app/outside") == "/etc/shadow\n"


def test_arg_and_env_scoping_user_and_workdir(daemon, image, tmp_path):
    d = context(
        tmp_path,
        """
        ARG BASE=busybox
        ARG VERSION=1
        FROM $BASE
        ARG VERSION
        ARG MODE=dev
        ENV GREETING="hello $MODE"
        WORKDIR /srv
        WORKDIR app
        RUN echo "v=$VERSION mode=$MODE greeting=$GREETING pwd=$(pwd)" > info
        RUN echo "worker:x:1234:1234::/:/bin/sh" >> /etc/passwd && chown worker /srv/app
        USER worker
        RUN id -u > uid
        """,
    )
    ok(build(daemon, d, "-t", "args:1", "--build-arg", "MODE=prod", "--build-arg", "UNUSED=1"))
    assert run(daemon, "args:1", "cat", "info") == (
        "v=1 mode=prod greeting=hello prod pwd=/srv/app\n"
    )
    assert run(daemon, "args:1", "sh", "-c", "id -u; pwd; cat uid; echo ${MODE:-unset}") == (
        "1234\n/srv/app\n1234\nunset\n"  # ARGs are not in the image's environment
    )
    cfg = json.loads(ok(daemon.cli("image", "inspect", "-f", "{{json .Config}}", "args:1")))
    assert "GREETING=hello prod" in cfg["Env"] and cfg["User"] == "worker"
    assert cfg["WorkingDir"] == "/srv/app"


def test_a_failing_run_stops_the_build_showing_its_output(daemon, image, tmp_path):
    d = context(
        tmp_path,
        """
        FROM busybox
        RUN echo before the failure; exit 3
        RUN echo never
        """,
    )
    p = build(daemon, d, "-t", "fail:1")
    assert p.returncode == 1
    assert "before the failure" in p.stderr
    assert "did not complete successfully: exit code: 3" in p.stderr
    assert "never" not in p.stderr
    assert daemon.cli("image", "inspect", "fail:1").returncode != 0
    # its container is gone too
    assert ok(daemon.cli("ps", "-aq")).strip() == ""


def test_the_cache_reruns_exactly_what_a_change_busts(daemon, image, tmp_path):
    d = context(
        tmp_path,
        """
        FROM busybox
        RUN echo one > /one
        COPY a.txt /a.txt
        RUN cat /a.txt > /copy
        COPY b.txt /b.txt
        """,
        {"a.txt": "a1\n", "b.txt": "b1\n"},
    )
    first = build(daemon, d, "-t", "c:1")
    ok(first)
    assert "CACHED" not in first.stderr
    again = build(daemon, d, "-t", "c:1")
    assert again.stderr.count("CACHED") == 4  # RUN, COPY, RUN, COPY
    (d / "b.txt").write_text("b2\n")
    p = build(daemon, d, "-t", "c:1")
    assert p.stderr.count("CACHED") == 3  # only the last COPY ran
    (d / "a.txt").write_text("a2\n")
    p = build(daemon, d, "-t", "c:1")
    assert p.stderr.count("CACHED") == 1  # the first RUN; the rest after the COPY of a.txt
    assert run(daemon, "c:1", "cat", "/copy", "/b.txt") == "a2\nb2\n"
    p = build(daemon, d, "-t", "c:1", "--no-cache")
    assert "CACHED" not in p.stderr
    # the cache's steps are not images of the user's, and builder prune empties it
    listed = ok(daemon.cli("images", "--format", "{{.Repository}}:{{.Tag}}")).split()
    assert sorted(listed) == ["busybox:latest", "c:1"]
    out = ok(daemon.cli("builder", "prune", "-f"))
    assert "Total:" in out
    again = build(daemon, d, "-t", "c:1")
    assert "CACHED" not in again.stderr


def test_onbuild_heredocs_and_configuration(daemon, image, tmp_path):
    d = context(
        tmp_path,
        """
        FROM busybox
        ONBUILD RUN echo triggered > /onbuild
        """,
    )
    ok(build(daemon, d, "-t", "parent:1"))
    d2 = tmp_path / "child"
    d2.mkdir()
    (d2 / "Dockerfile").write_text(
        textwrap.dedent(
            """\
            FROM parent:1
            RUN <<EOF
            echo first > /h1
            echo second >> /h1
            EOF
            COPY <<-'END' /etc/motd
            \thello $NOT_EXPANDED
            \tEND
            ENTRYPOINT ["cat"]
            CMD ["/h1"]
            STOPSIGNAL SIGINT
            HEALTHCHECK --interval=5s --retries=2 CMD test -f /h1
            VOLUME /data
            EXPOSE 80 53/udp
            LABEL a=b "c d"=e
            """
        )
    )
    ok(daemon.cli("build", "--progress", "plain", "-t", "child:1", str(d2)))
    assert run(daemon, "child:1") == "first\nsecond\n"
    assert run(daemon, "child:1", "/onbuild", "/etc/motd") == "triggered\nhello $NOT_EXPANDED\n"
    cfg = json.loads(ok(daemon.cli("image", "inspect", "-f", "{{json .Config}}", "child:1")))
    assert cfg["Entrypoint"] == ["cat"] and cfg["Cmd"] == ["/h1"]
    assert cfg["StopSignal"] == "SIGINT" and cfg["Volumes"] == {"/data": {}}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"a": "b", "c d": "e"}
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /h1"]
    assert cfg["Healthcheck"]["Interval"] == 5_000_000_000 and cfg["Healthcheck"]["Retries"] == 2
    assert not cfg.get("OnBuild")  # the child has none of its own


def test_dockerfile_errors_name_their_line(daemon, image, tmp_path):
    d = context(tmp_path, "FROM busybox\nRUN true\nFROBNICATE now\n")
    p = build(daemon, d)
    assert p.returncode == 1 and "Dockerfile:3: unknown instruction: FROBNICATE" in p.stderr
    d = context(tmp_path, "FROM busybox\nCOPY missing.txt /x\n")
    p = build(daemon, d)
    assert p.returncode == 1 and "missing.txt: file does not exist" in p.stderr
    p = daemon.cli("build", str(tmp_path / "no-such-dir"))
    assert p.returncode == 125 and "not found" in p.stderr


def test_quiet_and_iidfile(daemon, image, tmp_path):
    d = context(tmp_path, "FROM busybox\nLABEL x=y\n")
    iid = tmp_path / "iid"
    out = ok(daemon.cli("build", "-q", "--iidfile", str(iid), "--label", "extra=1", str(d)))
    assert out.strip() == iid.read_text() and out.startswith("sha256:")
    labels = ok(daemon.cli("image", "inspect", "-f", "{{json .Config.Labels}}", out.strip()))
    assert json.loads(labels) == {"x": "y", "extra": "1"}


def test_copy_into_workdir_and_chmod(daemon, image, tmp_path):
    d = context(
        tmp_path,
        """
        FROM busybox
        WORKDIR /app
        COPY a.txt .
        COPY --chmod=751 a.txt sub/
        COPY --chown=7:8 a.txt renamed.txt
        """,
        {"a.txt": "a\n"},
    )
    ok(build(daemon, d, "-t", "wd:1"))
    out = run(daemon, "wd:1", "sh", "-c", "stat -c '%n %a %u:%g' a.txt sub sub/a.txt renamed.txt")
    assert out.splitlines() == [
        "a.txt 644 0:0",
        "sub 755 0:0",
        "sub/a.txt 751 0:0",
        "renamed.txt 644 7:8",
    ]
