"""Real processes, a real full disk: one acceptor keeps its files on a small tmpfs of its own
(runtime/harness/disk.py), which fills up under load. It must fail with "no space left on
device" and the path, stay failed (no restart loop), show in `paxos status`, and, once space is
freed and `paxos start` runs, come back, vote, and lose nothing that was acknowledged. Mounting
needs root or CAP_SYS_ADMIN: without it these tests skip, saying so."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.client import Client
from runtime.config import load
from runtime.harness.disk import MountUnavailable, SmallDisk
from runtime.harness.local import LocalCluster
from runtime.harness.workload import Ledger, verify, writers


def run(coro: Any) -> Any:
    import uvloop

    return uvloop.run(coro)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    try:
        disk = SmallDisk(tmp_path / "disk-a1", 16 << 20).mount()
    except MountUnavailable as exc:
        pytest.skip(f"the full-disk test needs a small disk of its own: {exc}")
    try:
        yield disk
    finally:
        disk.close()  # after the cluster's processes are gone (the test stops them first)


def test_a_full_disk_fails_one_acceptor_with_the_path_and_freeing_it_brings_it_back(
        tmp_path: Path, small_disk: SmallDisk) -> None:
    c = LocalCluster(tmp_path / "cluster")
    small_disk.place(load(c.config_path), "a1")
    wal = small_disk.path / "wal" / "a1.wal"
    ledger = Ledger()
    seen: dict[str, Any] = {}
    try:
        assert c.up().returncode == 0
        assert wal.exists() and c.wal("a1").is_symlink()  # its file really is on the small disk

        async def scenario() -> None:
            async with Client(c.config_path, timeout_s=10) as kv:
                stop = asyncio.Event()
                load_task = asyncio.create_task(writers(kv, ledger, stop))
                await ledger.progress_after(time.monotonic())
                seen["filled"] = await asyncio.to_thread(small_disk.fill)
                a1 = await asyncio.to_thread(c.wait_for, "a1 failed for its full disk",
                                             lambda: (a := c.actor("a1"))["state"] == "failed" and a)
                seen["failed"] = a1
                # The cluster goes on with a2 and a3, and a1 stays failed: no restart loop.
                await ledger.progress_after(time.monotonic())
                await ledger.progress_after(time.monotonic())
                seen["still"] = await asyncio.to_thread(c.actor, "a1")
                seen["status_text"] = (await asyncio.to_thread(c.paxos, "status")).stdout
                # Space comes back; the operator starts it.
                await asyncio.to_thread(small_disk.free)
                seen["start"] = await asyncio.to_thread(c.paxos, "start", "a1")
                await asyncio.to_thread(c.wait_for, "a1 voting again",
                                        lambda: (a := c.actor("a1"))["state"] == "running"
                                        and a["info"].get("state") == "voting")
                # Now the quorum needs a1: with a2 gone, every write goes through it.
                assert (await asyncio.to_thread(c.paxos, "kill", "a2", "--no-restart")).returncode == 0
                await asyncio.to_thread(c.wait_for, "a2 stopped", lambda: c.actor("a2")["state"] == "stopped")
                await ledger.progress_after(time.monotonic())
                stop.set()
                await load_task
                await verify(kv, ledger)

        run(scenario())
        failed = seen["failed"]
        assert "no space left on device" in failed["reason"] and str(small_disk.path) in failed["reason"]
        assert failed["disk_full"]["mount"] == str(small_disk.path)
        assert failed["disk_full"]["path"].startswith(str(small_disk.path))
        assert failed["restarts"] == 0
        assert seen["still"]["state"] == "failed" and seen["still"]["restarts"] == 0
        assert f"disk full for a1: {small_disk.path}" in seen["status_text"]
        assert seen["start"].returncode == 0, seen["start"].stderr
        assert len(ledger.puts) > 20 and ledger.appends
        # The supervisor failed it once, never restarted it on its own, and said why.
        events = [e for e in c.log_events("supervisor") if e.get("child") == "a1"]
        kinds = [e["event"] for e in events]
        assert kinds.count("child_failed") == 1 and "child_restarted" not in kinds
        assert next(e for e in events if e["event"] == "child_failed")["exit"].startswith("exit code 75")
        actor_events = c.log_events("a1")
        assert any(e["event"] == "disk_full" and e["path"].startswith(str(small_disk.path)) for e in actor_events)
        cut = [e for e in actor_events if e["event"] == "wal_tail_truncated"]
        print(f"\nfilled {seen['filled']} bytes; a1 failed: {failed['reason']}; torn tails cut on restart: {cut}")
    finally:
        c.down()


def test_a_full_disk_under_the_whole_cluster_and_its_supervisor_is_survived(tmp_path: Path) -> None:
    """Everything on one small disk (logs, stderr files, the supervisor's state, every wal): when
    it fills up, the actors that write fail with the reason, the supervisor keeps answering, and
    once space is freed `paxos start` brings every failed one back, losing nothing acknowledged."""
    try:
        disk = SmallDisk(tmp_path / "disk", 48 << 20).mount()
    except MountUnavailable as exc:
        pytest.skip(f"the full-disk test needs a small disk of its own: {exc}")
    try:
        c = LocalCluster(disk.path / "cluster")
        ledger = Ledger()
        seen: dict[str, Any] = {}
        try:
            assert c.up().returncode == 0
            acceptors = ["a1", "a2", "a3"]

            def failed() -> list[dict[str, Any]]:
                return [a for a in c.status()["actors"] if a["state"] == "failed"]

            async def scenario() -> None:
                async with Client(c.config_path, timeout_s=10) as kv:
                    stop = asyncio.Event()
                    load_task = asyncio.create_task(writers(kv, ledger, stop))
                    await ledger.progress_after(time.monotonic())
                    seen["filled"] = await asyncio.to_thread(disk.fill)
                    # A majority of acceptors fails: the cluster stops accepting writes.
                    seen["failed"] = await asyncio.to_thread(
                        c.wait_for, "a majority of acceptors failed for the full disk",
                        lambda: len([a for a in failed() if a["name"] in acceptors]) >= 2 and failed(),
                        30.0, 0.2)
                    seen["supervisor"] = c.supervisor_pid()
                    await asyncio.to_thread(disk.free)
                    for a in await asyncio.to_thread(failed):  # acceptors first: status is in config order
                        result = await asyncio.to_thread(c.paxos, "start", a["name"])
                        assert result.returncode == 0, result.stderr
                    await asyncio.to_thread(c.wait_for, "every actor running and a leader serving",
                                            lambda: (st := c.status())["leader"] and all(
                                                a["state"] == "running" for a in st["actors"]), 30.0, 0.2)
                    await ledger.progress_after(time.monotonic())
                    stop.set()
                    await load_task
                    await verify(kv, ledger)

            run(scenario())
            for a in seen["failed"]:
                assert "no space left on device" in a["reason"], a
                assert a["disk_full"] and a["disk_full"]["mount"] == str(disk.path), a
                assert a["restarts"] == 0, a
            assert seen["supervisor"] and c.supervisor_pid() == seen["supervisor"]  # the same supervisor
            assert len(ledger.puts) > 20
            dropped = [e for e in c.log_events("supervisor") if e["event"] == "log_lines_dropped"]
            print(f"\nfilled {seen['filled']} bytes; failed: {[a['name'] for a in seen['failed']]}; "
                  f"supervisor log lines dropped while full: {sum(e['lines'] for e in dropped)}")
        finally:
            c.down()
    finally:
        disk.close()


def test_the_nemesis_disk_full_fault_fills_and_frees_an_acceptors_disk(tmp_path: Path) -> None:
    """The Jepsen-style run with only this fault (it mounts its own disk, or skips saying why)."""
    history = tmp_path / "history.jsonl"
    proc = subprocess.run([sys.executable, "-m", "runtime.harness.nemesis", "--duration", "15", "--seed", "5",
                           "--faults", "disk-full", "--workers", "6", "--history", str(history)],
                          capture_output=True, text=True, timeout=240)
    if "disk-full fault skipped" in proc.stderr:
        pytest.skip(next(line for line in proc.stderr.splitlines() if "disk-full fault skipped" in line))
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert last.startswith("ops=") and last.endswith("violations=0"), proc.stdout + proc.stderr
    assert proc.returncode == 0
    assert "no space left on device" in proc.stderr and "running again" in proc.stderr, proc.stderr
    assert "could not" not in proc.stderr, proc.stderr
    events = [json.loads(line) for line in history.read_text().splitlines()]
    assert sum(1 for e in events if e["type"] == "ok") > 100
