"""Reads without a log write (actors/lease.py): leases at the acceptor, the leader's lease and read
index, the learner's wait for the index, stale reads, the client core, and the bounds on the new
messages."""

import random

import pytest

from actors.acceptor import Acceptor
from actors.ballot import Ballot
from actors.bounds import ROUND_MAX, SLOT_MAX, shape
from actors.client import ClientCore, ClientParams
from actors.kv import KVStore
from actors.learner import READS_WAITING_MAX, Learner
from actors.lease import ReadParams, lease_span
from actors.messages import (
    COMMANDS,
    Accept,
    Accepted,
    LeaseGranted,
    LeaseRenew,
    Nack,
    Prepare,
    Promise,
    Read,
    ReadAt,
    Recover,
    Redirect,
    Reply,
    Value,
)
from actors.proposer import LEADER, Proposer, ProposerParams
from actors.ready import Ready
from runtime import codec
from runtime.config import ConfigError, parse

IDS = {"p1": 1, "p2": 2}
ACCEPTORS = ["a1", "a2", "a3"]
B11, B12, B21 = Ballot(1, 1), Ballot(1, 2), Ballot(2, 1)
PARAMS = ProposerParams(heartbeat_ticks=5, election_ticks=30, retry_ticks=4, window_slots=4)


def acceptor(lease_ticks: int = 10) -> Acceptor:
    return Acceptor("a1", IDS, ["l1"], 1 << 20, lease_ticks=lease_ticks)


def ticks(core, n: int) -> None:
    for _ in range(n):
        core.tick()


def batch(client: str, *keys: str, first_seq: int = 1) -> bytes:
    return codec.encode_client_batch(client, 0, [[first_seq + i, "get", k] for i, k in enumerate(keys)])


# --- the acceptor's grant ---------------------------------------------------------------------


def test_a_renewal_of_the_promised_ballot_grants_a_lease_and_is_echoed() -> None:
    a = acceptor()
    ticks(a, 10)  # past the window after its start
    a.step("p1", Prepare(B11, 1))
    out = a.step("p1", LeaseRenew(B11, 7))
    assert out.send == [("p1", LeaseGranted(B11, 7))] and out.persist == []
    assert (a.grant.holder, a.grant.until) == ("p1", a.ticks + 10)


def test_a_running_grant_refuses_another_proposers_prepare_and_recover_without_raising_the_promise() -> None:
    a = acceptor()
    ticks(a, 10)
    a.step("p1", Prepare(B11, 1))
    a.step("p1", LeaseRenew(B11, 1))
    for m in (Prepare(B12, 1), Recover(B12, 1, 2, 1)):
        out = a.step("p2", m)
        assert out.send == [] and out.persist == [], m  # silence: p2 keeps its ballot and retries
        assert a.promised == B11
    # The holder itself may move on to a higher ballot.
    out = a.step("p1", Prepare(B21, 1))
    assert a.promised == B21 and isinstance(out.send[0][1], Promise)


def test_an_expired_grant_lets_the_next_prepare_through() -> None:
    a = acceptor()
    ticks(a, 10)
    a.step("p1", Prepare(B11, 1))
    a.step("p1", LeaseRenew(B11, 1))
    ticks(a, 9)
    assert a.step("p2", Prepare(B12, 1)).send == []
    ticks(a, 1)
    out = a.step("p2", Prepare(B12, 1))
    assert a.promised == B12 and isinstance(out.send[0][1], Promise)


def test_after_a_start_every_prepare_is_refused_for_lease_ticks() -> None:
    a = acceptor()
    assert a.step("p1", Prepare(B11, 1)).send == []
    ticks(a, 9)
    assert a.step("p2", Prepare(B12, 1)).send == []
    ticks(a, 1)
    assert isinstance(a.step("p2", Prepare(B12, 1)).send[0][1], Promise)


