"""``python -m cclens``."""

from .cli import script

script()
