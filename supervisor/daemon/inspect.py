"""Docker's output shapes: `inspect` JSON, `ps` status words, durations."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from protocols.api import ContainerSummary
from supervisor.network.store import Network

if TYPE_CHECKING:
    from supervisor.daemon.fleet import Fleet
    from supervisor.daemon.unit import Unit as Container

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(nano: int) -> str:
    if not nano:
        return ZERO_TIME
    secs, frac = divmod(nano, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(seconds / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def status_words(c: Container, now_nano: int | None = None) -> str:
    now = now_nano or time.time_ns()
    st = c.state
    health = {
        "healthy": " (healthy)",
        "unhealthy": " (unhealthy)",
        "starting": " (health: starting)",
    }.get(st.health_status, "")
    if st.status == "running":
        return f"Up {human_duration((now - st.started_nano) / 1e9)}{health}"
    if st.status == "paused":
        return f"Up {human_duration((now - st.started_nano) / 1e9)} (Paused)"
    if st.status == "restarting":
        return f"Restarting ({st.exit_code}) {human_duration((now - st.finished_nano) / 1e9)} ago"
    if st.status == "exited":
        return f"Exited ({st.exit_code}) {human_duration((now - st.finished_nano) / 1e9)} ago"
    if st.status == "dead":
        return "Dead"
    return "Created"


def size_paths(c: Container, f: Fleet) -> tuple[Path, list[Path]]:
    """What ps -s measures: the container's own layer, and what lies below it."""
    layers = f.images.layer_dirs(c.config.image_id) if c.config.image_id else []
    if not c.config.image_id and c.config.rootfs:
        layers = [Path(c.config.rootfs)]
    return c.path / "upper", layers


def measure(paths: list[tuple[Path, list[Path]]]) -> list[tuple[int, int]]:
    """(SizeRw, SizeRootFs) of each; blocking: the daemon runs it in a thread."""
    from supervisor.fstree import du

    out = []
    for upper, below in paths:
        rw = du(upper)
        out.append((rw, rw + sum(du(d) for d in below)))
    return out


def summary(c: Container, sizes: tuple[int, int] = (0, 0)) -> ContainerSummary:
    """ps's row; `sizes` as measure() found them (ps -s)."""
    size_rw, size_root = sizes
    return ContainerSummary(
        id=c.id,
        name=c.name,
        command=" ".join(c.config.cmd),
        created_nano=c.rec.created_nano,
        state=c.state.status,
        status=status_words(c),
        labels=dict(c.config.labels),
        restart_count=c.state.restart_count,
        size_rw=size_rw,
        size_root_fs=size_root,
        image=c.config.image or c.config.rootfs,
        ports=dict(c.state.ports),
    )


def network_settings(c: Container, networks: dict[str, Network]) -> dict:
    """Docker's NetworkSettings: published ports and, on a network, its address."""
    out: dict = {
        "Ports": {
            k: [{"HostIp": v.rsplit(":", 1)[0], "HostPort": v.rsplit(":", 1)[1]}]
            for k, v in c.state.ports.items()
        },
        "Networks": {},
    }
    for name in (c.config.network, *c.state.networks):
        n = networks.get(name)
        if n is None:
            continue
        address = n.allocations.get(c.id, "") if c.running else ""
        out["Networks"][n.name] = {
            "NetworkID": n.name,
            "IPAddress": address,
            "IPPrefixLen": n.prefix,
            "Gateway": n.gateway,
            "Aliases": [c.name, c.id[:12], *c.config.network_aliases],
        }
        if name == c.config.network and address:
            out["IPAddress"], out["Gateway"], out["IPPrefixLen"] = address, n.gateway, n.prefix
    return out


