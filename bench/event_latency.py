"""From a container's exit to its `die` event at a subscriber, under load.

    sudo .venv/bin/python bench/event_latency.py [--exits 200] [--subscribers 100] [--rate 1000]

100 subscribers stay connected to the daemon (each reading everything), while a
load task makes about RATE events a second (`kill -s 0` of one container); one
after another, short containers run and exit. For each exit, the latency is the
time a subscriber received the `die` event minus the time the monitor recorded
the exit (`FinishedAt`, CLOCK_REALTIME after it reaped the container), for every
subscriber. Also checked: every subscriber received every event, in sequence.

The subscribers are bench/subscribers.c by default: N connections in one small C
process that timestamps each frame on arrival and keeps only the `die` ones, so
that on a 2-core machine the subscribers' own CPU is not what is measured;
`--subscriber-kind python` runs them as trio tasks in this process instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import DaemonProc, log, make_bundle, summary
from protocols import api
from protocols.events import Event
from protocols.wire import PROTOCOL_VERSION, FrameBuffer, frame

ENC = msgspec.msgpack.Encoder()
LOAD_CONNECTIONS = 4  # requests in flight at once, so the load is not one round trip at a time
DEC = msgspec.msgpack.Decoder(api.Response)


async def subscriber(path: str, start_seq: int, out: dict, stop: trio.Event, n: int) -> None:
    """Counts every frame and decodes only the `die` events: a subscriber in
    Python that decoded all 100,000 messages a second would be what is
    measured, not the daemon."""
    sock = trio.socket.socket(socket.AF_UNIX)
    await sock.connect(path)
    stream = trio.SocketStream(sock)
    await stream.send_all(frame(ENC.encode(api.Hello(version=PROTOCOL_VERSION))))
    await stream.send_all(frame(ENC.encode(api.Events(since_seq=start_seq))))
    buf = bytearray()
    count = 0
    die_seqs: list[int] = []
    dies: dict[str, int] = {}
    async with stream:
        with trio.CancelScope() as scope:
            out.setdefault("scopes", []).append(scope)
            while True:
                data = await stream.receive_some(1 << 16)
                if not data:
                    break
                now = time.time_ns()
                buf += data
                pos = 0
                while len(buf) - pos >= 4:
                    size = int.from_bytes(buf[pos : pos + 4], "big")
                    if len(buf) - pos - 4 < size:
                        break
                    payload = bytes(buf[pos + 4 : pos + 4 + size])
                    pos += 4 + size
                    if b"Welcome" in payload:
                        continue
                    count += 1
                    if b"\xa3die" in payload:
                        msg = DEC.decode(payload)
                        if isinstance(msg, Event) and msg.action == "die":
                            dies[msg.id] = now
                            die_seqs.append(msg.seq)
                del buf[:pos]
    out[n] = (count, die_seqs, dies)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exits", type=int, default=200)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--rate", type=int, default=1000, help="background events per second")
    ap.add_argument(
        "--subscriber-kind",
        choices=("c", "python"),
        default="c",
        help="c: bench/subscribers.c, all N in one small process (default); python: N trio "
        "tasks in this process, which on 2 cores competes with the daemon for CPU",
    )
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="corral-bench-ev-"))
    (base / "d").mkdir()
    daemon = DaemonProc(base / "d")
    try:
        bundle = make_bundle(base, ["/bin/true"])
        daemon.start()
        from protocols.lite import api as api_lite
        from supervisor.client.connection import Client

        with Client(daemon.socket) as c:  # the next sequence number, to subscribe from
            evs = list(c.stream(api_lite.Events(since_seq=1, until_nano=time.time_ns())))
        args.base = base
        args.start_seq = max((e.seq for e in evs if isinstance(e, api_lite.Event)), default=0) + 3
        t_self = os.times()
        trio.run(run, daemon.socket, str(bundle / "rootfs"), args)
        t_end = os.times()
        assert daemon.proc is not None
        fields = Path(f"/proc/{daemon.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        print(
            f"CPU seconds: daemon {(int(fields[11]) + int(fields[12])) / tick:.1f}, "
            f"this benchmark (subscribers, load, driver) "
            f"{t_end.user + t_end.system - t_self.user - t_self.system:.1f}"
        )
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


class Conn:
    """A request/response connection; frames that arrive together are kept."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = FrameBuffer()
        self.pending: list[bytes] = []

    async def recv(self):
        while not self.pending:
            self.pending += self.buf.feed(await self.stream.receive_some(1 << 16))
        return DEC.decode(self.pending.pop(0))


async def call(conn: Conn, req) -> object:
    await conn.stream.send_all(frame(ENC.encode(req)))
    return await conn.recv()


async def connect(path: str) -> Conn:
    sock = trio.socket.socket(socket.AF_UNIX)
    await sock.connect(path)
    conn = Conn(trio.SocketStream(sock))
    await call(conn, api.Hello(version=PROTOCOL_VERSION))
    return conn


