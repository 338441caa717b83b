"""/_ping, /version, /info, /system/df, /events."""

from __future__ import annotations

import json
import os
import platform
import time

from protocols import api
from protocols.events import FILTER_KEYS, Event
from supervisor import __version__
from supervisor.daemon import filters as filter_checks
from supervisor.daemon.api_system import info as corral_info
from supervisor.daemon.api_system import measure_usage
from supervisor.dockerapi.containers import summary
from supervisor.dockerapi.context import Api, filters_of, since_nano
from supervisor.dockerapi.http import Exchange, HttpError
from supervisor.dockerapi.images import _summary

MIN_VERSION = "1.41"
MAX_VERSION = "1.50"  # what the docker CLI 28 asks for


async def ping(a: Api, ex: Exchange) -> None:
    await ex.send(200, b"OK", "text/plain; charset=utf-8", [
        ("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache"),
    ])  # fmt: skip


def version_info() -> dict:
    u = os.uname()
    facts = {
        "Version": __version__,
        "ApiVersion": MAX_VERSION,
        "MinAPIVersion": MIN_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(u.machine, u.machine),
        "KernelVersion": u.release,
        "BuildTime": "",
    }
    details = {k: str(v) for k, v in facts.items() if k != "Version"}
    details["Experimental"] = "false"
    return {
        "Platform": {"Name": "Corral"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        **facts,
    }


async def version(a: Api, ex: Exchange) -> None:
    await ex.send_json(200, version_info())


async def info(a: Api, ex: Exchange) -> None:
    data = corral_info(a.fleet)
    nets = data.pop("Networks")
    data.update(
        ID=a.fleet.store.dir.parent.name,
        Images=len((await a.call(api.ImageList())).images),
        Plugins={"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["corral"]},
        MemoryLimit=True,
        SwapLimit=True,
        CpuCfsPeriod=False,
        CpuCfsQuota=False,
        CPUShares=True,
        CPUSet=True,
        PidsLimit=True,
        IPv4Forwarding=True,
        Debug=False,
        NFd=len(os.listdir("/proc/self/fd")),
        NGoroutines=0,
        SystemTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        IndexServerAddress="https://index.docker.io/v1/",
        RegistryConfig={"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]},
        HttpProxy="",
        HttpsProxy="",
        NoProxy="",
        Labels=[],
        ExperimentalBuild=False,
        Runtimes={"corral": {"path": "corral runtime"}},
        DefaultRuntime="corral",
        Swarm={"LocalNodeState": "inactive", "ControlAvailable": False},
        LiveRestoreEnabled=True,
        Isolation="",
        InitBinary="corral-init",
        ContainerdCommit={"ID": ""},
        RuncCommit={"ID": ""},
        InitCommit={"ID": ""},
        Warnings=None,
        DriverStatus=[["Backing Filesystem", "overlayfs"]],
        KernelMemory=False,
        OomKillDisable=False,
        CgroupNamespaces=False,
    )
    data["LoggingDriver"] = "corral"
    data["NetworksCount"] = len(nets)
    await ex.send_json(200, data)


async def df(a: Api, ex: Exchange) -> None:
    """docker system df computes its table from these lists, as dockerd sends them."""
    # One walk of every tree (measure_usage), the lists built from it.
    layer_sizes, uppers, vsizes = await measure_usage(a.fleet)
    images = (await a.call(api.ImageList())).images
    containers = (await a.call(api.List(all=True))).containers
    volumes = (await a.call(api.VolumeList())).volumes
    st = a.fleet.images
    rows = []
    for c in containers:
        u = a.fleet.units.get(c.id)
        below = st.layer_dirs(u.config.image_id) if u and u.config.image_id else []
        rw = uppers.get(c.id, 0)
        root = rw + sum(layer_sizes.get(d, 0) for d in below)
        rows.append({**summary(a, c, False), "SizeRw": rw, "SizeRootFs": root})
    await ex.send_json(
        200,
        {
            "LayersSize": sum(layer_sizes.values()),
            "Images": [_summary(s, {}) for s in images],
            "Containers": rows,
            "Volumes": [
                {
                    "Name": v.name,
                    "Driver": v.driver,
                    "Mountpoint": v.mountpoint,
                    "Labels": v.labels or None,
                    "Scope": "local",
                    "UsageData": {"Size": vsizes.get(v.name, 0), "RefCount": len(v.in_use_by)},
                }
                for v in volumes
            ],
            "BuildCache": [],
        },
    )


def event_json(ev: Event) -> dict:
    attrs = dict(ev.attributes)
    out = {
        "Type": ev.type,
        "Action": ev.action,
        "Actor": {"ID": ev.id, "Attributes": attrs},
        "scope": "local",
        "time": ev.time_nano // 1_000_000_000,
        "timeNano": ev.time_nano,
    }
    if ev.type == "container":  # the old fields, still read by older clients
        out.update(status=ev.action, id=ev.id)
        if "image" in attrs:
            out["from"] = attrs["image"]
    return out


async def events(a: Api, ex: Exchange) -> None:
    """The journal replayed from `since`, then followed live (until `until`)."""
    filters = filters_of(ex.json_arg("filters"))
    try:
        filter_checks.check_keys(filters, FILTER_KEYS)
    except Exception as e:
        raise HttpError(400, str(e)) from None
    j = a.fleet.journal
    since = since_nano(ex.arg("since"))
    until = since_nano(ex.arg("until"))
    start = j.seq_at(since) if since is not None else j.last_seq + 1
    await ex.start_stream("application/json")
    await ex.stream(b"")
    async for item in j.follow(start, filters, until):
        if isinstance(item, list):
            out = b"".join(json.dumps(event_json(ev)).encode() + b"\n" for ev, _ in item)
            await ex.stream(out)
    await ex.end_stream()
