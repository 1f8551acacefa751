"""The page's state: one JSON-ready dict built from one answer of the supervisor's `status` (the
answer `paxos status` and `paxos status --watch` read), with runtime/watch.py's functions for the
leader, the chosen watermark and the fault-tolerance gauge, so the page and the terminal view
never disagree on what those mean.

Pure: a status dict (or None: not running) in, a view out; tested without a cluster. The layout
the page draws follows the seeds' diagrams: proposers on top, acceptors in the middle, learners
below (`rows`). The arrows between them are the frames a second on each link (`link_rates`),
from the change of each actor's per-peer counts between two status answers.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.config import ClusterConfig
from runtime.watch import chosen_watermark, gauge, leader_of, uptime

ROWS = ("proposer", "acceptor", "learner")  # top to bottom
UP, DOWN, PAUSED = "up", "down", "paused"


def _info(a: dict[str, Any]) -> dict[str, Any]:
    info = a.get("info")
    return info if isinstance(info, dict) else {}


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def card_state(supervisor_state: str) -> str:
    """The card's state in three words: running is up, paused (SIGSTOP) is paused, every other
    state (restarting, stopped, failed, elsewhere) is down; the card says which one too."""
    if supervisor_state == "running":
        return UP
    return PAUSED if supervisor_state == "paused" else DOWN


def _progress(role: str, info: dict[str, Any]) -> int | None:
    """How far this actor has come: a learner's delivered watermark, else its chosen one."""
    return _int(info.get("delivered" if role == "learner" else "chosen_through"))


def card(a: dict[str, Any], leader: str | None, chosen: int | None) -> dict[str, Any]:
    info = _info(a)
    role = str(a.get("role"))
    progress = _progress(role, info)
    ballot = info.get("ballot") if role == "proposer" else info.get("promised") if role == "acceptor" else None
    return {
        "name": str(a.get("name")),
        "role": role,
        "state": card_state(str(a.get("state"))),
        "supervisor_state": str(a.get("state")),
        "detail": str(info.get("state") or a.get("reason") or ""),  # leader/follower, voting/rebuilding, ...
        "pid": _int(a.get("pid")),
        "uptime": uptime(info.get("uptime_s")) if info else "-",
        "restarts": _int(a.get("restarts")) or 0,
        "ballot_label": "ballot" if role == "proposer" else "promised" if role == "acceptor" else "",
        "ballot": str(ballot) if ballot is not None else None,
        "watermark_label": "delivered" if role == "learner" else "chosen through",
        "watermark": progress,
        "lag": max(0, chosen - progress) if chosen is not None and progress is not None else None,
        "leader": a.get("name") == leader,
        "serving": bool(info.get("serving")) if role == "proposer" else None,
        "member": str(a.get("member") or ""),
        "answering": bool(info),
    }


def frames_to(a: dict[str, Any]) -> dict[str, int]:
    """The frames an actor has sent to each peer since it started (its status's `frames_to`, a
    JSON map: runtime/transport.py counts them), or {} when it did not say."""
    raw = _info(a).get("frames_to")
    if not isinstance(raw, str):
        return {}
    try:
        counts = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(counts, dict):
        return {}
    return {str(k): v for k, v in counts.items() if type(v) is int and v >= 0}


def link_rates(samples: list[tuple[float, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Frames a second on each link (sender to peer), between the oldest and the newest of
    `samples` ((time.monotonic(), status) pairs, oldest first), for every actor that was the same
    process (pid) at both ends: a restart starts its counts afresh. Only links to actors of the
    status; a link with no frames in the window is left out."""
    if len(samples) < 2:
        return []
    (t0, first), (t1, last) = samples[0], samples[-1]
    dt_s = t1 - t0
    if dt_s <= 0:
        return []
    before = {a.get("name"): a for a in first.get("actors", [])}
    names = {a.get("name") for a in last.get("actors", [])}
    out = []
    for a in last.get("actors", []):
        old = before.get(a.get("name"))
        if old is None or _int(a.get("pid")) is None or old.get("pid") != a.get("pid"):
            continue
        was = frames_to(old)
        for peer, n in frames_to(a).items():
            sent = n - was.get(peer, 0)
            if peer in names and sent > 0:
                out.append({"from": str(a.get("name")), "to": peer, "per_s": round(sent / dt_s, 1)})
    return out


def build(config: ClusterConfig, status: dict[str, Any] | None, error: str = "",
          links: list[dict[str, Any]] | None = None, cut: list[list[str]] | None = None) -> dict[str, Any]:
    """The view of one status answer; None (with why in `error`): the cluster is not running,
    and every actor of the config is drawn down."""
    running = status is not None
    if status is None:
        status = {"actors": [{"name": s.name, "role": s.role, "pid": None, "state": "stopped", "restarts": 0,
                              "reason": "not running", "info": {}} for s in config.actors.values()],
                  "leader": None}
    leader, ballot = leader_of(status)
    chosen = chosen_watermark(status)
    cards = [card(a, leader, chosen) for a in status.get("actors", [])]
    g = gauge(status, list(config.current().acceptor_names), config.protocol.mode)
    return {
        "running": running,
        "error": "" if running else (error or "the cluster is not running (no supervisor)"),
        "config": str(config.path),
        "leader": leader,
        "leader_ballot": ballot or None,
        "chosen": chosen,
        "gauge": {"level": g.level, "text": g.text},
        "mode": config.protocol.mode,
        "rows": {role: [c for c in cards if c["role"] == role] for role in ROWS},
        "links": links or [],  # frames a second per link: the page's arrows
        # Test mode only (the harness's fault layer): the links that may be cut, and those that are.
        "faults": {"enabled": config.testing.enabled, "cut": cut or []},
    }
