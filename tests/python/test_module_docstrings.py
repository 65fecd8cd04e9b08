"""Every module of the package opens with a docstring saying what it is for,
so that ``help(module)`` and ``module.__doc__`` show it (issue 9 item 8).
Read from the source tree with ``ast``, so no framework needs importing.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "floodwall"

EXCLUDED: tuple[str, ...] = ()


def modules() -> list[Path]:
    found = sorted(
        p for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] not in EXCLUDED and "__pycache__" not in p.parts
    )
    assert len(found) > 15, found
    return found


def test_every_module_opens_with_a_docstring() -> None:
    missing = []
    for path in modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        doc = ast.get_docstring(tree)
        if not doc or len(doc.split()) < 4:
            missing.append(str(path.relative_to(PACKAGE)))
    assert not missing, f"modules without a docstring saying what they are for: {missing}"


def test_no_module_opens_with_a_comment_block_instead() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in modules()
        if p.read_text().lstrip().startswith("#")
    ]
    assert not offenders, offenders
