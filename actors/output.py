"""What a step of a core produces: records to persist, messages to send, trace events.

One `Output` collects everything a whole turn of the event loop produced, across many steps,
so the shell can persist it under one fsync (group commit) before sending anything."""

from __future__ import annotations

from typing import Any

from actors.messages import Message
from actors.records import Record

INFO = "info"
DEBUG = "debug"
WARNING = "warning"


class Output:
    __slots__ = ("events", "persist", "send")

    def __init__(self) -> None:
        self.persist: list[Record] = []
        # (destination, message); a destination is a configured actor name or a client id.
        self.send: list[tuple[str, Message]] = []
        # (level, event, fields): facts for the log; the core never formats text.
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def event(self, event: str, level: str = INFO, **fields: Any) -> None:
        self.events.append((level, event, fields))

    def __bool__(self) -> bool:
        return bool(self.persist or self.send or self.events)
