"""Trust nobody on the wire (issue 10): every attack that was reproduced against the real cluster,
replayed against the real cores through the real turn driver and codec (runtime/harness/sim/
world.py). Each forged frame must be rejected with a reason, write no record, send nothing and
leave the core's state as it was; and a leader must still be elected, and commands decided,
afterwards (also across restarts). Also: the rate limit on rejection warnings, and the
simulator's Byzantine-lite forger."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from actors.ballot import Ballot
from actors.bounds import DEFAULT_BOUNDS, ROUND_MAX, SLOT_MAX, WireBounds, round_beyond, shape, slot_beyond
from actors.messages import (
    COMMANDS,
    NOOP,
    START,
    Accept,
    Accepted,
    Fetch,
    Fetched,
    Heartbeat,
    Message,
    Nack,
    Prepare,
    Probed,
    Promise,
    Recover,
    Recovered,
    Repair,
    SnapshotChunk,
    SnapshotFetch,
    SnapshotOffer,
    Value,
    Vote,
)
from actors.proposer import LEADER, ProposerParams
from runtime import codec
from runtime.harness.sim.sim import SimConfig, Simulation, core_digest
from runtime.harness.sim.world import World, WorldConfig
from runtime.turn import REJECT_LOG_TICKS, REJECTIONS

INT_MAX = 2**63 - 1
STEP = DEFAULT_BOUNDS.round_step_max
AHEAD = DEFAULT_BOUNDS.slots_ahead_max


def forge(w: World, target: str, sender: str, message: Message) -> list[str]:
    """Deliver one forged frame to `target` as a turn of its own, through the codec; check that it
    changed nothing and was rejected; return the reasons given."""
    core = w.cores[target]
    before = core_digest(core)
    disk = bytes(w.disks[target].data)
    queued = len(w.queue)
    events = len(w.events)
    turn = w.turns[target]
    counted = turn.frames_rejected + turn.messages_rejected
    limited = dict(turn._rejects)
    turn.frames([[sender.encode(), codec.encode_frame(sender, [message])]])
    assert core_digest(core) == before, f"{message!r:.200} changed {target}"
    assert bytes(w.disks[target].data) == disk, f"{message!r:.200} wrote a record at {target}"
    assert len(w.queue) == queued, f"{message!r:.200} made {target} send something"
    assert turn.frames_rejected + turn.messages_rejected > counted, f"{message!r:.200} was not rejected"
    reasons = [str(f.get("reason")) for _, _, e, f in w.events[events:] if e in REJECTIONS]
    # A reason already logged in this interval is only counted (the rate limit).
    reasons += [key[1] for key, n in turn._rejects.items() if key in limited and n > limited[key]]
    assert reasons and all(reasons), reasons
    return reasons


def commit_one(w: World, leader: str, n: int) -> None:
    """A client command through `leader`, decided and applied by every learner."""
    w.submit(leader, "c1", [[n, "put", "k", f"v{n}"]])
    w.deliver()
    for name in w.learner_names:
        assert w.learner(name).kv.data.get("k") == f"v{n}", (name, n)


def elected(w: World, name: str) -> None:
    w.elect(name)
    w.tick(n=1)
    w.deliver()
    p = w.proposer(name)
    assert p.state is LEADER and p.lead is not None and p.lead.serving, p.status()


def restart_all(w: World) -> None:
    for name in w.names:
        w.crash(name, lose_unsynced=False)
    for name in w.names:
        w.restart(name)


# --- the attacks of the issue --------------------------------------------------------------


def test_a_prepare_at_the_highest_round_is_rejected_and_leaders_are_elected_after_restarts() -> None:
    w = World()
    elected(w, "p1")
    commit_one(w, "p1", 1)
    for a in w.acceptor_names:
        assert "round_above_ceiling" in forge(w, a, "p1", Prepare(Ballot(INT_MAX, 1), 1))
        # Under the ceiling but far above any round known: a legit proposer never jumps so far.
        promised = w.acceptor(a).promised.round
        assert "round_beyond_step" in forge(w, a, "p1", Prepare(Ballot(promised + STEP + 1, 1), 1))
        assert "round_beyond_step" in forge(w, a, "p1", Recover(Ballot(ROUND_MAX, 1), 1, 2**62, 1))
    restart_all(w)
    elected(w, "p2")
    commit_one(w, "p2", 2)
    restart_all(w)
    elected(w, "p1")
    commit_one(w, "p1", 3)
    # Every round the proposers recorded reads back (their own reader never calls it corrupt).
    for p in w.proposer_names:
        assert w.proposer(p).round < ROUND_MAX


def test_a_forged_nack_or_heartbeat_cannot_push_a_proposers_rounds_to_the_ceiling() -> None:
    w = World()
    elected(w, "p1")
    p2 = w.proposer("p2")
    assert "round_beyond_step" in forge(w, "p2", "a1", Nack(p2.ballot, Ballot(ROUND_MAX, 1)))
    assert "round_beyond_step" in forge(w, "p2", "p1", Heartbeat(Ballot(ROUND_MAX - 1, 1), 0))
    assert "not_an_acceptor" in forge(w, "p2", "p1", Nack(p2.ballot, Ballot(5, 1)))
    elected(w, "p2")
    assert w.proposer("p2").round < 10


def test_a_heartbeat_at_the_highest_watermark_poisons_nobody_and_a_leader_kill_is_survived() -> None:
    w = World()
    elected(w, "p1")
    commit_one(w, "p1", 1)
    for target in ("p2", *w.learner_names):
        assert "slot_above_ceiling" in forge(w, target, "p1", Heartbeat(w.proposer("p1").ballot, INT_MAX))
    # Within the ceiling a follower takes the leader's word by at most a window per heartbeat: no
    # one message makes its next Phase 1 skip more slots than a repair heals at once.
    p2 = w.proposer("p2")
    before = p2.chosen_through
    w.step("p2", "p1", Heartbeat(w.proposer("p1").ballot, SLOT_MAX))
    assert p2.chosen_through == before + p2.params.window_slots
    p2.chosen_through = before  # (as it was: the rest of this test is about the leader's kill)
    # The same watermark in an Accept to the acceptors (the way a poisoned leader would pass it on).
    b = w.proposer("p1").ballot
    for a in w.acceptor_names:
        assert "slot_above_ceiling" in forge(w, a, "p1", Accept(b, INT_MAX, ()))
    # An acceptor takes a watermark only as far as it holds slots: never one it cannot justify.
    w.step("a1", "p1", Accept(b, SLOT_MAX, ()))
    a1 = w.acceptor("a1")
    assert a1.chosen_through <= a1.highest_slot
    # The leader dies; another takes over, and again after every actor restarted.
    w.crash("p1")
    elected(w, "p2")
    commit_one(w, "p2", 2)
    restart_all(w)
    elected(w, "p2")
    commit_one(w, "p2", 3)
    for a in w.acceptor_names:
        assert w.acceptor(a).chosen_through < 100


def test_forged_votes_never_make_a_learner_deliver() -> None:
    w = World()
    elected(w, "p1")
    commit_one(w, "p1", 1)
    b = w.proposer("p1").ballot
    lr = w.learner("l1")
    slot = lr.delivered + 1
    fake = Value(COMMANDS, b, (codec.encode_client_batch("evil", 0, [[1, "put", "k", "forged"]]),))
    # Votes from an actor that is no acceptor, or from no actor at all.
    assert "not_an_acceptor" in forge(w, "l1", "p1", Accepted(b, (slot,), (fake,)))
    assert "not_an_acceptor" in forge(w, "l1", "p2", Fetched(0, (Vote(slot, b, fake),)))
    assert "unknown_sender" in forge(w, "l1", "mallory", Accepted(b, (slot,), (fake,)))
    # Votes under a ballot no proposer owns, one slot twice, a value from a future epoch.
    assert "ballot_of_no_proposer" in forge(w, "l1", "a1", Accepted(Ballot(1, 999), (slot,), ()))
    assert "duplicate_slot" in forge(w, "l1", "a1", Accepted(b, (slot, slot), ()))
    assert "epoch_above_ballot" in forge(w, "l1", "a1", Accepted(b, (slot,), (Value(START, Ballot(b.round + 1, 1)),)))
    assert "slot_zero" in forge(w, "l1", "p1", Accept(b, 0, ((0, fake),)))
    assert lr.kv.data["k"] == "v1"
    commit_one(w, "p1", 2)


def test_two_values_under_one_ballot_make_a_slot_contested_not_an_invariant_violation() -> None:
    """A forged Accept under the leader's own ballot (a forger that knows it): the learner cannot
    tell which value the acceptors' bare votes stand for, so it counts only votes that carry their
    value; an acceptor keeps the first value and takes nothing of the second message."""
    w = World()
    elected(w, "p1")
    commit_one(w, "p1", 1)
    b = w.proposer("p1").ballot
    lr = w.learner("l1")
    slot = lr.delivered + 1
    forged = Value(NOOP, b)
    real = Value(COMMANDS, b, (codec.encode_client_batch("c1", 1, [[2, "put", "k", "v2"]]),))
    w.step("l1", "p1", Accept(b, 0, ((slot, forged),)))  # the forger was first
    w.step("l1", "p1", Accept(b, 0, ((slot, real),)))
    assert lr.tally[slot][b].contested == {}
    w.step("l1", "a1", Accepted(b, (slot,), ()))  # a bare vote no longer counts
    w.step("l1", "a2", Accepted(b, (slot,), ()))
    assert lr.delivered == slot - 1
    w.step("l1", "a1", Fetched(0, (Vote(slot, b, real),)))
    w.step("l1", "a2", Fetched(0, (Vote(slot, b, real),)))
    assert lr.delivered == slot and lr.kv.data["k"] == "v2"
    # At an acceptor: the first value stays, the conflicting message is rejected whole.
    a1 = w.acceptor("a1")
    w.step("a1", "p1", Accept(b, 0, ((slot + 5, real),)))
    w.queue.clear()
    assert "conflicting_value" in forge(w, "a1", "p1", Accept(b, 0, ((slot + 5, forged),)))
    assert a1.accepted[slot + 5] == (b, real)


def test_an_accept_for_a_far_future_slot_is_rejected_and_costs_no_time() -> None:
    w = World()
    elected(w, "p1")
    commit_one(w, "p1", 1)
    b = w.proposer("p1").ballot
    v = Value(NOOP, b)
    for a in w.acceptor_names:
        known = w.acceptor(a).known_slot()
        assert "slot_beyond_horizon" in forge(w, a, "p1", Accept(b, known + AHEAD, ((known + AHEAD + 1, v),)))
        assert "slot_beyond_leader_window" in forge(w, a, "p1", Accept(b, 0, ((AHEAD + 1, v),)))
        assert "slot_above_ceiling" in forge(w, a, "p1", Accept(b, 0, ((INT_MAX, v),)))
        assert "epoch_above_ballot" in forge(w, a, "p1", Accept(b, 0, ((2, Value(START, Ballot(b.round + 9, 1))),)))
    # An acceptor whose highest slot is far (a file from before these bounds): its Promise is
    # built from what it stores, at once, not by a loop over every slot up to it.
    a1 = w.acceptor("a1")
    a1.highest_slot = SLOT_MAX
    t0 = time.perf_counter()
    w.step("a1", "p1", Prepare(b, 1))  # the leader's own ballot again: answered, nothing raised
    w.step("a1", "p1", Recover(b, 1, SLOT_MAX, 7))
    assert time.perf_counter() - t0 < 1.0
    (promise,) = [e.message for e in w.queue if isinstance(e.message, Promise)]
    assert promise.highest_slot == SLOT_MAX and len(promise.votes) <= len(a1.accepted)
    w.queue.clear()
    a1.highest_slot = max(a1.accepted)
    # Across restarts nothing spins, and a leader is elected and serves.
    restart_all(w)
    t0 = time.perf_counter()
    elected(w, "p2")
    commit_one(w, "p2", 2)
    assert time.perf_counter() - t0 < 5.0


def test_a_phase_one_never_fills_more_than_the_horizon_at_once() -> None:
    """An acceptor that reports a far highest slot (forged, or poisoned before these bounds): the
    candidate re-proposes at most `slots_ahead_max` slots and asks again from the next one."""
    w = World(WorldConfig(params=replace(WorldConfig().params, slots_ahead_max=100)))
    p = w.proposer("p1")
    w.perform("p1", p.campaign)
    w.queue.clear()
    b = p.ballot
    for a in ("a1", "a2"):
        w.step("p1", a, Promise(b, 1, 0, SLOT_MAX, SLOT_MAX, ()))
    assert p.cand is not None and p.cand.p1_from == 101
    assert len(p.cand.inflight) == 100
    assert any(e == "phase1_capped" for _, _, e, _ in w.events)


def test_shape_rejects_what_no_receiver_may_take() -> None:
    b = Ballot(1, 1)
    v = Value(NOOP, b)
    assert shape(Accept(b, 0, ((1, v),))) is None
    assert shape(Accept(Ballot(ROUND_MAX + 1, 1), 0, ())) == "round_above_ceiling"
    assert shape(Accept(Ballot(1, 10**7), 0, ())) == "node_above_ceiling"
    assert shape(Accept(b, SLOT_MAX + 1, ())) == "slot_above_ceiling"
    assert shape(Accept(b, 0, ((1, v), (1, v)))) == "duplicate_slot"
    assert shape(Promise(b, 1, 0, 1, 1, (Vote(1, Ballot(2, 1), v),))) == "vote_above_promise"
    assert shape(Heartbeat(b, SLOT_MAX + 1)) == "slot_above_ceiling"
    assert shape(Prepare(b, 0)) == "slot_zero"



# --- shape and the relative bounds at their exact boundaries ------------------------------------
# The numbers are written out, not read from actors/bounds.py: a test that takes the bound from
# the module under test would move with it. Each is the documented one (runtime/config.py for the
# proposer ids and the [limits] defaults).

NODE_LIMIT = 1_000_000  # runtime/config.py: a proposer id is from 1 to 1000000
ENTRIES_LIMIT = 1 << 20  # slots in one Accept or Accepted, votes in one reply
STEP_DEFAULT = 1_000_000  # [limits] ballot_round_step_max
AHEAD_DEFAULT = 1_000_000  # [limits] slots_ahead_max
TOP = Ballot(ROUND_MAX, NODE_LIMIT)  # the highest ballot any receiver may take


def test_the_default_relative_bounds_are_the_documented_ones_on_both_sides() -> None:
    """An acceptor without configured bounds (DEFAULT_BOUNDS) and a proposer with default params
    must agree, or an honest leader's rounds or slots could be refused."""
    assert DEFAULT_BOUNDS == WireBounds(STEP_DEFAULT, AHEAD_DEFAULT) == WireBounds()
    params = ProposerParams()
    assert (params.ballot_round_step_max, params.slots_ahead_max) == (STEP_DEFAULT, AHEAD_DEFAULT)


