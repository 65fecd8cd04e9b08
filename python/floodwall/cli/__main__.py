"""``python -m floodwall.cli``: the same command line as ``floodwall``."""

from __future__ import annotations

import sys

from floodwall.cli import main

sys.exit(main())
