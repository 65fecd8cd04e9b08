"""``python -m floodwall``: the command line (the same as the ``floodwall`` command)."""

from __future__ import annotations

import sys

from floodwall.cli import main

sys.exit(main())
