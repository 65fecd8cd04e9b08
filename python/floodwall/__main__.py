"""python -m floodwall: the command line."""

import sys

from floodwall.cli import main

sys.exit(main())
