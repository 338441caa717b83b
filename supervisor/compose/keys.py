"""Which keys of the Compose Specification Corral carries out, and the check
that refuses the rest by their path: `services.web.devices_cgroup_rules: not
supported` for a key of the specification that Corral does not do, `...:
unknown key` for one that is in no specification. And the first step of
normalizing: the forms that may be a list or a mapping made mappings, so that
files merge key by key.
"""

from __future__ import annotations

from collections.abc import Callable

from supervisor.compose import ComposeError

SERVICE = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "volumes", "tmpfs", "networks", "network_mode", "depends_on", "healthcheck", "restart",
    "deploy", "stop_signal", "stop_grace_period", "labels", "container_name", "hostname",
    "user", "working_dir", "init", "read_only", "privileged", "tty", "stdin_open", "cap_add",
    "cap_drop", "security_opt", "ulimits", "sysctls", "extra_hosts", "dns", "dns_search",
    "logging", "profiles", "scale", "pull_policy", "cpus", "mem_limit", "mem_reservation",
    "memswap_limit", "pids_limit", "cpu_shares", "cpuset", "shm_size", "oom_score_adj",
    "group_add", "devices", "dns_opt", "pid", "ipc",
}  # fmt: skip
# In the specification, not carried out by Corral (yet): refused by name.
SERVICE_SPEC_ONLY = {
    "annotations", "attach", "blkio_config", "cgroup", "cgroup_parent", "configs",
    "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime",
    "credential_spec", "device_cgroup_rules", "develop", "domainname", "external_links",
    "extends", "gpus", "isolation", "label_file", "links", "mac_address", "mem_swappiness",
    "models", "oom_kill_disable", "platform", "post_start", "pre_stop", "provider", "runtime",
    "secrets", "stop_grace", "storage_opt", "userns_mode", "uts", "volumes_from", "use_api_socket",
}  # fmt: skip
TOP = {"version", "name", "services", "networks", "volumes"}
TOP_SPEC_ONLY = {"configs", "secrets", "include", "models"}
NETWORK = {"name", "external", "driver", "labels", "ipam"}
NETWORK_SPEC_ONLY = {"driver_opts", "attachable", "enable_ipv4", "enable_ipv6", "internal"}
VOLUME = {"name", "external", "driver", "labels"}
VOLUME_SPEC_ONLY = {"driver_opts"}
NESTED = {  # a service's mappings: their keys, and the specification's others
    "healthcheck": (
        {"test", "interval", "timeout", "retries", "start_period", "disable"},
        {"start_interval"},
    ),
    "deploy": (
        {"replicas", "resources", "restart_policy"},
        {"mode", "placement", "update_config", "rollback_config", "labels", "endpoint_mode"},
    ),
    "deploy.resources": ({"limits", "reservations"}, set()),
    "deploy.resources.limits": ({"cpus", "memory", "pids"}, {"devices"}),
    "deploy.resources.reservations": ({"cpus", "memory"}, {"devices", "generic_resources"}),
    "deploy.restart_policy": ({"condition", "delay", "max_attempts", "window"}, set()),
    "build": (
        {"context", "dockerfile", "args", "target", "labels", "no_cache"},
        {
            "additional_contexts", "cache_from", "cache_to", "dockerfile_inline", "entitlements",
            "extra_hosts", "isolation", "network", "platforms", "privileged", "pull", "secrets",
            "shm_size", "ssh", "tags", "ulimits",
        },
    ),
    "logging": ({"driver", "options"}, set()),
}  # fmt: skip
DEPENDENCY = {"condition", "required", "restart"}
SERVICE_NETWORK = {"aliases", "ipv4_address"}
SERVICE_NETWORK_SPEC_ONLY = {
    "ipv6_address", "link_local_ips", "mac_address", "driver_opts", "priority", "gw_priority",
    "interface_name",
}  # fmt: skip
PORT = {"target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"}
VOLUME_MOUNT = {"type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency"}
VOLUME_MOUNT_NESTED = {
    "bind": {"propagation", "create_host_path", "selinux"},
    "volume": {"nocopy", "subpath"},
    "tmpfs": {"size", "mode"},
}
# Lists that merge as sets (later files add to them).
APPENDED = {
    "ports", "expose", "dns", "dns_search", "dns_opt", "cap_add", "cap_drop", "security_opt",
    "extra_hosts", "profiles", "env_file", "devices", "group_add",
}  # fmt: skip


def _unknown(where: str, key: str, spec_only: set[str]) -> str:
    return f"{where}.{key}: {'not supported' if key in spec_only else 'unknown key'}"


def _check_map(
    node: object, where: str, allowed: set[str], spec_only: set[str], errors: list[str]
) -> None:
    if node is None:
        return
    if not isinstance(node, dict):
        errors.append(f"{where}: must be a mapping")
        return
    for key in node:
        k = str(key)
        if k.startswith("x-"):
            continue
        if k not in allowed:
            errors.append(_unknown(where, k, spec_only))


