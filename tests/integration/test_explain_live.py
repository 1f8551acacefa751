"""`paxos explain` on a real cluster's files: while it runs (its actors appending, holding their
locks) and after `paxos down`, the same answer, exit 0, and the cluster undisturbed."""

from __future__ import annotations

import json
from typing import Any

from runtime.harness.local import LocalCluster


def stable(out: dict[str, Any]) -> dict[str, Any]:
    """What must not change between a running cluster and a stopped one for a delivered slot (the
    watermarks, promises and highest slots move on with heartbeats and elections)."""
    return {"verdict": out["verdict"], "summary": out["summary"], "chosen": out["chosen"],
            "votes": {a["name"]: a["votes"] for a in out["acceptors"]},
            "learners": {lv["name"]: (lv["delivered"], lv["value"], lv["outcome"]) for lv in out["learners"]}}


def test_explain_while_up_and_after_down_gives_the_same_answer(running: LocalCluster) -> None:
    c = running
    for i in range(5):
        assert c.paxos("put", f"k{i}", f"v{i}").returncode == 0

    def explained() -> dict[str, Any] | None:
        proc = c.paxos("explain", "3", "--json")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        out = json.loads(proc.stdout)
        # Both learners delivered it (the one that did not answer the client may lag a moment).
        return out if all(lv["delivered"] == "yes" for lv in out["learners"]) else None

    up = c.wait_for("both learners delivered slot 3", explained, timeout_s=15)
    assert up["verdict"] == "chosen" and len(up["chosen"]) == 1
    assert len(up["chosen"][0]["voters"]) >= 2
    assert all(f["status"] in ("ok", "torn") for f in up["files"]), up["files"]
    text = c.paxos("explain", "3")
    assert text.returncode == 0 and "slot 3 chose" in text.stdout
    assert c.paxos("put", "after", "explain").returncode == 0  # the cluster still serves
    assert c.paxos("down").returncode == 0
    proc = c.paxos("explain", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    down = json.loads(proc.stdout)
    assert stable(down) == stable(up)
    assert all(f["status"] == "ok" for f in down["files"]), down["files"]
