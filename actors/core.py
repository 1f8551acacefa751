"""What every core shares: one entry point for messages that dispatches by message type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.messages import Message
from actors.output import WARNING, Output


class Core:
    """Subclasses fill `_handlers` (message type -> handler) and name their `role`."""

    role = "core"
    _handlers: dict[type[Message], Callable[[str, Any, Output], None]]

    def step(self, sender: str, message: Message, out: Output) -> None:
        handler = self._handlers.get(type(message))
        if handler is None:
            out.event("message_ignored", WARNING, peer=sender, type=message.TYPE, reason=f"not_for_{self.role}")
            return
        handler(sender, message, out)
