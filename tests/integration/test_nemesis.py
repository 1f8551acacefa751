"""Tier 4: Jepsen-style runs on real processes. A short mix of every fault must show real
activity and no violation; a planted bug (replies before fsync) must be caught by power loss;
membership changes through the real CLI, alone and alongside every other fault, keep the
history linearizable."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from runtime.harness import schedule as sched
from runtime.harness.nemesis import FAULTS, run


def test_a_short_mix_of_every_fault_keeps_the_history_linearizable(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    proc = subprocess.run([sys.executable, "-m", "runtime.harness.nemesis", "--duration", "40", "--seed", "7",
                           "--faults", "kill,pause,partition,chaos,power,wipe,membership,clock,crash", "--history",
                           str(history)],
                          capture_output=True, text=True, timeout=300)
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"ops=(\d+) ok=(\d+) info=(\d+) fail=(\d+) faults=(\d+) violations=(\d+)", last)
    assert m, proc.stdout + proc.stderr
    ops, ok, _info, _fail, faults, violations = map(int, m.groups())
    assert violations == 0, proc.stdout
    assert proc.returncode == 0
    assert ok >= 3000, "a pass must mean something: thousands of acknowledged operations"
    assert faults >= 8
    share = float(re.search(r"faults active (\d+)%", proc.stdout).group(1)) / 100
    assert share >= 0.4
    events = [json.loads(line) for line in history.read_text().splitlines()]
    assert {e["type"] for e in events} >= {"invoke", "ok"}
    assert {e["f"] for e in events} == {"get", "put", "cas", "append"}
    # Membership changes ran alongside the other faults (the final check covered their learners).
    applied = re.search(r"# membership changes \{'applied': (\d+)", proc.stdout)
    assert applied and int(applied.group(1)) >= 1, proc.stdout
    # Its gets were reads without a log write, under leases, and no two leases overlapped.
    leases = re.search(r"(\d+) lease read batches, (\d+) lease overlaps", proc.stdout)
    assert leases and int(leases.group(1)) >= 100 and int(leases.group(2)) == 0, proc.stdout
    invokes = sum(1 for e in events if e["type"] == "invoke")
    assert ops <= invokes <= ops + 200  # the workload's operations, then one final read per key
    # Its schedule, beside the history, holds every fault of the fault loop (for --replay).
    kinds = ast.literal_eval(re.search(r"fault kinds (\{.*?\})", proc.stdout).group(1))
    schedule = sched.load(tmp_path / "history.schedule.json", FAULTS)
    assert schedule.seed == 7
    assert dict(Counter(f.kind for f in schedule.faults if f.loop == "faults")) == \
        {k: n for k, n in kinds.items() if k != "membership"}, (kinds, schedule.faults)


def test_replies_before_fsync_lose_acknowledged_writes_under_power_loss(tmp_path: Path) -> None:
    # A power loss catches the bug only if it strikes between a reply and its fsync; the planted
    # bug syncs every half second, so each power loss of the whole cluster does (seeds 3-6 all had
    # 74-111 violations in 12 s). A second seed is there only for bad luck.
    for seed in (3, 4):
        summary = run(10, ["power"], tmp_path / f"history{seed}.jsonl", seed=seed, bugs="reply_before_fsync",
                      whole_cluster_share=1.0)
        if summary["violations"]:
            break
    assert summary["violations"] > 0, "the planted bug went unnoticed"
    assert any("missing from the final value" in p or "linearizab" in p for p in summary["problems"])


def _membership_run(tmp_path: Path, faults: list[str], duration_s: float, seed: int) -> dict:
    summary = run(duration_s, faults, tmp_path / "history.jsonl", seed=seed)
    assert summary["violations"] == 0, summary["problems"]
    assert summary["fault_kinds"].get("membership", 0) >= 1, summary
    assert summary["membership"]["applied"] >= 1, summary["membership"]
    assert summary["ok"] >= 500, summary
    return summary


def test_membership_changes_alone_keep_the_history_linearizable(tmp_path: Path) -> None:
    # 18 s: each change is a `paxos members` process, 3-4 s apart on a loaded 2-core machine,
    # and the learner is the third change (12 s fitted only two there).
    summary = _membership_run(tmp_path, ["membership"], 18, seed=11)
    # With no other fault, every change is taken (asked again while another is inside its window).
    assert summary["membership"]["unknown"] == 0, summary["membership"]
    # The learner it added (they alternate: an acceptor first, then a learner) is checked too.
    assert len(summary["learners_checked"]) >= 3, summary["learners_checked"]





def test_fast_mode_with_coordinated_recovery_keeps_the_history_linearizable(tmp_path: Path) -> None:
    # Issue 12: Fast Paxos on 4 acceptors (fast quorum 3), every worker a client of its own on
    # few keys, one acceptor (or the leader) down at a time; membership is refused in fast mode.
    # (The uncoordinated recovery's run is in the slow tier: tests/test_nemesis.py.)
    summary = run(15, ["kill", "pause", "partition", "chaos", "power", "wipe", "membership"],
                  tmp_path / "history.jsonl", seed=FAST_SEED, mode="fast", fast_recovery="coordinated")
    assert summary["violations"] == 0, summary["problems"]
    assert summary["skipped"] == ["membership"] and summary["acceptors"] == 4, summary
    assert summary["fast"]["fast_rounds"] >= 1, summary["fast"]
    assert summary["fast"]["recovered_uncoordinated"] == summary["fast"]["acceptor_recoveries"] == 0, summary["fast"]
    assert summary["faults"] >= 2 and summary["ok"] >= 1000, summary


FAST_SEED = 12
