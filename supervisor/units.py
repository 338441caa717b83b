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


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_duration(value: str) -> float | None:
    """Seconds in a Go duration (1m30s, 100ms, 1.5h), as Docker's flags and the
    Compose file take them; None if it is not one."""
    total, rest = 0.0, value
    while rest:
        number, rest = split_number(rest)
        unit = rest[:2] if rest[:2] in ("ns", "us", "ms") else rest[:1]
        if not is_decimal(number) or unit not in _DURATION_UNITS:
            return None
        total += float(number) * _DURATION_UNITS[unit]
        rest = rest[len(unit) :]
    return total if value else None


LOG_OPTS = ("max-size", "max-file")
DEFAULT_LOG_MAX_SIZE = 20 * 1024**2  # Docker's `local` log driver: 20m x 5 files
DEFAULT_LOG_MAX_FILES = 5


def parse_log_opts(opts: list[str]) -> tuple[int, int]:
    """--log-opt KEY=VALUE... to (max-size, max-file) as ContainerConfig holds
    them: 0 where not given (the daemon's default), max-size -1 for no limit.
    ValueError names the option and what it takes."""
    size, files = 0, 0
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq:
            raise ValueError(f"invalid --log-opt {opt!r}: KEY=VALUE ({', '.join(LOG_OPTS)})")
        if key == "max-size":
            if value.strip() == "-1":
                size = -1
                continue
            try:
                size = parse_size(value)
            except ValueError:
                size = -2
            if size <= 0:
                raise ValueError(
                    f"invalid --log-opt max-size={value!r}: a positive size (10m, 1g) or -1"
                )
        elif key == "max-file":
            if not (value.isascii() and value.isdigit()) or int(value) < 1:
                raise ValueError(f"invalid --log-opt max-file={value!r}: a positive number")
            files = int(value)
        else:
            raise ValueError(f"unknown --log-opt {key!r}: one of {', '.join(LOG_OPTS)}")
    check_log_limits(size, files)
    return size, files


def check_log_limits(size: int, files: int) -> None:
    """The rules on (max-size, max-file) as asked; ValueError says which."""
    if size < -1 or files < 0 or files > 1000:
        raise ValueError(f"invalid log limits: max-size {size}, max-file {files}")
    if size == -1 and files > 1:
        raise ValueError("max-file cannot be greater than 1 when max-size is -1 (no limit)")
