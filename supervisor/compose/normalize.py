"""The merged Compose file (plain YAML values) into protocols/compose.py's
Structs: every short form made long, sizes in bytes, durations in seconds,
paths absolute, env files read, each value's type checked with its path in
the message (`services.web.ports[0]: invalid port "eighty"`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

import msgspec

from protocols import compose as c
from supervisor import checks, units
from supervisor.compose import ComposeError
from supervisor.compose.interpolate import InterpolationError, read_env_file

RESTART = ("no", "always", "unless-stopped", "on-failure")
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
PULL_POLICIES = ("always", "missing", "never", "build", "if_not_present", "daily", "weekly")


def project_name(text: str) -> str:
    """Compose's rule: lower case letters, digits, dashes and underscores,
    starting with a letter or digit; a folder's name is made one."""
    name = "".join(ch for ch in text.lower() if ch.isascii() and (ch.isalnum() or ch in "-_"))
    name = name.lstrip("-_")
    if not name:
        raise ComposeError(
            f"project name {text!r} must contain only lowercase letters, digits, dashes and "
            "underscores, and start with a letter or digit (-p NAME)"
        )
    return name


# -- scalars ---------------------------------------------------------------------------------


def _str(v: object, path: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str | int | float):
        return str(v)
    raise ComposeError(f"{path}: must be a string, not {_kind(v)}")


def _kind(v: object) -> str:
    return {dict: "a mapping", list: "a list", type(None): "null"}.get(type(v), type(v).__name__)


def _strs(v: object, path: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list):
        raise ComposeError(f"{path}: must be a list, not {_kind(v)}")
    return [_str(x, f"{path}[{i}]") for i, x in enumerate(v)]