async def run(path: str, rootfs: str, args) -> None:
    ctl = await connect(path)
    load = await connect(path)
    loader = await call(
        load,
        api.Create(
            config=api.ContainerConfig(network="none", rootfs=rootfs, cmd=["sleep", "100000"])
        ),
    )
    await call(load, api.Start(id=loader.id))
    start_seq = args.start_seq
    results: dict = {}
    stop = trio.Event()
    finished: dict[str, int] = {}
    load_count = 0
    async with trio.open_nursery() as nursery:
        proc = None
        if args.subscriber_kind == "c":
            proc = await c_subscribers(path, start_seq, args)
        else:
            for n in range(args.subscribers):
                nursery.start_soon(subscriber, path, start_seq, results, stop, n)
            await trio.sleep(0.5)

        async def background(conn: Conn, share: int) -> None:
            nonlocal load_count
            interval = share / args.rate  # one `kill` event (signal 0) per request
            next_t = trio.current_time()
            while not stop.is_set():
                await call(conn, api.Kill(id=loader.id, signal="0"))
                load_count += 1
                next_t += interval
                await trio.sleep_until(max(next_t, trio.current_time()))

        loaders = [load] + [await connect(path) for _ in range(LOAD_CONNECTIONS - 1)]
        for conn in loaders:
            nursery.start_soon(background, conn, LOAD_CONNECTIONS)
        t0 = time.monotonic()
        cfg = api.ContainerConfig(network="none", rootfs=rootfs, cmd=["/bin/true"])
        for i in range(args.exits):
            c = await call(ctl, api.Create(config=cfg))
            await call(ctl, api.Start(id=c.id))
            await call(ctl, api.Wait(id=c.id))
            info = await call(ctl, api.Inspect(id=c.id))
            finished[c.id] = _parse_rfc3339(info.data["State"]["FinishedAt"])
            await call(ctl, api.Remove(id=c.id))
            if i % 50 == 0:
                log(f"exit {i}")
        elapsed = time.monotonic() - t0
        achieved = load_count / elapsed
        stop.set()
        await trio.sleep(1)  # let the subscribers drain
        last = await call(ctl, api.Events(since_seq=start_seq, until_nano=time.time_ns()))
        last_seq = start_seq - 1
        appended: dict[str, int] = {}  # when the daemon journaled each die
        while not isinstance(last, api.End):
            last_seq = last.seq
            if isinstance(last, Event) and last.action == "die":
                appended[last.id] = last.time_nano
            last = await ctl.recv()
        stop.set()
        for scope in results.get("scopes", []):
            scope.cancel()
        if proc is not None:
            proc.terminate()
            await proc.wait()
            results.update(read_c_results(args.base / "subscribers.out", args.subscribers))
    lat, to_journal, to_reader = [], [], []
    complete = 0
    expected = last_seq - start_seq + 1
    for n in range(args.subscribers):
        count, die_seqs, dies = results[n]
        if count == expected and die_seqs == sorted(die_seqs) and len(dies) == len(finished):
            complete += 1
        for cid, fin in finished.items():
            if cid in dies:
                lat.append((dies[cid] - fin) / 1e6)
                to_reader.append((dies[cid] - appended[cid]) / 1e6)
    to_journal = [(appended[cid] - fin) / 1e6 for cid, fin in finished.items()]
    s = summary(lat)
    print(
        "| subscribers | background events/s (achieved) | exits | p50 | p99 | max | "
        "subscribers with every event in order |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {args.subscribers} | {achieved:.0f} | {len(finished)} | "
        f"{s['median']:.2f} ms | {s['p99']:.2f} ms | {max(lat):.2f} ms | "
        f"{complete}/{args.subscribers} |"
    )
    print(f"\nlatency samples: {len(lat)} (exits x subscribers that saw them)")
    j, r = summary(to_journal), summary(to_reader)
    print(
        f"of which: exit to the event journaled p50 {j['median']:.2f} ms, p99 {j['p99']:.2f}; "
        f"journaled to a subscriber's read p50 {r['median']:.2f} ms, p99 {r['p99']:.2f}"
    )


async def c_subscribers(path: str, start_seq: int, args) -> trio.Process:
    """bench/subscribers.c, built here, with N connections subscribed from
    start_seq; returns once every one has sent its request."""
    exe = args.base / "subscribers"
    src = Path(__file__).resolve().parent / "subscribers.c"
    await trio.run_process(["gcc", "-O2", "-o", str(exe), str(src)])
    req = args.base / "subscribe.req"
    req.write_bytes(
        frame(ENC.encode(api.Hello(version=PROTOCOL_VERSION)))
        + frame(ENC.encode(api.Events(since_seq=start_seq)))
    )
    out = args.base / "subscribers.out"
    proc = await trio.lowlevel.open_process(
        [str(exe), path, str(args.subscribers), str(req), str(out)], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        chunk = await proc.stdout.receive_some(64)
        if not chunk:
            raise RuntimeError("bench/subscribers exited before it was ready")
        line += chunk
    await trio.sleep(0.5)  # the daemon has them all live
    return proc


def read_c_results(out: Path, n: int) -> dict[int, tuple[int, list[int], dict[str, int]]]:
    """{connection: (frames after Welcome, die seqs in arrival order, {id: arrival ns})}."""
    data = out.read_bytes()
    dies: dict[int, tuple[list[int], dict[str, int]]] = {i: ([], {}) for i in range(n)}
    pos = 0
    while True:
        (conn,) = struct.unpack_from("<I", data, pos)
        if conn == 0xFFFFFFFF:
            counts = struct.unpack_from(f"<{n}I", data, pos + 4)
            break
        now, size = struct.unpack_from("<QI", data, pos + 4)
        msg = DEC.decode(data[pos + 16 : pos + 16 + size])
        pos += 16 + size
        if isinstance(msg, Event) and msg.action == "die":
            dies[conn][0].append(msg.seq)
            dies[conn][1][msg.id] = now
    return {i: (counts[i], dies[i][0], dies[i][1]) for i in range(n)}


def _parse_rfc3339(ts: str) -> int:
    import calendar

    secs = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int(ts[20:-1].ljust(9, "0")[:9])


if __name__ == "__main__":
    main()
