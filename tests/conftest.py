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
