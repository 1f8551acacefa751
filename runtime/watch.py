"""`paxos status --watch`: a live view of the cluster in the terminal (issue 14), with rich.live.

Each refresh asks the supervisor for its status (runtime/supervisor.py: its children and every
running actor's StatusReply) and draws one frame: every actor with role, state, pid, uptime and
restarts; the leader and its ballot; the chosen watermark and each learner's lag behind it;
slots and commands per second; and the fault-tolerance gauge in words (runtime/gauge.py), over
the acceptors of the membership in force (the most advanced learner's, runtime/members.py) and
the mode's quorums.

Rates come from the change between samples over the last `RATE_WINDOW_S` (one refresh apart is
too noisy at a few per second): slots per second from the chosen watermark, commands per second
from the learners' counts of commands applied (the fastest one's; a slot holds many client
batches, so the two differ by the batching). A learner that restarted in the window is left out.

The frame is built by pure functions of the samples (`frame`), so it is tested without a
cluster; `watch` is the loop. Ctrl-C ends it with exit 0. When stdout is not a terminal it
prints one frame and says so on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from runtime.config import ClusterConfig
from runtime.control import ControlError, NotRunning, request
from runtime.gauge import DOWN, OK, Gauge, fault_tolerance

RATE_WINDOW_S = 2.0
STATUS_TIMEOUT_S = 5.0
STATE_STYLES = {"running": "green", "paused": "yellow", "failed": "bold red", "restarting": "yellow"}
GAUGE_STYLES = {OK: "green", DOWN: "bold red"}  # WARN: yellow


@dataclass(frozen=True)
class Sample:
    """One answer of the supervisor (None: not running), or why there is none, at a time."""

    t_s: float  # time.monotonic()
    status: dict[str, Any] | None
    error: str = ""


def _info(a: dict[str, Any]) -> dict[str, Any]:
    info = a.get("info")
    return info if isinstance(info, dict) else {}


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def leader_of(status: dict[str, Any]) -> tuple[str | None, str]:
    """The serving leader's name and ballot (as the supervisor names the leader)."""
    name = status.get("leader")
    for a in status.get("actors", []):
        if a.get("name") == name:
            return name, str(_info(a).get("ballot", "?"))
    return None, ""


def chosen_watermark(status: dict[str, Any]) -> int | None:
    """Every slot up to it is chosen: the leader's watermark, else the highest any proposer knows."""
    name = status.get("leader")
    marks = {a.get("name"): _int(_info(a).get("chosen_through")) for a in status.get("actors", [])
             if a.get("role") == "proposer"}
    if name in marks and marks[name] is not None:
        return marks[name]
    known = [m for m in marks.values() if m is not None]
    return max(known) if known else None


def learners(status: dict[str, Any]) -> list[tuple[str, int | None]]:
    """Each learner's delivered watermark (None: it did not answer), in config order."""
    return [(str(a.get("name")), _int(_info(a).get("delivered"))) for a in status.get("actors", [])
            if a.get("role") == "learner"]


def acceptors_in_force(status: dict[str, Any], fallback: list[str]) -> list[str]:
    """The acceptors of the membership in force, as the most advanced learner delivered it (the
    learner's `members`: [proposers, acceptors, learners]); `fallback` when none answered."""
    best: tuple[int, list[str]] | None = None
    for a in status.get("actors", []):
        info = _info(a)
        if a.get("role") != "learner" or not isinstance(info.get("members"), str):
            continue
        try:
            _, acceptors, _ = json.loads(info["members"])
            names = [str(n) for n, _ in acceptors]
        except (ValueError, TypeError):
            continue
        delivered = _int(info.get("delivered")) or 0
        if best is None or delivered > best[0]:
            best = (delivered, names)
    return best[1] if best is not None else fallback


def acceptors_up(status: dict[str, Any], names: list[str]) -> int:
    """Of `names`, how many can vote now: running, answering, and not rebuilding."""
    by_name = {a.get("name"): a for a in status.get("actors", [])}
    up = 0
    for name in names:
        a = by_name.get(name)
        if a is not None and a.get("state") == "running" and _info(a).get("state") == "voting":
            up += 1
    return up


def gauge(status: dict[str, Any], fallback: list[str], mode: str) -> Gauge:
    names = acceptors_in_force(status, fallback)
    return fault_tolerance(acceptors_up(status, names), len(names), mode)


