"""MessagePack in pure Python: the subset the wire uses (nil, bool, int, float,
str, bin, array, map; no ext types).

msgspec's import costs ~22 ms on the project's VM, a third of a whole
`corral run`; the client and event subscribers that cannot afford it encode
and decode with this instead (protocols/lite/__init__.py). The daemon keeps msgspec,
which validates every request strictly.
"""

from __future__ import annotations

from struct import Struct

_B = Struct(">B")
_H = Struct(">H")
_I = Struct(">I")
_Q = Struct(">Q")
_b = Struct(">b")
_h = Struct(">h")
_i = Struct(">i")
_q = Struct(">q")
_f = Struct(">f")
_d = Struct(">d")


class PackError(ValueError):
    """A value msgpack cannot carry, or bytes that are not msgpack."""


def packb(obj: object) -> bytes:
    out = bytearray()
    _pack(obj, out)
    return bytes(out)


def _pack(obj: object, out: bytearray) -> None:
    if obj is None:
        out += b"\xc0"
    elif obj is True:
        out += b"\xc3"
    elif obj is False:
        out += b"\xc2"
    elif isinstance(obj, int):
        _pack_int(obj, out)
    elif isinstance(obj, str):
        data = obj.encode()
        _raw_header(len(data), 0xA0, b"\xd9", b"\xda", b"\xdb", out)
        out += data
    elif isinstance(obj, float):
        out += b"\xcb" + _d.pack(obj)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _raw_header(len(obj), None, b"\xc4", b"\xc5", b"\xc6", out)
        out += obj
    elif isinstance(obj, (list, tuple)):
        _header(len(obj), 0x90, b"\xdc", b"\xdd", out)
        for item in obj:
            _pack(item, out)
    elif isinstance(obj, dict):
        _header(len(obj), 0x80, b"\xde", b"\xdf", out)
        for k, v in obj.items():
            _pack(k, out)
            _pack(v, out)
    else:
        raise PackError(f"cannot encode a {type(obj).__name__} as msgpack")


def _raw_header(n: int, fix: int | None, b8: bytes, b16: bytes, b32: bytes, out: bytearray) -> None:
    """A str's or bin's type and length (`fix`: the fixstr form, none for bin)."""
    if fix is not None and n < 32:
        out.append(fix | n)
    elif n < 1 << 8:
        out += b8 + _B.pack(n)
    elif n < 1 << 16:
        out += b16 + _H.pack(n)
    else:
        out += b32 + _I.pack(n)


def _header(n: int, fix: int, b16: bytes, b32: bytes, out: bytearray) -> None:
    if n < 16:
        out.append(fix | n)
    elif n < 1 << 16:
        out += b16 + _H.pack(n)
    else:
        out += b32 + _I.pack(n)


def _pack_int(n: int, out: bytearray) -> None:
    if 0 <= n < 128:
        out.append(n)
    elif -32 <= n < 0:
        out.append(n & 0xFF)
    elif n > 0:
        if n < 1 << 8:
            out += b"\xcc" + _B.pack(n)
        elif n < 1 << 16:
            out += b"\xcd" + _H.pack(n)
        elif n < 1 << 32:
            out += b"\xce" + _I.pack(n)
        elif n < 1 << 64:
            out += b"\xcf" + _Q.pack(n)
        else:
            raise PackError(f"integer {n} does not fit in 64 bits")
    elif n >= -(1 << 7):
        out += b"\xd0" + _b.pack(n)
    elif n >= -(1 << 15):
        out += b"\xd1" + _h.pack(n)
    elif n >= -(1 << 31):
        out += b"\xd2" + _i.pack(n)
    elif n >= -(1 << 63):
        out += b"\xd3" + _q.pack(n)
    else:
        raise PackError(f"integer {n} does not fit in 64 bits")


# Fixed-size formats after the type byte: (struct, kind) where kind says how the
# unpacked number is used: a value, a str/bin length, an array/map length.
_FIXED = {
    0xCA: (_f, "v"),
    0xCB: (_d, "v"),
    0xCC: (_B, "v"),
    0xCD: (_H, "v"),
    0xCE: (_I, "v"),
    0xCF: (_Q, "v"),
    0xD0: (_b, "v"),
    0xD1: (_h, "v"),
    0xD2: (_i, "v"),
    0xD3: (_q, "v"),
    0xD9: (_B, "s"),
    0xDA: (_H, "s"),
    0xDB: (_I, "s"),
    0xC4: (_B, "b"),
    0xC5: (_H, "b"),
    0xC6: (_I, "b"),
    0xDC: (_H, "a"),
    0xDD: (_I, "a"),
    0xDE: (_H, "m"),
    0xDF: (_I, "m"),
}


def unpackb(data: bytes) -> object:
    """One msgpack value that fills `data` exactly."""
    try:
        obj, pos = _unpack(data, 0)
    except (IndexError, KeyError, UnicodeDecodeError) as e:
        raise PackError(f"malformed msgpack: {e}") from None
    except Exception as e:  # struct.error on a truncated number
        raise PackError(f"malformed msgpack: {e}") from None
    if pos != len(data):
        raise PackError(f"malformed msgpack: {len(data) - pos} trailing bytes")
    return obj


def _unpack(data: bytes, pos: int) -> tuple[object, int]:
    t = data[pos]
    pos += 1
    if 0xA0 <= t <= 0xBF:  # fixstr first: most of what the wire carries
        end = pos + (t & 0x1F)
        if end > len(data):
            raise PackError("malformed msgpack: truncated str")
        return data[pos:end].decode(), end
    if t < 0x80:
        return t, pos
    if t >= 0xE0:
        return t - 0x100, pos
    if 0x90 <= t <= 0x9F:
        return _array(data, pos, t & 0x0F)
    if 0x80 <= t <= 0x8F:
        return _map(data, pos, t & 0x0F)
    if t == 0xC0:
        return None, pos
    if t == 0xC2:
        return False, pos
    if t == 0xC3:
        return True, pos
    fixed = _FIXED.get(t)
    if fixed is None:
        raise PackError(f"malformed msgpack: type byte 0x{t:02x} is not supported")
    st, kind = fixed
    (n,) = st.unpack_from(data, pos)
    pos += st.size
    if kind == "v":
        return n, pos
    if kind == "s":
        return _str(data, pos, n)
    if kind == "b":
        end = pos + n
        if end > len(data):
            raise PackError("malformed msgpack: truncated bin")
        return data[pos:end], end
    if kind == "a":
        return _array(data, pos, n)
    return _map(data, pos, n)


def _str(data: bytes, pos: int, n: int) -> tuple[str, int]:
    end = pos + n
    if end > len(data):
        raise PackError("malformed msgpack: truncated str")
    return data[pos:end].decode(), end


def _array(data: bytes, pos: int, n: int) -> tuple[list, int]:
    out = []
    for _ in range(n):
        item, pos = _unpack(data, pos)
        out.append(item)
    return out, pos


def _map(data: bytes, pos: int, n: int) -> tuple[dict, int]:
    out = {}
    unpack = _unpack
    for _ in range(n):
        t = data[pos]
        if 0xA0 <= t <= 0xBF:  # a fixstr key: the field names of every message
            end = pos + 1 + (t & 0x1F)
            if end > len(data):
                raise PackError("malformed msgpack: truncated str")
            k: object = data[pos + 1 : end].decode()
            pos = end
        else:
            k, pos = unpack(data, pos)
        v, pos = unpack(data, pos)
        try:
            out[k] = v
        except TypeError:
            raise PackError(f"malformed msgpack: a map key of type {type(k).__name__}") from None
    return out, pos
