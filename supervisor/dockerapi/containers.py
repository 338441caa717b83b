"""/containers: create, start, stop, restart, kill, rm, ps, inspect, wait,
rename, update, pause, unpause, prune, top, changes, resize. Each asks
Corral's own handler (through the Relay) and answers in Docker's shape."""

from __future__ import annotations

import shlex

from protocols import api
from supervisor.daemon import inspect as shapes
from supervisor.dockerapi.context import Api, filters_of
from supervisor.dockerapi.createconfig import NS, config_from
from supervisor.dockerapi.http import Exchange, HttpError


async def create(a: Api, ex: Exchange) -> None:
    body = await ex.json(required=True)
    cfg = config_from(body, ex.arg("name"))
    created = await a.call(api.Create(config=cfg))
    await ex.send_json(201, {"Id": created.id, "Warnings": []})


async def start(a: Api, ex: Exchange, id: str) -> None:
    u = a.unit(id)
    if u.running:
        await ex.send(304)
        return
    await a.call(api.Start(id=u.id))
    await ex.send(204)


async def stop(a: Api, ex: Exchange, id: str) -> None:
    u = a.unit(id)
    if not u.running:
        await ex.send(304)
        return
    await a.call(api.Stop(id=u.id, timeout=ex.number("t"), signal=ex.arg("signal")))
    await ex.send(204)


async def restart(a: Api, ex: Exchange, id: str) -> None:
    await a.call(api.Restart(id=id, timeout=ex.number("t"), signal=ex.arg("signal")))
    await ex.send(204)


async def kill(a: Api, ex: Exchange, id: str) -> None:
    u = a.unit(id)
    if not u.running:
        raise HttpError(409, f"Cannot kill container: {id}: container {u.id} is not running")
    await a.call(api.Kill(id=u.id, signal=ex.arg("signal") or "SIGKILL"))
    await ex.send(204)


async def remove(a: Api, ex: Exchange, id: str) -> None:
    u = a.unit(id)
    if u.running and not ex.flag("force"):
        raise HttpError(
            409,
            f"cannot remove container {u.name}: container is running: "
            "stop the container before removing or force remove",
        )
    await a.call(api.Remove(id=u.id, force=ex.flag("force"), volumes=ex.flag("v")))
    await ex.send(204)


async def pause(a: Api, ex: Exchange, id: str) -> None:
    await a.call(api.Pause(id=id))
    await ex.send(204)


async def unpause(a: Api, ex: Exchange, id: str) -> None:
    await a.call(api.Unpause(id=id))
    await ex.send(204)


async def rename(a: Api, ex: Exchange, id: str) -> None:
    await a.call(api.Rename(id=id, name=ex.arg("name")))
    await ex.send(204)


async def resize(a: Api, ex: Exchange, id: str) -> None:
    h, w = ex.number("h", 0) or 0, ex.number("w", 0) or 0
    await a.call(api.Resize(id=id, height=h, width=w))
    await ex.send(200, b"", "text/plain")


async def update(a: Api, ex: Exchange, id: str) -> None:
    b = await ex.json(required=True)
    policy = b.get("RestartPolicy") or {}
    restart_ = ""
    if policy.get("Name"):
        n = policy.get("MaximumRetryCount")
        restart_ = policy["Name"] + (f":{n}" if n and policy["Name"] == "on-failure" else "")
    await a.call(
        api.Update(
            id=id,
            memory=b.get("Memory") or None,
            memory_swap=b.get("MemorySwap") or None,
            memory_reservation=b.get("MemoryReservation") or None,
            cpus=b["NanoCpus"] / NS if b.get("NanoCpus") else None,
            cpu_shares=b.get("CpuShares") or None,
            cpuset_cpus=b.get("CpusetCpus") or "",
            cpuset_mems=b.get("CpusetMems") or "",
            pids_limit=b.get("PidsLimit") or None,
            restart=restart_,
        )
    )
    await ex.send_json(200, {"Warnings": []})


def _ports(s: api.ContainerSummary) -> list[dict]:
    out = []
    for key, host in sorted(s.ports.items()):
        port, _, proto = key.partition("/")
        ip, _, hport = host.rpartition(":")
        out.append({"IP": ip, "PrivatePort": int(port), "PublicPort": int(hport), "Type": proto})
    return out


def summary(a: Api, s: api.ContainerSummary, size: bool) -> dict:
    u = a.fleet.units.get(s.id)
    cfg = u.config if u else None
    nets = {}
    if u is not None:
        nets = shapes.network_settings(u, a.fleet.networks.networks)["Networks"]
    out = {
        "Id": s.id,
        "Names": ["/" + s.name],
        "Image": s.image,
        "ImageID": cfg.image_id if cfg else "",
        "Command": shlex.join(cfg.cmd) if cfg else s.command,  # quoted, as dockerd shows it
        "Created": s.created_nano // NS,
        "Ports": _ports(s),
        "Labels": s.labels,
        "State": s.state,
        "Status": s.status,
        "HostConfig": {"NetworkMode": (cfg.network if cfg else "") or "bridge"},
        "NetworkSettings": {"Networks": nets},
        "Mounts": mounts_of(u, a.fleet.volumes) if u else [],
    }
    if size:
        out["SizeRw"], out["SizeRootFs"] = s.size_rw, s.size_root_fs
    return out


