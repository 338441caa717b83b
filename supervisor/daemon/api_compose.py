"""The daemon's compose requests: up, down, the per-service actions, ls.

Each hands the work to projects.py, whose nursery outlives the connection,
then relays the work's steps to the client until it ends: Ok, or an Error
with what failed. A client that goes away stops hearing; the work goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols import api
from supervisor.errors import ComposeError

if TYPE_CHECKING:
    from supervisor.daemon.projects import Convergence, Projects
    from supervisor.daemon.server import Connection


def _projects(conn: Connection) -> Projects:
    if conn.projects is None:
        raise ComposeError("this daemon keeps no compose projects")
    return conn.projects


async def _relay(conn: Connection, conv: Convergence) -> None:
    steps = conv.listen()
    async with steps:
        async for step in steps:
            await conn.send(step)
    await conv.done.wait()
    if conv.error is not None:
        raise ComposeError(conv.error)
    await conn.send(api.Ok())


async def up(conn: Connection, req: api.ComposeUp, inbox) -> None:
    await _relay(conn, _projects(conn).up(req))


async def down(conn: Connection, req: api.ComposeDown, inbox) -> None:
    await _relay(conn, _projects(conn).down(req))


async def action(conn: Connection, req: api.ComposeAction, inbox) -> None:
    await _relay(conn, _projects(conn).act(req))


async def ls(conn: Connection, req: api.ComposeList, inbox) -> None:
    await conn.send(api.ComposeProjects(projects=_projects(conn).summaries(req.all)))


ROUTES = {
    api.ComposeUp: up,
    api.ComposeDown: down,
    api.ComposeAction: action,
    api.ComposeList: ls,
}
