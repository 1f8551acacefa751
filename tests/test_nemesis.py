"""The Jepsen-style harness's own parts that need no cluster: the fast-mode counts it reads from
the actors' logs and its options; and (slow tier) a short fast-mode run with uncoordinated
recovery on real processes (the coordinated one is in tests/integration/test_nemesis.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.harness import nemesis


def _log(path: Path, *events: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps({"ts": 1.0, "level": "info", **e}) + "\n")


def test_fast_counts_come_from_every_actors_log(tmp_path: Path) -> None:
    _log(tmp_path / "p1.jsonl",
         {"actor": "p1", "role": "proposer", "event": "fast_round_opened", "ballot": "1.1"},
         {"actor": "p1", "role": "proposer", "event": "collision_detected", "slot": 5, "recovery": "coordinated"},
         {"actor": "p1", "role": "proposer", "event": "collision_recovered", "slot": 5, "way": "coordinated"},
         {"actor": "p1", "role": "proposer", "event": "collision_detected", "slot": 9, "recovery": "new_ballot"},
         {"actor": "p1", "role": "proposer", "event": "classic_fallback", "ballot": "1.1"})
    _log(tmp_path / "p2.jsonl",
         {"actor": "p2", "role": "proposer", "event": "fast_round_opened", "ballot": "3.2"},
         {"actor": "p2", "role": "proposer", "event": "collision_recovered", "slot": 7, "way": "uncoordinated"})
    _log(tmp_path / "a1.jsonl",
         {"actor": "a1", "role": "acceptor", "event": "collision_recovered", "slot": 7, "way": "uncoordinated"})
    with open(tmp_path / "a2.jsonl", "w", encoding="utf-8") as f:  # a torn tail after a power loss
        f.write('{"ts": 1.0, "actor": "a2", "role": "acceptor", "event": "collision_recov')
    assert nemesis.fast_counts(tmp_path) == {
        "fast_rounds": 2, "collisions": 1, "stuck": 1, "recovered_coordinated": 1, "recovered_uncoordinated": 1,
        "acceptor_recoveries": 1, "fallbacks": 1}
    assert nemesis.fast_counts(tmp_path / "missing") == dict.fromkeys(nemesis.fast_counts(tmp_path), 0)


def test_fast_mode_needs_four_acceptors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        nemesis.main(["--mode", "fast", "--acceptors", "3"])
    assert "at least 4 acceptors" in capsys.readouterr().err


@pytest.mark.slow
def test_fast_mode_with_uncoordinated_recovery_keeps_the_history_linearizable(tmp_path: Path) -> None:
    """About 20 s on real processes: the acceptors recover collisions by themselves."""
    summary = nemesis.run(15, ["kill", "pause", "partition", "chaos", "power", "wipe"], tmp_path / "history.jsonl",
                          seed=FAST_SEED, mode="fast", fast_recovery="uncoordinated")
    assert summary["violations"] == 0, summary["problems"]
    assert summary["fast"]["fast_rounds"] >= 1, summary["fast"]
    assert summary["fast"]["recovered_coordinated"] == 0, summary["fast"]
    assert summary["faults"] >= 2 and summary["ok"] >= 1000, summary


FAST_SEED = 12
