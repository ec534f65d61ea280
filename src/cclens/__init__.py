"""cclens: an open, self-hosted warehouse for Claude Code reporting data."""

__version__ = "0.1.0"
