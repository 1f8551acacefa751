"""The wire and file encoding: msgpack with a version and a type tag, decoded strictly.

A frame is `[VERSION, sender, [message, ...], lc, sampled]`: everything one actor sends another in
one event-loop turn travels in one ZeroMQ frame. `lc` and `sampled` are the trace context
(runtime/trace.py): the sender's Lamport clock for this frame (an integer in [0, 2^63)) and
whether the sender traced it. A frame without them (`[VERSION, sender, [message, ...]]`, what
hand-made frames of tools and tests send) reads as lc 0, not sampled. A message is `[tag, field, ...]` with ballots and
values flattened into plain lists (a list packs about twice as fast as a map).

Decoding is strict: wrong version, unknown tag, wrong arity, a bool where an int belongs
(`True` is an `int` in Python, so checks use `type(x) is int`), out-of-range integers, ext
types, trailing bytes: each raises `DecodeError` with a short reason code and a detail, and
the caller logs it and drops the frame. Nothing is half-applied: a frame is decoded whole
before any of its messages reaches a core.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgpack

from actors.ballot import Ballot
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
    Fetch,
    Fetched,
    Heartbeat,
    Hello,
    LeaseGranted,
    LeaseRenew,
    MembersChanged,
    Message,
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
from actors.records import (
    AcceptRecord,
    DecidedRecord,
    MembersRecord,
    PromiseRecord,
    RebuildRecord,
    Record,
    RoundRecord,
    SnapshotRecord,
)

VERSION = 3  # 3: the trace context (lc, sampled) after the messages; 2: compaction fields, probes, snapshots
INT_MAX = 2**63 - 1


class DecodeError(ValueError):
    """`reason` is a stable code for logs and counters; `detail` is for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _reject_ext(code: int, data: bytes) -> Any:
    raise DecodeError("schema", f"msgpack ext type {code} is not allowed")


_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def pack(obj: Any) -> bytes:
    return _packer.pack(obj)


def unpack(data: bytes, what: str = "frame") -> Any:
    try:
        return msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True,
                               ext_hook=_reject_ext, timestamp=0)
    except DecodeError:
        raise
    except msgpack.ExtraData:
        raise DecodeError("decode", f"trailing bytes after the {what}") from None
    except (ValueError, msgpack.UnpackException, RecursionError, TypeError) as exc:
        raise DecodeError("decode", f"{what} is not valid msgpack ({type(exc).__name__}: {exc})") from None


# --- field checks -------------------------------------------------------------------------


def _int(x: Any, what: str) -> int:
    if type(x) is not int or not 0 <= x <= INT_MAX:
        raise DecodeError("schema", f"{what} must be an integer in [0, 2^63), got {x!r:.40}")
    return x


def _str(x: Any, what: str) -> str:
    if type(x) is not str:
        raise DecodeError("schema", f"{what} must be a string, got {type(x).__name__}")
    return x


def _seq(x: Any, what: str) -> tuple[Any, ...]:
    if type(x) is not tuple:
        raise DecodeError("schema", f"{what} must be an array, got {type(x).__name__}")
    return x


# Few distinct ballots are live at a time, and a replay or an accept stream repeats them in every
# record: decoded ballots are shared (they are immutable) instead of built per field.
_ballots: dict[tuple[int, int], Ballot] = {}
_BALLOTS_MAX = 4096
_KINDS = frozenset((NOOP, START, COMMANDS, MEMBERSHIP))


_SUB_SHIFT = 32  # a vote's ballot carries its recovery round (actors/ballot.py) above the node id
_NODE_MASK = (1 << _SUB_SHIFT) - 1
_SUB_MAX = 1


def _wn(b: Ballot) -> int:
    """A vote's ballot node on the wire: the node id, and a recovery round's `sub` above it."""
    return b.node | (b.sub << _SUB_SHIFT) if b.sub else b.node