def check(doc: dict, source: str, warn: Callable[[str], None]) -> None:
    """Every key of `doc` (one file) one that Corral carries out. ValueError
    (ComposeError) lists each that is not, by its path."""
    errors: list[str] = []
    for key in doc:
        k = str(key)
        if k.startswith("x-"):
            continue
        if k not in TOP:
            errors.append(
                f"{k}: not supported" if k in TOP_SPEC_ONLY else f"(root) unknown key {k!r}"
            )
    if "version" in doc:
        warn(f"{source}: the attribute `version` is obsolete, it will be ignored")
    services = doc.get("services") or {}
    if not isinstance(services, dict):
        errors.append("services: must be a mapping")
        services = {}
    for name, svc in services.items():
        where = f"services.{name}"
        _check_map(svc, where, SERVICE, SERVICE_SPEC_ONLY, errors)
        if not isinstance(svc, dict):
            continue
        for sub, (allowed, spec_only) in NESTED.items():
            node: object = svc
            for part in sub.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if sub == "build" and isinstance(node, str):
                continue
            _check_map(node, f"{where}.{sub}", allowed, spec_only, errors)
        _check_service_lists(svc, where, errors)
    for section, allowed, spec_only in (
        ("networks", NETWORK, NETWORK_SPEC_ONLY),
        ("volumes", VOLUME, VOLUME_SPEC_ONLY),
    ):
        decls = doc.get(section) or {}
        if not isinstance(decls, dict):
            errors.append(f"{section}: must be a mapping")
            continue
        for name, decl in decls.items():
            _check_map(decl, f"{section}.{name}", allowed, spec_only, errors)
    if errors:
        raise ComposeError(f"{source}: " + "; ".join(errors))


def _check_service_lists(svc: dict, where: str, errors: list[str]) -> None:
    deps = svc.get("depends_on")
    if isinstance(deps, dict):
        for dep, opts in deps.items():
            _check_map(opts, f"{where}.depends_on.{dep}", DEPENDENCY, set(), errors)
    nets = svc.get("networks")
    if isinstance(nets, dict):
        for net, opts in nets.items():
            _check_map(
                opts,
                f"{where}.networks.{net}",
                SERVICE_NETWORK,
                SERVICE_NETWORK_SPEC_ONLY,
                errors,
            )
    for i, p in enumerate(svc.get("ports") or []):
        if isinstance(p, dict):
            _check_map(p, f"{where}.ports[{i}]", PORT, set(), errors)
    for i, v in enumerate(svc.get("volumes") or []):
        if isinstance(v, dict):
            _check_map(v, f"{where}.volumes[{i}]", VOLUME_MOUNT, set(), errors)
            for sub, allowed in VOLUME_MOUNT_NESTED.items():
                _check_map(v.get(sub), f"{where}.volumes[{i}].{sub}", allowed, set(), errors)


def volume_target(v: object) -> object:
    """The container path a volumes entry mounts on (what merges match on)."""
    if isinstance(v, dict):
        return v.get("target")
    if isinstance(v, str):
        parts = v.split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    return v


def _as_map(value: object, sep: str = "=") -> object:
    """["K=V", "K"] -> {"K": "V", "K": None}; a mapping stays one."""
    if isinstance(value, list):
        out: dict[str, object] = {}
        for item in value:
            k, eq, v = str(item).partition(sep)
            out[k] = v if eq else None
        return out
    return value


def long_forms(doc: dict) -> dict:
    """The file with what may be a list or a mapping made a mapping (environment,
    labels, sysctls, networks, depends_on, build), so merges go key by key."""
    services = doc.get("services")
    if not isinstance(services, dict):
        return doc
    out = {}
    for name, svc in services.items():
        if not isinstance(svc, dict):
            out[name] = svc
            continue
        svc = dict(svc)
        for key in ("environment", "labels", "sysctls"):
            if key in svc:
                svc[key] = _as_map(svc[key])
        if isinstance(svc.get("networks"), list):
            svc["networks"] = {n: None for n in svc["networks"]}
        if isinstance(svc.get("depends_on"), list):
            svc["depends_on"] = {d: {"condition": "service_started"} for d in svc["depends_on"]}
        if isinstance(svc.get("build"), str):
            svc["build"] = {"context": svc["build"]}
        if isinstance(svc.get("extra_hosts"), dict):
            svc["extra_hosts"] = [f"{h}:{ip}" for h, ip in svc["extra_hosts"].items()]
        for key in ("dns", "dns_search", "env_file", "tmpfs", "cap_add", "cap_drop"):
            if isinstance(svc.get(key), str):
                svc[key] = [svc[key]]
        out[name] = svc
    return {**doc, "services": out}
