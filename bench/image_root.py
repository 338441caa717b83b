"""Setting up a container's root from an image, and the disk 100 containers use.

    sudo .venv/bin/python bench/image_root.py [--rounds 100]

1. Root setup: the same container (busybox /bin/true) started through the runtime
   API with its root as a plain bind of a directory, and as an overlay of an
   image's layer with a fresh upper and work directory (what the daemon does for
   each container). The difference, plus making the three directories, is the
   cost of the copy-on-write root. Rounds interleaved.
2. Disk: 100 containers created from one image through the daemon: bytes in
   their own directories against the image's layers.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import DaemonProc, make_bundle, summary


def du(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() or f.is_symlink())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args()
    import msgspec

    from protocols import oci
    from supervisor.images.store import ImageStore
    from supervisor.runtime import Runtime
    from supervisor.runtime import spec as specs

    base = Path(tempfile.mkdtemp(prefix="corral-bench-img-"))
    try:
        bundle = make_bundle(base, ["/bin/true"])
        rootfs = bundle / "rootfs"
        tar = io.BytesIO(
            subprocess.run(
                ["tar", "-C", str(rootfs), "-cf", "-", "."], check=True, capture_output=True
            ).stdout
        )
        store = ImageStore(base / "store")
        _diff, chain = store.add_layer(tar, None)
        layer = store.layers / chain.removeprefix("sha256:") / "diff"
        rt = Runtime(base / "state", cgroup_parent="/corral-bench-img")
        spec = specs.load(bundle)
        plain, over, dirs = [], [], []
        for i in range(args.rounds):
            t = time.perf_counter()
            rt.run(f"p{i}", bundle, stdio=(0, 1, 2), spec=spec)
            plain.append((time.perf_counter() - t) * 1000)
            c = base / "c" / str(i)
            t = time.perf_counter()
            for sub in ("upper", "work", "rootfs"):
                (c / sub).mkdir(parents=True)
            dirs.append((time.perf_counter() - t) * 1000)
            ospec = msgspec.structs.replace(spec, root=oci.Root(path=str(c / "rootfs")))
            t = time.perf_counter()
            created = rt.create(
                f"o{i}",
                bundle,
                stdio=(0, 1, 2),
                detach=False,
                wait_for_start=False,
                spec=ospec,
                overlay=(str(layer), str(c / "upper"), str(c / "work")),
            )
            from supervisor.runtime.processes import wait_child as _wait_child

            _wait_child(created.monitor_pidfd)
            rt.remove_reaped(created)
            over.append((time.perf_counter() - t) * 1000)
        extra = [o - p + d for o, p, d in zip(over, plain, dirs, strict=True)]
        s_p, s_o, s_d, s_x = summary(plain), summary(over), summary(dirs), summary(extra)
        print("| what | median | p10 - p90 | runs |")
        print("| --- | --- | --- | --- |")
        print(
            f"| start with a bind root | {s_p['median']:.2f} ms | {s_p['p10']:.2f} - "
            f"{s_p['p90']:.2f} | {s_p['n']} |"
        )
        print(
            f"| start with an overlay root over the image's layer | {s_o['median']:.2f} ms | "
            f"{s_o['p10']:.2f} - {s_o['p90']:.2f} | {s_o['n']} |"
        )
        print(
            f"| making upper/, work/, rootfs/ | {s_d['median']:.3f} ms | {s_d['p10']:.3f} - "
            f"{s_d['p90']:.3f} | {s_d['n']} |"
        )
        print(
            f"| root setup (overlay - bind + directories), per run | {s_x['median']:.2f} ms | "
            f"{s_x['p10']:.2f} - {s_x['p90']:.2f} | {s_x['n']} |"
        )
        print(f"\n(mean of the differences: {statistics.mean(extra):.2f} ms)")

        # Disk: 100 containers of one image through the daemon.
        (base / "d").mkdir()
        daemon = DaemonProc(base / "d", cgroup_parent="/corral-bench-img-d")
        daemon.start()
        try:
            from protocols.lite import api as api_lite
            from supervisor.client.connection import Client

            tarfile_path = base / "rootfs.tar"
            tarfile_path.write_bytes(tar.getvalue())
            with Client(daemon.socket) as c:
                c.call(api_lite.ImageImport(path=str(tarfile_path), ref="bench:one"))
                for _ in range(100):
                    cid = c.call(
                        api_lite.Create(
                            config=api_lite.ContainerConfig(
                                network="none",
                                image="bench:one",
                                cmd=["sh", "-c", "echo hi > /written"],
                            )
                        )
                    ).id
                    for _msg in c.stream(api_lite.Attach(id=cid, start=True)):
                        pass
                droot = base / "d" / "root"
                containers = du(droot / "containers")
                layers = du(droot / "images" / "layers")
            print()
            print("| 100 containers of one image | bytes |")
            print("| --- | --- |")
            print(f"| the image's layers (stored once) | {layers:,} |")
            print(f"| all 100 containers' own directories (each wrote 3 bytes) | {containers:,} |")
        finally:
            daemon.stop()
    finally:
        from supervisor.runtime.cgroups import remove_parent

        remove_parent("/corral-bench-img")  # containers' parents stay when they go
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
