"""Named crash points on real processes (`paxos kill NAME --at POINT`, runtime/crashpoints.py).

On one running cluster an acceptor dies at every point in turn (a1, a2, a3, a1, ...: one down at
a time) and the leader at one: each died at its point (its `crash_point_reached` line, exit 72
with that point in the supervisor's `child_exited` and in `status`), came back (a new pid,
running), recovered exactly the bytes that point leaves on disk (the torn write's tail kept in
`.torn-N` and cut); one armed with --no-restart stays down; every acknowledged put is still
readable at the end.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from runtime import crashpoints
from runtime.client import Client
from runtime.control import request
from runtime.harness.faults import set_rules
from runtime.harness.local import LocalCluster

# Test mode for the leader's case (link faults); restarts enough for six deaths in a minute.
EXTRA = "[testing]\nenabled = true\n\n[supervisor]\nrestart_max = 20"
WAIT_S = 15.0


def control(c: LocalCluster, message: dict[str, Any]) -> dict[str, Any]:
    return request(c.config, message, timeout_s=10.0)


def actor_status(c: LocalCluster, name: str) -> dict[str, Any]:
    status = control(c, {"cmd": "status"})
    c.remember_pids(status)
    return next(a for a in status["actors"] if a["name"] == name)


async def until(what: str, cond: Any, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(cond)
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what} (last: {last!r})")


def event(c: LocalCluster, name: str, kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in c.log_events(name) if e.get("event") == kind and all(e.get(k) == v for k, v in match.items())]


async def arm(c: LocalCluster, name: str, point: str, via_cli: bool = False, no_restart: bool = False) -> int:
    """Arm `point` at `name`; returns the pid that took it."""
    if no_restart:
        proc = await asyncio.to_thread(c.paxos, "kill", name, "--at", point, "--no-restart")
        assert proc.returncode == 0 and "it stays down (--no-restart)" in proc.stdout, proc.stderr + proc.stdout
        return int(proc.stdout.split("(pid ")[1].split(")")[0])
    if via_cli:
        proc = await asyncio.to_thread(c.paxos, "kill", name, "--at", point)
        assert proc.returncode == 0, proc.stderr
        assert f"kill {name} --at {point}: armed" in proc.stdout, proc.stdout
        return int(proc.stdout.split("(pid ")[1].split(")")[0])
    reply = await asyncio.to_thread(control, c, {"cmd": "kill", "name": name, "at": point})
    assert reply["ok"] and reply["armed"] == point, reply
    return int(reply["pid"])


async def died_and_back(c: LocalCluster, name: str, point: str, pid: int) -> dict[str, Any]:
    """It died at `point` (log line, exit code, status) and runs again; returns its crash event."""
    def back() -> dict[str, Any] | None:
        a = actor_status(c, name)
        return a if a["state"] == "running" and a["pid"] not in (None, pid) and a["crash_point"] == point else None

    a = await until(f"{name} to die at {point} and come back", back)
    assert a["last_exit"].startswith(f"exit code {crashpoints.EXIT_CRASH_POINT} "), a
    reached = event(c, name, "crash_point_reached", point=point, pid=pid)
    assert len(reached) == 1, c.log_events(name)[-5:]
    exited = event(c, "supervisor", "child_exited", child=name, pid=pid)
    assert [(e["crash_point"], e["action"]) for e in exited] == [(point, "restart")], exited
    assert exited[0]["exit"].startswith(f"exit code {crashpoints.EXIT_CRASH_POINT} "), exited
    # Back for real: recovered from its file and serving on its port again.
    await until(f"{name} to start again", lambda: after(c, name, reached[0], "actor_started"))
    return reached[0]


def after(c: LocalCluster, name: str, crash: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The first event `kind` of `name` after its crash event."""
    events = c.log_events(name)
    return next((e for e in events[events.index(crash):] if e.get("event") == kind), None)


