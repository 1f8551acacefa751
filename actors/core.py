"""What every core shares: one entry point, `step`, for messages and ticks alike; a `Ready` out;
dispatch by message type; and an `invariants()` check that the shell runs after every step.

A core never sends, writes or logs by itself: it appends to the `Ready` it is given, and its
shell (`runtime.turn.Turn`) commits that in the one safe order. Each protocol rule that a
planted bug might break is a method of its own (`may_accept`, `record_promise`, `counts_vote`,
...), so the harness can break exactly one rule by overriding exactly one method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from actors.ballot import Ballot
from actors.membership import Membership
from actors.messages import TICK, Message
from actors.ready import WARNING, Ready
from actors.records import Record

Handler = Callable[[Any, str, Any, Ready], None]


def reject(ready: Ready, sender: str, message: Message, reason: str, **detail: Any) -> None:
    """The peer sent something out of bounds or inconsistent: its fault, never an invariant of
    ours. The caller changes no state and writes no record for that message; this only says why,
    as a `message_rejected` warning (the turn driver rate-limits those per reason and peer)."""
    ready.event("message_rejected", WARNING, peer=sender, type=message.TYPE, reason=reason, **detail)


def owner_ok(proposer_ids: dict[str, int], sender: str, ballot: Ballot, ready: Ready,
             message: Message | None = None) -> bool:
    """A proposer only ever uses ballots with its own id; anything else is a bug or a forgery."""
    if proposer_ids.get(sender) != ballot.node:
        ready.event("message_rejected", WARNING, peer=sender, type=message.TYPE if message is not None else "",
                    ballot=str(ballot), reason="ballot_not_owned_by_sender")
        return False
    return True


class Core:
    """Subclasses map message types (`Tick` included) to handler functions in `HANDLERS` (at class
    level, so a core holds no bound methods and can be copied field by field) and name their
    `role`."""

    role: ClassVar[str] = "core"
    # Whether what a step persists must be durable before its messages leave (see Ready.commit).
    replies_wait_for_disk: ClassVar[bool] = True
    HANDLERS: ClassVar[dict[type[Message], Handler]] = {}

    def step(self, sender: str, message: Message, ready: Ready | None = None) -> Ready:
        """The one entry: `message` from `sender` (a peer, a client, or the shell with `TICK`).
        Appends to `ready` (one per turn, for group commit) or to a new one, and returns it."""
        if ready is None:
            ready = Ready()
        handler = self.HANDLERS.get(type(message))
        if handler is None:
            ready.event("message_ignored", WARNING, peer=sender, type=message.TYPE, reason=f"not_for_{self.role}")
        else:
            handler(self, sender, message, ready)
        return ready

    def tick(self, ready: Ready | None = None) -> Ready:
        """`step` with the shell's tick."""
        return self.step("", TICK, ready)

    def end_turn(self, ready: Ready) -> None:
        """Called once per turn, after its steps and before the commit (the proposer batches the
        turn's client commands into slots here)."""

    def apply(self, record: Record) -> Any:
        """The only place durable state changes; used live and on replay."""
        raise NotImplementedError

    def checkpoint(self) -> list[Record]:
        """Records that rebuild this core's durable state exactly (what a compacted file holds).
        Called by the shell to run a `Compact` action, after the turn's records are persisted."""
        raise NotImplementedError(f"a {self.role} does not compact")

    def snapshot_state(self) -> Any:
        """What a snapshot of this core holds (the learner's state machine); plain containers."""
        raise NotImplementedError(f"a {self.role} takes no snapshots")

    def invariants(self) -> None:
        """Raise `InvariantViolation` if the core's state contradicts itself (our bug, never the
        peer's). Cheap: the shell runs it after every step."""

    def memberships(self) -> list[Membership]:
        """Every membership this core knows of: whom its shell may have to reach beyond the actors
        it was configured with (a membership carries each member's endpoint)."""
        history = getattr(self, "history", None)
        return history.all_members() if history is not None else []

    def status(self) -> dict[str, Any]:
        raise NotImplementedError
