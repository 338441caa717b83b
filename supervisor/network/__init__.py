"""Networking: user-defined bridge networks, addresses, and names.

Links, addresses and routes are made through pyroute2 (netlink), never by
running `ip`. The daemon composes this package; nothing here imports it.
"""


def network_id(name: str, created_nano: int) -> str:
    """A network's 64-hex id, as Docker's networks have one: Corral's are kept
    by name, and the id is derived from it and its creation (the client shows
    it; the daemon accepts it, or a unique prefix, wherever a name goes)."""
    import hashlib  # the client calls this too, and imports nothing up front

    return hashlib.sha256(f"{name}/{created_nano}".encode()).hexdigest()