async def scenario(c: LocalCluster) -> None:
    acked: dict[str, str] = {}
    acceptors = ["a1", "a2", "a3"]
    async with Client(c.config_path, timeout_s=10.0) as kv:
        await kv.put("k-start", "v")
        acked["k-start"] = "v"
        for i, point in enumerate(crashpoints.POINTS):
            victim = acceptors[i % len(acceptors)]
            pid = await arm(c, victim, point, via_cli=point == crashpoints.TORN_WRITE)
            # Its next turn that persists: the Accept of this put (or of anything before it).
            await kv.put(f"k-{point}", point)
            acked[f"k-{point}"] = point
            crash = await died_and_back(c, victim, point, pid)
            recovered = after(c, victim, crash, "recovered")
            assert recovered is not None
            if point == crashpoints.TORN_WRITE:
                # Part of a frame, kept aside and then cut: what remains is what was there before.
                assert 0 < crash["torn_bytes"] < crash["frame_bytes"], crash
                truncated = after(c, victim, crash, "wal_tail_truncated")
                assert truncated is not None
                assert truncated["bytes_cut"] == crash["torn_bytes"], truncated
                assert truncated["offset"] == crash["wal_bytes"] - crash["torn_bytes"], (truncated, crash)
                torn = Path(truncated["torn"])
                assert torn.exists() and torn.stat().st_size == crash["torn_bytes"], truncated
                assert recovered["wal_bytes"] == truncated["offset"]
            else:
                # A process crash keeps what was written, synced or not (the page cache survives
                # it): recovery reads back exactly the bytes at the point.
                assert recovered["wal_bytes"] == crash["wal_bytes"], (crash, recovered)
                synced = crash["wal_synced_bytes"] == crash["wal_bytes"]
                assert synced == (point != crashpoints.AFTER_WRITE), crash
        # The leader: it persists nothing while it leads, so its next persisting turn is its next
        # campaign. Isolated, it loses its quorum, steps down and campaigns: its RoundRecord is
        # durable and its Prepare never leaves.
        leader = (await asyncio.to_thread(control, c, {"cmd": "status"}))["leader"]
        assert leader in ("p1", "p2")
        pid = await arm(c, leader, crashpoints.AFTER_FSYNC)
        names = list(c.config.actors)
        await asyncio.to_thread(set_rules, c.config, {leader: {"*": {"cut": True}},
                                                      **{n: {leader: {"cut": True}} for n in names if n != leader}})
        try:
            await until(f"{leader} to reach its crash point",
                        lambda: event(c, leader, "crash_point_reached", pid=pid), timeout_s=WAIT_S)
        finally:
            await asyncio.to_thread(set_rules, c.config, {})
        await kv.put("k-leader", "after")
        acked["k-leader"] = "after"
        crash = await died_and_back(c, leader, crashpoints.AFTER_FSYNC, pid)
        assert crash["kinds"] == ["RoundRecord"], crash
        # --no-restart: it ends at its point and stays down.
        pid = await arm(c, "a3", crashpoints.BEFORE_PERSIST, no_restart=True)
        await kv.put("k-stays-down", "v")
        acked["k-stays-down"] = "v"
        stopped = await until("a3 to stop at its point", lambda: (lambda a: a if a["state"] == "stopped" else None)(
            actor_status(c, "a3")))
        assert stopped["crash_point"] == crashpoints.BEFORE_PERSIST, stopped
        assert [e["action"] for e in event(c, "supervisor", "child_exited", child="a3", pid=pid)] == ["none"]
        for key, value in acked.items():
            assert await kv.get(key) == value, key
    # The supervisor checks a request too (the control socket is an input of its own).
    for name, point in (("a1", "after-lunch"), ("l1", crashpoints.AFTER_FSYNC)):
        reply = await asyncio.to_thread(control, c, {"cmd": "kill", "name": name, "at": point})
        assert not reply["ok"] and reply["bad_point"], reply
        assert not crashpoints.request_path(c.config.run_dir, name).exists()


def test_every_crash_point_killed_and_recovered(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, extra=EXTRA)
    try:
        up = c.up()
        assert up.returncode == 0, up.stderr
        asyncio.run(scenario(c))
    finally:
        c.down()
