"""How the client prints: Docker's tables, sizes, times and --format templates
(no re: `ps` imports this)."""

from __future__ import annotations

import time

from protocols import lite
from supervisor.client.connection import UsageError


def ago(nano: int) -> str:
    s = (time.time_ns() - nano) / 1e9
    if s < 60:
        return f"{int(s)} seconds ago" if s >= 2 else "Less than a second ago"
    if s < 3600:
        return f"{int(s // 60)} minutes ago" if s >= 120 else "About a minute ago"
    if s < 172800:
        return f"{round(s / 3600)} hours ago"
    return f"{int(s // 86400)} days ago"


def templated(fmt: str, rows: list, headers: dict[str, str]) -> None:
    """--format TEMPLATE (or 'table TEMPLATE'): a line per row."""
    from supervisor.client import templates

    try:
        if fmt.startswith("table"):
            lines = templates.table(fmt, rows, headers)
        else:
            lines = [templates.render(fmt, r) for r in rows]
    except templates.TemplateError as e:
        raise UsageError(f"--format: {e}") from None
    for line in lines:
        print(line)


def decimal_size(n: int) -> str:
    """Docker's sizes: decimal units, four significant digits (16.43MB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.4g}{unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n}B"


def binary_size(n: float) -> str:
    """Docker's memory sizes: binary units (1.5MiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}B"


def render_one(fmt: str, obj: object) -> str:
    from supervisor.client import templates

    try:
        return templates.render(fmt, obj)
    except templates.TemplateError as e:
        raise UsageError(f"--format: {e}") from None


def short_size(n: float) -> str:
    """Docker's image sizes: decimal units, three significant digits (4.27MB)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{int(n)}B" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}B"


def print_inspect(out: list, fmt: str | None) -> None:
    """inspect's output: JSON, or --format's template over each."""
    if fmt:
        templated(fmt, out, {})
    else:
        print(lite.to_json(out, indent=4))


def rfc3339(nano: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(nano // 10**9))
