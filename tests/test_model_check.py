"""Tier 3: exhaustive exploration of a small configuration of the real cores.

The complete run is the CI bound (2 proposers with one election each, 3 acceptors, client
commands, every interleaving of every frame, loss as non-delivery): about 130,000 states in
under a minute here. With one compaction the search is cut at a state count. Larger bounds
(duplication, restarts, more elections) are
`python -m runtime.harness.sim.model --campaigns 2,1 --duplicates 1 --restarts 1`."""

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