def _vballot(r: Any, n: Any, what: str) -> Ballot:
    """The ballot of a vote (Accept, Accepted, a reported vote, an AcceptRecord): it may be a
    collision-recovery round."""
    if type(n) is int and n > _NODE_MASK:
        sub = n >> _SUB_SHIFT
        if sub > _SUB_MAX:
            raise DecodeError("schema", f"{what} recovery round must be at most {_SUB_MAX}, got {sub}")
        b = _ballot(r, n & _NODE_MASK, what)
        return Ballot(b.round, b.node, sub)
    return _ballot(r, n, what)


def _ballot(r: Any, n: Any, what: str) -> Ballot:
    # The type test comes first: 1.0 and True would otherwise find the cached Ballot(1, 1).
    if type(r) is int and type(n) is int:
        b = _ballots.get((r, n))
        if b is not None:
            return b
    b = Ballot(_int(r, what + ".round"), _int(n, what + ".node"))
    if b.node > _NODE_MASK:
        raise DecodeError("schema", f"{what}.node must be below 2^{_SUB_SHIFT}, got {b.node}")
    if len(_ballots) >= _BALLOTS_MAX:
        _ballots.clear()
    _ballots[(r, n)] = b
    return b


# A frozen dataclass's guard against mutation costs its construction too (0.43 us against 0.27 us
# per object here). The decoder builds a Value and an AcceptRecord per accepted slot and per
# replayed record, so it fills their slots directly. The field lists are checked at import: a
# field added later cannot be left unset silently.
_new = object.__new__


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    if tuple(f.name for f in dataclasses.fields(cls)) != names:
        raise TypeError(f"runtime.codec builds {cls.__name__} with fields {names}; update it")
    return tuple(cls.__dict__[name].__set__ for name in names)


_set_kind, _set_epoch, _set_batches = _slot_setters(Value, ("kind", "epoch", "batches"))
_set_rballot, _set_rchosen, _set_rentries = _slot_setters(AcceptRecord, ("ballot", "chosen_through", "entries"))


def _value(kind: Any, er: Any, en: Any, batches: Any) -> Value:
    if type(kind) is not int or kind not in _KINDS:
        raise DecodeError("schema", f"value kind must be 0, 1, 2 or 3, got {kind!r:.40}")
    if type(batches) is not tuple:
        raise DecodeError("schema", "value batches must be an array")
    for b in batches:
        if type(b) is not bytes:
            raise DecodeError("schema", "value batches must hold binary strings")
    if kind == MEMBERSHIP:
        if len(batches) != 1:
            raise DecodeError("schema", "a membership value carries exactly one batch")
    elif kind != COMMANDS and batches:
        raise DecodeError("schema", "no-op and StartWorking values carry no batches")
    epoch = _ballots.get((er, en)) if type(er) is int and type(en) is int else None
    if epoch is None:
        epoch = _ballot(er, en, "epoch")
    v = _new(Value)
    _set_kind(v, kind)
    _set_epoch(v, epoch)
    _set_batches(v, batches)
    return v


def _enc_value(v: Value) -> list[Any]:
    return [v.kind, v.epoch.round, v.epoch.node, v.batches]


def _arity(m: tuple[Any, ...], n: int, name: str) -> None:
    if len(m) != n:
        raise DecodeError("schema", f"{name} has {len(m) - 1} fields, expected {n - 1}")


# --- messages -----------------------------------------------------------------------------

Encoder = Callable[[Any], list[Any]]
Decoder = Callable[[tuple[Any, ...]], Message]


def _votes(raw: Any) -> tuple[Vote, ...]:
    out = []
    for v in _seq(raw, "votes"):
        if type(v) is not tuple or len(v) != 7:
            raise DecodeError("schema", "a vote is [slot, round, node, kind, epoch_round, epoch_node, batches]")
        out.append(Vote(_int(v[0], "slot"), _vballot(v[1], v[2], "ballot"), _value(*v[3:7])))
    return tuple(out)


def _enc_votes(votes: tuple[Vote, ...]) -> list[Any]:
    return [[v.slot, v.ballot.round, _wn(v.ballot), v.value.kind, v.value.epoch.round,
             v.value.epoch.node, v.value.batches] for v in votes]


def _dec_prepare(m: tuple[Any, ...]) -> Message:
    _arity(m, 4, "prepare")
    return Prepare(_ballot(m[1], m[2], "ballot"), _int(m[3], "from_slot"))


