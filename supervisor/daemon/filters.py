"""Docker's `--filter` rules for the lists the daemon answers (ps, images,
volume ls, network ls), pure functions over what each list shows.

The rules, as Docker's daemon applies them: values of one key are ORed
(`--filter name=a --filter name=b`: either), keys are ANDed; `label` is the
exception, every label filter must match (`label=a=1 --filter label=b=2`:
both). `before`/`since` name a thing whose creation bounds the list. An
unknown key is an error naming it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from supervisor.errors import InvalidArgument

Filters = dict[str, list[str]]


def labels_match(labels: dict[str, str], wants: list[str]) -> bool:
    """Every `KEY` or `KEY=VALUE` in `wants` holds for `labels`."""
    for want in wants:
        key, eq, value = want.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def check_keys(filters: Filters, allowed: tuple[str, ...]) -> None:
    for key in filters:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}' (one of {', '.join(allowed)})")


def _bool(values: list[str], key: str) -> bool:
    for v in values:
        if v.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter '{key}={v}': true or false")
    return values[-1].lower() in ("true", "1")


def apply(
    filters: Filters, tests: dict[str, Callable[[list[str]], bool]], labels: dict[str, str]
) -> bool:
    """AND across keys of `tests[key](values)`; `label` through labels_match."""
    for key, values in filters.items():
        if not values:
            continue
        ok = labels_match(labels, values) if key == "label" else tests[key](values)
        if not ok:
            return False
    return True


CONTAINER_KEYS = (
    "ancestor",
    "before",
    "exited",
    "health",
    "id",
    "label",
    "name",
    "network",
    "since",
    "status",
    "volume",
    "is-task",
)


def container(c, filters: Filters, bounds: dict[str, list[int]]) -> bool:
    """ps: `c` a fleet Container; `bounds` the creation times of before=/since=."""
    cfg, st = c.config, c.state
    return apply(
        filters,
        {
            "exited": lambda vs: st.status == "exited" and str(st.exit_code) in vs,
            "ancestor": lambda vs: any(
                v in (cfg.image, cfg.image_id) or cfg.image_id.startswith("sha256:" + v) for v in vs
            ),
            "network": lambda vs: cfg.network in vs or any(n in vs for n in st.networks),
            "volume": lambda vs: any(m.source in vs or m.target in vs for m in cfg.mounts),
            "health": lambda vs: (st.health_status or "none") in vs,
            "before": lambda vs: all(c.rec.created_nano < t for t in bounds["before"]),
            "since": lambda vs: all(c.rec.created_nano > t for t in bounds["since"]),
            "status": lambda vs: st.status in vs,
            "name": lambda vs: any(v.lstrip("/") in c.name for v in vs),
            "id": lambda vs: any(c.id.startswith(v) for v in vs),
            "is-task": lambda vs: not _bool(vs, "is-task"),  # no swarm: never a task
        },
        dict(cfg.labels),
    )


VOLUME_KEYS = ("name", "label", "dangling", "driver")


def volume(v, filters: Filters) -> bool:
    """volume ls: `v` an api.Volume."""
    return apply(
        filters,
        {
            "name": lambda vs: any(x in v.name for x in vs),
            "dangling": lambda vs: (not v.in_use_by) == _bool(vs, "dangling"),
            "driver": lambda vs: v.driver in vs,
        },
        dict(v.labels),
    )


NETWORK_KEYS = ("name", "id", "label", "driver", "type", "scope", "dangling")


def network(n, net_id: str, used: bool, filters: Filters) -> bool:
    """network ls: `n` an api.NetworkInfo, `net_id` its id, `used` by a container."""
    builtin = n.name in ("bridge", "host", "none")
    return apply(
        filters,
        {
            "name": lambda vs: any(v in n.name for v in vs),
            "id": lambda vs: any(net_id.startswith(v) for v in vs),
            "driver": lambda vs: n.driver in vs,
            "type": lambda vs: ("builtin" if builtin else "custom") in vs,
            "scope": lambda vs: "local" in vs,
            "dangling": lambda vs: (not used and not builtin) == _bool(vs, "dangling"),
        },
        dict(n.labels),
    )


IMAGE_KEYS = ("dangling", "label", "reference", "before", "since")


def image(im, labels: dict[str, str], filters: Filters, bounds: dict[str, list[str]]) -> bool:
    """images: `im` an api.ImageSummary, `labels` its config's; `bounds` the
    creation times (RFC 3339, comparable as text) of before=/since=."""
    names = [n for t in im.tags for n in (t, t.rpartition(":")[0])]
    return apply(
        filters,
        {
            "dangling": lambda vs: (not im.tags) == _bool(vs, "dangling"),
            "reference": lambda vs: any(fnmatch.fnmatchcase(n, p) for p in vs for n in names),
            "before": lambda vs: all(im.created < t for t in bounds["before"]),
            "since": lambda vs: all(im.created > t for t in bounds["since"]),
        },
        labels,
    )
