"""Volumes: data that outlives its container.

Parsing Docker's -v/--mount/--tmpfs (spec.py) and the named-volume store
(store.py). The daemon composes them; nothing here imports the daemon.
"""
