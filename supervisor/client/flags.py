"""What the command line's values mean: sizes, durations, times, filters,
labels, environment files, and the whole of run/create's flags as the
ContainerConfig asked of the daemon (checked first: supervisor/checks.py)."""

from __future__ import annotations

import os
import time

from protocols.lite import api
from supervisor import checks, cmdline, units
from supervisor.client.connection import UsageError
from supervisor.cmdline import ArgumentTypeError, Namespace


def parse_size(value: str) -> int:
    """Docker's sizes: 512m, 1g, 100k, 1024 (bytes)."""
    try:
        return units.parse_size(value)
    except ValueError as e:
        raise ArgumentTypeError(str(e)) from None


def parse_time(value: str, now: float | None = None) -> int:
    """--since/--until: a Unix timestamp, RFC 3339, or a duration ago (10m, 1h30m)."""
    now = time.time() if now is None else now
    if units.is_decimal(value):
        return int(float(value) * 1e9)
    ago = units.go_duration(value)
    if ago is not None:
        return int((now - ago) * 1e9)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            base = value.split(".")[0].rstrip("Z")
            return int(time.mktime(time.strptime(base, fmt)) - time.timezone) * 10**9
        except ValueError:
            continue
    raise ArgumentTypeError(f"invalid time: {value!r}")