@pytest.mark.parametrize("known", [0, 7, ROUND_MAX - STEP_DEFAULT - 1])
def test_round_beyond_takes_exactly_the_step_and_the_ceiling(known: int) -> None:
    assert round_beyond(Ballot(known + STEP_DEFAULT, 1), known, DEFAULT_BOUNDS) is None
    assert round_beyond(Ballot(known + STEP_DEFAULT + 1, 1), known, DEFAULT_BOUNDS) == "round_beyond_step"
    small = WireBounds(round_step_max=3, slots_ahead_max=1)
    assert round_beyond(Ballot(known + 3, NODE_LIMIT), known, small) is None
    assert round_beyond(Ballot(known + 4, 1), known, small) == "round_beyond_step"
    # The ceiling holds whatever the receiver knows (a file from before these bounds).
    assert round_beyond(Ballot(ROUND_MAX, 1), ROUND_MAX, DEFAULT_BOUNDS) is None
    assert round_beyond(Ballot(ROUND_MAX + 1, 1), ROUND_MAX, DEFAULT_BOUNDS) == "round_above_ceiling"


@pytest.mark.parametrize("known", [0, 7, SLOT_MAX - AHEAD_DEFAULT - 1])
def test_slot_beyond_takes_exactly_the_horizon_and_the_ceiling(known: int) -> None:
    assert slot_beyond(known + AHEAD_DEFAULT, known, DEFAULT_BOUNDS) is None
    assert slot_beyond(known + AHEAD_DEFAULT + 1, known, DEFAULT_BOUNDS) == "slot_beyond_horizon"
    small = WireBounds(round_step_max=1, slots_ahead_max=5)
    assert slot_beyond(known + 5, known, small) is None
    assert slot_beyond(known + 6, known, small) == "slot_beyond_horizon"
    assert slot_beyond(SLOT_MAX, SLOT_MAX, DEFAULT_BOUNDS) is None
    assert slot_beyond(SLOT_MAX + 1, SLOT_MAX, DEFAULT_BOUNDS) == "slot_above_ceiling"