def test_a_renewal_below_the_promise_is_refused_and_one_above_it_grants_nothing() -> None:
    a = acceptor()
    ticks(a, 10)
    a.step("p2", Prepare(B12, 1))
    assert a.step("p1", LeaseRenew(B11, 1)).send == [("p1", Nack(B11, B12))]
    assert a.step("p1", LeaseRenew(B21, 1)).send == [] and a.grant.holder == ""


def test_without_leases_an_acceptor_confirms_rounds_and_refuses_nothing() -> None:
    a = acceptor(lease_ticks=0)
    a.step("p1", Prepare(B11, 1))
    assert a.step("p1", LeaseRenew(B11, 3)).send == [("p1", LeaseGranted(B11, 3))]
    assert isinstance(a.step("p2", Prepare(B12, 1)).send[0][1], Promise)


def test_a_renewal_under_a_ballot_the_sender_does_not_own_is_rejected() -> None:
    a = acceptor()
    ticks(a, 10)
    a.step("p1", Prepare(B11, 1))
    out = a.step("p2", LeaseRenew(B11, 1))
    assert out.send == [] and a.grant.holder == ""


# --- the leader -------------------------------------------------------------------------------


LEASE = ReadParams(lease_ticks=20, clock_drift_max=0.05)


def leader(reads: ReadParams | None = LEASE) -> tuple[Proposer, Ready]:
    p = Proposer("p1", 1, IDS, ACCEPTORS, ["l1", "l2"], PARAMS, random.Random(1), reads=reads)
    for _ in range(1000):
        p.tick()
        if p.cand is not None:
            break
    out = Ready()
    for a in ACCEPTORS[:2]:
        out = p.step(a, Promise(p.ballot, p.cand.p1_from if p.cand else 1, 0, 0, 0, ()))
    assert p.state is LEADER
    p.end_turn(out)
    return p, out


def renewals(out: Ready) -> list[tuple[str, LeaseRenew]]:
    return [(d, m) for d, m in out.send if isinstance(m, LeaseRenew)]


def read_ats(out: Ready) -> list[tuple[str, ReadAt]]:
    return [(d, m) for d, m in out.send if isinstance(m, ReadAt)]


def test_lease_span_allows_for_the_drift_bound_and_the_ticks_rounding() -> None:
    assert lease_span(20, 0.0) == 19
    assert lease_span(20, 0.05) == 17  # 19 * 0.95 / 1.05 = 17.19
    assert lease_span(20, 0.25) == 11
    assert lease_span(1, 0.0) == 0


def test_a_new_leader_holds_reads_until_a_round_is_acknowledged_then_serves_at_once_under_its_lease() -> None:
    p, out = leader()
    sent = renewals(out)
    assert {d for d, _ in sent} == set(ACCEPTORS) and sent[0][1].ballot == p.ballot
    index = p.lead.next_slot - 1
    held = p.step("c.1", Read("l1", batch("c.1", "k")))
    assert read_ats(held) == []  # no lease yet: held
    p.step("a1", LeaseGranted(p.ballot, sent[0][1].round))
    got = p.step("a2", LeaseGranted(p.ballot, sent[0][1].round))
    assert read_ats(got) == [("l1", ReadAt(index, batch("c.1", "k"), p.ballot))]
    # Now under the lease: answered in the same step.
    now = p.step("c.1", Read("l2", batch("c.1", "x", first_seq=2)))
    assert [d for d, _ in read_ats(now)] == ["l2"]
    p.end_turn(now)
    assert any(e[1] == "lease_reads_served" for e in now.events)


def test_the_lease_runs_from_the_tick_the_round_was_sent_and_lapses() -> None:
    p, out = leader()
    r = renewals(out)[0][1].round
    sent_at = p.ticks
    ticks(p, 3)  # the answers come late: the lease still counts from the send
    for a in ("a1", "a2"):
        p.step(a, LeaseGranted(p.ballot, r))
    assert p.reads.lease_until == sent_at + lease_span(20, 0.05)
    # Let it lapse without answering any later round.
    while p.ticks < p.reads.lease_until:
        p.tick()
    held = p.step("c.1", Read("l1", batch("c.1", "k")))
    assert read_ats(held) == [] and len(p.reads.held) == 1


