"""Membership change through the log (issue 11): the alpha rule, per-slot quorums at learners
and leaders, Phase 1 across memberships, the history acceptors keep and relay, refusals; then
the simulator growing, shrinking and replacing acceptors under faults, and the planted bugs that
use a membership before its alpha window."""

from __future__ import annotations

import random

import pytest

from actors.acceptor import Acceptor
from actors.ballot import ZERO, Ballot
from actors.kv import KVStore
from actors.learner import Learner
from actors.membership import BadMembership, History, Membership, decode, encode, invalid, refusal
from actors.messages import (
    MEMBERSHIP,
    NOOP,
    START,
    Accept,
    Accepted,
    Fetch,
    Fetched,
    Heartbeat,
    Nack,
    Prepare,
    Probe,
    Probed,
    Promise,
    Recover,
    Recovered,
    Submit,
    Tick,
    Value,
    Vote,
)
from actors.proposer import LEADER, Proposer, ProposerParams
from actors.records import AcceptRecord, MembersRecord, RebuildRecord, SnapshotRecord
from runtime import codec
from runtime.harness import bugs

B3 = Membership((("p1", 1, "tcp://h:1"), ("p2", 2, "tcp://h:2")),
                (("a1", "tcp://h:11"), ("a2", "tcp://h:12"), ("a3", "tcp://h:13")), (("l1", "tcp://h:21"),))
B5 = B3.with_acceptor("a4", "tcp://h:14").with_acceptor("a5", "tcp://h:15")
ALPHA = 3
B1 = Ballot(1, 1)


def change(m: Membership, epoch: Ballot = B1) -> Value:
    return Value(MEMBERSHIP, epoch, (encode(m),))


# --- the value and the history -------------------------------------------------------------


def test_a_membership_round_trips_canonically_and_bad_ones_are_refused() -> None:
    assert decode(encode(B5)) == B5 and encode(decode(encode(B5))) == encode(B5)
    with pytest.raises(BadMembership):
        decode(b"not json")
    assert invalid(B3.without("a3")) == "fewer than 3 acceptors"
    assert invalid(B3.with_acceptor("a1", "tcp://h:99")) == "duplicate name"
    assert invalid(B3.with_acceptor("a9", "tcp://h:11")) == "duplicate endpoint"
    assert invalid(B3.with_proposer("p3", 1, "tcp://h:3")) == "duplicate or non-positive proposer id"
    with pytest.raises(BadMembership):
        B3.without("nobody")


def test_a_change_chosen_at_c_decides_the_slots_from_c_plus_alpha() -> None:
    h = History(B3, ALPHA)
    assert h.encode() == b""  # no change: nothing travels
    h.learn(5, B5)
    assert [h.at(s) for s in (1, 5, 7, 8, 100)] == [B3, B3, B3, B5, B5]
    assert h.governing(6) == [B3, B5] and h.governing(8) == [B5]
    # Facts merge whatever order they are learned in, and a relayed history teaches the rest.
    other = History(B3, ALPHA)
    other.learn(20, B3)
    assert other.merge(h.encode()) and [s for s, _ in other.changes] == [5, 20]
    assert not other.merge(h.encode())
    assert other.at(22) == B5 and other.at(23) == B3


def test_one_change_at_a_time() -> None:
    h = History(B3, ALPHA)
    assert refusal(h, B3, 4, pending=False) == "no change"
    assert refusal(h, B5, 4, pending=True) == "another change is not chosen yet"
    h.learn(5, B5)
    assert refusal(h, B3, 7, pending=False) == "another change is inside its alpha window until slot 8"
    assert refusal(h, B3, 8, pending=False) is None
    assert refusal(h, B5.without("a1").without("a2").without("a3"), 8, False) == "fewer than 3 acceptors"


# --- the wire ------------------------------------------------------------------------------


def test_the_wire_is_unchanged_without_a_change_and_carries_the_history_with_one() -> None:
    beat = Heartbeat(B1, 7)
    assert codec.encode_message(beat) == [3, 1, 1, 7]
    h = History(B3, ALPHA)
    h.learn(5, B5)
    for m in (Heartbeat(B1, 7, h.encode()), Accept(B1, 7, ((9, change(B3)),), h.encode()),
              Promise(B1, 1, 7, 9, 9, (), h.encode()), Accept(B1, 7, ((9, change(B3)),))):
        assert codec.decode_frame(codec.encode_frame("p1", [m]))[1] == [m]
    record = MembersRecord(h.encode())
    assert codec.decode_records(codec.encode_records([record])) == [record]
    bad = codec.encode_frame("p1", [Accept(B1, 0, ((1, Value(MEMBERSHIP, B1, (b"x", b"y"))),))])
    with pytest.raises(codec.DecodeError):
        codec.decode_frame(bad)


