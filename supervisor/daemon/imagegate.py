"""Adding images alongside each other, removing them alone.

Pulls, loads, imports and commits add layers and images, and may run at the
same time (the store guards its own few critical steps). A removal (rmi,
image prune) decides which layers no image uses, so it must not run while an
addition is between storing a layer and storing the image that refers to it:
it waits until no addition is in flight, and holds new ones off meanwhile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


class ImageGate:
    def __init__(self) -> None:
        self._adding = 0
        self._removing = False
        self._changed = trio.Condition()

    @asynccontextmanager
    async def adding(self) -> AsyncIterator[None]:
        async with self._changed:
            while self._removing:
                await self._changed.wait()
            self._adding += 1
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):  # the count must come down
                async with self._changed:
                    self._adding -= 1
                    self._changed.notify_all()

    @asynccontextmanager
    async def removing(self) -> AsyncIterator[None]:
        async with self._changed:
            while self._removing or self._adding:
                await self._changed.wait()
            self._removing = True
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                async with self._changed:
                    self._removing = False
                    self._changed.notify_all()
