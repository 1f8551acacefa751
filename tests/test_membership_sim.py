"""Tier 1 for membership change (issue 11): the simulator grows, shrinks and replaces acceptors
and adds and removes learners through the log under faults (wiped acceptors among them, which
must rebuild from today's acceptors; an added learner starts empty and catches up), and catches
the planted bugs that use a membership before its alpha window. Serial on purpose (one
process)."""

from __future__ import annotations

import pytest

from runtime.harness import bugs
from runtime.harness.sim.sim import SimConfig, SimResult, Simulation


def run(seed: int, bug: str = "") -> tuple[Simulation, SimResult]:
    sim = Simulation(seed, SimConfig(membership=True), bugs.kinds(bug))
    return sim, sim.run()


def test_growing_shrinking_and_replacing_acceptors_keeps_every_invariant() -> None:
    failed, full, replaced, rebuilt, learner_added, learner_removed = [], 0, 0, 0, 0, 0
    for seed in range(120):
        sim, result = run(seed)
        if not result.ok:
            failed.append(f"{result.rule}: {result.detail[:200]} ({result.repro()} --membership)")
        full += not sim.plan
        # Grown, shrunk, a learner added, and the three original acceptors replaced one by one:
        replaced += len(sim.ghost_history.changes) >= 6
        # The added learner started empty and caught up (a run converges only once every learner
        # that ever was a member delivered every chosen slot), then the first one was removed.
        spare = sim.learners[-1]
        if any(spare in m.learner_names for m in sim.ghost_history.all_members()):
            learner_added += 1
            assert sim.actors[spare].core.delivered == max(sim.chosen), seed
        learner_removed += sim.learners[0] not in sim.ghost_history.latest().learner_names
        # An acceptor no bootstrap membership knows lost its file and voted again by the end (a
        # run converges only once every wiped acceptor of the membership in force has rebuilt).
        members = sim.ghost_history.latest().acceptor_names
        rebuilt += any(sim.actors[a].wiped and a in members and a not in sim.initial_acceptors
                       for a in sim.acceptors)
    assert not failed, failed
    # Most runs get that far in their three seconds of faults; many also see the leader remove
    # itself and come back (the whole plan).
    assert replaced >= 60 and full >= 15, (replaced, full)
    assert rebuilt >= 5, rebuilt
    assert learner_added >= 100 and learner_removed >= 60, (learner_added, learner_removed)


@pytest.mark.parametrize("bug,seeds", [("membership_before_alpha", range(0, 20)),
                                       ("learner_membership_before_alpha", range(0, 60))])
def test_using_a_membership_before_its_alpha_window_is_caught(bug: str, seeds: range) -> None:
    caught = next((seed for seed in seeds if not run(seed, bug)[1].ok), None)  # the first is enough
    assert caught is not None, f"{bug} survived {len(seeds)} seeds"
