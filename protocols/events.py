"""The event stream: what happens to the fleet, one Struct per event.

Sequence numbers rise by one per event, across daemon restarts, so a
subscriber that saw N can resume at N+1 and miss nothing.
"""

from __future__ import annotations

import msgspec


class Event(msgspec.Struct, frozen=True, tag=True, tag_field="msg", kw_only=True):
    seq: int
    time_nano: int  # nanoseconds since the epoch
    type: str  # "container" (later: "image", "network", "volume")
    action: str  # create, start, die, oom, kill, stop, pause, unpause, restart, destroy,
    # exec_create, exec_start, exec_die, health_status, ...
    id: str
    name: str = ""
    attributes: dict[str, str] = {}


class Gap(msgspec.Struct, frozen=True, tag=True, tag_field="msg", kw_only=True):
    """Events first..last are no longer in the journal (it was compacted)."""

    first: int
    last: int
    resume_from: int


FILTER_KEYS = ("type", "event", "container", "label", "image", "network", "volume", "scope")


def matches(ev: Event, filters: dict[str, list[str]]) -> bool:
    """Docker's filter rules: OR within a key, AND across keys; every label
    filter must match."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = ev.type in values
        elif key == "event":
            ok = ev.action in values or ev.action.split(":", 1)[0] in values
        elif key == "container":
            ok = any(v == ev.name or ev.id.startswith(v) for v in values)
        elif key == "label":
            ok = all(_label_ok(ev.attributes, v) for v in values)
        elif key in ("image", "network", "volume"):  # the thing itself, or an attribute
            ok = (
                ev.type == key and any(v in (ev.id, ev.name) or ev.id.startswith(v) for v in values)
            ) or ev.attributes.get(key) in values
        elif key == "scope":
            ok = "local" in values  # no swarm: every event is local
        else:
            ok = ev.attributes.get(key) in values
        if not ok:
            return False
    return True


def _label_ok(attrs: dict[str, str], want: str) -> bool:
    key, eq, value = want.partition("=")
    if key not in attrs:
        return False
    return not eq or attrs[key] == value
