"""`${VAR}` in a Compose file, as the Compose Specification says (and Docker
Compose does): $VAR and ${VAR}; ${VAR:-default} (unset or empty) and
${VAR-default} (unset); ${VAR:?error} and ${VAR?error}, which stop the load;
${VAR:+other} and ${VAR+other}; `$$` for a literal `$`. A default may itself
hold ${...}. A variable that is unset and has no default is empty, with a
warning, as Docker's. And `.env` files: KEY=VALUE lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


class InterpolationError(ValueError):
    pass


def _is_name_char(c: str, first: bool) -> bool:
    return c == "_" or (c.isascii() and (c.isalpha() or (not first and c.isdigit())))


def _braced_end(text: str, i: int) -> int:
    """The index of the `}` closing the `${` whose body starts at i (nesting counted)."""
    depth = 1
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"invalid interpolation format for {text!r}: a ${{ without its }}")


def interpolate(
    text: str, env: Mapping[str, str], warn: Callable[[str], None] | None = None
) -> str:
    """`text` with its variables replaced from `env`. InterpolationError names a
    required variable that is missing, or a malformed ${...}."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$":
            j = text.find("$", i)
            j = len(text) if j < 0 else j
            out.append(text[i:j])
            i = j
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _braced_end(text, i + 2)
            out.append(_substitute(text[i + 2 : end], env, warn, text))
            i = end + 1
        elif nxt and _is_name_char(nxt, True):
            j = i + 1
            while j < len(text) and _is_name_char(text[j], False):
                j += 1
            out.append(_value(text[i + 1 : j], env, warn))
            i = j
        else:  # a lone $ stays, as Compose leaves it
            out.append("$")
            i += 1
    return "".join(out)


def _value(name: str, env: Mapping[str, str], warn: Callable[[str], None] | None) -> str:
    if name in env:
        return env[name]
    if warn is not None:
        warn(f'The "{name}" variable is not set. Defaulting to a blank string.')
    return ""


def _substitute(
    body: str, env: Mapping[str, str], warn: Callable[[str], None] | None, whole: str
) -> str:
    j = 0
    while j < len(body) and _is_name_char(body[j], j == 0):
        j += 1
    name, rest = body[:j], body[j:]
    if not name:
        raise InterpolationError(f"invalid interpolation format for {whole!r}: ${{{body}}}")
    if not rest:
        return _value(name, env, warn)
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            break
    else:
        raise InterpolationError(f"invalid interpolation format for {whole!r}: ${{{body}}}")
    value = env.get(name)
    set_ = value is not None if len(op) == 1 else bool(value)
    if op.endswith("-"):
        return value if set_ else interpolate(arg, env, warn)  # type: ignore[return-value]
    if op.endswith("?"):
        if set_:
            return value  # type: ignore[return-value]
        detail = interpolate(arg, env, warn) or "missing"
        raise InterpolationError(f"required variable {name} is missing a value: {detail}")
    return interpolate(arg, env, warn) if set_ else ""


def read_env_file(path: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """KEY=VALUE lines (`export ` allowed, # comments, blank lines); a value in
    single quotes is taken as written, one in double quotes or bare is
    interpolated against `env` and the file's earlier lines, as Compose's .env.
    ValueError names the line that is not one."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, eq, value = line.partition("=")
        key = key.strip()
        if not key or not all(_is_name_char(c, k == 0) or c in ".-" for k, c in enumerate(key)):
            raise ValueError(f"{path}:{n}: {raw!r} is not KEY=VALUE")
        if not eq:  # KEY alone: from the environment, if there
            if env is not None and key in env:
                out[key] = env[key]
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            out[key] = value[1:-1]
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:
            value = value[: value.index(" #")].rstrip()
        out[key] = interpolate(value, {**(env or {}), **out})
    return out
