"""Membership change on real processes (issue 11): `paxos members add|remove` through the log,
the supervisor starting new local actors and stopping removed ones, a client that finds new
learners by itself, and `paxos down` / `paxos up` running the log's membership."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.client import Client
from runtime.harness.local import LocalCluster, free_ports

SMALL_WINDOW = "[protocol]\nwindow_slots = 4"  # alpha = 4 slots: a change takes effect quickly


@pytest.fixture
def small(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path, extra=SMALL_WINDOW)
    try:
        proc = c.up()
        assert proc.returncode == 0, proc.stderr
        yield c
    finally:
        c.down()


def change(c: LocalCluster, *args: str, tries: int = 40) -> str:
    """`paxos members ...`, asked again while another change is inside its alpha window (the
    leader fills that window with no-ops when it refuses, so a later try is taken)."""
    out = ""
    for i in range(tries):
        proc = c.paxos("members", *args)
        if proc.returncode == 0:
            return proc.stdout
        out = proc.stderr
        assert "inside its alpha window" in out or "not chosen yet" in out, out
        c.paxos("put", f"filler{i}", "x", check=True)
    raise AssertionError(f"members {' '.join(args)} never taken: {out}")


def members_json(c: LocalCluster) -> dict:
    proc = c.paxos("members", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def in_force(c: LocalCluster, acceptors: list[str]) -> dict:
    """Write until the membership in force has exactly these acceptors (bounded)."""
    def check() -> dict | None:
        c.paxos("put", "tick", "x", check=True)
        view = members_json(c)
        return view if [a["name"] for a in view["acceptors"]] == acceptors else None
    return c.wait_for(f"acceptors {acceptors} in force", check, timeout_s=60, every_s=0.0)


def test_grow_to_five_kill_two_keep_serving_then_replace_a_failed_disk(small: LocalCluster) -> None:
    c = small
    p4, p5, p6 = free_ports(3)
    c.paxos("put", "before", "1", check=True)
    out = change(c, "add", "acceptor", "a4", "--endpoint", f"tcp://127.0.0.1:{p4}")
    assert "started a4" in out, out
    out = change(c, "add", "acceptor", "a5", "--endpoint", f"tcp://127.0.0.1:{p5}")
    assert "started a5" in out, out
    view = in_force(c, ["a1", "a2", "a3", "a4", "a5"])
    assert view["slot"] > 0 and view["alpha"] == 4
    # Five acceptors: two may fail and the cluster still serves.
    for name in ("a1", "a2"):
        assert c.paxos("kill", name, "--no-restart").returncode == 0
    c.wait_for("a1 and a2 down", lambda: all(c.actor(n)["state"] == "stopped" for n in ("a1", "a2")))
    for i in range(10):
        c.paxos("put", f"two-down{i}", str(i), check=True)
    assert c.paxos("get", "two-down9").stdout.strip() == "9"
    # a1's disk "failed": replace it with a6 (add, then remove), with a1 still down.
    out = change(c, "add", "acceptor", "a6", "--endpoint", f"tcp://127.0.0.1:{p6}")
    assert "started a6" in out, out
    out = change(c, "remove", "a1")
    assert "a1 stops once no slot it serves is open" in out, out
    assert c.paxos("start", "a2").returncode == 0
    in_force(c, ["a2", "a3", "a4", "a5", "a6"])
    c.wait_for("a1 marked removed", lambda: c.actor("a1")["member"] == "removed")
    assert c.wal("a1").exists()  # its files stay
    status = c.status()
    assert status["membership_differs"] and "a6" in status["membership_differs"]
    # a2 too, in one entry: two of the three bootstrap acceptors gone for good.
    p7 = free_ports(1)[0]
    change(c, "replace", "a2", "a7", "--endpoint", f"tcp://127.0.0.1:{p7}")
    in_force(c, ["a3", "a4", "a5", "a6", "a7"])
    c.wait_for("a2 marked removed", lambda: c.actor("a2")["member"] == "removed")
    # Every acknowledged write reads back, and after down and up the log's membership runs (a
    # leader is elected without the removed acceptors, whose slots are all chosen).
    c.down()
    assert c.up().returncode == 0
    status = c.status()
    names = {a["name"]: a for a in status["actors"]}
    assert all(n not in names or names[n]["state"] != "running" for n in ("a1", "a2"))
    assert all(names[n]["state"] == "running" for n in ("a3", "a4", "a5", "a6", "a7"))
    assert "a7" in status["membership_differs"]
    for key, value in [("before", "1"), ("two-down9", "9")]:
        assert c.paxos("get", key).stdout.strip() == value
    assert [a["name"] for a in members_json(c)["acceptors"]] == ["a3", "a4", "a5", "a6", "a7"]
    # A proposer that loses its file rebuilds from today's acceptors (a1 and a2 never answer).
    assert c.paxos("wipe", "p1").returncode == 0
    c.wait_for("p1 rebuilt", lambda: (i := c.actor("p1")["info"]) and i.get("state") in ("follower", "leader"))
    assert any(e["event"] == "rebuild_done" for e in c.log_events("p1"))
    c.paxos("put", "after-wipe", "1", check=True)


def test_refusals_learners_and_proposers_change_and_a_client_follows(small: LocalCluster) -> None:
    c = small
    p3, l3, spare = free_ports(3)
    for args, why in [
        (("remove", "a2"), "fewer than 3 acceptors"),
        (("add", "acceptor", "a2", "--endpoint", f"tcp://127.0.0.1:{spare}"), "a2 is a member already"),
        (("add", "acceptor", "a9", "--endpoint", f"tcp://127.0.0.1:{c.ports['p1']}"), "has endpoint"),
        (("remove", "zz"), "zz is not a member"),
        (("add", "proposer", "p9", "--endpoint", f"tcp://127.0.0.1:{spare}", "--id", "1"), "id 1"),
        (("add", "learner", "Bad", "--endpoint", f"tcp://127.0.0.1:{spare}"), "bad member name"),
    ]:
        proc = c.paxos("members", *args)
        assert proc.returncode == 1 and why in proc.stderr, (args, proc.stderr)
    assert c.paxos("members", "add", "acceptor", "a9").returncode == 64  # no --endpoint
    assert not (c.data_dir / "state" / "members.json").exists()  # nothing changed

    async def scenario() -> None:
        async with Client(c.config_path, timeout_s=30) as client:  # knows only l1, l2 and p1, p2
            await client.put("k0", "v0")
            await asyncio.to_thread(change, c, "add", "learner", "l3", "--endpoint", f"tcp://127.0.0.1:{l3}")
            await asyncio.to_thread(change, c, "add", "proposer", "p3", "--endpoint", f"tcp://127.0.0.1:{p3}")
            leader = await asyncio.to_thread(c.leader)
            assert leader
            await asyncio.to_thread(change, c, "remove", leader)  # the leader removes itself
            await asyncio.to_thread(change, c, "remove", "l1")
            def followed() -> bool:
                core = client.core
                return ("l3" in core.learners and "p3" in core.proposers and "l1" not in core.learners
                        and leader not in core.proposers)
            for i in range(100):  # it asks a learner every DISCOVER_S (2 s)
                await client.put(f"k{i}", f"v{i}")
                if followed():
                    break
                await asyncio.sleep(0.1)
            assert followed(), (client.core.learners, client.core.proposers)
            for i in range(5):
                await client.put(f"after{i}", str(i))
            assert await client.get("after4") == "4"
            removed = leader

            def retired() -> bool:
                names = {a["name"]: a for a in c.status()["actors"]}
                return names["l1"]["member"] == "removed" and names[removed]["member"] == "removed"
            await asyncio.to_thread(c.wait_for, "l1 and the old leader retired", retired, 60)
            new_leader = await asyncio.to_thread(c.wait_for, "a new leader", c.leader, 30)
            assert new_leader != removed
            await client.put("last", "1")
            assert await client.get("last") == "1"

    asyncio.run(scenario())
    # Several members in one entry: l2 replaced by l4.
    l4 = free_ports(1)[0]
    out = change(c, "replace", "l2", "l4", "--endpoint", f"tcp://127.0.0.1:{l4}")
    assert "started l4" in out and "l2 stops" in out, out
    def learners() -> bool:
        c.paxos("put", "tick", "x", check=True)
        return [n["name"] for n in members_json(c)["learners"]] == ["l3", "l4"]
    c.wait_for("l3 and l4 in force", learners, timeout_s=60, every_s=0.0)
    # l4 catches up from nothing first; on a loaded 2-core machine the default 10 s was seen to
    # run out (CI runs another cluster beside this one): a generous bound, and the reason if not.
    got = c.paxos("get", "last", "--timeout-s", "30")
    if got.stdout.strip() != "1":
        infos = {a["name"]: (a["state"], a["member"], {k: a["info"].get(k) for k in (
            "state", "delivered", "reads_answered", "reads_waiting", "read_batches_leased", "read_batches_held",
            "frames_rejected", "messages_rejected", "chosen_through")}) for a in c.status()["actors"]}
        logs = c.paxos("logs", "l3", "l4", "p1", "p2", "p3").stdout.splitlines()[-60:]
        raise AssertionError(f"{got.stderr}\n{infos}\n" + "\n".join(logs))
