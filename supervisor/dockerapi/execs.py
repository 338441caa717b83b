"""The execs made by POST /containers/{id}/exec, between their create, start
and inspect (Corral's own exec is one request: created and started at once)."""

from __future__ import annotations

import secrets
from collections import OrderedDict

from supervisor.dockerapi.http import HttpError


class ExecRecord:
    def __init__(self, id: str, container: str, body: dict) -> None:
        self.id, self.container, self.body = id, container, body
        self.running = False
        self.exit_code: int | None = None
        self.corral_id = ""  # Corral's exec id, once started (resize, events)
        self.pid = 0


class Execs:
    """The execs made by POST /containers/{id}/exec: kept (as dockerd keeps
    them) for their inspect after they end, the oldest ended ones dropped."""

    LIMIT = 1024

    def __init__(self) -> None:
        self.records: OrderedDict[str, ExecRecord] = OrderedDict()

    def add(self, container: str, body: dict) -> ExecRecord:
        r = ExecRecord(secrets.token_hex(32), container, body)
        self.records[r.id] = r
        while len(self.records) > self.LIMIT:
            old = next((k for k, v in self.records.items() if not v.running), None)
            if old is None:
                break
            del self.records[old]
        return r

    def get(self, id: str) -> ExecRecord:
        r = self.records.get(id)
        if r is None:
            raise HttpError(404, f"No such exec instance: {id}")
        return r
