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
