"""The acceptor's rules, one by one (DESIGN.md: two promises and one answer)."""

import pytest

from actors.acceptor import Acceptor
from actors.ballot import Ballot
from actors.invariants import InvariantViolation
from actors.messages import COMMANDS, NOOP, Accept, Accepted, Fetch, Fetched, Heartbeat, Nack, Prepare, Promise, Value
from actors.ready import Ready
from actors.records import AcceptRecord, PromiseRecord

IDS = {"p1": 1, "p2": 2}


def acceptor(**kw) -> Acceptor:
    return Acceptor("a1", IDS, ["l1", "l2"], kw.get("budget", 1 << 20))


B11 = Ballot(1, 1)


def cmd(text: str, epoch: Ballot = B11) -> Value:
    return Value(COMMANDS, epoch, (text.encode(),))


def step(a: Acceptor, sender: str, message) -> Ready:
    out = a.step(sender, message)
    a.invariants()
    return out


def test_prepare_above_promise_is_persisted_then_answered() -> None:
    a = acceptor()
    out = step(a, "p1", Prepare(Ballot(1, 1), 1))
    assert out.persist == [PromiseRecord(Ballot(1, 1))]
    assert [(d, type(m)) for d, m in out.send] == [("p1", Promise)]
    assert a.promised == Ballot(1, 1)


def test_prepare_below_promise_gets_nack_with_the_promise_and_changes_nothing() -> None:
    a = acceptor()
    step(a, "p2", Prepare(Ballot(2, 2), 1))
    out = step(a, "p1", Prepare(Ballot(1, 1), 1))
    assert out.persist == []
    assert out.send == [("p1", Nack(Ballot(1, 1), Ballot(2, 2)))]
    assert a.promised == Ballot(2, 2)


def test_repeated_prepare_of_the_same_ballot_is_answered_without_a_new_record() -> None:
    a = acceptor()
    step(a, "p1", Prepare(Ballot(1, 1), 1))
    out = step(a, "p1", Prepare(Ballot(1, 1), 1))
    assert out.persist == []
    assert isinstance(out.send[0][1], Promise)


def test_prepare_with_a_ballot_not_owned_by_the_sender_is_rejected() -> None:
    a = acceptor()
    out = step(a, "p1", Prepare(Ballot(5, 2), 1))
    assert out.persist == [] and out.send == []
    assert a.promised == Ballot(0, 0)


def test_promise_reports_highest_ballot_value_per_slot_and_highest_slot() -> None:
    a = acceptor()
    a.apply(AcceptRecord(Ballot(1, 1), 0, ((1, cmd("x")), (2, cmd("y")))))
    a.apply(AcceptRecord(Ballot(2, 2), 0, ((2, cmd("z", Ballot(2, 2))), (5, cmd("w", Ballot(2, 2))))))
    out = step(a, "p1", Prepare(Ballot(3, 1), 2))
    promise = out.send[0][1]
    assert isinstance(promise, Promise)
    assert [(v.slot, v.ballot, v.value.batches) for v in promise.votes] == [
        (2, Ballot(2, 2), (b"z",)), (5, Ballot(2, 2), (b"w",))]
    assert promise.highest_slot == 5 and promise.reported_through == 5


def test_promise_skips_slots_the_leader_said_are_chosen() -> None:
    a = acceptor()
    a.apply(AcceptRecord(Ballot(1, 1), 3, tuple((s, cmd(str(s))) for s in range(1, 6))))
    promise = step(a, "p2", Prepare(Ballot(2, 2), 1)).send[0][1]
    assert [v.slot for v in promise.votes] == [4, 5]
    assert promise.chosen_through == 3 and promise.highest_slot == 5


def test_promise_that_does_not_fit_stops_at_a_slot_boundary() -> None:
    a = Acceptor("a1", IDS, [], reply_bytes_max=200)
    a.apply(AcceptRecord(Ballot(1, 1), 0, tuple((s, Value(COMMANDS, Ballot(1, 1), (b"v" * 60,)))
                                                for s in range(1, 11))))
    promise = step(a, "p2", Prepare(Ballot(2, 2), 1)).send[0][1]
    assert 1 <= len(promise.votes) < 10
    assert promise.reported_through == promise.votes[-1].slot < promise.highest_slot == 10


def test_accept_at_or_above_promise_is_persisted_and_reported_to_proposer_and_learners() -> None:
    a = acceptor()
    step(a, "p1", Prepare(Ballot(1, 1), 1))
    out = step(a, "p1", Accept(Ballot(1, 1), 0, ((1, cmd("x")),)))
    assert out.persist == [AcceptRecord(Ballot(1, 1), 0, ((1, cmd("x")),))]
    dests = {d: m for d, m in out.send}
    # Votes only, to everyone: learners have the values from the leader's own Accept.
    assert dests["p1"] == Accepted(Ballot(1, 1), (1,), ()) == dests["l1"] == dests["l2"]
    # Accepting a higher ballot than promised also raises the promise.
    step(a, "p2", Accept(Ballot(4, 2), 0, ((2, cmd("y")),)))
    assert a.promised == Ballot(4, 2)


