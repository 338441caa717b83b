"""Restart reaction, backoff accuracy, and a fleet of crash-looping containers.

    sudo .venv/bin/python bench/restart_reaction.py [--restarts 200] [--loopers 200]

1. Reaction with the delay set to zero: one container that exits 1 at once under
   `--restart on-failure:N --restart-delay 0`; for each restart, the time from the
   exit (the monitor's finishedAt, carried by the `die` event) to the new process
   running (the `start` event, emitted once execve succeeded).
2. With Docker's default backoff (100 ms doubling): the time beyond the
   configured delay, for the first 6 restarts.
3. LOOPERS containers that crash every half second under `--restart always`
   with the default backoff, for WINDOW seconds: the daemon's CPU share, the
   latency of `ps` (the List request) and of `die` events at a subscriber.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import DaemonProc, log, make_bundle, summary
from protocols import lite
from protocols.lite import api


def timeline(c, name: str) -> list[api.Event]:
    return [
        e
        for e in c.stream(
            api.Events(since_seq=1, until_nano=time.time_ns(), filters={"container": [name]})
        )
        if isinstance(e, api.Event)
    ]


def reactions(evs: list[api.Event]) -> list[tuple[float, float, float]]:
    """(ms from exit to the next start, the delay waited, ms from exit to the
    `restart` event: the end of the wait) for each restart."""
    out = []
    pending = None
    delay = 0.0
    waited = 0.0
    for e in evs:
        if e.action == "die":
            pending = int(e.attributes["finishedAt"])
        elif e.action == "restart" and pending is not None:
            delay = float(e.attributes["delay"])
            waited = (e.time_nano - pending) / 1e6
        elif e.action == "start" and pending is not None:
            out.append(((e.time_nano - pending) / 1e6, delay, waited))
            pending = None
    return out


def cpu_seconds(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--restarts", type=int, default=200)
    ap.add_argument("--loopers", type=int, default=200)
    ap.add_argument("--window", type=float, default=20.0)
    args = ap.parse_args()
    from supervisor.client.connection import Client

    base = Path(tempfile.mkdtemp(prefix="corral-bench-restart-"))
    (base / "d").mkdir()
    daemon = DaemonProc(base / "d", cgroup_parent="/corral-bench-restart")
    try:
        rootfs = str(make_bundle(base, ["true"]) / "rootfs")
        daemon.start()
        c = Client(daemon.socket)
        # 1. zero delay
        cid = c.call(
            api.Create(
                config=api.ContainerConfig(
                    network="none",
                    name="zero",
                    rootfs=rootfs,
                    cmd=["sh", "-c", "exit 1"],
                    restart=f"on-failure:{args.restarts}",
                    restart_delay=0.0,
                )
            )
        ).id
        c.call(api.Start(id=cid))
        while True:
            info = c.call(api.Inspect(id=cid)).data
            if info["RestartCount"] >= args.restarts and info["State"]["Status"] == "exited":
                break
            time.sleep(0.1)
        zero = [ms for ms, _, _ in reactions(timeline(c, "zero"))]
        s = summary(zero)
        print("| restart reaction, delay 0 | p50 | p99 | max | restarts |")
        print("| --- | --- | --- | --- | --- |")
        print(
            f"| exit to new process running | {s['median']:.2f} ms | {s['p99']:.2f} ms | "
            f"{max(zero):.2f} ms | {len(zero)} |"
        )
        # 2. Docker's default backoff
        cid = c.call(
            api.Create(
                config=api.ContainerConfig(
                    network="none",
                    name="backoff",
                    rootfs=rootfs,
                    cmd=["sh", "-c", "exit 1"],
                    restart="on-failure:6",
                )
            )
        ).id
        c.call(api.Start(id=cid))
        while True:
            info = c.call(api.Inspect(id=cid)).data
            if info["RestartCount"] >= 6 and info["State"]["Status"] == "exited":
                break
            time.sleep(0.2)
        rows = reactions(timeline(c, "backoff"))
        print()
        print(
            "| restart | configured delay | exit to new process | beyond the delay | "
            "of which: the wait's overshoot | the start |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for i, (ms, delay, waited) in enumerate(rows, 1):
            print(
                f"| {i} | {delay * 1000:.0f} ms | {ms:.1f} ms | {ms - delay * 1000:.2f} ms | "
                f"{waited - delay * 1000:.2f} ms | {ms - waited:.2f} ms |"
            )
        beyond = summary([ms - d * 1000 for ms, d, _ in rows])
        print(
            f"\nbeyond the delay: median {beyond['median']:.2f} ms, "
            f"max {max(ms - d * 1000 for ms, d, _ in rows):.2f} ms"
        )
        # 3. a crash-looping fleet
        log(f"starting {args.loopers} crash-looping containers")
        for i in range(args.loopers):
            lid = c.call(
                api.Create(
                    config=api.ContainerConfig(
                        network="none",
                        name=f"loop{i}",
                        rootfs=rootfs,
                        cmd=["sh", "-c", "sleep 0.5; exit 1"],
                        restart="always",
                    )
                )
            ).id
            c.call(api.Start(id=lid))
        sub = Client(daemon.socket)
        sub.send(api.Events(filters={"event": ["die"]}))
        assert daemon.proc is not None
        cpu0, t0 = cpu_seconds(daemon.proc.pid), time.monotonic()
        ps_ms, die_ms = [], []
        end = t0 + args.window
        next_ps = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= next_ps:  # `ps` five times a second
                t = time.perf_counter()
                listed = c.call(api.List(all=True)).containers
                ps_ms.append((time.perf_counter() - t) * 1000)
                assert len(listed) >= args.loopers
                next_ps += 0.2
            # Between: read the event stream as it comes.
            ready, _, _ = select.select([sub.sock], [], [], max(0, next_ps - time.monotonic()))
            if ready:
                data = sub.sock.recv(1 << 20)
                now = time.time_ns()
                for payload in sub.buf.feed(data):
                    ev = lite.decode(payload)
                    if isinstance(ev, api.Event):
                        die_ms.append((now - int(ev.attributes["finishedAt"])) / 1e6)
        cpu = (cpu_seconds(daemon.proc.pid) - cpu0) / (time.monotonic() - t0)
        restarts = sum(s.restart_count for s in c.call(api.List(all=True)).containers)
        ps, dies = summary(ps_ms), summary(die_ms)
        print()
        print(
            "| crash-looping containers | window | daemon CPU | restarts (total) | `ps` p50 | "
            "`ps` p99 | die event p50 | die event p99 |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        print(
            f"| {args.loopers} | {args.window:.0f} s | {cpu * 100:.0f}% of one core | "
            f"{restarts} | {ps['median']:.1f} ms | {ps['p99']:.1f} ms | "
            f"{dies['median']:.2f} ms | {dies['p99']:.2f} ms |"
        )
        sub.close()
        c.close()
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