def _accept_entry(e: Any) -> tuple[int, Value]:
    if type(e) is not tuple or len(e) != 5:
        raise DecodeError("schema", "an accept entry is [slot, kind, epoch_round, epoch_node, batches]")
    slot, kind, er, en, batches = e
    if type(slot) is not int or not 0 <= slot <= INT_MAX:
        _int(slot, "slot")  # raises, with the reason
    if kind == COMMANDS and type(kind) is int and type(batches) is tuple and type(er) is int and type(en) is int:
        # The common case, checked and built exactly as _value does, inlined on purpose: the
        # call costs 3% of replay at 1M records (measured), which is the margin to the target.
        for b in batches:
            if type(b) is not bytes:
                raise DecodeError("schema", "value batches must hold binary strings")
        epoch = _ballots.get((er, en))
        if epoch is None:
            epoch = _ballot(er, en, "epoch")
        v = _new(Value)
        _set_kind(v, kind)
        _set_epoch(v, epoch)
        _set_batches(v, batches)
        return slot, v
    return slot, _value(kind, er, en, batches)


def _accept_entries(raw: Any) -> tuple[tuple[int, Value], ...]:
    """[[slot, kind, epoch_round, epoch_node, batches], ...]: an Accept's and an AcceptRecord's
    entries. The hottest decoding path (every Accept, every replayed record)."""
    if type(raw) is not tuple:
        _seq(raw, "entries")  # raises, with the reason
    if len(raw) == 1:  # the usual record: one slot
        return (_accept_entry(raw[0]),)
    return tuple([_accept_entry(e) for e in raw])


def _members(m: tuple[Any, ...], n: int, name: str) -> bytes:
    """The optional trailing membership history (actors/membership.py): absent while there
    never was a change, so the wire is then what it always was."""
    if len(m) == n:
        return b""
    _arity(m, n + 1, name)
    blob = m[n]
    if type(blob) is not bytes or not blob:
        raise DecodeError("schema", f"{name} members must be a non-empty binary string")
    return blob


def _with_members(fields: list[Any], blob: bytes) -> list[Any]:
    if blob:
        fields.append(blob)
    return fields


def _dec_accept(m: tuple[Any, ...]) -> Message:
    members = _members(m, 5, "accept")
    return Accept(_vballot(m[1], m[2], "ballot"), _int(m[3], "chosen_through"), _accept_entries(m[4]), members)


def _dec_heartbeat(m: tuple[Any, ...]) -> Message:
    members = _members(m, 4, "heartbeat")
    return Heartbeat(_ballot(m[1], m[2], "ballot"), _int(m[3], "chosen_through"), members)


def _dec_promise(m: tuple[Any, ...]) -> Message:
    members = _members(m, 8, "promise")
    return Promise(_ballot(m[1], m[2], "ballot"), _int(m[3], "from_slot"),
                   _int(m[4], "chosen_through"), _int(m[5], "highest_slot"),
                   _int(m[6], "reported_through"), _votes(m[7]), members)


def _dec_nack(m: tuple[Any, ...]) -> Message:
    _arity(m, 5, "nack")
    return Nack(_ballot(m[1], m[2], "ballot"), _ballot(m[3], m[4], "promised"))


def _dec_accepted(m: tuple[Any, ...]) -> Message:
    _arity(m, 5, "accepted")
    slots = _seq(m[3], "slots")
    for s in slots:
        _int(s, "slot")
    values = tuple(_value(*_value_fields(v)) for v in _seq(m[4], "values"))
    if values and len(values) != len(slots):
        raise DecodeError("schema", "accepted values must be empty or match the slots")
    return Accepted(_vballot(m[1], m[2], "ballot"), slots, values)


def _value_fields(v: Any) -> tuple[Any, ...]:
    if type(v) is not tuple or len(v) != 4:
        raise DecodeError("schema", "a value is [kind, epoch_round, epoch_node, batches]")
    return v


def _slot_range(first: Any, last: Any, what: str) -> tuple[int, int]:
    first, last = _int(first, "from_slot"), _int(last, "to_slot")
    if first < 1 or last < first:
        raise DecodeError("range", f"{what} range [{first}, {last}] is empty or starts below 1")
    return first, last


