"""Signal names as users type them: '9', 'KILL', 'SIGKILL', 'sigterm'."""

from __future__ import annotations

import signal

from supervisor.errors import SpecError


def parse_signal(value: str | int) -> int:
    """A signal number; SpecError names an unknown signal."""
    if isinstance(value, int) or value.isdigit():
        return int(value)
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise SpecError("signal", f"unknown signal {value!r}") from None
