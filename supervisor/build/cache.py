"""The build cache: a step's key (its parent's key, the instruction as it
will run, and for COPY/ADD the checksum of what it copies) -> the image that
step made. Those images stay out of `images` unless tagged; `builder prune`
forgets every key and lets the store remove the images no one else holds.
A JSON file, rewritten whole (atomically) after each build."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def key(parent: str, *parts: str) -> str:
    h = hashlib.sha256(parent.encode())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.path = root / "build-cache.json"
        self.steps: dict[str, str] = {}  # key -> image id
        self.made: set[str] = set()  # every image a step made, until builder prune
        try:
            doc = json.loads(self.path.read_text())
            self.steps = dict(doc.get("steps", {}))
            self.made = set(doc.get("made", [])) | set(self.steps.values())
        except (OSError, ValueError, AttributeError):
            self.steps, self.made = {}, set()

    @property
    def images(self) -> set[str]:
        """The images builds made (what `images` leaves out unless tagged), also
        those a later build of the same step replaced."""
        return self.made

    def get(self, k: str, exists) -> str | None:
        image = self.steps.get(k)
        if image is not None and not exists(image):
            del self.steps[k]  # removed meanwhile (rmi, prune)
            return None
        return image

    def put(self, k: str, image_id: str) -> None:
        self.steps[k] = image_id
        self.made.add(image_id)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"steps": self.steps, "made": sorted(self.made)}))
        os.replace(tmp, self.path)

    def clear(self) -> set[str]:
        """Forget every step; the images they made."""
        made = set(self.made)
        self.steps, self.made = {}, set()
        self.save()
        return made
