"""The page's fault controls without a cluster (issue 15, runtime/web/faultctl.py): a crash point
by click sends `paxos kill NAME --at POINT`'s control request, and an unknown point or one the
role lacks is a 400 with the reason (nothing sent); a link's delay and drop rate are written
both ways through `paxos faults`, merged with the other links' rules, and a bad number is a 400
with nothing written; the view's fields come from crafted status dicts (crash armed / fired and
restarted, member badge, snapshot and compaction point, delayed links with their labels, a new
member's card); an actor's status says the slot of its last wal compaction.

The server runs on 127.0.0.1 (aiohttp's TestServer) with tests/test_web.py's helpers; the
supervisor's answers come from a stand-in for runtime/control.py's request."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runtime import crashpoints
from runtime.actor import ActorShell
from runtime.config import load, render
from runtime.web import auth, faultctl, server, view
from tests.test_web import PORTS, Call, bearer, config, run_server, sent, status

__all__ = ["config", "sent"]  # fixtures, used by name


@pytest.fixture
def test_mode(tmp_path: Path) -> Any:
    path = tmp_path / "test-mode.toml"
    path.write_text(render(PORTS, data_dir="data", extra="[testing]\nenabled = true"))
    return load(path)


def refusals(lines: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(ln["status"], ln["reason"]) for ln in lines if ln["event"] == "web_request_refused"]


# --- crash points -------------------------------------------------------------------------------


def test_a_crash_point_by_click_sends_the_request_of_kill_at(config: Any, sent: list[dict[str, Any]]) -> None:
    async def test(base: str, token: str, call: Call) -> None:
        code, reply = await call("POST", "/api/actors/a1/crash", headers=bearer(token),
                                 json={"point": crashpoints.AFTER_FSYNC})
        assert (code, reply) == (200, {"ok": True, "pid": 4242, "armed": crashpoints.AFTER_FSYNC})
        code, _ = await call("POST", "/api/actors/l1/crash", headers=bearer(token),
                             json={"point": crashpoints.TORN_WRITE})
        assert code == 200

    lines = run_server(config, test)
    assert [m for m in sent if m["cmd"] != "status"] == [
        {"cmd": "kill", "name": "a1", "at": crashpoints.AFTER_FSYNC, "restart": True},
        {"cmd": "kill", "name": "l1", "at": crashpoints.TORN_WRITE, "restart": True}]
    assert [(ln["actor"], ln["point"], ln["ok"]) for ln in lines if ln["event"] == "web_crash_point"] == [
        ("a1", crashpoints.AFTER_FSYNC, True), ("l1", crashpoints.TORN_WRITE, True)]


def test_a_crash_point_that_does_not_exist_or_apply_is_400(config: Any, sent: list[dict[str, Any]]) -> None:
    async def test(base: str, token: str, call: Call) -> None:
        for path, body, want in (
                ("/api/actors/l1/crash", {"point": crashpoints.AFTER_FSYNC}, 400),  # a learner has none
                ("/api/actors/a1/crash", {"point": "after-lunch"}, 400),
                ("/api/actors/a1/crash", {"point": 3}, 400),
                ("/api/actors/a1/crash", {}, 400),
                ("/api/actors/a1/crash", [crashpoints.AFTER_REPLY], 400),
                ("/api/actors/zz/crash", {"point": crashpoints.AFTER_REPLY}, 404)):
            code, reply = await call("POST", path, headers=bearer(token), json=body)
            assert code == want, (path, body)
            assert reply["error"], (path, body)
        code, reply = await call("POST", "/api/actors/a1/crash", headers=bearer(token), data=b'{"point": ')
        assert code == 400 and "malformed JSON" in reply["error"]
        # The guard comes first: no token, no crash.
        assert (await call("POST", "/api/actors/a1/crash", json={"point": crashpoints.AFTER_REPLY}))[0] == 401

    lines = run_server(config, test)
    assert not [m for m in sent if m["cmd"] != "status"]  # nothing reached the supervisor
    reasons = refusals(lines)
    assert reasons[0][0] == 400 and "does not apply to a learner" in reasons[0][1] and "fsync" in reasons[0][1]
    assert "unknown crash point 'after-lunch'" in reasons[1][1]
    assert [s for s, _ in reasons] == [400, 400, 400, 400, 400, 404, 400, 401]


def test_a_crash_point_the_supervisor_refuses_says_why(config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "request_control", lambda c, m, t=10.0: status() if m["cmd"] == "status" else
                        {"ok": False, "error": "a1 is not running (restarting); it takes a crash point only while "
                                               "it runs"})

    async def test(base: str, token: str, call: Call) -> None:
        code, reply = await call("POST", "/api/actors/a1/crash", headers=bearer(token),
                                 json={"point": crashpoints.BEFORE_PERSIST})
        assert code == 409 and "not running" in reply["error"]

    run_server(config, test)


def test_the_modules_import_each_other_with_the_token(config: Any, sent: list[dict[str, Any]]) -> None:
    """An ES module's import cannot set a header: the URLs app.js and faultctl.js import each other
    by carry the token (written in by the server), and are the very URL index.html loads app.js by
    (another URL would be a second instance of the module)."""
    async def test(base: str, token: str, call: Call) -> None:
        page = (await call("GET", f"/?token={token}"))[1]
        app = (await call("GET", f"/static/app.js?token={token}"))[1]
        mine = (await call("GET", f"/static/faultctl.js?token={token}"))[1]
        assert f'from "./faultctl.js?token={token}"'.encode() in app and b"__TOKEN__" not in app
        assert f'from "./app.js?token={token}"'.encode() in mine and b"__TOKEN__" not in mine
        assert f'src="/static/app.js?token={token}"'.encode() in page
        assert (await call("GET", "/static/faultctl.js"))[0] == 401

    run_server(config, test)


# --- link delay and drop ------------------------------------------------------------------------


def test_a_links_delay_and_drop_are_merged_both_ways(test_mode: Any, sent: list[dict[str, Any]]) -> None:
    rules = test_mode.run_dir / "faults.json"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(json.dumps({"l1": {"a2": {"cut": True}}, "a2": {"l1": {"cut": True}},
                                 "p2": {"*": {"dup": 0.1}}}))

    async def test(base: str, token: str, call: Call) -> None:
        code, reply = await call("POST", "/api/links/p1/a1/set", headers=bearer(token),
                                 json={"delay_ms": 50, "drop": 0.2})
        assert (code, reply) == (200, {"ok": True, "label": "50 ms, 20% drop"})
        assert json.loads(rules.read_text()) == {
            "l1": {"a2": {"cut": True}}, "a2": {"l1": {"cut": True}}, "p2": {"*": {"dup": 0.1}},
            "p1": {"a1": {"delay_ms": 50, "drop": 0.2}}, "a1": {"p1": {"delay_ms": 50, "drop": 0.2}}}
        state = (await call("GET", "/api/state", headers=bearer(token)))[1]
        assert state["link_rules"] == [
            {"from": "a1", "to": "p1", "delay_ms": 50, "drop": 0.2, "label": "50 ms, 20% drop"},
            {"from": "p1", "to": "a1", "delay_ms": 50, "drop": 0.2, "label": "50 ms, 20% drop"}]
        assert state["faults"]["cut"] == [["a2", "l1"], ["l1", "a2"]]  # the cut links are still drawn cut
        # A new rule on the same link replaces its own; only a delay: no drop in the rule.
        assert (await call("POST", "/api/links/a1/p1/set", headers=bearer(token), json={"delay_ms": 12.5}))[0] == 200
        assert json.loads(rules.read_text())["p1"] == {"a1": {"delay_ms": 12.5}}
        # Heal (the existing button) clears it; so does zero and zero.
        assert (await call("POST", "/api/links/p1/a1/heal", headers=bearer(token)))[0] == 200
        assert "p1" not in json.loads(rules.read_text()) and "a1" not in json.loads(rules.read_text())
        assert (await call("POST", "/api/links/l1/p2/set", headers=bearer(token), json={"drop": 1}))[0] == 200
        assert (await call("POST", "/api/links/l1/p2/set", headers=bearer(token),
                           json={"delay_ms": 0, "drop": 0}))[0] == 200
        assert json.loads(rules.read_text()) == {"l1": {"a2": {"cut": True}}, "a2": {"l1": {"cut": True}},
                                                 "p2": {"*": {"dup": 0.1}}}

    lines = run_server(test_mode, test)
    assert [(ln["a"], ln["b"], ln["ok"]) for ln in lines if ln["event"] == "web_link_rule"] == [
        ("p1", "a1", True), ("a1", "p1", True), ("l1", "p2", True), ("l1", "p2", True)]


def test_bad_numbers_for_a_link_are_400_and_nothing_is_written(test_mode: Any, sent: list[dict[str, Any]],
                                                               config: Any) -> None:
    rules = test_mode.run_dir / "faults.json"
    rules.parent.mkdir(parents=True, exist_ok=True)
    before = json.dumps({"l1": {"a2": {"cut": True}}})
    rules.write_text(before)

    async def test(base: str, token: str, call: Call) -> None:
        for body in ({"delay_ms": 5001}, {"delay_ms": -1}, {"drop": 1.5}, {"drop": -0.1}, {"drop": "0.2"},
                     {"delay_ms": True}, {"delay_ms": None}, {"dup": 0.5}, [50, 0.2]):
            code, reply = await call("POST", "/api/links/p1/a1/set", headers=bearer(token), json=body)
            assert code == 400 and reply["error"], body
        code, reply = await call("POST", "/api/links/p1/a1/set", headers=bearer(token), data=b"{1e999")
        assert code == 400
        code, _ = await call("POST", "/api/links/p1/a1/set", headers=bearer(token), data=b'{"drop": NaN}')
        assert code == 400
        assert (await call("POST", "/api/links/p1/p1/set", headers=bearer(token), json={"drop": 0.1}))[0] == 400
        assert (await call("POST", "/api/links/p1/zz/set", headers=bearer(token), json={"drop": 0.1}))[0] == 404

    lines = run_server(test_mode, test)
    assert rules.read_text() == before  # nothing written
    assert not [ln for ln in lines if ln["event"] == "web_link_rule"]
    reasons = [r for _, r in refusals(lines)]
    assert "delay_ms must be from 0 to 5000, not 5001" in reasons[0]
    assert "drop must be from 0 to 1, not 1.5" in reasons[2]
    assert "unknown field 'dup'" in reasons[7]
    assert len(reasons) == auth.RefusalLog(None).lines_max  # 13 refused: the log keeps to its few lines

    async def off(base: str, token: str, call: Call) -> None:  # outside test mode: 409, nothing written
        code, reply = await call("POST", "/api/links/p1/a1/set", headers=bearer(token), json={"drop": 0.1})
        assert code == 409 and "[testing] enabled = true" in reply["error"]

    run_server(config, off)
    assert rules.read_text() == before  # (the two configs share a data dir)


def test_rule_labels_and_the_links_drawn() -> None:
    assert faultctl.rule_label({"delay_ms": 50, "drop": 0.2}) == "50 ms, 20% drop"
    assert faultctl.rule_label({"delay_ms": 12.5}) == "12.5 ms"
    assert faultctl.rule_label({"drop": 0.055}) == "5.5% drop"
    assert faultctl.rule_label({"cut": True}) == "" and faultctl.rule_label({"drop": True}) == ""
    drawn = faultctl.slow_links({"a1": {"p1": {"drop": 0.5}, "*": {"delay_ms": 9}, "p2": {"cut": True},
                                        "l1": {"dup": 0.3}}})
    assert drawn == [{"from": "a1", "to": "p1", "delay_ms": 0, "drop": 0.5, "label": "50% drop"}]
    merged = faultctl.link_rules({"a1": {"p1": {"cut": True}}}, "a2", "l1", 5000.0, 1.0)
    assert merged == {"a1": {"p1": {"cut": True}}, "a2": {"l1": {"delay_ms": 5000, "drop": 1.0}},
                      "l1": {"a2": {"delay_ms": 5000, "drop": 1.0}}}


# --- the cards ----------------------------------------------------------------------------------


def cards_of(v: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for role in view.ROWS for c in v["rows"][role]}


def test_cards_show_a_crash_point_armed_then_fired_and_restarted(config: Any) -> None:
    s = status()
    a1, a2, l1 = (next(a for a in s["actors"] if a["name"] == n) for n in ("a1", "a2", "l1"))
    a1["crash_armed"] = crashpoints.AFTER_FSYNC
    a2 |= {"crash_point": crashpoints.AFTER_FSYNC, "last_exit": "exit code 72 (ended itself at the crash point)",
           "restarts": 1}
    l1 |= {"state": "restarting", "pid": None, "crash_point": crashpoints.TORN_WRITE, "crash_armed": "torn-write",
           "last_exit": "exit code 72"}
    cards = cards_of(faultctl.extend_view(view.build(config, s), s, None))
    assert cards["a1"]["crash_armed"] == crashpoints.AFTER_FSYNC and cards["a1"]["crash_point"] is None
    assert cards["a1"]["crash_label"] == f"armed: ends itself at {crashpoints.AFTER_FSYNC}"
    assert cards["a2"]["crash_armed"] is None and cards["a2"]["crash_point"] == crashpoints.AFTER_FSYNC
    assert cards["a2"]["crash_label"] == f"ended itself at {crashpoints.AFTER_FSYNC} (exit 72); restarted (1 restarts)"
    # Down, waiting for its restart: what it armed is spent, where it died is said.
    assert cards["l1"]["crash_armed"] is None and cards["l1"]["crash_label"].endswith("restarting, not back yet")
    assert cards["p1"]["crash_label"] == "" and cards["p1"]["crash_points"] == list(crashpoints.POINTS)
    assert crashpoints.AFTER_FSYNC not in cards["l2"]["crash_points"]
    assert cards["l2"]["crash_points"] == list(crashpoints.ROLES_POINTS["learner"])


def test_cards_show_members_snapshots_and_compaction(config: Any) -> None:
    s = status()
    by = {a["name"]: a for a in s["actors"]}
    by["a1"]["info"] |= {"snapshot_slot": 40, "compacted_through": 40, "wal_compacted_slot": 0}
    by["l1"]["info"] |= {"snapshot_slot": 40, "wal_compacted_slot": 40}
    by["l2"]["info"] |= {"snapshot_slot": 0}
    by["p1"]["info"] |= {"wal_compacted_slot": 7}
    by["a3"]["member"] = "leaving"
    # A member just added (`paxos members add`): the supervisor's status has it, so it has a card.
    s["actors"].append({"name": "a4", "role": "acceptor", "pid": 2000, "state": "running", "restarts": 0,
                        "reason": "", "member": "joining", "info": {"uptime_s": 0.4, "state": "rebuilding"}})
    v = faultctl.extend_view(view.build(config, s), s, {})
    cards = cards_of(v)
    assert (cards["a1"]["snapshot_slot"], cards["a1"]["compacted_slot"]) == (40, 40)  # an acceptor's: its core's
    assert (cards["l1"]["snapshot_slot"], cards["l1"]["compacted_slot"]) == (40, 40)  # a learner's: its shell's
    assert (cards["l2"]["snapshot_slot"], cards["l2"]["compacted_slot"]) == (None, None)  # none yet
    assert (cards["p1"]["snapshot_slot"], cards["p1"]["compacted_slot"]) == (None, None)  # a proposer keeps none
    assert cards["a3"]["member_badge"] == "leaving" and cards["a1"]["member_badge"] == ""
    assert [c["name"] for c in v["rows"]["acceptor"]] == ["a1", "a2", "a3", "a4"]
    assert cards["a4"]["member_badge"] == "joining" and cards["a4"]["crash_points"] == list(crashpoints.POINTS)
    assert v["link_rules"] == []
    # Not running: every card still has the fields (the page draws them empty).
    down = cards_of(faultctl.extend_view(view.build(config, None), None, None))
    assert down["l1"]["crash_points"] == list(crashpoints.ROLES_POINTS["learner"]) and not down["l1"]["crash_label"]


def test_an_actors_status_says_its_last_compaction_slot() -> None:
    """runtime/actor.py's status carries `wal_compacted_slot` (0 until it compacts); the shell's
    status on a stand-in for the actor (no wal, transport or snapshots yet)."""
    shell = SimpleNamespace(wal=None, transport=None, snapshots=None, name="l1", started=0.0, tracer=None,
                            wal_compacted_slot=0, _metrics_status=dict)
    assert ActorShell.status(shell)["wal_compacted_slot"] == 0  # type: ignore[arg-type]
    shell.wal_compacted_slot = 120
    assert ActorShell.status(shell)["wal_compacted_slot"] == 120  # type: ignore[arg-type]
