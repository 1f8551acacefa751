"""`paxos trace` on a real running cluster: a few puts, then the chart of their slots shows the
leader's Accepts to the acceptors, the acceptors' Accepteds, and the slots chosen and delivered;
the same files read after `paxos down` give the same rows for those slots."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime import cli
from runtime.client import Client
from runtime.harness.local import LocalCluster
from runtime.tracechart import files, model
from runtime.tracechart.select import Selection, select


async def _puts(cluster: LocalCluster) -> None:
    async with Client(cluster.config_path, timeout_s=15) as kv:
        for i in range(3):
            await kv.put(f"k{i}", f"v{i}")


def test_trace_of_three_puts_on_a_running_cluster(running: LocalCluster, capsys: Any) -> None:
    asyncio.run(_puts(running))
    leader = running.leader()
    assert leader is not None
    config = running.config
    acceptors = {n for n, spec in config.actors.items() if spec.role == "acceptor"}
    roles = {n: spec.role for n, spec in config.actors.items()}

    def chart() -> model.Chart:
        events = files.load(running.data_dir, roles).events
        return model.build(select(events, Selection(slots=(1, 3))), roles)

    def complete() -> bool:
        rows = chart().rows
        return all(any(isinstance(r, model.Mark) and r.style == "deliver" and r.event.touches(s, s) for r in rows)
                   for s in (1, 2, 3))

    # The learners flush their trace at the end of a turn: poll until the last delivery is there.
    running.wait_for("the deliveries of slots 1..3 in the traces", complete, timeout_s=10)
    rows = chart().rows
    arrows = [r for r in rows if isinstance(r, model.Arrow)]
    assert {r.dst for r in arrows if r.src == leader and r.text.startswith("Accept ")} >= acceptors
    assert {r.src for r in arrows if r.text.startswith("Accepted") and r.status == "ok"} >= acceptors
    assert any(isinstance(r, model.Mark) and r.style == "decide" for r in rows)
    assert any(isinstance(r, model.Mark) and r.style == "fsync" and r.actor in acceptors for r in rows)

    live = running.paxos("trace", "--slot", "1..3", "--no-pager", "--width", "220")
    assert live.returncode == 0, live.stderr
    assert "├─Accept b=" in live.stdout and "Accepted b=" in live.stdout
    assert "★ chosen s=" in live.stdout and "delivered s=" in live.stdout
    header = live.stdout.splitlines()[0].split()
    assert header[0] == "ms" and header.index(leader) < min(header.index(a) for a in acceptors)

    running.down()
    config = str(running.config_path)
    capsys.readouterr()
    assert cli.main(["trace", "--config", config, "--slot", "1..3", "--no-pager", "--width", "220"]) == 0
    stopped = capsys.readouterr().out
    assert "├─Accept b=" in stopped and "★ chosen s=" in stopped
    assert cli.main(["trace", "--config", config, "--slot", "500"]) == 1
    assert "slot 500 is beyond the log" in capsys.readouterr().err
