"""An image's defaults applied under the user's flags, as Docker applies them.

Pure: ContainerConfig (what the user asked) + the image's RunConfig -> the
ContainerConfig the container runs with.
"""

from __future__ import annotations

import msgspec

from protocols.api import ContainerConfig
from protocols.image import RunConfig


def apply(cfg: ContainerConfig, image: RunConfig, image_id: str) -> ContainerConfig:
    """The user's flags win; the image fills in what they left unset.

    - command: ENTRYPOINT (or --entrypoint) followed by the user's arguments,
      else by the image's CMD (a --entrypoint drops the image's CMD, as Docker).
    - env: the image's, then the user's (later wins).
    - labels: the image's, updated with the user's.
    - workdir, user, stop signal: the user's when given, else the image's.
    - exposed ports: the user's --expose and the image's ExposedPorts.
    - health check: the image's unless the user gave one or --no-healthcheck.
    """
    entry = cfg.entrypoint if cfg.entrypoint is not None else list(image.entrypoint or [])
    if cfg.cmd:
        args = cfg.cmd
    elif cfg.entrypoint is not None:
        args = []
    else:
        args = list(image.cmd or [])
    changes: dict = {
        "cmd": [*entry, *args],
        "env": [*(image.env or []), *cfg.env],
        "labels": {**(image.labels or {}), **cfg.labels},
        "workdir": cfg.workdir or image.working_dir or "/",
        "user": cfg.user or image.user,
        "stop_signal": cfg.stop_signal or image.stop_signal or "SIGTERM",
        "image_id": image_id,
        "expose": [*cfg.expose, *(p for p in image.exposed_ports or {} if p not in cfg.expose)],
    }
    hc = image.healthcheck
    if not cfg.health_cmd and not cfg.no_healthcheck and hc and hc.test and hc.test[0] != "NONE":
        kind, rest = hc.test[0], hc.test[1:]
        cmd = ["sh", "-c", " ".join(rest)] if kind == "CMD-SHELL" else list(rest)
        changes["health_cmd"] = cmd
        if hc.interval:
            changes["health_interval"] = hc.interval / 1e9
        if hc.timeout:
            changes["health_timeout"] = hc.timeout / 1e9
        if hc.retries:
            changes["health_retries"] = hc.retries
        if hc.start_period:
            changes["health_start_period"] = hc.start_period / 1e9
    return msgspec.structs.replace(cfg, **changes)
