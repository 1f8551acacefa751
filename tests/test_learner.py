"""The learner's rules: majority per (slot, ballot), in-order delivery, hole fetching, the
StartWorking epoch rule, and replay."""


from actors.ballot import Ballot
from actors.kv import KVStore
from actors.learner import Learner
from actors.messages import COMMANDS, NOOP, START, Accepted, Fetch, Fetched, Heartbeat, Reply, Value, Vote
from actors.ready import Ready
from actors.records import DecidedRecord
from runtime import codec

B1, B2, B3 = Ballot(1, 1), Ballot(2, 2), Ballot(3, 1)


def learner() -> Learner:
    return Learner("l1", ["a1", "a2", "a3"], codec.decode_client_batch, KVStore(64, 64), fetch_ticks=3)


def put(client: str, seq: int, key: str, value: str, epoch: Ballot = B1) -> Value:
    return Value(COMMANDS, epoch, (codec.encode_client_batch(client, 0, [[seq, "put", key, value]]),))


def accepted(lr: Learner, acceptor: str, ballot: Ballot, slot: int, value: Value) -> Ready:
    out = lr.step(acceptor, Accepted(ballot, (slot,), (value,)))
    lr.invariants()
    return out


def test_a_slot_is_chosen_by_a_majority_under_one_ballot() -> None:
    lr = learner()
    accepted(lr, "a1", B1, 1, put("c", 1, "k", "v"))
    assert lr.delivered == 0
    out = accepted(lr, "a2", B1, 1, put("c", 1, "k", "v"))
    assert lr.delivered == 1 and lr.kv.data == {"k": "v"}
    assert out.persist == [DecidedRecord(1, put("c", 1, "k", "v"))]
    assert ("c", Reply(((1, True, None),))) in out.send


def test_votes_under_different_ballots_do_not_add_up() -> None:
    lr = learner()
    accepted(lr, "a1", B1, 1, put("c", 1, "k", "v"))
    accepted(lr, "a2", B2, 1, put("c", 1, "k", "v"))
    assert lr.delivered == 0


def test_a_duplicated_accepted_counts_once() -> None:
    lr = learner()
    accepted(lr, "a1", B1, 1, put("c", 1, "k", "v"))
    accepted(lr, "a1", B1, 1, put("c", 1, "k", "v"))
    assert lr.delivered == 0


def test_two_values_for_one_slot_and_ballot_make_it_contested_not_a_crash() -> None:
    # A forgery: which value the votes so far stood for is unknown, so they are dropped, and from
    # then on only votes that carry their value count, per value.
    lr = learner()
    accepted(lr, "a1", B1, 1, put("c", 1, "k", "v"))
    out = accepted(lr, "a2", B1, 1, put("c", 1, "k", "other"))
    assert [f["reason"] for _, e, f in out.events if e == "message_rejected"] == ["conflicting_value"]
    assert lr.tally[1][B1].contested == {put("c", 1, "k", "other"): ["a2"]}
    accepted(lr, "a3", B1, 1, put("c", 1, "k", "v"))
    assert lr.delivered == 0  # a1's vote was dropped with the conflict
    accepted(lr, "a1", B1, 1, put("c", 1, "k", "v"))
    assert lr.delivered == 1 and lr.kv.data["k"] == "v"


def test_votes_from_non_acceptors_are_rejected() -> None:
    lr = learner()
    out = accepted(lr, "p1", B1, 1, Value(NOOP, B1))
    assert lr.tally == {} and out.events[0][1] == "message_rejected"


def test_delivery_is_in_slot_order_and_a_gap_is_fetched() -> None:
    lr = learner()
    for a in ("a1", "a2"):
        accepted(lr, a, B1, 2, put("c", 2, "k", "two"))
    assert lr.delivered == 0 and 2 in lr.chosen
    fetches = []
    for _ in range(3):
        out = lr.tick()
        fetches += [(d, m) for d, m in out.send if isinstance(m, Fetch)]
    assert sorted(d for d, _ in fetches) == ["a1", "a2", "a3"] and fetches[0][1] == Fetch(1, 2)
    for a in ("a1", "a3"):
        out = lr.step(a, Fetched(0, (Vote(1, B1, put("c", 1, "k", "one")),)))
    assert lr.delivered == 2 and lr.kv.data == {"k": "two"}


def test_a_heartbeat_watermark_beyond_what_was_delivered_triggers_a_fetch() -> None:
    lr = learner()
    out = lr.step("p1", Heartbeat(B1, 5))
    sent = []
    for _ in range(3):
        out = lr.tick()
        sent += [m for _, m in out.send]
    assert Fetch(1, 5) in sent


def test_commands_of_an_older_epoch_after_a_newer_start_working_are_skipped() -> None:
    # Seed 001, "ghost reappearance": after StartWorking(B2), an entry proposed under B1 is a
    # ghost of a superseded leader and must not be applied.
    lr = learner()
    log = [Value(START, B1), put("c", 1, "a", "1", B1), Value(START, B2), put("c", 2, "ghost", "x", B1),
           put("c", 3, "b", "2", B2), Value(START, B1), put("c", 4, "ghost2", "y", B1)]
    for slot, value in enumerate(log, start=1):
        for a in ("a1", "a2"):
            accepted(lr, a, B3, slot, value)
    assert lr.delivered == 7
    assert lr.kv.data == {"a": "1", "b": "2"}
    assert lr.epoch == B2  # the stale StartWorking(B1) at slot 6 did not lower it
    assert lr.skipped_entries == 2


def test_replaying_decided_records_rebuilds_the_same_state_without_replies() -> None:
    live = learner()
    records = []
    for slot, value in enumerate([Value(START, B1), put("c", 1, "k", "v"), put("c", 2, "j", "w")], start=1):
        for a in ("a2", "a3"):
            records += accepted(live, a, B1, slot, value).persist
    replayed = learner()
    for r in records:
        replayed.apply(r)
    assert replayed.kv.data == live.kv.data and replayed.delivered == 3
    assert replayed.kv.digest() == live.kv.digest()
    # A retry after the restart still gets the first result, not a second application.
    out = Ready()
    for a in ("a1", "a2"):
        replayed.step(a, Accepted(B2, (4,), (put("c", 2, "j", "changed"),)), out)
    assert replayed.kv.data["j"] == "w"


def test_a_malformed_batch_is_skipped_the_same_way_everywhere() -> None:
    lr = learner()
    bad = Value(COMMANDS, B1, (b"\xc1", codec.encode_client_batch("c", 0, [[1, "put", "k", "v"]])))
    for a in ("a1", "a2"):
        out = accepted(lr, a, B1, 1, bad)
    assert lr.kv.data == {"k": "v"}
    assert any(e == "batch_rejected" for _, e, _ in out.events)