_V = Value(NOOP, Ballot(1, 1))
_VOTE = Vote(1, Ballot(1, 1), _V)
# One valid message of every kind shape checks, and which of its fields are a ballot, a slot
# (1 to SLOT_MAX) or a watermark (0 to SLOT_MAX).
_FIELDS: list[tuple[Message, str, str]] = []
for _m, _ballots, _slots, _marks in [
    (Accept(Ballot(1, 1), 0, ((1, _V),)), ["ballot"], [], ["chosen_through"]),
    (Accepted(Ballot(1, 1), (1,), (_V,)), ["ballot"], [], []),
    (Heartbeat(Ballot(1, 1), 0), ["ballot"], [], ["chosen_through"]),
    (Prepare(Ballot(1, 1), 1), ["ballot"], ["from_slot"], []),
    (Promise(Ballot(1, 1), 1, 0, 0, 0, (_VOTE,)), ["ballot"], ["from_slot"],
     ["chosen_through", "highest_slot", "reported_through"]),
    (Nack(Ballot(1, 1), Ballot(1, 1)), ["ballot", "promised"], [], []),
    (Recover(Ballot(1, 1), 1, 1, 0), ["ballot"], ["from_slot", "to_slot"], []),
    (Recovered(Ballot(1, 1), 0, 0, 0, (_VOTE,), 0, 0), ["ballot"], [],
     ["from_slot", "reported_through", "compacted_through", "snapshot_slot"]),
    (Fetch(1, 1), [], ["from_slot", "to_slot"], []),
    (Repair(1, 1), [], ["from_slot", "to_slot"], []),
    (Fetched(0, (_VOTE,), 0, 0), [], [], ["chosen_through", "compacted_through", "snapshot_slot"]),
    (Probed(Ballot(1, 1), 0, 0), ["promised"], [], ["highest_slot", "chosen_through"]),
    (SnapshotOffer(1, 0, 0), [], ["slot"], []),
    (SnapshotFetch(1, 0, 0), [], ["slot"], []),
    (SnapshotChunk(1, 0, 0, 0, b""), [], ["slot"], []),
]:
    _FIELDS += [(_m, f, "ballot") for f in _ballots] + [(_m, f, "slot") for f in _slots]
    _FIELDS += [(_m, f, "watermark") for f in _marks]


