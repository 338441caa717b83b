"""Decoding and validating OCI configs."""

from __future__ import annotations

import json
import resource

import msgspec
import pytest

# What this tests lives in the C core (its constants, its checks).
pytest.importorskip(
    "supervisor._corral_native", reason="the C core is not built (bash scripts/install.sh)"
)

from protocols import oci
from supervisor.errors import SpecError
from supervisor.runtime import spec as specs


def write(tmp_path, data) -> str:
    (tmp_path / "config.json").write_text(json.dumps(data))
    return str(tmp_path)


def base() -> dict:
    return msgspec.to_builtins(specs.default_spec(["true"]))


def test_default_spec_roundtrips_and_is_valid(tmp_path):
    spec = specs.load(write(tmp_path, base()))
    assert spec.process is not None and spec.process.args == ["true"]
    assert spec.process.capabilities is not None
    assert spec.process.capabilities.bounding == specs.DOCKER_CAPS
    assert spec.linux is not None and spec.linux.masked_paths == specs.DOCKER_MASKED


def test_unknown_fields_are_tolerated(tmp_path):
    d = base()
    d["someFutureField"] = {"x": 1}
    d["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    d["linux"]["resources"] = {  # unset, as engines write them (dockerd: blkio weight 0)
        "memory": {"swappiness": None},
        "hugepageLimits": [],
        "blockIO": {"weight": 0},
    }
    specs.load(write(tmp_path, d))


@pytest.mark.parametrize(
    ("where", "key", "value", "field"),
    [
        ("process", "apparmorProfile", "docker-default", "process.apparmorProfile"),
        ("process", "selinuxLabel", "system_u:system_r:container_t:s0", "process.selinuxLabel"),
        ("linux", "mountLabel", "x", "linux.mountLabel"),
        ("resources", "memory", {"kernelTCP": 1 << 20}, "linux.resources.memory.kernelTCP"),
        ("resources", "network", {"classID": 1048577}, "linux.resources.network"),
        ("resources", "blockIO", {"leafWeight": 500}, "linux.resources.blockIO.leafWeight"),
        ("resources", "blockIO", {"weightDevice": [{"major": 8, "minor": 0, "weight": 500}]},
         "linux.resources.blockIO.weightDevice"),
    ],
)  # fmt: skip
def test_settings_not_applied_are_refused_by_name(tmp_path, where, key, value, field):
    """The runtime spec: a setting that cannot be applied MUST be an error."""
    d = base()
    if where == "resources":
        d["linux"].setdefault("resources", {})[key] = value
    else:
        d[where][key] = value
    with pytest.raises(SpecError) as e:
        specs.load(write(tmp_path, d))
    assert e.value.field == field


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["process"]["user"].__setitem__("uid", "0"), "$.process.user.uid"),
        (lambda d: d["process"].__setitem__("args", []), "process.args"),
        (lambda d: d["process"].__setitem__("cwd", "relative"), "process.cwd"),
        (
            lambda d: d["process"]["capabilities"]["bounding"].append("CAP_BOGUS"),
            "process.capabilities.bounding[14]",
        ),
        (lambda d: d["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[6].type"),
        (lambda d: d["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[6]"),
        (lambda d: d["mounts"].append({"destination": "rel"}), "mounts[7].destination"),
        (
            lambda d: d["process"].__setitem__(
                "rlimits", [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
            ),
            "process.rlimits[0].type",
        ),
        (
            lambda d: d["process"].__setitem__(
                "rlimits", [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]
            ),
            "process.rlimits[0]",
        ),
        (lambda d: d.__delitem__("process"), "process"),
        (lambda d: d.__delitem__("root"), "root.path"),
        (lambda d: d["process"]["env"].append("NOEQUALS"), "process.env[2]"),
    ],
)
def test_invalid_configs_name_the_field(tmp_path, mutate, field):
    d = base()
    mutate(d)
    with pytest.raises(SpecError) as exc:
        specs.load(write(tmp_path, d))
    assert exc.value.field == field, str(exc.value)


def test_rlimit_above_host_hard_limit_refused(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("host NOFILE hard limit is unlimited")
    d = base()
    d["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": hard + 1}]
    with pytest.raises(SpecError, match="above the host's hard limit"):
        specs.load(write(tmp_path, d))


def test_malformed_json_is_a_spec_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        specs.load(str(tmp_path))


def test_missing_config(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        specs.load(str(tmp_path))


def test_state_encodes_like_runc():
    st = oci.State(oci_version="1.0.2", id="x", status="running", bundle="/b", pid=5)
    assert json.loads(oci.encode(st)) == {
        "ociVersion": "1.0.2",
        "id": "x",
        "status": "running",
        "bundle": "/b",
        "pid": 5,
    }
