"""The live page's server without a cluster (issue 15): the token file (0600, kept, refused when
others may read it), every request's checks (no token or a wrong one 401, another origin 403,
a non-loopback Host 403, an oversized body 413, malformed JSON 400), the refusals' log kept to a
few lines, the buttons sending `paxos kill`'s and `paxos restart`'s control requests, the event
stream (aggregated, a closed tab harmless) and the view built from a supervisor's status.

The server runs on 127.0.0.1 on a free port (aiohttp's TestServer); the supervisor's answers
come from a stand-in for runtime/control.py's request."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout
from aiohttp.test_utils import TestServer

from runtime import logs
from runtime.config import ConfigError, load, render
from runtime.control import kill_message, restart_message
from runtime.web import auth, server, view

PORTS = {n: 7000 + i for i, n in enumerate(["p1", "p2", "a1", "a2", "a3", "l1", "l2"])}


def status(leader: str | None = "p1", paused: str = "", down: str = "") -> dict[str, Any]:
    """A supervisor's `status` answer for the default 2-3-2 cluster."""
    actors: list[dict[str, Any]] = []
    for i, name in enumerate(["p1", "p2", "a1", "a2", "a3", "l1", "l2"]):
        role = {"p": "proposer", "a": "acceptor", "l": "learner"}[name[0]]
        state = "paused" if name == paused else "restarting" if name == down else "running"
        info: dict[str, Any] = {}
        if state == "running":
            info = {"uptime_s": 12.5, "chosen_through": 40}
            if role == "proposer":
                info |= {"state": "leader" if name == leader else "follower", "ballot": "3.1" if name == leader
                         else "2.2", "serving": name == leader, "chosen_through": 40 if name == leader else 38}
            elif role == "acceptor":
                info |= {"state": "voting", "promised": "3.1"}
            else:
                info |= {"state": "learning", "delivered": 40 if name == "l1" else 35}
        actors.append({"name": name, "role": role, "pid": 1000 + i if state != "restarting" else None,
                       "state": state, "restarts": 1 if name == "a2" else 0, "reason": "", "info": info})
    return {"actors": actors, "leader": leader}


@pytest.fixture
def config(tmp_path: Path) -> Any:
    path = tmp_path / "cluster.toml"
    path.write_text(render(PORTS))
    return load(path)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The control requests the server sends; `status` answers with `status()`."""
    requests: list[dict[str, Any]] = []

    def fake(config: Any, message: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        requests.append(message)
        if message["cmd"] == "status":
            return status()
        return {"ok": True, "pid": 4242}

    monkeypatch.setattr(server, "request_control", fake)
    return requests


Call = Callable[..., Awaitable[tuple[int, Any]]]


def run_server(config: Any, test: Callable[[str, str, Call], Awaitable[None]]) -> list[dict[str, Any]]:
    """Serve the app on 127.0.0.1:<free port>, run `test(base_url, token, call)`, stop it; the
    web log's lines come back."""
    log_path = config.data_dir / "logs" / "web.jsonl"
    logger = logs.configure("web", "web", log_path, False)
    token = auth.load_or_create_token(config.data_dir)

    async def main() -> None:
        web_server = server.WebServer(config, token, logger)
        ts = TestServer(web_server.app(), host="127.0.0.1")
        await ts.start_server()
        poller = asyncio.create_task(web_server.poll())
        base = f"http://127.0.0.1:{ts.port}"
        try:
            async with ClientSession(timeout=ClientTimeout(total=10)) as session:
                async def call(method: str, path: str, **kw: Any) -> tuple[int, Any]:
                    async with session.request(method, base + path, **kw) as r:
                        body = await r.read()
                        try:
                            return r.status, json.loads(body)
                        except ValueError:
                            return r.status, body
                await test(base, token, call)
        finally:
            poller.cancel()
            await ts.close()

    asyncio.run(main())
    logs.flush()
    return [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the token file ---------------------------------------------------------------------------


def test_the_token_file_is_made_0600_and_kept(tmp_path: Path) -> None:
    token = auth.load_or_create_token(tmp_path)
    path = tmp_path / auth.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) == 64 and int(token, 16) >= 0
    assert auth.load_or_create_token(tmp_path) == token  # a bookmarked URL keeps working
    assert not [p for p in tmp_path.iterdir() if p.name != auth.TOKEN_FILE]  # no temporary file left