# --- learners ------------------------------------------------------------------------------


def learner(history: History | None = None, cls: type[Learner] = Learner) -> Learner:
    return cls("l1", ["a1", "a2", "a3"], codec.decode_client_batch, KVStore(64, 64), fetch_ticks=3,
               proposer_ids={"p1": 1, "p2": 2}, history=history or History(B3, ALPHA))


def vote(lr: Learner, acceptor: str, slot: int, value: Value, ballot: Ballot = B1) -> None:
    lr.step("p1", Accept(ballot, 0, ((slot, value),)))
    lr.step(acceptor, Accepted(ballot, (slot,), ()))
    lr.invariants()


def test_a_learner_counts_each_slot_by_its_own_membership() -> None:
    lr = learner()
    for a in ("a1", "a2"):
        vote(lr, a, 1, change(B5))
    assert lr.delivered == 1 and lr.history.at(4) == B5 and "a4" in lr.acceptor_set
    noop = Value(NOOP, B1)
    for slot in (2, 3):  # still the old membership's: two of three
        for a in ("a1", "a2"):
            vote(lr, a, slot, noop)
    assert lr.delivered == 3
    for a in ("a1", "a2"):  # slot 4 is the new one's: two of five are not enough
        vote(lr, a, 4, noop)
    assert lr.delivered == 3
    vote(lr, "a4", 4, noop)
    assert lr.delivered == 4


def test_a_removed_acceptor_counts_for_nothing_after_it_left() -> None:
    lr = learner(History(B5, ALPHA))
    for a in ("a1", "a2", "a3"):
        vote(lr, a, 1, change(B3))
    noop = Value(NOOP, B1)
    for a in ("a4", "a5", "a1"):  # slot 4: a4 and a5 are gone, one vote of three remains
        vote(lr, a, 4, noop)
    for slot in (2, 3):
        for a in ("a1", "a4", "a5"):
            vote(lr, a, slot, noop)
    assert lr.delivered == 3
    vote(lr, "a2", 4, noop)
    assert lr.delivered == 4


def test_a_slot_counted_before_its_membership_was_known_is_checked_again_at_delivery() -> None:
    lr = learner()
    noop = Value(NOOP, B1)
    for a in ("a1", "a2"):
        vote(lr, a, 4, noop)  # counted with the old membership: tentatively chosen
    assert 4 in lr.chosen
    for slot in (2, 3):
        for a in ("a1", "a2"):
            vote(lr, a, slot, noop)
    for a in ("a1", "a2"):
        vote(lr, a, 1, change(B5))  # slot 4 is the new membership's after all
    assert lr.delivered == 3 and 4 not in lr.chosen
    vote(lr, "a5", 4, noop)
    assert lr.delivered == 4


def test_a_learner_snapshot_carries_the_history_only_after_a_change() -> None:
    lr = learner()
    assert len(lr.snapshot_state()) == 5
    for a in ("a1", "a2"):
        vote(lr, a, 1, change(B5))
    state = lr.snapshot_state()
    assert len(state) == 6
    fresh = learner()
    fresh.restore(SnapshotRecord(1, 10, 0), state)
    assert fresh.history.at(4) == B5 and "a5" in fresh.acceptor_set


def test_the_planted_learner_bug_uses_a_change_at_once() -> None:
    lr = learner(History(B5, ALPHA), bugs.MembershipBeforeAlpha)
    for a in ("a1", "a2", "a3"):
        vote(lr, a, 1, change(B3))
    for a in ("a1", "a2"):
        vote(lr, a, 2, Value(NOOP, B1))  # slot 2 is still the five's: the bug delivers it on two
    assert lr.delivered == 2


def test_a_learner_added_late_fetches_from_the_acceptors_the_leaders_history_names() -> None:
    # It starts from the bootstrap membership; a1, a2, a3 were replaced by a4, a5, a6 (and may be
    # gone). The leader's heartbeat brings the history and the watermark: the gap fetch goes to
    # the new three as well, and their votes count for their slots.
    lr = learner()
    h = History(B3, ALPHA)
    h.learn(2, Membership(B3.proposers, (("a4", "tcp://h:14"), ("a5", "tcp://h:15"), ("a6", "tcp://h:16")),
                          B3.learners))
    lr.step("p1", Heartbeat(B1, 9, h.encode()))
    sent: list[str] = []
    for _ in range(3):
        sent += [d for d, m in lr.step("", Tick()).send if isinstance(m, Fetch)]
    assert sent == ["a1", "a2", "a3", "a4", "a5", "a6"]
    lr.step("a4", Fetched(9, (Vote(9, B1, Value(NOOP, B1)),)))
    assert 9 in lr.tally and lr.tally[9][B1].voters == ["a4"]


