"""The daemon: a trio service that supervises the fleet.

It composes the runtime (supervisor.runtime); nothing below it imports it.
"""