def test_a_token_file_others_may_read_is_refused(tmp_path: Path) -> None:
    auth.load_or_create_token(tmp_path)
    os.chmod(tmp_path / auth.TOKEN_FILE, 0o644)
    with pytest.raises(auth.TokenFileError, match="0644 lets other users read"):
        auth.load_or_create_token(tmp_path)
    (tmp_path / auth.TOKEN_FILE).write_text("not a token")
    os.chmod(tmp_path / auth.TOKEN_FILE, 0o600)
    with pytest.raises(auth.TokenFileError, match="not a web token"):
        auth.load_or_create_token(tmp_path)


def test_tokens_are_compared_whole() -> None:
    token = "ab" * 32
    assert auth.token_ok(token, token)
    assert not auth.token_ok(token[:-1], token)
    assert not auth.token_ok(token + "0", token)
    assert not auth.token_ok("", token) and not auth.token_ok(None, token)
    assert not auth.token_ok("é" * 64, token)  # not ASCII: no TypeError from compare_digest


# --- every request's checks -------------------------------------------------------------------


def test_no_token_or_a_wrong_one_is_401_and_the_right_one_200(config: Any, sent: list[dict[str, Any]]) -> None:
    async def test(base: str, token: str, call: Call) -> None:
        for path in ("/", "/static/app.js", "/static/style.css", "/api/state", "/events", "/no/such/page"):
            assert (await call("GET", path))[0] == 401, path
            assert (await call("GET", f"{path}?token={'0' * 64}"))[0] == 401, path
            assert (await call("GET", path, headers=bearer("0" * 64)))[0] == 401, path
        assert (await call("POST", "/api/actors/p1/kill"))[0] == 401
        assert (await call("GET", "/", headers={"Cookie": f"token={token}"}))[0] == 401  # never a cookie
        code, page = await call("GET", f"/?token={token}")
        assert code == 200 and f"/static/app.js?token={token}".encode() in page
        assert (await call("GET", f"/static/app.js?token={token}"))[0] == 200
        code, state = await call("GET", "/api/state", headers=bearer(token))
        assert code == 200 and state["leader"] == "p1"
        assert (await call("GET", "/static/secret.py", headers=bearer(token)))[0] == 404

    lines = run_server(config, test)
    assert not [m for m in sent if m["cmd"] != "status"]  # no refused request reached the supervisor
    refused = [ln for ln in lines if ln["event"] == "web_request_refused"]
    assert {ln["status"] for ln in refused} == {401}
    assert any("no token" in ln["reason"] for ln in refused) and any("wrong token" in ln["reason"] for ln in refused)
    assert not any("0" * 64 in json.dumps(ln) for ln in lines)  # the query (a token) never logged


def test_another_origin_is_403_even_with_the_token(config: Any, sent: list[dict[str, Any]]) -> None:
    async def test(base: str, token: str, call: Call) -> None:
        evil = {**bearer(token), "Origin": "http://evil.example"}
        assert (await call("POST", "/api/actors/p1/kill", headers=evil))[0] == 403
        assert (await call("GET", "/api/state", headers=evil))[0] == 403
        assert (await call("GET", "/api/state", headers={**bearer(token), "Origin": "null"}))[0] == 403
        # The same host on another port is another origin too.
        other = {**bearer(token), "Origin": base.rsplit(":", 1)[0] + ":1"}
        assert (await call("POST", "/api/actors/p1/kill", headers=other))[0] == 403
        # A DNS-rebinding page names its own host: refused on a loopback bind.
        rebound = {**bearer(token), "Host": "evil.example", "Origin": "http://evil.example"}
        assert (await call("GET", "/api/state", headers=rebound))[0] == 403
        code, reply = await call("POST", "/api/actors/p1/kill", headers={**bearer(token), "Origin": base})
        assert code == 200 and reply == {"ok": True, "pid": 4242}

    lines = run_server(config, test)
    assert [m for m in sent if m["cmd"] != "status"] == [kill_message("p1", "KILL")]  # only the own-origin one
    assert sum(ln["event"] == "web_request_refused" and ln["status"] == 403 for ln in lines) == 5


