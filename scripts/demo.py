#!/usr/bin/env python3
"""A narrated demo on real processes: start a cluster, write, kill the leader and watch the
takeover, kill an acceptor mid-load and watch it recover from its own file, then check that
every acknowledged write is intact.

    python scripts/demo.py [--writers 16] [--load-s 3] [--keep]

It runs in a fresh temporary directory on free loopback ports, so it never touches a cluster
you already run. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop
from rich.console import Console

from runtime.client import Client
from runtime.harness.local import LocalCluster
from runtime.harness.workload import Ledger, verify, writers
from runtime.logview import Formatter

console = Console(highlight=False)


def say(text: str) -> None:
    console.print(f"\n[bold cyan]==>[/] [bold]{text}[/]")


def show_events(c: LocalCluster, names: list[str], since: float, wanted: set[str]) -> list[dict]:
    fmt = Formatter(names)
    shown = []
    for name in names:
        for e in c.log_events(name):
            if e["ts"] >= since and e["event"] in wanted:
                shown.append(e)
    shown.sort(key=lambda e: e["ts"])
    for e in shown:
        console.print("    ", fmt.render(e))
    return shown


async def demo(c: LocalCluster, args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with Client(c.config_path, timeout_s=15) as kv:
        say(f"A simple write loop: {args.writers} concurrent writers for {args.load_s:g}s, fsync on")
        count = 0
        stop_at = time.monotonic() + args.load_s

        async def loop(i: int) -> None:
            nonlocal count
            j = 0
            while time.monotonic() < stop_at:
                j += 1
                await kv.put(f"warm{i}", str(j))
                count += 1

        t0 = time.monotonic()
        await asyncio.gather(*(loop(i) for i in range(args.writers)))
        figures["write_ops_per_s"] = count / (time.monotonic() - t0)
        console.print(f"    {count} writes acknowledged: [bold]{figures['write_ops_per_s']:.0f} ops/s[/]")

        ledger = Ledger()
        stop = asyncio.Event()
        load = asyncio.create_task(writers(kv, ledger, stop, tasks=args.writers))
        await ledger.progress_after(time.monotonic())

        leader = c.leader()
        pid = c.actor(leader)["pid"]
        say(f"kill -9 the leader {leader} (pid {pid}) while {args.writers} writers keep writing")
        wall = time.time()
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        figures["leader_kill_to_ack_s"] = await ledger.progress_after(t_kill)
        console.print(f"    next acknowledged write {figures['leader_kill_to_ack_s'] * 1000:.0f} ms after the kill")
        new = await asyncio.to_thread(c.wait_for, "a new leader", lambda: (lead := c.leader()) and lead)
        console.print(f"    leader now: [bold]{new}[/]; what the logs say:")
        show_events(c, ["supervisor", "p1", "p2", "a1", "a2", "a3"], wall,
                    {"child_exited", "child_restarted", "election_started", "promised", "leader_elected",
                     "leader_serving", "leader_changed", "recovered"})

        victim = "a2"
        pid = c.actor(victim)["pid"]
        say(f"kill -9 the acceptor {victim} (pid {pid}) mid-load; the supervisor restarts it")
        wall = time.time()
        os.kill(pid, signal.SIGKILL)

        def voting() -> dict | None:
            return next((e for e in c.log_events(victim) if e["ts"] > wall and e["event"] == "voting"), None)

        event = await asyncio.to_thread(c.wait_for, f"{victim} voting again", voting, 30)
        figures["acceptor_kill_to_voting_s"] = event["ts"] - wall
        console.print(f"    {victim} back and voting {figures['acceptor_kill_to_voting_s'] * 1000:.0f} ms "
                      f"after the kill; what it recovered from its file:")
        show_events(c, ["supervisor", victim], wall, {"child_exited", "child_restarted", "recovered", "voting"})
        await asyncio.sleep(1.0)
        stop.set()
        await load

        say(f"Read back every acknowledged write ({len(ledger.puts)} puts, "
            f"{sum(map(len, ledger.appends.values()))} appends; {ledger.unknown} outcomes unknown)")
        await verify(kv, ledger)
        figures["writes_verified"] = len(ledger.puts) + sum(map(len, ledger.appends.values()))
        console.print("    [bold green]all acknowledged writes intact[/], every append exactly once")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--load-s", type=float, default=3.0)
    parser.add_argument("--keep", action="store_true", help="leave the cluster running at the end")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="paxos-demo-"))
    c = LocalCluster(root)
    say(f"Start a cluster of 2 proposers, 3 acceptors and 2 learners in {root}")
    up = c.up()
    if up.returncode != 0:
        console.print(up.stderr)
        return 1
    console.print("    " + up.stdout.strip())
    console.print(c.paxos("status").stdout)
    try:
        figures = uvloop.run(demo(c, args))
    finally:
        if args.keep:
            console.print(f"\ncluster left running: paxos status --config {c.config_path}")
        else:
            c.down()
    print("demo " + " ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