# --- acceptors -----------------------------------------------------------------------------


def test_an_acceptor_keeps_the_history_before_the_watermark_it_covers_and_reports_it() -> None:
    acc = Acceptor("a1", {"p1": 1, "p2": 2}, ["l1"], 1 << 20)
    h = History(B3, ALPHA)
    h.learn(2, B5)
    out = acc.step("p1", Accept(B1, 2, ((3, Value(NOOP, B1)),), h.encode()))
    assert [type(r) for r in out.persist] == [MembersRecord, AcceptRecord]
    promise = acc.step("p2", Prepare(Ballot(2, 2), 1)).send[0][1]
    assert isinstance(promise, Promise) and promise.members == h.encode()
    assert MembersRecord(h.encode()) in acc.checkpoint()
    again = Acceptor("a1", {"p1": 1, "p2": 2}, ["l1"], 1 << 20)
    for record in out.persist:
        again.apply(record)
    assert again.history.changes == h.changes


# --- an acceptor that lost its file, after a change -------------------------------------------

NEW3 = Membership(B3.proposers, (("a4", "tcp://h:14"), ("a5", "tcp://h:15"), ("a6", "tcp://h:16")), B3.learners)


def wiped(name: str, alpha: int = ALPHA) -> Acceptor:
    """An acceptor configured with the bootstrap a1, a2, a3 that lost its file (rebuilding)."""
    acc = Acceptor(name, {"p1": 1, "p2": 2}, ["l1"], 1 << 20, acceptors=["a1", "a2", "a3"], alpha=alpha)
    acc.apply(RebuildRecord(False))
    return acc


def probed(acc: Acceptor, answers: dict[str, Ballot]) -> None:
    for sender, promised in answers.items():
        acc.step(sender, Probed(promised, 9, 5))


def test_a_wiped_acceptor_rebuilds_from_the_membership_that_names_it_not_from_the_bootstrap_one() -> None:
    # a1, a2, a3 were replaced by a4, a5, a6 at slot 2; the old three still answer, with the
    # promise of an old ballot. a5 lost its file: it knows no membership that names it.
    a5 = wiped("a5")
    probes = [d for d, m in a5.step("", Tick()).send if isinstance(m, Probe)]
    assert probes == ["a1", "a2", "a3"]  # all it knows of
    probed(a5, {"a1": B1, "a2": B1, "a3": B1})
    assert a5.rebuild is not None and a5.rebuild.floor_ballot is None and a5.promised == ZERO
    # A leader's Accept brings the history: the membership that names it is a4, a5, a6.
    h = History(B3, ALPHA)
    h.learn(2, NEW3)
    out = a5.step("p2", Accept(Ballot(2, 2), 4, (), h.encode()))
    assert MembersRecord(h.encode()) in out.persist  # a fact, kept across a restart
    assert a5.rebuild_quorums() == [["a4", "a5", "a6"]] and a5.rebuild.floor_ballot is None
    for _ in range(10):
        probes = [d for d, m in a5.step("", Tick()).send if isinstance(m, Probe)] or probes
    assert probes == ["a4", "a6"]
    probed(a5, {"a4": Ballot(2, 2)})
    assert a5.rebuild.floor_ballot is None  # one of the other two is not more than half of three
    probed(a5, {"a6": Ballot(3, 1)})
    assert a5.rebuild.floor_ballot == Ballot(3, 1) == a5.promised  # not the bootstrap's 1.1
    # A leader at or below that floor may count votes it forgot: refused, and an election comes.
    out = a5.step("p2", Accept(Ballot(2, 2), 4, ((5, Value(NOOP, Ballot(2, 2))),), h.encode()))
    assert isinstance(out.send[0][1], Nack) and a5.rebuild is not None
    a5.step("p1", Accept(Ballot(4, 1), 4, ((5, Value(NOOP, Ballot(4, 1))),), h.encode()))
    assert a5.rebuild is None and a5.accepted[5][0] == Ballot(4, 1)


