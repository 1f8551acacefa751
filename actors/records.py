"""Durable records. State changes only through records: the live path applies a record and
returns it to be persisted; recovery replays the same records through the same `apply`."""

from __future__ import annotations

from dataclasses import dataclass

from actors.ballot import Ballot
from actors.messages import Value


class Record:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RoundRecord(Record):
    """Proposer: the highest round it may have used. Persisted before the Prepare that uses it,
    so a restarted proposer never reuses a ballot (seeds 000, 001)."""

    round: int


@dataclass(frozen=True, slots=True)
class PromiseRecord(Record):
    """Acceptor: promised not to accept below `ballot` (P1b)."""

    ballot: Ballot


@dataclass(frozen=True, slots=True)
class AcceptRecord(Record):
    """Acceptor: accepted `entries` under `ballot` (P2b); also a promise of `ballot`.
    `chosen_through` keeps the leader's watermark so Promises after a restart stay small."""

    ballot: Ballot
    chosen_through: int
    entries: tuple[tuple[int, Value], ...]


@dataclass(frozen=True, slots=True)
class DecidedRecord(Record):
    """Learner: `slot` decided `value`, written in slot order; replay rebuilds the state."""

    slot: int
    value: Value


@dataclass(frozen=True, slots=True)
class SnapshotRecord(Record):
    """A durable snapshot of the state machine through `slot` (a file of `size_bytes` bytes with
    checksum `crc`). For a learner, replay starts from that snapshot; for an acceptor, it is
    what lets it forget every value at or below `slot` (compaction): those slots are chosen, and
    their effect is in a file it keeps and can serve."""

    slot: int
    size_bytes: int
    crc: int


@dataclass(frozen=True, slots=True)
class RebuildRecord(Record):
    """An actor that lost its file (wiped, or a dead disk) after it had voted or proposed.
    `done=False` is written first, before anything else in the new file: until a `done=True`
    record follows, the actor must not vote (acceptor) or propose (proposer), even across
    restarts. `floor` is the slot through which a rebuilt acceptor holds nothing it can vouch
    for (see Acceptor's rebuild rule)."""

    done: bool
    floor: int = 0


@dataclass(frozen=True, slots=True)
class MembersRecord(Record):
    """Acceptor: the newest membership history a leader sent it (actors/membership.py), persisted
    before the AcceptRecord whose watermark it covers: a Promise's chosen_through never outruns
    the history it reports."""

    members: bytes
