"""The wire codec: every message and record round-trips, and malformed input raises a specific
DecodeError (reliability.md section 7, rows 2-16)."""

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.ballot import Ballot
from actors.messages import (
    COMMANDS,
    NOOP,
    START,
    Accept,
    Accepted,
    Fetch,
    Fetched,
    Heartbeat,
    Hello,
    Nack,
    Prepare,
    Probe,
    Probed,
    Promise,
    Recover,
    Recovered,
    Redirect,
    Repair,
    Reply,
    SnapshotChunk,
    SnapshotFetch,
    SnapshotOffer,
    StatusQuery,
    StatusReply,
    Submit,
    Value,
    Vote,
)
from actors.records import AcceptRecord, DecidedRecord, PromiseRecord, RebuildRecord, RoundRecord, SnapshotRecord
from runtime import codec
from runtime.codec import DecodeError

B = Ballot(3, 2)
V = Value(COMMANDS, Ballot(1, 1), (b"abc", b""))
EXAMPLES = [
    Prepare(B, 4), Accept(B, 2, ((3, V), (4, Value(NOOP, B)))), Heartbeat(B, 9),
    Promise(B, 1, 0, 5, 5, (Vote(5, Ballot(1, 1), V),)), Nack(Ballot(1, 1), B),
    Accepted(B, (3, 4), ()), Accepted(B, (3,), (Value(START, B),)), Fetch(1, 9),
    Fetched(3, (Vote(1, B, V),)), Submit(b"\x00blob"), Redirect("p1", "busy"),
    Reply(((1, True, None), (2, False, "bad"), (3, True, True), (4, True, "v"))), Hello(), StatusQuery(),
    StatusQuery(brief=True), StatusQuery(digest=False),
    StatusReply((("role", "proposer"), ("delivered", 3), ("serving", True), ("x", None), ("f", 1.5))),
    Fetched(3, (), 7, 6, 1024, 0xFFFFFFFF), Recover(B, 2, 9, 4), Recovered(B, 4, 2, 9, (Vote(3, B, V),), 2),
    Repair(1, 5), Probe(), Probed(B, 12, 10), SnapshotOffer(40, 123456, 99), SnapshotFetch(40, 1 << 20, 1 << 20),
    SnapshotChunk(40, 0, 123456, 99, b"\x00" * 100), SnapshotChunk(40, 0, 0, 0, b""),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message) -> None:
    sender, decoded = codec.decode_frame(codec.encode_frame("a1", [message]))
    assert sender == "a1" and decoded == [message]


def test_records_round_trip() -> None:
    records = [RoundRecord(3), PromiseRecord(B), AcceptRecord(B, 2, ((1, V),)), DecidedRecord(4, V),
               SnapshotRecord(40, 123456, 0xFFFFFFFF), RebuildRecord(False), RebuildRecord(True, 17)]
    assert codec.decode_records(codec.encode_records(records)) == records


@given(st.lists(st.tuples(st.integers(1, 2**40), st.binary(max_size=50)), max_size=20),
       st.integers(0, 2**62), st.integers(0, 2**20))
@settings(max_examples=200, deadline=None)
def test_accept_round_trips_for_any_entries(entries, round_, chosen) -> None:
    m = Accept(Ballot(round_, 1), chosen, tuple((s, Value(COMMANDS, Ballot(1, 2), (b,))) for s, b in entries))
    assert codec.decode_frame(codec.encode_frame("p1", [m]))[1] == [m]


def raw_frame(*messages, version=codec.VERSION, sender="p1") -> bytes:
    return msgpack.packb([version, sender, list(messages)])