def _dec_fetch(m: tuple[Any, ...]) -> Message:
    _arity(m, 3, "fetch")
    return Fetch(*_slot_range(m[1], m[2], "fetch"))


def _dec_recover(m: tuple[Any, ...]) -> Message:
    _arity(m, 6, "recover")
    first, last = _slot_range(m[3], m[4], "recover")
    return Recover(_ballot(m[1], m[2], "ballot"), first, last, _int(m[5], "nonce"))


def _dec_recovered(m: tuple[Any, ...]) -> Message:
    _arity(m, 9, "recovered")
    return Recovered(_ballot(m[1], m[2], "ballot"), _int(m[3], "nonce"), _int(m[4], "from_slot"),
                     _int(m[5], "reported_through"), _votes(m[6]), _int(m[7], "compacted_through"),
                     _int(m[8], "snapshot_slot"))


def _dec_repair(m: tuple[Any, ...]) -> Message:
    _arity(m, 3, "repair")
    return Repair(*_slot_range(m[1], m[2], "repair"))


def _dec_fetched(m: tuple[Any, ...]) -> Message:
    _arity(m, 7, "fetched")
    return Fetched(_int(m[1], "chosen_through"), _votes(m[2]), _int(m[3], "compacted_through"),
                   _int(m[4], "snapshot_slot"), _int(m[5], "snapshot_bytes"), _crc(m[6]))


def _crc(x: Any) -> int:
    if type(x) is not int or not 0 <= x < 1 << 32:
        raise DecodeError("schema", f"a crc32 is an integer in [0, 2^32), got {x!r:.40}")
    return x


def _dec_probed(m: tuple[Any, ...]) -> Message:
    members = _members(m, 5, "probed")
    return Probed(_ballot(m[1], m[2], "promised"), _int(m[3], "highest_slot"), _int(m[4], "chosen_through"),
                  members)


def _dec_snapshot_offer(m: tuple[Any, ...]) -> Message:
    _arity(m, 4, "snapshot_offer")
    return SnapshotOffer(_int(m[1], "slot"), _int(m[2], "size_bytes"), _crc(m[3]))


def _dec_snapshot_fetch(m: tuple[Any, ...]) -> Message:
    _arity(m, 4, "snapshot_fetch")
    return SnapshotFetch(_int(m[1], "slot"), _int(m[2], "offset"), _int(m[3], "length"))


def _dec_snapshot_chunk(m: tuple[Any, ...]) -> Message:
    _arity(m, 6, "snapshot_chunk")
    if type(m[5]) is not bytes:
        raise DecodeError("schema", "snapshot chunk data must be a binary string")
    return SnapshotChunk(_int(m[1], "slot"), _int(m[2], "offset"), _int(m[3], "size_bytes"), _crc(m[4]), m[5])


def _dec_submit(m: tuple[Any, ...]) -> Message:
    _arity(m, 2, "submit")
    if type(m[1]) is not bytes:
        raise DecodeError("schema", "submit batch must be a binary string")
    return Submit(m[1])


def _dec_change_members(m: tuple[Any, ...]) -> Message:
    _arity(m, 3, "change_members")
    if type(m[2]) is not bytes:
        raise DecodeError("schema", "change_members members must be a binary string")
    return ChangeMembers(_int(m[1], "request"), m[2])


def _dec_members_changed(m: tuple[Any, ...]) -> Message:
    _arity(m, 6, "members_changed")
    if type(m[2]) is not bool:
        raise DecodeError("schema", "members_changed ok must be a bool")
    return MembersChanged(_int(m[1], "request"), m[2], _int(m[3], "slot"), _str(m[4], "reason"),
                          _str(m[5], "leader"))


def _dec_redirect(m: tuple[Any, ...]) -> Message:
    _arity(m, 3, "redirect")
    return Redirect(_str(m[1], "leader"), _str(m[2], "reason"))


_RESULT_TYPES = (str, bool, type(None))


def _mget_values(result: Any) -> bool:
    return type(result) is tuple and all(v is None or type(v) is str for v in result)


