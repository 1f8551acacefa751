"""Reads without a log write on real processes (actors/lease.py): a linearizable `get` never
returns a value older than a write acknowledged before it was invoked, across a kill -9 of the
leader; `paxos get --stale` answers from a learner; and a clock beyond the drift bound makes the
lease-overlap check of the real logs fire (the negative test of that check)."""

from __future__ import annotations

import asyncio
import time

from runtime.client import Client, OutcomeUnknown
from runtime.harness.faults import set_clocks, set_rules
from runtime.harness.local import LocalCluster
from runtime.harness.nemesis import lease_overlaps


def test_reads_during_a_leader_kill_never_return_a_value_older_than_an_acknowledged_write(
        running: LocalCluster) -> None:
    cluster = running
    acked = [0]  # the highest value a put of it was acknowledged for
    bad: list[str] = []
    reads = [0]

    async def writer(kv: Client, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                await kv.put("k", str(n))
            except OutcomeUnknown:
                continue  # maybe applied: a later read may see it, and that is fine
            acked[0] = max(acked[0], n)

    async def reader(kv: Client, stop: asyncio.Event) -> None:
        while not stop.is_set():
            floor = acked[0]  # acknowledged before this read was invoked
            try:
                got = await kv.get("k")
            except OutcomeUnknown:
                continue
            reads[0] += 1
            if (got is None and floor) or (got is not None and int(got) < floor):
                bad.append(f"read {got} after {floor} was acknowledged")

    async def main() -> None:
        async with Client(cluster.config_path, timeout_s=5.0) as w, Client(cluster.config_path, timeout_s=5.0) as r:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(writer(w, stop)), *(asyncio.create_task(reader(r, stop)) for _ in range(8))]
            await asyncio.sleep(1.0)
            for _ in range(2):
                before = acked[0]
                assert cluster.paxos("kill", "leader").returncode == 0
                await asyncio.to_thread(cluster.wait_for, "writes after the kill", lambda b=before: acked[0] > b + 20)
                await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*tasks)

    asyncio.run(main())
    assert not bad, bad[:5]
    assert reads[0] >= 200 and acked[0] >= 50, (reads[0], acked[0])
    # Served without a log write: lease reads in the leaders' logs, none after a newer election.
    served, overlaps = lease_overlaps(cluster.config)
    assert served >= 50 and not overlaps, (served, overlaps)
    # And the CLI: a linearizable get sees the last write; --stale asks a learner, with no leader.
    last = cluster.paxos("get", "k")
    assert last.returncode == 0 and int(last.stdout) >= acked[0]
    assert cluster.paxos("put", "s", "fresh").returncode == 0
    stale = cluster.paxos("get", "s", "--stale")
    assert stale.returncode in (0, 4) and stale.stdout.strip() in ("fresh", "")  # it may be behind
    assert cluster.paxos("get", "no-such-key", "--stale").returncode == 4


def test_stale_reads_answer_without_any_proposer(running: LocalCluster) -> None:
    cluster = running
    assert cluster.paxos("put", "greeting", "hello").returncode == 0
    cluster.wait_for("both learners", lambda: all(cluster.actor(n)["info"].get("delivered", 0) >= 2
                                                  for n in ("l1", "l2")))
    for p in ("p1", "p2"):
        assert cluster.paxos("kill", p, "--signal", "STOP").returncode == 0
    try:
        stale = cluster.paxos("get", "greeting", "--stale", "--timeout-s", "5")
        assert (stale.returncode, stale.stdout.strip()) == (0, "hello"), stale.stderr
        lin = cluster.paxos("get", "greeting", "--timeout-s", "1")
        assert lin.returncode == 2  # no leader answers: the outcome is unknown
    finally:
        for p in ("p1", "p2"):
            cluster.paxos("kill", p, "--signal", "CONT")


def test_a_leader_clock_far_beyond_the_drift_bound_makes_the_overlap_check_fire(cluster: LocalCluster) -> None:
    cluster.config_path.write_text(cluster.config_path.read_text() + "\n[testing]\nenabled = true\n")
    assert cluster.up().returncode == 0
    leader = cluster.wait_for("a leader", cluster.leader)
    other = "p2" if leader == "p1" else "p1"
    # Its ticks at 0.18x (heartbeats every 0.28 s, still within the others' election timeout): it
    # believes its lease runs 0.94 s past the last round the acceptors answered, while their
    # grants lapse after 0.2 s and the other proposer elects 0.3-0.6 s after its last heartbeat.
    set_clocks(cluster.config, {leader: 0.18})
    time.sleep(1.0)

    async def main() -> None:
        async with Client(cluster.config_path, timeout_s=3.0) as kv:
            await kv.put("k", "v")
            # Cut it from the acceptors and the other proposer; the learners still take its reads.
            names = [a.name for a in cluster.config.acceptors] + [p.name for p in cluster.config.proposers
                                                                  if p.name != leader]
            set_rules(cluster.config, {leader: {n: {"cut": True} for n in names},
                                       **{n: {leader: {"cut": True}} for n in names}})
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                try:
                    await kv.get("k")
                except OutcomeUnknown:
                    pass
                await asyncio.sleep(0.005)

    asyncio.run(main())
    set_rules(cluster.config, {})
    set_clocks(cluster.config, {})
    cluster.wait_for(f"{other} elected", lambda: any(e.get("event") == "leader_elected"
                                                     for e in cluster.log_events(other)))
    _, overlaps = lease_overlaps(cluster.config)
    assert overlaps, "a lease beyond the drift bound overlapped no election: the check saw nothing"
