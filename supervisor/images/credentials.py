"""Registry logins, kept as Docker keeps them (base64 user:password per
registry in a 0600 JSON file), read by the registry client."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import msgspec

from supervisor.runtime.state import atomic_write


class Credentials:
    """Registry logins, in ROOT/auth.json (0600), as Docker keeps them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _all(self) -> dict[str, str]:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=dict[str, str])
        except FileNotFoundError:
            return {}

    def get(self, registry: str) -> tuple[str, str] | None:
        raw = self._all().get(registry)
        if raw is None:
            return None
        user, _, password = base64.b64decode(raw).decode().partition(":")
        return user, password

    def save(self, registry: str, user: str, password: str) -> None:
        auths = self._all()
        auths[registry] = base64.b64encode(f"{user}:{password}".encode()).decode()
        atomic_write(self.path, msgspec.json.encode(auths), durable=True)
        os.chmod(self.path, 0o600)

    def remove(self, registry: str) -> None:
        auths = self._all()
        if auths.pop(registry, None) is not None:
            atomic_write(self.path, msgspec.json.encode(auths), durable=True)
            os.chmod(self.path, 0o600)
