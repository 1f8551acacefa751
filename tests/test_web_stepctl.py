"""The page's scenario runner and step mode by click (runtime/web/stepctl.py) without a cluster:
the step panel's listing and its deliver/drop/dup/tick/campaign requests on a crafted step state
(a real runtime/step.py Stepper for p1, in a thread, holding Prepares it parked), a step id that is
gone (404, `paxos step`'s reason) and every malformed request refused with its reason in the log
and nothing asked of the actors; the scenario runner's one-at-a-time rule, its bounded output
buffer, verdicts, charts, timeout and stop, with a stand-in program for `paxos scenario`.

The server runs as tests/test_web.py runs it (aiohttp's TestServer, its fixtures); the
supervisor's status comes from a stand-in for runtime/control.py's request."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.ballot import Ballot
from actors.messages import Prepare
from runtime import codec, step, stepview
from runtime.web import stepctl
from tests.test_web import Call, bearer, config, run_server, sent, status  # noqa: F401  (config, sent: fixtures)

LISTING = """\
  acceptor_rebuild                         simulator only (wipe): An acceptor loses its file after it voted
* seed000_ballot_numbers                   real processes and simulator: DESIGN scenario 6 (seed 000): with n
  late_learner                             real processes and simulator: A learner joins late (it was down
* the design brief's scenarios (seeds 000-002)
"""

# A stand-in for `paxos scenario NAME --svg FILE ...`: prints LINES lines, writes the chart, waits
# (bounded) for a `go` file in its directory when asked to, then says its verdict and exits.
FAKE = r"""
import os, sys, time
name, run_dir, lines, code, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
for i in range(lines):
    print(f"line {i} " + "x" * (600 if i == 7 else 3))
with open(os.path.join(run_dir, "chart.svg"), "w") as f:
    f.write('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><title>chart</title></svg>')
deadline = time.monotonic() + 20
while wait == "wait" and not os.path.exists(os.path.join(run_dir, "go")) and time.monotonic() < deadline:
    time.sleep(0.01)
if wait == "hang":
    time.sleep(60)
print(f"scenario {name}: ok on real processes (0.1s)" if code == 0 else f"scenario {name}: FAILED: line 3: no")
sys.exit(code)
"""


def until(what: str, cond: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"not {what} within {timeout_s:g}s")


async def until_async(what: str, cond: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = await cond()
        if got:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"not {what} within {timeout_s:g}s")


# --- step mode --------------------------------------------------------------------------------


class Actor:
    """p1 as its shell runs step mode: a real Stepper polled in a thread; what it releases is sent."""

    def __init__(self, run_dir: Path) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.ticks: list[int] = []
        self.stepper = step.Stepper(run_dir, "p1", lambda dest, frame: self.sent.append((dest, frame)),
                                    lambda: {"state": "candidate", "ballot": Ballot(1, 1), "serving": False})
        self.stepper.on_tick = self.ticks.append
        self.stepper.on_campaign = lambda: ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.stepper.poll()
            self.stepper.flush()
            time.sleep(0.005)


@pytest.fixture
def p1(config: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Actor]:  # noqa: F811
    """The cluster in step mode with p1 (this process) holding its Prepares to a1 and a2; the
    supervisor's status says p1 runs with this process's pid, a3 is restarting."""
    step.set_mode(config.run_dir, step.TICKS_PAUSED)
    s = status(down="a3")
    for a in s["actors"]:
        if a["name"] == "p1":
            a["pid"] = os.getpid()
    asked: list[dict[str, Any]] = []

    def fake(cfg: Any, message: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        asked.append(message)
        return s

    monkeypatch.setattr(stepview, "request", fake)
    monkeypatch.setattr("runtime.web.server.request_control", fake)
    actor = Actor(config.run_dir)
    for dest in ("a1", "a2"):
        actor.stepper.send_peer(dest, codec.encode_frame("p1", [Prepare(Ballot(1, 1), 1)]))
    actor.stepper.flush()
    actor.thread.start()
    try:
        yield actor
    finally:
        actor.stop.set()
        actor.thread.join(timeout=5)


def test_the_step_panel_lists_what_is_held_and_delivers_drops_and_dups_it(config: Any, p1: Actor) -> None:  # noqa: F811
    async def test(base: str, token: str, call: Call) -> None:
        code, listing = await call("GET", "/api/step", headers=bearer(token))
        assert code == 200 and listing["active"] and listing["ticks"] == "paused" and listing["held"] == 2
        assert [(ln["from"], ln["to"], [(e["id"], e["label"]) for e in ln["held"]]) for ln in listing["links"]] == [
            ("p1", "a1", [("p1.1", "prepare ballot=1.1 from_slot=1")]),
            ("p1", "a2", [("p1.2", "prepare ballot=1.1 from_slot=1")])]
        assert listing["actors"]["p1"] == {"role": "proposer", "running": True, "holding": True,
                                           "state": "candidate", "ballot": "1.1", "serving": "False"}
        assert listing["actors"]["a3"]["running"] is False  # restarting: no pid
        code, reply = await call("POST", "/api/step/deliver", headers=bearer(token), json={"ids": ["p1.1"]})
        assert (code, reply) == (200, {"ok": True, "done": ["p1.1"], "said": "step deliver: p1.1"})
        assert [d for d, _ in p1.sent] == ["a1"]
        # Gone now: 404 with `paxos step`'s reason; a number never given out is the same.
        for gone in ("p1.1", "p1.99"):
            code, reply = await call("POST", "/api/step/deliver", headers=bearer(token), json={"ids": [gone]})
            assert code == 404 and reply["error"].startswith(f"no held message {gone}: it was delivered or dropped")
        code, reply = await call("POST", "/api/step/dup", headers=bearer(token), json={"link": "p1:a2"})
        assert (code, reply["done"]) == (200, ["p1.2"]) and [d for d, _ in p1.sent] == ["a1", "a2", "a2"]
        code, reply = await call("POST", "/api/step/drop", headers=bearer(token), json={"link": "p1:a2"})
        assert (code, reply["said"]) == (200, "step drop: nothing held on p1 -> a2")  # as the CLI: exit 0
        code, listing = await call("GET", "/api/step", headers=bearer(token))
        assert listing["links"] == [] and listing["held"] == 0
        code, reply = await call("POST", "/api/step/tick", headers=bearer(token), json={"actors": ["p1"], "n": 7})
        assert (code, reply["said"]) == (200, "step tick: 7 ticks on p1") and p1.ticks == [7]
        code, reply = await call("POST", "/api/step/campaign", headers=bearer(token), json={"actor": "p1"})
        assert (code, reply["said"]) == (200, "step campaign: campaign started on p1")
        code, reply = await call("POST", "/api/step/tick", headers=bearer(token), json={"actors": ["a3"]})
        assert (code, reply["error"]) == (409, "not running: a3")

    lines = run_server(config, test)
    steps = [(ln["op"], ln["ok"]) for ln in lines if ln["event"] == "web_step"]
    assert steps == [("deliver", True), ("deliver", False), ("deliver", False), ("dup", True), ("drop", True),
                     ("tick", True), ("campaign", True), ("tick", False)]


def test_a_dropped_message_is_not_sent(config: Any, p1: Actor) -> None:  # noqa: F811
    async def test(base: str, token: str, call: Call) -> None:
        code, reply = await call("POST", "/api/step/drop", headers=bearer(token), json={"ids": ["p1.2", "p1.1"]})
        assert (code, sorted(reply["done"])) == (200, ["p1.1", "p1.2"])

    run_server(config, test)
    assert p1.sent == []


def test_malformed_step_requests_are_refused_and_nothing_is_asked(config: Any, p1: Actor) -> None:  # noqa: F811
    requests = step.requests_path(config.run_dir, "p1")
    bad: list[tuple[str, Any, int, str]] = [
        ("deliver", {}, 400, 'expected {"ids"'),
        ("deliver", {"ids": ["p1.1"], "link": "p1:a1"}, 400, 'expected {"ids"'),
        ("deliver", {"ids": []}, 400, "a list of 1..500"),
        ("deliver", {"ids": "p1.1"}, 400, "a list of 1..500"),
        ("deliver", {"ids": [f"p1.{i}" for i in range(501)]}, 400, "a list of 1..500"),
        ("deliver", {"ids": ["p1"]}, 400, "is not a step id"),
        ("deliver", {"ids": [7]}, 400, "is not a step id"),
        ("deliver", {"ids": ["p1.1; rm -rf /"]}, 400, "is not a step id"),
        ("drop", {"ids": ["zz.1"]}, 404, "no actor named 'zz'"),
        ("dup", {"link": "p1:zz"}, 404, "link is FROM:TO"),
        ("dup", {"link": "p1a1"}, 404, "link is FROM:TO"),
        ("dup", {"link": 5}, 404, "link is FROM:TO"),
        ("tick", {"actors": ["p1"], "n": 0}, 400, "n must be a whole number 1..10000"),
        ("tick", {"actors": ["p1"], "n": 10_001}, 400, "n must be"),
        ("tick", {"actors": ["p1"], "n": "3"}, 400, "n must be"),
        ("tick", {"actors": ["p1"], "n": True}, 400, "n must be"),
        ("tick", {"actors": []}, 400, 'expected {"actors"'),
        ("tick", {"actors": ["nobody"]}, 404, "no actor named 'nobody'"),
        ("campaign", {}, 400, 'expected {"actor"'),
        ("campaign", {"actor": "p9"}, 404, "no actor named 'p9'"),
        ("campaign", [1], 400, "expected a JSON object"),
        ("wipe", {}, 404, "no step operation 'wipe'"),
    ]

    async def test(base: str, token: str, call: Call) -> None:
        before = requests.stat().st_size if requests.exists() else 0
        for op, body, want, why in bad:
            code, reply = await call("POST", f"/api/step/{op}", headers=bearer(token), json=body)
            assert code == want and why in reply["error"], (op, body, code, reply)
        code, reply = await call("POST", "/api/step/deliver", headers=bearer(token), data=b'{"ids": [')
        assert code == 400 and "malformed JSON" in reply["error"]
        assert (await call("POST", "/api/step/deliver", json={"ids": ["p1.1"]}))[0] == 401  # no token
        assert (requests.stat().st_size if requests.exists() else 0) == before  # nothing asked of p1
        code, listing = await call("GET", "/api/step", headers=bearer(token))
        assert listing["held"] == 2

    lines = run_server(config, test)
    refused = [ln for ln in lines if ln["event"] == "web_request_refused"]
    assert len(refused) == 10  # the refusal log's lines per window (runtime/web/auth.py): the rest counted
    assert all(ln["reason"] for ln in refused) and p1.sent == []


def test_not_in_step_mode_the_panel_says_so_and_nothing_is_done(config: Any, sent: Any) -> None:  # noqa: F811
    async def test(base: str, token: str, call: Call) -> None:
        code, listing = await call("GET", "/api/step", headers=bearer(token))
        assert code == 200 and listing == {"active": False, "why": "the cluster is not in step mode "
                                           "(`paxos up --step`, or `paxos step hold`)"}
        for op, body in (("deliver", {"ids": ["p1.1"]}), ("release", {}), ("campaign", {"actor": "p1"})):
            code, reply = await call("POST", f"/api/step/{op}", headers=bearer(token), json=body)
            assert code == 409 and "not in step mode" in reply["error"]

    run_server(config, test)
    assert not step.step_dir(config.run_dir).exists()


def test_a_cluster_in_step_mode_that_is_not_running_hides_the_panel(config: Any,  # noqa: F811
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.control import NotRunning

    step.set_mode(config.run_dir, step.TICKS_PAUSED)  # left on by an `up --step` that is down now

    def down(cfg: Any, message: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        raise NotRunning(f"the cluster of {cfg.path} is not running")

    monkeypatch.setattr(stepview, "request", down)
    monkeypatch.setattr("runtime.web.server.request_control", down)

    async def test(base: str, token: str, call: Call) -> None:
        code, listing = await call("GET", "/api/step", headers=bearer(token))
        assert code == 200 and listing["active"] is False and "is not running" in listing["why"]
        code, reply = await call("POST", "/api/step/deliver", headers=bearer(token), json={"ids": ["p1.1"]})
        assert code == 409 and "is not running" in reply["error"]

    run_server(config, test)


def test_release_leaves_step_mode(config: Any, p1: Actor, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    # Only p1 runs (release waits for every running actor to say it left step mode).
    alone = status()
    alone["actors"] = [{**a, "pid": os.getpid()} for a in alone["actors"] if a["name"] == "p1"]
    monkeypatch.setattr(stepview, "request", lambda cfg, message, timeout_s=10.0: alone)

    async def test(base: str, token: str, call: Call) -> None:
        code, reply = await call("POST", "/api/step/release", headers=bearer(token))
        assert (code, reply) == (200, {"ok": True, "said": "step mode off: 2 held messages sent; timers run"})
        assert (await call("GET", "/api/step", headers=bearer(token)))[1]["active"] is False

    run_server(config, test)
    assert sorted(d for d, _ in p1.sent) == ["a1", "a2"]  # everything held went


# --- the scenario runner ----------------------------------------------------------------------


def test_the_listing_and_the_verdicts_are_read_as_paxos_scenario_says_them() -> None:
    assert stepctl.parse_listing(LISTING) == [
        {"name": "acceptor_rebuild", "seed": False, "real": False, "needs": "wipe",
         "about": "An acceptor loses its file after it voted"},
        {"name": "seed000_ballot_numbers", "seed": True, "real": True, "needs": "",
         "about": "DESIGN scenario 6 (seed 000): with n"},
        {"name": "late_learner", "seed": False, "real": True, "needs": "",
         "about": "A learner joins late (it was down"}]
    lines = ["> expect p1 state=leader", "  ok", "scenario x: FAILED: x.scn:4: expect ...: found follower"]
    assert stepctl.verdict_of(1, lines, "x") == ("failed", lines[-1])
    assert stepctl.verdict_of(0, ["scenario x: ok on real processes (3.1s)"], "x")[0] == "passed"
    assert stepctl.verdict_of(8, ["paxos scenario: x: not supported on real processes: line 3: wipe"], "x") == (
        "not supported on real processes", "paxos scenario: x: not supported on real processes: line 3: wipe")
    assert stepctl.verdict_of(66, [], "x") == ("no trace files to draw from",
                                               "paxos scenario exited 66: no trace files to draw from")
    assert stepctl.verdict_of(-9, [], "x")[0] == "exit -9"


@pytest.fixture
def fake_scenario(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """`paxos scenario --list` answers LISTING; a run is FAKE, told by `how[name]` (lines, exit
    code, wait/hang/go) what to do."""
    script = tmp_path / "fake_scenario.py"
    script.write_text(FAKE)
    listing = tmp_path / "listing.txt"
    listing.write_text(LISTING)
    how: dict[str, tuple[int, int, str]] = {}
    monkeypatch.setattr(stepctl, "listing_argv", lambda: ["cat", str(listing)])
    monkeypatch.setattr(stepctl, "scenario_argv", lambda name, run_dir: [
        sys.executable, str(script), name, str(run_dir), *map(str, how.get(name, (3, 0, "go")))])
    return how


def test_one_scenario_at_a_time_its_output_bounded_then_its_verdict_and_chart(
        config: Any, sent: Any, fake_scenario: dict[str, Any]) -> None:  # noqa: F811
    fake_scenario["seed000_ballot_numbers"] = (5000, 0, "wait")
    fake_scenario["late_learner"] = (4, 1, "go")
    root = config.data_dir / stepctl.RUNS_DIR

    async def test(base: str, token: str, call: Call) -> None:
        code, listed = await call("GET", "/api/scenarios", headers=bearer(token))
        assert code == 200 and [s["name"] for s in listed["scenarios"] if s["real"]] == [
            "seed000_ballot_numbers", "late_learner"] and listed["run"] is None
        assert (await call("POST", "/api/scenarios/no_such/run", headers=bearer(token)))[0] == 404
        assert (await call("POST", "/api/scenarios/..%2Fetc/run", headers=bearer(token)))[0] == 404
        code, reply = await call("POST", "/api/scenarios/acceptor_rebuild/run", headers=bearer(token))
        assert code == 409 and "simulator only" in reply["error"] and "(wipe)" in reply["error"]
        code, started = await call("POST", "/api/scenarios/seed000_ballot_numbers/run", headers=bearer(token))
        assert code == 202 and started["run"]["state"] == "running"
        run_id = started["run"]["id"]
        code, reply = await call("POST", "/api/scenarios/late_learner/run", headers=bearer(token))
        assert code == 409 and "seed000_ballot_numbers runs already" in reply["error"]  # one at a time

        async def printed_all() -> Any:
            run = (await call("GET", "/api/scenario-run?since=0", headers=bearer(token)))[1]["run"]
            return run if run["next"] == 5000 else None

        run = await until_async("the 5000 lines printed", printed_all)
        # Only the newest OUTPUT_LINES_MAX are kept: asked from 0, the first 3000 are said left out.
        assert (run["first"], run["dropped"], len(run["lines"])) == (3000, 3000, stepctl.OUTPUT_LINES_MAX)
        assert run["lines"][0] == "line 3000 xxx" and run["state"] == "running"
        newer = (await call("GET", "/api/scenario-run?since=4998", headers=bearer(token)))[1]["run"]
        assert newer["lines"] == ["line 4998 xxx", "line 4999 xxx"] and newer["dropped"] == 0
        assert (await call("GET", "/api/scenario-run?since=-1", headers=bearer(token)))[0] == 400
        assert (await call("GET", "/api/scenario-run?since=x", headers=bearer(token)))[0] == 400
        (root / str(run_id) / "go").write_text("")

        async def done() -> Any:
            run = (await call("GET", "/api/scenario-run?since=5000", headers=bearer(token)))[1]["run"]
            return run if run["state"] == "done" else None

        run = await until_async("the run done", done)
        assert (run["exit"], run["outcome"]) == (0, "passed")
        assert run["verdict"] == "scenario seed000_ballot_numbers: ok on real processes (0.1s)"
        assert run["charts"] == [f"/api/scenario-run/{run_id}/chart/1"]
        code, svg = await call("GET", f"{run['charts'][0]}?token={token}")
        assert code == 200 and svg.startswith(b"<svg")
        assert (await call("GET", run["charts"][0]))[0] == 401  # the chart needs the token too
        assert (await call("GET", f"/api/scenario-run/{run_id}/chart/2", headers=bearer(token)))[0] == 404
        assert (await call("GET", f"/api/scenario-run/{run_id}/chart/0", headers=bearer(token)))[0] == 404
        assert (await call("GET", "/api/scenario-run/1/chart/1", headers=bearer(token)))[0] == 404
        assert (await call("POST", "/api/scenario-run/stop", headers=bearer(token)))[0] == 409  # none runs
        # The next run may start, and the older run's directory goes.
        code, second = await call("POST", "/api/scenarios/late_learner/run", headers=bearer(token))
        assert code == 202
        run = await until_async("the second run done", done)
        assert (run["exit"], run["outcome"]) == (1, "failed") and "FAILED: line 3: no" in run["verdict"]
        assert not (root / str(run_id)).exists() and (root / str(second["run"]["id"]) / "chart.svg").exists()

    lines = run_server(config, test)
    done_lines = [(ln["name"], ln["outcome"]) for ln in lines if ln["event"] == "web_scenario_done"]
    assert done_lines == [("seed000_ballot_numbers", "passed"), ("late_learner", "failed")]


def test_the_chart_is_served_as_an_image_that_can_run_nothing(config: Any, sent: Any,  # noqa: F811
                                                              fake_scenario: dict[str, Any]) -> None:
    fake_scenario["late_learner"] = (10, 0, "go")

    async def test(base: str, token: str, call: Call) -> None:
        from aiohttp import ClientSession

        await call("POST", "/api/scenarios/late_learner/run", headers=bearer(token))
        run = await until_async("the run done", lambda: _state(call, token, "done"))
        async with ClientSession() as session, session.get(f"{base}{run['charts'][0]}?token={token}") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/svg+xml"
            assert r.headers["Content-Security-Policy"] == stepctl.CHART_CSP
            assert "script" not in stepctl.CHART_CSP and "default-src 'none'" in stepctl.CHART_CSP
        lines = (await call("GET", "/api/scenario-run?since=0", headers=bearer(token)))[1]["run"]["lines"]
        assert lines[:3] == ["line 0 xxx", "line 1 xxx", "line 2 xxx"]
        assert len(lines[7]) == stepctl.OUTPUT_LINE_CHARS_MAX + len(" [...]") and lines[7].endswith(" [...]")

    run_server(config, test)


async def _state(call: Call, token: str, state: str) -> Any:
    run = (await call("GET", "/api/scenario-run?since=0", headers=bearer(token)))[1]["run"]
    return run if run and run["state"] == state else None


def test_a_run_is_stopped_on_request_on_its_timeout_and_with_the_server(
        config: Any, sent: Any, fake_scenario: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fake_scenario["late_learner"] = (8, 0, "hang")
    fake_scenario["seed000_ballot_numbers"] = (8, 0, "hang")
    monkeypatch.setattr(stepctl, "SCENARIO_STOP_GRACE_S", 1.0)
    pids: list[int] = []

    async def test(base: str, token: str, call: Call) -> None:
        await call("POST", "/api/scenarios/late_learner/run", headers=bearer(token))
        await until_async("its output", lambda: _lines(call, token, 8))
        code, reply = await call("POST", "/api/scenario-run/stop", headers=bearer(token))
        assert code == 200 and (reply["run"]["outcome"], reply["run"]["verdict"]) == ("stopped",
                                                                                      "stopped from the page")
        said = (await call("GET", "/api/scenario-run?since=0", headers=bearer(token)))[1]["run"]["lines"]
        assert said[-1] == "KeyboardInterrupt"  # what it printed as it stopped (SIGINT) is kept too
        monkeypatch.setattr(stepctl, "SCENARIO_TIMEOUT_S", 0.5)
        await call("POST", "/api/scenarios/late_learner/run", headers=bearer(token))
        run = await until_async("the timeout", lambda: _state(call, token, "done"))
        assert (run["outcome"], run["verdict"]) == ("timed out", "timed out after 0.5s")
        monkeypatch.setattr(stepctl, "SCENARIO_TIMEOUT_S", 60.0)
        assert (await call("POST", "/api/scenarios/seed000_ballot_numbers/run", headers=bearer(token)))[0] == 202
        await until_async("its output", lambda: _lines(call, token, 8))
        pids.extend(_fake_pids(config.data_dir))
        assert pids  # the server stops now, with the run under way

    t0 = time.monotonic()
    lines = run_server(config, test)
    assert time.monotonic() - t0 < 15
    assert [p for p in pids if Path(f"/proc/{p}").exists() and b"fake_scenario" in _cmdline(p)] == []
    assert [ln["outcome"] for ln in lines if ln["event"] == "web_scenario_done"] == ["stopped", "timed out", "stopped"]


async def _lines(call: Call, token: str, n: int) -> bool:
    run = (await call("GET", "/api/scenario-run?since=0", headers=bearer(token)))[1]["run"]
    return bool(run) and run["next"] >= n


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _fake_pids(data_dir: Path) -> list[int]:
    mine = str(data_dir / stepctl.RUNS_DIR).encode()
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and mine in _cmdline(int(p.name))]


def test_leftover_supervisors_are_found_by_their_state_file_and_command_line(tmp_path: Path) -> None:
    run = tmp_path / "data"
    (run / "cluster1" / "data" / "run").mkdir(parents=True)
    (run / "cluster1" / "data" / "run" / "supervisor.json").write_text(json.dumps({"pid": os.getpid()}))
    (run / "cluster2" / "data" / "run").mkdir(parents=True)
    (run / "cluster2" / "data" / "run" / "supervisor.json").write_text("{not json")
    # This process's command line does not name the run's directory: not one of its supervisors.
    assert stepctl.leftover_supervisors(run) == []
    assert stepctl.sweep(tmp_path / "absent") == []
