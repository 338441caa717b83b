"""Fleets (issue #17) end to end: `corral compose` against a real daemon, with
a busybox image imported in each test's daemon. Waits are for states (a
deadline only guards against a hang), never for a time."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import textwrap
import time
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


def project(tmp_path: Path, text: str, name: str = "app") -> Path:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "compose.yaml").write_text(textwrap.dedent(text))
    return d


def compose(daemon, d: Path, *args: str, env: dict | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "compose", *args],
        cwd=d,
        env={**daemon.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def states(daemon, project_name: str = "app") -> dict[str, dict]:
    """name -> {id, state, started} of the project's containers."""
    out = ok(
        daemon.cli(
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={project_name}",
            "--format",
            "{{.ID}} {{.Names}} {{.State}}",
        )
    )
    rows = {}
    for line in out.splitlines():
        cid, name, state = line.split()
        started = ok(daemon.cli("inspect", "-f", "{{.State.StartedAt}}", cid)).strip()
        rows[name] = {"id": cid, "state": state, "started": started}
    return rows


def wait_until(check, what: str, deadline: float = 60.0):
    end = time.monotonic() + deadline
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"never: {what}")
        time.sleep(0.1)


HEALTHY_DB = """
services:
  db:
    image: busybox
    command: sh -c 'while [ ! -f /tmp/ok ]; do sleep 0.1; done; touch /tmp/ready; exec sleep 1000'
    healthcheck: {test: "test -f /tmp/ready", interval: 200ms, retries: 1000}
    volumes: [data:/data]
  web:
    image: busybox
    command: sleep 1000
    depends_on:
      db: {condition: service_healthy}
    environment: {GREETING: "${GREETING:-hello}"}
  worker:
    image: busybox
    command: sh -c 'echo "mode=$$MODE"; exec sleep 1000'
    environment: {MODE: fast}
    depends_on: [db]
volumes: {data: {}}
"""


def test_up_waits_for_health_and_events_prove_the_order(daemon, image, tmp_path):
    d = project(tmp_path, HEALTHY_DB.replace("[ ! -f /tmp/ok ]", "false"))
    out = compose(daemon, d, "up", "-d", env={"GREETING": "hi"})
    ok(out)
    assert " Container app-db-1  Healthy" in out.stderr
    rows = states(daemon)
    assert {n: r["state"] for n, r in rows.items()} == {
        "app-db-1": "running",
        "app-web-1": "running",
        "app-worker-1": "running",
    }
    evs = daemon.events("label=com.docker.compose.project=app")
    healthy = next(i for i, e in enumerate(evs) if e["action"] == "health_status: healthy")
    web_start = next(
        i
        for i, e in enumerate(evs)
        if e["action"] == "start" and e["attributes"]["name"] == "app-web-1"
    )
    assert healthy < web_start
    assert all(e["attributes"]["com.docker.compose.project"] == "app" for e in evs)
    env = ok(daemon.cli("inspect", "-f", "{{json .Config.Env}}", "app-web-1"))
    assert "GREETING=hi" in json.loads(env)  # interpolated from the client's environment
    # ps, ls and logs in Docker Compose's shapes
    ps = ok(compose(daemon, d, "ps")).splitlines()
    assert ps[0].split() == ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]
    assert [line.split()[0] for line in ps[1:]] == ["app-db-1", "app-web-1", "app-worker-1"]
    assert "(healthy)" in ps[1]
    assert ok(compose(daemon, d, "ps", "--services")).split() == ["db", "web", "worker"]
    ls = ok(compose(daemon, d, "ls")).splitlines()
    assert ls[1].split()[:2] == ["app", "running(3)"]
    logs = ok(compose(daemon, d, "logs", "worker"))
    assert logs.strip() == "app-worker-1  | mode=fast"


def test_a_dependency_that_never_becomes_healthy_fails_the_up(daemon, image, tmp_path):
    d = project(
        tmp_path,
        """
        services:
          db:
            image: busybox
            command: sleep 1000
            healthcheck: {test: "false", interval: 100ms, retries: 2}
          web:
            image: busybox
            command: sleep 1000
            depends_on: {db: {condition: service_healthy}}
          other: {image: busybox, command: sleep 1000}
        """,
    )
    p = compose(daemon, d, "up", "-d")
    assert p.returncode == 1
    assert "container app-db-1 is unhealthy" in p.stderr
    rows = states(daemon)
    assert rows["app-web-1"]["state"] == "created"  # made early, as Docker's; never started
    assert rows["app-other-1"]["state"] == "running"  # independent services still come up


