"""The per-container monitor's memory: PSS and RSS with N idle containers.

    sudo .venv/bin/python bench/monitor_memory.py [--containers 100]

PSS (proportional set size) charges each shared page to the processes sharing
it, so it is what one more container costs; it is read from
/proc/PID/smaps_rollup of every monitor while all N containers idle.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import log, make_bundle, summary


def rollup(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0])  # kB
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=100)
    args = ap.parse_args()
    from supervisor.runtime import Runtime
    from supervisor.runtime.cgroups import remove_parent

    base = Path(tempfile.mkdtemp(prefix="corral-bench-mem-"))
    rt = Runtime(base / "state", cgroup_parent="/corral-bench-mem")
    try:
        bundle = make_bundle(base, ["sleep", "100000"])
        monitors = []
        t = time.perf_counter()
        for i in range(args.containers):
            created = rt.create(f"idle{i}", bundle, stdio=None, wait_for_start=False)
            monitors.append(created.record.monitor_pid)
            created.close()
        log(f"{args.containers} containers started in {time.perf_counter() - t:.2f} s")
        time.sleep(1)
        pss = [rollup(p)["Pss"] / 1024 for p in monitors]
        rss = [rollup(p)["Rss"] / 1024 for p in monitors]
        priv = [(rollup(p)["Private_Clean"] + rollup(p)["Private_Dirty"]) / 1024 for p in monitors]
        print("| monitors | PSS median | PSS p10 - p90 | RSS median | private median |")
        print("| --- | --- | --- | --- | --- |")
        s, r, v = summary(pss), summary(rss), summary(priv)
        print(
            f"| {len(monitors)} | {s['median']:.3f} MiB | {s['p10']:.3f} - {s['p90']:.3f} MiB "
            f"| {r['median']:.3f} MiB | {v['median']:.3f} MiB |"
        )
        print(f"\ntotal PSS of all monitors: {sum(pss):.2f} MiB")
    finally:
        for st in rt.list():
            rt.delete(st.id, force=True)
        remove_parent("/corral-bench-mem")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