@pytest.mark.parametrize(("base", "field", "kind"), _FIELDS,
                         ids=[f"{type(m).__name__}.{f}" for m, f, _ in _FIELDS])
def test_shape_takes_every_number_up_to_its_ceiling_and_not_one_more(base: Message, field: str, kind: str) -> None:
    """Every ballot, slot and watermark of every message, alone at its limit: the largest allowed
    passes, one more is rejected with the reason of that bound."""
    assert shape(base) is None

    def at(x: object) -> str | None:
        return shape(replace(base, **{field: x}))  # type: ignore[type-var]

    if kind == "ballot":
        assert at(TOP) is None
        assert at(Ballot(ROUND_MAX + 1, 1)) == "round_above_ceiling"
        assert at(Ballot(1, NODE_LIMIT + 1)) == "node_above_ceiling"
    else:
        assert at(SLOT_MAX) is None
        assert at(SLOT_MAX + 1) == "slot_above_ceiling"
        assert at(0) == (None if kind == "watermark" else "slot_zero")


def test_shape_takes_at_most_the_entries_ceiling_in_one_message() -> None:
    b = Ballot(1, 1)
    n = ENTRIES_LIMIT
    # Accepted: the largest allowed passes whole (cheap: a slot is an int).
    assert shape(Accepted(b, tuple(range(1, n + 1)), ())) is None
    assert shape(Accepted(b, tuple(range(1, n + 2)), ())) == "too_many_entries"
    # Accept and the votes of a reply: at the limit the count is no reason (the first entry is
    # what is rejected), one more and it is, before any entry is looked at.
    assert shape(Accept(b, 0, ((0, _V),) * n)) == "slot_zero"
    assert shape(Accept(b, 0, ((1, _V),) * (n + 1))) == "too_many_entries"
    for reply in (Promise(b, 1, 0, 0, 0, ()), Recovered(b, 0, 0, 0, ()), Fetched(0, ())):
        assert shape(replace(reply, votes=(Vote(0, b, _V),) * n)) == "slot_zero"
        assert shape(replace(reply, votes=(_VOTE,) * (n + 1))) == "too_many_votes"


