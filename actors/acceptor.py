"""The acceptor: two promises and one answer (seed 001, P1b and P2b).

It owns the promised ballot and, per slot, the highest-ballot value it accepted. Every change
goes through a record (`PromiseRecord`, `AcceptRecord`) that the shell makes durable before it
sends any reply the record justifies; replay after a crash goes through the same `apply`.
It never sends anything itself and never reads a clock. The two rules a planted bug may break
are methods of their own: `record_promise` (a promise is durable) and `may_accept`.
"""

from __future__ import annotations

from typing import Any

from actors.ballot import ZERO, Ballot
from actors.core import Core, owner_ok
from actors.invariants import InvariantViolation, check
from actors.messages import (
    Accept,
    Accepted,
    Fetch,
    Fetched,
    Nack,
    Prepare,
    Promise,
    Recover,
    Recovered,
    Tick,
    Value,
    Vote,
)
from actors.ready import DEBUG, Ready
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
        self.accepted_ballot_max: Ballot = ZERO  # the highest ballot of any accepted value

    # --- durable state ---------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        """The only place state changes; used live and on replay."""
        if type(record) is AcceptRecord:
            b = record.ballot
            if b is not self.promised and b > self.promised:  # the same object, mostly: skip comparing
                self.promised = b
            if record.entries and b > self.accepted_ballot_max:
                self.accepted_ballot_max = b
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

    # --- the rules ---------------------------------------------------------------------------

    def record_promise(self, b: Ballot, ready: Ready) -> None:
        """Promise `b`: a record that the shell makes durable before any answer leaves."""
        record = PromiseRecord(b)
        self.apply(record)
        ready.persist.append(record)

    def may_accept(self, b: Ballot) -> bool:
        """P2b: accept at or above the promise, never below it."""
        return b >= self.promised

    # --- messages --------------------------------------------------------------------------

    def _on_tick(self, sender: str, m: Tick, ready: Ready) -> None:
        """Acceptors are passive: nothing happens on a tick."""

    def _raise_promise(self, sender: str, b: Ballot, ready: Ready) -> bool:
        """The promise rule that Prepare and Recover share: above the promise, promise `b`
        (durably, before any answer); below it, Nack; equal, a retransmission that gets the same
        answer again (ballots are never reused). False when refused."""
        if b > self.promised:
            self.record_promise(b, ready)
        elif b < self.promised:
            ready.send.append((sender, Nack(b, self.promised)))
            return False
        return True

    def _on_prepare(self, sender: str, m: Prepare, ready: Ready) -> None:
        b = m.ballot
        if not owner_ok(self.proposer_ids, sender, b, ready):
            return
        before = self.promised
        if not self._raise_promise(sender, b, ready):
            ready.event("prepare_refused", ballot=str(b), promised=str(self.promised), peer=sender)
            return
        if b > before:
            ready.event("promised", ballot=str(b), peer=sender, from_slot=m.from_slot)
        ready.send.append((sender, self._promise(b, m.from_slot)))

    def _on_recover(self, sender: str, m: Recover, ready: Ready) -> None:
        # A Prepare for [from_slot, to_slot] that ignores the watermark: the same promise rules.
        b = m.ballot
        if not owner_ok(self.proposer_ids, sender, b, ready) or not self._raise_promise(sender, b, ready):
            return
        votes, reported_through = self._votes(m.from_slot, min(m.to_slot, self.highest_slot))
        ready.send.append((sender, Recovered(b, m.nonce, m.from_slot, reported_through, votes)))
        ready.event("recover_answered", DEBUG, ballot=str(b), peer=sender, from_slot=m.from_slot, to_slot=m.to_slot)

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

    def _on_accept(self, sender: str, m: Accept, ready: Ready) -> None:
        b = m.ballot
        if not owner_ok(self.proposer_ids, sender, b, ready):
            return
        if not self.may_accept(b):
            ready.send.append((sender, Nack(b, self.promised)))
            ready.event("accept_refused", DEBUG, ballot=str(b), promised=str(self.promised),
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
            ready.persist.append(record)
        elif m.chosen_through > self.chosen_through:
            self.chosen_through = m.chosen_through
        slots = tuple(slot for slot, _ in m.entries)
        answer = Accepted(b, slots, ())
        ready.send.append((sender, answer))
        if not self.accepts_answered:
            ready.event("voting", ballot=str(b), peer=sender, first_slot=slots[0] if slots else None,
                        promised=str(self.promised), highest_slot=self.highest_slot)
        self.accepts_answered += 1
        if slots:
            # Votes only: the learners have the values from the leader's Accept (and fetch
            # them from acceptors when that copy is lost).
            for learner in self.learners:
                ready.send.append((learner, answer))
            ready.event("accepted", DEBUG, ballot=str(b), first_slot=slots[0], count=len(slots),
                        new=len(new), peer=sender)

    def _on_fetch(self, sender: str, m: Fetch, ready: Ready) -> None:
        votes, _ = self._votes(m.from_slot, min(m.to_slot, self.highest_slot, m.from_slot + self.fetch_slots_max - 1))
        ready.send.append((sender, Fetched(self.chosen_through, votes)))
        ready.event("fetch_served", DEBUG, peer=sender, from_slot=m.from_slot, count=len(votes))

    HANDLERS = {Prepare: _on_prepare, Recover: _on_recover, Accept: _on_accept, Fetch: _on_fetch, Tick: _on_tick}

    def invariants(self) -> None:
        # Runs after every step: the common case (the same ballot object) costs one `is`.
        top, promised = self.accepted_ballot_max, self.promised
        if top is not promised and top > promised:
            raise InvariantViolation("an accepted ballot is also promised", accepted=str(top), promised=str(promised))

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
