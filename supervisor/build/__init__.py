"""`corral build`: Dockerfiles read (dockerfile.py), the build context chosen
with .dockerignore's rules (ignore.py, also the client's), and the build
itself, which the daemon runs (supervisor/daemon/builder.py) on its own
runtime, image store and cache (cache.py)."""
