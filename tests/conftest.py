"""Test tiers, by where a test lives (pytest -m fast|slow|integration; plain `pytest` runs all):

- fast: the cores' rules, scenario scripts, codec, wal, config, supervision, checkers, layering;
  seconds in all, for the edit-test loop;
- slow: the deterministic simulator's thousand seeds and planted-bug sweeps, and exhaustive model
  checking; minutes (also any test marked `@pytest.mark.slow` by hand in another file);
- integration: real processes on loopback (tests/integration/), the Jepsen-style runs among them.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SLOW = {"test_simulation.py", "test_model_check.py", "test_membership_sim.py", "test_fast_sim.py"}


# The longest tests, started first: with two workers (`pytest -n 2`) a two-minute test given out
# last leaves the other worker idle for its length at the end of the run.
LONGEST_FIRST = ("test_model_check.py::test_every_reachable_state_of_the_base_bound",
                 "test_simulation.py::test_a_thousand_seeds", "integration/test_nemesis.py::")
TIER_ORDER = {"slow": 0, "integration": 1, "fast": 2}  # then the slow tier, real processes, the fast tier


def _run_order(item: pytest.Item) -> tuple[int, int]:
    first = next((i for i, prefix in enumerate(LONGEST_FIRST) if prefix in item.nodeid), len(LONGEST_FIRST))
    tier = next((TIER_ORDER[m.name] for m in item.iter_markers() if m.name in TIER_ORDER), 2)
    return first, tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if "integration" in path.parts:
            item.add_marker(pytest.mark.integration)
        elif path.name in SLOW or item.get_closest_marker("slow") is not None:
            # A file of the fast tier may hold a slow test, marked so by hand.
            item.add_marker(pytest.mark.slow)
        else:
            item.add_marker(pytest.mark.fast)
    items.sort(key=_run_order)  # stable: within a group, files and tests keep their order
