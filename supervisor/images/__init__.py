"""Images: a content-addressed store of layers, unpacked once and shared.

The daemon composes this package; nothing here imports the daemon.
"""