def test_oversized_and_malformed_bodies(config: Any, sent: list[dict[str, Any]]) -> None:
    async def test(base: str, token: str, call: Call) -> None:
        big = b"{" + b" " * (auth.BODY_BYTES_MAX + 1) + b"}"
        assert (await call("POST", "/api/kv", headers=bearer(token), data=big))[0] == 413

        async def chunks() -> Any:  # no Content-Length: refused once it grows past the limit
            for _ in range(20):
                yield b" " * 8192

        assert (await call("POST", "/api/kv", headers=bearer(token), data=chunks()))[0] == 413
        code, reply = await call("POST", "/api/kv", headers=bearer(token), data=b'{"op": "put", "key": ')
        assert code == 400 and "malformed JSON" in reply["error"]
        assert (await call("POST", "/api/kv", headers=bearer(token), data=b"\xff\xfe"))[0] == 400
        for body in ([1, 2], {"op": "drop", "key": "k"}, {"op": "put", "key": "k"}, {"op": "get", "key": 5},
                     {"op": "put", "key": "k", "value": 7}):
            assert (await call("POST", "/api/kv", headers=bearer(token), json=body))[0] == 400, body

    lines = run_server(config, test)
    refused = [ln for ln in lines if ln["event"] == "web_request_refused"]
    assert [ln["status"] for ln in refused[:2]] == [413, 413]
    assert all(ln["status"] == 400 for ln in refused[2:]) and len(refused) == 9


def test_refusals_are_logged_a_few_lines_at_a_time(config: Any, sent: list[dict[str, Any]]) -> None:
    async def test(base: str, token: str, call: Call) -> None:
        for _ in range(50):
            assert (await call("GET", "/api/state"))[0] == 401

    lines = run_server(config, test)
    assert sum(ln["event"] == "web_request_refused" for ln in lines) == auth.RefusalLog(None).lines_max


def test_the_refusal_log_says_how_many_it_left_out() -> None:
    said: list[tuple[str, dict[str, Any]]] = []

    class Logger:
        def warning(self, event: str, **fields: Any) -> None:
            said.append((event, fields))

    log = auth.RefusalLog(Logger(), lines_max=3, window_s=0.05)
    for _ in range(10):
        log.refused(401, "no token")
    assert len(said) == 3
    time.sleep(0.06)  # the window's own length passing (there is no event to wait for)
    log.refused(401, "no token")
    assert said[3] == ("web_refusals_suppressed", {"count": 7, "window_s": 0.05})
    assert said[4][0] == "web_request_refused"


# --- the buttons --------------------------------------------------------------------------------


def test_buttons_send_the_requests_of_paxos_kill_and_restart(config: Any, sent: list[dict[str, Any]]) -> None:
    async def test(base: str, token: str, call: Call) -> None:
        for action in ("kill", "pause", "resume", "restart"):
            code, reply = await call("POST", f"/api/actors/a2/{action}", headers=bearer(token))
            assert (code, reply["ok"]) == (200, True), action
        assert (await call("POST", "/api/actors/zz/kill", headers=bearer(token)))[0] == 404
        assert (await call("POST", "/api/actors/a2/wipe", headers=bearer(token)))[0] == 404

    lines = run_server(config, test)
    assert [m for m in sent if m["cmd"] != "status"] == [
        kill_message("a2", "KILL"), kill_message("a2", "STOP"), kill_message("a2", "CONT"), restart_message("a2")]
    assert [ln["action"] for ln in lines if ln["event"] == "web_action"] == ["kill", "pause", "resume", "restart"]


def test_a_refused_action_says_why(config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "request_control", lambda c, m, t=10.0: {"ok": False, "error": "a2 is not running"}
                        if m["cmd"] == "kill" else status())

    async def test(base: str, token: str, call: Call) -> None:
        code, reply = await call("POST", "/api/actors/a2/pause", headers=bearer(token))
        assert (code, reply) == (409, {"ok": False, "error": "a2 is not running"})

    run_server(config, test)


# --- the event stream ---------------------------------------------------------------------------


