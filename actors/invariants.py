"""Broken invariants are our fault: stop loudly, with the state that broke them.

`assert` disappears under `python -O`, so the cores use `check`, which always runs."""

from __future__ import annotations

from typing import Any


class InvariantViolation(RuntimeError):
    """A safety rule of the protocol was about to be broken. The process must stop."""

    def __init__(self, rule: str, **state: Any) -> None:
        self.rule = rule
        self.state = state
        detail = ", ".join(f"{k}={v!r}" for k, v in state.items())
        super().__init__(f"{rule}: {detail}" if detail else rule)


def check(condition: bool, rule: str, **state: Any) -> None:
    """Raise `InvariantViolation(rule, **state)` unless `condition` holds."""
    if not condition:
        raise InvariantViolation(rule, **state)
