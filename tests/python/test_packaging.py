"""Packaging truth: what pyproject.toml and the README declare is what the code needs.

The declared Python floor (``requires-python``) must be the one the C
extension and the Python sources actually need, and the same number must
appear in the README's prerequisites, the classifiers, and the ruff and mypy
targets. The extras name only stores and frameworks that exist, and the
LICENSE file says what pyproject says. These read the source tree (tests run
from a checkout), not the installed wheel.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# C API names the extension may use that appeared after CPython 3.8, and the
# version that made each public. A new name that needs a newer Python than
# the floor must be added here (and the floor raised with it).
C_API_SINCE: dict[str, tuple[int, int]] = {
    "PyObject_CallNoArgs": (3, 9),
    "PyObject_CallOneArg": (3, 9),
    "PyType_FromModuleAndSpec": (3, 9),
    "PyType_GetModule": (3, 9),
    "PyType_GetModuleState": (3, 9),
    "PyModule_AddType": (3, 9),
    "PyObject_Vectorcall": (3, 9),
    "Py_NewRef": (3, 10),
    "Py_XNewRef": (3, 10),
    "Py_IsNone": (3, 10),
    "PyModule_AddObjectRef": (3, 10),
    "Py_TPFLAGS_IMMUTABLETYPE": (3, 10),
    "Py_TPFLAGS_DISALLOW_INSTANTIATION": (3, 10),
    "PyType_GetModuleByDef": (3, 11),
    "PyFloat_Pack8": (3, 11),
    "PyFloat_Unpack8": (3, 11),
    "Py_Version": (3, 11),
    "PyType_GetDict": (3, 12),
    "PyLong_AsInt": (3, 13),
    "PyModule_Add": (3, 13),
    "PyDict_GetItemRef": (3, 13),
}


def pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def floor() -> tuple[int, int]:
    spec = pyproject()["project"]["requires-python"]
    m = re.fullmatch(r">=\s*3\.(\d+)", spec.strip())
    assert m, f"requires-python should be a plain '>=3.N', got {spec!r}"
    return (3, int(m[1]))


def test_floor_covers_every_c_api_the_extension_uses() -> None:
    sources = sorted((ROOT / "python" / "ext").glob("*.[ch]"))
    assert sources, "python/ext has no C sources"
    words = set()
    for source in sources:
        words |= set(re.findall(r"\b\w+\b", source.read_text()))
    used = {name: since for name, since in C_API_SINCE.items() if name in words}
    needed = max(used.values(), default=(3, 8))
    assert floor() >= needed, (
        f"requires-python allows 3.{floor()[1]}, but the extension uses "
        + ", ".join(f"{n} (3.{v[1]})" for n, v in sorted(used.items()) if v > floor())
    )


def test_python_sources_parse_at_the_floor() -> None:
    files = sorted((ROOT / "python" / "floodwall").rglob("*.py"))
    assert len(files) > 10
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=floor())


def test_readme_states_the_same_floor() -> None:
    readme = (ROOT / "README.md").read_text()
    stated = re.findall(r"Python 3\.(\d+) or newer", readme)
    assert stated, "README must say 'Python 3.N or newer' in its prerequisites"
    assert {(3, int(n)) for n in stated} == {floor()}


def test_classifiers_and_tool_targets_match_the_floor() -> None:
    data = pyproject()
    low = floor()
    versions = [
        tuple(int(p) for p in c.rsplit(":: ", 1)[1].split("."))
        for c in data["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions and min(versions) == low, versions
    assert data["tool"]["ruff"]["target-version"] == f"py3{low[1]}"
    assert data["tool"]["mypy"]["python_version"] == f"3.{low[1]}"


def test_extras_name_only_what_exists() -> None:
    import importlib.util

    homes = {
        "redis": "floodwall.stores.redis",
        "postgres": "floodwall.stores.postgres",
        "fastapi": "floodwall.integrations.asgi",
        "starlette": "floodwall.integrations.asgi",
        "flask": "floodwall.integrations.flask",
        "django": "floodwall.integrations.django",
        "drf": "floodwall.integrations.drf",
        "prometheus": "floodwall.observe.metrics",
        "monitor": "floodwall.cli.monitor",
        "otel": "floodwall.observe.otel",
        "server": "floodwall.server.main",
        "remote": "floodwall.stores.remote",
    }
    tooling = {"test", "bench", "dev"}
    for extra in pyproject()["project"]["optional-dependencies"]:
        if extra in tooling:
            continue
        assert extra in homes, f"extra {extra!r} installs packages for nothing floodwall has"
        assert importlib.util.find_spec(homes[extra]) is not None, homes[extra]


def test_license_file_matches_pyproject() -> None:
    data = pyproject()["project"]
    assert data["license"] == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    assert "License :: OSI Approved :: MIT License" in data["classifiers"]


@pytest.mark.parametrize("script", ["floodwall"])
def test_console_script_target_exists(script: str) -> None:
    import importlib

    target = pyproject()["project"]["scripts"][script]
    module, _, attr = target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
