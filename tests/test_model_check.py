"""Tier 3: exhaustive exploration of a small configuration of the real cores.

The complete run is the CI bound (2 proposers with one election each, 3 acceptors, client
commands, every interleaving of every frame, loss as non-delivery): about 130,000 states in
under a minute here. With one compaction the search is cut at a state count. Larger bounds
(duplication, restarts, more elections) are
`python -m runtime.harness.sim.model --campaigns 2,1 --duplicates 1 --restarts 1`.

Membership change (issue 11) has bounds of its own, each complete in seconds: a change proposed
just before (or while) a leader change, and an acceptor replaced under client commands, with the
planted bug that uses a membership before its alpha window found in the second.

Fast Paxos (issue 12): 4 acceptors, p1 serving a fast ballot, two clients' commands colliding in
slot 2, in both recoveries; complete in seconds with the leader coordinating, a prefix of the
search for uncoordinated recovery and for a second leader taking over; the planted bug of a fast
quorum one too small is found in both."""

import pytest

from runtime.harness import bugs as planted
from runtime.harness.sim.model import Bounds, ModelChecker


def test_every_reachable_state_of_the_base_bound_keeps_agreement() -> None:
    result = ModelChecker(Bounds(campaigns=(1, 1), duplicates=0, restarts=0)).run(time_budget_s=600)
    print(f"\nmodel check: {result.states} states, {result.transitions} transitions, {result.seconds:.1f}s")
    assert result.complete, "the bound was not fully explored"
    assert result.ok, result.violation
    assert result.states > 100_000  # it really explored something


@pytest.mark.parametrize("depth_first", [False, True], ids=["breadth", "depth"])
def test_a_bounded_search_with_compaction_keeps_agreement_and_durability(depth_first: bool) -> None:
    # The complete bound with one compaction is 1,001,377 states (about 7 minutes here: run it
    # with `--compactions 1 --restarts 0 --duplicates 0`); CI explores a prefix of it both ways,
    # breadth first (every short path) and depth first (long paths: compaction, then the takeover).
    bounds = Bounds(campaigns=(1, 1), duplicates=0, restarts=0, compactions=1, states_max=40_000)
    result = ModelChecker(bounds).run(time_budget_s=300, depth_first=depth_first)
    print(f"\nmodel check with compaction: {result.states} states, {result.compacted_states} compacted, "
          f"{result.seconds:.1f}s")
    assert result.ok, result.violation
    assert result.compacted_states > 1_000  # the search really went past a compaction


@pytest.mark.parametrize("bug,bounds", [
    ("accept_below_promise", Bounds(campaigns=(1, 1), duplicates=0, restarts=0)),
    ("promise_in_memory", Bounds(campaigns=(1, 1), duplicates=0, restarts=1)),
    ("count_duplicate_accepted", Bounds(campaigns=(1, 1), duplicates=1, restarts=0, learners=1)),
    ("ack_before_chosen", Bounds(campaigns=(1, 1), duplicates=0, restarts=0, learners=1)),
    ("compact_past_snapshot", Bounds(campaigns=(1, 1), duplicates=0, restarts=0, compactions=1)),
])
def test_planted_bugs_are_found_with_a_counterexample(bug: str, bounds: Bounds) -> None:
    result = ModelChecker(bounds, planted.kinds(bug)).run(time_budget_s=120)
    assert not result.ok, f"{bug} was not found in {result.states} states"
    assert result.violation.startswith(("agreement", "core invariant", "durability"))
    assert result.trail and "campaigns" in result.trail[0]


# --- membership change (issue 11) ---------------------------------------------------------------

# p1 serves (its election settled); then, in every order and interleaving, p1 proposes adding a4
# (alpha 1: from slot 3 on the new membership decides, once slot 2 chose the change) and p2
# campaigns: its Phase 1 may find the change in a Promise, ask a4, re-propose it, or miss it.
LEADER_CHANGE = Bounds(members="add", alpha=1, window=1, settle=True, commands=False, duplicates=0, restarts=0)
# p1 alone replaces a3 by a4 (alpha 2: slot 4 on is a1, a2, a4's) and is handed two client
# commands, in slots 3 (still the old membership's) and 4 (the new one's, once a4 promised).
REPLACE = Bounds(members="replace", alpha=2, window=1, campaigns=(1, 0), submits=2, settle=True, commands=False,
                 duplicates=0, restarts=0)