def _dec_reply(m: tuple[Any, ...]) -> Message:
    _arity(m, 2, "reply")
    results = _seq(m[1], "results")
    for r in results:  # one check per result, inline: a client receives many
        if (type(r) is not tuple or len(r) != 3 or type(r[0]) is not int or not 0 <= r[0] <= INT_MAX
                or type(r[1]) is not bool or (type(r[2]) not in _RESULT_TYPES and not _mget_values(r[2]))):
            raise DecodeError("schema", "a result is [seq, ok, result] with a string, bool or nil result, "
                                        "or an mget's list of strings and nils")
    return Reply(results)


def _dec_empty(cls: type[Message]) -> Decoder:
    def dec(m: tuple[Any, ...]) -> Message:
        _arity(m, 1, cls.TYPE)
        return cls()
    return dec


def _dec_status_query(m: tuple[Any, ...]) -> Message:
    # `[30]` (every status query before `brief` existed), `[30, brief]`, or `[30, brief, digest]`.
    if len(m) == 1:
        return StatusQuery()
    if len(m) not in (2, 3):
        _arity(m, 3, "status_query")
    if not all(type(x) is bool for x in m[1:]):
        raise DecodeError("schema", "status_query.brief and .digest must be booleans")
    return StatusQuery(*m[1:])


def _dec_status_reply(m: tuple[Any, ...]) -> Message:
    _arity(m, 2, "status_reply")
    info = []
    for item in _seq(m[1], "info"):
        if type(item) is not tuple or len(item) != 2 or type(item[0]) is not str:
            raise DecodeError("schema", "status info is [[key, value], ...]")
        if item[1] is not None and type(item[1]) not in (str, int, bool, float):
            raise DecodeError("schema", "status values are scalars")
        info.append(item)
    return StatusReply(tuple(info))


def _dec_any(m: tuple[Any, ...]) -> Message:
    _arity(m, 4, "any")
    return Any_(_ballot(m[1], m[2], "ballot"), _int(m[3], "from_slot"))


def _dec_fast_accept(m: tuple[Any, ...]) -> Message:
    _arity(m, 2, "fast_accept")
    if type(m[1]) is not bytes:
        raise DecodeError("schema", "a fast_accept batch is a binary string")
    return FastAccept(m[1])


def _dec_read(m: tuple[Any, ...]) -> Message:
    _arity(m, 3, "read")
    if type(m[2]) is not bytes:
        raise DecodeError("schema", "read batch must be a binary string")
    return Read(_str(m[1], "learner"), m[2])


def _dec_read_at(m: tuple[Any, ...]) -> Message:
    _arity(m, 5, "read_at")
    if type(m[2]) is not bytes:
        raise DecodeError("schema", "read_at batch must be a binary string")
    return ReadAt(_int(m[1], "index"), m[2], _ballot(m[3], m[4], "ballot"))


def _dec_granted(m: tuple[Any, ...]) -> Message:
    _arity(m, 5, "lease_granted")
    return LeaseGranted(_ballot(m[1], m[2], "ballot"), _int(m[3], "round"), _int(m[4], "highest_slot"))


def _dec_lease(cls: type[LeaseRenew] | type[LeaseGranted]) -> Decoder:
    def dec(m: tuple[Any, ...]) -> Message:
        _arity(m, 4, cls.TYPE)
        return cls(_ballot(m[1], m[2], "ballot"), _int(m[3], "round"))
    return dec


