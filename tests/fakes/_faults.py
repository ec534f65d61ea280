"""Injected failures shared by the GitHub and Jira fakes: ``fail(status, count=, after=, path=)``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FaultRule:
    """Answer ``remaining`` requests whose path contains ``path`` with ``status``, after ``after`` good ones."""

    status: int
    remaining: int
    after: int
    path: str | None
    retry_after: float | None
    message: str = ""


def next_fault(rules: list[FaultRule], path: str) -> FaultRule | None:
    """The rule that answers this request (consuming one use of it), or None to answer normally."""
    for rule in rules:
        if rule.path and rule.path not in path:
            continue
        if rule.after > 0:
            rule.after -= 1
            continue
        if rule.remaining <= 0:
            continue
        rule.remaining -= 1
        return rule
    return None
