"""``python -m cclens.cli``."""

from . import script

script()