def test_an_answer_to_a_round_sent_before_a_read_arrived_does_not_confirm_it_without_a_lease() -> None:
    p, out = leader(ReadParams(lease=False))
    assert renewals(out) == []  # no lease: no rounds until a read wants one
    first = p.step("c.1", Read("l1", batch("c.1", "k")))
    p.end_turn(first)
    (r1,) = {m.round for _, m in renewals(first)}
    second = p.step("c.1", Read("l1", batch("c.1", "j", first_seq=2)))  # after round r1 was sent
    p.end_turn(second)
    (r2,) = {m.round for _, m in renewals(second)}
    assert r2 == r1 + 1
    p.step("a1", LeaseGranted(p.ballot, r1))
    got = p.step("a2", LeaseGranted(p.ballot, r1))
    assert [m.batch for _, m in read_ats(got)] == [batch("c.1", "k")]  # the second waits for r2
    p.step("a1", LeaseGranted(p.ballot, r2))
    got = p.step("a3", LeaseGranted(p.ballot, r2))
    assert [m.batch for _, m in read_ats(got)] == [batch("c.1", "j", first_seq=2)]
    assert p.reads.lease_until == 0


def test_answers_from_a_minority_or_of_another_ballot_confirm_nothing() -> None:
    p, out = leader()
    r = renewals(out)[0][1].round
    p.step("c.1", Read("l1", batch("c.1", "k")))
    assert read_ats(p.step("a1", LeaseGranted(p.ballot, r))) == []
    assert read_ats(p.step("a2", LeaseGranted(Ballot(p.ballot.round + 1, 2), r))) == []
    assert read_ats(p.step("a2", LeaseGranted(p.ballot, r + 5))) == []  # a round never sent
    assert p.reads.lease_until == 0


def test_a_follower_redirects_reads_and_a_deposed_leader_redirects_the_reads_it_held() -> None:
    f = Proposer("p2", 2, IDS, ACCEPTORS, ["l1"], PARAMS, random.Random(1))
    out = f.step("c.1", Read("l1", batch("c.1", "k")))
    assert isinstance(out.send[0][1], Redirect) and out.send[0][1].reason == "not_leader"
    p, _ = leader()
    p.step("c.1", Read("l1", batch("c.1", "k")))
    out = p.step("a1", Nack(p.ballot, Ballot(p.ballot.round + 5, 2)))
    p.end_turn(out)
    assert ("c.1", Redirect("p2", "stepped_down")) in [(d, m) for d, m in out.send if isinstance(m, Redirect)]


def test_reads_for_an_unknown_learner_or_too_large_are_refused() -> None:
    p, _ = leader()
    out = p.step("c.1", Read("l9", batch("c.1", "k")))
    assert out.send == [] and any(e[1] == "message_rejected" for e in out.events)
    out = p.step("c.1", Read("l1", b"x" * (PARAMS.batch_bytes_max + 1)))
    assert out.send == [("c.1", Redirect("p1", "too_large"))]


def test_held_reads_are_bounded() -> None:
    p, _ = leader(ReadParams(lease=False, held_max=2))
    for i in range(2):
        p.step("c.1", Read("l1", batch("c.1", "k", first_seq=i + 1)))
    out = p.step("c.1", Read("l1", batch("c.1", "k", first_seq=3)))
    assert out.send == [("c.1", Redirect("p1", "busy"))]


def test_read_index_is_the_highest_slot_the_leader_assigned() -> None:
    p, _ = leader()
    p.step("c.1", codec_submit("c.1"))
    out = Ready()
    p.end_turn(out)
    assert p.read_index() == p.lead.next_slot - 1 == p.lead.sw_slot + 1


