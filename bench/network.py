"""Network set-up time per container, and TCP throughput: container to
container on a user network, host to container through a published port, and
host loopback, in one run.

    sudo .venv/bin/python bench/network.py [--rounds 40] [--mb 200]

Set-up: `/bin/true` containers run through the protocol (create, attach with
start, exit) on `--network none` and on a user network, rounds interleaved; the
difference of the medians is what the network costs a container (address,
veth into its namespace, eth0 configured through netlink, its /etc files, and
the create/start split that lets that happen before its process runs); the
network namespace itself is made in both. Throughput: MB of zeros sent from
this process's socket, received by busybox `nc -l > /dev/null` in a container
(through the published port), in it from a second container on the same network
(the sender is this script's code run in that container's network namespace:
busybox's nc client stopped after 13 kB in every try here, so it cannot send), or
on the host (loopback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import DaemonProc, make_bundle, summary
from protocols.lite import api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port: int, mb: int) -> float:
    """MB/s of `mb` MB sent to 127.0.0.1:port."""
    chunk = b"\0" * (1 << 20)
    for _ in range(100):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.05)
    t = time.perf_counter()
    with s:
        for _ in range(mb):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)  # what is left in buffers is a few MB of the total
    return mb / (time.perf_counter() - t)


SEND_FROM_NETNS = """
import ctypes, socket, sys, time
ns = open(f"/proc/{sys.argv[1]}/ns/net")
if ctypes.CDLL(None, use_errno=True).setns(ns.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
    raise OSError(ctypes.get_errno(), "setns")
chunk, mb = b"\\0" * (1 << 20), int(sys.argv[3])
for _ in range(100):
    try:
        s = socket.create_connection((sys.argv[2], 5000))
        break
    except OSError:
        time.sleep(0.05)
else:
    raise SystemExit(f"nothing listens on {sys.argv[2]}:5000")
t = time.perf_counter()
for _ in range(mb):
    s.sendall(chunk)
s.shutdown(socket.SHUT_WR)
print(mb / (time.perf_counter() - t))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    from supervisor.client.connection import Client

    base = Path(tempfile.mkdtemp(prefix="corral-bench-net-"))
    (base / "d").mkdir()
    daemon = DaemonProc(base / "d", cgroup_parent="/corral-bench-net")
    try:
        rootfs = str(make_bundle(base, ["true"]) / "rootfs")
        daemon.start()
        env = {**os.environ, "CORRAL_SOCKET": daemon.socket}
        cli = [str(Path(sys.executable).parent / "corral")]
        with Client(daemon.socket) as c:
            c.call(api.NetworkCreate(name="benchnet"))
            none, net = [], []
            for _ in range(args.rounds):
                for network, out in (("none", none), ("benchnet", net)):
                    cfg = api.ContainerConfig(
                        rootfs=rootfs, cmd=["/bin/true"], network=network, auto_remove=True
                    )
                    t = time.perf_counter()
                    cid = c.call(api.Create(config=cfg)).id
                    for _msg in c.stream(api.Attach(id=cid, start=True)):
                        pass
                    out.append((time.perf_counter() - t) * 1000)
            s_none, s_net = summary(none), summary(net)
            print("| container start to exit | median | p10 - p90 | runs |")
            print("| --- | --- | --- | --- |")
            print(
                f"| `--network none` | {s_none['median']:.2f} ms | {s_none['p10']:.2f} - "
                f"{s_none['p90']:.2f} | {len(none)} |"
            )
            print(
                f"| user network (bridge, veth, address, DNS files) | {s_net['median']:.2f} ms"
                f" | {s_net['p10']:.2f} - {s_net['p90']:.2f} | {len(net)} |"
            )
            print(
                f"\nnetwork set-up per container: {s_net['median'] - s_none['median']:.2f} ms "
                "(difference of the medians)\n"
            )

            # Throughput.
            port = free_port()
            srv = subprocess.run(
                [
                    *cli,
                    "run",
                    "-d",
                    "--name",
                    "sink",
                    "--network",
                    "benchnet",
                    "-p",
                    f"127.0.0.1:{port}:5000",
                    "--rootfs",
                    rootfs,
                    "sh",
                    "-c",
                    "while :; do sleep 1000 | nc -l -p 5000 > /dev/null; done",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            del srv
            time.sleep(0.5)
            proxy = send(port, args.mb)
            # A fresh sink: the first one still holds the proxy's connection.
            ids = {}
            for name, cmd in (
                ("src", "sleep 1000"),
                ("sink2", "sleep 1000 | nc -l -p 5000 > /dev/null"),
            ):
                cfg = api.ContainerConfig(
                    rootfs=rootfs, cmd=["sh", "-c", cmd], network="benchnet", name=name
                )
                ids[name] = c.call(api.Create(config=cfg)).id
                c.call(api.Start(id=ids[name]))
            pid = c.call(api.Inspect(id=ids["src"])).data["State"]["Pid"]
            sink_ip = c.call(api.Inspect(id=ids["sink2"])).data["NetworkSettings"]["IPAddress"]
            sender = subprocess.run(
                [sys.executable, "-c", SEND_FROM_NETNS, str(pid), sink_ip, str(args.mb)],
                capture_output=True,
                text=True,
            )
            if sender.returncode != 0:
                raise SystemExit(f"sender in the container's namespace: {sender.stderr}")
            c2c = float(sender.stdout)
            lport = free_port()
            # nc -l closes the connection when its own stdin ends: keep it open.
            sink = subprocess.Popen(
                ["busybox", "nc", "-l", "-p", str(lport)],
                stdout=subprocess.DEVNULL,
                stdin=subprocess.PIPE,
            )
            loop = send(lport, args.mb)
            sink.kill()
            sink.wait()
            print("| TCP throughput | MB/s |")
            print("| --- | --- |")
            print(f"| container to container on one network (veth, bridge, veth) | {c2c:.0f} |")
            print(f"| host to container through a published port (userland proxy) | {proxy:.0f} |")
            print(f"| host loopback (the same sender, busybox nc -l) | {loop:.0f} |")
    finally:
        try:
            with Client(daemon.socket) as c:
                for s in c.call(api.List(all=True)).containers:
                    c.call(api.Remove(id=s.id, force=True))
                c.call(api.NetworkRemove(name="benchnet"))  # and its bridge
        finally:
            daemon.stop()
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
