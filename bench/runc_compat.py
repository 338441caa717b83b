"""corral-runc against runc and crun behind the same engines, in one run:

- `ctr run --rm IMAGE ID /bin/true` under one containerd (Debian's 1.6,
  started here with its own root), `--runc-binary` naming each runtime;
- `docker run --rm --runtime R busybox /bin/true` under one dockerd (Debian's
  20.10, `--add-runtime` for corral-runc and crun; runc is its default).

    sudo .venv/bin/python bench/runc_compat.py [--rounds N]

Rounds interleave the runtimes; each figure is the whole client command's
wall time (the engine, its shim and the runtime's create, start, state and
delete), median and p10-p90.
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
    DaemonProc,
    fmt,
    fresh_bytecode,
    import_image,
    log,
    make_bundle,
    reexec_in_private_mountns,
    rootfs_tar,
    start_dockerd,
    summary,
    timed,
)

RUNC = str(Path(CORRAL).with_name("corral-runc"))


def wait_for(argv: list[str], what: str) -> None:
    for _ in range(300):
        if subprocess.run(argv, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    sys.exit(f"{what} did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    reexec_in_private_mountns()
    fresh_bytecode()
    runtimes = {"corral-runc": RUNC, "runc": shutil.which("runc"), "crun": shutil.which("crun")}
    runtimes = {k: v for k, v in runtimes.items() if v}
    base = Path(tempfile.mkdtemp(prefix="cb-runc-", dir="/tmp"))
    (base / "corral").mkdir()
    daemon = DaemonProc(base / "corral", cgroup_parent="/corral-bench-runc")
    procs: list[subprocess.Popen] = []
    results: dict[str, list[float]] = {}
    try:
        bundle = make_bundle(base, ["/bin/true"])
        tar = rootfs_tar(bundle / "rootfs", base)
        daemon.start()
        env = {"CORRAL_SOCKET": daemon.socket, "PATH": "/usr/bin:/bin"}
        import_image([str(CORRAL)], tar, "busybox", env=env)
        subprocess.run([str(CORRAL), "save", "-o", str(base / "img.tar"), "busybox"], env=env,
                       check=True, capture_output=True)  # fmt: skip
        # containerd
        sock = base / "c.sock"
        (base / "ctd.toml").write_text(
            f'version = 2\nroot = "{base}/ctd-root"\nstate = "{base}/ctd-state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n'
        )
        logf = open(base / "ctd.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen(["containerd", "--config", str(base / "ctd.toml")],
                                      stdout=logf, stderr=logf))  # fmt: skip
        ctr = ["ctr", "--address", str(sock), "--namespace", "corral-bench"]
        wait_for([*ctr, "version"], "containerd")
        subprocess.run([*ctr, "images", "import", "--base-name", "docker.io/library/busybox",
                        str(base / "img.tar")], check=True, capture_output=True)  # fmt: skip
        image = "docker.io/library/busybox:latest"
        # dockerd, its containers in a cgroup parent of ours
        adds = [f"--add-runtime=corral={RUNC}", "--cgroup-parent", "/corral-bench-dockerd"]
        if "crun" in runtimes:
            adds.append(f"--add-runtime=crun={runtimes['crun']}")
        dockerd = start_dockerd(base, adds)
        if dockerd is None:
            sys.exit("dockerd could not be started")
        procs.append(dockerd[0])
        docker = dockerd[1]
        import_image(docker, tar, "busybox")
        docker_names = {"corral-runc": "corral", "runc": "runc", "crun": "crun"}
        n = 0
        for r in range(args.rounds + 1):  # round 0 warms up
            for name, path in runtimes.items():
                n += 1
                t = timed([*ctr, "run", "--rm", "--runc-binary", path, image, f"b{n}", "/bin/true"])
                d = timed([*docker, "run", "--rm", "--runtime", docker_names[name], "busybox",
                           "/bin/true"])  # fmt: skip
                if r:
                    results.setdefault(f"containerd | ctr run --rm ({name})", []).append(t)
                    results.setdefault(f"dockerd | docker run --rm --runtime {name}", []).append(d)
            if r % 10 == 0:
                log(f"round {r}")
        print("| engine | command (runtime) | median | p10 - p90 | rounds |")
        print("| --- | --- | --- | --- | --- |")
        for what, samples in results.items():
            print(fmt(what, summary(samples)))
        print()
        for engine, prefix in (("containerd", "containerd | ctr run --rm"),
                               ("dockerd", "dockerd | docker run --rm --runtime")):  # fmt: skip
            ours = summary(results[f"{prefix} (corral-runc)" if engine == "containerd"
                                   else f"{prefix} corral-runc"])["median"]  # fmt: skip
            for name in runtimes:
                if name == "corral-runc":
                    continue
                key = f"{prefix} ({name})" if engine == "containerd" else f"{prefix} {name}"
                theirs = summary(results[key])["median"]
                print(f"{engine}: corral-runc / {name} (medians) = {ours / theirs:.2f}x")
        print("\n" + json.dumps(results))
    finally:
        daemon.stop()
        for p in procs:
            p.terminate()
            p.wait()
        subprocess.run(["umount", "-R", str(base / "docker")], capture_output=True)
        subprocess.run(["umount", "-R", str(base / "ctd-root")], capture_output=True)
        for d in ("corral-bench", "corral-bench-dockerd"):  # ours alone, never dockerd's own
            for ctrl in Path("/sys/fs/cgroup").iterdir():
                leftover = ctrl / d
                if leftover.is_dir():
                    subprocess.run(["rmdir", str(leftover)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