MESSAGE_CODECS: dict[type[Message], tuple[int, Encoder, Decoder]] = {
    Prepare: (1, lambda m: [1, m.ballot.round, m.ballot.node, m.from_slot], _dec_prepare),
    Accept: (2, lambda m: _with_members([2, m.ballot.round, _wn(m.ballot), m.chosen_through,
                                         [[s, v.kind, v.epoch.round, v.epoch.node, v.batches] for s, v in m.entries]],
                                        m.members),
             _dec_accept),
    Heartbeat: (3, lambda m: _with_members([3, m.ballot.round, m.ballot.node, m.chosen_through], m.members),
                _dec_heartbeat),
    Promise: (4, lambda m: _with_members([4, m.ballot.round, m.ballot.node, m.from_slot, m.chosen_through,
                                          m.highest_slot, m.reported_through, _enc_votes(m.votes)], m.members),
              _dec_promise),
    Nack: (5, lambda m: [5, m.ballot.round, m.ballot.node, m.promised.round, m.promised.node],
           _dec_nack),
    Accepted: (6, lambda m: [6, m.ballot.round, _wn(m.ballot), m.slots,
                             [_enc_value(v) for v in m.values]], _dec_accepted),
    Fetch: (7, lambda m: [7, m.from_slot, m.to_slot], _dec_fetch),
    Fetched: (8, lambda m: [8, m.chosen_through, _enc_votes(m.votes), m.compacted_through, m.snapshot_slot,
                            m.snapshot_bytes, m.snapshot_crc], _dec_fetched),
    Recover: (9, lambda m: [9, m.ballot.round, m.ballot.node, m.from_slot, m.to_slot, m.nonce], _dec_recover),
    Recovered: (11, lambda m: [11, m.ballot.round, m.ballot.node, m.nonce, m.from_slot, m.reported_through,
                               _enc_votes(m.votes), m.compacted_through, m.snapshot_slot], _dec_recovered),
    Repair: (10, lambda m: [10, m.from_slot, m.to_slot], _dec_repair),
    Probe: (12, lambda m: [12], _dec_empty(Probe)),
    Probed: (13, lambda m: _with_members([13, m.promised.round, m.promised.node, m.highest_slot, m.chosen_through],
                                         m.members), _dec_probed),
    SnapshotOffer: (14, lambda m: [14, m.slot, m.size_bytes, m.crc], _dec_snapshot_offer),
    SnapshotFetch: (15, lambda m: [15, m.slot, m.offset, m.length], _dec_snapshot_fetch),
    SnapshotChunk: (16, lambda m: [16, m.slot, m.offset, m.size_bytes, m.crc, m.data], _dec_snapshot_chunk),
    Submit: (20, lambda m: [20, m.batch], _dec_submit),
    Redirect: (21, lambda m: [21, m.leader, m.reason], _dec_redirect),
    Reply: (22, lambda m: [22, m.results], _dec_reply),  # tuples pack as arrays: no copy per result
    Hello: (23, lambda m: [23], _dec_empty(Hello)),
    ChangeMembers: (24, lambda m: [24, m.request, m.members], _dec_change_members),
    MembersChanged: (25, lambda m: [25, m.request, m.ok, m.slot, m.reason, m.leader], _dec_members_changed),
    # Reads without a log write (tags 26-31 are the reads'; 32-39 are kept for Fast Paxos).
    Read: (26, lambda m: [26, m.learner, m.batch], _dec_read),
    ReadAt: (27, lambda m: [27, m.index, m.batch, m.ballot.round, m.ballot.node], _dec_read_at),
    LeaseRenew: (28, lambda m: [28, m.ballot.round, m.ballot.node, m.round], _dec_lease(LeaseRenew)),
    LeaseGranted: (29, lambda m: [29, m.ballot.round, m.ballot.node, m.round, m.highest_slot], _dec_granted),
    StatusQuery: (30, lambda m: [30, m.brief, False] if not m.digest else [30, True] if m.brief else [30],
                  _dec_status_query),
    Any_: (32, lambda m: [32, m.ballot.round, m.ballot.node, m.from_slot], _dec_any),
    FastAccept: (33, lambda m: [33, m.batch], _dec_fast_accept),
    StatusReply: (31, lambda m: [31, [list(i) for i in m.info]], _dec_status_reply),
}
_ENCODERS: dict[type[Message], Encoder] = {cls: enc for cls, (_, enc, _) in MESSAGE_CODECS.items()}
_DECODERS: dict[int, tuple[type[Message], Decoder]] = {
    tag: (cls, dec) for cls, (tag, _, dec) in MESSAGE_CODECS.items()
}


def encode_message(message: Message) -> list[Any]:
    return _ENCODERS[type(message)](message)


