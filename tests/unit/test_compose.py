"""The Compose file as Corral reads it: interpolation, .env, the merge of
several files, the check of every key, short forms made long, profiles, the
service hash and order, and the containers a service becomes. Pure logic: no
root, no daemon."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from supervisor.compose import ComposeError, load, plan
from supervisor.compose.interpolate import InterpolationError, interpolate, read_env_file
from supervisor.compose.render import config_text, go_duration


def _project(tmp_path: Path, text: str, *more: str, env=None, **opts):
    files = []
    for i, t in enumerate((text, *more)):
        f = tmp_path / f"c{i}.yaml"
        f.write_text(textwrap.dedent(t))
        files.append(str(f))
    o = load.Options(files=files, environ=env or {}, **opts)
    return load.load(o, cwd=str(tmp_path))


# -- interpolation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,want",
    [
        ("${A}", "a"),
        ("$A-x", "a-x"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${A:+yes}", "yes"),
        ("${EMPTY:+yes}", ""),
        ("${EMPTY+yes}", "yes"),
        ("$$A", "$A"),
        ("${UNSET:-${A}b}", "ab"),
        ("cost: $5", "cost: $5"),
    ],
)
def test_interpolation_forms(text, want):
    assert interpolate(text, {"A": "a", "EMPTY": ""}) == want


def test_a_required_variable_stops_the_load_naming_it_and_the_path(tmp_path):
    assert interpolate("${A:?set A}", {"A": "1"}) == "1"
    with pytest.raises(InterpolationError, match="required variable TAG is missing a value: tag"):
        interpolate("${TAG:?tag}", {"TAG": ""})
    with pytest.raises(ComposeError, match=r"services\.web\.image: required variable TAG"):
        _project(tmp_path, "services: {web: {image: 'busybox:${TAG:?no tag}'}}")


def test_an_unset_variable_is_empty_with_docker_s_warning(tmp_path):
    loaded = _project(tmp_path, "services: {web: {image: 'busybox${NOPE}'}}")
    assert loaded.project.services["web"].image == "busybox"
    assert loaded.warnings == ['The "NOPE" variable is not set. Defaulting to a blank string.']


def test_dot_env_under_the_shell_and_env_file(tmp_path):
    (tmp_path / ".env").write_text("TAG=1.0\nNAME='lit $X'\n# c\nexport MODE=\"fast\"\n")
    (tmp_path / "web.env").write_text("FROM_FILE=yes\nMODE=file\n")
    loaded = _project(
        tmp_path,
        """
        services:
          web:
            image: busybox:${TAG}
            env_file: web.env
            environment: [MODE, "NAME=${NAME}", ONLY_SHELL]
        """,
        env={"TAG": "2.0", "ONLY_SHELL": "s"},
    )
    web = loaded.project.services["web"]
    assert web.image == "busybox:2.0"  # the shell wins over .env
    assert web.environment == {
        "FROM_FILE": "yes",
        "MODE": "fast",  # environment's bare MODE takes .env's value, over env_file's
        "NAME": "lit $X",
        "ONLY_SHELL": "s",
    }


def test_env_file_lines(tmp_path):
    f = tmp_path / "e"
    f.write_text("A=1 # comment\nB=\"two words\"\nC='$A'\nD=${A}x\nE\n")
    assert read_env_file(str(f), {"E": "shell"}) == {
        "A": "1",
        "B": "two words",
        "C": "$A",
        "D": "1x",
        "E": "shell",
    }
    f.write_text("not a line\n")
    with pytest.raises(ValueError, match=":1: 'not a line' is not KEY=VALUE"):
        read_env_file(str(f))


# -- keys ------------------------------------------------------------------------------------


def test_keys_not_carried_out_are_refused_by_path(tmp_path):
    with pytest.raises(ComposeError, match=r"services\.web\.devices_cgroup: unknown key"):
        _project(tmp_path, "services: {web: {image: x, devices_cgroup: []}}")
    with pytest.raises(ComposeError, match=r"services\.web\.secrets: not supported"):
        _project(tmp_path, "services: {web: {image: x, secrets: [a]}}")
    with pytest.raises(ComposeError, match=r"services\.web\.deploy\.placement: not supported"):
        _project(tmp_path, "services: {web: {image: x, deploy: {placement: {}}}}")
    with pytest.raises(ComposeError, match=r"networks\.n\.internal: not supported"):
        _project(tmp_path, "services: {web: {image: x}}\nnetworks: {n: {internal: true}}")
    with pytest.raises(ComposeError, match=r"services\.web\.volumes\[0\]\.bind\.x: unknown key"):
        _project(
            tmp_path,
            "services: {web: {image: x, volumes: "
            "[{type: bind, source: /, target: /a, bind: {x: 1}}]}}",
        )
    with pytest.raises(ComposeError, match=r"configs: not supported"):
        _project(tmp_path, "services: {web: {image: x}}\nconfigs: {}")


def test_extension_keys_and_anchors_are_accepted(tmp_path):
    loaded = _project(
        tmp_path,
        """
        x-base: &base {image: busybox, restart: always}
        services:
          a: {<<: *base, x-note: mine}
          b: *base
        """,
    )
    assert {s.restart for s in loaded.project.services.values()} == {"always"}


def test_values_of_the_wrong_type_say_where(tmp_path):
    with pytest.raises(ComposeError, match=r"services\.web\.ports\[0\]: invalid port 'eighty'"):
        _project(tmp_path, "services: {web: {image: x, ports: [eighty]}}")
    with pytest.raises(ComposeError, match=r"services\.web\.init: must be true or false"):
        _project(tmp_path, "services: {web: {image: x, init: maybe}}")
    with pytest.raises(ComposeError, match="neither an image nor a build context"):
        _project(tmp_path, "services: {web: {command: [a]}}")
    with pytest.raises(ComposeError, match='depends on undefined service "db"'):
        _project(tmp_path, "services: {web: {image: x, depends_on: [db]}}")
    with pytest.raises(ComposeError, match="refers to undefined volume data"):
        _project(tmp_path, "services: {web: {image: x, volumes: ['data:/d']}}")
    with pytest.raises(ComposeError, match="invalid YAML"):
        _project(tmp_path, "services: {web: [")


def test_yaml_1_2_booleans(tmp_path):
    loaded = _project(
        tmp_path, "services: {web: {image: x, environment: {A: yes, B: on, C: true}}}"
    )
    assert loaded.project.services["web"].environment == {"A": "yes", "B": "on", "C": "true"}


# -- merging ---------------------------------------------------------------------------------


def test_files_merge_in_order(tmp_path):
    loaded = _project(
        tmp_path,
        """
        services:
          web:
            image: busybox
            command: [a]
            ports: ["80"]
            environment: {A: "1", B: "1"}
            volumes: ["/v:/data", "/x:/keep"]
            labels: [l1=a]
        """,
        """
        services:
          web:
            command: [b]
            ports: ["81"]
            environment: [B=2]
            volumes: ["/w:/data"]
            labels: {l2: b}
        """,
    )
    web = loaded.project.services["web"]
    assert web.command == ["b"]  # replaced
    assert [p.target for p in web.ports] == [80, 81]  # appended
    assert web.environment == {"A": "1", "B": "2"}  # merged by key
    assert {(v.source, v.target) for v in web.volumes} == {("/w", "/data"), ("/x", "/keep")}
    assert web.labels == {"l1": "a", "l2": "b"}


# -- normal forms ----------------------------------------------------------------------------


def test_short_and_long_forms_normalize_to_the_same_hash(tmp_path):
    short = _project(
        tmp_path,
        """
        services:
          web:
            image: busybox
            command: httpd -f -p "8080"
            ports: ["127.0.0.1:8080:80/tcp"]
            environment: [A=1]
            healthcheck: {test: "true", interval: 1m30s}
            stop_grace_period: 1500ms
            depends_on: [db]
          db: {image: busybox}
        """,
    ).project
    long = _project(
        tmp_path,
        """
        services:
          web:
            image: busybox
            command: [httpd, -f, -p, "8080"]
            ports: [{target: 80, published: "8080", host_ip: 127.0.0.1, protocol: tcp}]
            environment: {A: 1}
            healthcheck: {test: [CMD-SHELL, "true"], interval: 90s}
            stop_grace_period: 1.5s
            depends_on: {db: {condition: service_started}}
          db: {image: busybox}
        """,
    ).project
    assert short.services["web"] == long.services["web"]
    assert plan.config_hash(short.services["web"]) == plan.config_hash(long.services["web"])


def test_replicas_do_not_change_the_hash_but_anything_else_does(tmp_path):
    def hashed(extra: str) -> str:
        p = _project(tmp_path, f"services: {{web: {{image: busybox{extra}}}}}").project
        return plan.config_hash(p.services["web"])

    base = hashed("")
    assert hashed(", deploy: {replicas: 3}") == base
    assert hashed(", scale: 2") == base
    assert hashed(", environment: {A: '1'}") != base
    assert hashed(", command: [sh]") != base


def test_volumes_forms(tmp_path):
    p = _project(
        tmp_path,
        """
        services:
          web:
            image: x
            volumes:
              - data:/data:ro
              - ./src:/src
              - /anon
              - {type: tmpfs, target: /t, tmpfs: {size: 1m}}
        volumes: {data: {name: shared-data}}
        """,
    ).project
    v = p.services["web"].volumes
    assert (v[0].type, v[0].source, v[0].read_only) == ("volume", "data", True)
    assert (v[1].type, v[1].source) == ("bind", str(tmp_path / "src"))
    assert (v[2].type, v[2].source) == ("volume", "")
    assert (v[3].type, v[3].tmpfs_size) == ("tmpfs", 1024 * 1024)
    cfg = plan.container_config(p, "web", 1)
    assert cfg.mounts[0].source == "shared-data"  # the file's name for it


def test_profiles(tmp_path):
    text = """
        services:
          web: {image: x}
          debug: {image: x, profiles: [dev]}
          tool: {image: x, profiles: [ops], depends_on: [debug]}
        """
    assert set(_project(tmp_path, text).project.services) == {"web"}
    assert set(_project(tmp_path, text, profiles=["dev"]).project.services) == {"web", "debug"}
    with pytest.raises(ComposeError, match='"tool" depends on service "debug", which is not'):
        _project(tmp_path, text, profiles=["ops"])
    named = _project(tmp_path, text, services=["debug"]).project
    assert set(named.services) == {"web", "debug"}


def test_project_name_rules(tmp_path):
    assert _project(tmp_path, "services: {a: {image: x}}").project.name == tmp_path.name.lower()
    assert _project(tmp_path, "name: Mine\nservices: {a: {image: x}}").project.name == "mine"
    p = _project(tmp_path, "name: mine\nservices: {a: {image: x}}", project_name="other")
    assert p.project.name == "other"
    with pytest.raises(ComposeError, match="project name"):
        _project(tmp_path, "services: {a: {image: x}}", project_name="---")


# -- the plan --------------------------------------------------------------------------------


def test_order_and_cycles(tmp_path):
    p = _project(
        tmp_path,
        """
        services:
          web: {image: x, depends_on: [api, cache]}
          api: {image: x, depends_on: [db]}
          db: {image: x}
          cache: {image: x}
        """,
    ).project
    order = plan.order(p)
    assert order.index("db") < order.index("api") < order.index("web")
    assert order.index("cache") < order.index("web")
    assert plan.with_dependencies(p, ["api"]) == ["db", "api"]
    cyc = _project(
        tmp_path, "services: {a: {image: x, depends_on: [b]}, b: {image: x, depends_on: [a]}}"
    ).project
    with pytest.raises(ComposeError, match="dependency cycle detected: a -> b -> a"):
        plan.order(cyc)


def test_a_replica_s_configuration(tmp_path):
    p = _project(
        tmp_path,
        """
        name: app
        services:
          db: {image: busybox}
          web:
            image: busybox
            command: [httpd, -f]
            ports: ["8080:80"]
            networks: {front: {aliases: [www]}, back: {}}
            depends_on: {db: {condition: service_healthy}}
            healthcheck: {test: [CMD, wget, -q, localhost], interval: 2s, retries: 5}
            deploy:
              resources: {limits: {cpus: "0.5", memory: 64m, pids: 50}}
              restart_policy: {condition: on-failure, max_attempts: 3}
            stop_grace_period: 2.5s
            ulimits: {nofile: {soft: 100, hard: 200}, nproc: 10}
            logging: {driver: local, options: {max-size: 1m, max-file: "2"}}
        networks: {front: {}, back: {}}
        """,
    ).project
    cfg = plan.container_config(p, "web", 2, image_id="sha256:abc")
    assert cfg.name == "app-web-2" and cfg.image == "busybox"
    assert cfg.labels[plan.PROJECT] == "app" and cfg.labels[plan.SERVICE] == "web"
    assert cfg.labels[plan.NUMBER] == "2" and cfg.labels[plan.IMAGE] == "sha256:abc"
    assert cfg.labels[plan.HASH] == plan.config_hash(p.services["web"])
    assert cfg.labels[plan.DEPENDS_ON] == "db:service_healthy:false"
    assert cfg.network == "app_back" and cfg.network_aliases == ["web"]
    assert plan.extra_networks(p, "web") == [("front", "app_front")]
    assert plan.aliases(p, "web", "front") == ["web", "www"]
    assert cfg.ports == ["8080:80/tcp"]
    assert cfg.health_cmd == ["wget", "-q", "localhost"] and cfg.health_retries == 5
    assert (cfg.cpus, cfg.memory, cfg.pids_limit) == (0.5, 64 * 1024**2, 50)
    assert cfg.restart == "on-failure:3" and cfg.stop_timeout == 3
    assert cfg.ulimits == {"nofile": (100, 200), "nproc": (10, 10)}
    assert (cfg.log_max_size, cfg.log_max_files) == (1024**2, 2)


def test_container_name_allows_one_replica(tmp_path):
    with pytest.raises(ComposeError, match="a name is one container's"):
        _project(tmp_path, "services: {a: {image: x, container_name: one, scale: 2}}")


def test_config_prints_durations_as_go_does(tmp_path):
    assert [go_duration(s) for s in (0, 0.5, 1, 90, 3600, 1.5)] == [
        "0s",
        "500ms",
        "1s",
        "1m30s",
        "1h0m0s",
        "1.5s",
    ]
    p = _project(
        tmp_path, "services: {web: {image: x, healthcheck: {test: 'true', interval: 90s}}}"
    ).project
    text = config_text(p)
    assert "interval: 1m30s" in text and "default: null" in text


def test_the_example_webapp_reads_as_its_readme_says():
    root = Path(__file__).resolve().parents[2] / "examples" / "webapp"
    p = load.load(load.Options(files=[str(root / "compose.yaml")], environ={})).project
    assert p.name == "webapp" and plan.order(p) == ["db", "web", "worker"]
    assert p.services["web"].environment["DB_HOST"] == "db"  # the YAML merge key
    assert p.services["worker"].environment["DB_PASSWORD"] == "app-secret"
    assert plan.container_config(p, "web", 1).ports == ["8080:80/tcp"]
