"""Docker's sizes, shared by the client's flags, --mount/--tmpfs and the daemon's
own flags. The standard library only: the client imports it."""

from __future__ import annotations

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def is_decimal(text: str) -> bool:
    """1, 10, 1.5: ASCII digits with at most one inner point (no re: the client
    imports this module, and re is ~5 ms of its start)."""
    whole, _, frac = text.partition(".")
    return whole.isascii() and whole.isdigit() and (not _ or (frac.isascii() and frac.isdigit()))


def split_number(text: str) -> tuple[str, str]:
    """("1.5", "gb") from "1.5gb": the leading digits and points, and the rest."""
    i = 0
    while i < len(text) and (text[i] == "." or ("0" <= text[i] <= "9")):
        i += 1
    return text[:i], text[i:]


def parse_size(value: str) -> int:
    """512m, 1g, 100k, 1.5g, 1024, 10 MiB (bytes); binary units, as Docker's.
    ValueError names a value that is not one."""
    number, rest = split_number(value.strip().lower())
    rest = rest.lstrip()
    unit = rest[:1] if rest[:1] in ("b", "k", "m", "g", "t") else ""
    if not is_decimal(number) or rest[len(unit) :] not in ("", "i", "b", "ib"):
        raise ValueError(f"invalid size: {value!r} (examples: 1024, 100k, 64m, 1g)")
    return int(float(number) * _UNITS[unit])
