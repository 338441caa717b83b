"""Docker's --format templates, the part scripts use: Go's text/template with
`{{.Field.Sub}}`, `{{json .Field}}`, `{{index .Map "key"}}`, `{{range .List}}
...{{end}}` (inside it `.` is the element), `{{upper .X}}`/`{{lower .X}}`, and
the `table` prefix (a header row, columns aligned). The standard library only:
the client imports it.
"""

from __future__ import annotations

import json
import re

from supervisor.client.tables import columns

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


class TemplateError(ValueError):
    pass


def _parse(text: str) -> list:
    """Nodes: str (text), ("expr", words), ("range", words, body)."""
    pos, stack, out = 0, [], []
    cur = out
    for m in _ACTION.finditer(text):
        if m.start() > pos:
            cur.append(text[pos : m.start()])
        pos = m.end()
        words = m.group(1).split()
        if not words:
            raise TemplateError(f"empty action in {text!r}")
        if words[0] == "range":
            node = ("range", words[1:], [])
            cur.append(node)
            stack.append(cur)
            cur = node[2]
        elif words[0] == "end":
            if not stack:
                raise TemplateError(f"{{{{end}}}} without {{{{range}}}} in {text!r}")
            cur = stack.pop()
        else:
            cur.append(("expr", words))
    if stack:
        raise TemplateError(f"{{{{range}}}} without {{{{end}}}} in {text!r}")
    if pos < len(text):
        cur.append(text[pos:])
    return out


def _field(obj: object, path: str) -> object:
    if path == ".":
        return obj
    if not path.startswith("."):
        if path.startswith('"') and path.endswith('"'):
            return path[1:-1]
        raise TemplateError(f"{path!r}: a field starts with '.'")
    for name in path[1:].split("."):
        if isinstance(obj, dict):
            if name not in obj:
                return None  # Go prints "<no value>"; scripts want it empty
            obj = obj[name]
        else:
            obj = getattr(obj, name, None)
    return obj


def _text(value: object) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_text(v)}" for k, v in value.items()) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_text(v) for v in value) + "]"
    return str(value)


def _eval(words: list[str], obj: object) -> object:
    fn, args = (words[0], words[1:]) if not words[0].startswith((".", '"')) else (None, words)
    vals = [_field(obj, a) for a in args]
    match fn:
        case None:
            if len(vals) != 1:
                raise TemplateError(f"{' '.join(words)!r}: one field at a time")
            return vals[0]
        case "json":
            return json.dumps(vals[0], separators=(",", ":"))
        case "index":
            container, key = vals[0], vals[1]
            try:
                return container[key] if container is not None else None  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                return None
        case "upper" | "lower" | "title":
            return getattr(_text(vals[0]), fn)()
        case "len":
            return len(vals[0]) if isinstance(vals[0], str | list | tuple | dict) else 0
        case "join":
            if len(vals) != 2 or not isinstance(vals[1], str):
                raise TemplateError('join takes a list and a separator: {{join .Args ","}}')
            return vals[1].join(_text(v) for v in vals[0] or [])  # type: ignore[union-attr]
    raise TemplateError(f"unknown function {fn!r}")


def _render(nodes: list, obj: object) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "expr":
            out.append(_text(_eval(node[1], obj)))
        else:
            items = _eval(node[1], obj)
            for item in items.values() if isinstance(items, dict) else items or []:
                out.append(_render(node[2], item))
    return "".join(out)


def render(template: str, obj: object) -> str:
    """`template` applied to `obj` (a dict or an object with attributes)."""
    return _render(_parse(template.replace("\\t", "\t").replace("\\n", "\n")), obj)


def table(template: str, rows: list[dict], headers: dict[str, str]) -> list[str]:
    """`--format 'table {{.A}}\\t{{.B}}'`: a header row (Docker's names for the
    fields, from `headers`) and the rows, tab-separated columns aligned."""
    body = template.removeprefix("table").strip()
    head = _ACTION.sub(lambda m: headers.get(m.group(1).strip(), m.group(1).strip(". ")), body)
    lines = [head.replace("\\t", "\t")] + [render(body, r) for r in rows]
    return columns([line.split("\t") for line in lines])
