"""Batched calls on real processes: `get_many` never returns, for any of its keys, another key's
value or a value older than a `put_many` acknowledged before it was invoked, across a kill -9 of
the leader (each read of the batch is linearizable as a `get` is; the reads travel as one `Read`)."""

from __future__ import annotations

import asyncio

from runtime.client import Client, OutcomeUnknown
from runtime.harness.local import LocalCluster

KEYS = [f"b{i}" for i in range(8)]


def test_batched_reads_never_go_back_behind_an_acknowledged_batched_write_across_a_leader_kill(
        running: LocalCluster) -> None:
    cluster = running
    acked = [0]  # the highest n every key was acknowledged at
    bad: list[str] = []
    reads = [0]

    async def writer(kv: Client, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                await kv.put_many([(k, f"{n}.{i}") for i, k in enumerate(KEYS)])  # the key's own value
            except OutcomeUnknown:
                continue  # maybe applied, in part or whole: later reads may see it
            acked[0] = max(acked[0], n)

    async def reader(kv: Client, stop: asyncio.Event) -> None:
        while not stop.is_set():
            floor = acked[0]  # acknowledged before this call was made
            try:
                got = await kv.get_many(KEYS)
            except OutcomeUnknown:
                continue
            reads[0] += 1
            old = [(k, v) for i, (k, v) in enumerate(zip(KEYS, got, strict=True))
                   if (v is None and floor) or (v is not None and (int(v.split(".")[0]) < floor
                                                                   or v.split(".")[1] != str(i)))]
            if old:
                bad.append(f"read {old} after {floor} was acknowledged")

    async def main() -> None:
        async with Client(cluster.config_path, timeout_s=5.0) as w, Client(cluster.config_path, timeout_s=5.0) as r:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(writer(w, stop)), *(asyncio.create_task(reader(r, stop)) for _ in range(4))]
            await asyncio.to_thread(cluster.wait_for, "batched writes", lambda: acked[0] > 20)
            before = acked[0]
            assert cluster.paxos("kill", "leader").returncode == 0
            await asyncio.to_thread(cluster.wait_for, "writes after the kill", lambda: acked[0] > before + 20)
            stop.set()
            await asyncio.gather(*tasks)

    asyncio.run(main())
    assert not bad, bad[:5]
    assert reads[0] >= 50 and acked[0] >= 40, (reads[0], acked[0])
