"""Operations: look at and repair the state of limits, apart from the stores.

This is the home of what an operator asks of a running deployment, and of
the logic behind the operator's CLI commands (the CLI itself only parses
arguments and prints, see :mod:`floodwall.cli`):

- ``doctor``: check a shared table read-only and report what is wrong;
- ``inspect``: the stored state of one key, per limit;
- ``hottest``: the keys closest to their limits (``floodwall top``);
- ``status`` and ``reset`` of a key (coming, as CLI commands).

Today ``doctor``, ``inspect`` and ``hottest`` are implemented next to the
shared tables, in :mod:`floodwall.stores.shared`, and ``floodwall doctor``
calls them there. They move here (the store keeping only what reads its own
bytes) once the store layer's restructuring has settled, so that every
store, Redis included, answers the same operator questions the same way.
"""

from __future__ import annotations
