"""The proposer: leader election, Multi-Paxos Phase 1 over all open slots, the steady-state
Phase 2 pipeline, takeover recovery, re-confirmation and StartWorking.

States (`State`): a `FOLLOWER` waits for the leader's heartbeats; after an election timeout
(randomized, backed off after a lost duel: seeds 001 and 002) it becomes a `CANDIDATE` and runs
Phase 1 once for every slot from its first unchosen one, with one ballot. With a majority of
Promises it re-proposes every slot up to the highest slot any of them accepted (the
highest-ballot value, else a no-op: the "maximum commit" rule of seed 001), then writes
StartWorking(epoch) and becomes the `LEADER`: from then on each client batch costs only Phase 2.
Each state's data lives in an object made on the transition into it (`Candidacy`, `Leadership`)
and dropped on the way out, so nothing of one term leaks into the next.

The round is persisted (`RoundRecord`) before the Prepare that uses it, so a restarted proposer
never reuses a ballot. One that lost its file (a `RebuildRecord` begins the new one) first asks
the acceptors what they promised, and takes a ballot above the highest a majority reports: every
ballot it ever sent an Accept under was promised by a majority, and any two majorities meet.
Safety never depends on timing; only progress does.

Membership (actors/membership.py has the design): slot `s` is decided by the membership chosen
at `s - alpha`. `history` holds the changes this proposer knows were chosen; `pending` the
membership values it proposed (or re-proposed) that are not chosen yet. While one is pending, a
slot it may govern needs a majority of both the old and the new membership (`_quorums`), and no
slot it governs is opened before a majority of the new one has promised our ballot (`_gate`).
Phase 1 needs a majority of every membership that may govern a slot from its first one on.
With no change ever, every rule here is the plain majority of the configured acceptors.

Fast mode (actors/fast.py has the rules): a leader whose ballot is fast opens the slots after its
StartWorking with `Any` (repeated with every heartbeat) and from then on assigns no slot itself:
clients send their batches to the acceptors (a Submit that still reaches it is forwarded the same
way). It counts the acceptors' votes per value, a fast quorum choosing a slot, and watches for
collisions. A collision with votes from a majority is recovered in the slot's recovery round:
by the leader (coordinated: it picks the value and sends a classic Accept) or by the acceptors
themselves (uncoordinated); a slot that stays open anyway (a vote missing, the recovery split
again) is recovered by a new ballot, a full Phase 1. The batches that lost a collision and were
not chosen elsewhere are sent again on their clients' behalf (learners apply a retry once), so
no command that reached a leader is dropped. After `fallback_collisions` collisions within
`fallback_window_ticks` it falls back to a classic ballot, and goes fast again after
`classic_hold_ticks` (doubled each time that ends in another fallback soon after).
"""

from __future__ import annotations

import enum
import random
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from actors.ballot import ZERO, Ballot
from actors.bounds import ROUND_MAX, WireBounds, round_beyond
from actors.core import Core, reject
from actors.fast import CLASSIC_RULES, COORDINATED, FastRules, choose, classic_quorum, collided, fast_quorum
from actors.invariants import InvariantViolation
from actors.lease import HeldRead, ReadParams, ReadState, lease_span
from actors.membership import BadMembership, History, Membership, refusal
from actors.membership import decode as decode_membership
from actors.membership import encode as encode_membership
from actors.messages import (
    COMMANDS,
    MEMBERSHIP,
    NOOP,
    START,
    Accept,
    Accepted,
    Any_,
    ChangeMembers,
    FastAccept,
    Heartbeat,
    LeaseGranted,
    LeaseRenew,
    MembersChanged,
    Nack,
    Prepare,
    Probe,
    Probed,
    Promise,
    Read,
    ReadAt,
    Recover,
    Recovered,
    Redirect,
    Repair,
    Submit,
    Tick,
    Value,
    Vote,
    chunked,
)
from actors.ready import DEBUG, INFO, WARNING, Ready
from actors.records import MembersRecord, RebuildRecord, Record, RoundRecord


class State(enum.Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


FOLLOWER, CANDIDATE, LEADER = State.FOLLOWER, State.CANDIDATE, State.LEADER

# A leader whose StartWorking is not chosen within this many election timeouts steps down.
NOT_SERVING_ELECTIONS = 4
MEMBER_WAITERS_MAX = 16  # operators waiting for a membership change to be chosen


@dataclass(frozen=True, slots=True)
class ProposerParams:
    """The protocol knobs; `runtime.config` builds one from `[protocol]` and `[limits]`, so the
    defaults here are the documented ones."""

    heartbeat_ticks: int = 5
    election_ticks: int = 30  # base election timeout; the actual one is in [E, 2E) * backoff
    backoff_max: int = 8
    retry_ticks: int = 20  # resend an unanswered Prepare or Accept after this many ticks
    window_slots: int = 64  # slots in flight (pipelining)
    batch_bytes_max: int = 1024 * 1024  # client-batch bytes in one slot
    batch_count_max: int = 1024  # client batches in one slot
    message_bytes_max: int = 8 * 1024 * 1024 - 64 * 1024  # budget for one Accept message
    queue_batches_max: int = 8192  # pending client batches before Submit gets "busy"
    # Bounds on what peers say (actors/bounds.py): a round at most this far above the highest
    # known, a slot or watermark at most this far above what we can vouch for.
    ballot_round_step_max: int = 1_000_000
    slots_ahead_max: int = 1_000_000
    # A membership chosen at slot c decides the slots from c + alpha on (0: window_slots).
    alpha_slots: int = 0
    # Fast Paxos (actors/fast.py); classic unless cluster.toml says `mode = "fast"`.
    fast: FastRules = CLASSIC_RULES
    fallback_collisions: int = 8  # this many collisions within the window: back to classic rounds
    fallback_window_ticks: int = 100
    classic_hold_ticks: int = 300  # how long a fallback lasts before a fast ballot is tried again


@dataclass(slots=True)
class InFlight:
    value: Value
    acks: set[str]
    sent_tick: int


@dataclass(slots=True)
class Candidacy:
    """Phase 1 under our own ballot, from `p1_from` on. Made when an election starts."""

    p1_from: int
    p1_ticks: int = 0
    promises: dict[str, Promise] = field(default_factory=dict)
    # Slots re-proposed while Phase 1 continues in chunks (Promises too large for one message).
    inflight: dict[int, InFlight] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)  # acceptors the Prepare went to


@dataclass(slots=True)
class Reconfirmation:
    """Slots believed chosen that a learner cannot learn, read again from a majority."""

    from_slot: int
    to_slot: int
    nonce: int
    ticks: int = 0
    answers: dict[str, Recovered] = field(default_factory=dict)


@dataclass(slots=True)
class FastSlot:
    """What a fast leader heard of one open slot: each acceptor's vote in the fast round, and
    in its recovery round (uncoordinated: they vote alone; coordinated: our own Accept)."""

    first_tick: int
    votes: dict[str, Value] = field(default_factory=dict)
    rvotes: dict[str, Value] = field(default_factory=dict)
    collided_tick: int = -1
    recovery: InFlight | None = None  # our coordinated recovery Accept


FAST_SLOTS_MAX = 65_536  # open fast slots a leader tracks (beyond: the oldest are let go)
LOSERS_REMEMBERED = 65_536  # chosen batches remembered, so a collision's loser is sent again only if lost