def decode_message(raw: Any) -> Message:
    if type(raw) is not tuple or not raw:
        raise DecodeError("schema", "a message is a non-empty array")
    tag = raw[0]
    if type(tag) is not int:
        raise DecodeError("schema", "a message starts with an integer type tag")
    entry = _DECODERS.get(tag)
    if entry is None:
        raise DecodeError("unknown_type", f"unknown message type tag {tag}")
    return entry[1](raw)


def encode_frame(sender: str, messages: list[Message], lc: int = 0, sampled: bool = False) -> bytes:
    return pack([VERSION, sender, [_ENCODERS[type(m)](m) for m in messages], lc, sampled])


_TRUE, _FALSE = pack(True), pack(False)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


class FrameEncoder:
    """Encodes one turn's frames, packing each message once however many destinations it goes
    to (the leader's Accept to every acceptor, an acceptor's Accepted to every learner). The
    bytes are exactly those of `encode_frame`. The trace context is the frame's tail, packed per
    destination (an int and a bool): the head and the messages stay shared."""

    def __init__(self, sender: str) -> None:
        self.head = _array_header(5) + pack(VERSION) + pack(sender)
        self._cache: dict[int, tuple[Message, bytes]] = {}

    def encode(self, messages: list[Message], lc: int = 0, sampled: bool = False) -> bytes:
        cache = self._cache
        parts = [self.head, _array_header(len(messages))]
        for m in messages:
            hit = cache.get(id(m))
            if hit is None or hit[0] is not m:
                hit = cache[id(m)] = (m, pack(_ENCODERS[type(m)](m)))
            parts.append(hit[1])
        parts.append(pack(lc))
        parts.append(_TRUE if sampled else _FALSE)
        return b"".join(parts)

    def reset(self) -> None:
        """Start a new turn: forget the packed messages (the cache holds them alive)."""
        self._cache.clear()


def decode_frame(data: bytes, messages_max: int = 100_000) -> tuple[str, list[Message]]:
    """The sender's claimed name and its messages; raises DecodeError for anything else."""
    sender, messages, _, _ = decode_frame_ctx(data, messages_max)
    return sender, messages


def decode_frame_ctx(data: bytes, messages_max: int = 100_000) -> tuple[str, list[Message], int, bool]:
    """The sender's claimed name, its messages and the frame's trace context (lc, sampled);
    raises DecodeError for anything else."""
    raw = unpack(data)
    if type(raw) is not tuple or len(raw) not in (3, 5):
        raise DecodeError("schema", "a frame is [version, sender, messages, lc, sampled]")
    lc, sampled = 0, False
    if len(raw) == 5:
        version, sender, messages, lc, sampled = raw
    else:
        version, sender, messages = raw
    if type(version) is not int or version != VERSION:
        raise DecodeError("version", f"protocol version {version!r:.20} is not {VERSION}")
    if type(sender) is not str or not sender:
        raise DecodeError("schema", "sender must be a non-empty string")
    if type(messages) is not tuple or len(messages) > messages_max:
        raise DecodeError("schema", "messages must be an array of at most "
                                    f"{messages_max} messages")
    if type(lc) is not int or not 0 <= lc <= INT_MAX:
        raise DecodeError("schema", f"trace lc must be an integer in [0, 2^63), got {lc!r:.40}")
    if type(sampled) is not bool:
        raise DecodeError("schema", f"trace sampled must be a bool, got {type(sampled).__name__}")
    return sender, [decode_message(m) for m in messages], lc, sampled


# --- records ------------------------------------------------------------------------------


def encode_record(record: Record) -> list[Any]:
    if type(record) is AcceptRecord:
        return [3, record.ballot.round, _wn(record.ballot), record.chosen_through,
                [[s, v.kind, v.epoch.round, v.epoch.node, v.batches] for s, v in record.entries]]
    if type(record) is DecidedRecord:
        return [4, record.slot, *_enc_value(record.value)]
    if type(record) is PromiseRecord:
        return [2, record.ballot.round, record.ballot.node]
    if type(record) is RoundRecord:
        return [1, record.round]
    if type(record) is SnapshotRecord:
        return [5, record.slot, record.size_bytes, record.crc]
    if type(record) is RebuildRecord:
        return [6, record.done, record.floor]
    if type(record) is MembersRecord:
        return [7, record.members]
    raise TypeError(f"not a record: {record!r}")


