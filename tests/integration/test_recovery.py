"""Real processes, real kills: the cluster keeps every acknowledged write through the death of
its leader, an acceptor and a learner, pauses, torn tails and corruption."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import zmq

from actors.ballot import Ballot
from actors.messages import Nack, Prepare, Promise
from runtime import codec, keys
from runtime.client import Client
from runtime.harness.local import LocalCluster
from runtime.harness.workload import Ledger, verify, writers


def run(coro):
    import uvloop

    return uvloop.run(coro)


def test_acknowledged_writes_survive_kill_9_of_leader_acceptor_and_learner(running: LocalCluster) -> None:
    c = running
    ledger = Ledger()
    figures = {}

    async def scenario() -> None:
        async with Client(c.config_path, timeout_s=10) as kv:
            stop = asyncio.Event()
            load = asyncio.create_task(writers(kv, ledger, stop))
            await ledger.progress_after(time.monotonic())
            for victim in (c.leader(), "a2", "l1"):
                assert victim
                before = c.actor(victim)["pid"]
                # Signal it here rather than through `paxos kill`, so the clock starts at the kill.
                os.kill(before, signal.SIGKILL)
                t_kill = time.monotonic()
                figures[victim] = await ledger.progress_after(t_kill)
                await asyncio.to_thread(c.wait_for, f"{victim} restarted",
                                        lambda v=victim, b=before: (a := c.actor(v))["state"] == "running"
                                        and a["pid"] not in (None, b))
                await asyncio.sleep(0.3)  # let writes flow with the restarted actor in place
            stop.set()
            await load
            assert len(ledger.puts) > 50 and len(ledger.appends) > 0
            await verify(kv, ledger)

    run(scenario())
    status = c.status()
    assert {a["name"]: a["restarts"] for a in status["actors"]}["a2"] == 1
    # Both learners converge to the same state.
    c.wait_for("learners to converge", lambda: len({a["info"].get("digest") for a in c.status()["actors"]
                                                    if a["role"] == "learner"}) == 1)
    print(f"\nnext acknowledged write after kill -9: {figures}")


def test_a_restarted_acceptor_keeps_its_promises(running: LocalCluster) -> None:
    c = running
    assert c.paxos("put", "k", "v").returncode == 0
    leader = c.leader()
    other = "p2" if leader == "p1" else "p1"
    ballot = Ballot(*map(int, c.actor(leader)["info"]["ballot"].split(".")))
    # Stop the other proposer for good and take its name and port, to speak as it would.
    assert c.paxos("kill", other, "--no-restart").returncode == 0
    c.wait_for(f"{other} stopped", lambda: c.actor(other)["state"] == "stopped")
    before = c.actor("a1")["pid"]
    assert c.paxos("kill", "a1").returncode == 0
    c.wait_for("a1 back", lambda: (a := c.actor("a1"))["state"] == "running" and a["pid"] != before
               and a["info"].get("promised"))
    node = int(other[1:])
    # The highest ballot of ours below the leader's: same round if our id is smaller.
    lower = Ballot(ballot.round if node < ballot.node else ballot.round - 1, node)
    assert lower < ballot
    ctx = zmq.Context.instance()
    inbox = ctx.socket(zmq.ROUTER)
    inbox.setsockopt(zmq.LINGER, 0)
    # a1 speaks to it as to the real one: CurveZMQ with its key (no ZAP handler here: a1 is
    # the only one who knows where to connect).
    inbox.setsockopt(zmq.CURVE_SERVER, 1)
    inbox.setsockopt(zmq.CURVE_SECRETKEY, keys.actor_pair(c.config, other).secret)
    inbox.bind(f"tcp://127.0.0.1:{c.ports[other]}")
    out = c.dealer("a1", other, key=other)
    try:
        size_before = c.wal("a1").stat().st_size
        replies = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(isinstance(m, Nack) for m in replies):
            out.send(codec.encode_frame(other, [Prepare(lower, 1)]))
            if inbox.poll(200):
                _, frame = inbox.recv_multipart()
                replies += codec.decode_frame(frame)[1]
        nacks = [m for m in replies if isinstance(m, Nack)]
        assert nacks and nacks[0].promised >= ballot, replies
        assert not any(isinstance(m, Promise) for m in replies)
        assert c.wal("a1").stat().st_size == size_before  # refusing wrote nothing
    finally:
        inbox.close(0)
        out.close(0)


def test_sigstop_of_the_leader_leads_to_a_takeover_and_sigcont_to_a_clean_return(running: LocalCluster) -> None:
    c = running
    old = c.leader()
    assert old
    assert c.paxos("kill", old, "--signal", "STOP").returncode == 0
    new = c.wait_for("a new leader", lambda: (lead := c.leader()) not in (None, old) and lead)
    assert c.paxos("put", "during", "pause", "--timeout-s", "10").returncode == 0
    assert c.paxos("kill", old, "--signal", "CONT").returncode == 0
    c.wait_for(f"{old} to follow {new}", lambda: (a := c.actor(old)["info"]).get("state") == "follower"
               and a.get("leader") == new)
    assert c.leader() == new
    assert c.paxos("put", "after", "resume", "--timeout-s", "10").returncode == 0
    assert c.paxos("get", "during").stdout.strip() == "pause"
    events = [e["event"] for e in c.log_events(old)]
    assert "stepped_down" in events or "leader_changed" in events
    # Exactly one proposer serves.
    serving = [a["name"] for a in c.status()["actors"] if a["info"].get("serving")]
    assert serving == [new]


def test_a_torn_tail_is_repaired_and_mid_file_corruption_refuses_to_start(cluster: LocalCluster) -> None:
    c = cluster
    assert c.up().returncode == 0
    for i in range(5):
        assert c.paxos("put", f"k{i}", f"v{i}").returncode == 0
    assert c.paxos("down").returncode == 0
    # A crash in the middle of a write: half a frame at the end of a1's file.
    wal = c.wal("a1")
    good = wal.read_bytes()
    wal.write_bytes(good + b"\xf0PXW\x00\x00\x01\x00\x12\x34")
    assert c.up().returncode == 0
    c.wait_for("a1 running", lambda: c.actor("a1")["state"] == "running")
    events = c.log_events("a1")
    cut = [e for e in events if e["event"] == "wal_tail_truncated"]
    assert cut and cut[-1]["offset"] == len(good) and cut[-1]["bytes_cut"] == 10
    assert wal.read_bytes()[:len(good)] == good
    assert [t.read_bytes() for t in wal.parent.glob("a1.wal.torn-*")] == [b"\xf0PXW\x00\x00\x01\x00\x12\x34"]
    assert c.paxos("get", "k4").stdout.strip() == "v4"
    assert c.paxos("down").returncode == 0
    # Corruption in the middle of a2's file: a2 refuses to start and says where.
    wal2 = c.wal("a2")
    data = bytearray(wal2.read_bytes())
    data[len(data) // 2] ^= 0x55
    wal2.write_bytes(bytes(data))
    c.up()  # may report the failed actor; the others still form a quorum
    a2 = c.wait_for("a2 failed", lambda: (a := c.actor("a2"))["state"] == "failed" and a)
    assert "corrupt" in a2["reason"] and str(wal2) in a2["reason"] and "offset" in a2["reason"]
    assert a2["restarts"] == 0
    assert wal2.read_bytes() == bytes(data)  # never silently truncated
    assert c.paxos("put", "still", "works", "--timeout-s", "15").returncode == 0
    assert c.paxos("get", "k2").stdout.strip() == "v2"
    # An acceptor whose file is gone must not come back as a fresh voter (it forgot promises): it
    # comes back rebuilding, and votes only after a leader that finished Phase 1 without it.
    assert c.paxos("down").returncode == 0
    wal2.unlink()
    started = time.time()
    c.up()
    c.wait_for("a2 rebuilt", lambda: c.actor("a2")["info"].get("state") == "voting")
    seen = [e["event"] for e in c.log_events("a2") if e["ts"] > started]
    assert seen.index("rebuilding") < seen.index("rebuild_done") < seen.index("voting")
    assert c.paxos("get", "k2").stdout.strip() == "v2"


def test_many_clients_with_many_concurrent_operations(running: LocalCluster) -> None:
    async def scenario() -> None:
        clients = [Client(running.config_path, timeout_s=20) for _ in range(4)]
        for cl in clients:
            await cl.connect()
        try:
            async def work(i: int, cl: Client) -> None:
                await asyncio.gather(*(cl.put(f"c{i}-{j}", str(j)) for j in range(200)))
                await asyncio.gather(*(cl.append("shared", f"{i}.{j};") for j in range(50)))

            await asyncio.gather(*(work(i, cl) for i, cl in enumerate(clients)))
            got = await asyncio.gather(*(clients[0].get(f"c{i}-{j}") for i in range(4) for j in range(200)))
            assert got == [str(j) for _ in range(4) for j in range(200)]
            shared = (await clients[1].get("shared") or "").split(";")[:-1]
            assert sorted(shared) == sorted(f"{i}.{j}" for i in range(4) for j in range(50))
        finally:
            for cl in clients:
                await cl.close()

    run(scenario())


def test_unused_port_helper_returns_distinct_ports() -> None:
    from runtime.harness.local import free_ports

    ports = free_ports(5)
    assert len(set(ports)) == 5
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))


def test_an_unexpected_error_ends_the_actor_which_rebuilds_from_its_file_alone(tmp_path) -> None:
    """Crash-only: an exception while handling input, with the acceptor's memory ahead of its file,
    ends the process with exit 71 and the error in its log; the supervisor restarts it, and it
    rebuilds from its file and votes again. Nothing acknowledged is lost."""
    c = LocalCluster(tmp_path, extra="[testing]\nenabled = true")  # the test-mode actor injects it
    try:
        assert c.up().returncode == 0
        ledger = Ledger()
        pid = c.actor("a1")["pid"]

        async def scenario() -> None:
            async with Client(c.config_path, timeout_s=10) as kv:
                stop = asyncio.Event()
                load = asyncio.create_task(writers(kv, ledger, stop))
                await ledger.progress_after(time.monotonic())
                # Its next turn with records to persist raises after the steps, before the commit.
                os.kill(pid, signal.SIGUSR1)
                await asyncio.to_thread(c.wait_for, "a1 restarted", lambda: (a := c.actor("a1"))["state"] == "running"
                                        and a["pid"] not in (None, pid) and a["info"].get("accepts_answered"))
                await ledger.progress_after(time.monotonic())
                stop.set()
                await load
                await verify(kv, ledger)

        run(scenario())
        events = c.log_events("a1")
        crash = next(e for e in events if e["event"] == "actor_crashed")
        assert crash["where"] == "frames" and crash["error"].startswith("InjectedCrash: injected after the steps")
        assert "Traceback" in crash["traceback"]
        after = [e for e in events if e["ts"] > crash["ts"]]
        recovered = next(e for e in after if e["event"] == "recovered")
        assert recovered["records"] > 0 and not recovered["created"]  # from its file, not afresh
        assert any(e["event"] == "voting" for e in after)
        exits = [e for e in c.log_events("supervisor") if e["event"] == "child_exited" and e.get("child") == "a1"]
        assert exits and exits[0]["exit"].startswith("exit code 71") and exits[0]["action"] == "restart"
        assert c.actor("a1")["restarts"] == 1
    finally:
        c.down()
