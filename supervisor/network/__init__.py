"""Networking: user-defined bridge networks, addresses, and names.

Links, addresses and routes are made through pyroute2 (netlink), never by
running `ip`. The daemon composes this package; nothing here imports it.
"""
