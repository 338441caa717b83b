"""pyproject.toml ships every package: a wheel install would otherwise lack one."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_package_is_listed() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("supervisor", "protocols")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert found == listed


def test_monitor_is_built_against_musl_where_it_can_be() -> None:
    """glibc's static start-up costs ~0.4 ms a container on a VM (docs/benchmarks.md):
    where musl-gcc is installed (scripts/install.sh installs it) the monitor and
    corral-init must not carry it."""
    import shutil

    import pytest

    if shutil.which("musl-gcc") is None:
        pytest.skip("musl-gcc is not installed: the glibc build is the fallback")
    for name in ("corral-monitor", "corral-init"):
        data = (ROOT / "supervisor" / "libexec" / name).read_bytes()
        assert b"GLIBC_TUNABLES" not in data, f"{name} is linked against glibc"