BAD = {
    "not msgpack": (b"\xc1", "decode"),
    "truncated": (codec.encode_frame("p1", [Prepare(B, 1)])[:-2], "decode"),
    "trailing bytes": (codec.encode_frame("p1", [Prepare(B, 1)]) + b"\x00", "decode"),
    "huge array header": (b"\xdd\xff\xff\xff\xff", "decode"),
    "deep nesting": (b"\x91" * 5000 + b"\x00", "decode"),
    "not an array": (msgpack.packb({"a": 1}), "schema"),
    "map with int keys": (msgpack.packb({1: 2}), "decode"),
    "ext type": (msgpack.packb([codec.VERSION, "p1", [msgpack.ExtType(5, b"x")]]), "schema"),
    "timestamp ext": (msgpack.packb([codec.VERSION, "p1", [[1, msgpack.Timestamp(1, 0), 1, 1]]]), "schema"),
    "wrong version": (raw_frame([1, 1, 1, 1], version=codec.VERSION + 1), "version"),
    "older version": (raw_frame([1, 1, 1, 1], version=1), "version"),
    "crc over 32 bits": (raw_frame([14, 5, 100, 1 << 32]), "schema"),
    "chunk data not bytes": (raw_frame([16, 5, 0, 100, 7, "text"]), "schema"),
    "unknown type": (raw_frame([99]), "unknown_type"),
    "missing field": (raw_frame([1, 1, 1]), "schema"),
    "extra field": (raw_frame([1, 1, 1, 1, 5]), "schema"),
    "bool as int": (raw_frame([1, True, 1, 1]), "schema"),
    "float as int": (raw_frame([1, 1.0, 1, 1]), "schema"),
    "string ballot": (raw_frame([1, "1", 1, 1]), "schema"),
    "negative slot": (raw_frame([1, 1, 1, -1]), "schema"),
    "ballot over 2^63": (raw_frame([1, 2**63, 1, 1]), "schema"),
    "empty sender": (raw_frame([1, 1, 1, 1], sender=""), "schema"),
    "bad value kind": (raw_frame([2, 1, 1, 0, [[1, 7, 1, 1, []]]]), "schema"),
    "noop with batches": (raw_frame([2, 1, 1, 0, [[1, 0, 1, 1, [b"x"]]]]), "schema"),
    "str batch": (raw_frame([2, 1, 1, 0, [[1, 2, 1, 1, ["x"]]]]), "schema"),
    "values do not match slots": (raw_frame([6, 1, 1, [1, 2], [[0, 1, 1, []]]]), "schema"),
    "empty fetch range": (raw_frame([7, 5, 2]), "range"),
    "status query brief not a bool": (raw_frame([30, 1]), "schema"),
    "reply result of wrong type": (raw_frame([22, [[1, True, [1]]]]), "schema"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_malformed_input_raises_a_specific_decode_error(case) -> None:
    data, reason = BAD[case]
    with pytest.raises(DecodeError) as info:
        codec.decode_frame(data)
    assert info.value.reason == reason, info.value


@given(st.binary(max_size=200))
@settings(max_examples=500, deadline=None)
def test_random_bytes_never_escape_as_anything_but_decode_error(data) -> None:
    try:
        codec.decode_frame(data)
    except DecodeError:
        pass


def test_records_with_bad_tags_are_rejected() -> None:
    with pytest.raises(DecodeError):
        codec.decode_records(msgpack.packb([[9, 1]]))


def test_shared_ballots_never_admit_a_bool_or_float() -> None:
    """Decoded ballots are shared from a cache; 1.0 and True hash like 1, so the cache must not
    let them through once Ballot(1, 1) is in it."""
    good = codec.encode_frame("p1", [Accept(Ballot(1, 1), 0, ((1, Value(COMMANDS, Ballot(1, 1), (b"x",))),))])
    assert codec.decode_frame(good)[1][0].ballot is codec.decode_frame(good)[1][0].ballot  # cached
    for r, n in ((True, 1), (1.0, 1), (1, True), (1, 1.0)):
        for raw in ([3, r, n, 0, []], [3, 1, 1, 0, [[1, COMMANDS, r, n, [b"x"]]]]):
            with pytest.raises(DecodeError):
                codec.decode_record(msgpack.unpackb(msgpack.packb(raw), use_list=False))


def test_fast_built_values_and_records_equal_constructed_ones() -> None:
    """The decoder fills frozen dataclasses' slots directly; what it builds must be the same."""
    record = AcceptRecord(Ballot(2, 1), 7, ((8, V), (9, Value(NOOP, Ballot(2, 1))), (10, Value(START, B))))
    back = codec.decode_records(codec.encode_records([record]))[0]
    assert back == record and hash(back) == hash(record) and repr(back) == repr(record)
    with pytest.raises(AttributeError):
        back.chosen_through = 0  # type: ignore[misc]
