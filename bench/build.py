"""`corral build` against `docker build` and `buildah bud` on the same
Dockerfile and context, in one run: a cold build (--no-cache), a rebuild with
nothing changed, and a rebuild after a one-line change to a copied source file.

    sudo .venv/bin/python bench/build.py [--rounds N]

dockerd (Debian's docker.io) is started by the script with its own data root
(`--iptables=false`); the docker CLI here has no buildx, so `docker build` is
Docker's classic builder (DOCKER_BUILDKIT=0). buildah (Debian's) uses its own
storage root and cgroupfs, and its default OCI isolation. The base image is
the same busybox root filesystem, imported into each. Rounds interleave the
engines; each figure is the whole command's wall time, client included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    CORRAL,
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
    timed,
)

DOCKERFILE = """\
FROM bench-busybox
RUN mkdir -p /app/lib && for i in 1 2 3 4 5; do echo "lib $i" > /app/lib/$i; done
WORKDIR /app
COPY requirements.txt .
RUN cat requirements.txt > installed && echo deps done
COPY src/ src/
RUN cat src/*.py > bundle && wc -l bundle
ENV MODE=production
CMD ["cat", "/app/bundle"]
"""


def context(d: Path) -> None:
    (d / "src").mkdir(parents=True)
    (d / "Dockerfile").write_text(DOCKERFILE)
    (d / "requirements.txt").write_text("flask==3.0\nrequests==2.31\n")
    for i in range(20):
        (d / "src" / f"mod{i}.py").write_text(
            "".join(f"def f{j}(): return {j}\n" for j in range(50))
        )
    (d / "src" / "main.py").write_text("print('version 0')\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    reexec_in_private_mountns()
    fresh_bytecode()
    base = Path(tempfile.mkdtemp(prefix="cb-build-", dir="/tmp"))
    daemon = DaemonProc(base / "corral", cgroup_parent="/corral-bench-build")
    (base / "corral").mkdir()
    dockerd = None
    try:
        bundle = make_bundle(base, ["/bin/true"])
        tar = rootfs_tar(bundle / "rootfs", base)
        daemon.start()
        cenv = {**os.environ, "CORRAL_SOCKET": daemon.socket}
        import_image([str(CORRAL)], tar, "bench-busybox", env=cenv)
        ctx = base / "ctx"
        context(ctx)
        engines: dict[str, tuple[list[str], dict]] = {
            "corral": ([str(CORRAL), "build", "-q", "-t", "bench-app"], cenv)
        }
        dockerd = start_dockerd(base)
        if dockerd:
            import_image(dockerd[1], tar, "bench-busybox")
            engines["docker build"] = (
                [*dockerd[1], "build", "-q", "-t", "bench-app"],
                {**os.environ, "DOCKER_BUILDKIT": "0"},
            )
        podman = podman_cli(base)
        buildah = shutil.which("buildah")
        if podman and buildah:
            import_image(podman, tar, "bench-busybox")
            engines["buildah bud"] = (
                [buildah, "--root", str(base / "podman"), "--runroot", str(base / "podman-run"),
                 "bud", "-q", "--cgroup-manager", "cgroupfs", "--ulimit", "nofile=1024:1024",
                 "-t", "bench-app"],
                dict(os.environ),
            )  # fmt: skip
        elif not buildah:
            log("buildah: not installed (apt-get install buildah): left out of this run")
        for name, (argv, env) in list(engines.items()):  # a warm-up; one that fails is left out
            try:
                timed([*argv, str(ctx)], env)
            except RuntimeError as e:
                log(f"{name}: left out: {e}")
                del engines[name]
        results: dict[str, dict[str, list[float]]] = {
            k: {"cold": [], "nochange": [], "oneline": []} for k in engines
        }
        main_py = ctx / "src" / "main.py"
        for r in range(args.rounds):
            for name, (argv, env) in engines.items():
                results[name]["cold"].append(timed([*argv, "--no-cache", str(ctx)], env))
                results[name]["nochange"].append(timed([*argv, str(ctx)], env))
                main_py.write_text(f"print('version {r}-{name}')\n")  # one line changed
                results[name]["oneline"].append(timed([*argv, str(ctx)], env))
            log(f"round {r}: " + ", ".join(
                f"{k} {v['oneline'][-1]:.0f} ms" for k, v in results.items()))  # fmt: skip
        print("| engine | what | median | p10 - p90 | rounds |")
        print("| --- | --- | --- | --- | --- |")
        for name, by in results.items():
            for what, label in (("cold", "cold (--no-cache)"), ("nochange", "no change"),
                                ("oneline", "one-line change")):  # fmt: skip
                print(fmt(f"{name} | {label}", summary(by[what])))
        c = {w: summary(v)["median"] for w, v in results["corral"].items()}
        for name, by in results.items():
            if name == "corral":
                continue
            ratios = ", ".join(
                f"{w} {summary(by[w])['median'] / c[w]:.2f}x"
                for w in ("cold", "nochange", "oneline")
            )
            print(f"\ncorral vs {name} (medians): {ratios}")
        print("\n" + json.dumps(results))
    finally:
        daemon.stop()
        if dockerd:
            dockerd[0].terminate()
            dockerd[0].wait()
            subprocess.run(["umount", "-R", str(base / "docker")], capture_output=True)
        subprocess.run(["umount", "-R", str(base / "podman")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
