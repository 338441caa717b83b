"""What the daemon needs of a normalized project: the order of its services,
each service's hash, how many replicas, and the ContainerConfig of each
replica, with the labels Docker Compose puts on its containers (so `corral ps
--filter label=com.docker.compose.project=app` and Compose-aware tools find
them).

A service's hash is the SHA-256 of its normalized configuration (replicas left
out: scaling adds or removes containers, it changes none), written on each of
its containers as com.docker.compose.config-hash; `up` recreates exactly the
containers whose label differs from the file's.
"""

from __future__ import annotations

import hashlib
import math

import msgspec

from protocols import compose as c
from protocols.container import ContainerConfig, MountSpec
from supervisor import mounts, units
from supervisor.compose import ComposeError

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
HASH = "com.docker.compose.config-hash"
ONEOFF = "com.docker.compose.oneoff"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
DEPENDS_ON = "com.docker.compose.depends_on"
IMAGE = "com.docker.compose.image"  # the image id the container was made from
VERSION = "com.docker.compose.version"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"


def config_hash(svc: c.Service) -> str:
    deploy = msgspec.structs.replace(svc.deploy, replicas=None) if svc.deploy else None
    plain = msgspec.structs.replace(
        svc, scale=None, deploy=None if deploy == c.Deploy() else deploy
    )
    return hashlib.sha256(msgspec.json.encode(_every_field(plain), order="sorted")).hexdigest()


def _every_field(obj):
    """Structs as mappings of every field: msgspec's omit_defaults leaves out a
    default value only when it is the same object, so a value read from YAML
    and the same default would encode differently."""
    if isinstance(obj, msgspec.Struct):
        return {f: _every_field(getattr(obj, f)) for f in obj.__struct_fields__}
    if isinstance(obj, dict):
        return {k: _every_field(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_every_field(v) for v in obj]
    return obj


def replicas(svc: c.Service, scale: dict[str, int] | None = None, name: str = "") -> int:
    if scale and name in scale:
        return scale[name]
    if svc.deploy is not None and svc.deploy.replicas is not None:
        return svc.deploy.replicas
    return svc.scale if svc.scale is not None else 1


def order(p: c.Project) -> list[str]:
    """The services, each after what it depends on (ties by name). ComposeError
    names a cycle."""
    done: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise ComposeError(f"dependency cycle detected: {' -> '.join(cycle)}")
        state[name] = 1
        for dep in sorted(p.services[name].depends_on):
            if dep in p.services:
                visit(dep, [*path, dep])
        state[name] = 2
        done.append(name)

    for name in sorted(p.services):
        visit(name, [name])
    return done


def with_dependencies(p: c.Project, wanted: list[str]) -> list[str]:
    """`wanted` and everything they depend on, in order."""
    unknown = [w for w in wanted if w not in p.services]
    if unknown:
        raise ComposeError(f"no such service: {', '.join(unknown)}")
    keep: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(p.services[name].depends_on)
    return [s for s in order(p) if s in keep]


def image_of(p: c.Project, name: str) -> str:
    """The service's image reference: its own, or the one its build makes
    (PROJECT-SERVICE, Docker Compose v2's name)."""
    svc = p.services[name]
    return svc.image or f"{p.name}-{name}"


def container_name(p: c.Project, name: str, number: int) -> str:
    svc = p.services[name]
    return svc.container_name or f"{p.name}-{name}-{number}"


def _restart(svc: c.Service) -> tuple[str, float | None, float | None]:
    rp = svc.deploy.restart_policy if svc.deploy else None
    if svc.restart or rp is None:
        return svc.restart or "no", None, None
    name = {"none": "no", "any": "always", "on-failure": "on-failure"}[rp.condition]
    if name == "on-failure" and rp.max_attempts:
        name = f"on-failure:{rp.max_attempts}"
    return name, rp.delay, rp.window


def _health(svc: c.Service) -> tuple[list[str], bool]:
    h = svc.healthcheck
    if h is None or (not h.test and not h.disable):
        return [], False
    if h.disable:
        return [], True
    if h.test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(h.test[1:])], False
    return list(h.test[1:]), False


def _mount(p: c.Project, v: c.ServiceVolume) -> MountSpec:
    source = v.source
    if v.type == "volume" and source:
        source = p.volumes[source].name
    return MountSpec(
        type=v.type,
        target=v.target,
        source=source,
        readonly=v.read_only,
        propagation=v.propagation or "rprivate",
        create_source=v.create_host_path if v.type == "bind" else False,
        nocopy=v.nocopy,
        tmpfs_size=v.tmpfs_size,
        tmpfs_mode=v.tmpfs_mode or 0o1777,
    )


def _publish(port: c.Port) -> str:
    host = f"{port.host_ip}:" if port.host_ip else ""
    published = f"{port.published}:" if port.published else ""
    return f"{host}{published}{port.target}/{port.protocol}"


def primary_network(p: c.Project, name: str) -> tuple[str, str]:
    """(the project's key, the engine's name) of the network the service's
    containers are created on; ("", host|none|bridge) for a network_mode."""
    svc = p.services[name]
    if svc.network_mode:
        return "", svc.network_mode
    key = sorted(svc.networks)[0]
    return key, p.networks[key].name


