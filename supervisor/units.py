"""Docker's sizes, shared by the client's flags, --mount/--tmpfs and the daemon's
own flags. The standard library only: the client imports it."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: str) -> int:
    """512m, 1g, 100k, 1.5g, 1024 (bytes); binary units, as Docker's. ValueError
    names a value that is not one."""
    m = _SIZE.match(value.strip())
    if not m:
        raise ValueError(f"invalid size: {value!r} (examples: 1024, 100k, 64m, 1g)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
