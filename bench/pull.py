"""Pull of a multi-layer image of about 200 MB from a local registry, against
`skopeo copy` of the same image from the same registry, in one run.

    sudo .venv/bin/python bench/pull.py [--rounds 3] [--layers 4] [--mb 50]

The image: the busybox root filesystem plus LAYERS layers of MB megabytes of
random data each (incompressible, so the bytes really travel), made with umoci
(`repack --refresh-bundle`, so that each repack adds one layer), pushed to
Debian's docker-registry on 127.0.0.1 with skopeo; the script counts the layers
in the manifest the registry serves. Each round, interleaved: corral pulls it
into an empty store (a fresh daemon root); skopeo copies it to an empty OCI
layout (fetch, verify, store the blobs: no unpacking); skopeo copies it to an
empty containers-storage with the overlay driver (what `podman pull` does:
fetch, verify, unpack), run in a private mount namespace of its own (`unshare
--mount`) so that the mount it leaves goes with it; and, where Debian's dockerd is
installed, `docker pull` into a dockerd of the script's own (overlay2; the image
removed after each round), the pull Docker's users know. The script runs in a
private mount namespace, so nothing dockerd mounts outlives it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    CORRAL,
    DaemonProc,
    log,
    make_bundle,
    reexec_in_private_mountns,
    start_dockerd,
    summary,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--mb", type=int, default=50)
    args = ap.parse_args()
    reexec_in_private_mountns()
    base = Path(tempfile.mkdtemp(prefix="corral-bench-pull-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (base / "reg.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {base}/regdata\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n"
    )
    reg = subprocess.Popen(
        ["docker-registry", "serve", str(base / "reg.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dockerd = None
    try:
        run = lambda *a: subprocess.run(a, cwd=base, check=True, capture_output=True)  # noqa: E731
        rootfs = make_bundle(base, ["true"]) / "rootfs"
        run("umoci", "init", "--layout", "oci")
        run("umoci", "new", "--image", "oci:big")
        run("umoci", "unpack", "--image", "oci:big", "b")
        subprocess.run(["cp", "-a", f"{rootfs}/.", str(base / "b" / "rootfs")], check=True)
        run("umoci", "repack", "--refresh-bundle", "--image", "oci:big", "b")
        for i in range(args.layers):
            with open(base / "b" / "rootfs" / f"data{i}", "wb") as f:
                f.write(os.urandom(args.mb * 1024 * 1024))
            run("umoci", "repack", "--refresh-bundle", "--image", "oci:big", "b")
        ref = f"localhost:{port}/bench/big:v1"
        run("skopeo", "copy", "--dest-tls-verify=false", "oci:oci:big", f"docker://{ref}")
        size = sum(p.stat().st_size for p in (base / "regdata").rglob("data"))
        manifest = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
            check=True,
            capture_output=True,
        ).stdout
        layers = len(json.loads(manifest)["layers"])
        log(f"image in the registry: {size / 1e6:.0f} MB in {layers} layers")
        ours, theirs, storage, docker = [], [], [], []
        dockerd = start_dockerd(base)
        for r in range(args.rounds):
            d = base / f"d{r}"
            d.mkdir()
            daemon = DaemonProc(d, cgroup_parent="/corral-bench-pull")
            daemon.start()
            try:
                env = {**os.environ, "CORRAL_SOCKET": daemon.socket}
                t = time.perf_counter()
                subprocess.run([str(CORRAL), "pull", ref], env=env, check=True, capture_output=True)
                ours.append(time.perf_counter() - t)
            finally:
                daemon.stop()
                shutil.rmtree(d, ignore_errors=True)
            dest = base / f"skopeo{r}"
            t = time.perf_counter()
            run("skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}:x")
            theirs.append(time.perf_counter() - t)
            shutil.rmtree(dest)
            cs = base / f"cs{r}"
            t = time.perf_counter()
            run(
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "skopeo",
                "copy",
                "--src-tls-verify=false",
                f"docker://{ref}",
                f"containers-storage:[overlay@{cs}/root+{cs}/run]localhost/big:v1",
            )
            storage.append(time.perf_counter() - t)
            shutil.rmtree(cs)
            if dockerd:
                t = time.perf_counter()
                subprocess.run([*dockerd[1], "pull", ref], check=True, capture_output=True)
                docker.append(time.perf_counter() - t)
                subprocess.run([*dockerd[1], "rmi", ref], check=True, capture_output=True)
        print("| what | median | min - max | rounds |")
        print("| --- | --- | --- | --- |")
        rows = [
            (f"`corral pull` ({size / 1e6:.0f} MB, {layers} layers; fetch, verify, unpack)", ours),
            ("`skopeo copy` to an OCI layout (fetch, verify, store)", theirs),
            ("`skopeo copy` to containers-storage, overlay (fetch, verify, unpack)", storage),
        ]
        if docker:
            rows.append(("`docker pull` (dockerd 20.10, overlay2; fetch, verify, unpack)", docker))
        for name, xs in rows:
            m = summary(xs)["median"]
            print(f"| {name} | {m:.2f} s | {min(xs):.2f} - {max(xs):.2f} | {len(xs)} |")
        mo = summary(ours)["median"]
        print(f"\ncorral / skopeo to an OCI layout: {mo / summary(theirs)['median']:.2f}x")
        print(f"corral / skopeo to containers-storage: {mo / summary(storage)['median']:.2f}x")
        if docker:
            print(f"corral / docker pull: {mo / summary(docker)['median']:.2f}x")
    finally:
        if dockerd:
            dockerd[0].terminate()
            dockerd[0].wait()
        reg.terminate()
        reg.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
