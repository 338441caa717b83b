"""Corral against crun, here and in the pure cgroup v2 VM: the same ratios?

    sudo .venv/bin/python bench/v2_ratios.py [--rounds 40] [--containers 100]

Two measures, each as a ratio to crun measured in the same run on the same
machine (absolute times in a software-emulated VM mean nothing):

- runtime start: one busybox /bin/true bundle (Corral's default spec), run and
  removed: Corral's Python API (Runtime.run), `corral runtime run` (the whole
  process), `crun run` (the whole process); rounds interleaved.
- the fleet: N `sleep` containers started one after another through the
  daemon's protocol (create + start), against N `crun run -d` of the same
  bundle; then all removed.

The script runs them here (on a hybrid v1 host inside a private mount
namespace where crun accepts the cgroups, as bench/runtime_start.py does),
then the same script with --inside in the VM (scripts/in_v2vm.sh: Debian's
python3, systemd as PID 1, cgroup v2 only), and prints both side by side.
"""

from __future__ import annotations

import argparse
import json
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
    fresh_bytecode,
    log,
    make_bundle,
    reexec_in_private_mountns,
    spawn_wait,
    summary,
)


def measure(rounds: int, containers: int) -> dict:
    """Both measures where this runs; medians and spreads in ms."""
    from protocols.lite import api
    from supervisor.client.connection import Client
    from supervisor.runtime import Runtime
    from supervisor.runtime.cgroups import remove_parent

    crun = shutil.which("crun")
    if crun is None:
        raise SystemExit("v2_ratios: crun is not installed here")
    base = Path(tempfile.mkdtemp(prefix="corral-v2r-", dir="/var/tmp"))
    state = base / "state"
    out: dict = {"cgroup": "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1"}
    try:
        bundle = make_bundle(base, ["/bin/true"])
        rt = Runtime(state / "api", cgroup_parent="/corral-v2r")
        samples: dict[str, list[float]] = {
            "api": [], "cli": [], "crun": [], "python": [], "true": []
        }  # fmt: skip
        for i in range(3):  # warm caches
            rt.run(f"warm{i}", bundle, stdio=(0, 1, 2))
        for i in range(rounds):
            t = time.perf_counter()
            assert rt.run(f"a{i}", bundle, stdio=(0, 1, 2)) == 0
            samples["api"].append((time.perf_counter() - t) * 1000)
            cli = [str(CORRAL), "runtime", "--root", str(state / "cli"), "--cgroup-parent",
                   "/corral-v2r", "run", "-b", str(bundle), f"c{i}"]  # fmt: skip
            samples["cli"].append(spawn_wait(cli))
            # What emulation does to each kind of work: an interpreter's start, an exec.
            samples["python"].append(spawn_wait([sys.executable, "-c", "pass"]))
            samples["true"].append(spawn_wait(["/bin/true"]))
            samples["crun"].append(
                spawn_wait([crun, "--root", str(state / "crun"), "run", "-b", str(bundle), f"r{i}"])
            )
        out["start"] = {k: summary(v) for k, v in samples.items()}
        net = [c - p for c, p in zip(samples["cli"], samples["python"], strict=True)]
        out["start"]["cli_net"] = summary(net)

        sleeper = make_bundle(base / "s", ["sleep", "1000000"])
        daemon = DaemonProc(base / "d", cgroup_parent="/corral-v2r-d")
        (base / "d").mkdir()
        daemon.start()
        try:
            c = Client(daemon.socket)
            cfg = api.ContainerConfig(
                network="none", rootfs=str(sleeper / "rootfs"), cmd=["sleep", "1000000"]
            )
            t = time.perf_counter()
            for _ in range(containers):
                c.call(api.Start(id=c.call(api.Create(config=cfg)).id))
            out["fleet_corral_s"] = time.perf_counter() - t
            c.close()
        finally:
            daemon.stop()
        t = time.perf_counter()
        for i in range(containers):
            spawn_wait(
                [crun, "--root", str(state / "crun-d"), "run", "-d", "-b", str(sleeper), f"f{i}"]
            )
        out["fleet_crun_s"] = time.perf_counter() - t
        for i in range(containers):
            subprocess.run(
                [crun, "--root", str(state / "crun-d"), "delete", "-f", f"f{i}"],
                capture_output=True,
            )
        out["containers"] = containers
        return out
    finally:
        for st in Runtime(state / "api", cgroup_parent="/corral-v2r").list():
            Runtime(state / "api").delete(st.id, force=True)
        remove_parent("/corral-v2r")
        shutil.rmtree(base, ignore_errors=True)


