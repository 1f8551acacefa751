"""Testing the tests (Paxos Made Live, section 6.3): every planted bug of runtime/harness/bugs.py is
caught by at least one tier, and this table says which. The checks themselves live with their
tier: test_simulation.py (simulation), test_model_check.py (model checking),
tests/integration/test_nemesis.py (real processes); the scenario tier is checked here (its clean
runs, against their golden transcripts, in test_scenario_scripts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.harness import bugs as planted
from runtime.harness.bugs import BUGS
from runtime.harness.sim.scenario import run_file

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.scn"))

# bug -> tiers that catch it (each entry is asserted by a test in that tier's file).
MATRIX: dict[str, set[str]] = {
    "reply_before_fsync": {"simulation", "real processes"},
    "accept_below_promise": {"simulation", "scenarios", "model checking"},
    "promise_in_memory": {"simulation", "model checking"},
    "ignore_promised_values": {"simulation", "scenarios"},
    "count_duplicate_accepted": {"simulation", "scenarios", "model checking"},
    "reuse_ballot_after_restart": {"simulation", "scenarios"},
    "ack_before_chosen": {"simulation", "scenarios", "model checking"},
    "truncate_on_corruption": {"scenarios"},
    "compact_past_snapshot": {"simulation", "scenarios", "model checking"},
    "trim_before_snapshot_durable": {"simulation"},
    "membership_before_alpha": {"simulation", "scenarios"},  # tests/test_membership_sim.py
    "learner_membership_before_alpha": {"simulation", "scenarios"},  # tests/test_membership_sim.py
    "fast_quorum_too_small": {"simulation", "model checking"},  # fast mode: tests/test_fast_sim.py
    "lease_ignores_drift": {"simulation"},
    "acceptor_ignores_grant": {"simulation"},
    "mget_checks_one_key": {"simulation"},  # the linearizability check of every key an mget read
}


def test_every_planted_bug_is_caught_by_some_tier() -> None:
    assert set(MATRIX) == set(BUGS)
    assert all(MATRIX.values())
    tiers = set().union(*MATRIX.values())
    assert tiers == {"simulation", "scenarios", "model checking", "real processes"}


@pytest.mark.parametrize("bug", [b for b, tiers in MATRIX.items() if "scenarios" in tiers])
def test_scenarios_catch(bug: str) -> None:
    failed = []
    for path in SCENARIOS:
        try:
            if run_file(path, planted.kinds(bug)) != path.with_suffix(".golden").read_text():
                failed.append(f"{path.stem} (transcript)")
        except Exception as exc:  # an invariant stop counts too
            failed.append(f"{path.stem}: {type(exc).__name__}")
    # An expectation or an invariant must fail, not merely the wording of a transcript.
    assert any("(transcript)" not in f for f in failed), f"{bug}: {failed}"