def _int(v: object, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ComposeError(f"{path}: must be an integer, not {_kind(v)}")
    try:
        return int(v)
    except ValueError:
        raise ComposeError(f"{path}: must be an integer, not {v!r}") from None


def _bool(v: object, path: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ComposeError(f"{path}: must be true or false, not {v!r}")


def _float(v: object, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ComposeError(f"{path}: must be a number, not {_kind(v)}")
    try:
        return float(v)
    except ValueError:
        raise ComposeError(f"{path}: must be a number, not {v!r}") from None


def _duration(v: object, path: str) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    seconds = units.go_duration(v) if isinstance(v, str) else None
    if seconds is None:
        raise ComposeError(f"{path}: invalid duration {v!r} (examples: 10s, 1m30s, 500ms)")
    return seconds


def _size(v: object, path: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    try:
        return units.parse_size(_str(v, path))
    except ValueError as e:
        raise ComposeError(f"{path}: {e}") from None


def _map(v: object, path: str) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ComposeError(f"{path}: must be a mapping, not {_kind(v)}")
    return v


def _labels(v: object, path: str) -> dict[str, str]:
    return {str(k): "" if x is None else _str(x, f"{path}.{k}") for k, x in _map(v, path).items()}


def _command(v: object, path: str) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return shlex.split(v)
        except ValueError as e:
            raise ComposeError(f"{path}: {e}") from None
    return _strs(v, path)


# -- a service -------------------------------------------------------------------------------


def _environment(svc: dict, where: str, wd: Path, env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, f in enumerate(_strs(svc.get("env_file"), f"{where}.env_file")):
        path = f if os.path.isabs(f) else str(wd / f)
        try:
            out.update(read_env_file(path, env))
        except OSError as e:
            raise ComposeError(
                f"{where}.env_file[{i}]: couldn't read {path}: {e.strerror}"
            ) from None
        except (ValueError, InterpolationError) as e:
            raise ComposeError(f"{where}.env_file[{i}]: {e}") from None
    for k, v in _map(svc.get("environment"), f"{where}.environment").items():
        if v is None:  # KEY alone: from the shell, if it has it
            if k in env:
                out[str(k)] = env[k]
            continue
        out[str(k)] = _str(v, f"{where}.environment.{k}")
    return out


def _ports(v: object, path: str) -> list[c.Port]:
    out: list[c.Port] = []
    for i, p in enumerate(v or []):
        at = f"{path}[{i}]"
        if isinstance(p, dict):
            out.append(
                c.Port(
                    target=_int(p.get("target"), f"{at}.target"),
                    published=_str(p.get("published", ""), f"{at}.published"),
                    host_ip=_str(p.get("host_ip", ""), f"{at}.host_ip"),
                    protocol=_str(p.get("protocol", "tcp"), f"{at}.protocol"),
                    mode=_str(p.get("mode", "ingress"), f"{at}.mode"),
                )
            )
            continue
        out.extend(_short_ports(_str(p, at), at))
    for i, p in enumerate(out):
        try:
            host = f"{p.host_ip}:" if p.host_ip else ""
            checks.publish(f"{host}{p.published or '0'}:{p.target}/{p.protocol}")
        except ValueError as e:
            raise ComposeError(f"{path}[{i}]: {e}") from None
    return out


def _short_ports(text: str, at: str) -> list[c.Port]:
    """[HOST_IP:][PUBLISHED:]TARGET[/PROTO], ranges of equal length allowed."""
    body, _, proto = text.partition("/")
    parts = body.rsplit(":", 2)
    host_ip = parts[0] if len(parts) == 3 else ""
    published = parts[-2] if len(parts) >= 2 else ""
    targets = _range(parts[-1], at)
    if not published:
        return [c.Port(target=t, host_ip=host_ip, protocol=proto or "tcp") for t in targets]
    pubs = _range(published, at)
    if len(pubs) != len(targets):
        raise ComposeError(f"{at}: {text!r}: a published range must be as long as the target's")
    return [
        c.Port(target=t, published=str(h), host_ip=host_ip, protocol=proto or "tcp")
        for h, t in zip(pubs, targets, strict=True)
    ]


def _range(text: str, at: str) -> list[int]:
    lo, _, hi = text.partition("-")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise ComposeError(f"{at}: invalid port {text!r}") from None
    if not 0 < first <= last <= 65535:
        raise ComposeError(f"{at}: invalid port range {text!r}")
    return list(range(first, last + 1))


def _volumes(v: object, where: str, wd: Path, declared: dict) -> list[c.ServiceVolume]:
    out = []
    for i, m in enumerate(v or []):
        at = f"{where}.volumes[{i}]"
        vol = _long_volume(m, at, wd) if isinstance(m, dict) else _short_volume(_str(m, at), at, wd)
        if vol.type == "volume" and vol.source and vol.source not in declared:
            raise ComposeError(
                f'{at}: service "{where.split(".", 1)[1]}" refers to undefined volume '
                f"{vol.source}: declare it under the top-level volumes"
            )
        out.append(vol)
    return out


def _host_path(src: str, wd: Path) -> str:
    if src.startswith("~"):
        return os.path.expanduser(src)
    return str((wd / src).resolve()) if not os.path.isabs(src) else src


def _short_volume(text: str, at: str, wd: Path) -> c.ServiceVolume:
    parts = text.split(":")
    if len(parts) == 1:
        return c.ServiceVolume(type="volume", target=parts[0])
    if len(parts) > 3:
        raise ComposeError(f"{at}: invalid volume {text!r} (SOURCE:TARGET[:MODE])")
    src, target, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
    opts = set(filter(None, mode.split(",")))
    prop = next((o for o in opts if o in _PROPAGATION), "")
    unknown = opts - {"ro", "rw", "z", "Z", "nocopy", *_PROPAGATION}
    if unknown:
        raise ComposeError(f"{at}: invalid mode {','.join(sorted(unknown))!r} in {text!r}")
    bind = src.startswith(("/", ".", "~"))
    return c.ServiceVolume(
        type="bind" if bind else "volume",
        source=_host_path(src, wd) if bind else src,
        target=target,
        read_only="ro" in opts,
        propagation=prop,
        nocopy="nocopy" in opts,
    )


_PROPAGATION = ("shared", "slave", "private", "rshared", "rslave", "rprivate")


def _long_volume(m: dict, at: str, wd: Path) -> c.ServiceVolume:
    kind = _str(m.get("type", "volume"), f"{at}.type")
    if kind not in ("volume", "bind", "tmpfs"):
        raise ComposeError(f"{at}.type: {kind!r} not supported (volume, bind, tmpfs)")
    if "target" not in m:
        raise ComposeError(f"{at}.target: required")
    src = _str(m.get("source", ""), f"{at}.source")
    bind, vol, tmp = (_map(m.get(k), f"{at}.{k}") for k in ("bind", "volume", "tmpfs"))
    if kind == "bind" and not src:
        raise ComposeError(f"{at}.source: required for a bind mount")
    return c.ServiceVolume(
        type=kind,
        target=_str(m["target"], f"{at}.target"),
        source=_host_path(src, wd) if kind == "bind" else src,
        read_only=_bool(m.get("read_only", False), f"{at}.read_only"),
        create_host_path=_bool(bind.get("create_host_path", False), f"{at}.bind.create_host_path"),
        propagation=_str(bind.get("propagation", ""), f"{at}.bind.propagation"),
        nocopy=_bool(vol.get("nocopy", False), f"{at}.volume.nocopy"),
        tmpfs_size=_size(tmp["size"], f"{at}.tmpfs.size") if "size" in tmp else 0,
        tmpfs_mode=_int(tmp.get("mode", 0), f"{at}.tmpfs.mode"),
    )


def _healthcheck(v: object, at: str) -> c.Healthcheck | None:
    if v is None:
        return None
    h = _map(v, at)
    test = h.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    test = _strs(test, f"{at}.test")
    if test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise ComposeError(f"{at}.test: must start with CMD, CMD-SHELL or NONE, not {test[0]!r}")
    disable = _bool(h.get("disable", False), f"{at}.disable") or test[:1] == ["NONE"]
    return c.Healthcheck(
        test=[] if disable else test,
        interval=_duration(h["interval"], f"{at}.interval") if "interval" in h else None,
        timeout=_duration(h["timeout"], f"{at}.timeout") if "timeout" in h else None,
        retries=_int(h["retries"], f"{at}.retries") if "retries" in h else None,
        start_period=_duration(h["start_period"], f"{at}.start_period")
        if "start_period" in h
        else None,
        disable=disable,
    )


def _limits(v: object, at: str) -> c.Limits | None:
    if v is None:
        return None
    m = _map(v, at)
    return c.Limits(
        cpus=_float(m["cpus"], f"{at}.cpus") if "cpus" in m else None,
        memory=_size(m["memory"], f"{at}.memory") if "memory" in m else None,
        pids=_int(m["pids"], f"{at}.pids") if "pids" in m else None,
    )


def _deploy(v: object, at: str) -> c.Deploy | None:
    if v is None:
        return None
    d = _map(v, at)
    res = _map(d.get("resources"), f"{at}.resources")
    rp = d.get("restart_policy")
    policy = None
    if rp is not None:
        r = _map(rp, f"{at}.restart_policy")
        cond = _str(r.get("condition", "any"), f"{at}.restart_policy.condition")
        if cond not in ("none", "on-failure", "any"):
            raise ComposeError(f"{at}.restart_policy.condition: {cond!r} (none, on-failure or any)")
        policy = c.RestartPolicy(
            condition=cond,
            max_attempts=_int(r["max_attempts"], f"{at}.restart_policy.max_attempts")
            if "max_attempts" in r
            else None,
            delay=_duration(r["delay"], f"{at}.restart_policy.delay") if "delay" in r else None,
            window=_duration(r["window"], f"{at}.restart_policy.window") if "window" in r else None,
        )
    resources = None
    if res:
        resources = c.Resources(
            limits=_limits(res.get("limits"), f"{at}.resources.limits"),
            reservations=_limits(res.get("reservations"), f"{at}.resources.reservations"),
        )
    replicas = _int(d["replicas"], f"{at}.replicas") if "replicas" in d else None
    return c.Deploy(replicas=replicas, resources=resources, restart_policy=policy)


def _ulimits(v: object, at: str) -> dict[str, c.Ulimit]:
    out = {}
    for k, x in _map(v, at).items():
        if isinstance(x, dict):
            out[str(k)] = c.Ulimit(
                soft=_int(x.get("soft"), f"{at}.{k}.soft"),
                hard=_int(x.get("hard"), f"{at}.{k}.hard"),
            )
        else:
            n = _int(x, f"{at}.{k}")
            out[str(k)] = c.Ulimit(soft=n, hard=n)
    return out


def _networks(svc: dict, where: str, declared: dict) -> dict[str, c.ServiceNetwork]:
    nets = _map(svc.get("networks"), f"{where}.networks")
    if not nets and not svc.get("network_mode"):
        return {"default": c.ServiceNetwork()}
    out = {}
    for name, opts in nets.items():
        at = f"{where}.networks.{name}"
        if name not in declared and name != "default":
            raise ComposeError(
                f'{at}: service "{where.split(".", 1)[1]}" refers to undefined network {name}: '
                "declare it under the top-level networks"
            )
        o = _map(opts, at)
        out[str(name)] = c.ServiceNetwork(
            aliases=_strs(o.get("aliases"), f"{at}.aliases"),
            ipv4_address=_str(o.get("ipv4_address", ""), f"{at}.ipv4_address"),
        )
    return out


def _depends(svc: dict, where: str, services: dict) -> dict[str, c.Dependency]:
    out = {}
    for dep, opts in _map(svc.get("depends_on"), f"{where}.depends_on").items():
        at = f"{where}.depends_on.{dep}"
        o = _map(opts, at)
        cond = _str(o.get("condition", "service_started"), f"{at}.condition")
        if cond not in CONDITIONS:
            raise ComposeError(f"{at}.condition: {cond!r} is not one of {', '.join(CONDITIONS)}")
        if dep not in services:
            raise ComposeError(
                f'{at}: service "{where.split(".", 1)[1]}" depends on undefined service "{dep}"'
            )
        out[str(dep)] = c.Dependency(
            condition=cond,
            required=_bool(o.get("required", True), f"{at}.required"),
            restart=_bool(o.get("restart", False), f"{at}.restart"),
        )
    return out


def _restart(v: object, at: str) -> str:
    text = _str(v, at) if v is not None else ""
    name, _, count = text.partition(":")
    if text and (name not in RESTART or (count and (name != "on-failure" or not count.isdigit()))):
        raise ComposeError(f"{at}: invalid restart policy {text!r} ({', '.join(RESTART)}[:N])")
    return text


def _logging(v: object, at: str) -> c.Logging | None:
    if v is None:
        return None
    m = _map(v, at)
    driver = _str(m.get("driver", ""), f"{at}.driver")
    if driver not in ("", "json-file", "local"):
        raise ComposeError(f"{at}.driver: {driver!r} not supported (json-file or local)")
    opts = _labels(m.get("options"), f"{at}.options")
    try:
        units.parse_log_opts([f"{k}={x}" for k, x in opts.items()])
    except ValueError as e:
        raise ComposeError(f"{at}.options: {e}") from None
    return c.Logging(driver=driver, options=opts)


def _build(v: object, at: str, wd: Path, env: Mapping[str, str]) -> c.ServiceBuild | None:
    if v is None:
        return None
    b = _map(v, at)
    ctx = _str(b.get("context", "."), f"{at}.context")
    args = {}
    for k, x in (
        _map(b.get("args"), f"{at}.args")
        if not isinstance(b.get("args"), list)
        else {
            a.partition("=")[0]: (a.partition("=")[2] if "=" in a else None)
            for a in _strs(b["args"], f"{at}.args")
        }
    ).items():
        if x is None:
            if k in env:
                args[str(k)] = env[k]
        else:
            args[str(k)] = _str(x, f"{at}.args.{k}")
    return c.ServiceBuild(
        context=_host_path(ctx, wd),
        dockerfile=_str(b.get("dockerfile", "Dockerfile"), f"{at}.dockerfile"),
        args=args,
        target=_str(b.get("target", ""), f"{at}.target"),
        labels=_labels(b.get("labels"), f"{at}.labels"),
        no_cache=_bool(b.get("no_cache", False), f"{at}.no_cache"),
    )


def service(name: str, svc: dict, *, wd: Path, env: Mapping[str, str], raw: dict) -> c.Service:
    at = f"services.{name}"
    s = _map(svc, at)
    g = s.get

    def opt(key: str, conv):
        return conv(s[key], f"{at}.{key}") if key in s and s[key] is not None else None

    image = opt("image", _str) or ""
    build = _build(g("build"), f"{at}.build", wd, env)
    if not image and build is None:
        raise ComposeError(f'service "{name}" has neither an image nor a build context specified')
    mode = opt("network_mode", _str) or ""
    if mode and mode not in ("host", "none", "bridge"):
        raise ComposeError(f"{at}.network_mode: {mode!r} not supported (host, none or bridge)")
    if mode and g("networks"):
        raise ComposeError(f"{at}: network_mode and networks cannot be combined")
    pull = opt("pull_policy", _str) or ""
    if pull and pull not in PULL_POLICIES:
        raise ComposeError(f"{at}.pull_policy: {pull!r} is not one of {', '.join(PULL_POLICIES)}")
    return c.Service(
        image=image,
        build=build,
        command=_command(g("command"), f"{at}.command"),
        entrypoint=_command(g("entrypoint"), f"{at}.entrypoint"),
        environment=_environment(s, at, wd, env),
        ports=_ports(g("ports"), f"{at}.ports"),
        expose=[e for x in _strs(g("expose"), f"{at}.expose") for e in _expose(x, at)],
        volumes=_volumes(g("volumes"), at, wd, _map(raw.get("volumes"), "volumes")),
        tmpfs=_strs(g("tmpfs"), f"{at}.tmpfs"),
        networks=_networks(s, at, _map(raw.get("networks"), "networks")),
        network_mode=mode,
        depends_on=_depends(s, at, raw["services"]),
        healthcheck=_healthcheck(g("healthcheck"), f"{at}.healthcheck"),
        restart=_restart(g("restart"), f"{at}.restart"),
        deploy=_deploy(g("deploy"), f"{at}.deploy"),
        stop_signal=opt("stop_signal", _str) or "",
        stop_grace_period=opt("stop_grace_period", _duration),
        labels=_labels(g("labels"), f"{at}.labels"),
        container_name=opt("container_name", _str) or "",
        hostname=opt("hostname", _str) or "",
        user=opt("user", _str) or "",
        working_dir=opt("working_dir", _str) or "",
        init=bool(opt("init", _bool)),
        read_only=bool(opt("read_only", _bool)),
        privileged=bool(opt("privileged", _bool)),
        tty=bool(opt("tty", _bool)),
        stdin_open=bool(opt("stdin_open", _bool)),
        cap_add=_strs(g("cap_add"), f"{at}.cap_add"),
        cap_drop=_strs(g("cap_drop"), f"{at}.cap_drop"),
        security_opt=_strs(g("security_opt"), f"{at}.security_opt"),
        ulimits=_ulimits(g("ulimits"), f"{at}.ulimits"),
        sysctls=_labels(g("sysctls"), f"{at}.sysctls"),
        extra_hosts=[
            h.replace("=", ":", 1) if "=" in h else h
            for h in _strs(g("extra_hosts"), f"{at}.extra_hosts")
        ],
        dns=_strs(g("dns"), f"{at}.dns"),
        dns_search=_strs(g("dns_search"), f"{at}.dns_search"),
        logging=_logging(g("logging"), f"{at}.logging"),
        profiles=_strs(g("profiles"), f"{at}.profiles"),
        scale=opt("scale", _int),
        pull_policy=pull,
        cpus=opt("cpus", _float),
        mem_limit=opt("mem_limit", _size),
        mem_reservation=opt("mem_reservation", _size),
        memswap_limit=opt("memswap_limit", _swap),
        pids_limit=opt("pids_limit", _int),
        cpu_shares=opt("cpu_shares", _int),
        cpuset=opt("cpuset", _str) or "",
        shm_size=opt("shm_size", _size) or 0,
        oom_score_adj=opt("oom_score_adj", _int),
        group_add=_strs(g("group_add"), f"{at}.group_add"),
        devices=_strs(g("devices"), f"{at}.devices"),
        dns_opt=_strs(g("dns_opt"), f"{at}.dns_opt"),
        pid=opt("pid", _str) or "",
        ipc=opt("ipc", _str) or "",
    )


def _swap(v: object, path: str) -> int:
    return -1 if v in (-1, "-1") else _size(v, path)


def _expose(text: str, at: str) -> list[str]:
    try:
        checks.expose(text)
    except ValueError as e:
        raise ComposeError(f"{at}.expose: {e}") from None
    return [text]


# -- the project -----------------------------------------------------------------------------


def project(
    raw: dict, *, name: str, working_dir: Path, env: Mapping[str, str], files: list[str]
) -> c.Project:
    services = {
        str(k): service(str(k), v, wd=working_dir, env=env, raw=raw)
        for k, v in _map(raw.get("services"), "services").items()
    }
    networks = {}
    for key, decl in _map(raw.get("networks"), "networks").items():
        at = f"networks.{key}"
        d = _map(decl, at)
        driver = _str(d.get("driver", "bridge"), f"{at}.driver")
        if driver != "bridge":
            raise ComposeError(f"{at}.driver: {driver!r} not supported (bridge)")
        ipam = _map(d.get("ipam"), f"{at}.ipam")
        pools = ipam.get("config") or []
        if not isinstance(pools, list) or len(pools) > 1:
            raise ComposeError(f"{at}.ipam.config: one subnet at most")
        pool = _map(pools[0], f"{at}.ipam.config[0]") if pools else {}
        external = bool(d.get("external")) and _bool(d["external"], f"{at}.external")
        networks[str(key)] = c.ProjectNetwork(
            name=_str(d.get("name") or (key if external else f"{name}_{key}"), f"{at}.name"),
            external=external,
            labels=_labels(d.get("labels"), f"{at}.labels"),
            subnet=_str(pool.get("subnet", ""), f"{at}.ipam.config[0].subnet"),
            gateway=_str(pool.get("gateway", ""), f"{at}.ipam.config[0].gateway"),
        )
    if "default" not in networks and any("default" in s.networks for s in services.values()):
        networks["default"] = c.ProjectNetwork(name=f"{name}_default")
    volumes = {}
    for key, decl in _map(raw.get("volumes"), "volumes").items():
        at = f"volumes.{key}"
        d = _map(decl, at)
        driver = _str(d.get("driver", "local"), f"{at}.driver")
        if driver != "local":
            raise ComposeError(f"{at}.driver: {driver!r} not supported (local)")
        external = bool(d.get("external")) and _bool(d["external"], f"{at}.external")
        volumes[str(key)] = c.ProjectVolume(
            name=_str(d.get("name") or (key if external else f"{name}_{key}"), f"{at}.name"),
            external=external,
            labels=_labels(d.get("labels"), f"{at}.labels"),
        )
    for key, s in services.items():
        if s.container_name and _replicas(s) > 1:
            raise ComposeError(
                f'services.{key}: container_name "{s.container_name}" and {_replicas(s)} replicas: '
                "a name is one container's"
            )
    return c.Project(
        name=name,
        services=services,
        networks=networks,
        volumes=volumes,
        working_dir=str(working_dir),
        config_files=files,
    )


def _replicas(s: c.Service) -> int:
    if s.deploy is not None and s.deploy.replicas is not None:
        return s.deploy.replicas
    return s.scale if s.scale is not None else 1


def with_profiles(p: c.Project, profiles: list[str], named: list[str]) -> c.Project:
    """Only the services the active profiles enable (those without profiles,
    those in one that is active, those named on the command line). A service
    depending on one that is not enabled is an error, as Docker's."""
    active = {
        k
        for k, s in p.services.items()
        if not s.profiles or "*" in profiles or set(s.profiles) & set(profiles) or k in named
    }
    for k in sorted(active):
        for dep, d in p.services[k].depends_on.items():
            if dep not in active and d.required:
                raise ComposeError(
                    f'service "{k}" depends on service "{dep}", which is not enabled by the '
                    f"active profiles (--profile {' '.join(p.services[dep].profiles)})"
                )
    services = {
        k: msgspec.structs.replace(
            s, depends_on={d: x for d, x in s.depends_on.items() if d in active}
        )
        for k, s in p.services.items()
        if k in active
    }
    return c.Project(
        name=p.name,
        services=services,
        networks=p.networks,
        volumes=p.volumes,
        working_dir=p.working_dir,
        config_files=p.config_files,
    )
