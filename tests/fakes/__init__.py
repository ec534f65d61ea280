"""Fakes of upstream SaaS APIs, implementing their documented protocols (for tests and the demo)."""
