"""`corral build`: the context chosen with .dockerignore and sent to the
daemon as a tar, the Dockerfile's text beside it; the steps shown as BuildKit
shows them (a compact live view on a terminal, `--progress plain` for logs),
on stderr; the image id on stdout with -q, or in --iidfile.

The walk applies .dockerignore as it goes: a folder that is ignored, with no
exception that could bring back something under it, is never opened. Files
are added as they are (a symlink as the link, never followed), owned 0:0 in
the archive, as Docker's client sends them."""

from __future__ import annotations

import os
import stat
import sys
import tarfile
import tempfile
import time

from protocols.lite import api
from supervisor.build import ignore
from supervisor.client.connection import Client, UsageError
from supervisor.client.flags import labels_from

CHUNK = 1 << 20


def context_tar(root: str, patterns: list[ignore.Pattern], out) -> int:
    """The context under `root` as a tar into `out`; returns the entries."""
    n = 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        stack = [""]
        while stack:
            rel = stack.pop()
            path = os.path.join(root, rel) if rel else root
            try:
                entries = sorted(os.scandir(path), key=lambda e: e.name)
            except OSError as e:
                raise UsageError(f"reading the build context: {path}: {e.strerror}") from None
            dirs = []
            for e in entries:
                name = f"{rel}/{e.name}" if rel else e.name
                is_dir = e.is_dir(follow_symlinks=False)
                if is_dir and ignore.prunable(patterns, name):
                    continue
                if not is_dir and ignore.ignored(patterns, name):
                    continue
                if is_dir and ignore.ignored(patterns, name):
                    dirs.append(name)  # an exception may bring back something under it
                    continue
                st = e.stat(follow_symlinks=False)
                if not (
                    stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)
                ):
                    continue  # devices, sockets, FIFOs: not sent
                info = tar.gettarinfo(e.path, arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isreg():
                    with open(e.path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                n += 1
                if is_dir:
                    dirs.append(name)
            stack.extend(reversed(dirs))
    return n


def _build_args(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, eq, value = v.partition("=")
        if not key:
            raise UsageError(f"invalid --build-arg {v!r}: KEY=VALUE or KEY")
        if eq:
            out[key] = value
        elif key in os.environ:  # KEY alone: the client's environment, as Docker's
            out[key] = os.environ[key]
    return out


class Plain:
    """BuildKit's plain progress: `#N name`, `#N 0.123 output`, `#N DONE 0.1s`."""

    def __init__(self, out) -> None:
        self.out, self.t0, self.names = out, time.monotonic(), {}

    def step(self, p) -> None:
        if p.status == "started":
            self.names[p.vertex] = p.name
            self.out.write(f"#{p.vertex} {p.name}\n")
        elif p.status == "log":
            at = time.monotonic() - self.t0
            for line in p.data.decode(errors="replace").splitlines():
                self.out.write(f"#{p.vertex} {at:.3f} {line}\n")
        elif p.status == "cached":
            self.out.write(f"#{p.vertex} CACHED\n")
        elif p.status == "done":
            self.out.write(f"#{p.vertex} DONE {p.elapsed:.1f}s\n")
        elif p.status == "error":
            self.out.write(f"#{p.vertex} ERROR: {p.elapsed:.1f}s\n")
        self.out.flush()

    def close(self) -> None:
        pass


class Live:
    """BuildKit's compact live view: a header with the time and the steps done,
    a line per step with its time, the running steps' last output lines
    under them; redrawn in place at most ten times a second."""

    def __init__(self, out) -> None:
        self.out, self.t0 = out, time.monotonic()
        self.steps: dict[int, dict] = {}
        self.drawn = 0
        self.last = 0.0

    def step(self, p) -> None:
        s = self.steps.setdefault(
            p.vertex, {"name": p.name, "state": "running", "t": time.monotonic(), "log": []}
        )
        if p.status == "log":
            s["log"] = (s["log"] + p.data.decode(errors="replace").splitlines())[-6:]
        elif p.status in ("done", "cached", "error"):
            s["state"], s["elapsed"] = p.status, p.elapsed
        now = time.monotonic()
        if now - self.last >= 0.1 or p.status in ("done", "error"):
            self.draw()
            self.last = now

    def draw(self) -> None:
        width = max(
            40,
            min(120, os.get_terminal_size(self.out.fileno()).columns if self.out.isatty() else 100),
        )
        done = sum(1 for s in self.steps.values() if s["state"] != "running")
        lines = [f"[+] Building {time.monotonic() - self.t0:.1f}s ({done}/{len(self.steps)})"]
        for _, s in sorted(self.steps.items()):
            t = s.get("elapsed", time.monotonic() - s["t"])
            mark = {"cached": " CACHED", "error": " ERROR"}.get(s["state"], "")
            head = f" => {s['name']}"[: width - 12]
            lines.append(f"{head}{mark}".ljust(width - 8) + f"{t:6.1f}s")
            if s["state"] in ("running", "error"):
                lines += [f" => => {line}"[:width] for line in s["log"]]
        w = self.out.write
        if self.drawn:
            w(f"\x1b[{self.drawn}F")
        for line in lines:
            w("\x1b[2K" + line + "\n")
        self.drawn = len(lines)
        self.out.flush()

    def close(self) -> None:
        self.draw()


def cmd_build(c: Client, args) -> int:
    root = args.path
    if not os.path.isdir(root):
        raise UsageError(f'unable to prepare context: path "{root}" not found')
    dockerfile = args.file or os.path.join(root, "Dockerfile")
    if dockerfile == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(dockerfile, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(
                f"failed to read dockerfile: open {dockerfile}: {e.strerror.lower()}"
            ) from None
    patterns: list[ignore.Pattern] = []
    ignore_file = os.path.join(root, ".dockerignore")
    if os.path.isfile(ignore_file):
        try:
            with open(ignore_file, encoding="utf-8") as f:
                patterns = ignore.parse(f.read())
        except ValueError as e:
            raise UsageError(str(e)) from None
    progress = args.progress
    if progress == "auto":
        progress = "tty" if sys.stderr.isatty() else "plain"
    view = None if args.quiet else Live(sys.stderr) if progress == "tty" else Plain(sys.stderr)
    req = api.Build(
        dockerfile=text,
        dockerfile_name=os.path.basename(dockerfile) if dockerfile != "-" else "Dockerfile",
        tags=list(args.tag),
        build_args=_build_args(args.build_arg),
        target=args.target,
        no_cache=args.no_cache,
        pull=args.pull,
        labels=labels_from(args.label),
    )
    return run_build(c, req, root, patterns, view, quiet=args.quiet, iidfile=args.iidfile)


def run_build(c: Client, req, root: str, patterns, view, *, quiet: bool, iidfile: str = "") -> int:
    """Send the request and the context; show the steps; the image id."""
    with tempfile.TemporaryFile() as spool:
        context_tar(root, patterns, spool)
        spool.seek(0)
        c.send(req)
        while chunk := spool.read(CHUNK):
            c.send(api.StdinData(data=chunk))
        c.send(api.StdinClose())
    try:
        while True:
            msg = c.recv()
            if isinstance(msg, api.BuildProgress):
                if view is not None:
                    view.step(msg)
            elif isinstance(msg, api.BuildResult):
                break
    finally:
        if view is not None:
            view.close()
    for w in msg.warnings:
        print(w, file=sys.stderr)
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(msg.image_id)
    if quiet:
        print(msg.image_id)
    else:
        print(f"writing image {msg.image_id} done", file=sys.stderr)
        for t in msg.tags:
            print(f"naming to {t} done", file=sys.stderr)
    return 0


def cmd_builder(c: Client, args) -> int:
    from supervisor.client.connection import confirm
    from supervisor.client.format import decimal_size

    if not confirm(args, "This will remove all dangling build cache. "):
        return 0
    res = c.call(api.BuilderPrune())
    for image_id in res.removed:
        print(f"Deleted: {image_id}")
    print(f"Total:\t{decimal_size(res.reclaimed_bytes)}")
    return 0
