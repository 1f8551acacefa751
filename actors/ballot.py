"""Ballots: totally ordered `(round, node)` pairs; `node` is the proposer's id, so two
proposers never share a ballot (seed 000: numbering `m * n + i` serves the same purpose)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True, slots=True)
class Ballot:
    """Totally ordered by (round, node). Real ballots have round >= 1 and node >= 1."""

    round: int
    node: int

    def __str__(self) -> str:
        return f"{self.round}.{self.node}"


# Below every real ballot; used instead of None so comparisons never need a special case.
ZERO = Ballot(0, 0)