def inspect(c: Container, networks: dict[str, Network] | None = None) -> dict:
    cfg, st = c.config, c.state
    return {
        "Id": c.id,
        "Created": rfc3339(c.rec.created_nano),
        "Path": cfg.cmd[0] if cfg.cmd else "",
        "Args": cfg.cmd[1:],
        "State": {
            "Status": st.status,
            "Running": st.status in ("running", "paused"),
            "Paused": st.status == "paused",
            "Restarting": st.status == "restarting",
            "OOMKilled": st.oom_killed,
            "Dead": st.status == "dead",
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": rfc3339(st.started_nano),
            "FinishedAt": rfc3339(st.finished_nano),
            **(
                {
                    "Health": {
                        "Status": st.health_status,
                        "FailingStreak": st.failing_streak,
                        "Log": [
                            {
                                "Start": rfc3339(r.start_nano),
                                "End": rfc3339(r.end_nano),
                                "ExitCode": r.exit_code,
                                "Output": r.output,
                            }
                            for r in st.health_log
                        ],
                    }
                }
                if cfg.health_cmd
                else {}
            ),
            "NextRestartAt": rfc3339(st.next_restart_nano)
            if st.status == "restarting"
            else ZERO_TIME,
            "RestartDelay": st.restart_delay,
            # The start limit (--restart-burst): the restart policy gave up.
            "Failed": st.gave_up,
        },
        "Image": cfg.image_id or cfg.rootfs,  # Docker's: the image's id
        "LogPath": str(c.log_path),
        "Name": "/" + c.name,
        "RestartCount": st.restart_count,
        "Config": {
            "Hostname": cfg.hostname or c.id[:12],
            "User": cfg.user,
            "Env": list(cfg.env),
            "Cmd": list(cfg.cmd),
            "WorkingDir": cfg.workdir,
            "Labels": dict(cfg.labels),
            "Tty": cfg.tty,
            "OpenStdin": cfg.open_stdin,
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout,
            "ExposedPorts": {p: {} for p in cfg.expose},
            "Image": cfg.image or cfg.rootfs,  # as it was asked for: busybox, not its id
            **(
                {
                    "Healthcheck": {
                        "Test": ["CMD", *cfg.health_cmd],
                        "Interval": int(cfg.health_interval * 1e9),
                        "Timeout": int(cfg.health_timeout * 1e9),
                        "Retries": cfg.health_retries,
                        "StartPeriod": int(cfg.health_start_period * 1e9),
                        "OnFailure": cfg.health_on_failure,
                    }
                }
                if cfg.health_cmd
                else {}
            ),
        },
        "HostConfig": {
            "Memory": cfg.memory or 0,
            "MemorySwap": cfg.memory_swap or 0,
            "NanoCpus": int((cfg.cpus or 0) * 1e9),
            "PidsLimit": cfg.pids_limit,
            "MemoryReservation": cfg.memory_reservation or 0,
            "CpuShares": cfg.cpu_shares or 0,
            "BlkioWeight": cfg.blkio_weight,
            "CpusetCpus": cfg.cpuset_cpus,
            "CpusetMems": cfg.cpuset_mems,
            "OomScoreAdj": cfg.oom_score_adj or 0,
            **{
                key: [
                    {"Path": e.rpartition(":")[0], "Rate": int(e.rpartition(":")[2])} for e in given
                ]
                or None
                for key, given in (
                    ("BlkioDeviceReadBps", cfg.device_read_bps),
                    ("BlkioDeviceWriteBps", cfg.device_write_bps),
                    ("BlkioDeviceReadIOps", cfg.device_read_iops),
                    ("BlkioDeviceWriteIOps", cfg.device_write_iops),
                )
            },
            "GroupAdd": cfg.group_add or None,
            "Sysctls": cfg.sysctls or None,
            "PidMode": cfg.pid_mode,
            "Dns": cfg.dns,
            "DnsSearch": cfg.dns_search,
            "DnsOptions": cfg.dns_options,
            "IpcMode": cfg.ipc_mode or "private",
            "AutoRemove": cfg.auto_remove,
            "SecurityOpt": cfg.security_opt or None,
            "CapAdd": cfg.cap_add or None,
            "CapDrop": cfg.cap_drop or None,
            "Privileged": cfg.privileged,
            "Init": cfg.init,
            "Devices": [_device(d) for d in cfg.devices],
            "RestartPolicy": {
                "Name": cfg.restart.partition(":")[0],
                "MaximumRetryCount": int(cfg.restart.partition(":")[2] or 0),
                "Delay": cfg.restart_delay,
                "MaxDelay": cfg.restart_max_delay,
                "ResetAfter": cfg.restart_reset_after,
            },
            "NetworkMode": cfg.network,
            "PublishAllPorts": cfg.publish_all,
            "LogConfig": {
                "Type": "cri",
                "Config": {"max-size": str(cfg.log_max_size), "max-file": str(cfg.log_max_files)}
                if cfg.log_max_size > 0
                else {"max-size": "-1"},
            },
        },
        "NetworkSettings": network_settings(c, networks or {}),
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": cfg.rootfs,
                "UpperDir": str(c.path / "upper"),
                "WorkDir": str(c.path / "work"),
            },
        },
    }


def _device(text: str) -> dict[str, str]:
    """--device HOST[:CONTAINER[:PERMS]] in Docker's inspect shape."""
    parts = text.split(":")
    host = parts[0]
    return {
        "PathOnHost": host,
        "PathInContainer": parts[1] if len(parts) > 1 and parts[1] else host,
        "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm",
    }
