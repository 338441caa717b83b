"""JSON through the standard library's C scanner, without `import json`.

`json` imports `re` (its number and whitespace patterns), several
milliseconds of a `corral runtime run` that reads config.json and writes
state.json. The parsing here is `_json`'s, the same C code `json.loads` runs;
what is in Python is the whitespace around the document and the writing of
dicts, lists, strings, numbers, booleans and null, which is all the runtime's
files hold.
"""

from __future__ import annotations

import _json

_WS = " \t\n\r"


class JSONError(ValueError):
    """Not JSON; the message says where."""


class _Context:
    # What _json.make_scanner reads from json.JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}  # noqa: RUF012

    @staticmethod
    def parse_constant(name: str) -> object:
        raise JSONError(f"{name} is not a JSON value")


_scan = _json.make_scanner(_Context)


def loads(data: bytes | str) -> object:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, start)
    except StopIteration as e:
        raise JSONError(f"no JSON value at character {e.value}") from None
    except ValueError as e:  # json.JSONDecodeError, from inside the scanner
        raise JSONError(str(e)) from None
    finally:
        _Context.memo.clear()
    if text[end:].strip(_WS):
        raise JSONError(f"extra data after the JSON value at character {end}")
    return obj


def dumps(obj: object) -> bytes:
    out: list[str] = []
    _write(obj, out)
    return "".join(out).encode()


def _write(obj: object, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(_json.encode_basestring_ascii(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise JSONError(f"{obj} cannot be written as JSON")
        out.append(float.__repr__(obj))
    elif isinstance(obj, dict):
        out.append("{")
        for i, (k, v) in enumerate(obj.items()):
            if not isinstance(k, str):
                raise JSONError(f"a JSON object's keys are strings, not {type(k).__name__}")
            out.append(("," if i else "") + _json.encode_basestring_ascii(k) + ":")
            _write(v, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    else:
        raise JSONError(f"{type(obj).__name__} cannot be written as JSON")
