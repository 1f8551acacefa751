"""A put's path is traceable end to end from the trace files of a real cluster: client -> leader
-> acceptors (persist, fsync) -> learner -> reply -> client, each hop joined on (sender, lc); and
`paxos trace --op` prints that path's stages with their numbers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from runtime.client import Client
from runtime.harness.local import LocalCluster
from runtime.tracefiles import Traces


def test_a_put_is_followed_through_every_process(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, extra="[trace]\nclients = true")
    try:
        up = cluster.up()
        assert up.returncode == 0, up.stderr

        async def puts() -> str:
            async with Client(cluster.config_path, timeout_s=20.0) as kv:
                for i in range(3):
                    await kv.put(f"k{i}", "v")
                return kv.client_id

        client_id = asyncio.run(puts())
    finally:
        cluster.down()  # every process's trace is flushed at the end of each of its turns
    traces = Traces.load(cluster.data_dir / "logs")
    acceptors = {"a1", "a2", "a3"}
    for seq in (1, 2, 3):
        path = traces.follow(f"{client_id}:{seq}")
        assert path is not None, f"no leader assigned {client_id}:{seq}"
        send, recv = path.client_send, path.leader_recv
        assert send is not None and recv is not None and send["a"] == client_id
        assert (recv["from"], recv["slc"]) == (client_id, send["lc"]) and recv["lc"] > send["lc"]
        # A majority of acceptors received the Accept, wrote and fsynced it, and answered.
        voted = set(path.fsync) & set(path.accepted)
        assert len(voted) >= 2 and voted <= acceptors, path
        for a in voted:
            assert path.acceptor_recv[a]["slc"] == path.accepts[a]["lc"]
            assert path.fsync[a]["dur_us"] > 0
            assert path.acceptor_recv[a]["ts"] <= path.persist[a]["ts"] <= path.accepted[a]["ts"]
        assert path.decide is not None and path.deliver is not None and path.reply is not None
        assert path.client_recv is not None and path.client_recv["a"] == client_id
        # The events are in causal order on the host's one clock.
        first_accept = min(e["ts"] for e in path.accepts.values())
        chain = [send["ts"], recv["ts"], path.assign["ts"], first_accept, path.decide["ts"],
                 path.deliver["ts"], path.reply["ts"], path.client_recv["ts"]]
        assert chain == sorted(chain), chain
        stages = {s.name: s.ms for s in path.stages()}
        assert stages["total"] >= stages["quorum"] > 0
    starts = [e for e in traces.events if e["e"] == "start"]
    assert {e["a"] for e in starts} == {"p1", "p2", "a1", "a2", "a3", "l1", "l2"}
    # `paxos trace --op` prints the same path's stages after its chart, with numbers for the
    # acceptors that voted (stdout is a pipe here: the plain-text table).
    shown = cluster.paxos("trace", "--op", f"{client_id}:2", "--no-pager")
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout.partition(f"where the time went: {client_id}:2, slot ")[2].splitlines()
    assert table, shown.stdout
    stage_ms = {" ".join(x.split()[:2]): x.split()[2] for x in table[2:] if x.split()[0] in acceptors}
    second = traces.follow(f"{client_id}:2")
    assert second is not None
    voted = set(second.fsync)
    for a in voted:
        assert float(stage_ms[f"{a} persist"]) >= 0 and float(stage_ms[f"{a} fsync"]) > 0, table
    total = next(x for x in table if x.startswith("total")).split()
    assert float(total[1]) >= max(float(stage_ms[f"{a} fsync"]) for a in voted)
