"""The page's fault controls beyond kill/pause/cut (issue 15): crash points, link delay and drop,
and what the cards say about membership, snapshots and crashes.

What it owns:

- `POST /api/actors/<name>/crash` `{"point": POINT}`: the control request of `paxos kill NAME --at
  POINT` (runtime/crashpoints.py; the supervisor hands the actor its point and answers once it
  took it). A point that does not exist, or does not apply to the actor's role (a learner has no
  after-fsync-before-reply), is a 400 with the reason, and nothing is sent;
- `POST /api/links/<a>/<b>/set` `{"delay_ms": 0..5000, "drop": 0..1}`: a delay and a drop rate on
  the link between two actors, both ways, through the same fault layer as cut and heal (`paxos
  faults RULES`, test mode only), merged with the rules already in force (other links keep
  theirs); zero and zero clears the link's rule, as heal does. A bad number is a 400 with the
  reason, and nothing is written;
- `extend_view`: what the view (runtime/web/view.py) gains from the status and the rules: per
  card, the crash points its role has, the one armed and the one it last ended itself at (exit
  72), its member state, its last snapshot and compaction point; and the links that are delayed
  or lossy, with a label ("50 ms, 20% drop") the page draws next to them.

The routes go through the server's guard (token, origin, body size); the control request goes
through the server's `request_control`, `paxos faults` runs as its own program (the product never
imports the harness).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from runtime import crashpoints, logs
from runtime.config import ClusterConfig

if TYPE_CHECKING:
    from runtime.web.server import WebServer

DELAY_MS_MAX = 5000  # a mean delay on one link; more is a cut in all but name
FAULTS_TIMEOUT_S = 30.0  # `paxos faults` writes one file: seconds at most, even on a loaded machine


# --- the view -----------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def card_extras(a: dict[str, Any]) -> dict[str, Any]:
    """What a card shows besides view.card's fields, from one actor of a status answer: the crash
    points its role has, the one armed (`paxos kill --at`, taken and not reached yet) and the one
    its last run ended itself at, its member state (joining, leaving, removed: a badge), and an
    acceptor's or learner's last snapshot (slot) and compaction point (0 or missing: none)."""
    info = a.get("info") if isinstance(a.get("info"), dict) else {}
    assert isinstance(info, dict)
    role = str(a.get("role"))
    state = str(a.get("state"))
    armed = str(a.get("crash_armed") or "") if state in ("running", "paused") else ""
    died = str(a.get("crash_point") or "")
    if armed:
        crash = f"armed: ends itself at {armed}"
    elif died:
        after = (f"restarted ({_int(a.get('restarts')) or 0} restarts)" if state == "running"
                 else f"{state}, not back yet" if state == "restarting" else state)
        crash = f"ended itself at {died} (exit {crashpoints.EXIT_CRASH_POINT}); {after}"  # the state line says more
    else:
        crash = ""
    # A learner's compaction point is its shell's (it compacts its wal to each snapshot it
    # takes); an acceptor's is its core's, which it keeps across restarts.
    compacted = _int(info.get("compacted_through")) if role == "acceptor" else _int(info.get("wal_compacted_slot"))
    return {
        "crash_points": list(crashpoints.ROLES_POINTS.get(role, ())),
        "crash_armed": armed or None,
        "crash_point": died or None,
        "crash_label": crash,
        "member_badge": str(a.get("member") or ""),
        "snapshot_slot": (_int(info.get("snapshot_slot")) or None) if role != "proposer" else None,
        "compacted_slot": (compacted or None) if role != "proposer" else None,
    }


def rule_label(rule: dict[str, Any]) -> str:
    """'50 ms, 20% drop' for {"delay_ms": 50, "drop": 0.2}; '' for a rule with neither."""
    parts = []
    delay = rule.get("delay_ms")
    drop = rule.get("drop")
    if isinstance(delay, int | float) and not isinstance(delay, bool) and delay > 0:
        parts.append(f"{delay:g} ms")
    if isinstance(drop, int | float) and not isinstance(drop, bool) and drop > 0:
        parts.append(f"{round(drop * 100, 1):g}% drop")
    return ", ".join(parts)


def slow_links(rules: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every link (sender to destination, by name) with a delay or a drop rate and no cut, with
    its label; a "*" default is not drawn (it has no one line)."""
    out = []
    for src, links in rules.items():
        for dst, rule in links.items():
            if dst == "*" or not isinstance(rule, dict) or rule.get("cut"):
                continue
            label = rule_label(rule)
            if label:
                out.append({"from": src, "to": dst, "delay_ms": rule.get("delay_ms", 0), "drop": rule.get("drop", 0),
                            "label": label})
    return sorted(out, key=lambda r: (r["from"], r["to"]))


