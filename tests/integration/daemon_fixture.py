"""A real daemon under a temporary root, driven by the real CLI and protocol."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from protocols.lite import api
from supervisor.client.connection import Client
from tests.integration.conftest import RUN, _drop_cgroup_parent


class Daemon:
    def __init__(self, base: Path, tag: str) -> None:
        self.root = base / "root"
        self.run_root = base / "run"
        self.socket = str(self.run_root / "corral.sock")
        self.cgroup_parent = f"/{RUN}-{tag}"
        self.bridge = f"crb{tag}"  # the default network's bridge, this daemon's own
        base.mkdir(parents=True, exist_ok=True)
        self.log = base / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "CORRAL_SOCKET": self.socket}
        self.clients: list[Client] = []
        self.extra_args: list[str] = []  # more `corral daemon` flags, for a test's own daemon

    def start(self) -> None:
        exe = [
            sys.executable,
            "-m",
            "supervisor.cli",
            "daemon",
            "--root",
            str(self.root),
            "--run-root",
            str(self.run_root),
            "--cgroup-parent",
            self.cgroup_parent,
            "--bridge",
            self.bridge,
            "--log-level",
            "debug",
            *self.extra_args,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(exe, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log.read_text()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                # The socket listens before the fleet is up; a call answers after.
                with Client(self.socket) as c:
                    c.call(api.Ping())
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("daemon did not come up") from None
                time.sleep(0.02)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def client(self) -> Client:
        """A protocol client, closed by cleanup() if the test does not."""
        c = Client(self.socket)
        self.clients.append(c)
        return c

    def cli(self, *args: str, input: str | None = None, timeout: float = 60):
        return subprocess.run(
            [sys.executable, "-m", "supervisor.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )

    def events(self, *filters: str) -> list[dict]:
        """The journal's events of the last minute, as JSON objects."""
        import json

        args = ["events", "--since", "1m", "--until", "0s", "--format", "json"]
        for f in filters:
            args += ["--filter", f]
        return [json.loads(line) for line in self.cli(*args).stdout.splitlines()]

    def cleanup(self) -> None:
        """Remove every container (starting a daemon if needed), stop, check."""
        from protocols.lite import api

        for old in self.clients:
            old.close()
        try:
            if self.proc is None:
                self.start()
            c = self.client()
            for s in c.call(api.List(all=True)).containers:
                try:
                    c.call(api.Remove(id=s.id, force=True))
                except Exception as e:  # keep cleaning
                    print(f"cleanup: {s.id[:12]}: {e}", file=sys.stderr)
            for n in c.call(api.NetworkList()).networks:  # their bridges go with them
                if n.name in ("bridge", "host", "none"):
                    continue  # the default network's goes when the daemon stops
                try:
                    c.call(api.NetworkRemove(name=n.name))
                except Exception as e:
                    print(f"cleanup: network {n.name}: {e}", file=sys.stderr)
            c.close()
        finally:
            self.stop()
        from supervisor.network.links import delete_link

        if Path(f"/sys/class/net/{self.bridge}").exists():  # a stop should have removed it
            delete_link(self.bridge)
            raise AssertionError(f"bridge {self.bridge} left behind by the daemon")
        left = _drop_cgroup_parent(self.cgroup_parent.lstrip("/"))
        assert not left, f"cgroups left: {left}"