def decode_record(raw: Any) -> Record:
    if type(raw) is not tuple or not raw or type(raw[0]) is not int:
        raise DecodeError("schema", "a record is [tag, ...]")
    tag = raw[0]
    if tag == 3 and len(raw) == 5:
        _, r, n, chosen_through, entries = raw
        ballot = _ballots.get((r, n)) if type(r) is int and type(n) is int else None
        if ballot is None:
            ballot = _vballot(r, n, "ballot")
        if type(chosen_through) is not int or not 0 <= chosen_through <= INT_MAX:
            _int(chosen_through, "chosen_through")  # raises, with the reason
        record = _new(AcceptRecord)
        _set_rballot(record, ballot)
        _set_rchosen(record, chosen_through)
        # The usual record holds one slot: skip a call on the replay path.
        one = type(entries) is tuple and len(entries) == 1
        _set_rentries(record, (_accept_entry(entries[0]),) if one else _accept_entries(entries))
        return record
    if tag == 4 and len(raw) == 6:
        return DecidedRecord(_int(raw[1], "slot"), _value(*raw[2:6]))
    if tag == 2 and len(raw) == 3:
        return PromiseRecord(_ballot(raw[1], raw[2], "ballot"))
    if tag == 1 and len(raw) == 2:
        return RoundRecord(_int(raw[1], "round"))
    if tag == 5 and len(raw) == 4:
        return SnapshotRecord(_int(raw[1], "slot"), _int(raw[2], "size_bytes"), _crc(raw[3]))
    if tag == 6 and len(raw) == 3:
        if type(raw[1]) is not bool:
            raise DecodeError("schema", "a rebuild record's `done` is a bool")
        return RebuildRecord(raw[1], _int(raw[2], "floor"))
    if tag == 7 and len(raw) == 2:
        if type(raw[1]) is not bytes or not raw[1]:
            raise DecodeError("schema", "a members record holds a non-empty binary string")
        return MembersRecord(raw[1])
    raise DecodeError("schema", f"unknown record tag {tag} or wrong arity {len(raw)}")


def encode_records(records: list[Record]) -> bytes:
    return pack([encode_record(r) for r in records])


def encode_record_runs(records: Iterable[Record], run_bytes: int) -> Iterator[bytes]:
    """`encode_records` of consecutive runs of `records`, each of about `run_bytes` (a record
    at least), byte for byte what `encode_records` gives for that run. Built a record at a
    time with a packer of its own, so a worker thread can run it without holding the
    interpreter for long (compaction)."""
    packer = msgpack.Packer(use_bin_type=True, autoreset=True)
    items: list[bytes] = []
    size = 0
    for record in records:
        item = packer.pack(encode_record(record))
        items.append(item)
        size += len(item)
        if size >= run_bytes:
            yield packer.pack_array_header(len(items)) + b"".join(items)
            items, size = [], 0
    if items:
        yield packer.pack_array_header(len(items)) + b"".join(items)


def decode_records(data: bytes) -> list[Record]:
    raw = unpack(data, "record batch")
    if type(raw) is not tuple:
        raise DecodeError("schema", "a record batch is an array")
    return [decode_record(r) for r in raw]


# --- client batches -----------------------------------------------------------------------


def encode_client_batch(client_id: str, acked_below: int, commands: list[list[Any]], reply_by: str = "") -> bytes:
    if reply_by:
        return pack([client_id, acked_below, commands, reply_by])
    return pack([client_id, acked_below, commands])


def batch_is_from(blob: bytes, client_id: str) -> bool:
    """Whether a client batch (as `encode_client_batch` packs it) names `client_id` as its
    session, read from its first bytes: an array header, then the id as a short string."""
    sid = client_id.encode()
    n = len(sid)
    if not 0 < n <= 31 or len(blob) < n + 2 or blob[0] not in (0x93, 0x94):
        return False
    return blob[1] == 0xA0 | n and blob[2:2 + n] == sid


def decode_client_batch(blob: bytes) -> Any:
    """Only msgpack-level decoding; the shape is checked by `actors.kv.parse_batch`, the same
    on every learner."""
    return unpack(blob, "client batch")
