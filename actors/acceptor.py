"""The acceptor: two promises and one answer (seed 001, P1b and P2b).

It owns the promised ballot and, per slot, the highest-ballot value it accepted. Every change
goes through a record (`PromiseRecord`, `AcceptRecord`) that the shell makes durable before it
sends any reply the record justifies; replay after a crash goes through the same `apply`.
It never sends anything itself and never reads a clock.
"""

from __future__ import annotations

from typing import Any

from actors.ballot import ZERO, Ballot
from actors.bugs import NONE
from actors.core import Core, owner_ok
from actors.invariants import check
from actors.messages import (
    Accept,
    Accepted,
    Fetch,
    Fetched,
    Heartbeat,
    Nack,
    Prepare,
    Promise,
    Recover,
    Recovered,
    Value,
    Vote,
)
from actors.output import DEBUG, Output
from actors.records import AcceptRecord, PromiseRecord, Record

VOTE_OVERHEAD_BYTES = 32


class Acceptor(Core):
    role = "acceptor"

    def __init__(
        self,
        name: str,
        proposer_ids: dict[str, int],
        learners: list[str],
        reply_bytes_max: int,
        fetch_slots_max: int = 4096,
    ) -> None:
        self.name = name
        self.proposer_ids = dict(proposer_ids)
        self.learners = list(learners)
        self.reply_bytes_max = reply_bytes_max
        self.fetch_slots_max = fetch_slots_max
        self.promised: Ballot = ZERO
        self.accepted: dict[int, tuple[Ballot, Value]] = {}
        self.highest_slot = 0
        self.chosen_through = 0  # the leaders' watermark, as far as this acceptor heard
        self.accepts_answered = 0  # since this process started (not durable; for observers)
        self.bugs = NONE

    # --- durable state ---------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        """The only place state changes; used live and on replay."""
        if type(record) is AcceptRecord:
            b = record.ballot
            if b is not self.promised and b > self.promised:  # the same object, mostly: skip comparing
                self.promised = b
            accepted = self.accepted
            for slot, value in record.entries:
                accepted[slot] = (b, value)
                if slot > self.highest_slot:
                    self.highest_slot = slot
            if record.chosen_through > self.chosen_through:
                self.chosen_through = record.chosen_through
        elif type(record) is PromiseRecord:
            check(record.ballot >= self.promised, "promised ballot never goes backwards",
                  promised=self.promised, record=record.ballot)
            self.promised = record.ballot
        else:
            raise TypeError(f"acceptor cannot apply {type(record).__name__}")

    # --- messages --------------------------------------------------------------------------

    def tick(self, out: Output) -> None:
        """Acceptors are passive: nothing happens on a tick."""

    def _raise_promise(self, sender: str, b: Ballot, out: Output) -> bool:
        """The promise rule that Prepare and Recover share: above the promise, promise `b`
        (durably, before any answer); below it, Nack; equal, a retransmission that gets the same
        answer again (ballots are never reused). False when refused."""
        if b > self.promised:
            record = PromiseRecord(b)
            self.apply(record)
            if "promise_in_memory" not in self.bugs:
                out.persist.append(record)
        elif b < self.promised:
            out.send.append((sender, Nack(b, self.promised)))
            return False
        return True

    def _on_prepare(self, sender: str, m: Prepare, out: Output) -> None:
        b = m.ballot
        if not owner_ok(self.proposer_ids, sender, b, out):
            return
        before = self.promised
        if not self._raise_promise(sender, b, out):
            out.event("prepare_refused", ballot=str(b), promised=str(self.promised), peer=sender)
            return
        if b > before:
            out.event("promised", ballot=str(b), peer=sender, from_slot=m.from_slot)
        out.send.append((sender, self._promise(b, m.from_slot)))

    def _on_recover(self, sender: str, m: Recover, out: Output) -> None:
        # A Prepare for [from_slot, to_slot] that ignores the watermark: the same promise rules.
        b = m.ballot
        if not owner_ok(self.proposer_ids, sender, b, out) or not self._raise_promise(sender, b, out):
            return
        votes, reported_through = self._votes(m.from_slot, min(m.to_slot, self.highest_slot))
        out.send.append((sender, Recovered(b, m.nonce, m.from_slot, reported_through, votes)))
        out.event("recover_answered", DEBUG, ballot=str(b), peer=sender, from_slot=m.from_slot, to_slot=m.to_slot)

    def _promise(self, b: Ballot, from_slot: int) -> Promise:
        """Votes from above the watermark (a Prepare need not cover chosen slots) to the highest
        slot, within the reply budget."""
        start = max(from_slot, self.chosen_through + 1)
        votes, reported_through = self._votes(start, self.highest_slot)
        return Promise(b, from_slot, self.chosen_through, self.highest_slot, reported_through, votes)

    def _votes(self, start: int, top: int) -> tuple[tuple[Vote, ...], int]:
        """This acceptor's votes for slots `start..top` that fit the reply budget, and the slot
        they report through (the asker continues from the next one)."""
        votes: list[Vote] = []
        budget = self.reply_bytes_max
        reported = top
        accepted = self.accepted
        for slot in range(start, top + 1):
            got = accepted.get(slot)
            if got is None:
                continue
            cost = got[1].size_bytes() + VOTE_OVERHEAD_BYTES
            if votes and cost > budget:
                reported = slot - 1  # stop at a slot boundary
                break
            budget -= cost
            votes.append(Vote(slot, got[0], got[1]))
        return tuple(votes), max(reported, start - 1)

    def _on_accept(self, sender: str, m: Accept, out: Output) -> None:
        b = m.ballot
        if not owner_ok(self.proposer_ids, sender, b, out):
            return
        if b < self.promised and "accept_below_promise" not in self.bugs:
            out.send.append((sender, Nack(b, self.promised)))
            out.event("accept_refused", DEBUG, ballot=str(b), promised=str(self.promised),
                      peer=sender)
            return
        accepted = self.accepted
        new: list[tuple[int, Value]] = []
        for slot, value in m.entries:
            prev = accepted.get(slot)
            if prev is not None and prev[0] == b:
                # A retransmission: acknowledge again without a new record. A different value
                # under the same ballot would mean a proposer bug: stop rather than choose two.
                check(prev[1] == value, "one value per slot and ballot", slot=slot,
                      ballot=str(b), kept=prev[1].describe(), offered=value.describe())
                continue
            new.append((slot, value))
        if new or b > self.promised:
            record = AcceptRecord(b, m.chosen_through, tuple(new))
            self.apply(record)
            out.persist.append(record)
        elif m.chosen_through > self.chosen_through:
            self.chosen_through = m.chosen_through
        slots = tuple(slot for slot, _ in m.entries)
        accepted = Accepted(b, slots, ())
        out.send.append((sender, accepted))
        if not self.accepts_answered:
            out.event("voting", ballot=str(b), peer=sender, first_slot=slots[0] if slots else None,
                      promised=str(self.promised), highest_slot=self.highest_slot)
        self.accepts_answered += 1
        if slots:
            # Votes only: the learners have the values from the leader's Accept (and fetch
            # them from acceptors when that copy is lost).
            for learner in self.learners:
                out.send.append((learner, accepted))
            out.event("accepted", DEBUG, ballot=str(b), first_slot=slots[0], count=len(slots),
                      new=len(new), peer=sender)

    def _on_heartbeat(self, sender: str, m: Heartbeat, out: Output) -> None:
        # The watermark is an optimisation (smaller Promises), so memory is enough here.
        if m.chosen_through > self.chosen_through:
            self.chosen_through = m.chosen_through

    def _on_fetch(self, sender: str, m: Fetch, out: Output) -> None:
        votes, _ = self._votes(m.from_slot, min(m.to_slot, self.highest_slot, m.from_slot + self.fetch_slots_max - 1))
        out.send.append((sender, Fetched(self.chosen_through, votes)))
        out.event("fetch_served", DEBUG, peer=sender, from_slot=m.from_slot, count=len(votes))

    HANDLERS = {Prepare: _on_prepare, Recover: _on_recover, Accept: _on_accept, Heartbeat: _on_heartbeat,
                Fetch: _on_fetch}

    # --- observation -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "role": "acceptor",
            "state": "voting",
            "promised": str(self.promised),
            "highest_slot": self.highest_slot,
            "chosen_through": self.chosen_through,
            "accepted_slots": len(self.accepted),
            "accepts_answered": self.accepts_answered,
        }
