"""`--replay` on real processes: a short schedule (a kill, a pause, an isolated acceptor) runs on
a fresh cluster; the replay's own schedule (its log of the faults it applied) holds the same
faults at the same offsets, the supervisor saw the same signals, and the history stays
linearizable. About 10 s."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from runtime.harness import nemesis
from runtime.harness import schedule as sched
from runtime.harness.schedule import Fault, Schedule

NAMES = ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
ISOLATE_A3 = {"a3": {"*": {"cut": True}}, **{n: {"a3": {"cut": True}} for n in NAMES if n != "a3"}}
SCHEDULE = Schedule(11, {"duration_s": 3.5, "faults": ["kill", "pause", "partition"], "workers": 4,
                         "mode": "classic", "fast_recovery": "coordinated", "acceptors": 0,
                         "whole_cluster_share": 0.3, "clock_beyond": 0.0, "bugs": "", "disk_owner": ""}, [
    Fault(0.5, "kill", 0.4, ["a2"], {"signal": "KILL"}),
    Fault(1.4, "pause", 0.5, ["a1"], {"signal": "STOP"}),
    Fault(2.4, "partition", 0.5, ["a3"], {"shape": "isolate_acceptor", "rules": ISOLATE_A3}),
])


def test_a_replay_applies_the_same_faults_at_the_same_offsets(tmp_path: Path) -> None:
    original = tmp_path / "original.schedule.json"
    SCHEDULE.save(original)
    summary = nemesis.replay_run(sched.load(original, nemesis.FAULTS), tmp_path / "replay.jsonl", keep=True)
    data = Path(summary["data"])
    try:
        assert summary["violations"] == 0, summary["problems"]
        assert summary["ok"] >= 50, summary
        assert summary["fault_kinds"] == {"kill": 1, "pause": 1, "partition": 1}, summary
        replayed = sched.load(Path(summary["schedule"]), nemesis.FAULTS)
        assert Path(summary["schedule"]) == tmp_path / "replay.replay.schedule.json"
        assert replayed.seed == SCHEDULE.seed and replayed.options == SCHEDULE.options
        assert len(replayed.faults) == len(SCHEDULE.faults)
        for want, got in zip(SCHEDULE.faults, replayed.faults, strict=True):
            assert got.same_as(want) and not got.error, (want, got)
            assert want.at_s <= got.at_s < want.at_s + 0.5, (want, got)
        # What the supervisor did, by its own log: the kill and the pause (and the CONT that healed it).
        signals = [(e["child"], e["signal"]) for e in map(json.loads, (data / "data" / "logs" / "supervisor.jsonl")
                                                           .read_text().splitlines())
                   if e.get("event") == "child_signalled"]
        assert signals == [("a2", "SIGKILL"), ("a1", "SIGSTOP"), ("a1", "SIGCONT")], signals
    finally:
        shutil.rmtree(data, ignore_errors=True)
