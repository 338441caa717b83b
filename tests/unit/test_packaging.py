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
