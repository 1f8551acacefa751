"""Tier 1 in fast mode (issue 12): the simulator runs Fast Paxos (4 or 5 acceptors, clients'
first attempts straight to every acceptor) in both recoveries; its ghost counts a slot chosen
under a fast ballot (and, uncoordinated, its recovery round) only with a fast quorum of one
value. Collisions, both recoveries, the new-ballot recovery and the classic fallback happen."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pytest

from actors.fast import COORDINATED, UNCOORDINATED
from runtime.harness.sim.__main__ import main, run_one
from runtime.harness.sim.sim import SimConfig, Simulation

SEEDS = 64


def run(seeds: range, recovery: str, bugs: frozenset[str] = frozenset(), lin: bool = True) -> list:
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(run_one, [(s, bugs, True, lin, False, False, "fast", recovery) for s in seeds],
                             chunksize=4))


def test_the_same_fast_seed_gives_the_same_run_bit_for_bit() -> None:
    for recovery in (COORDINATED, UNCOORDINATED):
        for seed in range(3):
            config = SimConfig(mode="fast", fast_recovery=recovery)
            a, b = Simulation(seed, config).run(), Simulation(seed, config).run()
            assert (a.trace_hash, a.events, a.fast_events) == (b.trace_hash, b.events, b.fast_events)


@pytest.mark.parametrize("recovery", [COORDINATED, UNCOORDINATED])
def test_fast_seeds_keep_every_invariant_and_recover_every_way(recovery: str) -> None:
    results = run(range(SEEDS), recovery)
    failures = [f"{r.rule}: {r.detail[:200]} ({r.repro()})" for r in results if not r.ok]
    assert not failures, failures
    seeds_with: dict[str, int] = {}
    for r in results:
        for key in r.fast_events:
            seeds_with[key] = seeds_with.get(key, 0) + 1
    print(f"\nfast {recovery}: events in how many of {SEEDS} seeds: {dict(sorted(seeds_with.items()))}")
    assert seeds_with.get("fast_opened", 0) == SEEDS
    assert seeds_with.get(f"collision.{recovery}", 0) > SEEDS // 2
    assert seeds_with.get(f"recovered.{recovery}", 0) > SEEDS // 3  # the leader saw the slot chosen
    if recovery == UNCOORDINATED:
        assert seeds_with.get("recovered.uncoordinated@acceptor", 0) > SEEDS // 2  # acceptors voted alone
    assert seeds_with.get("collision.new_ballot", 0) > SEEDS // 5
    assert seeds_with.get("fallback", 0) > SEEDS // 3
    assert sum(r.acked for r in results) > 50 * SEEDS


def test_a_fast_quorum_one_too_small_is_caught_with_its_reproduction_line() -> None:
    bug = frozenset(["fast_quorum_too_small"])
    for recovery in (COORDINATED, UNCOORDINATED):
        caught = [r for r in run(range(8), recovery, bug, lin=False) if not r.ok]
        assert caught, f"fast_quorum_too_small survived 8 {recovery} seeds"
        assert caught[0].rule == "agreement", caught[0].detail
        assert caught[0].repro(bug) == (f"python -m runtime.harness.sim --seed {caught[0].seed} --bugs "
                                        f"fast_quorum_too_small --mode fast --fast-recovery {recovery}")
        # The line reproduces it.
        assert main(caught[0].repro(bug).split()[3:]) == 1