def test_change_one_service_only_it_moves(daemon, image, tmp_path):
    d = project(tmp_path, HEALTHY_DB.replace("[ ! -f /tmp/ok ]", "false"))
    ok(compose(daemon, d, "up", "-d"))
    before = states(daemon)
    (d / "compose.yaml").write_text(
        textwrap.dedent(HEALTHY_DB.replace("[ ! -f /tmp/ok ]", "false")).replace(
            "MODE: fast", "MODE: slow"
        )
    )
    out = compose(daemon, d, "up", "-d")
    ok(out)
    assert " Container app-worker-1  Recreated" in out.stderr
    after = states(daemon)
    for name in ("app-db-1", "app-web-1"):
        assert after[name] == before[name]  # same id, same StartedAt
    assert after["app-worker-1"]["id"] != before["app-worker-1"]["id"]
    assert "mode=slow" in ok(compose(daemon, d, "logs", "worker"))
    # nothing changed: nothing moves
    ok(compose(daemon, d, "up", "-d"))
    assert states(daemon) == after


def test_scale_up_and_down(daemon, image, tmp_path):
    d = project(tmp_path, "services: {web: {image: busybox, command: sleep 1000}}")
    ok(compose(daemon, d, "up", "-d", "--scale", "web=3"))
    three = states(daemon)
    assert sorted(three) == ["app-web-1", "app-web-2", "app-web-3"]
    ok(compose(daemon, d, "up", "-d", "--scale", "web=1", "-t", "0"))
    one = states(daemon)
    assert list(one) == ["app-web-1"] and one["app-web-1"] == three["app-web-1"]


def test_down_with_volumes_leaves_nothing(daemon, image, tmp_path):
    d = project(tmp_path, HEALTHY_DB.replace("[ ! -f /tmp/ok ]", "false"))
    ok(compose(daemon, d, "up", "-d"))
    assert "app_data" in ok(daemon.cli("volume", "ls", "-q")).split()
    assert "app_default" in ok(daemon.cli("network", "ls", "--format", "{{.Name}}")).split()
    out = compose(daemon, d, "down", "-v", "-t", "0")
    ok(out)
    assert " Network app_default  Removed" in out.stderr
    assert states(daemon) == {}
    assert "app_data" not in ok(daemon.cli("volume", "ls", "-q")).split()
    assert "app_default" not in ok(daemon.cli("network", "ls", "--format", "{{.Name}}")).split()
    assert ok(compose(daemon, d, "ls", "-a")).splitlines()[1:] == []


def test_unknown_and_unsupported_keys_are_errors_naming_their_path(daemon, image, tmp_path):
    d = project(tmp_path, "services: {web: {image: busybox, devices_cgroup_rules: [a]}}")
    p = compose(daemon, d, "up", "-d")
    assert p.returncode == 1
    assert "services.web.devices_cgroup_rules: unknown key" in p.stderr
    d = project(tmp_path, "services: {web: {image: busybox, secrets: [a]}}", "b")
    p = compose(daemon, d, "config")
    assert p.returncode == 1 and "services.web.secrets: not supported" in p.stderr
    assert states(daemon) == {}


def test_two_projects_with_the_same_service_names(daemon, image, tmp_path):
    text = "services: {web: {image: busybox, command: sleep 1000}}"
    a, b = project(tmp_path, text, "one"), project(tmp_path, text, "two")
    ok(compose(daemon, a, "up", "-d"))
    ok(compose(daemon, b, "up", "-d"))
    assert list(states(daemon, "one")) == ["one-web-1"]
    assert list(states(daemon, "two")) == ["two-web-1"]
    ok(compose(daemon, a, "down", "-t", "0"))
    assert states(daemon, "one") == {} and list(states(daemon, "two")) == ["two-web-1"]


def _gated_up(daemon, tmp_path, midway) -> None:
    """`compose up -d` of a project whose db turns healthy only when the test says
    (exec touch /tmp/ok); `midway()` once db runs and the client waits on it."""
    d = project(tmp_path, HEALTHY_DB)
    client = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "compose", "up", "-d"],
        cwd=d,
        env=daemon.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: states(daemon).get("app-db-1", {}).get("state") == "running", "db runs")
        midway(client)
    finally:
        client.kill()
        client.wait(timeout=60)


def test_the_client_killed_mid_up_the_daemon_finishes(daemon, image, tmp_path):
    _gated_up(daemon, tmp_path, lambda client: client.send_signal(signal.SIGKILL))
    assert states(daemon)["app-web-1"]["state"] == "created"  # waits for db to turn healthy
    ok(daemon.cli("exec", "app-db-1", "touch", "/tmp/ok"))
    rows = wait_until(
        lambda: (s := states(daemon)).get("app-web-1", {}).get("state") == "running" and s,
        "web started by the daemon alone",
    )
    assert rows["app-worker-1"]["state"] == "running"


def test_the_daemon_sigkilled_mid_up_resumes_when_it_starts_again(daemon, image, tmp_path):
    _gated_up(daemon, tmp_path, lambda client: daemon.kill9())
    daemon.start()
    assert states(daemon)["app-web-1"]["state"] == "created"
    ok(daemon.cli("exec", "app-db-1", "touch", "/tmp/ok"))
    wait_until(
        lambda: states(daemon).get("app-web-1", {}).get("state") == "running",
        "web started by the restarted daemon",
    )
    assert "resume" in daemon.log.read_text()