def codec_submit(client: str):
    from actors.messages import Submit
    return Submit(codec.encode_client_batch(client, 1, [[1, "put", "k", "v"]]))


# --- the learner --------------------------------------------------------------------------------


def learner() -> Learner:
    return Learner("l1", ACCEPTORS, codec.decode_client_batch, KVStore(64, 4096), proposer_ids=IDS)


def deliver_put(lr: Learner, slot: int, key: str, value: str, seq: int) -> Ready:
    v = Value(COMMANDS, B11, (codec.encode_client_batch("w.1", seq, [[seq, "put", key, value]]),))
    out = lr.step("p1", Accept(B11, 0, ((slot, v),)))
    for a in ACCEPTORS[:2]:
        lr.step(a, Accepted(B11, (slot,), ()), out)
    lr.end_turn(out)
    return out


def replies(out: Ready, client: str) -> list:
    return [m.results for d, m in out.send if d == client and isinstance(m, Reply)]


def test_a_read_waits_until_its_index_is_delivered_and_never_touches_the_sessions() -> None:
    lr = learner()
    deliver_put(lr, 1, "k", "v1", 1)
    out = lr.step("p1", ReadAt(2, batch("c.1", "k", "nope")))
    lr.end_turn(out)
    assert replies(out, "c.1") == []  # slot 2 is not delivered yet
    out = deliver_put(lr, 2, "k", "v2", 2)
    assert replies(out, "c.1") == [((1, True, "v2"), (2, True, None))]
    assert "c.1" not in lr.kv.sessions and lr.kv.applied_commands == 2


def test_a_read_of_a_key_no_pending_proposal_writes_is_answered_before_the_index() -> None:
    lr = learner()
    deliver_put(lr, 1, "k", "v1", 1)
    for slot, key in ((2, "k"), (3, "other")):  # proposed under B11, not chosen yet
        v = Value(COMMANDS, B11, (codec.encode_client_batch("w.1", slot, [[slot, "put", key, "x"]]),))
        lr.step("p1", Accept(B11, 0, ((slot, v),)))
    out = lr.step("p1", ReadAt(3, batch("c.1", "k", "j"), B11))
    lr.end_turn(out)
    assert replies(out, "c.1") == [((2, True, None),)]  # "j": no proposal through 3 writes it
    assert [g for *_, g in lr.reads_waiting] == [[(1, "k")]]  # "k" waits for slot 2
    # Under another ballot, or without one, the proposals are not known: everything waits.
    out = lr.step("p1", ReadAt(3, batch("c.1", "j", first_seq=5), Ballot(2, 2)))
    assert replies(out, "c.1") == [] and len(lr.reads_waiting) == 2
    out = lr.step("p1", ReadAt(4, batch("c.1", "j", first_seq=6), B11))  # slot 4: no value here yet
    assert replies(out, "c.1") == [] and len(lr.reads_waiting) == 3


def test_an_mget_is_read_from_one_state_and_waits_if_any_of_its_keys_may_be_written() -> None:
    lr = learner()
    deliver_put(lr, 1, "k", "v1", 1)
    deliver_put(lr, 2, "j", "w1", 2)
    v = Value(COMMANDS, B11, (codec.encode_client_batch("w.1", 3, [[3, "put", "k", "v2"]]),))
    lr.step("p1", Accept(B11, 0, ((3, v),)))  # proposed, not chosen yet
    mgets = [[1, "mget", "j", "nope"], [2, "mget", "j", "k"]]
    out = lr.step("p1", ReadAt(3, codec.encode_client_batch("c.1", 0, mgets), B11))
    lr.end_turn(out)
    # Neither "j" nor "nope" is written through slot 3: answered now. "k" is: the whole mget waits,
    # or it could read "j" now and "k" before slot 3's write that was chosen before the read arrived.
    assert replies(out, "c.1") == [((1, True, ["w1", None]),)]
    assert [g for *_, g in lr.reads_waiting] == [[(2, ("j", "k"))]]
    out = deliver_put(lr, 3, "k", "v2", 3)
    assert replies(out, "c.1") == [((2, True, ["w1", "v2"]),)]
    # An mget with a key that is no non-empty string is no read: refused, like any other command.
    bad = codec.encode_client_batch("c.1", 0, [[4, "mget", "j", ""], [5, "mget"], [6, "mget", "j", 7]])
    out = lr.step("c.1", Read("", bad))
    assert replies(out, "c.1") == [tuple((seq, False, "bad_command: a read batch holds only gets and mgets")
                                         for seq in (4, 5, 6))]


