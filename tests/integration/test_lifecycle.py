"""Real processes: snapshots keep files small, a restarted acceptor comes back from a compacted
file, and wiped actors come back (`paxos wipe`): a learner by snapshot, an acceptor by rebuilding
before it votes again, a proposer by learning the ballots it forgot."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from runtime.client import Client
from runtime.harness.local import LocalCluster
from runtime.harness.workload import Ledger, verify, writers

SMALL_SNAPSHOTS = "[snapshot]\nevery_slots = 40\nevery_bytes = 16384\nchunk_bytes = 4096"


def run(coro):
    import uvloop

    return uvloop.run(coro)


@pytest.fixture
def compacting(tmp_path: Path):
    c = LocalCluster(tmp_path, extra=SMALL_SNAPSHOTS)
    try:
        assert c.up().returncode == 0
        yield c
    finally:
        c.down()


def load(c: LocalCluster, puts: int, keys: int = 50, rounds: int = 20) -> None:
    """`puts` puts in `rounds` rounds of concurrent ones (each round a few slots)."""
    async def go() -> None:
        async with Client(c.config_path) as kv:
            for r in range(rounds):
                await asyncio.gather(*(kv.put(f"k{i % keys}", f"v{i}") for i in range(r, puts, rounds)))
    run(go())


def events(c: LocalCluster, name: str, since: float) -> list[str]:
    return [e["event"] for e in c.log_events(name) if e["ts"] > since]


def test_snapshots_keep_files_small_and_an_acceptor_restarts_from_its_compacted_file(compacting) -> None:
    c = compacting
    load(c, 4000)
    status = c.wait_for("every acceptor compacted", lambda: (s := c.status()) and all(
        a["info"].get("snapshot_slot", 0) > 0 for a in s["actors"] if a["role"] == "acceptor") and s)
    for a in status["actors"]:
        if a["role"] in ("acceptor", "learner"):
            # 4,000 commands of ~40 bytes went through; what stays is the state and a short tail.
            assert a["info"]["file_bytes"] < 64 * 1024, a
    assert sorted(p.suffix for p in (c.data_dir / "snap" / "a1").iterdir()) in ([".snap"], [".snap", ".snap"])
    assert {"snapshot_taken", "wal_compacted"} <= set(events(c, "l1", 0))
    # Both learners offer their snapshot; each acceptor fetches the first offer it gets.
    assert "snapshot_sent" in set(events(c, "l1", 0)) | set(events(c, "l2", 0))
    assert {"snapshot_received", "log_compacted", "wal_compacted"} <= set(events(c, "a1", 0))
    before = c.actor("a1")
    wall = time.time()
    os.kill(before["pid"], signal.SIGKILL)
    a1 = c.wait_for("a1 back and voting", lambda: (a := c.actor("a1"))["state"] == "running"
                    and a["pid"] != before["pid"] and "voting" in events(c, "a1", wall) and a)
    recovered = next(e for e in c.log_events("a1") if e["ts"] > wall and e["event"] == "recovered")
    assert recovered["records"] < 200  # a checkpoint, not the history
    a1 = c.wait_for("a1 answering", lambda: (a := c.actor("a1"))["info"] and a)  # status asks for 0.5 s only
    assert a1["info"]["snapshot_slot"] >= before["info"]["snapshot_slot"]
    assert c.paxos("get", "k7").stdout.strip().startswith("v")


def test_a_wiped_learner_catches_up_by_snapshot_and_serves(compacting) -> None:
    c = compacting
    load(c, 3000)
    c.wait_for("acceptors compacted", lambda: c.actor("a2")["info"].get("snapshot_slot", 0) > 0)
    wall = time.time()
    wiped = c.paxos("wipe", "l2")
    assert wiped.returncode == 0 and "catches up by snapshot" in wiped.stdout, wiped.stderr
    target = c.actor("l1")["info"]["delivered"]
    l2 = c.wait_for("l2 caught up", lambda: (a := c.actor("l2"))["info"].get("delivered", 0) >= target and a)
    seen = events(c, "l2", wall)
    assert seen.index("catching_up_by_snapshot") < seen.index("snapshot_installed")
    assert l2["info"]["digest"] == c.actor("l1")["info"]["digest"]
    assert l2["restarts"] == 0  # a wipe is not a crash


def test_a_wiped_acceptor_rebuilds_before_it_votes_again_and_nothing_is_lost(compacting) -> None:
    c = compacting
    ledger = Ledger()

    async def scenario() -> None:
        async with Client(c.config_path, timeout_s=10) as kv:
            stop = asyncio.Event()
            task = asyncio.create_task(writers(kv, ledger, stop))
            await ledger.progress_after(time.monotonic())
            wall = time.time()
            assert (await asyncio.to_thread(c.paxos, "wipe", "a1")).returncode == 0
            await asyncio.to_thread(c.wait_for, "a1 voting again", lambda: "rebuild_done" in events(c, "a1", wall)
                                    and c.actor("a1")["info"].get("state") == "voting", 30.0)
            seen = events(c, "a1", wall)
            assert seen.index("rebuilding") < seen.index("rebuild_promised") < seen.index("rebuild_done")
            assert "voting" not in seen[:seen.index("rebuild_done")]  # no vote before it rejoined
            await ledger.progress_after(time.monotonic())
            stop.set()
            await task
            await verify(kv, ledger)

    run(scenario())


def test_a_wiped_leader_learns_the_ballots_it_forgot_before_it_proposes(compacting) -> None:
    c = compacting
    load(c, 200)
    leader = c.leader()
    assert leader
    ballot = tuple(map(int, c.actor(leader)["info"]["ballot"].split(".")))
    wall = time.time()
    assert c.paxos("wipe", leader).returncode == 0
    c.wait_for(f"{leader} rebuilt", lambda: "rebuild_done" in events(c, leader, wall))
    done = next(e for e in c.log_events(leader) if e["ts"] > wall and e["event"] == "rebuild_done")
    assert tuple(map(int, done["known_ballot"].split("."))) >= ballot
    later = [e for e in c.log_events(leader) if e["ts"] > wall and e["event"] == "election_started"]
    assert all(tuple(map(int, e["ballot"].split("."))) > ballot for e in later)
    assert c.paxos("put", "after", "wipe").returncode == 0