def _applied(status: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Each answering learner's (pid, commands applied)."""
    out: dict[str, tuple[int, int]] = {}
    for a in status.get("actors", []):
        applied, pid = _int(_info(a).get("commands_applied")), _int(a.get("pid"))
        if a.get("role") == "learner" and applied is not None and pid is not None:
            out[str(a.get("name"))] = (pid, applied)
    return out


def rates(samples: list[Sample]) -> tuple[float | None, float | None]:
    """Slots and commands per second between the oldest and newest sample that have them."""
    usable = [s for s in samples if s.status is not None]
    if len(usable) < 2:
        return None, None
    first, last = usable[0], usable[-1]
    dt_s = last.t_s - first.t_s
    if dt_s <= 0:
        return None, None
    assert first.status is not None and last.status is not None
    c0, c1 = chosen_watermark(first.status), chosen_watermark(last.status)
    slots = (c1 - c0) / dt_s if c0 is not None and c1 is not None and c1 >= c0 else None
    # The fastest learner that was the same process at both ends (a restart starts its count
    # afresh); which one is ahead changes from one moment to the next.
    a0, a1 = _applied(first.status), _applied(last.status)
    deltas = [a1[n][1] - a0[n][1] for n in a1 if n in a0 and a0[n][0] == a1[n][0] and a1[n][1] >= a0[n][1]]
    return slots, (max(deltas) / dt_s if deltas else None)


def uptime(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _detail(a: dict[str, Any], chosen: int | None) -> str:
    info = _info(a)
    if not info:
        return str(a.get("reason") or "")
    role = a.get("role")
    if role == "proposer":
        state = str(info.get("state"))
        if state == "leader":
            state += " serving" if info.get("serving") else " recovering"
        return f"{state} ballot={info.get('ballot')} chosen_through={info.get('chosen_through')}"
    if role == "acceptor":
        return f"{info.get('state')} promised={info.get('promised')} highest_slot={info.get('highest_slot')}"
    delivered = _int(info.get("delivered"))
    lag = f" lag={max(0, chosen - delivered)}" if chosen is not None and delivered is not None else ""
    return f"{info.get('state')} delivered={delivered}{lag}"


def _rate(value: float | None, unit: str) -> str:
    return f"{value:,.0f} {unit}/s" if value is not None else f"- {unit}/s"


def frame(config: ClusterConfig, samples: list[Sample], interval_s: float, live: bool = True) -> RenderableType:
    """One frame of the live view from the samples of the last RATE_WINDOW_S (newest last)."""
    last = samples[-1]
    title = f"cluster {config.path}"
    foot = f"at {time.strftime('%H:%M:%S')}" + (f", every {interval_s:g}s; Ctrl-C quits" if live else "")
    if last.status is None:
        why = last.error or "not running (no supervisor)"
        return Group(Text(title, style="bold"), Text(why, style="bold red"), Text(foot, style="dim"))
    status = last.status
    chosen = chosen_watermark(status)
    leader, ballot = leader_of(status)
    slots_s, commands_s = rates(samples)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("leader", f"{leader} (ballot {ballot})" if leader else Text("none serving", style="bold red"))
    head.add_row("chosen through", str(chosen) if chosen is not None else "-")
    head.add_row("learners", ", ".join(
        f"{name} {d} (lag {max(0, chosen - d)})" if d is not None and chosen is not None
        else f"{name} {d if d is not None else '-'}" for name, d in learners(status)) or "-")
    head.add_row("throughput", f"{_rate(slots_s, 'slots')}, {_rate(commands_s, 'commands')} "
                               f"(over the last {RATE_WINDOW_S:g}s)")
    g = gauge(status, list(config.current().acceptor_names), config.protocol.mode)
    head.add_row("fault tolerance", Text(g.text, style=GAUGE_STYLES.get(g.level, "yellow")))
    if config.protocol.mode != "classic":
        head.add_row("mode", config.protocol.mode)
    table = Table()
    for col in ("name", "role", "state", "pid", "uptime", "restarts", "detail"):
        table.add_column(col, no_wrap=col != "detail")
    for a in status.get("actors", []):
        state = Text(str(a.get("state")), style=STATE_STYLES.get(str(a.get("state")), "dim"))
        if a.get("member"):
            state.append(f" ({a['member']})", style="cyan")
        table.add_row(str(a.get("name")), str(a.get("role")), state, str(a.get("pid") or "-"),
                      uptime(_info(a).get("uptime_s")), str(a.get("restarts", 0)), _detail(a, chosen))
    if status.get("metrics"):
        foot += f"; metrics at {status['metrics']}"
    # The summary first: on a short terminal Live crops the bottom, and the gauge must stay in view.
    return Group(Text(title, style="bold"), head, table, Text(foot, style="dim"))


def sample(config: ClusterConfig) -> Sample:
    try:
        return Sample(time.monotonic(), request(config, {"cmd": "status", "digest": False},
                                                    timeout_s=STATUS_TIMEOUT_S))
    except NotRunning as exc:
        return Sample(time.monotonic(), None, str(exc))
    except ControlError as exc:
        return Sample(time.monotonic(), None, str(exc))


def watch(config: ClusterConfig, interval_s: float, console: Console | None = None) -> int:
    """The live view until Ctrl-C (exit 0). Not on a terminal: one frame, and a word on stderr;
    then exit 0, or 3 when the cluster is not running (as `paxos status`)."""
    from rich.live import Live

    console = console or Console()
    window: deque[Sample] = deque()
    window.append(sample(config))
    if not console.is_terminal:
        try:
            console.print(frame(config, list(window), interval_s, live=False))
            console.file.flush()
        except BrokenPipeError:  # `paxos status --watch | head`: the reader had enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 0
        print("paxos: stdout is not a terminal: one frame printed (`--watch` refreshes only on a terminal)",
              file=sys.stderr)
        return 0 if window[-1].status is not None else 3
    try:
        with Live(frame(config, list(window), interval_s), console=console, auto_refresh=False,
                  screen=False, transient=False) as live:
            while True:
                time.sleep(interval_s)  # the refresh cadence itself, not a wait for an event
                now = sample(config)
                window.append(now)
                while len(window) > 2 and now.t_s - window[0].t_s > RATE_WINDOW_S:
                    window.popleft()
                live.update(frame(config, list(window), interval_s), refresh=True)
    except KeyboardInterrupt:
        return 0