def test_shape_checks_every_entry_of_an_accept_and_an_accepted() -> None:
    b = Ballot(5, 2)
    # Accept: each entry's slot and value; two values for one slot.
    assert shape(Accept(b, 0, ((1, _V), (SLOT_MAX, Value(NOOP, b))))) is None
    assert shape(Accept(b, 0, ((1, _V), (SLOT_MAX + 1, _V)))) == "slot_above_ceiling"
    assert shape(Accept(b, 0, ((1, _V), (0, _V)))) == "slot_zero"
    assert shape(Accept(b, 0, ((1, _V), (2, _V), (1, _V)))) == "duplicate_slot"
    # Accepted: each slot, each value, the ballot they are under.
    assert shape(Accepted(b, (1, SLOT_MAX), (_V, Value(START, b)))) is None
    assert shape(Accepted(b, (1, SLOT_MAX + 1), ())) == "slot_above_ceiling"
    assert shape(Accepted(b, (1, 0), ())) == "slot_zero"
    assert shape(Accepted(b, (1, 2, 1), ())) == "duplicate_slot"
    assert shape(Accepted(b, (1,), (_V, Value(START, Ballot(5, 3))))) == "epoch_above_ballot"
    assert shape(Accepted(TOP, (1,), ())) is None
    assert shape(Accepted(Ballot(ROUND_MAX + 1, 1), (1,), ())) == "round_above_ceiling"