def aliases(p: c.Project, name: str, key: str) -> list[str]:
    """A container's extra names on one of its networks: its service's and the
    file's aliases. (Its own name needs none: the network's DNS answers every
    container's name, and follows a rename, as a swap's replacement needs.)"""
    svc = p.services[name]
    extra = svc.networks[key].aliases if key in svc.networks else []
    return list(dict.fromkeys([name, *extra]))


def container_config(
    p: c.Project, name: str, number: int, *, image_id: str = ""
) -> ContainerConfig:
    """The configuration of replica `number` of service `name`: ComposeError
    for what cannot be one."""
    svc = p.services[name]
    cname = container_name(p, name, number)
    health, no_health = _health(svc)
    hc = svc.healthcheck
    restart, delay, window = _restart(svc)
    lim = svc.deploy.resources.limits if svc.deploy and svc.deploy.resources else None
    res = svc.deploy.resources.reservations if svc.deploy and svc.deploy.resources else None
    memory = (lim.memory if lim else None) or svc.mem_limit
    size, files = 0, 0
    if svc.logging is not None:
        size, files = units.parse_log_opts([f"{k}={v}" for k, v in svc.logging.options.items()])
    key, network = primary_network(p, name)
    try:
        tmpfs = [mounts.parse_tmpfs(t) for t in svc.tmpfs]
    except mounts.MountError as e:
        raise ComposeError(f"services.{name}.tmpfs: {e}") from None
    labels = {
        **svc.labels,
        PROJECT: p.name,
        SERVICE: name,
        NUMBER: str(number),
        HASH: config_hash(svc),
        ONEOFF: "False",
        WORKING_DIR: p.working_dir,
        CONFIG_FILES: ",".join(p.config_files),
        DEPENDS_ON: ",".join(
            f"{d}:{x.condition}:{str(x.restart).lower()}" for d, x in sorted(svc.depends_on.items())
        ),
        VERSION: "corral",
    }
    if image_id:
        labels[IMAGE] = image_id
    return ContainerConfig(
        name=cname,
        image=image_of(p, name),
        cmd=list(svc.command) if svc.command is not None else [],
        entrypoint=list(svc.entrypoint) if svc.entrypoint is not None else None,
        env=[f"{k}={v}" for k, v in svc.environment.items()],
        workdir=svc.working_dir,
        user=svc.user,
        hostname=svc.hostname,
        labels=labels,
        memory=memory,
        memory_swap=svc.memswap_limit,
        memory_reservation=(res.memory if res else None) or svc.mem_reservation,
        cpus=(lim.cpus if lim else None) or svc.cpus,
        pids_limit=(lim.pids if lim else None) or svc.pids_limit,
        stop_signal=svc.stop_signal or "SIGTERM",
        stop_timeout=math.ceil(svc.stop_grace_period) if svc.stop_grace_period is not None else 10,
        tty=svc.tty,
        open_stdin=svc.stdin_open,
        network=network,
        network_aliases=aliases(p, name, key) if key else [],
        ipv4_address=svc.networks[key].ipv4_address if key else "",
        ports=[_publish(x) for x in svc.ports],
        expose=list(svc.expose),
        log_max_size=size,
        log_max_files=files,
        restart=restart,
        restart_delay=delay,
        restart_reset_after=window,
        health_cmd=health,
        health_interval=(hc.interval if hc and hc.interval is not None else 30.0),
        health_timeout=(hc.timeout if hc and hc.timeout is not None else 30.0),
        health_retries=(hc.retries if hc and hc.retries is not None else 3),
        health_start_period=(hc.start_period if hc and hc.start_period is not None else 0.0),
        no_healthcheck=no_health,
        mounts=[_mount(p, v) for v in svc.volumes] + tmpfs,
        read_only=svc.read_only,
        security_opt=list(svc.security_opt),
        cap_add=list(svc.cap_add),
        cap_drop=list(svc.cap_drop),
        privileged=svc.privileged,
        devices=list(svc.devices),
        ulimits={k: (u.soft, u.hard) for k, u in svc.ulimits.items()},
        shm_size=svc.shm_size,
        extra_hosts=list(svc.extra_hosts),
        init=svc.init,
        cpu_shares=svc.cpu_shares,
        cpuset_cpus=svc.cpuset,
        group_add=list(svc.group_add),
        sysctls=dict(svc.sysctls),
        oom_score_adj=svc.oom_score_adj,
        pid_mode=svc.pid,
        ipc_mode=svc.ipc,
        dns=list(svc.dns),
        dns_search=list(svc.dns_search),
        dns_options=list(svc.dns_opt),
    )


def extra_networks(p: c.Project, name: str) -> list[tuple[str, str]]:
    """(key, engine name) of the service's networks beyond the first."""
    svc = p.services[name]
    if svc.network_mode:
        return []
    return [(k, p.networks[k].name) for k in sorted(svc.networks)[1:]]
