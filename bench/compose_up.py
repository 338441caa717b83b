"""`compose up -d` of a 20-service project until every service runs (and is
healthy where it has a check): `corral compose` against Debian's
`docker-compose` (1.29) driving dockerd and `podman-compose` (PyPI) driving
podman, rounds interleaved; then the swap of one changed service.

    sudo .venv/bin/python bench/compose_up.py [--rounds N] [--services N]

Needs: apt-get install docker.io docker-compose podman; pip install
podman-compose (into .venv). Each engine that is missing is left out, said why.

The project: busybox services running `httpd`, every fourth with a health
check (interval 500ms, as every engine takes it: the first probe after one
interval), each of the others depending on one of those with
`condition: service_healthy`, so `up` itself waits as the file says. The clock
runs from `up -d` until the engine's own `ps` shows every container running
and every checked one healthy; `down -v -t 0` between rounds is not timed.

The swap (corral and docker-compose): a project of `api` (health-checked, no
fixed host port), four other services, and a `probe` service that requests
every service by name in a loop and prints `ok NAME` or `FAIL NAME`, with the
engines' log timestamps. One service's environment is changed and `up -d` run
again; reported: the time from that `up -d` to the probe's first answer from
the new container, and the failed requests to the other services (and to the
changed one) from the edit until then.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    CORRAL,
    REPO,
    DaemonProc,
    fmt,
    fresh_bytecode,
    import_image,
    log,
    make_bundle,
    podman_cli,
    reexec_in_private_mountns,
    rootfs_tar,
    start_dockerd,
    summary,
)

IMAGE = "bench-busybox"


def project_text(n: int, checks: bool = True) -> str:
    lines = ["services:"]
    for i in range(n):
        lines += [f"  s{i:02d}:", f"    image: {IMAGE}", "    command: httpd -f -p 80 -h /etc"]
        if not checks:
            continue
        if i % 4 == 0:
            lines += [
                "    healthcheck:",
                '      test: ["CMD", "true"]',
                "      interval: 500ms",
                "      retries: 3",
            ]
        else:
            lines += ["    depends_on:", f"      s{i // 4 * 4:02d}: {{condition: service_healthy}}"]
    return "\n".join(lines) + "\n"


class Engine:
    def __init__(
        self,
        name: str,
        compose: list[str],
        ps: list[str],
        env: dict | None = None,
        *,
        checks: bool = True,
    ):
        self.name, self.compose, self.ps, self.env = name, compose, ps, env or dict(os.environ)
        self.checks = checks  # False: the engine runs no health checks here (podman)

    def run(self, d: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(
            [*self.compose, *args], cwd=d, env=self.env, capture_output=True, text=True
        )
        if check and p.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)}: {p.stderr[-2000:]}")
        return p

    def ready(self, project: str, n: int, checked: int) -> bool:
        p = subprocess.run(
            [
                *self.ps,
                "ps",
                "--filter",
                f"label=com.docker.compose.project={project}",
                "--format",
                "{{.Status}}",
            ],
            env=self.env,
            capture_output=True,
            text=True,
        )
        rows = p.stdout.splitlines()
        up = [r for r in rows if r.startswith("Up")]
        healthy = [r for r in up if "(healthy)" in r]
        return len(up) == n and (len(healthy) == checked or not self.checks)


def time_up(e: Engine, d: Path, project: str, n: int, checks: bool = True) -> float:
    checked = len(range(0, n, 4)) if checks else 0
    t = time.perf_counter()
    e.run(d, "-p", project, "up", "-d")
    while not e.ready(project, n, checked):
        time.sleep(0.02)
    ms = (time.perf_counter() - t) * 1000
    e.run(d, "-p", project, "down", "-v", "-t", "0")
    return ms


SWAP = """
services:
  api:
    image: {image}
    command: sh -c 'mkdir -p /w && echo "$$V" > /w/index.html && exec httpd -f -p 80 -h /w'
    environment: {{V: "{version}"}}
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 500ms
      retries: 3
{others}
  probe:
    image: {image}
    command:
      - sh
      - -c
      - |
        while true; do
          for s in api {names}; do
            if v=$$(wget -q -O- http://$$s/index.html 2>/dev/null)
            then echo "ok $$s $$v"; else echo "FAIL $$s"; fi
          done
          sleep 0.05
        done
"""


def swap_text(version: str, others: int) -> str:
    svc = "\n".join(
        f"  o{i}:\n    image: {IMAGE}\n    command: sh -c 'mkdir -p /w && echo o{i} > "
        f"/w/index.html && exec httpd -f -p 80 -h /w'\n    stop_signal: SIGKILL"
        for i in range(others)
    )
    names = " ".join(f"o{i}" for i in range(others))
    return SWAP.format(image=IMAGE, version=version, others=svc, names=names)


def _stamp(line: str) -> tuple[float, str]:
    """(seconds since the epoch, text) of a `logs -t` line, any engine's."""
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # docker-compose colours its prefixes
    text = line.split("|", 1)[1].strip() if "|" in line else line
    ts, _, rest = text.partition(" ")
    secs, _, frac = ts.rstrip("Z").partition(".")
    base = time.mktime(time.strptime(secs, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return base + float("0." + (frac[:9] or "0")), rest


def swap(e: Engine, d: Path, project: str, others: int = 4) -> dict:
    (d / "docker-compose.yml").write_text(swap_text("one", others))
    e.run(d, "-p", project, "up", "-d")
    deadline = time.monotonic() + 60
    while "ok api one" not in e.run(d, "-p", project, "logs", "probe").stdout:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{e.name}: the probe never reached api")
        time.sleep(0.1)
    (d / "docker-compose.yml").write_text(swap_text("two", others))
    t0 = time.time()
    e.run(d, "-p", project, "up", "-d")
    deadline = time.monotonic() + 60
    while "ok api two" not in e.run(d, "-p", project, "logs", "probe").stdout:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{e.name}: the probe never reached the new api")
        time.sleep(0.1)
    lines = e.run(d, "-p", project, "logs", "-t", "probe").stdout.splitlines()
    e.run(d, "-p", project, "down", "-v", "-t", "0")
    first_new, failed_other, failed_changed = None, 0, 0
    for line in lines:
        try:
            when, text = _stamp(line)
        except ValueError:  # "Attaching to ...": not a log line
            continue
        if when < t0:
            continue
        if text.startswith("FAIL api"):
            failed_changed += 1
        elif text.startswith("FAIL"):
            failed_other += 1
        elif text.startswith("ok api two") and first_new is None:
            first_new = when
    if (first_new or t0) - t0 > 5:  # slow: what the probe saw, for the log
        log(f"{e.name}: slow swap; the probe's lines since the edit:")
        for line in lines:
            try:
                when, text = _stamp(line)
            except ValueError:
                continue
            if when >= t0 and (not text.startswith("ok") or "api" in text):
                log(f"  +{when - t0:7.3f}s {text}")
    return {
        "serving_ms": ((first_new or t0) - t0) * 1000,
        "failed_other": failed_other,
        "failed_changed": failed_changed,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--services", type=int, default=20)
    ap.add_argument("--swaps", type=int, default=3)
    args = ap.parse_args()
    reexec_in_private_mountns()
    fresh_bytecode()
    base = Path(tempfile.mkdtemp(prefix="cb-compose-", dir="/tmp"))
    daemon = DaemonProc(base / "corral", cgroup_parent="/corral-bench-compose")
    (base / "corral").mkdir()
    dockerd = None
    engines: list[Engine] = []
    try:
        bundle = make_bundle(base, ["/bin/true"])
        tar = rootfs_tar(bundle / "rootfs", base)
        daemon.start()
        cenv = {**os.environ, "CORRAL_SOCKET": daemon.socket}
        import_image([str(CORRAL)], tar, IMAGE, env=cenv)
        engines.append(Engine("corral", [str(CORRAL), "compose"], [str(CORRAL)], cenv))
        dc = shutil.which("docker-compose")
        dockerd = start_dockerd(base) if dc else None
        if dc is None:
            log("docker-compose: not installed (apt-get install docker-compose): left out")
        if dockerd:
            import_image(dockerd[1], tar, IMAGE)
            host = dockerd[1][2]
            engines.append(
                Engine("docker-compose", [dc], dockerd[1], {**os.environ, "DOCKER_HOST": host})
            )
        pc = shutil.which("podman-compose") or str(REPO / ".venv" / "bin" / "podman-compose")
        podman = podman_cli(base)
        if podman and os.path.exists(pc):
            import_image(podman, tar, IMAGE)
            # podman 4.3 runs health checks from systemd timers: none without systemd
            # (here), so podman-compose ignores service_healthy, and its clock stops
            # when every container runs. Its limits as daemon_run.py gives them.
            limits = "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
            engines.append(
                Engine(
                    "podman-compose",
                    [
                        pc,
                        "--podman-path",
                        podman[0],
                        "--podman-args",
                        " ".join(podman[1:]),
                        "--podman-run-args",
                        limits,
                    ],
                    podman,
                    checks=False,
                )
            )
        elif podman:
            log("podman-compose: not installed (.venv/bin/pip install podman-compose): left out")
        d = base / "project"
        d.mkdir()
        (d / "docker-compose.yml").write_text(project_text(args.services))
        for e in list(engines):  # a warm-up each; an engine that cannot do it is left out
            try:
                time_up(e, d, "warm", args.services)
            except RuntimeError as err:
                log(f"{e.name}: left out: {err}")
                e.run(d, "-p", "warm", "down", "-v", "-t", "0", check=False)
                engines.remove(e)
        plain = base / "plain"
        plain.mkdir()
        (plain / "docker-compose.yml").write_text(project_text(args.services, checks=False))
        results: dict[str, list[float]] = {e.name: [] for e in engines}
        bare: dict[str, list[float]] = {e.name: [] for e in engines}
        for r in range(args.rounds):
            for e in engines:
                results[e.name].append(time_up(e, d, f"r{r}", args.services))
                bare[e.name].append(time_up(e, plain, f"p{r}", args.services, checks=False))
            log(f"round {r}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in results.items()))
        for title, got in (
            ("until running and healthy (5 health-checked, 15 waiting on them)", results),
            ("without health checks or dependencies, until running", bare),
        ):
            s = {k: summary(v) for k, v in got.items()}
            print(f"\n`compose up -d` of {args.services} services {title}\n")
            print("| engine | median | p10 - p90 | rounds | corral is |")
            print("| --- | --- | --- | --- | --- |")
            for k, v in s.items():
                ratio = (
                    f"{v['median'] / s['corral']['median']:.2f}x faster" if k != "corral" else ""
                )
                print(f"{fmt(k, v)} {ratio} |")
        swaps: dict[str, list[dict]] = {}
        for e in engines:
            if e.name == "podman-compose":
                continue  # its networks need aardvark-dns for names, not installed here
            for i in range(args.swaps):
                try:
                    swaps.setdefault(e.name, []).append(swap(e, d, f"sw{i}"))
                except RuntimeError as err:
                    log(f"swap: {e.name}: {err}")
                    e.run(d, "-p", f"sw{i}", "down", "-v", "-t", "0", check=False)
                    break
        print("\nSwap of one changed service (api: health-checked, no fixed port)\n")
        print(
            "| engine | edit to serving: median (all) | failed requests, other services | "
            "failed requests, the changed one | swaps |"
        )
        print("| --- | --- | --- | --- | --- |")
        for k, rows in swaps.items():
            ms = summary([r["serving_ms"] for r in rows])
            each = ", ".join(f"{r['serving_ms']:.0f}" for r in rows)
            other = sum(r["failed_other"] for r in rows)
            changed = sum(r["failed_changed"] for r in rows)
            print(f"| {k} | {ms['median']:.0f} ms ({each}) | {other} | {changed} | {len(rows)} |")
        print("\n" + json.dumps({"up": results, "up_plain": bare, "swap": swaps}))
    finally:
        for e in engines:
            for p in (
                "warm",
                *(f"r{r}" for r in range(args.rounds)),
                *(f"sw{i}" for i in range(args.swaps)),
            ):
                e.run(base / "project", "-p", p, "down", "-v", "-t", "0", check=False)
        shutil.copy(base / "corral" / "daemon.log", "/tmp/bench-compose-daemon.log")
        daemon.stop()
        if dockerd:
            dockerd[0].terminate()
            dockerd[0].wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
