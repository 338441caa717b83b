"""The same Dockerfiles built by `corral build` and by `docker build`
(Debian's docker.io: dockerd started by the test with its own data root and
socket; its classic builder, as the docker CLI here has no buildx): the same
configuration fields, the same history, and the same files (names, types,
modes, owners, contents) in each layer the build made. Skipped where dockerd
cannot run."""

from __future__ import annotations

import os
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from tests.integration import engines
from tests.integration.image_compare import read
from tests.probe import needs_busybox, needs_root

pytestmark = [needs_root, needs_busybox]

DOCKERFILES = {
    "config": """
        FROM busybox AS base
        ARG GREETING=hello
        ENV APP=/app PORT=8080
        WORKDIR $APP
        COPY . .
        RUN echo "$GREETING from $(pwd)" > greeting.txt && chmod 640 greeting.txt
        USER 1000:1000
        ENTRYPOINT ["cat"]
        CMD ["/app/greeting.txt"]
        EXPOSE 8080 53/udp
        VOLUME /data
        STOPSIGNAL SIGINT
        LABEL org.example=test "with space"=yes
        """,
    "stages": """
        FROM busybox AS build
        RUN mkdir -p /out/sub && echo artifact > /out/sub/a && ln -s sub/a /out/link
        FROM busybox
        COPY --from=build --chown=12:34 /out /srv/out
        COPY tool.sh /usr/local/bin/
        ADD files.tar /opt/
        RUN rm /bin/ls && mkdir -p /var/empty
        """,
}


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    """Debian's dockerd for this module; its docker CLI argv."""
    with engines.dockerd(tmp_path_factory.mktemp("dockerd")) as cli:
        yield cli


def _context(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "Dockerfile").write_text(textwrap.dedent(DOCKERFILES[name]))
    (d / "a.txt").write_text("content\n")
    (d / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    os.chmod(d / "tool.sh", 0o644)
    src = tmp_path / f"{name}-tarsrc"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "f").write_text("in a tar\n")
    with tarfile.open(d / "files.tar", "w") as t:
        t.add(src / "pkg", arcname="pkg")
    return d


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_same_config_history_and_layers_as_docker_build(daemon, dockerd, rootfs, tmp_path, name):
    tar = tmp_path / "bb.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    assert daemon.cli("import", str(tar), "busybox:latest").returncode == 0
    subprocess.run(
        [*dockerd, "import", str(tar), "busybox:latest"], check=True, capture_output=True
    )
    d = _context(tmp_path, name)
    tag = f"cmp-{name}:1"
    p = daemon.cli("build", "-q", "-t", tag, str(d), timeout=180)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(
        [*dockerd, "build", "-q", "-t", tag, str(d)],
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    assert daemon.cli("save", "-o", str(ours), tag).returncode == 0
    subprocess.run([*dockerd, "save", "-o", str(theirs), tag], check=True)
    subprocess.run([*dockerd, "rmi", "-f", tag, "busybox:latest"], capture_output=True)
    a, b = read(ours), read(theirs)
    assert a["config"] == b["config"]
    # The base image's own entries differ only by how each engine imported it.
    assert a["history"][1:] == b["history"][1:]
    assert len(a["layers"]) == len(b["layers"])
    for i, (x, y) in enumerate(zip(a["layers"][1:], b["layers"][1:], strict=True), start=1):
        only_ours, only_theirs = sorted(set(x) - set(y)), sorted(set(y) - set(x))
        assert x == y, f"layer {i}: ours only {only_ours}, docker's only {only_theirs}"
