"""Canonical facts and the logic that builds them: pricing, identity, reconciliation."""
