"""The runtime: an OCI bundle to a running, isolated container.

It never imports the daemon; the daemon composes it.
"""

from supervisor.runtime.container import DEFAULT_ROOT, Created, Runtime

__all__ = ["DEFAULT_ROOT", "Created", "Runtime"]
