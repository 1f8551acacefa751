"""The proposer's rules, one by one: ballots, Phase 1 over all open slots, takeover, StartWorking,
batching, pipelining, elections and back-off."""

import random

from actors.ballot import Ballot
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
    Redirect,
    Submit,
    Value,
    Vote,
)
from actors.proposer import CANDIDATE, FOLLOWER, LEADER, Proposer, ProposerParams
from actors.ready import Ready
from actors.records import RoundRecord

ACCEPTORS = ["a1", "a2", "a3"]
PARAMS = ProposerParams(heartbeat_ticks=5, election_ticks=10, retry_ticks=4, window_slots=4,
                        batch_bytes_max=100, batch_count_max=3, message_bytes_max=10_000,
                        queue_batches_max=5)


def proposer(name: str = "p1", seed: int = 1, params: ProposerParams = PARAMS) -> Proposer:
    return Proposer(name, int(name[1:]), {"p1": 1, "p2": 2}, ACCEPTORS, ["l1"], params, random.Random(seed))


def step(p: Proposer, sender: str, m) -> Ready:
    """One turn: the step, the end-of-turn batching, and the invariants the shell checks."""
    out = p.step(sender, m)
    p.end_turn(out)
    p.invariants()
    return out


def tick(p: Proposer) -> Ready:
    out = p.tick()
    p.end_turn(out)
    p.invariants()
    return out


def tick_until_election(p: Proposer) -> Ready:
    for _ in range(1000):
        out = tick(p)
        if p.state is CANDIDATE:
            return out
    raise AssertionError("no election")


def inflight(p: Proposer) -> dict:
    own = p.lead or p.cand
    assert own is not None
    return own.inflight


def promise(b: Ballot, from_slot: int = 1, votes=(), highest: int = 0, chosen_through: int = 0,
            reported: int | None = None) -> Promise:
    return Promise(b, from_slot, chosen_through, highest, highest if reported is None else reported, tuple(votes))


def lead(p: Proposer, votes_by_acceptor=None) -> Ready:
    tick_until_election(p)
    b = p.ballot
    votes_by_acceptor = votes_by_acceptor or {}
    last = Ready()
    for a in ACCEPTORS[:2]:
        votes = votes_by_acceptor.get(a, ())
        last = step(p, a, promise(b, p.cand.p1_from, votes, max([v.slot for v in votes], default=0)))
    assert p.state is LEADER
    return last


def cmd(text: str, epoch: Ballot) -> Value:
    return Value(COMMANDS, epoch, (text.encode(),))


def test_round_is_persisted_in_the_same_output_as_the_prepare_that_uses_it() -> None:
    p = proposer()
    out = tick_until_election(p)
    assert out.persist == [RoundRecord(1)]
    assert sorted(d for d, m in out.send if isinstance(m, Prepare)) == ACCEPTORS
    assert all(m == Prepare(Ballot(1, 1), 1) for _, m in out.send)


def test_a_restarted_proposer_never_reuses_a_ballot() -> None:
    p = proposer()
    p.apply(RoundRecord(5))
    tick_until_election(p)
    assert p.ballot == Ballot(6, 1)


def test_nack_makes_it_step_down_and_jump_past_the_reported_ballot() -> None:
    p = proposer()
    tick_until_election(p)
    step(p, "a1", Nack(Ballot(1, 1), Ballot(7, 2)))
    assert p.state is FOLLOWER and p.backoff == 2
    assert p.leader == "p2"
    tick_until_election(p)
    assert p.ballot == Ballot(8, 1)


def test_majority_of_promises_makes_a_leader_that_writes_start_working() -> None:
    p = proposer()
    out = lead(p)
    accepts = [m for d, m in out.send if isinstance(m, Accept) and m.entries]
    # To every acceptor, and to the learner, which takes the values from it.
    assert sorted(d for d, m in out.send if isinstance(m, Accept) and m.entries) == [*ACCEPTORS, "l1"]
    assert accepts[0].entries == ((1, Value(START, Ballot(1, 1))),)
    assert p.lead.sw_slot == 1 and p.lead.next_slot == 2


def test_takeover_reproposes_highest_ballot_value_and_fills_holes_with_noops() -> None:
    p = proposer("p2")
    old, older = Ballot(3, 1), Ballot(2, 1)
    out = lead(p, {
        "a1": [Vote(1, older, cmd("old", older)), Vote(3, old, cmd("x", old))],
        "a2": [Vote(1, old, cmd("new", old))],
    })
    accept = next(m for d, m in out.send if isinstance(m, Accept) and m.entries)
    slots = dict(accept.entries)
    assert slots[1] == cmd("new", old)  # highest ballot wins, and keeps its epoch
    assert slots[2] == Value(NOOP, p.ballot)  # a hole becomes a no-op
    assert slots[3] == cmd("x", old)
    assert slots[4] == Value(START, p.ballot)  # StartWorking after every recovered slot
    assert p.lead.next_slot == 5


def test_phase1_continues_from_where_incomplete_promises_stopped() -> None:
    p = proposer("p2")
    tick_until_election(p)
    b = p.ballot
    step(p, "a1", promise(b, 1, [Vote(1, Ballot(1, 1), cmd("x", Ballot(1, 1)))], highest=3, reported=1))
    out = step(p, "a2", promise(b, 1, [], highest=0))
    assert p.state is CANDIDATE and p.cand.p1_from == 2
    assert any(isinstance(m, Prepare) and m.from_slot == 2 for _, m in out.send)
    assert 1 in inflight(p)  # what was covered is already being re-proposed
    step(p, "a1", promise(b, 2, [Vote(3, Ballot(1, 1), cmd("z", Ballot(1, 1)))], highest=3))
    step(p, "a3", promise(b, 2, [], highest=0))
    assert p.state is LEADER and p.lead.sw_slot == 4
    assert inflight(p)[2].value.kind == NOOP and inflight(p)[3].value.batches == (b"z",)