@dataclass(slots=True)
class Leadership:
    """Made when a majority promised; carries the candidacy's slots in flight on."""

    sw_slot: int  # where our StartWorking stands; serving once it is chosen
    next_slot: int
    led_since: int
    heard: dict[str, int]  # acceptor -> the tick it last answered (check-quorum)
    inflight: dict[int, InFlight]
    last_heartbeat_tick: int = 0
    serving: bool = False
    reconfirming: Reconfirmation | None = None
    promised_by: set[str] = field(default_factory=set)  # acceptors that promised our ballot
    fast_from: int = 0  # fast mode: the slots from here on are open to clients (0: not yet)
    fast: dict[int, FastSlot] = field(default_factory=dict)
    fast_top: int = 0  # the highest slot any acceptor voted for in our fast round


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
        debug_events: bool = False,
        history: History | None = None,
        reads: ReadParams | None = None,
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
        self.bounds = WireBounds(params.ballot_round_step_max, params.slots_ahead_max)
        self.rng = rng
        self.debug_events = debug_events  # one event per slot proposed and chosen

        self.round = 0  # highest round recorded
        self.state = FOLLOWER
        self.cand: Candidacy | None = None
        self.lead: Leadership | None = None
        self.ballot: Ballot = ZERO  # our latest own ballot
        self.known_ballot: Ballot = ZERO  # highest ballot seen anywhere
        self.leader: str | None = None
        self.ticks = 0
        self.quiet_ticks = 0  # ticks since the leader was last heard
        self.backoff = 1
        self.timeout_ticks = self._draw_timeout()
        self.chosen_through = 0
        self.chosen_above: set[int] = set()
        self.queue: deque[tuple[str, bytes]] = deque()
        self.elections = 0
        # Read batches answered under the lease at once, and held for a round (actors/lease.py):
        # a workload whose reads are mostly held waits a round trip (an fsync, with writes) each.
        self.read_batches = {"leased": 0, "held": 0}
        self.nonce = 0  # of the latest Recover: an answer to anything else never counts
        self.probed: dict[str, Probed] | None = None  # while it must learn the ballots it forgot
        self.history = history or History(
            Membership(tuple((n, i, "") for n, i in proposers.items()), tuple((a, "") for a in acceptors),
                       tuple((n, "") for n in learners)),
            params.alpha_slots or params.window_slots)
        if self.history.alpha < params.window_slots:
            raise ValueError(f"alpha ({self.history.alpha}) must be at least window_slots ({params.window_slots}): "
                             "a leader must know the membership of every slot it opens")
        self.pending: list[tuple[int, Membership]] = []  # our membership values not chosen yet
        self.member_waiters: list[tuple[int, str, int]] = []  # (slot, client, request) of operators
        self.heard_of: list[Membership] = []  # memberships in the votes of this Phase 1
        # `acceptors` stays the bootstrap membership's (the plain rules use it, and only it, while
        # there never was a change); every acceptor of a known membership, in order:
        self.all_acceptors = list(self.acceptors)
        self.known_acceptors = set(self.acceptors)
        self._members_changed()
        self.fast = params.fast
        self.want_fast = self.fast.enabled  # false during a fallback to classic rounds
        self.fast_hold_until = 0
        self.fast_hold_ticks = params.classic_hold_ticks
        self.fast_opened_tick = -1
        self.collision_ticks: deque[int] = deque()
        self.chosen_batches: OrderedDict[bytes, int] = OrderedDict()
        self.fast_stats = {"collisions": 0, "coordinated": 0, "uncoordinated": 0, "new_ballot": 0,
                           "fallbacks": 0, "resent_losers": 0, "fast_chosen": 0}
        # Reads without a log write (actors/lease.py); None: reads confirmed by a round, no lease.
        self.read_params = reads
        self.reads: ReadState | None = None

    # --- durable state ---------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        if type(record) is RebuildRecord:
            self.probed = None if record.done else {}
            return
        if type(record) is MembersRecord:
            # The changes it knew: a restart must find the acceptors of today, not of cluster.toml.
            if self.history.merge(record.members):
                self._members_changed()
            return
        if type(record) is not RoundRecord:
            raise TypeError(f"proposer cannot apply {type(record).__name__}")
        if record.round > self.round:
            self.round = record.round

    # --- the rules ---------------------------------------------------------------------------

    def next_round(self) -> int:
        """The smallest round that makes our ballot exceed every ballot seen and every round we
        may have used (seed 000: numbers m * n + i, "pick the next number above the highest")."""
        known = self.known_ballot
        above_known = known.round if known.node < self.node_id else known.round + 1
        r = max(above_known, self.round + 1)
        if self.fast.enabled and r % 2 != (1 if self.want_fast else 0):
            r += 1  # fast mode: odd rounds are fast ballots, even ones classic (actors/fast.py)
        return r

    def prefers(self, vote: Vote, seen: Vote) -> bool:
        """Of two reported votes for one slot, the higher ballot's value wins (P2c)."""
        return vote.ballot > seen.ballot

    def highest_votes(self, answers: Iterable[Iterable[Vote]], first: int, last: int,
                      n: int = 0, reported: int = 0) -> dict[int, Vote]:
        """Per slot in [first, last], the highest-ballot vote any answer reported; under a fast
        ballot, where acceptors may hold different values, the one `actors.fast.choose` keeps
        (`reported` answers of the slot's `n` acceptors)."""
        best: dict[int, Vote] = {}
        split: dict[int, list[Vote]] = {}
        for votes in answers:
            for vote in votes:
                if first <= vote.slot <= last:
                    seen = best.get(vote.slot)
                    if seen is None or self.prefers(vote, seen):
                        best[vote.slot] = vote
                    if self.fast.enabled and self.fast.is_fast(vote.ballot):
                        split.setdefault(vote.slot, []).append(vote)
        for slot, votes in split.items():
            top = best[slot]
            values = [v.value for v in votes if v.ballot == top.ballot]
            if self.fast.is_fast(top.ballot) and len(set(values)) > 1:
                best[slot] = Vote(slot, top.ballot, choose(values, n or len(self.acceptors),
                                                           reported or n or len(self.acceptors), True))
        return best

    def known_round(self) -> int:
        """The highest round we know of: recorded by us, or seen anywhere."""
        return max(self.round, self.known_ballot.round)

    def _round_ok(self, sender: str, m: Heartbeat | Nack, b: Ballot, ready: Ready) -> bool:
        """A ballot we would take as known no further above the highest we know than rounds grow:
        our next round is one above it, and a forged one near the ceiling would end elections."""
        why = round_beyond(b, self.known_round(), self.bounds)
        if why is None:
            return True
        reject(ready, sender, m, why, ballot=str(b), known=str(self.known_ballot), round=self.round)
        return False

    # --- memberships -------------------------------------------------------------------------

    def _members_changed(self) -> None:
        """Whom we talk to: everyone of every membership known (facts and pending), in order."""
        for m in [*self.history.all_members(), *(m for _, m in self.pending), *self.heard_of]:
            for a in m.acceptor_names:
                if a not in self.known_acceptors:
                    self.known_acceptors.add(a)
                    self.all_acceptors.append(a)
            for n in m.learner_names:
                if n not in self.learners:
                    self.learners.append(n)
            for n, i in m.proposer_ids.items():
                if i not in self.names_by_id:
                    self.names_by_id[i] = n
                    if n != self.name:
                        self.peers.append(n)
        self.simple = not self.history.changes and not self.pending and not self.heard_of
        # Removed by a chosen change: it serves the slots before the change takes effect, then
        # stands down for good (and never campaigns again).
        latest = self.history.latest()
        self.removed_from = self.history.effective[-1] if self.history.changes and \
            self.name not in latest.proposer_ids else 0

    def memberships(self) -> list[Membership]:
        return [*self.history.all_members(), *(m for _, m in self.pending), *self.heard_of]

    def _member(self, sender: str) -> bool:
        """Whether an answer from `sender` may count for anything."""
        return sender in self.acceptors if self.simple else sender in self.known_acceptors

    def _merge_history(self, blob: bytes, ready: Ready) -> None:
        if not blob:
            return
        try:
            grew = self.history.merge(blob)
        except BadMembership as exc:
            ready.event("members_rejected", WARNING, reason=str(exc))
            return
        if grew:
            self.pending = [(c, m) for c, m in self.pending if c not in {s for s, _ in self.history.changes}]
            self._members_changed()
            ready.persist.append(MembersRecord(self.history.encode()))

    def _quorums(self, slot: int) -> list[Membership]:
        """Every membership that may govern `slot`: the known one, and each pending one whose
        alpha window it is in (chosen or not, the count is right)."""
        out = [self.history.at(slot)]
        for c, m in self.pending:
            if slot >= self.history.effective_from(c) and m not in out:
                out.append(m)
        return out

    def _chosen_by(self, slot: int, acks: set[str]) -> bool:
        return all(sum(1 for a in m.acceptor_names if a in acks) >= m.majority() for m in self._quorums(slot))

    def _targets(self, first: int, last: int) -> list[str]:
        """The acceptors that decide slots first..last, in configured order."""
        if self.simple:
            return self.acceptors
        names: set[str] = set()
        for m in self._quorums(first) + self._quorums(last):
            names.update(m.acceptor_names)
        for e in self.history.effective:
            if first < e <= last:
                names.update(self.history.at(e).acceptor_names)
        return [a for a in self.all_acceptors if a in names]

    def _majority_promised(self, m: Membership, promised: set[str] | dict[str, Promise]) -> bool:
        return sum(1 for a in m.acceptor_names if a in promised) >= m.majority()

    def _gate(self) -> int:
        """The first slot we may not open yet: one governed by a pending membership that has not
        promised our ballot (0: none)."""
        lead = self.lead
        gate = 0
        if lead is not None:
            for c, m in self.pending:
                if not self._majority_promised(m, lead.promised_by):
                    e = self.history.effective_from(c)
                    gate = e if not gate else min(gate, e)
        return gate

    def propose_membership(self, new: Membership, ready: Ready) -> str | None:
        """The operator's change: propose `new` in the next slot. Returns why not, or None."""
        lead = self.lead
        if lead is None or not lead.serving:
            return "not the serving leader"
        why = refusal(self.history, new, lead.next_slot, bool(self.pending))
        if why is not None:
            e = self.history.effective[-1] if self.history.changes else 0
            if not self.pending and lead.next_slot < e and why.startswith("another change is inside"):
                # An idle cluster would never pass the window: fill it with no-ops, and the
                # operator's next try is taken.
                filled = self._fill_noops(lead, e, ready)
                if filled:
                    why += f"; {filled} no-ops proposed to pass it"
            return why
        slot = lead.next_slot
        lead.next_slot += 1
        value = Value(MEMBERSHIP, self.ballot, (encode_membership(new),))
        self.pending.append((slot, new))
        self._members_changed()
        lead.inflight[slot] = InFlight(value, set(), self.ticks)
        self._send_accept(((slot, value),), ready)
        ready.event("membership_proposed", slot=slot, from_slot=self.history.effective_from(slot),
                    members=new.describe())
        self._prepare_pending(lead, ready)
        return None

    def _fill_noops(self, lead: Leadership, below: int, ready: Ready) -> int:
        """No-ops in the next slots below `below`, as many as the window allows; how many."""
        entries = []
        while lead.next_slot < below and len(lead.inflight) < self.params.window_slots:
            value = Value(NOOP, self.ballot)
            lead.inflight[lead.next_slot] = InFlight(value, set(), self.ticks)
            entries.append((lead.next_slot, value))
            lead.next_slot += 1
        for chunk in chunked(entries, self.params.message_bytes_max):
            self._send_accept(chunk, ready)
        return len(entries)

    def _prepare_pending(self, lead: Leadership, ready: Ready) -> None:
        """Phase 1 of our ballot at the acceptors of a pending membership that have not promised
        it, for the slots it would govern."""
        for c, m in self.pending:
            if self._majority_promised(m, lead.promised_by):
                continue
            prepare = Prepare(self.ballot, self.history.effective_from(c))
            for a in m.acceptor_names:
                if a not in lead.promised_by:
                    ready.send.append((a, prepare))

    def _on_leader_promise(self, sender: str, m: Promise, ready: Ready) -> None:
        lead = self.lead
        assert lead is not None
        if sender in lead.promised_by:
            return
        # Only for a membership still short of a majority do its votes matter: once one majority
        # reported nothing there, nothing can have been chosen there (majorities meet).
        short = [self.history.effective_from(c) for c, pm in self.pending
                 if sender in pm.acceptor_names and not self._majority_promised(pm, lead.promised_by)]
        lead.promised_by.add(sender)
        lead.heard[sender] = self.ticks
        first = min(short, default=0)
        ahead = [v.slot for v in m.votes if first and v.slot >= first]
        if ahead:
            # Only a leader that counted on a change that was not chosen leaves votes there: let
            # the next Phase 1 read them (it asks every membership that may govern them).
            ready.event("membership_votes_ahead", WARNING, peer=sender, slot=ahead[0])
            self._step_down(ready, reason="membership_votes_ahead", leader=None)
            return
        self._propose_queued(ready)

    # --- ticks -----------------------------------------------------------------------------

    def _on_tick(self, sender: str, m: Tick, ready: Ready) -> None:
        self.ticks += 1
        p = self.params
        if self.probed is not None:
            if self.ticks % p.retry_ticks == 1:
                for acceptor in self.all_acceptors:  # of every membership it knows
                    if acceptor not in self.probed:
                        ready.send.append((acceptor, Probe()))
            return
        if self.state is FOLLOWER:
            self.quiet_ticks += 1
            if self.removed_from:
                return  # not a member any more: never campaigns
            if self.quiet_ticks >= self.timeout_ticks:
                self._start_election(ready, reason="leader_silent" if self.leader else "no_leader")
            return
        cand = self.cand
        if cand is not None:
            cand.p1_ticks += 1
            if cand.p1_ticks >= self.timeout_ticks:
                # No majority in time (acceptors down or a duel): try a higher ballot, later.
                self.backoff = min(self.backoff * 2, p.backoff_max)
                self._step_down(ready, reason="election_timeout", leader=None)
                return
            if cand.p1_ticks % p.retry_ticks == 0:
                prepare = Prepare(self.ballot, cand.p1_from)
                for acceptor in cand.asked:
                    if acceptor not in cand.promises:
                        ready.send.append((acceptor, prepare))
            self._retransmit(cand.inflight, ready)
            return
        lead = self.lead
        assert lead is not None
        if self.removed_from and self.chosen_through >= self.removed_from - 1 and not lead.inflight:
            # Every slot it may still decide is chosen: the new membership's proposers take over.
            self._step_down(ready, reason="removed", leader=None)
            return
        if self.history.changes and lead.serving and not self.queue and lead.next_slot < self.history.effective[-1]:
            # Idle, the newest change would not take effect until clients wrote alpha slots (and a
            # removed leader would lead forever): fill the slots before it with no-ops.
            self._fill_noops(lead, self.history.effective[-1], ready)
        if self.ticks - lead.last_heartbeat_tick >= p.heartbeat_ticks:
            self._heartbeat(lead, ready)
        if self.fast.enabled and lead.serving and self._fast_tick(lead, ready):
            return
        if lead.reconfirming is not None:
            lead.reconfirming.ticks += 1
            if lead.reconfirming.ticks >= p.election_ticks:
                lead.reconfirming = None  # no majority answered; the learner will ask again
        if self.pending and self.ticks % p.retry_ticks == 0:
            self._prepare_pending(lead, ready)
        if (self.ticks % p.election_ticks == 0 and self.ticks - lead.led_since >= p.election_ticks
                and not self._quorum_heard(lead)):
            # Check-quorum: a leader cut off from a majority stops heartbeating so that a
            # proposer that can reach the acceptors takes over.
            self._step_down(ready, reason="quorum_lost", leader=None)
            return
        if not lead.serving and self.ticks - lead.led_since >= NOT_SERVING_ELECTIONS * p.election_ticks:
            # Its StartWorking is still not chosen although a quorum answers: the acceptors refuse
            # its slots (a watermark a forged Promise raised beyond their horizon, say). Its
            # heartbeats would keep every other proposer from trying: make way.
            self.backoff = min(self.backoff * 2, p.backoff_max)
            self._step_down(ready, reason="not_serving", leader=None)
            return
        self._retransmit(lead.inflight, ready)

    def campaign(self, ready: Ready) -> None:
        """Start an election now, as if the election timer fired (scenarios, model checking and
        operators use this; the timer path is the tick)."""
        if self.probed is None and not self.removed_from:
            self._start_election(ready, reason="campaign")

    def _on_probed(self, sender: str, m: Probed, ready: Ready) -> None:
        # Done once a majority of the newest membership it knows answered (on real processes the
        # supervisor's cache of the log's, runtime/members.py; the members an operator removed
        # are stopped and never answer), taking the highest promise of every acceptor it knows
        # that answered by then. Without a change, the bootstrap majority, as before.
        if self.probed is None or sender not in self.known_acceptors:
            return
        # Its history first: a proposer that lost its file may know only the bootstrap membership.
        self._merge_history(m.members, ready)
        latest = self.history.latest()
        self.probed[sender] = m
        if sum(1 for a in latest.acceptor_names if a in self.probed) < latest.majority():
            return
        top = max(a.promised for a in self.probed.values())
        self.known_ballot = max(self.known_ballot, top)
        round_ = max(self.round, top.round)
        for record in (RoundRecord(round_), RebuildRecord(True)):
            self.apply(record)
            ready.persist.append(record)
        ready.event("rebuild_done", known_ballot=str(self.known_ballot), round=round_)

    def end_turn(self, ready: Ready) -> None:
        """Turn queued client batches into slots, as many as the window allows. The shell calls
        this once per turn, so everything that arrived in one turn shares slots and messages
        (batching)."""
        self._propose_queued(ready)
        self._reads_end_turn(ready)

    def _propose_queued(self, ready: Ready) -> None:
        lead = self.lead
        if lead is None or not self.queue:
            return
        if self.fast.fast_ballot(self.ballot):
            if lead.fast_from:
                self._forward_fast([blob for _, blob in self.queue], ready)
                self.queue.clear()
            return  # a fast leader assigns no slot itself; until its round opens, batches wait
        p = self.params
        queue = self.queue
        inflight = lead.inflight
        entries: list[tuple[int, Value]] = []
        gate = self._gate() if self.pending else 0
        if self.removed_from and (not gate or self.removed_from < gate):
            gate = self.removed_from
        while queue and len(inflight) < p.window_slots and (not gate or lead.next_slot < gate):
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
            slot = lead.next_slot
            lead.next_slot += 1
            inflight[slot] = InFlight(value, set(), self.ticks)
            entries.append((slot, value))
        if entries:
            for chunk in chunked(entries, p.message_bytes_max):
                self._send_accept(chunk, ready)
            if self.debug_events:
                ready.event("slots_proposed", DEBUG, first_slot=entries[0][0], count=len(entries))

    # --- election --------------------------------------------------------------------------

    def _draw_timeout(self) -> int:
        e = self.params.election_ticks
        return (e + self.rng.randrange(e)) * self.backoff

    def _start_election(self, ready: Ready, reason: str) -> None:
        new_round = self.next_round()
        if new_round > ROUND_MAX + 1:
            # Only a file or an acceptor from before the bounds on rounds can make it so: never
            # write a RoundRecord that our own reader would refuse as corrupt.
            ready.event("election_refused", WARNING, reason="round_above_ceiling", round=new_round,
                        known=str(self.known_ballot))
            self.quiet_ticks = 0
            return
        self.elections += 1
        record = RoundRecord(new_round)
        self.apply(record)
        ready.persist.append(record)  # durable before the Prepare below leaves
        self.ballot = Ballot(new_round, self.node_id)
        self.known_ballot = max(self.known_ballot, self.ballot)
        self.state = CANDIDATE
        self.cand = Candidacy(self.chosen_through + 1)
        self.lead = None
        self.leader = None
        if self.pending or self.heard_of:
            self.pending, self.heard_of = [], []  # a new ballot re-reads them in Phase 1
            self._members_changed()
        self.timeout_ticks = self._draw_timeout()
        ready.event("election_started", ballot=str(self.ballot), from_slot=self.cand.p1_from, reason=reason)
        self._ask(self.cand, self.history.governing(self.cand.p1_from), ready)

    def _ask(self, cand: Candidacy, members: list[Membership], ready: Ready) -> None:
        """Send our Prepare to every acceptor of `members` not asked yet."""
        if self.simple:
            names = self.acceptors
        else:
            wanted = {a for m in members for a in m.acceptor_names}
            names = [a for a in self.all_acceptors if a in wanted]
        prepare = Prepare(self.ballot, cand.p1_from)
        for acceptor in names:
            if acceptor not in cand.asked:
                cand.asked.append(acceptor)
                ready.send.append((acceptor, prepare))

    def _on_promise(self, sender: str, m: Promise, ready: Ready) -> None:
        cand = self.cand
        if cand is None and self.lead is not None and m.ballot == self.ballot and self._member(sender):
            self._merge_history(m.members, ready)
            self._on_leader_promise(sender, m, ready)
            return
        if cand is None or m.ballot != self.ballot or m.from_slot != cand.p1_from:
            return  # stale or duplicate round of Phase 1
        if not self._member(sender):
            return
        cand.promises[sender] = m
        self._merge_history(m.members, ready)
        for v in m.votes:
            if v.value.kind == MEMBERSHIP:
                self._heard(v.value)
        if self.simple:
            if len(cand.promises) < self.majority:
                return
        elif not self._phase1_complete(cand, ready):
            return
        # Iterate in configured order, never over a set: determinism across processes.
        promises = [cand.promises[a] for a in (self.acceptors if self.simple else self.all_acceptors)
                    if a in cand.promises]
        watermark = max([self.chosen_through] + [p.chosen_through for p in promises])
        highest = max(p.highest_slot for p in promises)
        incomplete = [p.reported_through for p in promises if p.reported_through < p.highest_slot]
        start = max(watermark + 1, cand.p1_from)
        # Never more than the horizon of slots in one round of Phase 1: every slot up to `through`
        # gets a value (no-ops included), and `highest` is only what an acceptor says. Beyond it,
        # Phase 1 goes on from the next slot, as for Promises too large for one message.
        horizon = start - 1 + self.bounds.slots_ahead_max
        if highest > horizon and not incomplete:
            incomplete = [horizon]
            ready.event("phase1_capped", WARNING, from_slot=start, highest_slot=highest, through=horizon)
        through = min(incomplete) if incomplete else highest
        best = self.highest_votes((p.votes for p in promises), start, through, len(self.acceptors), len(promises))
        self._advance_chosen(watermark)
        entries: list[tuple[int, Value]] = []
        reproposed = noops = 0
        for slot in range(start, through + 1):
            vote = best.get(slot)
            if vote is not None:
                value = vote.value  # keep it whole, epoch included: the ghost rule needs it
                reproposed += 1
                if value.kind == MEMBERSHIP:
                    self._pend(slot, value)
            else:
                value = Value(NOOP, self.ballot)
                noops += 1
            entries.append((slot, value))
        if incomplete:
            # The Promises did not fit in one message each: recover what they covered and ask
            # again, under the same ballot, from the next slot.
            cand.p1_from = through + 1
            cand.promises = {}
            cand.p1_ticks = 0
            ready.event("phase1_continued", ballot=str(self.ballot), from_slot=cand.p1_from)
            self._propose_recovered(cand.inflight, entries, ready)
            cand.asked = []
            self._ask(cand, self._phase1_members(cand), ready)
            return
        sw_slot = max(through, watermark, cand.p1_from - 1) + 1
        entries.append((sw_slot, Value(START, self.ballot)))
        # The acceptors that just promised count as heard: check-quorum starts from them.
        lead = Leadership(sw_slot=sw_slot, next_slot=sw_slot + 1, led_since=self.ticks,
                          heard={a: self.ticks for a in cand.promises}, inflight=cand.inflight,
                          promised_by=set(cand.promises))
        self.state = LEADER
        self.cand = None
        self.lead = lead
        if self.heard_of:
            self.heard_of = []  # what we did not re-propose cannot be chosen any more
            self._members_changed()
        self.leader = self.name
        ready.event("leader_elected", ballot=str(self.ballot), chosen_through=watermark,
                    reproposed=reproposed, noops=noops, start_working_slot=sw_slot)
        self._propose_recovered(lead.inflight, entries, ready)
        self._heartbeat(lead, ready)

    def _heard(self, value: Value) -> None:
        try:
            m = decode_membership(value.batches[0])
        except BadMembership:
            return
        if m not in self.heard_of:
            self.heard_of.append(m)
            self._members_changed()

    def _pend(self, slot: int, value: Value) -> None:
        try:
            m = decode_membership(value.batches[0])
        except BadMembership:
            return  # it cannot take effect anywhere: learners skip it too
        if all(c != slot for c, _ in self.pending) and all(c != slot for c, _ in self.history.changes):
            self.pending.append((slot, m))
            self.pending.sort(key=lambda p: p[0])
            self._members_changed()

    def _phase1_members(self, cand: Candidacy) -> list[Membership]:
        """Every membership that may govern a slot this Phase 1 may still have to recover: the
        known ones, and each membership value some Promise reports there (it may be re-chosen,
        and govern later slots). Slots at or below a watermark a Promise reports are chosen
        (facts, relayed with the history that covers them), so the memberships that govern only
        those are not asked: after a restart (our watermark 0) the acceptors an operator removed
        long ago are stopped and must not be needed."""
        first = max([cand.p1_from, self.chosen_through + 1] + [p.chosen_through + 1 for p in cand.promises.values()])
        out = self.history.governing(first)
        for p in cand.promises.values():
            for v in p.votes:
                if v.value.kind == MEMBERSHIP and v.slot >= first:
                    try:
                        m = decode_membership(v.value.batches[0])
                    except BadMembership:
                        continue
                    if m not in out:
                        out.append(m)
        return out

    def _phase1_complete(self, cand: Candidacy, ready: Ready) -> bool:
        """A majority of every membership that may govern our slots promised; else ask the
        acceptors of those that did not."""
        members = self._phase1_members(cand)
        missing = [m for m in members if not self._majority_promised(m, cand.promises)]
        if missing:
            self._ask(cand, missing, ready)
            return False
        return True

    # --- re-confirmation (seed 001: "重确认") ------------------------------------------------

    def _on_repair(self, sender: str, m: Repair, ready: Ready) -> None:
        """A learner cannot learn slots the leaders consider chosen: the acceptors that chose
        them moved on to different ballots (a later leader re-proposed the same value to some of
        them) or missed them, so no ballot has a majority any more, though the value is fixed.
        Read those slots from a majority under our ballot, as Phase 1 would, and propose the
        highest-ballot value again: then one ballot has a majority, and learners see it."""
        lead = self.lead
        if lead is None or not lead.serving or lead.reconfirming is not None:
            return
        first = m.from_slot
        # Its own slots too: an acceptor that lost its file may have taken one of the copies that
        # made one chosen. Re-reading them from acceptors that can vouch gives the same value.
        last = min(m.to_slot, self.chosen_through, first + self.params.window_slots - 1)
        if last < first:
            return
        if not self.simple:
            # One membership decides the whole range: stop where the next takes effect.
            for e in self.history.effective:
                if first < e <= last:
                    last = e - 1
                    break
        self.nonce += 1
        lead.reconfirming = Reconfirmation(first, last, self.nonce)
        ready.event("repair_started", peer=sender, from_slot=first, to_slot=last, ballot=str(self.ballot))
        recover = Recover(self.ballot, first, last, self.nonce)
        for acceptor in self._recover_members(first).acceptor_names if not self.simple else self.acceptors:
            ready.send.append((acceptor, recover))

    def _recover_members(self, first: int) -> Membership:
        return self.history.at(first)

    def _on_recovered(self, sender: str, m: Recovered, ready: Ready) -> None:
        lead = self.lead
        rc = lead.reconfirming if lead is not None else None
        if (lead is None or rc is None or m.ballot != self.ballot or m.nonce != rc.nonce
                or not self._member(sender)):
            return  # not an answer to the re-confirmation under way
        members = self.acceptors if self.simple else self._recover_members(rc.from_slot).acceptor_names
        if sender not in members:
            return
        rc.answers[sender] = m
        majority = len(members) // 2 + 1
        if len(rc.answers) < majority:
            return
        answers = [rc.answers[a] for a in members if a in rc.answers]
        # An answer that had to stop early covers only up to its reported_through.
        through = min([rc.to_slot] + [a.reported_through for a in answers])
        # Slots inside some acceptor's snapshot are chosen, and a learner gets them from that
        # snapshot: never re-propose them.
        first = max(rc.from_slot, max(a.snapshot_slot for a in answers) + 1)
        # An acceptor that lost its file vouches for nothing up to its floor (compacted_through
        # above its snapshot): a slot needs a majority of answers from acceptors that can.
        floors = sorted(a.compacted_through for a in answers)
        vouched_from = floors[majority - 1] + 1
        if first < vouched_from:
            if len(answers) < len(members):
                return  # wait for the others
            ready.event("repair_unvouched", WARNING, from_slot=first, to_slot=min(through, vouched_from - 1))
            first = vouched_from
        best = self.highest_votes((a.votes for a in answers), first, through, len(members), len(answers))
        entries: list[tuple[int, Value]] = []
        for slot in range(first, through + 1):
            if slot in lead.inflight:
                continue
            vote = best.get(slot)
            # No value in a majority means nothing was chosen there (quorums intersect): no-op.
            entries.append((slot, vote.value if vote is not None else Value(NOOP, self.ballot)))
        ready.event("repair_reproposed", from_slot=first, to_slot=through, slots=len(entries),
                    noops=sum(1 for _, v in entries if v.kind == NOOP))
        lead.reconfirming = None
        self._propose_recovered(lead.inflight, entries, ready)

    def _propose_recovered(self, inflight: dict[int, InFlight], entries: list[tuple[int, Value]],
                           ready: Ready) -> None:
        for slot, value in entries:
            inflight[slot] = InFlight(value, set(), self.ticks)
        # Split by size: re-proposed values can be large.
        for chunk in chunked(entries, self.params.message_bytes_max):
            self._send_accept(chunk, ready)

    def _send_accept(self, entries: tuple[tuple[int, Value], ...], ready: Ready) -> None:
        accept = Accept(self.ballot, self.chosen_through, entries, self.history.encode())
        targets = self.acceptors if self.simple or not entries else self._targets(entries[0][0], entries[-1][0])
        for acceptor in targets:
            ready.send.append((acceptor, accept))
        # Learners take the values from here (one copy) and only the votes from acceptors.
        for learner in self.learners:
            ready.send.append((learner, accept))

    def _heartbeat(self, lead: Leadership, ready: Ready) -> None:
        lead.last_heartbeat_tick = self.ticks
        members = self.history.encode()
        beat = Heartbeat(self.ballot, self.chosen_through, members)
        for peer in self.peers:
            ready.send.append((peer, beat))
        for learner in self.learners:
            ready.send.append((learner, beat))
        # To acceptors an empty Accept: they answer it, so the leader learns that it still has
        # a quorum (or, by a Nack, that it was deposed) even when no client writes.
        probe = Accept(self.ballot, self.chosen_through, (), members)
        targets = self.acceptors if self.simple else self._targets(self.chosen_through + 1, lead.next_slot)
        for acceptor in targets:
            ready.send.append((acceptor, probe))
        if lead.fast_from:
            any_ = Any_(self.ballot, lead.fast_from)
            for acceptor in targets:
                ready.send.append((acceptor, any_))

    def _quorum_heard(self, lead: Leadership) -> bool:
        horizon = self.ticks - self.params.election_ticks
        if self.simple:
            return sum(1 for a in self.acceptors if lead.heard.get(a, -1) >= horizon) >= self.majority
        m = self.history.at(lead.next_slot)
        return sum(1 for a in m.acceptor_names if lead.heard.get(a, -1) >= horizon) >= m.majority()

    # --- phase 2 ---------------------------------------------------------------------------

    def _on_accepted(self, sender: str, m: Accepted, ready: Ready) -> None:
        own = self.lead or self.cand
        if own is None or not self._member(sender):
            return
        if m.ballot != self.ballot:
            if self.lead is not None and self.lead.fast_from and m.ballot == self.ballot.recovery():
                self._on_recovery_vote(sender, m, ready)
            return
        if m.values and self.lead is not None and self.lead.fast_from:
            self._on_fast_votes(sender, m, ready)
            return
        if self.lead is not None:
            self.lead.heard[sender] = self.ticks
        inflight = own.inflight
        majority = self.majority
        for slot in m.slots:
            entry = inflight.get(slot)
            if entry is None:
                continue
            entry.acks.add(sender)
            if len(entry.acks) >= majority if self.simple else self._chosen_by(slot, entry.acks):
                del inflight[slot]
                self._mark_chosen(slot, entry.value, ready)

    def _mark_chosen(self, slot: int, value: Value, ready: Ready) -> None:
        if value.kind == MEMBERSHIP:
            self._learn_chosen(slot, value, ready)
        if slot == self.chosen_through + 1:
            self._advance_chosen(slot)
        elif slot > self.chosen_through:
            self.chosen_above.add(slot)
        if self.debug_events:
            ready.event("slot_chosen", DEBUG, slot=slot, value=value.describe())
        lead = self.lead
        if lead is not None and slot == lead.sw_slot and not lead.serving:
            lead.serving = True
            self.backoff = 1
            ready.event("leader_serving", ballot=str(self.ballot), start_working_slot=slot)
            if self.fast.fast_ballot(self.ballot):
                self._open_fast(lead, ready)

    def _learn_chosen(self, slot: int, value: Value, ready: Ready) -> None:
        try:
            m = decode_membership(value.batches[0])
        except BadMembership:
            return
        if self.history.learn(slot, m):
            ready.persist.append(MembersRecord(self.history.encode()))
            ready.event("membership_chosen", slot=slot, from_slot=self.history.effective_from(slot),
                        members=m.describe())
        self.pending = [(c, p) for c, p in self.pending if c != slot]
        self._members_changed()
        if self.member_waiters:
            self._answer_waiters(ready, slot)

    def _advance_chosen(self, through: int) -> None:
        if through > self.chosen_through:
            self.chosen_through = through
        above = self.chosen_above
        while self.chosen_through + 1 in above:
            self.chosen_through += 1
            above.discard(self.chosen_through)
        if above and min(above) <= self.chosen_through:
            self.chosen_above = {s for s in above if s > self.chosen_through}

    def _retransmit(self, inflight: dict[int, InFlight], ready: Ready) -> None:
        if not inflight:
            return
        horizon = self.ticks - self.params.retry_ticks
        missing: dict[str, list[tuple[int, Value]]] = {}
        simple = self.simple
        for slot, entry in inflight.items():
            if entry.sent_tick > horizon:
                continue
            entry.sent_tick = self.ticks
            for acceptor in self.acceptors if simple else self._targets(slot, slot):
                if acceptor not in entry.acks:
                    missing.setdefault(acceptor, []).append((slot, entry.value))
        members = self.history.encode()
        for acceptor in self.acceptors if simple else self.all_acceptors:
            entries = missing.get(acceptor)
            if entries:
                for chunk in chunked(entries, self.params.message_bytes_max):
                    ready.send.append((acceptor, Accept(self.ballot, self.chosen_through, chunk, members)))
        if missing:
            ready.event("accept_retransmitted", DEBUG, acceptors=len(missing))

    # --- being overtaken -------------------------------------------------------------------

    def _on_nack(self, sender: str, m: Nack, ready: Ready) -> None:
        if sender not in self.known_acceptors:
            reject(ready, sender, m, "not_an_acceptor")
            return
        if m.promised > self.known_ballot:
            if not self._round_ok(sender, m, m.promised, ready):
                return
            self.known_ballot = m.promised
        if self.state is FOLLOWER or m.ballot != self.ballot or m.promised <= self.ballot:
            return
        # Preempted: someone runs a higher ballot. Back off so two proposers do not keep
        # preempting each other (the livelock of seeds 001 and 002).
        self.backoff = min(self.backoff * 2, self.params.backoff_max)
        ready.event("ballot_preempted", ballot=str(self.ballot), promised=str(m.promised), peer=sender)
        self._step_down(ready, reason="preempted", leader=self.names_by_id.get(m.promised.node))

    def _on_heartbeat(self, sender: str, m: Heartbeat, ready: Ready) -> None:
        if self.names_by_id.get(m.ballot.node) != sender:
            reject(ready, sender, m, "ballot_not_owned_by_sender", ballot=str(m.ballot))
            return
        if m.ballot > self.known_ballot and not self._round_ok(sender, m, m.ballot, ready):
            return
        self._merge_history(m.members, ready)  # before the watermark it covers
        if m.chosen_through > self.chosen_through:
            # The leader's word, at most a window of slots per heartbeat: no one message (a forged
            # one, or a buggy leader's) makes us skip more than a window of slots in our next
            # Phase 1, and a repair heals that much at once. A follower behind climbs a window
            # per heartbeat, which is safe: its Phase 1 then asks from lower, and each acceptor
            # reports from its own watermark anyway.
            self._advance_chosen(min(m.chosen_through, self.chosen_through + self.params.window_slots))
        if m.ballot < self.known_ballot:
            return  # a deposed leader that has not noticed yet
        self.known_ballot = m.ballot
        if self.state is not FOLLOWER and m.ballot > self.ballot:
            self._step_down(ready, reason="higher_leader", leader=sender)
        if self.state is FOLLOWER:
            if self.leader != sender:
                ready.event("leader_changed", leader=sender, ballot=str(m.ballot))
            self.leader = sender
            self.quiet_ticks = 0
            self.backoff = 1

    def _step_down(self, ready: Ready, reason: str, leader: str | None) -> None:
        was = self.state
        self.state = FOLLOWER
        self.cand = None
        self.lead = None
        self.leader = leader
        self.quiet_ticks = 0
        self.timeout_ticks = self._draw_timeout()
        if self.pending or self.heard_of:
            self.pending, self.heard_of = [], []  # not ours to count any more
            self._members_changed()
        if self.member_waiters:
            self._answer_waiters(ready, reason="the leader stepped down before the change was chosen "
                                               "(it may still be: ask again)")
        ready.event("stepped_down", INFO, was=was.value, ballot=str(self.ballot), reason=reason, leader=leader)
        # Queued client batches were never proposed: tell their clients to go elsewhere.
        if self.queue:
            told: set[str] = set()
            redirect = Redirect(leader or "", "stepped_down")
            for client, _ in self.queue:
                if client not in told:
                    told.add(client)
                    ready.send.append((client, redirect))
            self.queue.clear()

    # --- fast rounds (actors/fast.py) -------------------------------------------------------

    def _open_fast(self, lead: Leadership, ready: Ready) -> None:
        """Our StartWorking is chosen under a fast ballot: open every slot after what we
        proposed ourselves."""
        lead.fast_from = lead.next_slot
        self.fast_opened_tick = self.ticks
        ready.event("fast_round_opened", ballot=str(self.ballot), from_slot=lead.fast_from,
                    fast_quorum=fast_quorum(len(self.acceptors)), recovery=self.fast.recovery)
        any_ = Any_(self.ballot, lead.fast_from)
        for acceptor in self.acceptors:
            ready.send.append((acceptor, any_))
        self._propose_queued(ready)

    def _forward_fast(self, batches: list[bytes], ready: Ready) -> None:
        """Client batches that reached us: to the acceptors, as their clients would send them."""
        for blob in batches:
            message = FastAccept(blob)
            for acceptor in self.acceptors:
                ready.send.append((acceptor, message))

    def _fast_slot(self, lead: Leadership, slot: int) -> FastSlot | None:
        if slot <= self.chosen_through or slot in self.chosen_above or slot < lead.fast_from:
            return None
        if slot > self.chosen_through + self.bounds.slots_ahead_max:
            return None
        fs = lead.fast.get(slot)
        if fs is None:
            if len(lead.fast) >= FAST_SLOTS_MAX:
                return None
            fs = lead.fast[slot] = FastSlot(self.ticks)
            if slot > lead.fast_top:
                lead.fast_top = slot
        return fs

    def _on_fast_votes(self, sender: str, m: Accepted, ready: Ready) -> None:
        lead = self.lead
        assert lead is not None
        lead.heard[sender] = self.ticks
        n = len(self.acceptors)
        qf = fast_quorum(n)
        for slot, value in zip(m.slots, m.values, strict=True):
            fs = self._fast_slot(lead, slot)
            if fs is None or sender in fs.votes:
                continue
            fs.votes[sender] = value
            if sum(1 for v in fs.votes.values() if v == value) >= qf:
                self._fast_chosen(lead, slot, fs, value, "", ready)
            elif fs.collided_tick < 0 and collided(fs.votes.values(), n, qf):
                self._collision(lead, slot, fs, ready)

    def _collision(self, lead: Leadership, slot: int, fs: FastSlot, ready: Ready) -> None:
        fs.collided_tick = self.ticks
        self.fast_stats["collisions"] += 1
        ready.event("collision_detected", slot=slot, votes=len(fs.votes), values=len(set(fs.votes.values())),
                    ballot=str(self.ballot), recovery=self.fast.recovery)
        self.collision_ticks.append(self.ticks)
        if self.fast.recovery == COORDINATED:
            self._recover_coordinated(lead, slot, fs, ready)

    def _recover_coordinated(self, lead: Leadership, slot: int, fs: FastSlot, ready: Ready) -> bool:
        """Seed 003, "collision recovery with the coordinator": the fast round's votes of a
        majority stand for the recovery round's Phase 1; propose what `choose` keeps there."""
        n = len(self.acceptors)
        if fs.recovery is not None or len(fs.votes) < classic_quorum(n):
            return False
        value = choose(fs.votes.values(), n, len(fs.votes), True)
        fs.recovery = InFlight(value, set(), self.ticks)
        accept = Accept(self.ballot.recovery(), self.chosen_through, ((slot, value),), self.history.encode())
        for acceptor in self.acceptors:
            ready.send.append((acceptor, accept))
        for learner in self.learners:
            ready.send.append((learner, accept))
        return True

    def _on_recovery_vote(self, sender: str, m: Accepted, ready: Ready) -> None:
        lead = self.lead
        assert lead is not None
        n = len(self.acceptors)
        for i, slot in enumerate(m.slots):
            fs = lead.fast.get(slot)
            if fs is None:
                continue
            if m.values:  # uncoordinated: the acceptors' own votes, a fast quorum chooses
                value = m.values[i]
                fs.rvotes[sender] = value
                if sum(1 for v in fs.rvotes.values() if v == value) >= fast_quorum(n):
                    self._fast_chosen(lead, slot, fs, value, "uncoordinated", ready)
            elif fs.recovery is not None:
                fs.recovery.acks.add(sender)
                if len(fs.recovery.acks) >= classic_quorum(n):
                    self._fast_chosen(lead, slot, fs, fs.recovery.value, "coordinated", ready)

    def _fast_chosen(self, lead: Leadership, slot: int, fs: FastSlot, value: Value, way: str,
                     ready: Ready) -> None:
        del lead.fast[slot]
        if way:
            self.fast_stats[way] += 1
            ready.event("collision_recovered", slot=slot, way=way, value=value.describe(),
                        ticks=self.ticks - max(fs.collided_tick, fs.first_tick))
        else:
            self.fast_stats["fast_chosen"] += 1
        remembered = self.chosen_batches
        for blob in value.batches:
            remembered[blob] = slot
        while len(remembered) > LOSERS_REMEMBERED:
            remembered.popitem(last=False)
        self._mark_chosen(slot, value, ready)
        # The batches that lost here and were not chosen anywhere we know: send them again (a
        # copy chosen elsewhere meanwhile is applied once: the sessions of actors/kv.py).
        # (In the order the votes came: a set's order would follow the hash seed of the process,
        # and the simulator's runs must be the same from one seed.)
        losers = [blob for v in dict.fromkeys([*fs.votes.values(), *fs.rvotes.values()]) if v != value
                  for blob in v.batches if blob not in remembered]
        if losers:
            self.fast_stats["resent_losers"] += len(losers)
            self._forward_fast(list(dict.fromkeys(losers)), ready)

    def _fast_tick(self, lead: Leadership, ready: Ready) -> bool:
        """Slots that stay open, fallback and return to fast rounds. True: we started a new
        ballot (the caller stops this tick)."""
        p = self.params
        window = p.fallback_window_ticks
        ticks = self.collision_ticks
        while ticks and ticks[0] < self.ticks - window:
            ticks.popleft()
        if lead.fast_from:
            if len(ticks) >= p.fallback_collisions:
                self.fast_stats["fallbacks"] += 1
                soon = self.ticks - self.fast_opened_tick < 2 * p.classic_hold_ticks
                self.fast_hold_ticks = min(self.fast_hold_ticks * 2, 8 * p.classic_hold_ticks) if soon \
                    else p.classic_hold_ticks
                self.fast_hold_until = self.ticks + self.fast_hold_ticks
                ready.event("classic_fallback", ballot=str(self.ballot), collisions=len(ticks),
                            window_ticks=window, hold_ticks=self.fast_hold_ticks)
                ticks.clear()
                self.want_fast = False
                self._start_election(ready, reason="classic_fallback")
                return True
            stuck = self._stuck_slot(lead)
            if stuck:
                fs = lead.fast.get(stuck)
                if fs is not None and self.fast.recovery == COORDINATED and self._recover_coordinated(
                        lead, stuck, fs, ready):
                    # (An open slot no collision was seen in, a vote missing: said, as a collision is.)
                    ready.event("collision_detected", slot=stuck, votes=len(fs.votes), ballot=str(self.ballot),
                                recovery=COORDINATED, reason="stuck")
                    return False
                self.fast_stats["new_ballot"] += 1
                ready.event("collision_detected", slot=stuck, votes=len(fs.votes) if fs else 0,
                            ballot=str(self.ballot), recovery="new_ballot")
                self._start_election(ready, reason="fast_slot_stuck")
                return True
            return False
        if not self.want_fast and self.ticks >= self.fast_hold_until and not lead.inflight:
            self.want_fast = True
            self._start_election(ready, reason="fast_again")
            return True
        return False

    def _stuck_slot(self, lead: Leadership) -> int:
        """The lowest open slot, if it has waited too long with later slots voted for (or its
        recovery round got nowhere): a vote is missing for good, or the recovery split again."""
        slot = self.chosen_through + 1
        if slot < lead.fast_from or lead.fast_top < slot:
            return 0
        fs = lead.fast.get(slot)
        since = fs.first_tick if fs is not None else min((f.first_tick for f in lead.fast.values()),
                                                        default=self.ticks)
        if fs is not None and fs.recovery is not None:
            since = fs.recovery.sent_tick
        elif fs is not None and fs.collided_tick >= 0:
            since = fs.collided_tick
        return slot if self.ticks - since >= 2 * self.params.retry_ticks else 0

    # --- clients ---------------------------------------------------------------------------

    def _redirect_to_leader(self, sender: str, ready: Ready) -> None:
        """A follower's answer to a client: the leader it heard lately, if any."""
        fresh = self.leader is not None and self.quiet_ticks < self.params.election_ticks
        ready.send.append((sender, Redirect(self.leader if fresh and self.leader else "", "not_leader")))

    def _on_submit(self, sender: str, m: Submit, ready: Ready) -> None:
        p = self.params
        if self.state is FOLLOWER:
            self._redirect_to_leader(sender, ready)
            return
        if len(m.batch) > p.batch_bytes_max:
            ready.send.append((sender, Redirect(self.name, "too_large")))
            ready.event("submit_rejected", WARNING, peer=sender, reason="too_large", bytes=len(m.batch))
            return
        if len(self.queue) >= p.queue_batches_max:
            # Back-pressure: the window and the queue are full; the client waits and retries.
            ready.send.append((sender, Redirect(self.name, "busy")))
            return
        self.queue.append((sender, m.batch))

    def _on_change_members(self, sender: str, m: ChangeMembers, ready: Ready) -> None:
        """An operator's change: answered at once when refused, else once it is chosen (a retry
        of a change already chosen or still in flight is answered the same way)."""
        def answer(ok: bool, slot: int, reason: str, leader: str = "") -> None:
            ready.send.append((sender, MembersChanged(m.request, ok, slot, reason, leader)))

        lead = self.lead
        if lead is None or not lead.serving:
            fresh = self.leader is not None and self.quiet_ticks < self.params.election_ticks
            answer(False, 0, "not the serving leader", self.leader if fresh and self.leader else "")
            return
        if self.fast.enabled:
            answer(False, 0, "fast mode: membership changes need `mode = \"classic\"` in cluster.toml")
            return
        try:
            new = decode_membership(m.members)
        except BadMembership as exc:
            answer(False, 0, str(exc))
            return
        if self.history.changes and new == self.history.latest():
            answer(True, self.history.latest_change_slot(), "already chosen")
            return
        for c, pm in self.pending:
            if pm == new:
                self._waiter(c, sender, m.request, ready)
                return
        slot = lead.next_slot
        why = self.propose_membership(new, ready)
        if why is not None:
            ready.event("membership_refused", peer=sender, reason=why)
            answer(False, 0, why)
            return
        self._waiter(slot, sender, m.request, ready)

    def _waiter(self, slot: int, client: str, request: int, ready: Ready) -> None:
        """Who waits for the change at `slot` (bounded: operators, not a crowd)."""
        if len(self.member_waiters) >= MEMBER_WAITERS_MAX:
            ready.send.append((client, MembersChanged(request, False, 0, "too many operators waiting")))
            return
        self.member_waiters.append((slot, client, request))

    def _answer_waiters(self, ready: Ready, slot: int = 0, reason: str = "") -> None:
        """The change at `slot` is chosen: tell who waits for it; with no slot, tell everyone
        why we can no longer answer (they ask the next leader)."""
        keep = []
        for c, client, request in self.member_waiters:
            if not slot:
                ready.send.append((client, MembersChanged(request, False, 0, reason, self.leader or "")))
            elif c == slot:
                ready.send.append((client, MembersChanged(request, True, slot, "chosen")))
            else:
                keep.append((c, client, request))
        self.member_waiters = keep

    # --- reads without a log write (actors/lease.py) ---------------------------------------

    def read_index(self) -> int:
        """The slot a learner must have delivered through before it answers reads that reach us
        now: every slot chosen before now is at or below it (our Phase 1 re-proposed up to the
        highest slot any acceptor of it held, and every later slot is ours to assign). While our
        fast round is open acceptors fill slots we did not assign: there a read's index is raised
        to the highest slot the answers to its round report (`_on_lease_granted`)."""
        lead = self.lead
        assert lead is not None
        return lead.next_slot - 1

    def lease_span_ticks(self) -> int:
        """How long after sending an acknowledged round the lease lasts, in our ticks (the rule a
        planted bug may break)."""
        p = self.read_params
        return lease_span(p.lease_ticks, p.clock_drift_max) if p is not None and p.lease else 0

    def _reads_for(self, ready: Ready) -> ReadState:
        """The reads of the leadership we hold now (made on first use, per ballot)."""
        rs = self.reads
        if rs is None or rs.ballot != self.ballot:
            self._drop_reads(ready, "stepped_down")
            rs = self.reads = ReadState(self.ballot)
        return rs

    def _drop_reads(self, ready: Ready, reason: str) -> None:
        """No longer the leader of the ballot the held reads wait under: tell their clients."""
        rs = self.reads
        self.reads = None
        if rs is None or not rs.held:
            return
        redirect = Redirect(self.leader if self.leader and self.leader != self.name else "", reason)
        for client in dict.fromkeys(h.client for h in rs.held):
            ready.send.append((client, redirect))

    def _lease_targets(self) -> list[str]:
        if self.simple:
            return self.acceptors
        names = {a for m in self._lease_members() for a in m.acceptor_names}
        return [a for a in self.all_acceptors if a in names]

    def _lease_members(self) -> list[Membership]:
        """The memberships a round must hear a majority of: every one that governs a slot above
        our watermark (a new leader's Phase 1 needs a majority of one of them), pending ones too."""
        out = self.history.governing(self.chosen_through + 1)
        for _, m in self.pending:
            if m not in out:
                out.append(m)
        return out

    def _round_acknowledged(self, acks: set[str]) -> bool:
        if self.simple:
            return sum(1 for a in self.acceptors if a in acks) >= self.majority
        return all(self._majority_promised(m, acks) for m in self._lease_members())

    def _on_read(self, sender: str, m: Read, ready: Ready) -> None:
        p = self.params
        if self.state is FOLLOWER:
            self._redirect_to_leader(sender, ready)
            return
        if self.state is CANDIDATE:
            ready.send.append((sender, Redirect(self.name, "busy")))  # wait for the election here
            return
        if len(m.batch) > p.batch_bytes_max:
            ready.send.append((sender, Redirect(self.name, "too_large")))
            return
        if m.learner not in self.learners:
            reject(ready, sender, m, "unknown_learner", learner=m.learner[:64])
            return
        rs = self._reads_for(ready)
        if self._leased(rs) and not self._fast_reads():
            ready.send.append((m.learner, ReadAt(self.read_index(), m.batch, self.ballot)))
            rs.served += 1
            self.read_batches["leased"] += 1
            return
        held_max = self.read_params.held_max if self.read_params is not None else ReadParams().held_max
        if len(rs.held) >= held_max:
            ready.send.append((sender, Redirect(self.name, "busy")))
            return
        # Held with the index of now, until a round sent after now is acknowledged.
        self.read_batches["held"] += 1
        rs.held.append(HeldRead(sender, m.learner, m.batch, self.read_index(), rs.round + 1))
        rs.want_round = True

    def _fast_reads(self) -> bool:
        """Our fast round is open: reads need a round's highest slots (actors/lease.py)."""
        return self.lead is not None and bool(self.lead.fast_from)

    def _leased(self, rs: ReadState) -> bool:
        """A lease runs, from acceptors that are a majority of every membership that governs a slot
        above our watermark NOW (a change chosen or proposed since brings acceptors that granted
        nothing: until a round reaches a majority of them, no lease)."""
        return self.ticks < rs.lease_until and (self.simple or self._round_acknowledged(rs.lease_acks))

    def _send_round(self, rs: ReadState, ready: Ready) -> None:
        rs.round += 1
        rs.sent[rs.round] = self.ticks
        rs.acks[rs.round] = set()
        rs.highs[rs.round] = 0
        horizon = self.ticks - self.params.election_ticks
        for r in [r for r, t in rs.sent.items() if t < horizon]:
            del rs.sent[r]
            del rs.acks[r]
            rs.highs.pop(r, None)
        renew = LeaseRenew(self.ballot, rs.round)
        for acceptor in self._lease_targets():
            ready.send.append((acceptor, renew))

    def _on_lease_granted(self, sender: str, m: LeaseGranted, ready: Ready) -> None:
        lead, rs = self.lead, self.reads
        if (lead is None or rs is None or m.ballot != self.ballot or rs.ballot != self.ballot
                or not self._member(sender)):
            return
        acks = rs.acks.get(m.round)
        if acks is None:
            return  # not ours, or confirmed already
        acks.add(sender)
        lead.heard[sender] = self.ticks
        rs.highs[m.round] = max(rs.highs.get(m.round, 0), m.highest_slot)
        if not self._round_acknowledged(acks):
            return
        sent = rs.sent[m.round]
        high = rs.highs.get(m.round, 0)
        for r in [r for r in rs.sent if r <= m.round]:
            del rs.sent[r]
            del rs.acks[r]
            rs.highs.pop(r, None)
        rs.confirmed = max(rs.confirmed, m.round)
        span = self.lease_span_ticks()
        if span and sent + span >= rs.lease_until:
            rs.lease_until = sent + span
            rs.lease_acks = acks
        if rs.held:
            keep = []
            fast = self._fast_reads()
            for h in rs.held:
                if h.round <= rs.confirmed and fast:
                    # A fast round: through the highest slot a majority voted in, answered only once
                    # delivered (the leader does not see every proposal, so no early answers).
                    ready.send.append((h.learner, ReadAt(max(h.index, high), h.batch, ZERO)))
                elif h.round <= rs.confirmed:
                    ready.send.append((h.learner, ReadAt(h.index, h.batch, self.ballot)))  # confirmed: a read index
                elif self._leased(rs) and not fast:
                    ready.send.append((h.learner, ReadAt(h.index, h.batch, self.ballot)))  # under the lease
                    rs.served += 1
                else:
                    keep.append(h)
            rs.held = keep
            if keep:
                rs.want_round = True

    def _reads_end_turn(self, ready: Ready) -> None:
        rs, lead, p = self.reads, self.lead, self.read_params
        if rs is not None and (lead is None or rs.ballot != self.ballot):
            self._drop_reads(ready, "stepped_down")
            rs = None
        if lead is None:
            return
        if rs is None:
            if p is None or not p.lease:
                return  # no reads yet, and no lease to keep
            rs = self._reads_for(ready)
        if rs.served:
            # When lease reads were served, by whom, under which ballot (the lease-overlap checks).
            ready.event("lease_reads_served", ballot=str(self.ballot), batches=rs.served, tick=self.ticks)
            rs.served = 0
        heartbeat = p is not None and p.lease and lead.last_heartbeat_tick != rs.heartbeat_seen
        if rs.want_round or heartbeat:
            rs.heartbeat_seen = lead.last_heartbeat_tick
            rs.want_round = False
            self._send_round(rs, ready)

    HANDLERS = {Promise: _on_promise, Accepted: _on_accepted, Nack: _on_nack, Heartbeat: _on_heartbeat,
                Submit: _on_submit, Repair: _on_repair, Recovered: _on_recovered, Tick: _on_tick,
                Probed: _on_probed, ChangeMembers: _on_change_members}
    HANDLERS = {**HANDLERS, Read: _on_read, LeaseGranted: _on_lease_granted}

    # --- observation -----------------------------------------------------------------------

    def invariants(self) -> None:
        # Runs after every step, so the checks are cheap and the state is built only to report.
        state, cand, lead = self.state, self.cand, self.lead
        if (cand is not None) != (state is CANDIDATE) or (lead is not None) != (state is LEADER):
            raise InvariantViolation("a proposer holds the data of its state and of no other", state=state.value,
                                     candidacy=cand is not None, leadership=lead is not None)
        ballot, known = self.ballot, self.known_ballot
        if self.round < ballot.round or (known is not ballot and known < ballot):
            raise InvariantViolation("a ballot in use was recorded first and is the highest known",
                                     round=self.round, ballot=str(ballot), known=str(known))
        if self.chosen_through + 1 in self.chosen_above:
            raise InvariantViolation("the watermark covers every chosen prefix", chosen_through=self.chosen_through)
        if lead is not None and lead.sw_slot >= lead.next_slot:
            raise InvariantViolation("new slots come after StartWorking", sw_slot=lead.sw_slot,
                                     next_slot=lead.next_slot)

    def status(self) -> dict[str, Any]:
        lead = self.lead
        own = lead or self.cand
        return {
            "role": "proposer",
            "state": "rebuilding" if self.probed is not None else self.state.value,
            "serving": lead is not None and lead.serving,
            "ballot": str(self.ballot),
            "known_ballot": str(self.known_ballot),
            "leader": self.leader,
            "chosen_through": self.chosen_through,
            "next_slot": lead.next_slot if lead is not None else 0,
            "inflight": len(own.inflight) if own is not None else 0,
            "records_in_memory": len(own.inflight) if own is not None else 0,
            "queued": len(self.queue),
            "round": self.round,
            "elections": self.elections,
            "read_batches_leased": self.read_batches["leased"],
            "read_batches_held": self.read_batches["held"],
            "mode": self.fast.mode,
            "fast_open": lead is not None and bool(lead.fast_from),
            **({f"fast_{k}": v for k, v in self.fast_stats.items()} if self.fast.enabled else {}),
        }
