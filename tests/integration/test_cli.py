"""The `paxos` command, as a person or another test would use it."""

from __future__ import annotations

import json
import time

from runtime.harness.local import LocalCluster


def test_client_commands_print_results_and_exit_by_outcome(running: LocalCluster) -> None:
    c = running
    ok = c.paxos("put", "k", "v")
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok")
    assert c.paxos("get", "k").stdout.strip() == "v"
    missing = c.paxos("get", "nope")
    assert (missing.returncode, missing.stdout, missing.stderr.strip()) == (4, "", "(not found)")
    swapped = c.paxos("cas", "k", "v", "w")
    assert (swapped.returncode, swapped.stdout.strip()) == (0, "true")
    refused = c.paxos("cas", "k", "v", "x")
    assert (refused.returncode, refused.stdout.strip()) == (1, "false")
    assert c.paxos("cas", "fresh", "-", "n", "--absent").returncode == 0
    assert c.paxos("append", "log", "a").stdout.strip() == "a"
    assert c.paxos("append", "log", "b").stdout.strip() == "ab"
    assert c.paxos("delete", "k").returncode == 0
    deleted = c.paxos("get", "k")
    assert (deleted.returncode, deleted.stdout) == (4, "")
    too_big = c.paxos("put", "k" * 2000, "v")
    assert too_big.returncode == 1 and "larger than" in too_big.stderr


def test_status_json_has_the_documented_shape(running: LocalCluster) -> None:
    status = running.status()
    assert status["leader"] in ("p1", "p2")
    assert [a["name"] for a in status["actors"]] == ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
    for a in status["actors"]:
        assert {"name", "role", "pid", "state", "restarts"} <= set(a)
        assert a["state"] == "running" and isinstance(a["pid"], int) and a["restarts"] == 0
    assert set(status["delivered"]) == {"l1", "l2"}
    table = running.paxos("status")
    assert table.returncode == 0 and "leader:" in table.stdout


def test_kill_without_restart_then_start_and_restart(running: LocalCluster) -> None:
    c = running
    assert c.paxos("kill", "l2", "--no-restart").returncode == 0
    c.wait_for("l2 stopped", lambda: c.actor("l2")["state"] == "stopped")
    assert c.paxos("put", "a", "1").returncode == 0  # one learner is enough to answer
    again = c.paxos("kill", "l2")
    assert again.returncode == 1 and "not running" in again.stderr
    assert c.paxos("start", "l2").returncode == 0
    c.wait_for("l2 caught up", lambda: (a := c.actor("l2"))["state"] == "running"
               and a["info"].get("delivered", 0) >= c.actor("l1")["info"]["delivered"])
    pid = c.actor("a3")["pid"]
    assert c.paxos("restart", "a3").returncode == 0
    c.wait_for("a3 restarted", lambda: (a := c.actor("a3"))["state"] == "running" and a["pid"] != pid)
    assert c.paxos("kill", "nobody").returncode == 64  # a usage error


def test_a_crash_loop_stops_with_a_clear_error(running: LocalCluster) -> None:
    c = running
    for _ in range(6):
        a = c.wait_for("a3 running", lambda: (a := c.actor("a3"))["state"] in ("running", "failed") and a)
        if a["state"] == "failed":
            break
        c.paxos("kill", "a3")
        c.wait_for("a3 exit noticed", lambda p=a["pid"]: c.actor("a3")["pid"] != p)
    a3 = c.wait_for("a3 failed", lambda: (a := c.actor("a3"))["state"] == "failed" and a)
    assert "restart budget exhausted" in a3["reason"]
    # kill -9 leaves no last words: the reason says so, not the supervisor's own start banner.
    assert a3["reason"].endswith("last stderr: (nothing)") and a3["restarts"] == 5
    assert c.paxos("put", "still", "fine").returncode == 0
    assert c.paxos("start", "a3").returncode == 0  # an operator can bring it back ...
    a3 = c.wait_for("a3 running again", lambda: (a := c.actor("a3"))["state"] == "running" and a)
    assert a3["restarts"] == 0 and a3["reason"] == ""  # ... with a fresh budget, and the count shows it


def test_children_start_in_dependency_order_and_stop_in_reverse(running: LocalCluster) -> None:
    c = running
    started = [e["child"] for e in c.log_events("supervisor") if e["event"] == "child_started"]
    assert started == ["a1", "a2", "a3", "l1", "l2", "p1", "p2"]  # acceptors, learners, proposers
    assert c.paxos("down").returncode == 0
    stopped = [e["child"] for e in c.log_events("supervisor") if e["event"] == "child_exited"]
    assert stopped == list(reversed(started))


def test_unknown_outcome_exits_2_and_a_stopped_cluster_exits_1(running: LocalCluster) -> None:
    c = running
    for a in ("a1", "a2", "a3"):
        assert c.paxos("kill", a, "--no-restart").returncode == 0
    unknown = c.paxos("put", "k", "v", "--timeout-s", "1.5")
    assert unknown.returncode == 2 and "outcome unknown" in unknown.stderr
    assert c.paxos("down").returncode == 0
    started = time.monotonic()
    down = c.paxos("put", "k", "v")  # no supervisor: said at once, not after the 10 s timeout
    assert down.returncode == 1 and "is not running: no supervisor" in down.stderr
    assert time.monotonic() - started < 8
    status = c.paxos("status", "--json")
    assert status.returncode == 3 and json.loads(status.stdout)["running"] is False


def test_logs_are_merged_in_time_order_and_filterable(running: LocalCluster) -> None:
    c = running
    c.paxos("put", "k", "v")
    lines = c.paxos("logs", "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert {e["actor"] for e in events} >= {"p1", "p2", "a1", "a2", "a3", "l1", "l2", "supervisor"}
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert any(e["event"] == "leader_elected" for e in events)
    only = [json.loads(line) for line in c.paxos("logs", "a1", "--json").stdout.splitlines()]
    assert only and {e["actor"] for e in only} == {"a1"}
    pretty = c.paxos("logs", "a1").stdout
    assert "recovered" in pretty and "a1" in pretty


def test_bad_arguments_and_config_errors(cluster: LocalCluster, tmp_path) -> None:
    c = cluster
    usage = c.paxos("kill")
    assert usage.returncode == 64 and "required" in usage.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(c.config_path.read_text().replace("[cluster]", "[cluster]\nfsinc = true"))
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "runtime.cli", "status", "--config", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "cluster.fsinc: unknown key" in proc.stderr
    assert c.up().returncode == 0
    twice = c.up()
    assert twice.returncode == 1 and "already running" in twice.stderr


def test_members_shows_the_membership_in_force(running: LocalCluster) -> None:
    c = running
    assert c.paxos("put", "k", "v").returncode == 0
    proc = c.paxos("members", "--json")
    assert proc.returncode == 0, proc.stderr
    view = json.loads(proc.stdout)
    assert view["slot"] == 0 and view["alpha"] >= 1  # the bootstrap membership: nothing changed it
    assert [a["name"] for a in view["acceptors"]] == ["a1", "a2", "a3"]
    assert view["acceptors"][0]["endpoint"] == f"tcp://127.0.0.1:{c.ports['a1']}"
    assert [(p["name"], p["id"]) for p in view["proposers"]] == [("p1", 1), ("p2", 2)]
    assert [lr["name"] for lr in view["learners"]] == ["l1", "l2"]
    assert "bootstrap membership" in c.paxos("members").stdout