def test_a_rebuilding_acceptor_that_hears_of_a_pending_membership_naming_it_asks_that_one_too() -> None:
    # a1 rebuilds from a2 and a3; then a leader's Accept carries a change (not chosen yet) to
    # a1, a5, a6: its votes there would count for that membership too, so it asks a5 and a6.
    a1 = wiped("a1")
    probed(a1, {"a2": B1, "a3": B1})
    assert a1.rebuild is not None and a1.rebuild.floor_ballot == B1
    pending = Membership(B3.proposers, (("a1", "tcp://h:11"), ("a5", "tcp://h:15"), ("a6", "tcp://h:16")),
                         B3.learners)
    out = a1.step("p2", Accept(Ballot(2, 2), 1, ((2, change(pending, Ballot(2, 2))),)))
    assert [e for _, e, _ in out.events if e == "rebuild_reprobing"]
    assert a1.rebuild is not None and a1.rebuild.floor_ballot is None  # it did not rejoin under 2.2
    assert {d for d, m in a1.step("", Tick()).send if isinstance(m, Probe)} == {"a5", "a6"}
    probed(a1, {"a5": Ballot(3, 2), "a6": Ballot(2, 2)})
    assert a1.rebuild.floor_ballot == Ballot(3, 2)


def test_a_membership_that_no_longer_governs_a_slot_above_the_watermark_is_not_asked() -> None:
    # a1 is in the bootstrap and in the change chosen at slot 2 (a1, a5, a6). Once the leaders'
    # watermark passes 2 + alpha, no open slot is the bootstrap's: a5 and a6 are enough.
    a1 = wiped("a1")
    h = History(B3, ALPHA)
    later = Membership(B3.proposers, (("a1", "tcp://h:11"), ("a5", "tcp://h:15"), ("a6", "tcp://h:16")),
                       B3.learners)
    h.learn(2, later)
    a1.step("p1", Accept(B1, 1, (), h.encode()))
    assert a1.rebuild_quorums() == [["a1", "a2", "a3"], ["a1", "a5", "a6"]]
    a1.step("p1", Accept(B1, 2 + ALPHA - 1, (), h.encode()))
    assert a1.chosen_through == 2 + ALPHA - 1 and a1.rebuild_quorums() == [["a1", "a5", "a6"]]
    # Without the alpha (a shell that does not say), every membership that names it counts.
    unknown = wiped("a1", alpha=0)
    unknown.step("p1", Accept(B1, 2 + ALPHA - 1, (), h.encode()))
    assert unknown.rebuild_quorums() == [["a1", "a2", "a3"], ["a1", "a5", "a6"]]


def test_an_acceptor_answers_a_recover_through_its_end_when_it_holds_nothing_above_its_highest_slot() -> None:
    # Else a leader re-confirming slots 3..6 takes the answer as cut short at 4 (its highest
    # slot) and re-confirms nothing (a learner waiting for slot 5 would wait for ever).
    acc = Acceptor("a3", {"p1": 1, "p2": 2}, ["l1"], 1 << 20)
    acc.step("p1", Accept(B1, 2, ((3, Value(NOOP, B1)), (4, Value(NOOP, B1)))))
    answer = acc.step("p2", Recover(Ballot(2, 2), 3, 6, 7)).send[0][1]
    assert isinstance(answer, Recovered) and answer.reported_through == 6 and len(answer.votes) == 2
    small = Acceptor("a3", {"p1": 1, "p2": 2}, ["l1"], 60)  # a reply budget of one vote
    small.step("p1", Accept(B1, 2, ((3, Value(NOOP, B1)), (4, Value(NOOP, B1)))))
    cut = small.step("p2", Recover(Ballot(2, 2), 3, 6, 7)).send[0][1]
    assert isinstance(cut, Recovered) and cut.reported_through == 3  # cut short by the budget: says so


# --- proposers -----------------------------------------------------------------------------

PARAMS = ProposerParams(heartbeat_ticks=5, election_ticks=10, retry_ticks=4, window_slots=2, alpha_slots=ALPHA,
                        batch_bytes_max=100, batch_count_max=1, message_bytes_max=10_000, queue_batches_max=50)


def leader(bootstrap: Membership = B3, voters: tuple[str, ...] = ("a1", "a2")) -> Proposer:
    p = Proposer("p1", 1, {"p1": 1, "p2": 2}, bootstrap.acceptor_names, ["l1"], PARAMS, random.Random(1),
                 history=History(bootstrap, ALPHA))
    p.campaign(p.step("", Heartbeat(Ballot(0, 2), 0)))  # (any ready will do)
    for a in voters:
        p.step(a, Promise(p.ballot, 1, 0, 0, 0, ()))
    assert p.state is LEADER
    for a in voters:
        p.step(a, Accepted(p.ballot, (p.lead.sw_slot,), ()))  # StartWorking chosen: serving
    assert p.lead.serving
    return p