def test_commands_of_one_turn_share_a_slot_and_an_accept() -> None:
    p = proposer()
    lead(p)
    out = Ready()
    for i in range(3):
        p.step(f"c{i}", Submit(f"b{i}".encode()), out)
    p.end_turn(out)
    accepts = [m for d, m in out.send if isinstance(m, Accept)]
    assert len(accepts) == 4  # one per acceptor, and the learner's copy
    assert accepts[0].entries[0][1].batches == (b"b0", b"b1", b"b2")


def test_batch_limits_split_slots_and_the_window_bounds_slots_in_flight() -> None:
    p = proposer()
    lead(p)  # slot 1 (StartWorking) is in flight
    out = Ready()
    for i in range(5):
        p.step("c", Submit(bytes([i]) * 40), out)  # two fit in 100 bytes
    p.end_turn(out)
    assert len(inflight(p)) == 4  # window_slots
    sizes = [len(e.value.batches) for s, e in sorted(inflight(p).items()) if s > 1]
    assert sizes == [2, 2, 1]
    assert len(p.queue) == 0


def test_full_queue_answers_busy_instead_of_dropping() -> None:
    p = proposer()
    lead(p)
    for slot in list(inflight(p)):
        inflight(p)[slot].acks.clear()
    out = Ready()
    for _ in range(20):
        p.step("c", Submit(b"x" * 90), out)
    p.end_turn(out)
    busy = [m for d, m in out.send if isinstance(m, Redirect) and m.reason == "busy"]
    # The queue fills within the turn; the flush then moves 3 of them into the window.
    assert len(busy) == 20 - PARAMS.queue_batches_max
    assert len(p.queue) == PARAMS.queue_batches_max - 3


def test_follower_redirects_clients_to_the_leader_it_heard() -> None:
    p = proposer("p2")
    assert step(p, "c", Submit(b"x")).send == [("c", Redirect("", "not_leader"))]
    step(p, "p1", Heartbeat(Ballot(1, 1), 0))
    assert step(p, "c", Submit(b"x")).send == [("c", Redirect("p1", "not_leader"))]


def test_majority_accepted_advances_the_watermark_and_starts_serving() -> None:
    p = proposer()
    lead(p)
    step(p, "a1", Accepted(p.ballot, (1,), ()))
    assert not p.lead.serving
    step(p, "a1", Accepted(p.ballot, (1,), ()))  # a duplicate counts once
    assert not p.lead.serving
    step(p, "a3", Accepted(p.ballot, (1,), ()))
    assert p.lead.serving and p.chosen_through == 1


def test_stale_accepted_is_ignored() -> None:
    p = proposer()
    lead(p)
    step(p, "a1", Accepted(Ballot(0, 2), (1,), ()))
    assert inflight(p)[1].acks == set()


def test_unanswered_accepts_are_resent_only_to_acceptors_that_did_not_answer() -> None:
    p = proposer()
    lead(p)
    step(p, "a1", Accepted(p.ballot, (1,), ()))
    sent = []
    for _ in range(PARAMS.retry_ticks):
        out = tick(p)
        sent += [d for d, m in out.send if isinstance(m, Accept) and m.entries]
    assert sorted(sent) == ["a2", "a3"]


def test_heartbeats_keep_a_follower_from_electing() -> None:
    p = proposer("p2")
    for _ in range(200):
        tick(p)
        step(p, "p1", Heartbeat(Ballot(1, 1), 0))
    assert p.state is FOLLOWER and p.elections == 0


def test_election_timeouts_are_randomized_and_back_off() -> None:
    timeouts = {proposer(seed=s).timeout_ticks for s in range(20)}
    assert len(timeouts) > 3 and all(PARAMS.election_ticks <= t < 2 * PARAMS.election_ticks for t in timeouts)
    p = proposer()
    tick_until_election(p)
    step(p, "a1", Nack(p.ballot, Ballot(9, 2)))
    assert p.timeout_ticks >= 2 * PARAMS.election_ticks


def test_a_leader_cut_off_from_the_acceptors_steps_down() -> None:
    p = proposer()
    lead(p)
    for _ in range(3 * PARAMS.election_ticks):
        out = tick(p)
        if p.state is not LEADER:
            break
    assert p.state is FOLLOWER
    assert any(e == "stepped_down" and f["reason"] == "quorum_lost" for _, e, f in out.events)


def test_a_leader_that_hears_a_higher_leader_steps_down_and_redirects_queued_clients() -> None:
    p = proposer()
    lead(p)
    for slot in inflight(p):
        inflight(p)[slot].acks.clear()
    out = Ready()
    inflight(p).update({s: inflight(p)[1] for s in range(2, 5)})  # fill the window
    p.step("c1", Submit(b"x"), out)
    assert len(p.queue) == 1
    out = step(p, "p2", Heartbeat(Ballot(9, 2), 0))
    assert p.state is FOLLOWER and p.leader == "p2"
    assert ("c1", Redirect("p2", "stepped_down")) in out.send
