"""The acceptor: two promises and one answer (seed 001, P1b and P2b).

It owns the promised ballot and, per slot, the highest-ballot value it accepted. Every change
goes through a record (`PromiseRecord`, `AcceptRecord`) that the shell makes durable before it
sends any reply the record justifies; replay after a crash goes through the same `apply`.
It never sends anything itself and never reads a clock. The rules a planted bug may break
are methods of their own: `record_promise` (a promise is durable), `may_accept` and
`compaction_point`.

Compaction: a learner offers each snapshot it takes; the acceptor fetches it (once the leaders'
watermark says its slot is chosen), and only when the file is durable here does it record the
`SnapshotRecord` and forget every value at or below that slot, in memory and, by a rewrite, on
disk. So every chosen value stays on a majority of acceptors as a value or inside a durable
snapshot, and the chosen watermark it reports never falls below what it compacted: no leader
re-proposes or no-ops a compacted slot.

Rebuild (after losing its file; Paxos Made Live, section 5.1, adapted to Multi-Paxos): the
acceptor comes back without a vote. It asks the other acceptors what they promised, until more
than half of the acceptors but itself answered, and promises the highest of those, P: every
ballot it ever voted under had a majority's promise, so none is above P. It then waits, giving
no vote, for an Accept under a ballot above P: only a leader that finished Phase 1 without it,
after it lost its file, can send one, and that Phase 1 saw every value its forgotten votes helped
choose (any majority meets the acceptors that answered it). If the leader it hears is at or
below P, it promises a ballot of nobody's just above P and refuses that leader with it, so a new
election comes. Once rejoined it votes again, and everything up to that leader's watermark (its
floor) it treats as compacted: it vouches for nothing there, and a leader re-reads such slots
from the acceptors that can (proposer.py, re-confirmation).

Membership (actors/membership.py): an acceptor votes for whoever owns the ballot, whatever the
slot's membership (a vote of a non-member counts nowhere). It keeps the newest membership
history a leader's Accept brought (`MembersRecord`, durable before the AcceptRecord whose
watermark it covers), reports it in every Promise, and sends its votes to the learners of every
membership it knows.

Rebuild across memberships: its forgotten votes and promises counted only in memberships that
name it, and each such membership's quorums are what the argument above needs to meet. So the
probe must be answered, for every membership that names it and may still govern a slot above
the leaders' watermark it heard (`rebuild_quorums`), by more than half of that membership but
itself; the bootstrap one (the configured acceptors) is one of them only while it may still
govern such a slot, when `alpha` is known (0: unknown, and then every membership that names it
counts). While rebuilding it takes the histories leaders' Accepts bring (a wiped acceptor knows
no change but from them), and notes the membership values their entries carry (a change still
pending at that leader); a membership learned so, before it rejoined, sends it back to probing.
With no known membership that names it (an added acceptor wiped before it heard a history), it
waits.

Fast mode (actors/fast.py): a leader's `Any` opens the slots from its `from_slot` under its fast
ballot; a client's `FastAccept` then goes into this acceptor's next free slot (above everything
it voted for, the watermark and `from_slot`), durably like any vote, and the vote, with its
value, goes to the learners and the leader (and, with uncoordinated recovery, to the other
acceptors). With uncoordinated recovery, an acceptor that sees a collision (votes of a majority
that no longer let any value reach a fast quorum) votes by itself in the slot's recovery round
for the value `actors.fast.choose` keeps: every acceptor that sees the same votes picks the same.
The `Any` is not durable: after a restart the acceptor refuses FastAccepts until the leader's
next heartbeat repeats it, and its votes on disk keep it from ever voting twice in one slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.ballot import ZERO, Ballot
from actors.bounds import DEFAULT_BOUNDS, WireBounds, round_beyond, slot_beyond
from actors.core import Core, owner_ok, reject
from actors.fast import CLASSIC_RULES, UNCOORDINATED, FastRules, choose, classic_quorum, collided, fast_quorum
from actors.invariants import InvariantViolation, check
from actors.lease import Grant
from actors.membership import BadMembership, History, Membership
from actors.membership import decode as decode_membership
from actors.messages import (
    COMMANDS,
    MEMBERSHIP,
    Accept,
    Accepted,
    Any_,
    FastAccept,
    Fetch,
    Fetched,
    LeaseGranted,
    LeaseRenew,
    Nack,
    Prepare,
    Probe,
    Probed,
    Promise,
    Recover,
    Recovered,
    Redirect,
    SnapshotInstalled,
    SnapshotOffer,
    Tick,
    Value,
    Vote,
    chunked,
)
from actors.ready import DEBUG, INFO, Compact, FetchSnapshot, Ready
from actors.records import AcceptRecord, MembersRecord, PromiseRecord, RebuildRecord, Record, SnapshotRecord

CHECKPOINT_RECORD_BYTES = 1 << 20

VOTE_OVERHEAD_BYTES = 32


@dataclass(slots=True)
class Rebuild:
    """A rebuilding acceptor's progress: the answers to its Probe, then the promise it took."""

    answers: dict[str, Probed] = field(default_factory=dict)
    floor_ballot: Ballot | None = None  # the highest promise of those answers, once enough came
    ticks: int = 0
    # Membership values seen in leaders' Accepts while rebuilding (maybe never chosen): each that
    # names this acceptor needs answers too.
    heard: list[Membership] = field(default_factory=list)