def parse_filters(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values:
        for item in v.split(","):
            key, eq, val = item.partition("=")
            if not eq:
                raise ArgumentTypeError(f"bad filter {item!r}: expected key=value")
            out.setdefault(key, []).append(val)
    return out


def labels_from(entries: list[str]) -> dict[str, str]:
    """--label KEY=VALUE (or KEY, an empty value), later ones winning."""
    out = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        if not key:
            raise UsageError(f"invalid label {entry!r}: KEY=VALUE")
        out[key] = value
    return out


def env_from(args: Namespace) -> list[str]:
    """--env-file then -e, as Docker reads them: a bare NAME takes the client's value."""
    given = [line for f in args.env_file for line in _lines(f, "--env-file")] + args.env
    return [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in given]


def _lines(path: str, flag: str) -> list[str]:
    """The non-blank, non-comment lines of a --env-file or --label-file."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"{flag} {path}: {e.strerror}") from None
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def _mounts(args: Namespace) -> list[api.MountSpec]:
    if not (args.volume or args.mount or args.tmpfs):
        return []  # without importing the parsers (and re, ~5 ms)
    from supervisor.mounts import MountError, parse_mount, parse_tmpfs, parse_volume

    try:
        return (
            [parse_volume(v) for v in args.volume]
            + [parse_mount(m) for m in args.mount]
            + [parse_tmpfs(t) for t in args.tmpfs]
        )
    except MountError as e:
        raise UsageError(f"{e}") from None


def _duration(value: str) -> float:
    """Go's durations, as Docker's flags take them (100ms, 1m30s); seconds."""
    seconds = units.go_duration(value)
    if seconds is not None:
        return seconds
    if units.is_decimal(value):
        return float(value)
    raise ArgumentTypeError(f"invalid duration {value!r} (examples: 100ms, 30s, 1m30s)")


def config_from(args: Namespace) -> api.ContainerConfig:
    env = env_from(args)
    labels = labels_from(
        [*(line for f in args.label_file for line in _lines(f, "--label-file")), *args.label]
    )
    try:
        log_max_size, log_max_files = units.parse_log_opts(args.log_opt)
    except ValueError as e:
        raise UsageError(f"{e}") from None
    mem = args.memory or None  # -m 0: no limit, as Docker reads it
    if args.restart != "no" and args.rm:
        raise UsageError("conflicting options: --restart and --rm")
    health = [] if args.no_healthcheck or not args.health_cmd else ["sh", "-c", args.health_cmd]
    image, cmd = "", list(args.command)
    if not args.rootfs:
        if not cmd:
            raise UsageError("an image (or --rootfs DIR) is required")
        image, cmd = cmd[0], cmd[1:]
    entrypoint = None
    if args.entrypoint is not None:
        entrypoint = [args.entrypoint] if args.entrypoint else []
    cfg = api.ContainerConfig(
        name=args.name,
        rootfs=os.path.abspath(args.rootfs) if args.rootfs else "",
        image=image,
        entrypoint=entrypoint,
        no_healthcheck=args.no_healthcheck,
        cmd=cmd,
        env=env,
        workdir=args.workdir,
        user=args.user,
        hostname=args.hostname,
        labels=labels,
        memory=mem,
        memory_swap=args.memory_swap
        if args.memory_swap is not None
        else (2 * mem if mem else None),
        cpus=args.cpus,
        pids_limit=args.pids_limit,
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        tty=args.tty,
        open_stdin=args.interactive,
        auto_remove=args.rm,
        network=args.network,
        network_aliases=args.network_alias,
        ports=args.publish,
        expose=args.expose,
        publish_all=args.publish_all,
        log_max_size=log_max_size,
        log_max_files=log_max_files,
        restart=args.restart,
        restart_delay=args.restart_delay,
        restart_max_delay=args.restart_max_delay,
        restart_reset_after=args.restart_reset_after,
        restart_burst=args.restart_burst,
        restart_window=args.restart_window,
        health_cmd=health,
        health_interval=args.health_interval,
        health_timeout=args.health_timeout,
        health_retries=args.health_retries,
        health_start_period=args.health_start_period,
        health_on_failure=args.health_on_failure,
        mounts=_mounts(args),
        read_only=args.read_only,
        volumes_from=args.volumes_from,
        security_opt=[_security_opt(o) for o in args.security_opt],
        cap_add=args.cap_add,
        cap_drop=args.cap_drop,
        privileged=args.privileged,
        devices=args.device,
        device_read_bps=args.device_read_bps,
        device_write_bps=args.device_write_bps,
        device_read_iops=args.device_read_iops,
        device_write_iops=args.device_write_iops,
        blkio_weight=args.blkio_weight,
        ulimits=dict(_ulimit(u) for u in args.ulimit),
        shm_size=args.shm_size,
        extra_hosts=args.add_host,
        init=args.init,
        cpu_shares=args.cpu_shares,
        cpuset_cpus=args.cpuset_cpus,
        cpuset_mems=args.cpuset_mems,
        memory_reservation=args.memory_reservation,
        group_add=args.group_add,
        sysctls=dict(_key_value(s, "--sysctl") for s in args.sysctl),
        oom_score_adj=args.oom_score_adj,
        pid_mode=args.pid,
        ipc_mode=args.ipc,
        ipv4_address=args.ip,
        dns=args.dns,
        dns_search=args.dns_search,
        dns_options=args.dns_option,
    )
    try:
        checks.container(cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return cfg


def _key_value(text: str, flag: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise UsageError(f"{flag} {text!r}: KEY=VALUE")
    return key.strip(), value


def _ulimit(text: str) -> tuple[str, tuple[int, int]]:
    """--ulimit nofile=1024[:2048] (Docker's: unlimited is -1)."""
    name, eq, value = text.partition("=")
    soft, _, hard = value.partition(":")
    try:
        limits = tuple((2**64 - 1) if v == "-1" else int(v) for v in (soft, hard or soft))
    except ValueError:
        raise UsageError(f"--ulimit {text!r}: NAME=SOFT[:HARD], numbers") from None
    if not eq or not name or limits[0] > limits[1]:
        raise UsageError(f"--ulimit {text!r}: NAME=SOFT[:HARD], soft <= hard")
    return name, limits  # type: ignore[return-value]


def _security_opt(opt: str) -> str:
    """seccomp=FILE is sent as seccomp=CONTENT, as Docker's client does: the
    file is the client's, the daemon may be elsewhere."""
    key, _, value = opt.partition("=")
    if key != "seccomp" or value in ("", "unconfined") or value.lstrip().startswith("{"):
        return opt
    try:
        with open(value, encoding="utf-8") as f:
            return "seccomp=" + f.read()
    except OSError as e:
        raise UsageError(f"--security-opt {opt}: {e.strerror}") from None


def _boolean(value: str) -> bool:
    """Docker's boolean flags given a value: --sig-proxy=false."""
    v = value.lower()
    if v not in ("1", "0", "true", "false", "t", "f"):
        raise ArgumentTypeError(f"invalid boolean: {value!r}")
    return v in ("1", "true", "t")


def _device_rate(text: str, parse) -> str:
    path, colon, rate = text.rpartition(":")
    if not colon or not path.startswith("/"):
        raise cmdline.ArgumentTypeError(f"{text!r} is not PATH:RATE (/dev/sda:1mb)")
    return f"{path}:{parse(rate)}"


def _device_rate_bytes(text: str) -> str:
    return _device_rate(text, parse_size)


def _device_rate_ops(text: str) -> str:
    def ops(rate: str) -> int:
        if not rate.isdigit():
            raise cmdline.ArgumentTypeError(f"{text!r}: the rate is not a whole number")
        return int(rate)

    return _device_rate(text, ops)
