"""Pure pieces behind this session's Docker-compatible flags and outputs."""

from __future__ import annotations

import json

import pytest

from protocols import api as wire
from protocols.lite import api
from supervisor.client import containers, format, system, templates
from supervisor.client.flags import parse_time
from supervisor.daemon import ocispec
from supervisor.daemon.networking import resolv_conf
from supervisor.errors import SpecError
from supervisor.network.store import Network, NetworkError, check_address
from supervisor.units import go_duration as _go_duration


@pytest.mark.parametrize(
    ("sysctls", "network", "ipc", "ok"),
    [
        ({"net.ipv4.ip_forward": "1"}, "bridge", "", True),
        ({"net.ipv4.ip_forward": "1"}, "host", "", False),
        ({"net.core.somaxconn": "1024"}, "container:abc", "", False),
        ({"kernel.shmmax": "1"}, "bridge", "", True),
        ({"kernel.shmmax": "1"}, "bridge", "host", False),
        ({"fs.mqueue.msg_max": "20"}, "none", "", True),
        ({"kernel.hostname": "x"}, "bridge", "", False),
        ({"vm.swappiness": "1"}, "bridge", "", False),
    ],
)
def test_sysctls_follow_dockers_namespaced_rule(sysctls, network, ipc, ok) -> None:
    cfg = wire.ContainerConfig(sysctls=sysctls, network=network, ipc_mode=ipc)
    if ok:
        ocispec.check_sysctls(cfg)
    else:
        with pytest.raises(SpecError, match="--sysctl"):
            ocispec.check_sysctls(cfg)


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("pid_mode", "sideways", "--pid"),
        ("ipc_mode", "public", "--ipc"),
        ("oom_score_adj", 1001, "--oom-score-adj"),
        ("cpu_shares", 1, "--cpu-shares"),
    ],
)
def test_modes_and_ranges_are_refused_by_flag(field, value, flag) -> None:
    with pytest.raises(SpecError, match=flag):
        ocispec.check_modes(wire.ContainerConfig(**{field: value}))
    ocispec.check_modes(wire.ContainerConfig(pid_mode="host", ipc_mode="container:x"))


def test_resources_carry_shares_sets_and_reservation() -> None:
    res = ocispec.resources(
        wire.ContainerConfig(cpu_shares=512, cpuset_cpus="0-1", memory_reservation=1 << 20)
    )
    assert res.cpu.shares == 512 and res.cpu.cpus == "0-1" and res.cpu.quota is None
    assert res.memory.reservation == 1 << 20 and res.memory.limit is None


def test_resolv_conf_keeps_dockers_ndots_first() -> None:
    assert resolv_conf("10.89.0.1", [], []) == "nameserver 10.89.0.1\noptions ndots:0\n"
    text = resolv_conf("10.89.0.1", ["a.test", "b.test"], ["timeout:1", "ndots:0"])
    assert text.splitlines() == [
        "nameserver 10.89.0.1",
        "search a.test b.test",
        "options ndots:0 timeout:1",
    ]


def test_chosen_addresses_are_checked_against_the_network() -> None:
    n = Network(name="n", subnet="10.9.0.0/24", gateway="10.9.0.1", bridge="b", created_nano=0)
    check_address(n, "10.9.0.50")
    for bad in ("10.9.1.5", "10.9.0.0", "10.9.0.255", "10.9.0.1", "ten"):
        with pytest.raises(NetworkError):
            check_address(n, bad)


def test_docker_event_shape_and_go_field_names() -> None:
    ev = api.Event(
        seq=7,
        time_nano=1_700_000_000_123_456_789,
        type="container",
        action="die",
        id="c" * 64,
        name="web",
        attributes={"name": "web", "image": "busybox", "exitCode": "0"},
    )
    shaped = system.docker_event(ev)
    assert json.loads(templates.render("{{json .}}", shaped)) == {
        "status": "die",
        "id": "c" * 64,
        "from": "busybox",
        "Type": "container",
        "Action": "die",
        "Actor": {
            "ID": "c" * 64,
            "Attributes": {"name": "web", "image": "busybox", "exitCode": "0"},
        },
        "scope": "local",
        "time": 1_700_000_000,
        "timeNano": 1_700_000_000_123_456_789,
    }
    assert templates.render("{{.Status}} {{.ID}} {{.From}} {{.TimeNano}}", shaped) == (
        f"die {'c' * 64} busybox 1700000000123456789"
    )
    net = system.docker_event(
        api.Event(seq=1, time_nano=0, type="network", action="create", id="app")
    )
    assert "status" not in net and net["Actor"]["ID"] == "app"  # Docker's older fields: not here
    image = system.docker_event(
        api.Event(seq=2, time_nano=0, type="image", action="import", id="sha256:1", name="bb:1")
    )
    assert image["Actor"]["Attributes"] == {"name": "bb:1"}  # the reference, as Docker's