class Acceptor(Core):
    role = "acceptor"

    def __init__(
        self,
        name: str,
        proposer_ids: dict[str, int],
        learners: list[str],
        reply_bytes_max: int,
        fetch_slots_max: int = 4096,
        acceptors: list[str] | None = None,
        probe_ticks: int = 10,
        bounds: WireBounds = DEFAULT_BOUNDS,
        alpha: int = 0,
        fast: FastRules = CLASSIC_RULES,
        batch_bytes_max: int = 1024 * 1024,
        fast_window_slots: int = 4096,
        lease_ticks: int = 0,
    ) -> None:
        self.name = name
        self.bounds = bounds
        self.bootstrap_acceptors = list(acceptors or [])
        self.others = [a for a in self.bootstrap_acceptors if a != name]
        self.alpha = alpha  # the alpha rule's (0: not configured here; rebuild then counts every membership)
        self.probe_ticks = probe_ticks
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
        self.compacted_through = 0  # no values are held at or below this slot
        self.snapshot: SnapshotRecord | None = None  # the durable snapshot it keeps and serves
        self.offer: tuple[str, SnapshotOffer] | None = None  # waiting for the watermark to pass it
        self.fetching = 0  # the slot of a snapshot being fetched
        self.rebuild: Rebuild | None = None  # set while it must not vote
        self.history = History(Membership((), (), ()), 1)  # only its changes matter here
        self.fast = fast
        self.batch_bytes_max = batch_bytes_max
        self.fast_window_slots = fast_window_slots  # open slots ahead of the watermark it takes
        self.any: Any_ | None = None  # the leader's open fast round, as far as we heard
        self.peer_votes: dict[int, dict[str, Value]] = {}  # uncoordinated recovery: fast-round votes
        self.fast_accepts = 0
        self.fast_refused = 0
        self.recoveries = 0
        # Leader leases (actors/lease.py): 0 grants none. Ticks count from this process's start.
        self.lease_ticks = lease_ticks
        self.ticks = 0
        self.grant = Grant()

    # --- durable state ---------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        """The only place state changes; used live and on replay."""
        if type(record) is AcceptRecord:
            b = record.ballot
            # A recovery round's vote promises only its leader's ballot: the fast round goes on.
            lb = b if not b.sub else b.base()
            if lb is not self.promised and lb > self.promised:  # the same object, mostly: skip comparing
                self.promised = lb
            if record.entries and lb > self.accepted_ballot_max:
                self.accepted_ballot_max = lb
            accepted = self.accepted
            for slot, value in record.entries:
                accepted[slot] = (b, value)
                if slot > self.highest_slot:
                    self.highest_slot = slot
            # Never above the highest slot it ever accepted: a watermark it cannot justify would
            # be reported in every Promise and Fetched after it (the live path already records it
            # clamped; this also heals a file written before the clamp).
            through = min(record.chosen_through, self.highest_slot)
            if through > self.chosen_through:
                self.chosen_through = through
        elif type(record) is PromiseRecord:
            check(record.ballot >= self.promised, "promised ballot never goes backwards",
                  promised=self.promised, record=record.ballot)
            self.promised = record.ballot
        elif type(record) is SnapshotRecord:
            self.snapshot = record
            self._forget_through(record.slot)
        elif type(record) is MembersRecord:
            if self.history.merge(record.members):
                for m in self.history.all_members():
                    for n in m.learner_names:
                        if n not in self.learners:
                            self.learners.append(n)
                    for n, i in m.proposer_ids.items():
                        self.proposer_ids.setdefault(n, i)  # a new proposer's ballots are its own
        elif type(record) is RebuildRecord:
            if record.done:
                self.rebuild = None
                self._forget_through(record.floor)
            else:
                self.rebuild = Rebuild()
        else:
            raise TypeError(f"acceptor cannot apply {type(record).__name__}")

    def _forget_through(self, slot: int) -> None:
        if slot <= self.compacted_through:
            return
        self.compacted_through = slot
        self.chosen_through = max(self.chosen_through, slot)
        self.highest_slot = max(self.highest_slot, slot)
        accepted = self.accepted
        for s in [s for s in accepted if s <= slot]:
            del accepted[s]

    def checkpoint(self) -> list[Record]:
        """Records that rebuild exactly this acceptor's durable state: what a compacted file
        holds (runtime/wal.py rewrites the file to them)."""
        out: list[Record] = []
        if self.rebuild is not None:
            out.append(RebuildRecord(False))
        if self.snapshot is not None:
            out.append(self.snapshot)
        if self.compacted_through > (self.snapshot.slot if self.snapshot is not None else 0):
            out.append(RebuildRecord(True, self.compacted_through))
        if self.promised != ZERO:
            out.append(PromiseRecord(self.promised))
        if self.history.changes:
            out.append(MembersRecord(self.history.encode()))
        by_ballot: dict[Ballot, list[tuple[int, Value]]] = {}
        for slot in sorted(self.accepted):
            b, value = self.accepted[slot]
            by_ballot.setdefault(b, []).append((slot, value))
        for b in sorted(by_ballot):
            # Records of about a megabyte: the shell encodes them a piece at a time, next to a
            # serving event loop (runtime/actor.py compacts on a worker thread).
            out.extend(AcceptRecord(b, self.chosen_through, entries)
                       for entries in chunked(by_ballot[b], CHECKPOINT_RECORD_BYTES))
        if not by_ballot and self.chosen_through > self.compacted_through:
            out.append(AcceptRecord(self.promised, self.chosen_through, ()))
        return out

    # --- the rules ---------------------------------------------------------------------------

    def record_promise(self, b: Ballot, ready: Ready) -> None:
        """Promise `b`: a record that the shell makes durable before any answer leaves."""
        record = PromiseRecord(b)
        self.apply(record)
        ready.persist.append(record)

    def may_accept(self, b: Ballot) -> bool:
        """P2b: accept at or above the promise, never below it."""
        return b >= self.promised

    def compaction_point(self, snapshot: SnapshotRecord) -> int:
        """Forget values only as far as the durable snapshot holds their effect."""
        return snapshot.slot

    # --- bounds on what the wire says (actors/bounds.py) -------------------------------------

    def known_slot(self) -> int:
        """The highest slot this acceptor can vouch exists: what it accepted or compacted, and,
        while rebuilding, what the acceptors that answered its probe hold."""
        known = max(self.highest_slot, self.chosen_through, self.compacted_through)
        rb = self.rebuild
        if rb is not None and rb.answers:
            known = max(known, max(max(a.highest_slot, a.chosen_through) for a in rb.answers.values()))
        return known

    def _round_ok(self, sender: str, m: Prepare | Accept | Recover | Any_ | LeaseRenew, ready: Ready) -> bool:
        """A ballot no further above our promise than a legit proposer's rounds ever grow (one
        per election above the highest it heard of): a forged round near the ceiling would end
        every election for good."""
        why = round_beyond(m.ballot, self.promised.round, self.bounds)
        if why is None:
            return True
        reject(ready, sender, m, why, ballot=str(m.ballot), promised=str(self.promised))
        return False

    def _accept_ok(self, sender: str, m: Accept, ready: Ready) -> bool:
        """Slots within the horizon of what we know and of the leader's own watermark: an Accept
        for a far-future slot would raise `highest_slot` durably, and the next leader would fill
        every slot below it with no-ops."""
        known = self.known_slot()
        bounds = self.bounds
        ahead = bounds.slots_ahead_max
        leader = m.chosen_through + ahead
        for slot, _ in m.entries:
            why = slot_beyond(slot, known, bounds) or ("slot_beyond_leader_window" if slot > leader else None)
            if why:
                reject(ready, sender, m, why, slot=slot, known_slot=known, chosen_through=m.chosen_through)
                return False
        return True

    def _justified(self, chosen_through: int) -> int:
        """The leader's watermark as far as we can justify it: never above the highest slot we
        accepted before this message. Lower is conservative: a Promise then reports more votes,
        a snapshot waits longer to be fetched."""
        return min(chosen_through, max(self.highest_slot, self.chosen_through))

    # --- messages --------------------------------------------------------------------------

    def _on_tick(self, sender: str, m: Tick, ready: Ready) -> None:
        """Acceptors are passive; only a rebuilding one asks the others, now and then."""
        self.ticks += 1
        rb = self.rebuild
        if rb is not None and rb.floor_ballot is None:
            if rb.ticks % self.probe_ticks == 0:
                quorums = self.rebuild_quorums()
                if quorums:
                    self._floor(ready)  # the watermark may have retired a membership since
                    if rb.floor_ballot is not None:
                        return
                asked: list[str] = []
                for names in quorums or [self.bootstrap_acceptors]:
                    for other in names:
                        if other != self.name and other not in rb.answers and other not in asked:
                            asked.append(other)
                            ready.send.append((other, Probe()))
            rb.ticks += 1

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
        if not owner_ok(self.proposer_ids, sender, b, ready, m) or not self._round_ok(sender, m, ready):
            return
        if self.refuses_for_lease(sender, b, ready):
            return
        if self.rebuild is not None:
            if b <= self.promised:
                ready.send.append((sender, Nack(b, self.promised)))  # a refusal vouches for nothing
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
        if (not owner_ok(self.proposer_ids, sender, b, ready, m) or not self._round_ok(sender, m, ready)
                or self._silent(sender, m, ready) or self.refuses_for_lease(sender, b, ready)
                or not self._raise_promise(sender, b, ready)):
            return
        snap = self.snapshot.slot if self.snapshot is not None else 0
        top = min(m.to_slot, self.highest_slot)
        votes, reported_through = self._votes(max(m.from_slot, snap + 1), top)
        if reported_through >= top:
            # Above its highest slot it holds no vote at all: it answered the whole range (else a
            # leader takes the answer as cut short there, and re-confirms nothing above it).
            reported_through = max(reported_through, m.to_slot)
        ready.send.append((sender, Recovered(b, m.nonce, m.from_slot, max(reported_through, snap), votes,
                                             self.compacted_through, snap)))
        ready.event("recover_answered", DEBUG, ballot=str(b), peer=sender, from_slot=m.from_slot, to_slot=m.to_slot)

    def _promise(self, b: Ballot, from_slot: int) -> Promise:
        """Votes from above the watermark (a Prepare need not cover chosen slots) to the highest
        slot, within the reply budget. The watermark is never below what was compacted."""
        start = max(from_slot, self.chosen_through + 1)
        votes, reported_through = self._votes(start, self.highest_slot)
        return Promise(b, from_slot, self.chosen_through, self.highest_slot, reported_through, votes,
                       self.history.encode())

    def _votes(self, start: int, top: int) -> tuple[tuple[Vote, ...], int]:
        """This acceptor's votes for slots `start..top` that fit the reply budget, and the slot
        they report through (the asker continues from the next one)."""
        votes: list[Vote] = []
        budget = self.reply_bytes_max
        reported = top
        accepted = self.accepted
        # Never a loop over a range whose length comes from the wire (a Recover's to_slot, a
        # highest slot a forgery raised): over what is stored, when that is shorter.
        if top - start < 2 * len(accepted) + 64:
            slots: Any = range(start, top + 1)
        else:
            slots = sorted(s for s in accepted if start <= s <= top)
        for slot in slots:
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
        if (not owner_ok(self.proposer_ids, sender, b, ready, m) or not self._round_ok(sender, m, ready)
                or not self._accept_ok(sender, m, ready)):
            return
        if m.members and m.members != self.history.encode() and not self._members_ok(sender, m, ready):
            return
        if self.rebuild is not None:
            # The leader's watermark becomes our rebuild floor: safe only high (we vouch for
            # nothing below it), but reported as our watermark, so within what we can vouch exists.
            why = slot_beyond(m.chosen_through, self.known_slot(), self.bounds)
            if why:
                reject(ready, sender, m, why, chosen_through=m.chosen_through, known_slot=self.known_slot())
                return
            self._learn_while_rebuilding(m, ready)
            if self.rebuild is not None and not self._rebuilt_by(sender, b, m.chosen_through, ready):
                if m.chosen_through > self.chosen_through:
                    self.chosen_through = m.chosen_through  # a fact from the leader; no vote involved
                return
        if not self.may_accept(b):
            ready.send.append((sender, Nack(b, self.promised)))
            ready.event("accept_refused", DEBUG, ballot=str(b), promised=str(self.promised),
                        peer=sender)
            return
        accepted = self.accepted
        new: list[tuple[int, Value]] = []
        covered = self.snapshot.slot if self.snapshot is not None else 0
        for slot, value in m.entries:
            if slot <= covered:
                continue  # chosen, and inside the snapshot: acknowledged, nothing to keep
            prev = accepted.get(slot)
            if prev is not None and prev[0] > b:
                # Only a recovery round's vote sits above the promise: never go back below it.
                reject(ready, sender, m, "below_recovery_vote", slot=slot, ballot=str(b), voted=str(prev[0]))
                return
            if prev is not None and prev[0] == b:
                # A retransmission: acknowledge again without a new record. A different value
                # under the same ballot is a forgery (or a proposer bug): keep the first, take
                # nothing of this message and acknowledge none of it, so two are never chosen.
                if prev[1] != value:
                    reject(ready, sender, m, "conflicting_value", slot=slot, ballot=str(b),
                           kept=prev[1].describe(), offered=value.describe())
                    return
                continue
            new.append((slot, value))
        through = self._justified(m.chosen_through)
        if m.members and m.members != self.history.encode():
            # The history first: it covers the watermark the AcceptRecord below keeps.
            record_m = MembersRecord(m.members)
            before = len(self.history.changes)
            self.apply(record_m)
            if len(self.history.changes) != before:
                ready.persist.append(MembersRecord(self.history.encode()))
        if new or b > self.promised:
            record = AcceptRecord(b, through, tuple(new))
            self.apply(record)
            ready.persist.append(record)
        elif through > self.chosen_through:
            self.chosen_through = through
        if self.offer is not None and self.offer[1].slot <= self.chosen_through:
            self._fetch_offer(ready)
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

    def _members_ok(self, sender: str, m: Accept, ready: Ready) -> bool:
        try:
            self.history.copy().merge(m.members)
        except BadMembership as exc:
            reject(ready, sender, m, "bad_members", detail=str(exc)[:80])
            return False
        return True

    def _on_fetch(self, sender: str, m: Fetch, ready: Ready) -> None:
        if self._silent(sender, m, ready):
            return
        # Values it holds below its rebuild floor were accepted since, under a newer ballot than
        # any it forgot: they are as good as any. Only what its snapshot covers is not held.
        first = max(m.from_slot, (self.snapshot.slot if self.snapshot is not None else 0) + 1)
        votes, _ = self._votes(first, min(m.to_slot, self.highest_slot, first + self.fetch_slots_max - 1))
        snap = self.snapshot
        ready.send.append((sender, Fetched(self.chosen_through, votes, self.compacted_through,
                                           snap.slot if snap else 0, snap.size_bytes if snap else 0,
                                           snap.crc if snap else 0)))
        ready.event("fetch_served", DEBUG, peer=sender, from_slot=m.from_slot, count=len(votes))

    # --- leader leases (actors/lease.py) ---------------------------------------------------

    def refuses_for_lease(self, sender: str, b: Ballot, ready: Ready) -> bool:
        """While a grant to another proposer runs, or for `lease_ticks` after this process started
        (it forgot the grants it made before), a Prepare or Recover that would raise the promise
        is not taken: silence (the candidate keeps its ballot and retries; see actors/lease.py)."""
        if not self.lease_ticks or b <= self.promised:
            return False
        g = self.grant
        if g.holder == sender or (g.until <= self.ticks and self.ticks >= self.lease_ticks):
            return False
        ready.event("prepare_refused_leased", DEBUG, ballot=str(b), peer=sender, holder=g.holder or "(restarted)",
                    ticks_left=max(g.until, self.lease_ticks) - self.ticks)
        return True

    def grants_lease(self, sender: str, b: Ballot) -> None:
        """The rule a planted bug may break: grant the owner of our promise `lease_ticks` of our ticks."""
        self.grant = Grant(sender, b, self.ticks + self.lease_ticks)

    def _on_lease_renew(self, sender: str, m: LeaseRenew, ready: Ready) -> None:
        b = m.ballot
        if not owner_ok(self.proposer_ids, sender, b, ready, m) or not self._round_ok(sender, m, ready):
            return
        if self.rebuild is not None:
            return  # it votes on nothing: it vouches for no leader either
        if b < self.promised:
            ready.send.append((sender, Nack(b, self.promised)))
            return
        if b != self.promised:
            return  # not promised yet (its next Accept raises the promise; the next round counts)
        if self.lease_ticks:
            self.grants_lease(sender, b)
        ready.send.append((sender, LeaseGranted(b, m.round, self.highest_slot)))

    # --- probes and rebuilding -------------------------------------------------------------

    def _silent(self, sender: str, m: Prepare | Recover | Fetch | Probe, ready: Ready) -> bool:
        """A rebuilding acceptor answers nothing that would count as a vote or vouch for a value."""
        if self.rebuild is None:
            return False
        ready.event("ignored_while_rebuilding", DEBUG, peer=sender, type=m.TYPE)
        return True

    def _on_probe(self, sender: str, m: Probe, ready: Ready) -> None:
        if not self._silent(sender, m, ready):
            ready.send.append((sender, Probed(self.promised, self.highest_slot, self.chosen_through,
                                              self.history.encode())))

    def rebuild_quorums(self) -> list[list[str]]:
        """The acceptors of every membership whose quorums a rebuild must meet: those that name
        this acceptor (its votes and promises counted nowhere else) and may still govern a slot
        above the watermark it heard (below it every slot is chosen, and it will vouch for none of
        them: see `_rejoin`). Empty: it knows no such membership yet."""
        rb = self.rebuild
        chain: list[tuple[int, list[str]]] = [(0, self.bootstrap_acceptors)]
        chain += [(c, m.acceptor_names) for c, m in self.history.changes]
        out: list[list[str]] = []
        for i, (_, names) in enumerate(chain):
            if self.alpha and i + 1 < len(chain) and chain[i + 1][0] + self.alpha <= self.chosen_through + 1:
                continue  # the next change took effect at or below the watermark
            if self.name in names and names not in out:
                out.append(names)
        for m in rb.heard if rb is not None else ():
            names = m.acceptor_names
            if self.name in names and names not in out:
                out.append(names)
        return out

    def _rebuild_acceptor(self, sender: str) -> bool:
        """Whether a Probed from `sender` may count: an acceptor of a membership we know of."""
        if sender == self.name:
            return False
        if sender in self.bootstrap_acceptors or any(sender in m.acceptor_names for m in self.history.all_members()):
            return True
        rb = self.rebuild
        return rb is not None and any(sender in m.acceptor_names for m in rb.heard)

    def _on_probed(self, sender: str, m: Probed, ready: Ready) -> None:
        rb = self.rebuild
        if rb is None or not self._rebuild_acceptor(sender):
            return
        rb.answers[sender] = m
        if rb.floor_ballot is None:
            self._floor(ready)

    def _floor(self, ready: Ready) -> None:
        """Once enough answered (see `rebuild_quorums`), promise the highest ballot they report."""
        rb = self.rebuild
        assert rb is not None
        quorums = self.rebuild_quorums()
        if not quorums:
            return
        counted: dict[str, Probed] = {}
        for names in quorums:
            # Enough others that every majority of this membership meets them outside this one.
            got = [a for a in names if a != self.name and a in rb.answers]
            if len(got) < len(names) - len(names) // 2:
                return
            counted.update((a, rb.answers[a]) for a in got)
        top = max(a.promised for a in counted.values())
        if top > self.promised:
            self.record_promise(top, ready)
        rb.floor_ballot = self.promised
        ready.event("rebuild_promised", promised=str(self.promised), answers=len(counted))
        if rb.floor_ballot == ZERO:
            # Nobody ever promised anything: no Accept was ever sent, so it forgot no vote.
            self._rejoin(max(a.highest_slot for a in counted.values()), ready, "no promise anywhere")

    def _learn_while_rebuilding(self, m: Accept, ready: Ready) -> None:
        """A rebuilding acceptor takes the leader's history (facts) and notes the membership
        values of its entries; one that names it and was not counted sends it back to probing."""
        rb = self.rebuild
        assert rb is not None
        before = self.rebuild_quorums()
        if m.members and m.members != self.history.encode():
            grew = len(self.history.changes)
            self.apply(MembersRecord(m.members))
            if len(self.history.changes) != grew:
                ready.persist.append(MembersRecord(self.history.encode()))
        for _, value in m.entries:
            if value.kind == MEMBERSHIP:
                try:
                    heard = decode_membership(value.batches[0])
                except BadMembership:
                    continue
                if heard not in rb.heard:
                    rb.heard.append(heard)
        if rb.floor_ballot is not None and any(q not in before for q in self.rebuild_quorums()):
            ready.event("rebuild_reprobing", memberships=len(self.rebuild_quorums()))
            rb.floor_ballot = None
            rb.ticks = 0
        if rb.floor_ballot is None:
            self._floor(ready)

    def _rebuilt_by(self, sender: str, b: Ballot, chosen_through: int, ready: Ready) -> bool:
        """An Accept under a ballot above the promise taken while rebuilding comes from a leader
        that finished Phase 1 without us: from now on we may vote."""
        rb = self.rebuild
        assert rb is not None
        if rb.floor_ballot is None:
            return False
        if b.base() <= rb.floor_ballot:
            # A leader that may count votes we forgot: make way for one that cannot. (A fast
            # ballot's recovery round is above the ballot but no new leader's: its Phase 1 is
            # the fast round's votes, ours among them, from before we lost them; taken for one,
            # a wiped acceptor rejoined on it and a later leader chose a second value, fast seed
            # 2311.)
            above = Ballot(rb.floor_ballot.round + 1, 0)
            if self.promised < above:
                self.record_promise(above, ready)
            ready.send.append((sender, Nack(b, self.promised)))
            return False
        self._rejoin(chosen_through, ready, f"an Accept under {b}")
        return True

    def _rejoin(self, reach: int, ready: Ready, why: str) -> None:
        floor = max(reach, self.chosen_through, self.compacted_through)
        record = RebuildRecord(True, floor)
        self.apply(record)
        ready.persist.append(record)
        ready.event("rebuild_done", INFO, floor=floor, promised=str(self.promised), by=why)

    # --- snapshots -------------------------------------------------------------------------

    def _on_snapshot_offer(self, sender: str, m: SnapshotOffer, ready: Ready) -> None:
        have = self.snapshot.slot if self.snapshot is not None else 0
        if sender not in self.learners or m.slot <= have or self.fetching:
            return
        self.offer = (sender, m)
        if m.slot <= self.chosen_through:
            self._fetch_offer(ready)

    def _fetch_offer(self, ready: Ready) -> None:
        assert self.offer is not None
        source, m = self.offer
        self.offer = None
        if self.fetching:
            return
        self.fetching = m.slot
        ready.actions.append(FetchSnapshot(source, m.slot, m.size_bytes, m.crc))

    def _on_snapshot_installed(self, sender: str, m: SnapshotInstalled, ready: Ready) -> None:
        self.fetching = 0
        if not m.ok or (self.snapshot is not None and m.slot <= self.snapshot.slot):
            return
        self.compact(SnapshotRecord(m.slot, m.size_bytes, m.crc), ready)

    def compact(self, record: SnapshotRecord, ready: Ready) -> None:
        """The snapshot is durable here: record it, forget what it covers, rewrite the file."""
        held = len(self.accepted)
        self.apply(record)
        ready.persist.append(record)
        through = self.compaction_point(record)
        if through > record.slot:
            rebuilt = RebuildRecord(True, through)  # (only a planted bug goes past the snapshot)
            self.apply(rebuilt)
            ready.persist.append(rebuilt)
        ready.actions.append(Compact(record.slot))
        ready.event("log_compacted", slot=record.slot, bytes=record.size_bytes,
                    values_dropped=held - len(self.accepted), values_kept=len(self.accepted))

    # --- fast rounds (actors/fast.py) -------------------------------------------------------

    def _owner(self, b: Ballot) -> str:
        return next((n for n, i in self.proposer_ids.items() if i == b.node), "")

    def _on_any(self, sender: str, m: Any_, ready: Ready) -> None:
        b = m.ballot
        if not self.fast.enabled:
            reject(ready, sender, m, "not_fast_mode")
            return
        if not owner_ok(self.proposer_ids, sender, b, ready, m) or not self._round_ok(sender, m, ready):
            return
        if not self.fast.fast_ballot(b):
            reject(ready, sender, m, "not_a_fast_ballot", ballot=str(b))
            return
        why = slot_beyond(m.from_slot, self.known_slot(), self.bounds)
        if why:
            reject(ready, sender, m, why, from_slot=m.from_slot, known_slot=self.known_slot())
            return
        if b < self.promised or self.rebuild is not None:
            return  # a deposed leader's (its heartbeat's Accept gets the Nack)
        old = self.any
        if old is None or old.ballot != b:
            self.any = m
            ready.event("fast_round_joined", ballot=str(b), from_slot=m.from_slot, peer=sender)
            self.peer_votes.clear()
        elif m.from_slot > old.from_slot:
            self.any = m

    def _fast_refuse(self, sender: str, reason: str, ready: Ready) -> None:
        self.fast_refused += 1
        ready.send.append((sender, Redirect(self._owner(self.promised), reason)))

    def _on_fast_accept(self, sender: str, m: FastAccept, ready: Ready) -> None:
        """Seed 003's `Accept!(N, I, W)`: a client's batch, into our next free slot."""
        a = self.any
        if a is None or a.ballot != self.promised or self.rebuild is not None:
            self._fast_refuse(sender, "no_fast_round", ready)
            return
        if len(m.batch) > self.batch_bytes_max:
            self._fast_refuse(sender, "too_large", ready)
            return
        slot = max(self.highest_slot, self.chosen_through, self.compacted_through) + 1
        slot = max(slot, a.from_slot)
        if slot > self.chosen_through + self.fast_window_slots:
            self._fast_refuse(sender, "busy", ready)  # the learners and the leader are behind
            return
        b = a.ballot
        value = Value(COMMANDS, b, (m.batch,))
        record = AcceptRecord(b, self._justified(self.chosen_through), ((slot, value),))
        self.apply(record)
        ready.persist.append(record)
        self.fast_accepts += 1
        self._fast_voted(slot, b, value, ready)
        if self.fast.recovery == UNCOORDINATED:
            self._peer_vote(self.name, slot, value, ready)

    def _fast_voted(self, slot: int, b: Ballot, value: Value, ready: Ready) -> None:
        """Our vote, with its value (no leader's Accept carried it), to whoever counts it."""
        answer = Accepted(b, (slot,), (value,))
        owner = self._owner(b)
        if owner:
            ready.send.append((owner, answer))
        for learner in self.learners:
            ready.send.append((learner, answer))
        if self.fast.recovery == UNCOORDINATED and not b.sub:
            # (Only the fast round's votes: the others count no recovery round's, `_on_accepted`.)
            for other in self.others:
                ready.send.append((other, answer))

    def _on_accepted(self, sender: str, m: Accepted, ready: Ready) -> None:
        """Another acceptor's fast-round vote (uncoordinated recovery only)."""
        if self.fast.recovery != UNCOORDINATED or not self.fast.enabled:
            reject(ready, sender, m, "not_uncoordinated")
            return
        if sender not in self.others:
            reject(ready, sender, m, "not_an_acceptor")
            return
        a = self.any
        if a is None or m.ballot != a.ballot or not m.values or len(m.values) != len(m.slots):
            return  # another round's, or the recovery round's (those only the learners count)
        for slot, value in zip(m.slots, m.values, strict=True):
            self._peer_vote(sender, slot, value, ready)

    def _peer_vote(self, voter: str, slot: int, value: Value, ready: Ready) -> None:
        a = self.any
        assert a is not None
        if slot <= self.chosen_through or slot < a.from_slot or slot > self.chosen_through + self.fast_window_slots:
            return
        votes = self.peer_votes.get(slot)
        if votes is None:
            if len(self.peer_votes) >= 2 * self.fast_window_slots:
                for s in [s for s in self.peer_votes if s <= self.chosen_through]:
                    del self.peer_votes[s]
                if len(self.peer_votes) >= 2 * self.fast_window_slots:
                    return
            votes = self.peer_votes[slot] = {}
        if voter in votes:
            return
        votes[voter] = value
        n = len(self.bootstrap_acceptors) or 1
        mine = self.accepted.get(slot)
        if (mine is None or mine[0] != a.ballot or len(votes) < classic_quorum(n)
                or not collided(votes.values(), n, fast_quorum(n))):
            return
        if a.ballot != self.promised or self.rebuild is not None:
            # We promised a later ballot since: its leader's Phase 1 counted on us not voting below
            # it, and the recovery round is (simulator, uncoordinated seed 127: a value chosen
            # under the new ballot, then another one in the recovery round of the old).
            return
        # Seed 003, "collision recovery without the coordinator": the fast round's votes of a
        # majority stand for the recovery round's Phase 1 (no ballot lies between the two).
        chosen = choose(votes.values(), n, len(votes), True)
        rb = a.ballot.recovery()
        record = AcceptRecord(rb, self._justified(self.chosen_through), ((slot, chosen),))
        self.apply(record)
        ready.persist.append(record)
        self.recoveries += 1
        del self.peer_votes[slot]
        ready.event("collision_recovered", slot=slot, way="uncoordinated", ballot=str(rb),
                    value=chosen.describe(), votes=len(votes))
        self._fast_voted(slot, rb, chosen, ready)

    HANDLERS = {Prepare: _on_prepare, Recover: _on_recover, Accept: _on_accept, Fetch: _on_fetch, Tick: _on_tick,
                Probe: _on_probe, Probed: _on_probed, SnapshotOffer: _on_snapshot_offer,
                SnapshotInstalled: _on_snapshot_installed, Any_: _on_any, FastAccept: _on_fast_accept,
                Accepted: _on_accepted}
    HANDLERS = {**HANDLERS, LeaseRenew: _on_lease_renew}

    def invariants(self) -> None:
        # Runs after every step: the common case (the same ballot object) costs one `is`.
        top, promised = self.accepted_ballot_max, self.promised
        if top is not promised and top > promised:
            raise InvariantViolation("an accepted ballot is also promised", accepted=str(top), promised=str(promised))

    # --- observation -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "role": "acceptor",
            "state": "rebuilding" if self.rebuild is not None else "voting",
            "snapshot_slot": self.snapshot.slot if self.snapshot is not None else 0,
            "compacted_through": self.compacted_through,
            "records_in_memory": len(self.accepted),
            "promised": str(self.promised),
            "highest_slot": self.highest_slot,
            "chosen_through": self.chosen_through,
            "accepted_slots": len(self.accepted),
            "accepts_answered": self.accepts_answered,
            **({"fast_round": str(self.any.ballot) if self.any is not None else "",
                "fast_accepts": self.fast_accepts, "fast_refused": self.fast_refused,
                "fast_recoveries": self.recoveries} if self.fast.enabled else {}),
        }
