"""What every endpoint reaches: the fleet, Corral's handlers (through a
Relay), the compose projects, and a few helpers shared by the endpoints."""

from __future__ import annotations

import msgspec

from protocols import api
from supervisor.daemon.fleet import Fleet
from supervisor.dockerapi.http import HttpError
from supervisor.dockerapi.relay import Relay, call


class Api:
    def __init__(self, fleet: Fleet, routes: dict, projects) -> None:
        self.fleet, self.routes, self.projects = fleet, routes, projects
        from supervisor.dockerapi.execs import Execs

        self.execs = Execs()  # POST /containers/{id}/exec's, until inspected and gone

    async def call(self, req: msgspec.Struct) -> msgspec.Struct:
        return await call(self.fleet, self.routes, self.projects, req)

    def relay(self, on_message=None) -> Relay:
        return Relay(self.fleet, self.routes, self.projects, on_message)

    def unit(self, ref: str):
        try:
            return self.fleet.get(ref)
        except Exception as e:
            from supervisor.dockerapi.relay import http_error

            raise http_error(e, api.Inspect(id=ref)) from None


def filters_of(raw: dict) -> dict[str, list[str]]:
    """Docker's filters: {"key": ["v"]} (old) or {"key": {"v": true}} (what
    the docker CLI and SDKs send now)."""
    out: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            out[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list):
            out[key] = [str(v) for v in values]
        elif isinstance(values, str):
            out[key] = [values]
        else:
            raise HttpError(400, f"invalid filter {key!r}")
    return out


def since_nano(value: str) -> int | None:
    """Docker's since/until: Unix seconds, with an optional fraction."""
    if not value:
        return None
    try:
        secs, _, frac = value.partition(".")
        return int(secs) * 1_000_000_000 + int((frac + "000000000")[:9])
    except ValueError:
        raise HttpError(400, f"invalid time {value!r}: Unix seconds expected") from None
