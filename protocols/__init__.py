"""Everything that crosses a process boundary, as msgspec Structs.

This package imports nothing of Corral's: a subscriber or another tool can
depend on it alone.
"""
