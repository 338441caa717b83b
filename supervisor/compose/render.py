"""`compose config`: the normalized project as Docker Compose prints it (YAML
or JSON; keys in order, durations as Go writes them, `default: null` for a
network joined with no options)."""

from __future__ import annotations

import json

import msgspec
import yaml

from protocols import compose as c

_DURATIONS = {"interval", "timeout", "start_period", "stop_grace_period", "delay", "window"}


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 1m30s, 500ms, 1h0m0s, 0s."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms" if ms >= 1 else f"{seconds * 1e6:g}µs"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    text = f"{s:g}s"
    if h or m:
        text = f"{int(m)}m{text}"
    if h:
        text = f"{int(h)}h{text}"
    return text


def _plain(node, key: str = ""):
    if isinstance(node, dict):
        return {k: _plain(v, k) for k, v in sorted(node.items())}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if key in _DURATIONS and isinstance(node, int | float) and not isinstance(node, bool):
        return go_duration(float(node))
    return node


def model(p: c.Project) -> dict:
    raw = msgspec.to_builtins(p)
    services = {}
    for name, svc in sorted(raw["services"].items()):
        svc = _plain(svc)
        if "networks" in svc:
            svc["networks"] = {k: (v or None) for k, v in svc["networks"].items()}
        services[name] = svc
    out: dict = {"name": p.name, "services": services}
    if raw.get("networks"):
        out["networks"] = _plain(raw["networks"])
    if raw.get("volumes"):
        out["volumes"] = _plain(raw["volumes"])
    return out


def config_text(p: c.Project, fmt: str = "yaml") -> str:
    if fmt == "json":
        return json.dumps(model(p), indent=2) + "\n"
    return yaml.safe_dump(model(p), sort_keys=False, default_flow_style=False, allow_unicode=True)
