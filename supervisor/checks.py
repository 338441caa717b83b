"""Values a user gives a container, checked as Docker checks them, with Docker's
words: once by the client (before anything is asked of the daemon) and again
by the daemon (its protocol is public: any client may send anything). Each
check raises ValueError with the message; the client prints it and exits 125,
the daemon answers with an `invalid` Error. The standard library only, and
nothing costly to import: the client's start pays for it.
"""

from __future__ import annotations

NAME_MAX = 253  # a container's name is also a DNS name on its networks


def no_nul(field: str, value: str) -> None:
    """A string that reaches the kernel (an argument, a variable, a path) ends
    at its first NUL byte there: refused rather than silently cut."""
    if "\0" in value:
        raise ValueError(f"{field}: {value.split(chr(0))[0]!r}... contains a NUL byte")


def name(value: str) -> str:
    """A container's name, without Docker's optional leading '/'."""
    bare = value[1:] if value.startswith("/") else value
    ok = (
        len(bare) >= 2
        and bare.isascii()
        and bare[0].isalnum()
        and all(ch.isalnum() or ch in "_.-" for ch in bare)
    )
    if not ok:
        raise ValueError(
            f"Invalid container name ({value[:80]}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    if len(bare) > NAME_MAX:
        raise ValueError(f"Invalid container name: {len(bare)} characters, at most {NAME_MAX}")
    return bare


def env(entry: str) -> None:
    """KEY=VALUE (the client has resolved a bare KEY)."""
    key = entry.partition("=")[0]
    if not key:
        raise ValueError(f"invalid environment variable: {entry}")
    no_nul("-e", entry)


def cpus(value: float, ncpu: int | None = None) -> None:
    """--cpus: a number of CPUs, 0.01 up to the host's (where known)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f'invalid argument "{value}" for "--cpus" flag: not a number of CPUs')
    if value < 0.01 or (ncpu is not None and value > ncpu):
        top = f"{ncpu}.00, as there are only {ncpu} CPUs available" if ncpu else "the host's"
        raise ValueError(f"Range of CPUs is from 0.01 to {top}")


def _port(text: str, what: str, *, zero_ok: bool) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"invalid {what}: {text}")
    port = int(text)
    if port > 65535 or (port == 0 and not zero_ok):
        raise ValueError(f"invalid {what}: {text}")
    return port


def _host_ip(text: str) -> str:
    import _socket

    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, text.strip("[]"))
            return text.strip("[]")
        except OSError:
            continue
    raise ValueError(f"invalid IP address: {text}")


def publish(spec: str) -> tuple[str, int, int, str]:
    """-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp] -> (host ip, host port or
    0 for a free one, container port, protocol)."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise ValueError(f"invalid proto: {proto} (in -p {spec})")
    parts = body.rsplit(":", 2)
    host, hport = "0.0.0.0", "0"
    if len(parts) == 3:
        host, hport = _host_ip(parts[0]) if parts[0] else "0.0.0.0", parts[1] or "0"
    elif len(parts) == 2:
        hport = parts[0] or "0"
    return (
        host,
        _port(hport, "hostPort", zero_ok=True),
        _port(parts[-1], "containerPort", zero_ok=False),
        proto,
    )


def expose(spec: str) -> list[str]:
    """--expose PORT[-PORT][/tcp|udp] -> ["80/tcp", ...], one a port."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    first, _, last = body.partition("-")
    if proto not in ("tcp", "udp"):
        raise ValueError(f"invalid proto: {proto} (in --expose {spec})")
    lo = _port(first, "port", zero_ok=False)
    hi = _port(last, "port", zero_ok=False) if last else lo
    if hi < lo:
        raise ValueError(f"invalid range: {spec}")
    return [f"{p}/{proto}" for p in range(lo, hi + 1)]


def container(cfg, ncpu: int | None = None) -> None:
    """What Docker checks of a container's configuration, on the client's
    (protocols/lite/api.py) or the daemon's (protocols/api.py) ContainerConfig:
    the same names. ValueError names the first value that is wrong."""
    if cfg.name:
        name(cfg.name)
    for e in cfg.env:
        env(e)
    if cfg.cpus is not None:
        cpus(cfg.cpus, ncpu)
    for flag, value in (
        ("--memory", cfg.memory),
        ("--memory-reservation", cfg.memory_reservation),
    ):
        if value is not None and value < 0:
            raise ValueError(f"invalid {flag}: {value} (a size, or 0 for no limit)")
    if cfg.memory_swap is not None and cfg.memory_swap < -1:
        raise ValueError(f"invalid --memory-swap: {cfg.memory_swap} (a size, or -1: no limit)")
    for spec in cfg.ports:
        publish(spec)
    for spec in cfg.expose:
        expose(spec)
    if cfg.stop_timeout < -1:
        raise ValueError(f"invalid --stop-timeout: {cfg.stop_timeout}")