def extend_view(built: dict[str, Any], status: dict[str, Any] | None,
                rules: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The view with this module's fields: each card's (card_extras, matched by name) and, in
    test mode, `link_rules`, the delayed and lossy links (slow_links)."""
    actors = {str(a.get("name")): a for a in (status or {}).get("actors", [])}
    for row in built.get("rows", {}).values():
        for c in row:
            c.update(card_extras(actors.get(c["name"], {"role": c.get("role"), "state": c.get("supervisor_state")})))
    built["link_rules"] = slow_links(rules) if rules is not None else []
    return built


# --- the routes ---------------------------------------------------------------------------------


def add_routes(app: web.Application, server: WebServer) -> None:
    """Add this module's routes; before the server's own `/api/actors/{name}/{action}` and
    `/api/links/{a}/{b}/{action}`, which would take these paths for unknown actions."""
    app.router.add_post("/api/actors/{name}/crash", partial(crash, server))
    app.router.add_post("/api/links/{a}/{b}/set", partial(set_link, server))


async def _json_body(server: WebServer, request: web.Request) -> dict[str, Any] | web.Response:
    body = await request.read()
    try:
        data = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        return server._refuse(request, 400, f"malformed JSON: {str(exc)[:100]}")
    if not isinstance(data, dict):
        return server._refuse(request, 400, "expected a JSON object")
    return data


async def crash(server: WebServer, request: web.Request) -> web.Response:
    """`paxos kill NAME --at POINT`, by click: the same control request."""

    name = request.match_info["name"]
    config = server.config
    if name not in config.actors:
        return server._refuse(request, 404, f"no actor named {name[:40]!r}")
    data = await _json_body(server, request)
    if isinstance(data, web.Response):
        return data
    point = data.get("point")
    if not isinstance(point, str):
        return server._refuse(request, 400, f'expected {{"point": POINT}} (one of: {", ".join(crashpoints.POINTS)})')
    try:
        crashpoints.check(point, config.actor(name).role)
    except crashpoints.CrashPointError as exc:
        return server._refuse(request, 400, f"{name}: {str(exc)[:400]}")
    message = {"cmd": "kill", "name": name, "at": point, "restart": True}
    reply = await server.control(message)
    if isinstance(reply, web.Response):
        return reply
    ok = bool(reply.get("ok"))
    server.logger.info("web_crash_point", actor=name, point=point, ok=ok, error=reply.get("error") or None,
                       peer=request.remote or "")
    logs.flush()
    server.hub.poke.set()
    if not ok:
        return web.json_response({"ok": False, "error": str(reply.get("error", "failed"))},
                                 status=400 if reply.get("bad_point") else 409)
    return web.json_response({"ok": True, "pid": reply.get("pid"), "armed": point})


def _number(data: dict[str, Any], key: str, high: float) -> float | str:
    """data[key] as a number in 0..high (missing: 0), or why not."""
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{key} must be a number from 0 to {high:g}, not {str(value)[:40]!r}"
    if not 0 <= value <= high:
        return f"{key} must be from 0 to {high:g}, not {value:g}"
    return float(value)


def link_rules(rules: dict[str, dict[str, Any]], a: str, b: str, delay_ms: float,
               drop: float) -> dict[str, dict[str, Any]]:
    """`rules` with the link a-b (both ways) set to this delay and drop rate, every other rule
    kept; zero and zero removes the link's rule. Pure: a new dict."""
    out = {src: dict(links) for src, links in rules.items()}
    rule: dict[str, Any] = {}
    if delay_ms > 0:
        rule["delay_ms"] = int(delay_ms) if delay_ms == int(delay_ms) else delay_ms
    if drop > 0:
        rule["drop"] = drop
    for x, y in ((a, b), (b, a)):
        links = out.setdefault(x, {})
        if rule:
            links[y] = dict(rule)
        else:
            links.pop(y, None)
            if not links:
                del out[x]
    return out


async def set_link(server: WebServer, request: web.Request) -> web.Response:
    """A delay and a drop rate on the link a-b, both ways, through `paxos faults` (test mode)."""
    from runtime.web.server import read_fault_rules

    a, b = request.match_info["a"], request.match_info["b"]
    config: ClusterConfig = server.config
    for name in (a, b):
        if name not in config.actors:
            return server._refuse(request, 404, f"no actor named {name[:40]!r}")
    if a == b:
        return server._refuse(request, 400, "a link joins two different actors")
    data = await _json_body(server, request)
    if isinstance(data, web.Response):
        return data
    unknown = sorted(set(data) - {"delay_ms", "drop"})
    if unknown:
        return server._refuse(request, 400, f"unknown field {unknown[0][:40]!r} (a link's rule here: delay_ms, drop)")
    delay_ms = _number(data, "delay_ms", DELAY_MS_MAX)
    drop = _number(data, "drop", 1.0)
    for got in (delay_ms, drop):
        if isinstance(got, str):
            return server._refuse(request, 400, got)
    assert isinstance(delay_ms, float) and isinstance(drop, float)
    if not config.testing.enabled:
        return web.json_response({"ok": False, "error": f"link faults need `[testing] enabled = true` in "
                                                        f"{config.path.name} (the harness's fault layer)"}, status=409)
    async with server._faults_lock:  # the cut/heal buttons' lock: one rules file
        rules = link_rules(read_fault_rules(config), a, b, delay_ms, drop)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runtime.cli", "faults", json.dumps(rules), "--config", str(config.path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), FAULTS_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            err = f"paxos faults did not finish within {FAULTS_TIMEOUT_S:g}s".encode()
    ok = proc.returncode == 0
    error = err.decode(errors="replace").strip()[-300:]
    label = rule_label({"delay_ms": delay_ms, "drop": drop}) or "cleared"
    server.logger.info("web_link_rule", a=a, b=b, delay_ms=delay_ms, drop=drop, ok=ok, error=error or None,
                       peer=request.remote or "")
    logs.flush()
    server.hub.poke.set()
    if not ok:
        return web.json_response({"ok": False, "error": error or f"paxos faults exited {proc.returncode}"},
                                 status=502)
    return web.json_response({"ok": True, "label": label})
