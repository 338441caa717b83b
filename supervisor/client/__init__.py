"""The `corral` client: Docker's words and flags over Corral's protocol.

main.py is the entry; see its docstring for the package's layout. Nothing here
imports trio, msgspec, the daemon or the runtime: a command starts in
milliseconds.
"""