def ratios(m: dict) -> dict[str, float]:
    crun = m["start"]["crun"]["median"]
    return {
        "api": m["start"]["api"]["median"] / crun,
        "cli": m["start"]["cli"]["median"] / crun,
        "cli_net": m["start"]["cli_net"]["median"] / crun,
        "fleet": m["fleet_corral_s"] / m["fleet_crun_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--inside", action="store_true", help="measure here, print JSON")
    args = ap.parse_args()
    if args.inside:
        print("V2RATIOS " + json.dumps(measure(args.rounds, args.containers)), flush=True)
        return
    reexec_in_private_mountns()
    fresh_bytecode()
    log("measuring on this host")
    host = measure(args.rounds, args.containers)
    log("measuring in the v2 VM (scripts/in_v2vm.sh)")
    p = subprocess.run(
        ["bash", str(REPO / "scripts/in_v2vm.sh"), ".venv/bin/python", "bench/v2_ratios.py",
         "--inside", "--rounds", str(args.rounds), "--containers", str(args.containers)],
        capture_output=True, text=True,
    )  # fmt: skip
    line = next((x for x in p.stdout.splitlines() if x.startswith("V2RATIOS ")), None)
    if line is None:
        raise SystemExit(f"v2_ratios: the VM run gave no result (rc {p.returncode}):\n"
                         f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")  # fmt: skip
    vm = json.loads(line.removeprefix("V2RATIOS "))
    rows = [
        ("Runtime.run (Python API), /bin/true", "api"),
        ("`corral runtime run`, whole process", "cli"),
        ("`corral runtime run` minus the bare interpreter's start", "cli_net"),
        ("`crun run`, whole process", "crun"),
        ("bare `python -c pass`", "python"),
        ("bare `/bin/true` (spawn, exec, exit)", "true"),
    ]
    # The last column: how much slower emulation makes each kind of work.
    print(
        f"| what | this host ({host['cgroup']}) median, p10 - p90 "
        "| v2 VM median, p10 - p90 | VM / host |"
    )
    print("| --- | --- | --- | --- |")
    for name, key in rows:
        h, v = host["start"][key], vm["start"][key]
        print(
            f"| {name} | {h['median']:.2f} ms ({h['p10']:.2f} - {h['p90']:.2f}) "
            f"| {v['median']:.2f} ms ({v['p10']:.2f} - {v['p90']:.2f}) "
            f"| {v['median'] / h['median']:.1f}x |"
        )
    n = host["containers"]
    for name, key in ((f"{n} containers through the daemon, one after another", "fleet_corral_s"),
                      (f"{n} `crun run -d`, one after another", "fleet_crun_s")):  # fmt: skip
        print(f"| {name} | {host[key]:.2f} s | {vm[key]:.2f} s | {vm[key] / host[key]:.1f}x |")
    print()
    hr, vr = ratios(host), ratios(vm)
    print("| ratio to crun | this host | v2 VM |")
    print("| --- | --- | --- |")
    for name, key in (("API start / crun run", "api"), ("CLI start / crun run", "cli"),
                      ("CLI start minus the interpreter / crun run", "cli_net"),
                      (f"{n}-container fleet / {n} crun run -d", "fleet")):  # fmt: skip
        print(f"| {name} | {hr[key]:.2f}x | {vr[key]:.2f}x |")


if __name__ == "__main__":
    main()
