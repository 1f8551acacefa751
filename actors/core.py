"""What every core shares: one entry point for messages that dispatches by message type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from actors.ballot import Ballot
from actors.messages import Message
from actors.output import WARNING, Output


def owner_ok(proposer_ids: dict[str, int], sender: str, ballot: Ballot, out: Output) -> bool:
    """A proposer only ever uses ballots with its own id; anything else is a bug or a forgery."""
    if proposer_ids.get(sender) != ballot.node:
        out.event("message_rejected", WARNING, peer=sender, ballot=str(ballot), reason="ballot_not_owned_by_sender")
        return False
    return True


class Core:
    """Subclasses map message types to handler functions in `HANDLERS` (at class level, so a
    core holds no bound methods and can be copied field by field) and name their `role`."""

    role = "core"
    # Whether what a step persists must be durable before its messages leave (runtime/commit.py).
    replies_wait_for_disk: ClassVar[bool] = True
    HANDLERS: ClassVar[dict[type[Message], Callable[[Any, str, Any, Output], None]]] = {}

    def step(self, sender: str, message: Message, out: Output) -> None:
        handler = self.HANDLERS.get(type(message))
        if handler is None:
            out.event("message_ignored", WARNING, peer=sender, type=message.TYPE, reason=f"not_for_{self.role}")
            return
        handler(self, sender, message, out)