def sent(out, kind: type) -> list[tuple[str, object]]:
    return [(d, m) for d, m in out.send if isinstance(m, kind)]


def test_a_leader_proposes_a_change_and_opens_no_slot_it_governs_before_the_new_acceptors_promise() -> None:
    p = leader()
    out = p.step("", Heartbeat(Ballot(0, 2), 0))
    assert p.propose_membership(B5, out) is None
    c = p.lead.next_slot - 1
    assert {d for d, _ in sent(out, Prepare)} == {"a3", "a4", "a5"}  # those of the five that did not promise
    assert {d for d, m in sent(out, Accept) if m.entries} >= {"a1", "a2", "a3"}
    assert p.propose_membership(B3, out) == "another change is not chosen yet"
    for i in range(6):
        p.step("c1", Submit(b"x%d" % i))
    p.end_turn(out)
    # Slots below c + alpha open as the window frees; the first one the new membership governs
    # waits for a majority of it to promise.
    for _ in range(3):
        for slot in [s for s in p.lead.inflight if s != c]:
            for a in ("a1", "a2"):
                p.step(a, Accepted(p.ballot, (slot,), ()))
        p.end_turn(out)
    assert list(p.lead.inflight) == [c] and p.lead.next_slot == c + ALPHA
    out = p.step("a4", Promise(p.ballot, c + ALPHA, 0, 0, 0, ()))
    p.step("a5", Promise(p.ballot, c + ALPHA, 0, 0, 0, ()), out)
    assert max(p.lead.inflight) == c + ALPHA
    # A slot that the change may govern needs a majority of both memberships.
    s = c + ALPHA
    for a in ("a4", "a5", "a3"):
        p.step(a, Accepted(p.ballot, (s,), ()))
    assert s in p.lead.inflight  # three of five, but one of the three old ones
    p.step("a1", Accepted(p.ballot, (s,), ()))
    assert s not in p.lead.inflight
    p.invariants()


def test_a_chosen_change_becomes_a_fact_and_travels_with_heartbeats() -> None:
    p = leader()
    out = p.step("", Heartbeat(Ballot(0, 2), 0))
    p.propose_membership(B5, out)
    c = p.lead.next_slot - 1
    for a in ("a1", "a2"):
        p.step(a, Accepted(p.ballot, (c,), ()))
    assert p.history.changes == [(c, B5)] and not p.pending
    for _ in range(PARAMS.heartbeat_ticks):
        out = p.tick()
    beats = sent(out, Heartbeat)
    assert beats and all(m.members == p.history.encode() for _, m in beats)
    follower = Proposer("p2", 2, {"p1": 1, "p2": 2}, B3.acceptor_names, ["l1"], PARAMS, random.Random(2),
                        history=History(B3, ALPHA))
    follower.step("p1", beats[0][1])
    assert follower.history.changes == [(c, B5)]


def test_phase1_needs_a_majority_of_every_membership_that_may_govern_its_slots() -> None:
    p = Proposer("p1", 1, {"p1": 1, "p2": 2}, B3.acceptor_names, ["l1"], PARAMS, random.Random(1),
                 history=History(B3, ALPHA))
    out = p.step("", Heartbeat(Ballot(0, 2), 0))
    p.campaign(out)
    b = p.ballot
    # a1 reports a change at slot 1 (not known chosen): it may govern slots from 1 + alpha on.
    out = p.step("a1", Promise(b, 1, 0, 1, 1, (Vote(1, Ballot(1, 2), change(B5, Ballot(1, 2))),)))
    p.step("a2", Promise(b, 1, 0, 0, 0, ()), out)
    assert p.state is not LEADER  # a majority of three, but none of five yet
    assert {d for d, _ in sent(out, Prepare)} == {"a4", "a5"}
    p.step("a4", Promise(b, 1, 0, 0, 0, ()))
    assert p.state is LEADER  # a1, a2, a4: three of five
    assert p.pending == [(1, B5)]
    value = p.lead.inflight[1].value
    assert value.kind == MEMBERSHIP and p.lead.inflight[p.lead.sw_slot].value.kind == START


