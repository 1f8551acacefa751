"""What every core shares: one entry point for messages that dispatches by message type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from actors.messages import Message
from actors.output import WARNING, Output


class Core:
    """Subclasses map message types to handler functions in `HANDLERS` (at class level, so a
    core holds no bound methods and can be copied field by field) and name their `role`."""

    role = "core"
    HANDLERS: ClassVar[dict[type[Message], Callable[[Any, str, Any, Output], None]]] = {}

    def step(self, sender: str, message: Message, out: Output) -> None:
        handler = self.HANDLERS.get(type(message))
        if handler is None:
            out.event("message_ignored", WARNING, peer=sender, type=message.TYPE, reason=f"not_for_{self.role}")
            return
        handler(self, sender, message, out)