def test_an_mget_answer_round_trips_and_a_result_list_holds_only_strings_and_nils() -> None:
    reply = Reply(((1, True, ("a", None, "c")), (2, True, ())))
    _, got = codec.decode_frame(codec.encode_frame("l1", [reply]))
    assert got == [reply]
    for result in (("a", 1), (("nested",),), ("a", True)):
        with pytest.raises(codec.DecodeError) as exc:
            codec.decode_frame(codec.encode_frame("l1", [Reply(((1, True, result),))]))
        assert exc.value.reason == "schema"


def test_a_read_at_a_delivered_index_is_answered_at_once() -> None:
    lr = learner()
    deliver_put(lr, 1, "k", "v1", 1)
    out = lr.step("p1", ReadAt(1, batch("c.1", "k")))
    assert replies(out, "c.1") == [((1, True, "v1"),)]


def test_a_stale_read_is_answered_from_the_state_as_it_stands() -> None:
    lr = learner()
    deliver_put(lr, 1, "k", "v1", 1)
    out = lr.step("c.1", Read("", batch("c.1", "k")))
    assert replies(out, "c.1") == [((1, True, "v1"),)]


def test_read_at_from_no_proposer_or_beyond_the_window_is_rejected_and_the_queue_is_bounded() -> None:
    lr = learner()
    out = lr.step("a1", ReadAt(1, batch("c.1", "k")))
    assert out.send == [] and lr.reads_waiting == []
    out = lr.step("p1", ReadAt(lr.window_slots_max + 1, batch("c.1", "k")))
    assert lr.reads_waiting == [] and any(e[1] == "message_rejected" for e in out.events)
    lr.reads_waiting = [(5, i, b"") for i in range(READS_WAITING_MAX)]
    out = lr.step("p1", ReadAt(5, batch("c.1", "k")))
    assert len(lr.reads_waiting) == READS_WAITING_MAX and any(e[1] == "read_dropped" for e in out.events)


def test_a_read_batch_with_anything_but_gets_answers_those_with_an_error_and_applies_nothing() -> None:
    lr = learner()
    blob = codec.encode_client_batch("c.1", 0, [[1, "put", "k", "v"], [2, "get", "k"]])
    out = lr.step("c.1", Read("", blob))
    assert replies(out, "c.1") == [((2, True, None), (1, False, "bad_command: a read batch holds only gets and mgets"))]
    assert lr.kv.data == {}
    out = lr.step("c.1", Read("", b"\xc1garbage"))
    assert out.send == [] and any(e[1] == "batch_rejected" for e in out.events)


# --- the client core ---------------------------------------------------------------------------


def test_the_client_batches_reads_in_one_read_per_flush_and_stale_reads_go_to_a_learner() -> None:
    core = ClientCore("c.1", ["p1", "p2"], ["l1", "l2"], codec.encode_client_batch, ClientParams())
    for k in ("a", "b", "c"):
        core.read(k, 0.0)
    core.submit(["put", "k", "v"], 0.0)
    core.read("s", 0.0, stale=True)
    ready = core.flush(0.0)
    kinds = sorted((dest, type(m).__name__, len(ops)) for dest, msgs, ops in ready.send for m in msgs)
    learner_ = core.preferred_learner
    assert kinds == sorted([("p1", "Read", 3), ("p1", "Submit", 1), (learner_, "Read", 1)])
    read = next(m for _, msgs, _ in ready.send for m in msgs if isinstance(m, Read) and m.learner)
    assert read.learner == learner_
    assert codec.decode_client_batch(read.batch)[2] == ((1, "get", "a"), (2, "get", "b"), (3, "get", "c"))


