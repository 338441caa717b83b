"""Corral's own request handlers (routes.py), called from the Docker API: the
same code answers `corral ps` and `docker ps`. A Relay stands where the
daemon's Connection would, handing each message the handler sends to a
callback instead of a socket; an error it raises becomes Docker's status and
{"message": ...} through the kind Corral's protocol gives it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import trio

from protocols import api
from supervisor.daemon.fleet import Fleet
from supervisor.daemon.projects import Projects
from supervisor.daemon.server import Connection, error_for
from supervisor.dockerapi.http import HttpError

STATUS = {
    "not_found": 404,
    "conflict": 409,
    "invalid": 400,
    "protocol": 400,
    "failed": 500,
    "internal": 500,
}


def http_error(e: BaseException, req: msgspec.Struct) -> HttpError:
    """Docker's status and message for what a Corral handler raised."""
    err = error_for(e, req)
    return HttpError(STATUS.get(err.kind, 500), err.message)


class Relay(Connection):
    def __init__(
        self,
        fleet: Fleet,
        routes: dict,
        projects: Projects | None,
        on_message: Callable[[msgspec.Struct], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(None, fleet, routes, projects=projects)  # type: ignore[arg-type]
        self.on_message = on_message
        self.sent: list[msgspec.Struct] = []

    async def send(self, msg: msgspec.Struct) -> None:
        if self.on_message is not None:
            await self.on_message(msg)
        else:
            self.sent.append(msg)

    async def send_many(self, msgs: list) -> None:
        for m in msgs:
            await self.send(m)

    async def run(self, req: msgspec.Struct, inbox: trio.MemoryReceiveChannel | None = None):
        """Run the handler for `req`; errors become HttpError."""
        handler = self.routes[type(req)]
        if inbox is None:
            _, inbox = trio.open_memory_channel(0)
        try:
            await handler(self, req, inbox)
        except HttpError:
            raise
        except Exception as e:
            from supervisor.daemon.server import disconnected

            if disconnected(e):
                raise
            raise http_error(e, req) from None


async def call(fleet: Fleet, routes: dict, projects, req: msgspec.Struct) -> msgspec.Struct:
    """A request answered once: its one (last) message."""
    r = Relay(fleet, routes, projects)
    await r.run(req)
    if not r.sent:
        return api.Ok()
    return r.sent[-1]