def test_shape_checks_a_values_epoch_against_the_ceilings_and_its_ballot() -> None:
    """An epoch below the ballot it travels under may still hold a number out of bounds."""
    under = Ballot(2, 1)
    for wrap in (lambda v: Accept(under, 0, ((1, v),)), lambda v: Accepted(under, (1,), (v,)),
                 lambda v: Fetched(0, (Vote(1, under, v),))):
        assert shape(wrap(Value(NOOP, Ballot(1, NODE_LIMIT)))) is None
        assert shape(wrap(Value(NOOP, Ballot(1, NODE_LIMIT + 1)))) == "node_above_ceiling"
        assert shape(wrap(Value(NOOP, under))) is None
        assert shape(wrap(Value(NOOP, Ballot(2, 2)))) == "epoch_above_ballot"
    top = Ballot(ROUND_MAX, 1)
    assert shape(Accept(top, 0, ((1, Value(NOOP, top)),))) is None
    assert shape(Accept(top, 0, ((1, Value(NOOP, Ballot(ROUND_MAX + 1, 1))),))) == "round_above_ceiling"


@pytest.mark.parametrize("reply", [Promise(Ballot(3, 1), 1, 0, 0, 0, ()), Recovered(Ballot(3, 1), 0, 0, 0, ()),
                                   Fetched(0, ())], ids=["Promise", "Recovered", "Fetched"])
