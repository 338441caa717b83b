"""The msgspec-free client codec against msgspec itself: same bytes both ways."""

from __future__ import annotations

import types
import typing

import msgspec
import pytest

from protocols import api, events, gen_lite, lite
from protocols.lite import api as api_lite
from protocols.lite import minipack


def test_generated_module_is_current() -> None:
    assert gen_lite.OUT.read_text() == gen_lite.render(), "run python -m protocols.gen_lite"


# -- minipack ------------------------------------------------------------------------------

EDGES: list[object] = [
    None,
    True,
    False,
    0,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**64 - 1,
    -1,
    -32,
    -33,
    -128,
    -129,
    -32768,
    -32769,
    -(2**31),
    -(2**31) - 1,
    -(2**63),
    0.0,
    -1.5,
    1e300,
    "",
    "é",
    "x" * 31,
    "x" * 32,
    "x" * 255,
    "x" * 256,
    "x" * 65535,
    "x" * 65536,
    b"",
    b"\x00\xff",
    b"y" * 256,
    b"y" * 65536,
    [],
    list(range(15)),
    list(range(16)),
    list(range(70000)),
    {},
    {str(i): i for i in range(15)},
    {str(i): i for i in range(16)},
    {str(i): [i, {"n": None}] for i in range(70000)},
]


@pytest.mark.parametrize("value", EDGES, ids=lambda v: repr(v)[:30])
def test_minipack_matches_msgspec(value: object) -> None:
    ours = minipack.packb(value)
    assert msgspec.msgpack.decode(ours) == value
    assert minipack.unpackb(msgspec.msgpack.encode(value)) == value
    assert minipack.unpackb(ours) == value


def test_minipack_reads_float32_and_tuples() -> None:
    assert minipack.unpackb(b"\xca\x3f\xc0\x00\x00") == 1.5
    assert minipack.unpackb(minipack.packb((1, "a"))) == [1, "a"]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x92\x01",
        b"\xa5abc",
        b"\xc4\x05ab",
        b"\xc1",
        b"\xd4\x00\x00",
        b"\x01\x02",
        b"\xcd\x01",
    ],
)
def test_minipack_refuses_malformed(data: bytes) -> None:
    with pytest.raises(minipack.PackError, match="malformed msgpack"):
        minipack.unpackb(data)


def test_minipack_refuses_what_msgpack_cannot_carry() -> None:
    with pytest.raises(minipack.PackError, match="set"):
        minipack.packb({1, 2})
    with pytest.raises(minipack.PackError, match="64 bits"):
        minipack.packb(2**64)


# -- every message, both ways --------------------------------------------------------------

MESSAGES = [
    c for c in gen_lite._structs() if c.__struct_config__.tag is not None
]  # tagged: what travels alone


def _sample(tp: object, name: str) -> object:
    """A value of type `tp` unlike its default, so it travels on the wire."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)), name)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _full(tp)
    if tp is str:
        return f"s-{name}"
    if tp is bool:
        return True
    if tp is int:
        return 70000
    if tp is float:
        return 2.25
    if tp is bytes:
        return b"\x00\xff" * 300
    if tp is dict:
        return {"k": [1, "two", None]}
    if origin is list:
        return [_sample(args[0], name), _sample(args[0], name)]
    if origin is tuple:
        return tuple(_sample(a, name) for a in args)
    if origin is dict:
        return {"key": _sample(args[1], name)}
    raise AssertionError(f"no sample for {tp}")


def _full(cls: type[msgspec.Struct]) -> msgspec.Struct:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _sample(hints[f.name], f.name) for f in msgspec.structs.fields(cls)})


def _minimal(cls: type[msgspec.Struct]) -> msgspec.Struct:
    hints = typing.get_type_hints(cls)
    return cls(
        **{
            f.name: _sample(hints[f.name], f.name)
            for f in msgspec.structs.fields(cls)
            if f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT
        }
    )


UNION = api.Request | api.Response | events.Event | events.Gap


@pytest.mark.parametrize("make", [_full, _minimal], ids=["full", "minimal"])
@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_lite_round_trips_with_msgspec(cls: type[msgspec.Struct], make) -> None:
    original = make(cls)
    wire = msgspec.msgpack.encode(original)
    mirrored = lite.decode(wire)
    assert type(mirrored).__name__ == cls.__name__
    back = lite.encode(mirrored)
    # Same map msgspec writes (key order aside), decoded strictly by the daemon's types.
    assert minipack.unpackb(back) == minipack.unpackb(wire)
    assert msgspec.msgpack.decode(back, type=UNION) == msgspec.msgpack.decode(wire, type=UNION)
    theirs = msgspec.to_builtins(original, builtin_types=(bytes,))
    assert _lists(theirs) == lite.to_builtins(mirrored)


def _lists(obj: object) -> object:
    """Tuples as lists: what a round trip through msgpack makes of them."""
    return minipack.unpackb(minipack.packb(obj))


def test_lite_defaults_and_errors() -> None:
    cfg = api_lite.ContainerConfig(cmd=["true"], cpus=2)
    assert cfg.workdir == "/" and cfg.mounts == [] and cfg.health_interval == 30.0
    assert api_lite.ContainerConfig().env is not api_lite.ContainerConfig().env
    req = api_lite.Create(config=cfg)
    assert msgspec.msgpack.decode(lite.encode(req), type=api.Request) == api.Create(
        config=api.ContainerConfig(cmd=["true"], cpus=2.0)
    )
    assert lite.replace(req, config=api_lite.ContainerConfig()).config.cmd == []
    with pytest.raises(AttributeError, match="immutable"):
        req.config = cfg  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing required argument 'id'"):
        api_lite.Start()
    with pytest.raises(TypeError, match="unexpected argument 'nope'"):
        api_lite.Start(id="x", nope=1)
    with pytest.raises(lite.DecodeError, match="unknown message type 'Nope'"):
        lite.decode(minipack.packb({"msg": "Nope"}))
    with pytest.raises(lite.DecodeError, match="missing required argument 'id'"):
        lite.decode(minipack.packb({"msg": "Created", "name": "x"}))
    with pytest.raises(lite.DecodeError, match="malformed"):
        lite.decode(b"\x92")
    # A newer daemon's extra field is ignored, as msgspec ignores it.
    ok = lite.decode(minipack.packb({"msg": "Created", "id": "a", "name": "b", "new": 1}))
    assert ok == api_lite.Created(id="a", name="b")
