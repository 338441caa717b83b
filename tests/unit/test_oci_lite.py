"""protocols/lite/oci.py + lite.from_json read config.json as msgspec does.

`corral runtime run` decodes config.json without msgspec (its import is most
of the command's start-up). These tests hold the two decoders to the same
answers: the same objects for valid configs (ours, runc's, crun's), the same
error message, field path included, for each of a few hundred broken ones.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import msgspec
import pytest

# What this tests lives in the C core (its constants, its checks).
pytest.importorskip(
    "supervisor._corral_native", reason="the C core is not built (bash scripts/install.sh)"
)

from protocols import lite, oci
from protocols.lite import minijson
from protocols.lite import oci as oci_lite
from supervisor.runtime import seccomp
from supervisor.runtime import spec as specs


def rich() -> dict:
    """Our default spec with every kind of field filled in."""
    d = msgspec.to_builtins(specs.default_spec(["sh", "-c", "true"]))
    d["annotations"] = {"a": "b"}
    d["domainname"] = "example"
    d["process"]["consoleSize"] = {"height": 24, "width": 80}
    d["process"]["user"].update(umask=18, additionalGids=[1, 2])
    d["process"]["oomScoreAdj"] = 100
    d["process"]["capabilities"]["ambient"] = ["CAP_CHOWN"]
    d["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    d["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    d["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    d["linux"]["cgroupsPath"] = "/x/y"
    d["linux"]["resources"].update(
        memory={"limit": 1 << 20, "swap": 2 << 20, "kernelTCP": 1, "disableOOMKiller": False},
        cpu={"shares": 512, "quota": 1000, "period": 10000, "cpus": "0"},
        pids={"limit": 10},
        unified={"io.weight": "100"},
    )
    d["linux"]["seccomp"] = msgspec.to_builtins(seccomp.default_profile())
    hook = {"path": "/bin/true", "args": ["true", "x"], "env": ["A=1"], "timeout": 5}
    d["hooks"] = {"createRuntime": [hook], "poststart": [hook], "poststop": [{"path": "/x"}]}
    return d


def peers() -> list[tuple[str, dict]]:
    out = [("corral", rich()), ("corral-default", msgspec.to_builtins(specs.default_spec()))]
    return out


def via_msgspec(d: object) -> object:
    return msgspec.to_builtins(msgspec.convert(d, oci.Spec))


def via_lite(d: object) -> object:
    return lite.to_builtins(lite.from_json(oci_lite.Spec, d))


@pytest.mark.parametrize("tool", ["runc", "crun"])
def test_peer_specs_decode_the_same(tool: str, tmp_path) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    subprocess.run([tool, "spec"], cwd=tmp_path, check=True)
    d = minijson.loads((tmp_path / "config.json").read_bytes())
    assert d == json.loads((tmp_path / "config.json").read_text())
    assert via_lite(d) == via_msgspec(d)


@pytest.mark.parametrize(("name", "d"), peers(), ids=[n for n, _ in peers()])
def test_valid_specs_decode_the_same(name: str, d: dict) -> None:
    assert via_lite(d) == via_msgspec(d)
    spec = lite.from_json(oci_lite.Spec, d)
    assert spec.process.user.additional_gids == d["process"]["user"].get("additionalGids")


def _leaves(obj: object, path: tuple = ()):
    """(path, value) of every node, containers included."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:2]):  # two of each list are enough
            yield from _leaves(v, (*path, i))


def _set(d: object, path: tuple, value: object) -> object:
    d = copy.deepcopy(d)
    node = d
    for p in path[:-1]:
        node = node[p]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    return d


def _drop(d: object, path: tuple) -> object:
    d = copy.deepcopy(d)
    node = d
    for p in path[:-1]:
        node = node[p]  # type: ignore[index]
    del node[path[-1]]  # type: ignore[arg-type]
    return d


WRONG = ["x", 7, 1.5, True, None, [], [1], {}, {"k": 1}]


def mutations() -> list[tuple[str, object]]:
    base = rich()
    out = []
    for path, value in _leaves(base):
        if not path:
            continue
        for wrong in WRONG:
            if type(wrong) is not type(value):
                out.append((f"{path}={wrong!r}", _set(base, path, wrong)))
        if isinstance(path[-1], str):
            out.append((f"{path} dropped", _drop(base, path)))
    return [*out, ("top-level array", [base]), ("string", "x")]


MUTATIONS = mutations()


def _outcome(decode, d: object) -> str:
    try:
        return repr(decode(d))
    except (msgspec.ValidationError, lite.ValidationError) as e:
        return f"error: {e}"


@pytest.mark.parametrize("index", range(0, len(MUTATIONS), 50))
def test_broken_specs_fail_the_same(index: int) -> None:
    for name, d in MUTATIONS[index : index + 50]:
        theirs, ours = _outcome(via_msgspec, d), _outcome(via_lite, d)
        assert ours == theirs, name


def test_there_are_many_mutations_and_most_are_errors() -> None:
    errors = sum(_outcome(via_msgspec, d).startswith("error") for _, d in MUTATIONS)
    assert len(MUTATIONS) > 300 and errors > 250


@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2.5, "x\\u00e9", true, false, null]}', " [] ", '"s"', "1e3", "-0", "{}"],
)
def test_minijson_reads_what_json_reads(text: str) -> None:
    assert minijson.loads(text) == json.loads(text)
    assert json.loads(minijson.dumps(json.loads(text))) == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", '{"a":}', "[1,]", "{} x", "'a'", "[1] [2]", "\x00"])
def test_minijson_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(minijson.JSONError):
        minijson.loads(text)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_minijson_refuses_what_json_allows_and_json_forbids(text: str) -> None:
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(text)  # what config.json was read with before
    with pytest.raises(minijson.JSONError):
        minijson.loads(text)
