"""Ballots: totally ordered `(round, node)` pairs; `node` is the proposer's id, so two
proposers never share a ballot (seed 000: numbering `m * n + i` serves the same purpose).

Fast Paxos (actors/fast.py) adds a third, least significant part: `sub`, a collision-recovery
round of one slot. `(round, node, 1)` sits immediately above the fast ballot `(round, node)`:
no ballot of anybody lies between them, which is what lets the votes of the fast round serve as
the Phase 1 of the recovery round (Lamport, Fast Paxos, section 3.3). Only votes carry a
non-zero `sub`; promises, Prepares and heartbeats never do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True, slots=True)
class Ballot:
    """Totally ordered by (round, node, sub). Real ballots have round >= 1 and node >= 1."""

    round: int
    node: int
    sub: int = 0

    def __str__(self) -> str:
        return f"{self.round}.{self.node}" if not self.sub else f"{self.round}.{self.node}+{self.sub}"

    def base(self) -> Ballot:
        """The leader's ballot this (recovery) ballot belongs to."""
        return self if not self.sub else Ballot(self.round, self.node)

    def recovery(self) -> Ballot:
        """The collision-recovery round of this fast ballot, immediately above it."""
        return Ballot(self.round, self.node, 1)


# Below every real ballot; used instead of None so comparisons never need a special case.
ZERO = Ballot(0, 0)
