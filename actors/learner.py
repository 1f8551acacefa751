"""The learner: majority tally per slot and ballot, strictly in-order delivery, hole filling,
the StartWorking epoch rule, and the key-value state machine.

A slot is chosen when a majority of acceptors report `Accepted` for it under one ballot. The
value comes with the vote (a Fetched answer) or, to save two copies of every value, from the
leader's own Accept, which it sends to the learners too: one ballot never has two values for
one slot, so the proposer that owns the ballot is as good a source as any acceptor. The
learner delivers chosen slots in slot order only; a gap that does not close by itself is
fetched from the acceptors (seed 000). Delivered slots become `DecidedRecord`s, so a restart
replays them instead of re-learning the whole log.

Epoch rule (seed 001, "ghost reappearance"): every command entry carries the epoch (ballot) of
the leader that first proposed it, and every new leader writes StartWorking(epoch) before its
own commands. A command entry whose epoch is below the highest StartWorking epoch applied so
far is skipped: it was proposed by a leader that had already been superseded, and a client may
have read the log without it.

The two rules a planted bug may break are methods of their own: `counts_vote` (a quorum is a
set of acceptors) and `quorum` (a majority).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.ballot import ZERO, Ballot
from actors.core import Core, owner_ok
from actors.invariants import InvariantViolation, check
from actors.kv import BadBatch, KVStore, parse_batch
from actors.messages import (
    COMMANDS,
    START,
    Accept,
    Accepted,
    Fetch,
    Fetched,
    Heartbeat,
    Repair,
    Reply,
    Tick,
    Value,
)
from actors.ready import DEBUG, INFO, WARNING, Ready
from actors.records import DecidedRecord, Record


@dataclass(slots=True)
class Tally:
    """The votes for one (slot, ballot), and its value once someone brought it."""

    voters: list[str] = field(default_factory=list)
    value: Value | None = None


@dataclass(slots=True)
class Applied:
    """What applying one decided slot tells the world; replay ignores it, the live path sends
    and logs it."""

    replies: list[tuple[str, Reply]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why a batch was skipped, per bad batch
    ghost: bool = False  # a command of a superseded epoch, skipped (seed 001)
    epoch_started: bool = False


class Learner(Core):
    role = "learner"
    # Learner records only make a restart fast: every value a learner applies is durable on a
    # majority of acceptors, and one that loses decisions learns and applies them again, to the
    # same state. So its replies need not wait for an fsync (see Ready.commit).
    replies_wait_for_disk = False

    def __init__(
        self,
        name: str,
        acceptors: list[str],
        decode: Callable[[bytes], Any],
        kv: KVStore,
        fetch_ticks: int = 10,
        fetch_slots_max: int = 4096,
        window_slots_max: int = 1_000_000,
        proposer_ids: dict[str, int] | None = None,
        debug_events: bool = False,
    ) -> None:
        self.name = name
        self.acceptors = list(acceptors)
        self.proposer_ids = dict(proposer_ids or {})
        self.majority = len(self.acceptors) // 2 + 1
        self.decode = decode
        self.kv = kv
        self.fetch_ticks = fetch_ticks
        self.fetch_slots_max = fetch_slots_max
        self.window_slots_max = window_slots_max
        self.debug_events = debug_events  # one event per delivered slot
        self.delivered = 0
        self.epoch: Ballot = ZERO
        self.tally: dict[int, dict[Ballot, Tally]] = {}
        self.chosen: dict[int, Value] = {}  # chosen, above `delivered`, not yet deliverable
        self.known_chosen_through = 0
        self.stall_ticks = 0
        self.fetch_rounds = 0  # fetches in a row that brought no progress
        self.repair_after_fetches = 3
        self.leader: str | None = None  # the sender of the latest heartbeat
        self.skipped_entries = 0

    # --- durable state ---------------------------------------------------------------------

    def apply(self, record: Record) -> Applied:
        """Deliver one decided slot to the state machine; the same on replay and live."""
        if type(record) is not DecidedRecord:
            raise TypeError(f"learner cannot apply {type(record).__name__}")
        check(record.slot == self.delivered + 1, "learners deliver gap-free, in slot order",
              slot=record.slot, delivered=self.delivered)
        self.delivered = record.slot
        value = record.value
        applied = Applied()
        if value.kind == COMMANDS:
            if value.epoch < self.epoch:
                self.skipped_entries += 1
                applied.ghost = True
                return applied
            for blob in value.batches:
                try:
                    batch = parse_batch(self.decode(blob))
                except (BadBatch, ValueError) as exc:
                    applied.rejected.append(str(exc))
                    continue
                replies = self.kv.apply_batch(batch)
                # Every learner applies every batch; one answers it, the one the client named
                # (a retry names none, so that any learner still up answers it).
                if replies and (not batch.reply_by or batch.reply_by == self.name):
                    applied.replies.append((batch.client_id, Reply(tuple(replies))))
        elif value.kind == START and value.epoch > self.epoch:
            # Highest, not last: a stale StartWorking re-proposed later in slot order must not
            # lower the epoch and let an older leader's commands back in.
            self.epoch = value.epoch
            applied.epoch_started = True
        return applied

    # --- the rules ---------------------------------------------------------------------------

    def counts_vote(self, voters: list[str], sender: str) -> bool:
        """A duplicated Accepted counts once: the quorum is a set of acceptors."""
        return sender not in voters

    def quorum(self) -> int:
        """Votes under one ballot that make a slot chosen: a majority of acceptors."""
        return self.majority

    # --- messages --------------------------------------------------------------------------

    def _acceptor(self, sender: str, ready: Ready) -> bool:
        if sender in self.acceptors:
            return True
        ready.event("message_rejected", WARNING, peer=sender, reason="not_an_acceptor")
        return False

    def _on_accepted(self, sender: str, m: Accepted, ready: Ready) -> None:
        if not self._acceptor(sender, ready):
            return
        ballot = m.ballot
        if m.values:
            for slot, value in zip(m.slots, m.values, strict=True):
                self._vote(sender, slot, ballot, value, ready)
        else:
            for slot in m.slots:
                self._vote(sender, slot, ballot, None, ready)
        self._deliver(ready)

    def _on_fetched(self, sender: str, m: Fetched, ready: Ready) -> None:
        if not self._acceptor(sender, ready):
            return
        self._note_chosen_through(m.chosen_through)
        for vote in m.votes:
            self._vote(sender, vote.slot, vote.ballot, vote.value, ready)
        self._deliver(ready)

    def _on_accept(self, sender: str, m: Accept, ready: Ready) -> None:
        # The leader's proposal: values for (slot, ballot); the votes come from acceptors.
        if not owner_ok(self.proposer_ids, sender, m.ballot, ready):
            return
        for slot, value in m.entries:
            self._vote(None, slot, m.ballot, value, ready)
        self._deliver(ready)

    def _on_heartbeat(self, sender: str, m: Heartbeat, ready: Ready) -> None:
        self.leader = sender
        self._note_chosen_through(m.chosen_through)

    def _note_chosen_through(self, slot: int) -> None:
        if slot > self.known_chosen_through:
            self.known_chosen_through = slot

    def _vote(self, sender: str | None, slot: int, ballot: Ballot, value: Value | None, ready: Ready) -> None:
        """One acceptor's vote (`sender`), with or without the value, or the proposal itself
        (`sender` None: a value and no vote)."""
        if slot <= self.delivered or slot in self.chosen:
            return
        if slot > self.delivered + self.window_slots_max:
            ready.event("vote_ignored", WARNING, peer=sender, slot=slot, reason="beyond_window")
            return
        by_ballot = self.tally.get(slot)
        if by_ballot is None:
            by_ballot = self.tally[slot] = {}
        entry = by_ballot.get(ballot)
        if entry is None:
            entry = by_ballot[ballot] = Tally(value=value)
        elif value is not None:
            known = entry.value
            if known is None:
                entry.value = value
            else:
                check(known == value, "one value per slot and ballot", slot=slot,
                      ballot=str(ballot), first=known.describe(), second=value.describe())
        # (A duplicated vote may still bring the value, so the check below runs either way.)
        if sender is not None and self.counts_vote(entry.voters, sender):
            entry.voters.append(sender)
        if entry.value is not None and len(entry.voters) >= self.quorum():
            self.chosen[slot] = entry.value
            del self.tally[slot]

    def _deliver(self, ready: Ready) -> None:
        chosen = self.chosen
        start = self.delivered
        while self.delivered + 1 in chosen:
            slot = self.delivered + 1
            record = DecidedRecord(slot, chosen.pop(slot))
            ready.persist.append(record)
            applied = self.apply(record)
            ready.deliver.append((slot, record.value))
            ready.send.extend(applied.replies)
            if applied.ghost:
                ready.event("ghost_skipped", INFO, slot=slot, epoch=str(record.value.epoch),
                            current_epoch=str(self.epoch))
            elif applied.epoch_started:
                ready.event("epoch_started", slot=slot, epoch=str(record.value.epoch))
            for reason in applied.rejected:
                ready.event("batch_rejected", WARNING, slot=slot, reason=reason)
            if self.debug_events:
                ready.event("slot_delivered", DEBUG, slot=slot, value=record.value.describe())
        if self.delivered != start:
            self.stall_ticks = 0
            self.fetch_rounds = 0
            self._note_chosen_through(self.delivered)

    def _on_tick(self, sender: str, m: Tick, ready: Ready) -> None:
        target = max(self.known_chosen_through, max(self.chosen, default=0))
        if target <= self.delivered:
            self.stall_ticks = 0
            return
        self.stall_ticks += 1
        if self.stall_ticks < self.fetch_ticks:
            return
        self.stall_ticks = 0
        first = self.delivered + 1
        last = min(target, self.delivered + self.fetch_slots_max)
        fetch = Fetch(first, last)
        for acceptor in self.acceptors:
            ready.send.append((acceptor, fetch))
        ready.event("gap_fetch", DEBUG, from_slot=first, to_slot=last)
        self.fetch_rounds += 1
        if self.fetch_rounds >= self.repair_after_fetches and self.leader is not None:
            # The acceptors answered but no ballot has a majority: ask for re-confirmation.
            self.fetch_rounds = 0
            ready.send.append((self.leader, Repair(first, last)))
            ready.event("repair_requested", from_slot=first, to_slot=last, leader=self.leader)

    HANDLERS = {Accepted: _on_accepted, Fetched: _on_fetched, Accept: _on_accept, Heartbeat: _on_heartbeat,
                Tick: _on_tick}

    # --- observation -----------------------------------------------------------------------

    def invariants(self) -> None:
        if self.delivered + 1 in self.chosen:
            raise InvariantViolation("a learner delivers every slot it can", delivered=self.delivered)

    def status(self) -> dict[str, Any]:
        return {
            "role": "learner",
            "state": "learning",
            "delivered": self.delivered,
            "epoch": str(self.epoch),
            "known_chosen_through": self.known_chosen_through,
            "keys": len(self.kv.data),
            "skipped_entries": self.skipped_entries,
            "digest": self.kv.digest(),
        }