def test_the_stream_is_aggregated_and_a_closed_tab_is_harmless(config: Any, sent: list[dict[str, Any]]) -> None:
    window_s = 1.0

    async def test(base: str, token: str, call: Call) -> None:
        async with ClientSession() as session:
            views: list[dict[str, Any]] = []
            async with session.get(f"{base}/events?token={token}") as r:
                assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
                loop = asyncio.get_running_loop()
                end = loop.time() + window_s
                while loop.time() < end:
                    try:
                        line = await asyncio.wait_for(r.content.readline(), end - loop.time())
                    except TimeoutError:
                        break
                    if line.startswith(b"data: "):
                        views.append(json.loads(line[6:]))
            # The tab is closed (the response released mid-stream); another one still streams.
            assert views and views[0]["leader"] == "p1"
            assert len(views) <= window_s / server.UPDATE_INTERVAL_S + 2
            async with session.get(f"{base}/events?token={token}") as r:
                line = await asyncio.wait_for(r.content.readline(), 5)
                assert line.startswith(b"data: ")
        # Once every stream is gone the poller stops asking the supervisor.
        await asyncio.sleep(0.3)  # let the server see the second stream close
        asked = sum(m["cmd"] == "status" for m in sent)
        await asyncio.sleep(3 * server.UPDATE_INTERVAL_S)  # a span the poller would have polled in
        assert sum(m["cmd"] == "status" for m in sent) == asked

    run_server(config, test)
    polls = sum(m["cmd"] == "status" for m in sent)
    assert 2 <= polls <= (window_s + 1) / server.UPDATE_INTERVAL_S + 3  # one gatherer, never one per stream


# --- the view ---------------------------------------------------------------------------------


def test_the_view_marks_the_leader_and_each_lag(config: Any) -> None:
    v = view.build(config, status(paused="a3", down="l2"))
    assert v["running"] and v["leader"] == "p1" and v["leader_ballot"] == "3.1" and v["chosen"] == 40
    cards = {c["name"]: c for role in view.ROWS for c in v["rows"][role]}
    assert [c["name"] for c in v["rows"]["proposer"]] == ["p1", "p2"]
    assert [c["name"] for c in v["rows"]["acceptor"]] == ["a1", "a2", "a3"]
    assert cards["p1"]["leader"] and not cards["p2"]["leader"]
    assert (cards["p2"]["ballot"], cards["p2"]["lag"]) == ("2.2", 2)
    assert (cards["a1"]["ballot_label"], cards["a1"]["ballot"]) == ("promised", "3.1")
    assert (cards["l1"]["watermark"], cards["l1"]["lag"]) == (40, 0)
    assert cards["a3"]["state"] == "paused" and cards["l2"]["state"] == "down"
    assert cards["l2"]["supervisor_state"] == "restarting" and cards["l2"]["pid"] is None
    assert cards["a2"]["restarts"] == 1 and cards["a1"]["uptime"] == "12.5s"
    assert v["gauge"] == {"level": "warn", "text": "2 of 3 acceptors up: the next acceptor failure stops writes"}


def test_the_view_of_a_cluster_that_is_not_running(config: Any) -> None:
    v = view.build(config, None, "the cluster of x is not running (no supervisor)")
    assert not v["running"] and v["leader"] is None and "not running" in v["error"]
    assert all(c["state"] == "down" for role in view.ROWS for c in v["rows"][role])
    assert v["gauge"]["level"] == "down"


# --- the config ---------------------------------------------------------------------------------


def test_web_config_defaults_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(render(PORTS))
    w = load(path).web
    assert (w.bind, w.port, w.loopback) == ("127.0.0.1", 7180, True)
    default = load(Path(__file__).resolve().parent.parent / "cluster.toml")
    assert default.web.port not in {a.port for a in default.actors.values()} | {default.metrics.port}
    for extra, error in (("port = 70000", "web.port: must be from 0"), ("port = -1", "web.port"),
                         ('port = "80"', "web.port: must be int"), ('bind = "my host"', "web.bind: must be an IP"),
                         ("bind = 1", "web.bind: must be str"), ("tls = true", "web.tls: unknown key"),
                         (f"port = {PORTS['a1']}", "port of actor a1")):
        path.write_text(render(PORTS, extra=f"[web]\n{extra}"))
        with pytest.raises(ConfigError, match=error):
            load(path)
    path.write_text(render(PORTS, extra='[web]\nbind = "0.0.0.0"\nport = 0'))
    assert not load(path).web.loopback
    path.write_text(render(PORTS, extra="[metrics]\nenabled = true\nport = 7300\n\n[web]\nport = 7300"))
    with pytest.raises(ConfigError, match=r"is metrics\.port too"):
        load(path)


