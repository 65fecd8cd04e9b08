"""``floodwall init [PATH] [--force] [--from flux.toml]``: write a commented floodwall.toml.

Without ``--from``, the file explains every key with the key commented out
(it loads and means the defaults). With ``--from``, a flux-limiter
``flux.toml`` is converted, and what could not be carried over is listed.
An existing file is never overwritten without ``--force``; the new file is
created without following a symbolic link, readable by all and writable by
its owner only, and loaded once to prove it is valid. Exit code 0, 2 on an
error (the file exists, the flux file is not TOML...).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from floodwall.cli._target import emit
from floodwall.errors import ConfigError

HELP = "write a commented floodwall.toml (--from flux.toml)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall init``."""
    parser.add_argument("path", nargs="?", default="floodwall.toml",
                        help="where to write (default ./floodwall.toml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--from", dest="source", metavar="FLUX_TOML",
                        help="convert this flux-limiter configuration")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _write(path: Path, text: str, force: bool) -> None:
    data = text.encode("utf-8")
    if not force:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            raise ConfigError(f"{path} exists: not overwritten (use --force to replace it)"
                              ) from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return
    # replace atomically: a reader never sees half a file
    fd, tmp = tempfile.mkstemp(prefix=".floodwall-", suffix=".toml", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run(args: argparse.Namespace) -> int:
    """Write the file, check that it loads, and say what was dropped."""
    from floodwall.config import load
    from floodwall.config.template import commented_template

    path = Path(args.path)
    dropped: list[str] = []
    if args.source:
        from floodwall.config.flux import convert

        try:
            text = Path(args.source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {args.source}: {exc}") from None
        conversion = convert(text, args.source)
        text, dropped = conversion.text, conversion.dropped
    else:
        text = commented_template()
    try:
        _write(path, text, args.force)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    config = load(path, environ={})
    lines = [f"wrote {path}" + (f" (converted from {args.source})" if args.source else "")]
    lines.append(f"  {len(config.values)} value(s) set, {len(config.limits)} named limit(s)")
    if dropped:
        lines.append("not carried over:")
        lines += [f"  {line}" for line in dropped]
    emit(args, "\n".join(lines), {"path": str(path), "source": args.source,
                                  "dropped": dropped, "limits": sorted(config.limits)})
    return 0