def test_shape_checks_every_vote_of_a_reply(reply: Promise | Recovered | Fetched) -> None:
    b = Ballot(3, 1)

    def votes(*vs: Vote) -> str | None:
        return shape(replace(reply, votes=vs))

    assert votes(_VOTE, Vote(SLOT_MAX, b, Value(NOOP, b))) is None
    assert votes(_VOTE, Vote(SLOT_MAX + 1, b, _V)) == "slot_above_ceiling"
    assert votes(_VOTE, Vote(0, b, _V)) == "slot_zero"
    assert votes(_VOTE, Vote(2, b, Value(NOOP, Ballot(3, 2)))) == "epoch_above_ballot"
    assert votes(_VOTE, Vote(2, Ballot(1, NODE_LIMIT + 1), _V)) == "node_above_ceiling"
    # One slot twice, even with the same vote: a reply reports a slot once.
    assert votes(_VOTE, Vote(2, b, _V), _VOTE) == "duplicate_slot"
    assert votes(Vote(2, b, _V), Vote(2, Ballot(2, 1), _V)) == "duplicate_slot"
    if isinstance(reply, Fetched):  # under no promise: a vote's ballot is bound only by the ceiling
        assert votes(Vote(2, TOP, _V)) is None
        assert votes(Vote(2, Ballot(ROUND_MAX + 1, 1), _V)) == "round_above_ceiling"
    else:  # never above the promise the reply is under
        assert votes(Vote(2, b, _V)) is None
        assert votes(Vote(2, Ballot(3, 2), _V)) == "vote_above_promise"


# --- rate limits on rejection warnings ---------------------------------------------------------


def test_a_flood_of_rejections_logs_one_warning_per_reason_and_peer_then_a_summary() -> None:
    w = World()
    turn = w.turns["a1"]
    flood = [[b"p1", codec.encode_frame("p1", [Prepare(Ballot(INT_MAX, 1), 1)])] for _ in range(500)]
    flood += [[f"m{i}".encode(), codec.encode_frame(f"m{i}", [Prepare(Ballot(1, 1), 1)])] for i in range(500)]
    turn.frames(flood)
    logged = [f for _, _, e, f in w.events if e in REJECTIONS]
    # One for p1's reason, one per invented identity up to the key limit; everything else counted.
    assert 2 <= len(logged) <= 70
    assert turn.frames_rejected == 1000
    w.tick(["a1"], n=REJECT_LOG_TICKS)
    summaries = [f for _, _, e, f in w.events if e == "frames_rejected"]
    assert len(summaries) == 1 and summaries[0]["total"] == 1000 - len(logged)
    # A new interval: the next rejection is logged at once again.
    before = len([1 for _, _, e, _ in w.events if e in REJECTIONS])
    turn.frames([[b"p1", codec.encode_frame("p1", [Prepare(Ballot(INT_MAX, 1), 1)])]])
    assert len([1 for _, _, e, _ in w.events if e in REJECTIONS]) == before + 1


