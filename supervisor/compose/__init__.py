"""The Compose file: read (load.py), interpolated (interpolate.py), merged and
checked, then normalized into protocols/compose.py's Structs (normalize.py);
and what the daemon needs of the normalized model (plan.py: each service's
containers, its hash, the order of services). Pure Python: no trio, no daemon.
"""

from supervisor.errors import ComposeError

__all__ = ["ComposeError"]