def test_accept_below_promise_gets_nack_and_changes_nothing() -> None:
    a = acceptor()
    step(a, "p2", Prepare(Ballot(2, 2), 1))
    out = step(a, "p1", Accept(Ballot(1, 1), 0, ((1, cmd("x")),)))
    assert out.persist == []
    assert out.send == [("p1", Nack(Ballot(1, 1), Ballot(2, 2)))]
    assert a.accepted == {}


def test_duplicate_accept_is_acknowledged_again_without_a_record() -> None:
    a = acceptor()
    step(a, "p1", Accept(Ballot(1, 1), 0, ((1, cmd("x")),)))
    out = step(a, "p1", Accept(Ballot(1, 1), 0, ((1, cmd("x")),)))
    assert out.persist == []
    assert ("p1", Accepted(Ballot(1, 1), (1,), ())) in out.send


def test_a_different_value_for_the_same_slot_and_ballot_is_rejected_and_the_first_kept() -> None:
    # A forgery (a proposer never proposes two values under one ballot): the peer's fault, not an
    # invariant of ours. Nothing of the message is taken or acknowledged, so two are never chosen.
    a = acceptor()
    step(a, "p1", Accept(Ballot(1, 1), 0, ((1, cmd("x")),)))
    out = step(a, "p1", Accept(Ballot(1, 1), 0, ((2, cmd("y")), (1, cmd("other")))))
    assert out.persist == [] and out.send == []
    assert [(e, f["reason"]) for _, e, f in out.events] == [("message_rejected", "conflicting_value")]
    assert a.accepted[1][1] == cmd("x") and 2 not in a.accepted


def test_empty_accept_is_a_heartbeat_that_raises_the_promise_once() -> None:
    a = acceptor()
    out = step(a, "p1", Accept(Ballot(1, 1), 0, ()))
    assert out.persist == [AcceptRecord(Ballot(1, 1), 0, ())]
    assert out.send == [("p1", Accepted(Ballot(1, 1), (), ()))]  # nothing for learners
    assert step(a, "p1", Accept(Ballot(1, 1), 0, ())).persist == []


def test_replay_of_records_rebuilds_the_live_state() -> None:
    live = acceptor()
    records = []
    noop = Value(NOOP, Ballot(2, 2))
    for sender, m in [("p1", Prepare(Ballot(1, 1), 1)), ("p1", Accept(Ballot(1, 1), 0, ((1, cmd("x")),))),
                      ("p2", Prepare(Ballot(2, 2), 1)), ("p2", Accept(Ballot(2, 2), 1, ((2, noop),)))]:
        records += step(live, sender, m).persist
    replayed = acceptor()
    for r in records:
        replayed.apply(r)
    assert (replayed.promised, replayed.accepted, replayed.highest_slot, replayed.chosen_through) == (
        live.promised, live.accepted, live.highest_slot, live.chosen_through)


def test_promise_never_goes_backwards_on_replay() -> None:
    a = acceptor()
    a.apply(PromiseRecord(Ballot(3, 1)))
    with pytest.raises(InvariantViolation):
        a.apply(PromiseRecord(Ballot(2, 1)))


def test_fetch_returns_what_was_accepted_in_range() -> None:
    a = acceptor()
    a.apply(AcceptRecord(Ballot(1, 1), 0, ((1, cmd("x")), (3, cmd("z")))))
    out = step(a, "l1", Fetch(1, 5))
    fetched = out.send[0][1]
    assert isinstance(fetched, Fetched)
    assert [(v.slot, v.ballot) for v in fetched.votes] == [(1, Ballot(1, 1)), (3, Ballot(1, 1))]


def test_the_leaders_probe_moves_the_watermark_in_memory_only() -> None:
    a = acceptor()
    step(a, "p1", Prepare(Ballot(1, 1), 1))
    step(a, "p1", Accept(Ballot(1, 1), 0, tuple((s, cmd(str(s))) for s in range(1, 8))))
    out = step(a, "p1", Accept(Ballot(1, 1), 7, ()))  # the leader's heartbeat to acceptors
    assert out.persist == [] and a.chosen_through == 7
    # Never above the highest slot it accepted: a watermark it could not justify.
    assert step(a, "p1", Accept(Ballot(1, 1), 9, ())).persist == [] and a.chosen_through == 7
    # A Heartbeat proper is for proposers and learners: an acceptor ignores it, and says so.
    out = step(a, "p1", Heartbeat(Ballot(1, 1), 9))
    assert out.persist == [] and out.send == [] and a.chosen_through == 7
    assert [(e, f["reason"]) for _, e, f in out.events] == [("message_ignored", "not_for_acceptor")]