# --- the simulator's Byzantine-lite forger -------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forged_frames_mixed_into_a_run_change_nothing(seed: int) -> None:
    """With the forger on, every forged frame is rejected and changes nothing (the forger checks
    each), the run keeps every invariant, and it is the very run of the same seed without the
    forger: the same trace hash."""
    config: dict[str, Any] = {"safety_ms": 1500, "liveness_ms": 15000, "ops_per_client": 15}
    plain = Simulation(seed, SimConfig(**config), check_linearizability=False).run()
    forged = Simulation(seed, SimConfig(**config, byzantine=True), check_linearizability=False).run()
    assert forged.ok, (forged.rule, forged.detail, forged.last_events)
    assert forged.forged > 20 and forged.forged_reasons
    assert (forged.trace_hash, forged.acked) == (plain.trace_hash, plain.acked)
    # And the bounds never cost honest traffic anything: no legit message was rejected by one.
    bound_reasons = {"round_above_ceiling", "round_beyond_step", "slot_above_ceiling", "slot_beyond_horizon",
                     "slot_beyond_leader_window", "node_above_ceiling", "epoch_above_ballot", "vote_above_promise",
                     "duplicate_slot", "slot_zero", "conflicting_value", "ballot_of_no_proposer"}
    assert not bound_reasons & set(plain.rejected), plain.rejected


# --- the model checker: a watermark clamped to what an acceptor holds is safe everywhere ----------


@pytest.mark.slow  # a model-checking search: seconds, not milliseconds
def test_a_watermark_as_high_as_an_acceptor_takes_one_keeps_agreement_and_durability() -> None:
    """Every use of an acceptor's watermark (its Promise's start and report, its Fetched, the
    snapshot it fetches and compacts to) with the watermark raised to the highest slot it holds,
    chosen or not, in every interleaving of a bounded search that also compacts once."""
    from runtime.harness.sim.model import Bounds, ModelChecker

    bounds = Bounds(campaigns=(1, 1), duplicates=0, restarts=1, compactions=1, watermarks=1, states_max=20_000)
    result = ModelChecker(bounds).run()
    assert result.ok, (result.violation, result.trail)
    assert result.states > 10_000


def test_a_proposer_never_writes_a_round_its_own_reader_would_refuse() -> None:
    """A file from before these bounds may hold a round at the codec's limit: the proposer then
    refuses to campaign rather than record a round that could not be read back."""
    from actors.records import RoundRecord

    w = World()
    p = w.proposer("p1")
    p.apply(RoundRecord(INT_MAX))
    w.perform("p1", p.campaign)
    assert p.state.value == "follower" and p.round == INT_MAX
    assert any(e == "election_refused" for _, _, e, _ in w.events)
    for record in codec.decode_records(codec.encode_records([RoundRecord(ROUND_MAX + 1)])):
        assert record == RoundRecord(ROUND_MAX + 1)  # the highest round it ever writes reads back


def test_a_leader_whose_start_working_the_acceptors_refuse_makes_way() -> None:
    """A forged Promise (an acceptor's identity, the candidate's own ballot) with a far watermark:
    the leader puts StartWorking beyond every acceptor's horizon, they refuse it, and it would
    heartbeat forever without serving. It steps down after a few election timeouts instead, and
    another proposer is elected and serves."""
    from actors.proposer import NOT_SERVING_ELECTIONS

    w = World()
    elected(w, "p1")
    commit_one(w, "p1", 1)
    w.crash("p1")
    p2 = w.proposer("p2")
    for _ in range(1000):
        if p2.state.value == "candidate":
            break
        w.tick(["p2"])
    assert p2.state.value == "candidate"
    w.deliver(lambda e: e.dst in w.acceptor_names)  # the Prepares; the Promises wait
    w.take(lambda e: e.src == "a1")
    far = 5 * AHEAD
    w.step("p2", "a1", Promise(p2.ballot, p2.cand.p1_from if p2.cand else 1, far, far, far, ()))
    w.deliver()
    assert p2.state is LEADER and p2.lead is not None and not p2.lead.serving
    assert any(f.get("reason") == "slot_beyond_horizon" for _, _, e, f in w.events if e == "message_rejected")
    for _ in range(NOT_SERVING_ELECTIONS * p2.params.election_ticks + 1):
        w.tick(["p2"])
        w.deliver()
    assert p2.state.value == "follower"
    assert any(e == "stepped_down" and f.get("reason") == "not_serving" for _, _, e, f in w.events)
    w.restart("p1")
    elected(w, "p1")
    commit_one(w, "p1", 2)
