"""Finding and reading a floodwall configuration, in one documented order.

:func:`discover` looks, first match wins, at: an explicit path; the
``FLOODWALL_CONFIG`` environment variable; ``./floodwall.toml``;
``[tool.floodwall]`` in ``./pyproject.toml``. :func:`load` reads what it
found with ``tomllib``, checks it against the schema, and applies the
``FLOODWALL_*`` environment variables over single values.
Invariant: a file that another user could have written (owned by someone
else, or writable by others) is refused, never read: a limit is a security
control and its configuration is part of it.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floodwall.config.errors import ConfigFileError
from floodwall.config.model import Config, validate

__all__ = ["CONFIG_ENV", "MAX_CONFIG_BYTES", "Found", "discover", "load", "load_mapping"]

#: The environment variable naming a configuration file.
CONFIG_ENV = "FLOODWALL_CONFIG"
#: A configuration larger than this is refused (it is not a configuration).
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class Found:
    """Where a configuration was found: ``path``, and ``how`` (``"explicit"``,
    ``"FLOODWALL_CONFIG"``, ``"./floodwall.toml"``, ``"pyproject.toml"``)."""

    path: Path
    how: str

    @property
    def in_pyproject(self) -> bool:
        return self.how == "pyproject.toml"


def discover(
    path: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Found | None:
    """Where the configuration is, in the documented order; None if there
    is none. An explicit path or ``FLOODWALL_CONFIG`` naming a missing file
    is an error (a typo must not silently mean "no configuration")."""
    env = os.environ if environ is None else environ
    base = Path.cwd() if cwd is None else Path(cwd)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigFileError("no such file", source=str(p),
                                  allowed="give the path of a floodwall.toml")
        return Found(p, "pyproject.toml" if p.name == "pyproject.toml" else "explicit")
    named = env.get(CONFIG_ENV)
    if named:
        p = Path(named)
        if not p.is_file():
            raise ConfigFileError(
                "no such file", source=f"{p} (from {CONFIG_ENV})",
                allowed=f"point {CONFIG_ENV} at a floodwall.toml, or unset it",
            )
        return Found(p, "pyproject.toml" if p.name == "pyproject.toml" else CONFIG_ENV)
    local = base / "floodwall.toml"
    if local.is_file():
        return Found(local, "./floodwall.toml")
    project = base / "pyproject.toml"
    if project.is_file():
        # Only a pyproject.toml that configures floodwall must be the
        # service owner's: any other is none of floodwall's business.
        data = _parse(project, _read(project, trusted_only=False))
        if isinstance(data.get("tool"), dict) and "floodwall" in data["tool"]:
            return Found(project, "pyproject.toml")
    return None


def _read(path: Path, *, trusted_only: bool = True) -> str:
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if trusted_only:
                _check_owner(path, info)
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(f"cannot be read: {exc.strerror or exc}", source=str(path)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigFileError(f"is larger than {MAX_CONFIG_BYTES} bytes", source=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"is not UTF-8 ({exc.reason} at byte {exc.start})",
                              source=str(path)) from None


def _check_owner(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ConfigFileError("is not a regular file", source=str(path))
    uid = os.geteuid()
    if info.st_uid not in (uid, 0):
        raise ConfigFileError(
            f"is owned by uid {info.st_uid}, not by this user ({uid}) or root: refused",
            source=str(path), allowed="a configuration must be the service owner's own",
        )
    if info.st_mode & stat.S_IWOTH:
        raise ConfigFileError(
            "is writable by other users: refused (anyone could change the limits)",
            source=str(path), allowed=f"chmod o-w {path}",
        )


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", None) or str(exc)
        if line is None:  # Python < 3.14: the position is in the message
            import re

            m = re.search(r"\(at line (\d+), column \d+\)", message)
            if m:
                line = int(m.group(1))
                message = message[: m.start()].strip()
        raise ConfigFileError(f"is not valid TOML: {message}", source=str(path),
                              line=line) from None


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """The configuration, found by :func:`discover`, checked, with the
    environment variables applied; an empty configuration (every default)
    when there is none."""
    env = os.environ if environ is None else environ
    found = discover(path, cwd=cwd, environ=env)
    if found is None:
        return validate({}, "(no configuration file)").override(env)
    text = _read(found.path)
    data = _parse(found.path, text)
    prefix = ""
    if found.in_pyproject:
        tool = data.get("tool")
        data = tool.get("floodwall", {}) if isinstance(tool, dict) else {}
        prefix = "tool.floodwall."
    config = validate(data, str(found.path), text=text, prefix=prefix)
    config.origin = f"{found.path} ({found.how})"
    return config.override(env)


def load_mapping(
    data: Mapping[str, Any], source: str, *, environ: Mapping[str, str] | None = None
) -> Config:
    """A configuration given as a mapping (``settings.FLOODWALL``,
    ``app.config["FLOODWALL"]``): the same checks as a file, then the
    environment variables."""
    return validate(data, source).override(os.environ if environ is None else environ)