@pytest.mark.parametrize("bounds", [LEADER_CHANGE, REPLACE], ids=["leader_change", "replace"])
def test_every_reachable_state_across_a_membership_change_keeps_agreement(bounds: Bounds) -> None:
    result = ModelChecker(bounds).run(time_budget_s=300)
    print(f"\nmodel check across a change: {result.states} states, {result.changed_states} with a slot of the new "
          f"membership chosen, {result.seconds:.1f}s")
    assert result.complete, "the bound was not fully explored"
    assert result.ok, (result.violation, result.trail)
    assert result.changed_states > 1_000  # the new membership really decided slots


def test_a_leader_that_counts_a_slot_by_a_membership_before_its_alpha_window_is_found() -> None:
    # Slot 3 is still a1, a2, a3's: a leader counting it by the pending a1, a2, a4 takes a1 and a4
    # for a majority and claims a watermark over a slot that is not chosen.
    bounds = Bounds(members="replace", alpha=2, window=1, campaigns=(1, 0), submits=1, settle=True, commands=False,
                    duplicates=0, restarts=0)
    result = ModelChecker(bounds, planted.kinds("membership_before_alpha")).run(time_budget_s=120)
    assert not result.ok, f"membership_before_alpha was not found in {result.states} states"
    assert result.violation.startswith("watermark"), result.violation
    assert any("proposes" in step for step in result.trail) and any("client command" in step for step in result.trail)


def test_a_change_lost_to_the_next_leader_is_found_when_an_acceptor_breaks_its_promise() -> None:
    result = ModelChecker(LEADER_CHANGE, planted.kinds("accept_below_promise")).run(time_budget_s=120)
    assert not result.ok
    assert result.violation.startswith("agreement: slot 2"), result.violation  # the change's slot
    assert any("proposes" in step for step in result.trail) and any("p2 campaigns" in step for step in result.trail)


# --- Fast Paxos (issue 12) ----------------------------------------------------------------------

def fast_bounds(recovery: str, **kw) -> Bounds:
    # p1 serves a fast ballot with its Any delivered; two clients' commands to the four acceptors
    # are in flight, each acceptor takes one of them in slot 2 (every order: they collide); the
    # leader's re-sends of a collision's loser are left out.
    base = dict(mode="fast", fast_recovery=recovery, acceptors=4, campaigns=(1, 0), settle=True, commands=False,
                fast_clients=2, fast_window=2, fast_resends=False, duplicates=0, restarts=0)
    return Bounds(**{**base, **kw})


def test_every_reachable_state_of_a_coordinated_fast_collision_keeps_agreement() -> None:
    result = ModelChecker(fast_bounds("coordinated")).run(time_budget_s=120)
    print(f"\nmodel check, fast coordinated: {result.states} states, {result.transitions} transitions, "
          f"{result.seconds:.1f}s")
    assert result.complete and result.ok, (result.violation, result.trail)
    assert result.states > 5_000


@pytest.mark.parametrize("recovery,campaigns,depth_first", [
    ("uncoordinated", (1, 0), False), ("uncoordinated", (1, 0), True), ("coordinated", (1, 1), True),
], ids=["uncoordinated-breadth", "uncoordinated-depth", "coordinated-new-ballot-depth"])
def test_a_bounded_fast_search_keeps_agreement(recovery: str, campaigns: tuple[int, int], depth_first: bool) -> None:
    # Uncoordinated recovery (every acceptor's vote to every other) and a second leader's Phase 1
    # over split fast votes are beyond seconds complete: a prefix, both ways.
    result = ModelChecker(fast_bounds(recovery, campaigns=campaigns, states_max=8_000)).run(
        time_budget_s=60, depth_first=depth_first)
    print(f"\nmodel check, fast {recovery} {campaigns}: {result.states} states, {result.seconds:.1f}s")
    assert result.ok, (result.violation, result.trail)
    assert result.states > 8_000


@pytest.mark.parametrize("recovery", ["coordinated", "uncoordinated"])
def test_a_fast_quorum_one_too_small_is_found(recovery: str) -> None:
    result = ModelChecker(fast_bounds(recovery, learners=1), planted.kinds("fast_quorum_too_small")).run(
        time_budget_s=60)
    assert not result.ok and result.violation.startswith("agreement: l1 delivered slot 2"), result.violation
