"""The proposer: leader election, Multi-Paxos Phase 1 over all open slots, the steady-state
Phase 2 pipeline, takeover recovery and StartWorking.

Roles: a `follower` waits for the leader's heartbeats; after an election timeout (randomized,
backed off after a lost duel: seeds 001 and 002) it becomes a `candidate` and runs Phase 1 once
for every slot from its first unchosen one, with one ballot. With a majority of Promises it
re-proposes every slot up to the highest slot any of them accepted (the highest-ballot value,
else a no-op: the "maximum commit" rule of seed 001), then writes StartWorking(epoch) and
becomes the `leader`: from then on each client batch costs only Phase 2.

The round is persisted (`RoundRecord`) before the Prepare that uses it, so a restarted proposer
never reuses a ballot. Safety never depends on timing; only progress does.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from actors.ballot import ZERO, Ballot
from actors.bugs import NONE
from actors.core import Core
from actors.messages import (
    COMMANDS,
    NOOP,
    START,
    Accept,
    Accepted,
    Heartbeat,
    Nack,
    Prepare,
    Promise,
    Recover,
    Recovered,
    Redirect,
    Repair,
    Submit,
    Value,
    Vote,
)
from actors.output import DEBUG, INFO, WARNING, Output
from actors.records import Record, RoundRecord

FOLLOWER = "follower"
CANDIDATE = "candidate"
LEADER = "leader"

ACCEPT_ENTRY_OVERHEAD_BYTES = 24


@dataclass(frozen=True, slots=True)
class ProposerParams:
    heartbeat_ticks: int = 5
    election_ticks: int = 30  # base election timeout; the actual one is in [E, 2E) * backoff
    backoff_max: int = 8
    retry_ticks: int = 20  # resend an unanswered Prepare or Accept after this many ticks
    window_slots: int = 64  # slots in flight (pipelining)
    batch_bytes_max: int = 256 * 1024  # client-batch bytes in one slot
    batch_count_max: int = 1024  # client batches in one slot
    message_bytes_max: int = 4 * 1024 * 1024  # budget for one Accept message
    queue_batches_max: int = 4096  # pending client batches before Submit gets "busy"


@dataclass(slots=True)
class InFlight:
    value: Value
    acks: set[str]
    sent_tick: int


class Proposer(Core):
    role = "proposer"

    def __init__(
        self,
        name: str,
        node_id: int,
        proposers: dict[str, int],
        acceptors: list[str],
        learners: list[str],
        params: ProposerParams,
        rng: random.Random,
    ) -> None:
        if proposers.get(name) != node_id:
            raise ValueError(f"proposer {name} must appear in proposers with id {node_id}")
        self.name = name
        self.node_id = node_id
        self.names_by_id = {i: n for n, i in proposers.items()}
        self.peers = [n for n in proposers if n != name]
        self.acceptors = list(acceptors)
        self.learners = list(learners)
        self.majority = len(self.acceptors) // 2 + 1
        self.params = params
        self.rng = rng
        self.verbose = False
        self.bugs = NONE

        self.round = 0  # highest round persisted
        self.role = FOLLOWER
        self.ballot: Ballot = ZERO  # own ballot while candidate or leader
        self.known_ballot: Ballot = ZERO  # highest ballot seen anywhere
        self.leader: str | None = None
        self.ticks = 0
        self.quiet_ticks = 0  # ticks since the leader was last heard
        self.backoff = 1
        self.timeout_ticks = self._draw_timeout()
        self.chosen_through = 0
        self.chosen_above: set[int] = set()
        # candidate
        self.p1_from = 0
        self.p1_ticks = 0
        self.promises: dict[str, Promise] = {}
        # leader (and a candidate recovering in chunks)
        self.next_slot = 0
        self.sw_slot = 0
        self.serving = False
        self.inflight: dict[int, InFlight] = {}
        self.heard: dict[str, int] = {}
        self.led_since = 0
        self.last_heartbeat_tick = 0
        self.queue: deque[tuple[str, bytes]] = deque()
        self.elections = 0
        # Re-confirmation of slots believed chosen that a learner cannot learn (see _on_repair).
        self.repair_from = 0
        self.repair_to = 0
        self.repair_ticks = 0
        self.repair_nonce = 0
        self.repair_answers: dict[str, Recovered] = {}
        self.first_own_slot = 0  # the first slot this leader proposed under its ballot

    # --- durable state ---------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        if type(record) is not RoundRecord:
            raise TypeError(f"proposer cannot apply {type(record).__name__}")
        if "reuse_ballot_after_restart" in self.bugs and self.role == FOLLOWER and not self.ticks:
            return  # replay at start-up: forget every round used before the restart
        if record.round > self.round:
            self.round = record.round

    # --- entry points ----------------------------------------------------------------------

    def tick(self, out: Output) -> None:
        self.ticks += 1
        p = self.params
        if self.role == FOLLOWER:
            self.quiet_ticks += 1
            if self.quiet_ticks >= self.timeout_ticks:
                self._start_election(out, reason="leader_silent" if self.leader else "no_leader")
            return
        if self.role == CANDIDATE:
            self.p1_ticks += 1
            if self.p1_ticks >= self.timeout_ticks:
                # No majority in time (acceptors down or a duel): try a higher ballot, later.
                self.backoff = min(self.backoff * 2, p.backoff_max)
                self._step_down(out, reason="election_timeout", leader=None)
                return
            if self.p1_ticks % p.retry_ticks == 0:
                prepare = Prepare(self.ballot, self.p1_from)
                for acceptor in self.acceptors:
                    if acceptor not in self.promises:
                        out.send.append((acceptor, prepare))
        else:
            if self.ticks - self.last_heartbeat_tick >= p.heartbeat_ticks:
                self._heartbeat(out)
            if self.repair_from:
                self.repair_ticks += 1
                if self.repair_ticks >= p.election_ticks:
                    self.repair_from = 0  # no majority answered; the learner will ask again
            if (self.ticks % p.election_ticks == 0 and self.ticks - self.led_since >= p.election_ticks
                    and not self._quorum_heard()):
                # Check-quorum: a leader cut off from a majority stops heartbeating so that a
                # proposer that can reach the acceptors takes over.
                self._step_down(out, reason="quorum_lost", leader=None)
                return
        self._retransmit(out)
        self.flush(out)

    def campaign(self, out: Output) -> None:
        """Start an election now, as if the election timer fired (scenarios, model checking and
        operators use this; the timer path is `tick`)."""
        self._start_election(out, reason="campaign")

    def flush(self, out: Output) -> None:
        """Turn queued client batches into slots, as many as the window allows. The shell calls
        this once per event-loop turn, so everything that arrived in one turn shares slots and
        messages (batching)."""
        if self.role != LEADER or not self.queue:
            return
        p = self.params
        queue = self.queue
        entries: list[tuple[int, Value]] = []
        message_bytes = 0
        while queue and len(self.inflight) < p.window_slots:
            batches: list[bytes] = []
            size = 0
            while queue and len(batches) < p.batch_count_max:
                blob = queue[0][1]
                if batches and size + len(blob) > p.batch_bytes_max:
                    break
                queue.popleft()
                batches.append(blob)
                size += len(blob)
            value = Value(COMMANDS, self.ballot, tuple(batches))
            slot = self.next_slot
            self.next_slot += 1
            self.inflight[slot] = InFlight(value, set(), self.ticks)
            cost = value.size_bytes() + ACCEPT_ENTRY_OVERHEAD_BYTES
            if entries and message_bytes + cost > p.message_bytes_max:
                self._send_accept(entries, out)
                entries, message_bytes = [], 0
            entries.append((slot, value))
            message_bytes += cost
        if entries:
            self._send_accept(entries, out)
            if self.verbose:
                out.event("slots_proposed", DEBUG, first_slot=entries[0][0], count=len(entries))

    # --- election --------------------------------------------------------------------------

    def _draw_timeout(self) -> int:
        e = self.params.election_ticks
        return (e + self.rng.randrange(e)) * self.backoff

    def next_round(self) -> int:
        """The smallest round that makes our ballot exceed every ballot seen and every round we
        may have used (seed 000: numbers m * n + i, "pick the next number above the highest")."""
        known = self.known_ballot
        above_known = known.round if known.node < self.node_id else known.round + 1
        return max(above_known, self.round + 1)

    def _start_election(self, out: Output, reason: str) -> None:
        new_round = self.next_round()
        record = RoundRecord(new_round)
        self.apply(record)
        out.persist.append(record)  # durable before the Prepare below leaves
        self.ballot = Ballot(new_round, self.node_id)
        self.known_ballot = max(self.known_ballot, self.ballot)
        self.role = CANDIDATE
        self.leader = None
        self.serving = False
        self.first_own_slot = 0
        self.inflight.clear()
        self.promises = {}
        self.p1_from = self.chosen_through + 1
        self.p1_ticks = 0
        self.timeout_ticks = self._draw_timeout()
        self.elections += 1
        out.event("election_started", ballot=str(self.ballot), from_slot=self.p1_from,
                  reason=reason)
        prepare = Prepare(self.ballot, self.p1_from)
        for acceptor in self.acceptors:
            out.send.append((acceptor, prepare))

    def _on_promise(self, sender: str, m: Promise, out: Output) -> None:
        if self.role != CANDIDATE or m.ballot != self.ballot or m.from_slot != self.p1_from:
            return  # stale or duplicate round of Phase 1
        if sender not in self.acceptors:
            return
        self.promises[sender] = m
        if len(self.promises) < self.majority:
            return
        # Iterate in configured order, never over a set: determinism across processes.
        promises = [self.promises[a] for a in self.acceptors if a in self.promises]
        watermark = max([self.chosen_through] + [p.chosen_through for p in promises])
        highest = max(p.highest_slot for p in promises)
        incomplete = [p.reported_through for p in promises if p.reported_through < p.highest_slot]
        through = min(incomplete) if incomplete else highest
        start = max(watermark + 1, self.p1_from)
        best: dict[int, Vote] = {}
        for p in promises:
            for vote in p.votes:
                if start <= vote.slot <= through:
                    seen = best.get(vote.slot)
                    if seen is None or (vote.ballot > seen.ballot and "ignore_promised_values" not in self.bugs):
                        best[vote.slot] = vote
        self._advance_chosen(watermark)
        entries: list[tuple[int, Value]] = []
        reproposed = noops = 0
        if not self.first_own_slot:
            self.first_own_slot = start
        for slot in range(start, through + 1):
            vote = best.get(slot)
            if vote is not None:
                value = vote.value  # keep it whole, epoch included: the ghost rule needs it
                reproposed += 1
            else:
                value = Value(NOOP, self.ballot)
                noops += 1
            entries.append((slot, value))
        if incomplete:
            # The Promises did not fit in one message each: recover what they covered and ask
            # again, under the same ballot, from the next slot.
            self.p1_from = through + 1
            self.promises = {}
            self.p1_ticks = 0
            out.event("phase1_continued", ballot=str(self.ballot), from_slot=self.p1_from)
            self._propose_recovered(entries, out)
            prepare = Prepare(self.ballot, self.p1_from)
            for acceptor in self.acceptors:
                out.send.append((acceptor, prepare))
            return
        self.sw_slot = max(through, watermark, self.p1_from - 1) + 1
        entries.append((self.sw_slot, Value(START, self.ballot)))
        self.next_slot = self.sw_slot + 1
        self.role = LEADER
        self.leader = self.name
        self.led_since = self.ticks
        # The acceptors that just promised count as heard: check-quorum starts from them.
        self.heard = {a: self.ticks for a in self.promises}
        out.event("leader_elected", ballot=str(self.ballot), chosen_through=watermark,
                  reproposed=reproposed, noops=noops, start_working_slot=self.sw_slot)
        self._propose_recovered(entries, out)
        self._heartbeat(out)

    # --- re-confirmation (seed 001: "重确认") ------------------------------------------------

    def _on_repair(self, sender: str, m: Repair, out: Output) -> None:
        """A learner cannot learn slots the leaders consider chosen: the acceptors that chose
        them moved on to different ballots (a later leader re-proposed the same value to some of
        them) or missed them, so no ballot has a majority any more, though the value is fixed.
        Read those slots from a majority under our ballot, as Phase 1 would, and propose the
        highest-ballot value again: then one ballot has a majority, and learners see it."""
        if self.role != LEADER or not self.serving or self.repair_from:
            return
        first = m.from_slot
        # Only slots chosen before this leader's election: those it proposed itself under its
        # ballot are held by a majority under that ballot and can be fetched.
        last = min(m.to_slot, self.chosen_through, self.first_own_slot - 1, first + self.params.window_slots - 1)
        if last < first:
            return
        self.repair_from, self.repair_to = first, last
        self.repair_ticks = 0
        self.repair_nonce += 1
        self.repair_answers = {}
        out.event("repair_started", peer=sender, from_slot=first, to_slot=last, ballot=str(self.ballot))
        recover = Recover(self.ballot, first, last, self.repair_nonce)
        for acceptor in self.acceptors:
            out.send.append((acceptor, recover))

    def _on_recovered(self, sender: str, m: Recovered, out: Output) -> None:
        if (self.role != LEADER or not self.repair_from or m.ballot != self.ballot or m.nonce != self.repair_nonce
                or sender not in self.acceptors):
            return  # not an answer to the re-confirmation under way
        self.repair_answers[sender] = m
        if len(self.repair_answers) < self.majority:
            return
        answers = [self.repair_answers[a] for a in self.acceptors if a in self.repair_answers]
        # An answer that had to stop early covers only up to its reported_through.
        through = min([self.repair_to] + [a.reported_through for a in answers])
        best: dict[int, Vote] = {}
        for a in answers:
            for vote in a.votes:
                seen = best.get(vote.slot)
                if self.repair_from <= vote.slot <= through and (seen is None or vote.ballot > seen.ballot):
                    best[vote.slot] = vote
        entries: list[tuple[int, Value]] = []
        for slot in range(self.repair_from, through + 1):
            if slot in self.inflight:
                continue
            vote = best.get(slot)
            # No value in a majority means nothing was chosen there (quorums intersect): no-op.
            entries.append((slot, vote.value if vote is not None else Value(NOOP, self.ballot)))
        out.event("repair_reproposed", from_slot=self.repair_from, to_slot=through, slots=len(entries),
                  noops=sum(1 for _, v in entries if v.kind == NOOP))
        self.repair_from = 0
        self.repair_answers = {}
        self._propose_recovered(entries, out)

    def _propose_recovered(self, entries: list[tuple[int, Value]], out: Output) -> None:
        if not entries:
            return
        for slot, value in entries:
            self.inflight[slot] = InFlight(value, set(), self.ticks)
        # Split by size: re-proposed values can be large.
        chunk: list[tuple[int, Value]] = []
        size = 0
        for slot, value in entries:
            cost = value.size_bytes() + ACCEPT_ENTRY_OVERHEAD_BYTES
            if chunk and size + cost > self.params.message_bytes_max:
                self._send_accept(chunk, out)
                chunk, size = [], 0
            chunk.append((slot, value))
            size += cost
        self._send_accept(chunk, out)

    def _send_accept(self, entries: list[tuple[int, Value]], out: Output) -> None:
        accept = Accept(self.ballot, self.chosen_through, tuple(entries))
        for acceptor in self.acceptors:
            out.send.append((acceptor, accept))
        # Learners take the values from here (one copy) and only the votes from acceptors.
        for learner in self.learners:
            out.send.append((learner, accept))

    def _heartbeat(self, out: Output) -> None:
        self.last_heartbeat_tick = self.ticks
        beat = Heartbeat(self.ballot, self.chosen_through)
        for peer in self.peers:
            out.send.append((peer, beat))
        for learner in self.learners:
            out.send.append((learner, beat))
        # To acceptors an empty Accept: they answer it, so the leader learns that it still has
        # a quorum (or, by a Nack, that it was deposed) even when no client writes.
        probe = Accept(self.ballot, self.chosen_through, ())
        for acceptor in self.acceptors:
            out.send.append((acceptor, probe))

    def _quorum_heard(self) -> bool:
        horizon = self.ticks - self.params.election_ticks
        return sum(1 for a in self.acceptors if self.heard.get(a, -1) >= horizon) >= self.majority

    # --- phase 2 ---------------------------------------------------------------------------

    def _on_accepted(self, sender: str, m: Accepted, out: Output) -> None:
        if self.role == FOLLOWER or m.ballot != self.ballot or sender not in self.acceptors:
            return
        self.heard[sender] = self.ticks
        inflight = self.inflight
        majority = self.majority
        for slot in m.slots:
            entry = inflight.get(slot)
            if entry is None:
                continue
            entry.acks.add(sender)
            if len(entry.acks) >= majority:
                del inflight[slot]
                self._mark_chosen(slot, entry.value, out)

    def _mark_chosen(self, slot: int, value: Value, out: Output) -> None:
        if slot == self.chosen_through + 1:
            self._advance_chosen(slot)
        elif slot > self.chosen_through:
            self.chosen_above.add(slot)
        if self.verbose:
            out.event("slot_chosen", DEBUG, slot=slot, value=value.describe())
        if slot == self.sw_slot and self.role == LEADER and not self.serving:
            self.serving = True
            self.backoff = 1
            out.event("leader_serving", ballot=str(self.ballot), start_working_slot=slot)

    def _advance_chosen(self, through: int) -> None:
        if through > self.chosen_through:
            self.chosen_through = through
        above = self.chosen_above
        while self.chosen_through + 1 in above:
            self.chosen_through += 1
            above.discard(self.chosen_through)
        if above and min(above) <= self.chosen_through:
            self.chosen_above = {s for s in above if s > self.chosen_through}

    def _retransmit(self, out: Output) -> None:
        if not self.inflight:
            return
        horizon = self.ticks - self.params.retry_ticks
        missing: dict[str, list[tuple[int, Value]]] = {}
        for slot, entry in self.inflight.items():
            if entry.sent_tick > horizon:
                continue
            entry.sent_tick = self.ticks
            for acceptor in self.acceptors:
                if acceptor not in entry.acks:
                    missing.setdefault(acceptor, []).append((slot, entry.value))
        for acceptor in self.acceptors:
            entries = missing.get(acceptor)
            if not entries:
                continue
            size = 0
            chunk: list[tuple[int, Value]] = []
            for slot, value in entries:
                cost = value.size_bytes() + ACCEPT_ENTRY_OVERHEAD_BYTES
                if chunk and size + cost > self.params.message_bytes_max:
                    out.send.append((acceptor, Accept(self.ballot, self.chosen_through,
                                                      tuple(chunk))))
                    chunk, size = [], 0
                chunk.append((slot, value))
                size += cost
            out.send.append((acceptor, Accept(self.ballot, self.chosen_through, tuple(chunk))))
        if missing:
            out.event("accept_retransmitted", DEBUG, acceptors=len(missing))

    # --- being overtaken -------------------------------------------------------------------

    def _on_nack(self, sender: str, m: Nack, out: Output) -> None:
        if m.promised > self.known_ballot:
            self.known_ballot = m.promised
        if self.role == FOLLOWER or m.ballot != self.ballot or m.promised <= self.ballot:
            return
        # Preempted: someone runs a higher ballot. Back off so two proposers do not keep
        # preempting each other (the livelock of seeds 001 and 002).
        self.backoff = min(self.backoff * 2, self.params.backoff_max)
        out.event("ballot_preempted", ballot=str(self.ballot), promised=str(m.promised),
                  peer=sender)
        self._step_down(out, reason="preempted", leader=self.names_by_id.get(m.promised.node))

    def _on_heartbeat(self, sender: str, m: Heartbeat, out: Output) -> None:
        if self.names_by_id.get(m.ballot.node) != sender:
            out.event("message_rejected", WARNING, peer=sender, reason="ballot_not_owned_by_sender")
            return
        if m.chosen_through > self.chosen_through:
            self._advance_chosen(m.chosen_through)
        if m.ballot < self.known_ballot:
            return  # a deposed leader that has not noticed yet
        self.known_ballot = m.ballot
        if self.role != FOLLOWER and m.ballot > self.ballot:
            self._step_down(out, reason="higher_leader", leader=sender)
        if self.role == FOLLOWER:
            if self.leader != sender:
                out.event("leader_changed", leader=sender, ballot=str(m.ballot))
            self.leader = sender
            self.quiet_ticks = 0
            self.backoff = 1

    def _step_down(self, out: Output, reason: str, leader: str | None) -> None:
        was = self.role
        self.role = FOLLOWER
        self.serving = False
        self.leader = leader
        self.quiet_ticks = 0
        self.inflight.clear()
        self.promises = {}
        self.repair_from = 0
        self.timeout_ticks = self._draw_timeout()
        out.event("stepped_down", INFO, was=was, ballot=str(self.ballot), reason=reason,
                  leader=leader)
        # Queued client batches were never proposed: tell their clients to go elsewhere.
        if self.queue:
            told: set[str] = set()
            redirect = Redirect(leader or "", "stepped_down")
            for client, _ in self.queue:
                if client not in told:
                    told.add(client)
                    out.send.append((client, redirect))
            self.queue.clear()

    # --- clients ---------------------------------------------------------------------------

    def _on_submit(self, sender: str, m: Submit, out: Output) -> None:
        p = self.params
        if self.role == FOLLOWER:
            fresh = self.leader is not None and self.quiet_ticks < p.election_ticks
            out.send.append((sender, Redirect(self.leader if fresh else "", "not_leader")))
            return
        if len(m.batch) > p.batch_bytes_max:
            out.send.append((sender, Redirect(self.name, "too_large")))
            out.event("submit_rejected", WARNING, peer=sender, reason="too_large",
                      bytes=len(m.batch))
            return
        if len(self.queue) >= p.queue_batches_max:
            # Back-pressure: the window and the queue are full; the client waits and retries.
            out.send.append((sender, Redirect(self.name, "busy")))
            return
        self.queue.append((sender, m.batch))

    HANDLERS = {Promise: _on_promise, Accepted: _on_accepted, Nack: _on_nack, Heartbeat: _on_heartbeat,
                Submit: _on_submit, Repair: _on_repair, Recovered: _on_recovered}

    # --- observation -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "role": "proposer",
            "state": self.role,
            "serving": self.serving,
            "ballot": str(self.ballot),
            "known_ballot": str(self.known_ballot),
            "leader": self.leader,
            "chosen_through": self.chosen_through,
            "next_slot": self.next_slot,
            "inflight": len(self.inflight),
            "queued": len(self.queue),
            "round": self.round,
            "elections": self.elections,
        }
