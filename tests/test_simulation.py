"""Tier 1: the deterministic simulator. Same seed, same run; a thousand seeds of faults pass;
planted bugs fail; a failure prints the command that reproduces it."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from runtime.harness.sim.__main__ import run_one
from runtime.harness.sim.sim import SimConfig, Simulation

# Seeds that failed along the way, kept as regressions:
# - 0-29: a simulated client that kept rotating away from the leader it had just been sent to
#   (a bug of the simulator's own client; the simulator now runs the real client's core);
# - 1150-10138: an acceptor restarted after a crash between write and fsync replayed records
#   that were only in the page cache and answered on their strength (fixed: recovery fsyncs);
# - 3052, 4510, 8015: a chosen slot whose acceptors had moved to different ballots could not be
#   learned any more (fixed: learners ask the leader to re-confirm it; reconfirmation.scn);
# - 19956: that re-confirmation, in its first form, took a delayed Phase-1 Promise of the same
#   ballot for an answer; such a Promise leaves out slots below the watermark, so the leader
#   re-proposed an old value over a chosen one (fixed: its own reply type with a nonce).
# The draws of a seed changed when the simulator moved onto the shared turn driver and client
# core, so these numbers no longer replay those exact runs; they stay as extra seeds.
REGRESSION_SEEDS = [0, 3, 4, 6, 8, 10, 14, 16, 17, 19, 20, 22, 28, 29,
                    1150, 1611, 2778, 2962, 8531, 8542, 9600, 10138, 3052, 4510, 8015, 19956]


def run_seeds(seeds: range | list[int], bugs: frozenset[str] = frozenset(), lin: bool = True) -> list:
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(run_one, [(s, bugs, True, lin) for s in seeds], chunksize=8))


def first_caught(seeds: range, bugs: frozenset[str], chunk: int = 32, linearizability: bool = False) -> list:
    """The failing results of the first chunk of seeds that has any (a planted bug needs one
    failing seed; the rest of the range is not run)."""
    with ProcessPoolExecutor(2) as pool:
        for start in range(0, len(seeds), chunk):
            part = seeds[start:start + chunk]
            failed = [r for r in pool.map(run_one, [(s, bugs, True, linearizability) for s in part], chunksize=4)
                      if not r.ok]
            if failed:
                return failed
    return []


def test_the_same_seed_gives_the_same_run_bit_for_bit() -> None:
    for seed in range(20):
        a = Simulation(seed).run()
        b = Simulation(seed).run()
        assert (a.trace_hash, a.events, a.acked) == (b.trace_hash, b.events, b.acked), seed
    assert len({Simulation(s).run().trace_hash for s in range(5)}) == 5  # and seeds differ


def test_a_thousand_seeds_of_faults_keep_every_invariant() -> None:
    results = run_seeds(range(1000))
    failures = [f"{r.rule}: {r.detail[:200]} ({r.repro()})" for r in results if not r.ok]
    assert not failures, failures
    events = sum(r.events for r in results)
    crashes = sum(r.crashes for r in results)
    assert events > 3_000_000 and crashes > 2_000  # real activity, not an idle cluster
    assert sum(r.acked for r in results) > 40_000
    # Reads without a log write ran too, under leases and confirmed by rounds (actors/lease.py).
    assert sum(r.reads_acked for r in results) > 10_000 and sum(r.lease_reads for r in results) > 2_000


@pytest.mark.parametrize("seed", REGRESSION_SEEDS)
def test_regression_seeds(seed: int) -> None:
    result = Simulation(seed).run()
    assert result.ok, f"{result.rule}: {result.detail} ({result.repro()})"


def test_a_run_without_faults_answers_every_client_command() -> None:
    result = Simulation(1, SimConfig(faults=False)).run()
    assert result.ok and result.acked + result.reads_acked == 3 * 40 and result.crashes == 0


def test_lease_reads_stay_linearizable_with_every_clock_at_the_edge_of_the_drift_bound() -> None:
    """The drawn clock rates sit within the configured drift bound, a third of them at its edges;
    seeds with the widest bound (25%) and leases on, at least one pair of clocks 40% apart, must
    keep every invariant: linearizability of the lease reads, no lease read after a higher
    ballot's election, and a majority still refusing other proposers whenever one is served."""
    picked = []
    for seed in range(2000):
        d = Simulation(seed).drawn
        rates = list(d.clock_rate.values())
        if d.reads.lease and d.reads.clock_drift_max == 0.25 and max(rates) - min(rates) > 0.4:
            picked.append(seed)
        if len(picked) == 40:
            break
    results = run_seeds(picked)
    assert not [r for r in results if not r.ok], [(r.seed, r.rule, r.detail[:200]) for r in results if not r.ok]
    assert sum(r.lease_reads for r in results) > 100


@pytest.mark.parametrize("bug,seeds", [
    ("reply_before_fsync", range(0, 20)),
    ("promise_in_memory", range(0, 20)),
    ("count_duplicate_accepted", range(0, 50)),
    ("ack_before_chosen", range(0, 20)),
    ("accept_below_promise", range(0, 200)),
    ("reuse_ballot_after_restart", range(0, 400)),
    ("ignore_promised_values", range(0, 1000)),
    ("compact_past_snapshot", range(0, 40)),
    ("trim_before_snapshot_durable", range(0, 40)),
    # Reads (actors/lease.py): caught by the lease checks (lease_grants, lease_overlap).
    ("lease_ignores_drift", range(0, 400)),
    ("acceptor_ignores_grant", range(0, 400)),
    # A stale value of an mget's later key: only the history check sees it.
    ("mget_checks_one_key", range(0, 300)),
])
def test_planted_bugs_are_caught(bug: str, seeds: range) -> None:
    caught = first_caught(seeds, frozenset([bug]), linearizability=bug == "mget_checks_one_key")
    assert caught, f"{bug} survived {len(seeds)} seeds"
    assert caught[0].repro(frozenset([bug])) == f"python -m runtime.harness.sim --seed {caught[0].seed} --bugs {bug}"


def test_the_command_line_prints_a_summary_and_a_reproduction_line() -> None:
    ok = subprocess.run([sys.executable, "-m", "runtime.harness.sim", "--seeds", "0:4"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1].startswith("seeds=4 failures=0 events=")
    bad = subprocess.run([sys.executable, "-m", "runtime.harness.sim", "--seeds", "0:3", "--bugs", "promise_in_memory"],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "reproduce: python -m runtime.harness.sim --seed 0 --bugs promise_in_memory" in bad.stdout
    assert bad.stdout.strip().splitlines()[-1].startswith("seeds=3 failures=3 ")