def test_a_read_that_times_out_is_retried_with_the_same_seq_through_another_learner() -> None:
    core = ClientCore("c.1", ["p1", "p2"], ["l1", "l2"], codec.encode_client_batch, ClientParams(retry_s=0.1))
    core.learners_ready = {"l1", "l2"}
    op = core.read("a", 0.0)
    first = core.flush(0.0).send[0][1][0]
    core.timer(0.2)
    again = core.flush(0.2).send[0][1][0]
    assert isinstance(again, Read) and again.learner != first.learner
    assert codec.decode_client_batch(again.batch)[2] == ((op.seq, "get", "a"),)


# --- wire and config ----------------------------------------------------------------------------


@pytest.mark.parametrize("m", [Read("l1", b"x"), ReadAt(5, b"y"), LeaseRenew(B11, 3), LeaseGranted(B12, 9)])
def test_the_new_messages_round_trip_on_the_wire(m) -> None:
    _, got = codec.decode_frame(codec.encode_frame("p1", [m]))
    assert got == [m]


@pytest.mark.parametrize("raw,reason", [
    ([26, 5, b"x"], "schema"), ([26, "l1", "text"], "schema"), ([27, -1, b"x"], "schema"),
    ([27, 1], "schema"), ([28, 1, 1], "schema"), ([29, 1, 1, True], "schema"),
])
def test_malformed_new_messages_are_refused_by_the_codec(raw, reason) -> None:
    with pytest.raises(codec.DecodeError) as exc:
        codec.decode_frame(codec.pack([codec.VERSION, "p1", [raw]]))
    assert exc.value.reason == reason


def test_numbers_of_the_new_messages_are_bounded_before_any_core_sees_them() -> None:
    assert shape(ReadAt(SLOT_MAX + 1, b"")) == "slot_above_ceiling"
    assert shape(LeaseRenew(B11, ROUND_MAX + 1)) == "round_above_ceiling"
    assert shape(LeaseGranted(Ballot(ROUND_MAX + 1, 1), 1)) == "round_above_ceiling"
    assert shape(LeaseRenew(B11, 1)) is None and shape(ReadAt(1, b"")) is None


def config(reads: str):
    text = f"[reads]\n{reads}\n" + "".join(
        f'[[{t}]]\nname = "{n}"\n{extra}endpoint = "tcp://127.0.0.1:{7000 + i}"\n'
        for i, (t, n, extra) in enumerate([("proposers", "p1", "id = 1\n"), ("acceptors", "a1", ""),
                                           ("acceptors", "a2", ""), ("acceptors", "a3", ""), ("learners", "l1", "")]))
    import tomllib
    from pathlib import Path
    return parse(tomllib.loads(text), Path("/tmp/cluster.toml"))


def test_the_reads_section_is_checked_strictly() -> None:
    c = config("lease = true\nlease_ticks = 12\nclock_drift_max = 0.1")
    assert c.read_params() == ReadParams(lease=True, lease_ticks=12, clock_drift_max=0.1)
    assert config("clock_drift_max = 0").reads.clock_drift_max == 0.0
    assert config("lease = false").acceptor_lease_ticks == 0
    for bad, key in [("clock_drift_max = 0.5", "reads.clock_drift_max"),
                     ("clock_drift_max = -0.1", "reads.clock_drift_max"),
                     ("lease_ticks = 30", "reads.lease_ticks"), ("lease_ticks = 1", "reads.lease_ticks"),
                     ("leases = true", "reads.leases"), ("lease = 1", "reads.lease")]:
        with pytest.raises(ConfigError, match=key):
            config(bad)