def test_link_rates_from_two_status_answers(config: Any) -> None:
    def with_counts(s: dict[str, Any], counts: dict[str, dict[str, int]], pids: dict[str, int] | None = None
                    ) -> dict[str, Any]:
        for a in s["actors"]:
            if a["name"] in counts:
                a["info"]["frames_to"] = json.dumps(counts[a["name"]])
            if pids and a["name"] in pids:
                a["pid"] = pids[a["name"]]
        return s

    first = with_counts(status(), {"p1": {"a1": 100, "a2": 100}, "a1": {"p1": 50}, "l1": {"p1": 7}})
    last = with_counts(status(), {"p1": {"a1": 140, "a2": 100, "a3": 20, "client": 9}, "a1": {"p1": 70},
                                  "l1": {"p1": 99}}, pids={"l1": 9999})  # l1 restarted: counts afresh
    rates = view.link_rates([(10.0, first), (12.0, last)])
    assert sorted((r["from"], r["to"], r["per_s"]) for r in rates) == [
        ("a1", "p1", 10.0), ("p1", "a1", 20.0), ("p1", "a3", 10.0)]  # no idle link, no stranger
    assert view.link_rates([(10.0, last)]) == [] and view.link_rates([(10.0, first), (10.0, last)]) == []
    broken = with_counts(status(), {"p1": {"a1": "many"}})  # type: ignore[dict-item]
    broken["actors"][1]["info"]["frames_to"] = "{not json"
    assert view.link_rates([(0.0, broken), (1.0, broken)]) == []
    assert view.build(config, last, links=rates)["links"] == rates


def test_links_are_cut_and_healed_both_ways_in_test_mode_only(config: Any, sent: list[dict[str, Any]],
                                                               tmp_path: Path) -> None:
    async def refused(base: str, token: str, call: Call) -> None:
        code, reply = await call("POST", "/api/links/p1/a1/cut", headers=bearer(token))
        assert code == 409 and "[testing] enabled = true" in reply["error"]

    run_server(config, refused)
    assert not (config.run_dir / "faults.json").exists()

    path = tmp_path / "test-mode.toml"
    path.write_text(render(PORTS, data_dir="data", extra="[testing]\nenabled = true"))
    test_mode = load(path)
    rules = test_mode.run_dir / "faults.json"

    async def test(base: str, token: str, call: Call) -> None:
        assert (await call("POST", "/api/links/p1/a1/cut", headers=bearer(token)))[0] == 200
        assert (await call("POST", "/api/links/l1/a2/cut", headers=bearer(token)))[0] == 200
        assert json.loads(rules.read_text()) == {"p1": {"a1": {"cut": True}}, "a1": {"p1": {"cut": True}},
                                                 "l1": {"a2": {"cut": True}}, "a2": {"l1": {"cut": True}}}
        state = (await call("GET", "/api/state", headers=bearer(token)))[1]
        assert state["faults"] == {"enabled": True, "cut": [["a1", "p1"], ["a2", "l1"], ["l1", "a2"], ["p1", "a1"]]}
        assert (await call("POST", "/api/links/a1/p1/heal", headers=bearer(token)))[0] == 200
        assert json.loads(rules.read_text()) == {"l1": {"a2": {"cut": True}}, "a2": {"l1": {"cut": True}}}
        assert (await call("POST", "/api/links/p1/p1/cut", headers=bearer(token)))[0] == 400
        assert (await call("POST", "/api/links/p1/zz/cut", headers=bearer(token)))[0] == 404
        assert (await call("POST", "/api/links/p1/a1/drop", headers=bearer(token)))[0] == 404

    lines = run_server(test_mode, test)
    assert [(ln["action"], ln["ok"]) for ln in lines if ln["event"] == "web_link"] == [
        ("cut", True), ("cut", True), ("heal", True)]


def test_a_bind_beyond_loopback_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    for bind, warned in (("127.0.0.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True),
                         ("192.168.1.5", True)):
        path.write_text(render(PORTS, extra=f'[web]\nbind = "{bind}"'))
        said = server.exposure(load(path))
        assert bool(said) is warned, bind
        if warned:
            assert f"web.bind = {bind!r}" in said and "not encrypted" in said
