"""Step mode on real processes (issue 14): a put driven from the first Prepare to its chosen value
by delivering held messages by id, the CLI's answers to ids that are gone, leaving step mode; and
one of the design brief's scenarios run by `paxos scenario` on real processes and the chart it
draws of the run (every message it dropped a lost arrow), with a script whose stated outcome does
not hold exiting non-zero."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from runtime import step, stepview
from runtime.harness.local import LocalCluster


def held(c: LocalCluster) -> list[dict[str, Any]]:
    """Every held message, each with its sender as `from`, read from the actors' step indexes."""
    idx = stepview.indexes(c.config, stepview.running_actors(c.config))
    return [{**e, "from": name} for name, index in idx.items() for e in index.get("held", [])]


def status_of(c: LocalCluster, name: str) -> dict[str, str]:
    index = step.read_index(c.config.run_dir, name)
    return index.get("status", {}) if index else {}


def wait_held(c: LocalCluster, what: str, want: set[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Until (type, from, to) of each of `want` is held; the entries that match."""
    def ready() -> list[dict[str, Any]]:
        got = [e for e in held(c) if (e["type"], e["from"], e["to"]) in want]
        return got if {(e["type"], e["from"], e["to"]) for e in got} >= want else []
    found: list[dict[str, Any]] = c.wait_for(what, ready, timeout_s=10)
    return found


def deliver(c: LocalCluster, ids: list[str]) -> None:
    done, missing = stepview.act(c.config, "deliver", ids, stepview.running_actors(c.config))
    assert sorted(done) == sorted(ids) and missing == []


def test_step_mode_drives_a_put_from_the_first_prepare_to_a_chosen_value(cluster: LocalCluster) -> None:
    c = cluster
    up = c.paxos("up", "--step", "--detach", "--wait-s", "30")
    c._remember_pids()
    assert up.returncode == 0, up.stderr
    assert "step mode" in up.stdout
    listed = json.loads(c.paxos("step", "--json", check=True).stdout)
    assert listed == {"ticks": "paused", "links": []}  # timers paused: nobody campaigns by itself
    c.paxos("step", "campaign", "p1", check=True)
    prepares = wait_held(c, "p1's Prepares", {("prepare", "p1", a) for a in ("a1", "a2", "a3")})
    by_dest = {e["to"]: e["id"] for e in prepares}
    # Phase 1 with a1 and a2 only, by id, through the CLI; a3's Prepare stays held.
    c.paxos("step", "deliver", by_dest["a1"], by_dest["a2"], check=True)
    promises = wait_held(c, "two Promises", {("promise", "a1", "p1"), ("promise", "a2", "p1")})
    assert not any(e["type"] == "promise" and e["from"] == "a3" for e in held(c))
    assert status_of(c, "p1")["state"] == "candidate"
    deliver(c, [e["id"] for e in promises])
    c.wait_for("p1 leads", lambda: status_of(c, "p1").get("state") == "leader")
    # Its StartWorking goes to a1 and a2 (a3's copy dropped by id); their votes to p1 and the learners.
    starts = wait_held(c, "StartWorking", {("accept", "p1", d) for d in ("a1", "a2", "a3", "l1", "l2")})
    to_a3 = [e["id"] for e in starts if e["to"] == "a3" and "slots=1..1" in e["label"]]
    assert c.paxos("step", "drop", *to_a3).returncode == 0
    deliver(c, [e["id"] for e in starts if e["to"] != "a3" and "slots=1..1" in e["label"]])
    votes = wait_held(c, "votes for slot 1", {("accepted", a, d) for a in ("a1", "a2") for d in ("p1", "l1", "l2")})
    deliver(c, [e["id"] for e in votes if "slots=1..1" in e["label"]])
    c.wait_for("p1 serving", lambda: status_of(c, "p1").get("serving") == "True")
    c.wait_for("l1 delivered slot 1", lambda: status_of(c, "l1").get("delivered") == "1")
    # A client's put: its Submit is not held (only actor-to-actor frames are).
    put = subprocess.Popen([sys.executable, "-m", "runtime.cli", "put", "k", "stepped", "--timeout-s", "60",
                            "--config", str(c.config_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=c.root)
    try:
        accepts = wait_held(c, "the put's Accept", {("accept", "p1", d) for d in ("a1", "a2", "l1", "l2")})
        slot2 = [e for e in accepts if "slots=2..2" in e["label"]]
        assert {e["to"] for e in slot2} == {"a1", "a2", "l1", "l2"}
        assert put.poll() is None  # nothing chosen yet: the put waits
        deliver(c, [e["id"] for e in slot2])
        votes = wait_held(c, "votes for slot 2", {("accepted", a, lr) for a in ("a1", "a2") for lr in ("l1", "l2")})
        deliver(c, [e["id"] for e in votes if "slots=2..2" in e["label"] and e["to"] in ("l1", "l2")])
        out, err = put.communicate(timeout=30)
    finally:
        if put.poll() is None:
            put.kill()
            put.wait()
    assert (put.returncode, out.strip()) == (0, "ok"), err
    assert c.paxos("get", "k", "--stale").stdout.strip() == "stepped"  # straight to a learner: not held
    # An id that is gone, one that never was, a name that is not an actor.
    gone = c.paxos("step", "deliver", by_dest["a1"])
    assert gone.returncode == 5 and f"no held message {by_dest['a1']}" in gone.stderr
    assert c.paxos("step", "drop", "zz.1").returncode == 5
    assert c.paxos("step", "tick", "nobody").returncode == 64
    assert c.paxos("step", "campaign", "a1").returncode == 1
    table = c.paxos("step", check=True).stdout
    assert by_dest["a3"] in table and "p1 -> a3" in table  # still held: a3 never heard of ballot 1.1
    # Leaving step mode sends everything held; timers run again and the cluster serves.
    left = c.paxos("step", "release", check=True)
    assert "step mode off" in left.stdout
    assert c.paxos("step").returncode == 7
    assert c.paxos("put", "after", "release", "--timeout-s", "20").returncode == 0
    c.wait_for("a3 caught up with ballot 1.1", lambda: c.actor("a3")["info"].get("promised") == "1.1")


def test_a_seed_scenario_runs_on_real_processes_draws_its_drops_and_a_wrong_outcome_exits_1(tmp_path: Path) -> None:
    svg = tmp_path / "seed002.svg"
    ok = subprocess.run([sys.executable, "-m", "runtime.cli", "scenario", "seed002_lost_messages", "--data-dir",
                         str(tmp_path / "run"), "--svg", str(svg)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr + ok.stdout[-3000:]
    lines = ok.stdout.splitlines()
    assert "> expect-chosen 2 3.1 cmd@2.1[c/1 put x V1]" in lines
    assert lines[lines.index("> expect-chosen 2 3.1 cmd@2.1[c/1 put x V1]") + 1] == "  ok"
    assert "  drop p1 -> a2: prepare ballot=1.1 from_slot=1" in lines
    assert lines[-1].startswith("scenario seed002_lost_messages: ok on real processes")  # under the chart
    assert (tmp_path / "run" / "cluster1" / "data" / "logs" / "p1.jsonl").exists()  # for `paxos trace`
    # The chart, drawn from the run's trace files: a column per actor and the script's client.
    title = next(i for i, line in enumerate(lines) if line.startswith("chart of cluster1 (line 3: cluster"))
    chart = lines[title + 1:lines.index(f"wrote {svg}: the chart of cluster1 (line 3: cluster proposers=1 "
                                        f"acceptors=5 learners=1), {lines[title].split(': ')[2].split()[0]} rows")]
    assert chart[0].split() == ["ms", "c", "reads", "p1", "a1", "a2", "a3", "a4", "a5", "l1"]
    text = "\n".join(chart)
    assert "\x1b[" not in text  # stdout is a pipe: plain text
    def arrows(label: str, head: str) -> list[str]:
        return [line for line in chart if label in line and head in line]
    assert arrows("Prepare b=1.1", "▶") and arrows("Promise b=3.1", "◀") and arrows("Accept b=3.1 s=", "▶")
    # Every drop of the script is a lost arrow: round 1's three Prepares (a2's was swallowed by
    # the restarted p1's Prepare that reused its Lamport clock), round 2's to a1, the Accepts.
    assert text.count("Prepare b=1.1 (dropped)") == 3
    assert text.count("Prepare b=2.1 (dropped)") == 1
    assert arrows("Accept b=2.1 s=", "(dropped)") and arrows("Accept b=3.1 s=", "(dropped)")
    assert sum("✗" in line for line in chart) == text.count("(dropped)") + text.count("(lost)")
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert sum(1 for t in root.iter("{http://www.w3.org/2000/svg}text") if (t.text or "").endswith("(dropped)")) \
        == text.count("(dropped)")
    wrong = tmp_path / "wrong.scn"
    wrong.write_text("cluster proposers=1 acceptors=3 learners=1\ntimeout p1\ndeliver\nexpect p1 state=follower\n")
    failed = subprocess.run([sys.executable, "-m", "runtime.cli", "scenario", "--file", str(wrong),
                             "--expect-s", "1"],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert "expected p1.state=follower, got leader" in failed.stderr
    assert "chart of cluster1 (line 1: cluster" in failed.stdout and "Promise b=1.1" in failed.stdout  # failed: drawn
    stray = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert stray.stdout.strip() == ""  # every process of both runs is gone


def test_a_scenario_interrupted_while_its_cluster_starts_leaves_no_process(tmp_path: Path) -> None:
    """The page's stop (or Ctrl-C) is SIGINT: arriving while the script's `paxos up` is still
    starting the cluster, the detached supervisor used to be left running with its actors (8
    processes); the run now finds it by its pid file, stops it, and exits 130."""
    import os
    import signal
    import time

    root = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "scenario", "seed000_ballot_numbers",
                             "--data-dir", str(root), "--no-chart"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 30
        while not list(root.glob("*/data/run/supervisor.json")) and time.monotonic() < deadline:
            time.sleep(0.02)  # the supervisor is up, its actors starting: `paxos up` still waits
        assert list(root.glob("*/data/run/supervisor.json")), "the scenario's cluster never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    mine = str(root).encode()
    left = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, mine)]
    for pid in left:  # stopped by the test whatever the outcome
        os.kill(int(pid), signal.SIGKILL)
    assert not left, f"processes of the interrupted scenario left: {left}"
    assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err)


def _cmdline_has(proc: Path, needle: bytes) -> bool:
    try:
        return needle in (proc / "cmdline").read_bytes()
    except OSError:
        return False
