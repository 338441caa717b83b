"""Signal names as users type them: '9', 'KILL', 'SIGKILL', 'sigterm'."""

from __future__ import annotations

import _signal  # signal.py builds enums of every signal: ~2 ms of a runtime command

from supervisor.errors import SpecError


def parse_signal(value: str | int) -> int:
    """A signal number; SpecError names an unknown signal."""
    if isinstance(value, int) or value.isdigit():
        return int(value)
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    number = getattr(_signal, name, None) if not name.startswith("SIG_") else None
    if not isinstance(number, int):
        raise SpecError("signal", f"unknown signal {value!r}")
    return number