def test_a_healthy_service_is_swapped_with_no_failed_request(daemon, image, tmp_path):
    text = """
        services:
          api:
            image: busybox
            command: sh -c 'mkdir -p /w && echo "$$V" > /w/index.html && exec httpd -f -p 80 -h /w'
            environment: {V: one}
            stop_signal: SIGKILL
            healthcheck: {test: "wget -q -O- http://127.0.0.1/", interval: 200ms, retries: 2}
          probe:
            image: busybox
            command: >-
              sh -c 'while true; do
              if wget -q -O- http://api/ >>/tmp/got 2>/tmp/err; then :;
              else echo "FAIL $$(date +%T) $$(cat /tmp/err)" >>/tmp/got; fi;
              sleep 0.05; done'
        """
    d = project(tmp_path, text)
    ok(compose(daemon, d, "up", "-d"))
    got = lambda: ok(daemon.cli("exec", "app-probe-1", "cat", "/tmp/got"))  # noqa: E731
    wait_until(lambda: "one" in got(), "the probe reaches api")
    (d / "compose.yaml").write_text(textwrap.dedent(text).replace("V: one", "V: two"))
    out = compose(daemon, d, "up", "-d")
    ok(out)
    assert " Container app-api-1-next  Waiting" in out.stderr  # the new one first
    wait_until(lambda: got().splitlines()[-1] == "two", "the probe reaches the new api")
    lines = got().splitlines()
    served = lines[lines.index("one") :]  # from the first answer: the probe starts first
    assert not [x for x in served if x.startswith("FAIL")], served
    assert list(states(daemon)) == ["app-api-1", "app-probe-1"]


def test_stop_start_and_events_of_one_project(daemon, image, tmp_path):
    d = project(
        tmp_path,
        """
        services:
          db: {image: busybox, command: sleep 1000, stop_signal: SIGKILL}
          web: {image: busybox, command: sleep 1000, depends_on: [db], stop_signal: SIGKILL}
        """,
    )
    ok(compose(daemon, d, "up", "-d"))
    out = compose(daemon, d, "stop")
    ok(out)
    stops = [line.split()[1] for line in out.stderr.splitlines() if "Stopping" in line]
    assert stops == ["app-web-1", "app-db-1"]  # dependents first
    assert {r["state"] for r in states(daemon).values()} == {"exited"}
    out = compose(daemon, d, "start")
    starts = [line.split()[1] for line in out.stderr.splitlines() if "Starting" in line]
    assert starts == ["app-db-1", "app-web-1"]
    seen = [
        (e["attributes"]["com.docker.compose.service"], e["action"])
        for e in daemon.events("label=com.docker.compose.project=app")
        if e["action"] in ("die", "start")
    ]
    assert seen[-4:] == [("web", "die"), ("db", "die"), ("db", "start"), ("web", "start")]
    # `compose events` follows the project live (it replays nothing: restart until seen)
    events = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "compose", "events", "--json", "web"],
        cwd=d,
        env=daemon.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sel = selectors.DefaultSelector()
        sel.register(events.stdout, selectors.EVENT_READ)
        line = ""
        for _ in range(100):
            ok(compose(daemon, d, "restart", "web", "-t", "0"))
            if sel.select(timeout=1.0):
                line = events.stdout.readline()
                break
        ev = json.loads(line)
        assert ev["service"] == "web" and ev["type"] == "container"
        assert ev["attributes"]["name"] == "app-web-1"
    finally:
        events.kill()
        events.wait()
        events.stdout.close()


def test_build_in_the_file_builds_missing_images_and_up_build_swaps(daemon, image, tmp_path):
    d = project(
        tmp_path,
        """
        services:
          app:
            build: {context: ./app, args: {WHO: compose}}
            command: sleep 1000
            stop_signal: SIGKILL
        """,
    )
    (d / "app").mkdir()
    (d / "app" / "Dockerfile").write_text(
        'FROM busybox\nARG WHO\nCOPY msg /msg\nRUN echo "built by $WHO" >> /msg\n'
    )
    (d / "app" / "msg").write_text("one\n")
    out = compose(daemon, d, "up", "-d")
    ok(out)
    assert " Service app  Built" in out.stderr
    assert ok(daemon.cli("exec", "app-app-1", "cat", "/msg")) == "one\nbuilt by compose\n"
    first = states(daemon)["app-app-1"]
    ok(compose(daemon, d, "up", "-d"))  # the image is there: no build, nothing moves
    assert states(daemon)["app-app-1"] == first
    (d / "app" / "msg").write_text("two\n")
    out = compose(daemon, d, "up", "-d", "--build")
    ok(out)
    assert " Container app-app-1  Recreated" in out.stderr  # a new image: a new container
    assert ok(daemon.cli("exec", "app-app-1", "cat", "/msg")) == "two\nbuilt by compose\n"
