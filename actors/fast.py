"""Fast Paxos rules (seed 003; Lamport, "Fast Paxos", 2006): which ballots are fast, how many
acceptors make a quorum in each, and which value a recovery must pick.

In fast mode a leader whose ballot has an odd round opens the slots after its StartWorking with
`Any`: acceptors then take client commands straight from the clients (`FastAccept`), each in its
next free slot, and a slot is chosen when a *fast quorum* of acceptors accepted the same value
under that ballot. Even rounds are classic: a leader falls back to one when collisions keep
happening (proposer.py). A collision (acceptors that took different values for one slot) is
recovered in the slot's recovery round `ballot.recovery()`, immediately above the fast ballot:
- coordinated: the leader picks the value and sends a classic Accept in the recovery round
  (a majority chooses it);
- uncoordinated: every acceptor that sees the collision picks the value by the same rule and
  votes for it in the recovery round by itself, which is then a fast round too.
Either way the votes of the fast round stand for the recovery round's Phase 1, which is sound
only because no ballot lies between the two (actors/ballot.py).

Quorums, with n acceptors: classic q = n // 2 + 1, fast qf the smallest size with
2 * qf + q > 2 * n, so that any two fast quorums and one classic quorum share an acceptor
(n = 4: qf = 3; n = 5: qf = 4). That intersection is what `choose` relies on: among the votes a
classic quorum reports for the highest ballot, at most one value can have been chosen, the one
that at least `qf - (n - reported)` of them voted for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from actors.ballot import Ballot
from actors.messages import Value

CLASSIC = "classic"
FAST = "fast"
COORDINATED = "coordinated"
UNCOORDINATED = "uncoordinated"
MODES = (CLASSIC, FAST)
RECOVERIES = (COORDINATED, UNCOORDINATED)
FAST_ACCEPTORS_MIN = 4  # below it a fast quorum is every acceptor: one down stops the fast path


def classic_quorum(n: int) -> int:
    return n // 2 + 1


def fast_quorum(n: int) -> int:
    """The smallest qf with 2 * qf + q > 2 * n (a planted bug makes it one too small)."""
    q = classic_quorum(n)
    return (2 * n - q) // 2 + 1


def need_acceptors(mode: str, n: int) -> str | None:
    """Why `n` acceptors cannot run `mode`, or None."""
    if mode == FAST and n < FAST_ACCEPTORS_MIN:
        examples = ", ".join(f"{k} acceptors: fast quorum {fast_quorum(k)}" for k in (4, 5))
        return (f"fast mode needs at least {FAST_ACCEPTORS_MIN} acceptors so that a fast quorum "
                f"survives one failure ({examples}); this cluster has {n} (fast quorum {fast_quorum(n)})")
    return None


@dataclass(frozen=True, slots=True)
class FastRules:
    """The cluster's mode, the same in every actor (cluster.toml's `[protocol] mode`)."""

    mode: str = CLASSIC
    recovery: str = COORDINATED

    @property
    def enabled(self) -> bool:
        return self.mode == FAST

    def fast_ballot(self, b: Ballot) -> bool:
        """A leader ballot that opens fast slots: odd rounds, in fast mode."""
        return self.mode == FAST and b.sub == 0 and b.round % 2 == 1

    def is_fast(self, b: Ballot) -> bool:
        """Whether votes under `b` need a fast quorum: a fast ballot, and its recovery round when
        acceptors recover by themselves."""
        if self.mode != FAST or b.round % 2 == 0:
            return False
        return b.sub == 0 or (b.sub == 1 and self.recovery == UNCOORDINATED)

    def quorum(self, b: Ballot, n: int) -> int:
        return fast_quorum(n) if self.is_fast(b) else classic_quorum(n)


CLASSIC_RULES = FastRules()


def value_key(v: Value) -> tuple[int, int, int, tuple[bytes, ...]]:
    """A total order on values, the same in every process: ties in `choose` break by it."""
    return (v.kind, v.epoch.round, v.epoch.node, v.batches)


def choose(votes: Iterable[Value], n: int, reported: int, fast: bool) -> Value:
    """The value a recovery proposes, from the values `reported` acceptors (a classic quorum or
    more, of the slot's n) voted for under the highest ballot any of them voted under (acceptors
    that reported no such vote count in `reported` but vote for nothing).

    Classic ballot: there is one value (a leader proposes one per slot). Fast ballot: a value
    voted by at least qf - (n - reported) of them may have been chosen (a fast quorum may hide
    among the ones that did not answer) and must be kept; at most one can be (the quorum
    intersection); when none can, any is safe, and the most voted one (then the smallest by
    `value_key`) is taken, so every acceptor that recovers alone picks the same one."""
    counts: dict[Value, int] = {}
    for v in votes:
        counts[v] = counts.get(v, 0) + 1
    if not counts:
        raise ValueError("choose needs at least one vote")
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], value_key(kv[0])))
    if not fast:
        return ranked[0][0]
    threshold = fast_quorum(n) - (n - reported)
    possible = [v for v, c in ranked if c >= threshold]
    return possible[0] if possible else ranked[0][0]


def collided(votes: Iterable[Value], n: int, quorum: int) -> bool:
    """No value can reach `quorum` any more: the acceptors that have not voted could not make up
    for the split (`votes`: one per acceptor that voted)."""
    counts: dict[Value, int] = {}
    voted = 0
    for v in votes:
        counts[v] = counts.get(v, 0) + 1
        voted += 1
    return bool(counts) and max(counts.values()) + (n - voted) < quorum
