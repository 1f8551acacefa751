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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.ballot import ZERO, Ballot
from actors.bugs import NONE
from actors.core import owner_ok
from actors.invariants import check
from actors.kv import BadBatch, KVStore, parse_batch
from actors.messages import (
    COMMANDS,
    START,
    Accept,
    Accepted,
    Fetch,
    Fetched,
    Heartbeat,
    Message,
    Repair,
    Reply,
    Value,
)
from actors.output import DEBUG, INFO, WARNING, Output
from actors.records import DecidedRecord, Record


class Learner:
    # Learner records only make a restart fast: every value a learner applies is durable on a
    # majority of acceptors, and one that loses decisions learns and applies them again, to the
    # same state. So its replies need not wait for an fsync (runtime/commit.py).
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
        self.delivered = 0
        self.epoch: Ballot = ZERO
        # slot -> ballot -> [acceptor names, value]
        self.tally: dict[int, dict[Ballot, list[Any]]] = {}
        self.chosen: dict[int, Value] = {}  # chosen, above `delivered`, not yet deliverable
        self.known_chosen_through = 0
        self.stall_ticks = 0
        self.fetch_rounds = 0  # fetches in a row that brought no progress
        self.repair_after_fetches = 3
        self.leader: str | None = None  # the sender of the latest heartbeat
        self.skipped_entries = 0
        self.verbose = False  # emit one debug event per delivered slot
        self.bugs = NONE

    # --- durable state ---------------------------------------------------------------------

    def apply(self, record: Record, out: Output | None = None) -> None:
        """Deliver one decided slot. Live, `out` collects replies to clients; on replay it is
        None and the same code rebuilds the state silently."""
        if type(record) is not DecidedRecord:
            raise TypeError(f"learner cannot apply {type(record).__name__}")
        check(record.slot == self.delivered + 1, "learners deliver gap-free, in slot order",
              slot=record.slot, delivered=self.delivered)
        self.delivered = record.slot
        value = record.value
        if value.kind == COMMANDS:
            if value.epoch < self.epoch:
                self.skipped_entries += 1
                if out is not None:
                    out.event("ghost_skipped", INFO, slot=record.slot, epoch=str(value.epoch),
                              current_epoch=str(self.epoch))
                return
            for blob in value.batches:
                try:
                    batch = parse_batch(self.decode(blob))
                except (BadBatch, ValueError) as exc:
                    if out is not None:
                        out.event("batch_rejected", WARNING, slot=record.slot, reason=str(exc))
                    continue
                replies = self.kv.apply_batch(batch)
                # Every learner applies every batch; one answers it, the one the client named
                # (a retry names none, so that any learner still up answers it).
                if out is not None and replies and (not batch.reply_by or batch.reply_by == self.name):
                    out.send.append((batch.client_id, Reply(tuple(replies))))
        elif value.kind == START and value.epoch > self.epoch:
            # Highest, not last: a stale StartWorking re-proposed later in slot order must not
            # lower the epoch and let an older leader's commands back in.
            self.epoch = value.epoch
            if out is not None:
                out.event("epoch_started", slot=record.slot, epoch=str(value.epoch))

    # --- messages --------------------------------------------------------------------------

    def step(self, sender: str, message: Message, out: Output) -> None:
        kind = type(message)
        if kind is Accepted:
            if sender not in self.acceptors:
                out.event("message_rejected", WARNING, peer=sender, reason="not_an_acceptor")
                return
            ballot = message.ballot
            values = message.values
            if values:
                for slot, value in zip(message.slots, values, strict=True):
                    self._vote(sender, slot, ballot, value, out)
            else:
                for slot in message.slots:
                    self._vote(sender, slot, ballot, None, out)
            self._deliver(out)
        elif kind is Fetched:
            if sender not in self.acceptors:
                out.event("message_rejected", WARNING, peer=sender, reason="not_an_acceptor")
                return
            self._note_chosen_through(message.chosen_through)
            for vote in message.votes:
                self._vote(sender, vote.slot, vote.ballot, vote.value, out)
            self._deliver(out)
        elif kind is Accept:
            # The leader's proposal: values for (slot, ballot); the votes come from acceptors.
            if not owner_ok(self.proposer_ids, sender, message.ballot, out):
                return
            ballot = message.ballot
            for slot, value in message.entries:
                self._vote(None, slot, ballot, value, out)
            self._deliver(out)
        elif kind is Heartbeat:
            self.leader = sender
            self._note_chosen_through(message.chosen_through)
        else:
            out.event("message_ignored", WARNING, peer=sender, type=message.TYPE,
                      reason="not_for_learner")

    def _note_chosen_through(self, slot: int) -> None:
        if slot > self.known_chosen_through:
            self.known_chosen_through = slot

    def _vote(self, sender: str | None, slot: int, ballot: Ballot, value: Value | None, out: Output) -> None:
        """One acceptor's vote (`sender`), with or without the value, or the proposal itself
        (`sender` None: a value and no vote)."""
        if slot <= self.delivered or slot in self.chosen:
            return
        if slot > self.delivered + self.window_slots_max:
            out.event("vote_ignored", WARNING, peer=sender, slot=slot, reason="beyond_window")
            return
        by_ballot = self.tally.get(slot)
        if by_ballot is None:
            by_ballot = self.tally[slot] = {}
        entry = by_ballot.get(ballot)
        if entry is None:
            entry = by_ballot[ballot] = [[], value]
        elif value is not None:
            known = entry[1]
            if known is None:
                entry[1] = value
            else:
                check(known == value, "one value per slot and ballot", slot=slot,
                      ballot=str(ballot), first=known.describe(), second=value.describe())
        voters = entry[0]
        # A duplicated Accepted counts once: the quorum is a set of acceptors. (It may still
        # bring the value, so the check below runs either way.)
        if sender is not None and (sender not in voters or "count_duplicate_accepted" in self.bugs):
            voters.append(sender)
        if entry[1] is not None and len(voters) >= (1 if "ack_before_chosen" in self.bugs else self.majority):
            self.chosen[slot] = entry[1]
            del self.tally[slot]

    def _deliver(self, out: Output) -> None:
        chosen = self.chosen
        start = self.delivered
        while self.delivered + 1 in chosen:
            slot = self.delivered + 1
            record = DecidedRecord(slot, chosen.pop(slot))
            out.persist.append(record)
            self.apply(record, out)
            if self.verbose:
                out.event("slot_delivered", DEBUG, slot=slot, value=record.value.describe())
        if self.delivered != start:
            self.stall_ticks = 0
            self.fetch_rounds = 0
            self._note_chosen_through(self.delivered)

    def tick(self, out: Output) -> None:
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
            out.send.append((acceptor, fetch))
        out.event("gap_fetch", DEBUG, from_slot=first, to_slot=last)
        self.fetch_rounds += 1
        if self.fetch_rounds >= self.repair_after_fetches and self.leader is not None:
            # The acceptors answered but no ballot has a majority: ask for re-confirmation.
            self.fetch_rounds = 0
            out.send.append((self.leader, Repair(first, last)))
            out.event("repair_requested", from_slot=first, to_slot=last, leader=self.leader)

    # --- observation -----------------------------------------------------------------------

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
