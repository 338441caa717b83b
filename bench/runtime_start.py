"""Container start: Corral (Python API and CLI) against crun, runc and the kernel.

One bundle (busybox, /bin/true, Corral's default spec: new pid, mount, uts, ipc,
network and cgroup namespaces, Docker's masks), the same for every runtime, in
one run, rounds interleaved so the machine's noise falls on all alike.

    sudo .venv/bin/python bench/runtime_start.py [--rounds N]

crun 1.8 refuses this machine's hybrid cgroups ("drop all controllers from
cgroupv2"), so the whole benchmark re-executes itself in a private mount
namespace in which /sys/fs/cgroup/unified/cgroup.controllers is covered by
/dev/null (the harness uses unshare(1) and mount(1) for that; Corral itself runs
on the hybrid host as it is and does not read that file).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import CORRAL, VENV_PY, fmt, fresh_bytecode, log, make_bundle, spawn_wait, summary

UNIFIED = "/sys/fs/cgroup/unified/cgroup.controllers"


def reexec_in_private_mountns() -> None:
    if os.environ.get("CORRAL_BENCH_INNER") or not os.path.exists(UNIFIED):
        return
    os.environ["CORRAL_BENCH_INNER"] = "1"
    cmd = f"mount --bind /dev/null {UNIFIED} && exec {sys.executable} {' '.join(sys.argv)}"
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd])


def kernel_part(base: Path, true_path: str, n: int, plain: bool = False) -> list[float]:
    """Clone into new namespaces (none if `plain`), exec, wait: ms each."""
    exe = base / "kernel_part"
    if not exe.exists():
        src = Path(__file__).resolve().parent / "kernel_part.c"
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    argv = [str(exe), true_path, str(n), *(["plain"] if plain else [])]
    # A monitor without arguments exits at once, its usage on stderr.
    out = subprocess.run(argv, capture_output=True, text=True)
    return [int(x) / 1000 for x in out.stdout.split()]


def glibc_monitor(base: Path) -> str | None:
    """The monitor as it was built before musl: the same sources, glibc, static."""
    root = Path(__file__).resolve().parent.parent
    exe = base / "corral-monitor-glibc"
    sources = [str(root / "native" / s) for s in ("monitor.c", "container.c", "plan.c")]
    r = subprocess.run(
        ["gcc", "-std=gnu11", "-O2", f"-I{root / 'native'}", "-static", "-o", str(exe), *sources],
        capture_output=True,
    )
    return str(exe) if r.returncode == 0 else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args()
    reexec_in_private_mountns()
    fresh_bytecode()

    from supervisor import _native
    from supervisor.runtime import Runtime
    from supervisor.runtime.processes import wait_child as _wait_child

    base = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    state = Path("/run/corral-bench")
    try:
        bundle = make_bundle(base, ["/bin/true"])
        rt = Runtime(state / "api", cgroup_parent="/corral-bench")
        tools = {t: shutil.which(t) for t in ("crun", "runc")}
        results: dict[str, list[float]] = {"api": [], "api_exit": [], "cli": [], "python": []}
        musl_monitor, old_monitor = _native.MONITOR, glibc_monitor(base)
        if old_monitor:
            results["api_glibc"] = []
        results.update({t: [] for t, p in tools.items() if p})
        log(f"bundle {bundle}; {args.rounds} rounds")
        for i in range(5):  # warm caches: page cache, dentries, the first netns
            rt.run(f"warm{i}", bundle, stdio=(0, 1, 2))
        for i in range(args.rounds):
            # Runtime.run's steps, timed apart: the "spawn to reaped exit",
            # then the removal of the cgroups and the state directory.
            t = time.perf_counter()
            created = rt.create(
                f"a{i}", bundle, stdio=(0, 1, 2), detach=False, wait_for_start=False
            )
            code = _wait_child(created.monitor_pidfd)
            reaped = time.perf_counter()
            rt.remove_reaped(created)
            created.close()
            results["api_exit"].append((reaped - t) * 1000)
            results["api"].append((time.perf_counter() - t) * 1000)
            assert code == 0
            if old_monitor:  # the same start with the glibc build of the monitor
                _native.MONITOR = old_monitor
                t = time.perf_counter()
                created = rt.create(
                    f"g{i}", bundle, stdio=(0, 1, 2), detach=False, wait_for_start=False
                )
                code = _wait_child(created.monitor_pidfd)
                results["api_glibc"].append((time.perf_counter() - t) * 1000)
                _native.MONITOR = musl_monitor
                rt.remove_reaped(created)
                created.close()
                assert code == 0
            results["cli"].append(
                spawn_wait(
                    [
                        str(CORRAL),
                        "runtime",
                        "--root",
                        str(state / "cli"),
                        "--cgroup-parent",
                        "/corral-bench",
                        "run",
                        "-b",
                        str(bundle),
                        f"c{i}",
                    ]
                )
            )
            results["python"].append(spawn_wait([str(VENV_PY), "-c", "pass"]))
            for tool, path in tools.items():
                if path:
                    results[tool].append(
                        spawn_wait(
                            [
                                path,
                                "--root",
                                str(state / tool),
                                "run",
                                "-b",
                                str(bundle),
                                f"{tool}{i}",
                            ]
                        )
                    )
        kernel = kernel_part(base, str(bundle / "rootfs" / "bin" / "true"), args.rounds)

        s = {k: summary(v) for k, v in results.items()}
        s["kernel"] = summary(kernel)
        s["exec_monitor"] = summary(kernel_part(base, musl_monitor, args.rounds, plain=True))
        if old_monitor:
            s["exec_glibc"] = summary(kernel_part(base, old_monitor, args.rounds, plain=True))
        cli_net = [c - p for c, p in zip(results["cli"], results["python"], strict=True)]
        s["cli_net"] = summary(cli_net)
        print("| what | median | p10 - p90 | runs |")
        print("| --- | --- | --- | --- |")
        print(fmt("kernel's own part (clone into 6 new namespaces, exec, wait)", s["kernel"]))
        print(fmt("Corral, Python API: spawn to reaped exit", s["api_exit"]))
        print(fmt("Corral, Python API: the same and the cleanup (Runtime.run)", s["api"]))
        if old_monitor:
            print(fmt("the same, spawn to reaped exit, glibc-static monitor", s["api_glibc"]))
        print(fmt("a plain process: spawn, exec, exit of corral-monitor", s["exec_monitor"]))
        if old_monitor:
            print(fmt("the same for the glibc-static monitor", s["exec_glibc"]))
        print(fmt("`corral runtime run`, whole process", s["cli"]))
        print(fmt("bare `python -c pass` (same interpreter)", s["python"]))
        print(fmt("`corral runtime run` minus the bare interpreter start", s["cli_net"]))
        for tool in ("crun", "runc"):
            if tool in s:
                print(fmt(f"`{tool} run`, whole process", s[tool]))
        print()
        if "crun" in s:
            crun = s["crun"]["median"]
            print(f"- API / crun: {s['api']['median'] / crun:.2f}x")
            print(f"- CLI minus interpreter / crun: {s['cli_net']['median'] / crun:.2f}x")
        kern = s["kernel"]["median"]
        print(
            f"- API (spawn to reaped exit) / kernel's part: {s['api_exit']['median'] / kern:.2f}x"
        )
        print(f"- API (with cleanup) / kernel's part: {s['api']['median'] / kern:.2f}x")
        if old_monitor:
            print(
                f"- API (spawn to reaped exit) / the same with the glibc monitor: "
                f"{s['api_exit']['median'] / s['api_glibc']['median']:.2f}x"
            )
        if "runc" in s:
            print(f"- API / runc: {s['api']['median'] / s['runc']['median']:.2f}x")
    finally:
        for st in Runtime(state / "api", cgroup_parent="/corral-bench").list():
            Runtime(state / "api").delete(st.id, force=True)
        from supervisor.runtime.cgroups import remove_parent

        remove_parent("/corral-bench")  # containers' parents stay when they go
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