@pytest.mark.parametrize(
    ("n", "decimal", "binary"),
    [
        (0, "0B", "0B"),
        (999, "999B", "999B"),
        (5000, "5kB", "4.883KiB"),
        (1_986_000, "1.986MB", "1.894MiB"),
    ],
)
def test_sizes_as_docker_prints_them(n, decimal, binary) -> None:
    assert format.decimal_size(n) == decimal
    assert format.binary_size(n) == binary


def test_durations_and_times_without_re() -> None:
    assert _go_duration("1m30s") == 90.0 and _go_duration("100ms") == pytest.approx(0.1)
    assert _go_duration("1.5h") == 5400.0 and _go_duration("2x") is None
    assert _go_duration("") is None and _go_duration("10") is None
    assert parse_time("1700000000.5") == 1_700_000_000_500_000_000
    assert parse_time("10m", now=1000.0) == 400 * 10**9


def test_commit_changes_as_dockerfile_instructions() -> None:
    from protocols.image import RunConfig
    from supervisor.images import changes

    base = RunConfig(env=["A=1", "B=2"], cmd=["old"], labels={"x": "1"})
    cfg = changes.apply(
        base,
        [
            "CMD echo hi",
            'ENTRYPOINT ["/init"]',
            "ENV A=9 C='with space'",
            "ENV D plain old form",
            "LABEL y=2",
            "EXPOSE 80 53/udp",
            "VOLUME /data /logs",
            "user nobody",
            "WORKDIR /srv",
            "STOPSIGNAL SIGINT",
        ],
    )
    assert cfg.cmd == ["/bin/sh", "-c", "echo hi"] and cfg.entrypoint == ["/init"]
    assert cfg.env == ["B=2", "A=9", "C=with space", "D=plain old form"]
    assert cfg.labels == {"x": "1", "y": "2"}
    assert set(cfg.exposed_ports) == {"80/tcp", "53/udp"} and set(cfg.volumes) == {"/data", "/logs"}
    assert (cfg.user, cfg.working_dir, cfg.stop_signal) == ("nobody", "/srv", "SIGINT")
    for bad in ("CMD [not json", 'CMD ["a", 1]', "ENV", "RUN make", "LABEL =x"):
        with pytest.raises(SpecError, match="--change"):
            changes.apply(base, [bad])


@pytest.mark.parametrize(
    ("ref", "shown"),
    [
        ("busybox", "busybox:latest"),
        ("busybox:1.36", "busybox:1.36"),
        ("localhost:5000/team/app", "localhost:5000/team/app:latest"),
        ("localhost:5000/team/app:v1", "localhost:5000/team/app:v1"),
        ("app@sha256:" + "0" * 64, "app@sha256:" + "0" * 64),
    ],
)
def test_image_names_in_messages_carry_the_tag(ref: str, shown: str) -> None:
    assert containers.with_tag(ref) == shown


def test_pull_progress_as_docker_draws_it() -> None:
    from supervisor.client.images import Board, progress_text

    assert progress_text("Pull complete", 0, 0) == "Pull complete"
    half = progress_text("Downloading", 26_214_400, 52_428_800)
    assert half.startswith("Downloading [" + "=" * 24 + ">" + " " * 25 + "]")
    assert half.endswith("]  26.2MB/52.4MB")  # decimal units, as Docker prints them
    assert progress_text("Downloading", 0, 10).startswith("Downloading [" + " " * 50 + "]")
    board = Board()
    assert board.update("aaa", "Pulling fs layer") == "aaa: Pulling fs layer\n"
    assert board.update("bbb", "Pulling fs layer") == "bbb: Pulling fs layer\n"
    # The first layer's line is two up: up, clear, rewrite, back down.
    assert board.update("aaa", "Pull complete") == "\x1b[2A\x1b[2K\raaa: Pull complete\x1b[2B\r"
