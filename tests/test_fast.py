"""Fast Paxos rules (actors/fast.py): quorum sizes, the value a recovery keeps, collisions."""

import pytest

from actors.ballot import Ballot
from actors.fast import (
    CLASSIC_RULES,
    COORDINATED,
    FAST,
    UNCOORDINATED,
    FastRules,
    choose,
    classic_quorum,
    collided,
    fast_quorum,
    need_acceptors,
)
from actors.messages import COMMANDS, Value

B = Ballot(3, 1)


def v(text: str) -> Value:
    return Value(COMMANDS, B, (text.encode(),))


X, Y, Z = v("x"), v("y"), v("z")


@pytest.mark.parametrize("n,qf", [(4, 3), (5, 4), (7, 6)])
def test_fast_quorum_sizes(n: int, qf: int) -> None:
    assert fast_quorum(n) == qf
    q = classic_quorum(n)
    # Two fast quorums and a classic one always share an acceptor; one fewer would not.
    assert 2 * qf + q > 2 * n and not 2 * (qf - 1) + q > 2 * n


def test_fast_mode_needs_four_acceptors() -> None:
    assert need_acceptors(FAST, 3) is not None and "fast quorum 3" in need_acceptors(FAST, 3)
    assert need_acceptors(FAST, 4) is None and need_acceptors("classic", 3) is None


def test_which_ballots_are_fast() -> None:
    co, un = FastRules(FAST, COORDINATED), FastRules(FAST, UNCOORDINATED)
    assert co.fast_ballot(Ballot(1, 2)) and not co.fast_ballot(Ballot(2, 2)) and not co.fast_ballot(B.recovery())
    assert not CLASSIC_RULES.is_fast(Ballot(1, 1))
    # The recovery round is classic when the leader coordinates it, fast when acceptors recover alone.
    assert co.is_fast(B) and not co.is_fast(B.recovery()) and un.is_fast(B.recovery())
    assert co.quorum(B, 5) == 4 and co.quorum(B.recovery(), 5) == 3 and un.quorum(B.recovery(), 5) == 4
    assert B < B.recovery() < Ballot(3, 2) and B.recovery().base() == B


def test_choose_keeps_the_value_that_may_have_been_chosen() -> None:
    # 5 acceptors, 3 reported: X was voted by 2 of them, and the 2 silent ones may have voted X
    # too (a fast quorum of 4): X must be kept, whatever the order of the votes.
    assert choose([X, X, Y], 5, 3, True) == X
    assert choose([Y, X, X], 5, 3, True) == X
    # 4 acceptors (qf 3), all reported: X with 2 can no longer be chosen; any value is safe, and
    # every acceptor that sees the same votes picks the same one.
    assert choose([X, Y, Y, X], 4, 4, True) == choose([Y, X, X, Y], 4, 4, True)
    # 4 acceptors, 3 reported (X, X, Y): X may have a fast quorum (with the silent one), Y not.
    assert choose([Y, X, X], 4, 3, True) == X
    # 7 acceptors (qf 6), 5 reported: nothing can have been chosen; the most voted, then the
    # smallest by value order.
    assert choose([Z, Y, Y, X, X], 7, 5, True) == X and choose([Z, Y, Y, Y, X], 7, 5, True) == Y
    assert choose([Y], 3, 2, False) == Y
    with pytest.raises(ValueError):
        choose([], 4, 3, True)


def test_collided_when_no_value_can_reach_the_quorum_any_more() -> None:
    assert not collided([X, X], 4, 3)  # X may still get a third vote
    assert not collided([X, Y], 4, 3)  # X (or Y) with both silent ones
    assert collided([X, Y, Z], 4, 3)
    assert collided([X, X, Y, Y], 5, 4)  # 2 + 1 silent < 4
    assert not collided([X, X, X, Y], 5, 4)
    assert not collided([], 4, 3)
