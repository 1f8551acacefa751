"""Fast Paxos on real processes: clients write straight to four acceptors, collide, and lose
nothing through the kill -9 of the leader, an acceptor and a learner."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runtime.client import Client
from runtime.harness.local import LocalCluster
from runtime.harness.workload import Ledger, verify, writers

ACCEPTORS = ["a1", "a2", "a3", "a4"]
FAST = '[protocol]\nmode = "fast"\nfast_recovery = "{recovery}"\n'


def run(coro):
    import uvloop

    return uvloop.run(coro)


def events(c: LocalCluster, names: list[str], event: str) -> list[dict]:
    return [e for n in names for e in c.log_events(n) if e["event"] == event]


def test_fast_mode_keeps_every_acknowledged_write_through_collisions_and_kills(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, acceptors=4, extra=FAST.format(recovery="coordinated"))
    try:
        up = c.up()
        assert up.returncode == 0, up.stderr
        proposers = ["p1", "p2"]
        c.wait_for("a fast round", lambda: events(c, proposers, "fast_round_opened"))
        ledger = Ledger()

        async def scenario() -> None:
            # Four clients at once: their batches reach the acceptors in different orders.
            clients = [Client(c.config_path, timeout_s=15) for _ in range(4)]
            for kv in clients:
                await kv.connect()
            try:
                stop = asyncio.Event()
                loads = [asyncio.create_task(writers(kv, ledger, stop, tasks=4, prefix=f"c{n}."))
                         for n, kv in enumerate(clients)]
                await ledger.progress_after(time.monotonic())
                for victim in (c.leader(), "a2", "l1"):
                    assert victim
                    before = c.actor(victim)["pid"]
                    os.kill(before, signal.SIGKILL)
                    await ledger.progress_after(time.monotonic())
                    await asyncio.to_thread(c.wait_for, f"{victim} restarted",
                                            lambda v=victim, b=before: (a := c.actor(v))["state"] == "running"
                                            and a["pid"] not in (None, b))
                stop.set()
                await asyncio.gather(*loads)
                assert len(ledger.puts) > 50 and ledger.appends
                await verify(clients[0], ledger)
                sent = sum(kv.stats["fast_sent"] for kv in clients)
                assert sent > 0, "no write took the fast path"
            finally:
                for kv in clients:
                    await kv.close()

        run(scenario())
        opened = events(c, proposers, "fast_round_opened")
        assert len({e["ballot"] for e in opened}) >= 2, "the new leader opened a fast round of its own"
        taken = sum(a["info"].get("fast_accepts", 0) for a in c.status()["actors"] if a["role"] == "acceptor")
        assert taken > 0
        c.wait_for("learners to converge", lambda: len({a["info"].get("digest") for a in c.status()["actors"]
                                                        if a["role"] == "learner"}) == 1)
    finally:
        c.down()


def test_fast_mode_with_uncoordinated_recovery_serves_and_recovers_collisions(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, acceptors=4, extra=FAST.format(recovery="uncoordinated"))
    workers: list[subprocess.Popen[str]] = []
    try:
        up = c.up()
        assert up.returncode == 0, up.stderr
        c.wait_for("a fast round", lambda: events(c, ["p1", "p2"], "fast_round_opened"))
        # Client processes of their own writing four keys: their batches reach the acceptors in
        # different orders (clients in one process send in one order), so slots collide.
        workers = [subprocess.Popen([sys.executable, "-m", "runtime.harness.bench", "--worker", str(c.config_path),
                                     "--tasks", "1", "--duration-s", "8", "--mix", "few", "--seed", str(i)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                   for i in range(6)]
        ledger = Ledger()

        async def scenario() -> None:
            async with Client(c.config_path, timeout_s=15) as kv:
                stop = asyncio.Event()
                load = asyncio.create_task(writers(kv, ledger, stop, tasks=4))
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not events(c, ACCEPTORS, "collision_recovered"):
                    await asyncio.sleep(0.2)
                stop.set()
                await load
                await verify(kv, ledger)

        run(scenario())
        recovered = events(c, ACCEPTORS, "collision_recovered")
        assert recovered, "no collision was recovered by the acceptors"
        assert all(e["way"] == "uncoordinated" for e in recovered)
        for w in workers:
            out, _ = w.communicate(timeout=60)
            assert w.returncode == 0 and '"ops"' in out
        print(f"\nuncoordinated recoveries: {len(recovered)}, writes: {len(ledger.puts)}")
        # The mode is fixed for a cluster's data: started in classic mode, its actors refuse.
        c.down()
        c.config_path.write_text(c.config_path.read_text().replace('mode = "fast"', 'mode = "classic"'))
        again = c.up(wait_s=10)
        assert again.returncode != 0 and "ran in fast mode and cluster.toml says mode = 'classic'" in again.stderr
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        c.down()


def test_fast_mode_needs_four_acceptors(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, acceptors=3, extra=FAST.format(recovery="coordinated"))
    try:
        up = c.up()
        assert up.returncode != 0
        assert "fast mode needs at least 4 acceptors" in up.stderr and "4 acceptors: fast quorum 3" in up.stderr
        assert not (tmp_path / "data" / "wal").exists() or not any((tmp_path / "data" / "wal").iterdir())
    finally:
        c.down()
