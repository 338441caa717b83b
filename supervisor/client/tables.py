"""Docker's tables, as the client prints them (no re: `ps` imports this, and
templates.py too)."""

from __future__ import annotations


def columns(rows: list[list[str]]) -> list[str]:
    """Rows of cells as Docker's tables print them: each column as wide as its
    widest cell, three spaces between, nothing trailing."""
    n = max((len(r) for r in rows), default=0)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(n)]
    return ["   ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip() for row in rows]