def test_a_leader_that_removes_itself_serves_the_slots_before_the_change_then_stands_down() -> None:
    p = leader()
    out = p.step("", Heartbeat(Ballot(0, 2), 0))
    assert p.propose_membership(B3.without("p1"), out) is None
    c = p.lead.next_slot - 1
    for a in ("a1", "a2"):
        p.step(a, Accepted(p.ballot, (c,), ()))
    assert p.removed_from == c + ALPHA
    for i in range(5):
        p.step("c1", Submit(b"x%d" % i))
    for _ in range(3):
        p.end_turn(out)
        for slot in list(p.lead.inflight):
            for a in ("a1", "a2"):
                p.step(a, Accepted(p.ballot, (slot,), ()))
    assert p.lead.next_slot == c + ALPHA  # nothing opened that the new membership decides
    p.tick()
    assert p.state is not LEADER
    p.campaign(out)
    assert p.state is not LEADER and p.cand is None
    for _ in range(200):
        p.tick()
    assert p.cand is None  # never campaigns again


def test_a_learner_takes_votes_from_acceptors_a_proposed_change_names_and_counts_them_by_slot() -> None:
    lr = learner()
    lr.step("p1", Accept(B1, 0, ((1, change(B5)),)))
    out = lr.step("a4", Accepted(B1, (1,), ()))
    assert not [e for _, e, _ in out.events if e == "message_rejected"]
    lr.step("a1", Accepted(B1, (1,), ()))
    assert lr.delivered == 0  # a4 is not of slot 1's membership: one vote of three
    lr.step("a2", Accepted(B1, (1,), ()))
    assert lr.delivered == 1


def test_a_proposer_keeps_the_changes_it_learned_across_a_restart() -> None:
    p = leader()
    out = p.step("", Heartbeat(Ballot(0, 2), 0))
    p.propose_membership(B5, out)
    c = p.lead.next_slot - 1
    out = p.step("a1", Accepted(p.ballot, (c,), ()))
    p.step("a2", Accepted(p.ballot, (c,), ()), out)
    records = [r for r in out.persist if isinstance(r, MembersRecord)]
    assert records
    again = Proposer("p1", 1, {"p1": 1, "p2": 2}, B3.acceptor_names, ["l1"], PARAMS, random.Random(1),
                     history=History(B3, ALPHA))
    for r in codec.decode_records(codec.encode_records(records)):
        again.apply(r)
    assert again.history.changes == [(c, B5)] and "a4" in again.known_acceptors


def test_the_membership_in_force_names_the_slot_that_chose_it() -> None:
    boot = Membership((("p1", 1, "tcp://h:1"),), (("a1", "e1"), ("a2", "e2"), ("a3", "e3")), (("l1", "e4"),))
    history = History(boot, 8)
    assert history.in_force(1) == (boot, 0)
    grown = boot.with_acceptor("a4", "e5")
    history.learn(10, grown)
    assert history.in_force(17) == (boot, 0)  # chosen at 10, in force from 10 + alpha
    assert history.in_force(18) == (grown, 10)
    assert history.in_force(10**6) == (grown, 10)


def test_a_learner_that_started_before_it_knew_a_new_proposer_takes_its_id_from_the_relayed_changes() -> None:
    # `members replace` started l4 while the cache of changes lagged behind the one that added p3,
    # now the leader: l4 refused every Heartbeat of ballot x.3, never fetched, never delivered.
    from actors.ready import Ready

    lr = Learner("l1", ["a1", "a2", "a3"], codec.decode_client_batch, KVStore(64, 64),
                 proposer_ids={"p1": 1, "p2": 2}, history=History(B3, ALPHA))
    ballot = Ballot(4, 3)
    ready = Ready()
    lr.step("p3", Heartbeat(ballot, 9), ready)  # nothing relayed: still nobody's ballot
    assert lr.leader != "p3" and "p3" not in lr.proposer_ids
    forged = History(B3, ALPHA)
    forged.learn(5, B3.with_proposer("p4", 3, "tcp://h:4"))  # id 3 is p4's, not the sender's
    lr.step("p3", Heartbeat(ballot, 9, forged.encode()), Ready())
    assert "p3" not in lr.proposer_ids and lr.leader != "p3"
    h = History(B3, ALPHA)
    h.learn(5, B3.with_proposer("p3", 3, "tcp://h:3"))
    lr.step("p3", Heartbeat(ballot, 9, h.encode()), Ready())
    assert lr.proposer_ids["p3"] == 3 and lr.leader == "p3" and lr.known_chosen_through == 9
