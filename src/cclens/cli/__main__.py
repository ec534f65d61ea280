"""``python -m cclens.cli``."""

import sys

from . import main

sys.exit(main())