def mounts_of(u, volumes) -> list[dict]:
    """Docker's Mounts list, from the container's mount specs."""
    out = []
    for m in u.config.mounts:
        entry = {
            "Type": m.type,
            "Source": m.source,
            "Destination": m.target,
            "Mode": "ro" if m.readonly else "",
            "RW": not m.readonly,
            "Propagation": m.propagation if m.type == "bind" else "",
        }
        if m.type == "volume":
            entry.update(Name=m.source, Driver="local")
            entry["Source"] = str(volumes.data(m.source))
        out.append(entry)
    return out


async def list_(a: Api, ex: Exchange) -> None:
    filters = filters_of(ex.json_arg("filters"))
    size = ex.flag("size")
    res = await a.call(api.List(all=ex.flag("all"), filters=filters, size=size))
    rows = [summary(a, s, size) for s in res.containers]
    limit = ex.number("limit", -1)
    if limit is not None and limit > 0:
        rows = rows[:limit]
    await ex.send_json(200, rows)


async def inspect(a: Api, ex: Exchange, id: str) -> None:
    res = await a.call(api.Inspect(id=id))
    data = dict(res.data)
    u = a.unit(id)
    cfg = u.config
    data["Mounts"] = mounts_of(u, a.fleet.volumes)
    data["Config"] = {
        **data["Config"],
        "Entrypoint": cfg.entrypoint,
        "AttachStdin": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "StdinOnce": False,
        "Domainname": "",
        "Volumes": None,
    }
    hc = data["HostConfig"]
    hc["Binds"] = [
        f"{m.source}:{m.target}{':ro' if m.readonly else ''}"
        for m in cfg.mounts
        if m.type in ("bind", "volume") and m.source
    ] or None
    hc["PortBindings"] = _port_bindings(cfg.ports)
    hc["NetworkMode"] = hc.get("NetworkMode") or "bridge"
    hc["LogConfig"] = {"Type": "json-file", "Config": hc["LogConfig"]["Config"]}
    hc.setdefault("VolumesFrom", cfg.volumes_from or None)
    hc.setdefault("ExtraHosts", cfg.extra_hosts or None)
    hc.setdefault("ReadonlyRootfs", cfg.read_only)
    hc.setdefault("ShmSize", cfg.shm_size or 64 * 1024 * 1024)
    hc.setdefault("Runtime", "corral")
    data["Driver"] = "overlay2"
    data["Platform"] = "linux"
    data["HostsPath"] = str(u.path / "hosts")
    data["ResolvConfPath"] = str(u.path / "resolv.conf")
    data["HostnamePath"] = str(u.path / "hostname")
    data.setdefault("ExecIDs", None)
    if ex.flag("size"):
        sizes = (await a.call(api.List(all=True, filters={"id": [u.id]}, size=True))).containers
        if sizes:
            data["SizeRw"], data["SizeRootFs"] = sizes[0].size_rw, sizes[0].size_root_fs
    await ex.send_json(200, data)


def _port_bindings(ports: list[str]) -> dict:
    from supervisor import checks

    out: dict = {}
    for p in ports:
        ip, hport, port, proto = checks.publish(p)
        out.setdefault(f"{port}/{proto}", []).append(
            {"HostIp": "" if ip == "0.0.0.0" else ip, "HostPort": str(hport or "")}
        )
    return out


async def wait(a: Api, ex: Exchange, id: str) -> None:
    """The head goes at once (a client starts the container after it, as
    `docker run` does), the body when the condition is met."""
    condition = ex.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise HttpError(400, f"invalid condition: {condition!r}")
    u = a.unit(id)
    journal = a.fleet.journal
    seq = journal.last_seq
    if condition == "not-running" and not u.running:
        await ex.send_json(200, {"StatusCode": u.state.exit_code, "Error": None})
        return
    await ex.start_stream("application/json")
    code, error = u.state.exit_code, ""
    want = {"next-exit": {"die"}, "not-running": {"die"}, "removed": {"destroy"}}[condition]
    filters = {"container": [u.id], "event": ["die", "destroy"]}
    done = False
    async for item in journal.follow(seq + 1, filters):
        if isinstance(item, list):
            for ev, _ in item:
                if ev.action == "die":
                    code = int(ev.attributes.get("exitCode", code))
                    error = u.state.error
                if ev.action in want:
                    done = True
                    break
        if done:
            break
    body = {"StatusCode": code, "Error": {"Message": error} if error else None}
    import json

    await ex.stream(json.dumps(body).encode() + b"\n")
    await ex.end_stream()


async def prune(a: Api, ex: Exchange) -> None:
    filters_of(ex.json_arg("filters"))
    res = await a.call(api.ContainerPrune())
    await ex.send_json(200, {"ContainersDeleted": res.ids or None, "SpaceReclaimed": 0})


async def top(a: Api, ex: Exchange, id: str) -> None:
    if ex.arg("ps_args") not in ("", "-ef"):
        raise HttpError(400, f"ps arguments {ex.arg('ps_args')!r} are not supported by Corral")
    res = await a.call(api.Top(id=id))
    await ex.send_json(200, {"Titles": res.titles, "Processes": res.processes})


async def changes(a: Api, ex: Exchange, id: str) -> None:
    res = await a.call(api.Diff(id=id))
    kinds = {"C": 0, "A": 1, "D": 2}
    await ex.send_json(200, [{"Path": p, "Kind": kinds[k]} for k, p in res.changes] or None)
