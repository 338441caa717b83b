"""The runtime: an OCI bundle to a running, isolated container.

It never imports the daemon; the daemon composes it. Its names are loaded on
first use: importing a submodule (state.py, say) does not load the C core.
"""

from __future__ import annotations

__all__ = ["DEFAULT_ROOT", "Created", "Runtime"]


def __getattr__(name: str):
    if name in __all__:
        from supervisor.runtime import container

        return getattr(container, name)
    raise AttributeError(f"module 'supervisor.runtime' has no attribute {name!r}")
