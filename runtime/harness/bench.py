"""The benchmark: our cluster against PySyncObj, in one run, on this machine.

    scripts/bench [--config cluster.toml] [--duration-s 5] [--rounds 2] [--quick] [--no-peer]
    scripts/bench --membership     (only the membership figures: an acceptor replaced under load,
                                    a cluster grown from 3 to 5 against one started with 5)
    scripts/bench --reads [--batch N]   (only the read figures; N operations per client call,
                                    get_many / put_many, for the writes too)
    (also: paxos bench ...)

It starts clusters from the config (default: the repository's cluster.toml, on free loopback
ports in a fresh temporary data directory, fsync on), drives them with client processes through
the public client API, and prints per workload: acknowledged ops/s, latency p50/p99/p99.9,
fsyncs per acknowledged op per acceptor, and CPU seconds per 1,000 ops (all cluster processes).
The peer, PySyncObj, runs as three node processes in the same run, alternating with ours so
that machine noise hits both; it does not fsync before acknowledging, while we do (a line with
our fsync off is printed too). The same cluster without CurveZMQ (the insecure mode) alternates
with ours as well, which gives what authentication and encryption cost. Then: kill -9 of the
leading proposer to the next acknowledged write (median and worst of --kills), a killed
acceptor back and voting, and the replay speed of an acceptor file at 100k and 1M records.
The last line is machine-readable:

    bench ops_per_s=... p50_ms=... p99_ms=... fsyncs_per_op=... peer_ops_per_s=... ratio=...
          insecure_ops_per_s=... auth_cost=...

`--trace` runs only the cost of tracing (runtime/trace.py): two clusters of the config, tracing on
(as by default) and `[trace] enabled = false`, saturated in alternating --rounds (at least 2, the
order alternating too); medians of ops/s and of cluster CPU per op:

    bench-trace rounds=... on_ops_per_s=... off_ops_per_s=... on_vs_off=... on_p50_ms=... off_p50_ms=...
          on_cpu_s_per_1k=... off_cpu_s_per_1k=... cpu_on_vs_off=... trace_mb=...

`--breakdown` runs saturated writes on a cluster whose clients trace too (`[trace] clients =
true`), then reads every process's trace file (runtime/tracefiles.py) and prints p50/p99 per stage
of the sampled batches (client_to_leader, leader_queue, accept_sent, per acceptor net_to_acceptor,
persist and fsync, quorum, learner_apply, reply, reply_to_client, total) as a table and a line:

    bench-breakdown ops_per_s=... batches=... whole=... client_to_leader_p50_ms=... ..._p99_ms=...

`--web` runs only what the live page costs (runtime/harness/bench_web.py): one cluster started
with `up --web`, saturated with --tabs tabs open and with none, alternating:

    bench-web rounds=... tabs=... open_ops_per_s=... closed_ops_per_s=... open_vs_closed=... ...

`--membership` runs only the membership figures of issue 11 (1.5 to 3 minutes here; not part of
the default run, which takes 5 to 9 minutes without them). First, a 3-acceptor cluster at saturation
(--clients processes of --tasks writers of distinct keys, every acknowledged write recorded, acks
counted per 100 ms) has each original acceptor replaced in turn, add then remove (a4 for a1, a5
for a2, a6 for a3, through runtime.admin as `paxos members add|remove` does, asked again while the
leader refuses for the alpha window), 3 s before one change and 1 s + 2 s after it; then every
acknowledged write is read back. Per change: throughput in the 3 s before and in the 2 s from 1 s
after it was chosen, the time below 90% of before (over 500 ms) and the longest stretch without
an ack, each beside the same figure over the before window (the machine's noise). Second, a
3-acceptor cluster grown to 5 by two adds, settled, against one started with 5: the same saturated
load alternated --rounds times (at least 2), medians. Its line (medians over the replacements):

    bench-members replace_lost_acks=0 replace_client_errors=0 replace_unverified=0 replace_acks=...
          replaces=3 replaces_recovered=... ops_per_s_before=... ops_per_s_after_1s=...
          after_vs_before=... recovered_within_1s=true|false dip_ms=... dip_ms_before=... gap_ms=...
          gap_ms_before=... change_ms=... grown5_ops_per_s=... started5_ops_per_s=...
          grown_vs_started=...
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from runtime.harness.local import LocalCluster, free_ports
from runtime.program import quiet_on_broken_pipe

ROOT = Path(__file__).resolve().parents[2]  # the repository: runtime/harness/bench.py


@dataclass
class Result:
    name: str
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    fsyncs_per_op: float | None = None
    cpu_s_per_1k: float | None = None
    note: str = ""
    client_cpu_s_per_1k: float | None = None  # the client processes' own CPU (who saturates?)


def best_of(rounds: list[Result], note: str) -> Result:
    """The best round, noted with the range of all of them (the machine's noise)."""
    ranked = sorted(rounds, key=lambda r: r.ops_per_s)
    ranked[-1].note = note + "min-max " + " / ".join(f"{r.ops_per_s:,.0f}" for r in ranked)
    return ranked[-1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def proc_cpu_s(pids: list[int]) -> float:
    """user + system CPU seconds of live processes, from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


# --- our cluster ----------------------------------------------------------------------------


def config_text(base: Path, acceptors: int, fsync: bool, ports: dict[str, int], snapshots: bool = True,
                curve: bool = True, mode: str = "classic", trace: str = "") -> str:
    """The base config with its own endpoints and data_dir replaced: `ports` (p1, p2, a1..aN,
    l1, l2), and as many acceptors as asked; every other setting is kept but fsync (as asked),
    snapshots (off only when asked) and the restart budget."""
    text = base.read_text()
    keep: list[str] = []
    traced: list[str] = []  # the [trace] section, kept apart: its `enabled` is not the snapshots'
    skipping = in_trace = False
    for line in text.splitlines():
        if line.strip().startswith("[["):
            skipping, in_trace = True, False
        elif line.strip().startswith("["):
            skipping, in_trace = False, line.strip() == "[trace]"
        if in_trace:
            traced.append(line)
        elif not skipping:
            keep.append(line)
    body = "\n".join(keep)
    body = re.sub(r'(?m)^data_dir\s*=.*$', 'data_dir = "data"', body)
    body = re.sub(r'(?m)^fsync\s*=.*$', f"fsync = {'true' if fsync else 'false'}", body)
    # The kill figures kill each proposer ten times in a minute or two, which the default restart
    # budget rightly calls a crash loop.
    body = re.sub(r'(?m)^restart_max\s*=.*$', "restart_max = 1000", body)
    if not snapshots:
        body = re.sub(r'(?m)^enabled\s*=\s*true(.*)$', r"enabled = false\1", body)
    if mode != "classic":
        body, n = re.subn(r'(?m)^mode\s*=.*$', f'mode = "{mode}"', body)
        if not n:
            body = re.sub(r'(?m)^\[protocol\]$', f'[protocol]\nmode = "{mode}"', body)
    if not curve:  # what authentication costs: the same cluster in the explicit insecure mode
        body, n = re.subn(r'(?m)^curve\s*=.*$', "curve = false", body)
        if not n:
            body += "\n[security]\ncurve = false\n"
    body += "\n" + "\n".join(trace_section(traced, trace)) + "\n"
    actors = ["", "[[proposers]]", 'name = "p1"', "id = 1", f'endpoint = "tcp://127.0.0.1:{ports["p1"]}"', "",
              "[[proposers]]", 'name = "p2"', "id = 2", f'endpoint = "tcp://127.0.0.1:{ports["p2"]}"', ""]
    for i in range(1, acceptors + 1):
        actors += ["[[acceptors]]", f'name = "a{i}"', f'endpoint = "tcp://127.0.0.1:{ports[f"a{i}"]}"', ""]
    for i in (1, 2):
        actors += ["[[learners]]", f'name = "l{i}"', f'endpoint = "tcp://127.0.0.1:{ports[f"l{i}"]}"', ""]
    return body + "\n" + "\n".join(actors)


def trace_section(lines: list[str], trace: str) -> list[str]:
    """The base's [trace] section as `trace` asks: "" as it is, "off" (enabled = false), "on"
    (enabled = true), "clients" (enabled, and the client processes trace too)."""
    if not trace:
        return lines
    out = [line for line in lines if not re.match(r"\s*(enabled|clients)\s*=", line)] or ["[trace]"]
    return [*out, f"enabled = {'false' if trace == 'off' else 'true'}",
            f"clients = {'true' if trace == 'clients' else 'false'}"]


class Ours:
    def __init__(self, base: Path, acceptors: int = 3, fsync: bool = True, snapshots: bool = True,
                 curve: bool = True, mode: str = "classic", trace: str = "") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="paxos-bench-"))
        self.cluster = LocalCluster(self.root, acceptors=acceptors)  # picks the free ports
        self.cluster.config_path.write_text(config_text(base, acceptors, fsync, self.cluster.ports, snapshots,
                                                        curve, mode, trace))
        self.acceptors = acceptors

    def __enter__(self) -> Ours:
        up = self.cluster.up()
        if up.returncode != 0:
            raise RuntimeError(f"the cluster did not start: {up.stderr.strip()}")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cluster.down()
        shutil.rmtree(self.root, ignore_errors=True)

    def sample(self) -> tuple[list[int], int]:
        """The actors' pids, and the acceptors' fsyncs so far (one `paxos status`)."""
        actors = self.cluster.status()["actors"]
        return ([a["pid"] for a in actors if a["pid"]],
                sum(a["info"].get("fsyncs", 0) for a in actors if a["role"] == "acceptor"))

    def run(self, name: str, procs: int, tasks: int, duration_s: float, value_size: int, mix: str,
            batch: int = 1) -> Result:
        pids, fsyncs0 = self.sample()
        cpu0 = proc_cpu_s(pids)
        start_at = time.time() + 1.0  # every client process starts its clock together
        workers = [subprocess.Popen(
            [sys.executable, "-m", "runtime.harness.bench", "--worker", str(self.cluster.config_path),
             "--tasks", str(tasks), "--duration-s", str(duration_s), "--value-size", str(value_size), "--mix", mix,
             "--start-at", str(start_at), "--seed", str(i), "--batch", str(batch)], stdout=subprocess.PIPE, text=True)
            for i in range(procs)]
        outs = results_of(workers, duration_s + 120)
        cpu = proc_cpu_s(pids) - cpu0
        fsyncs = self.sample()[1] - fsyncs0
        ops = sum(o["ops"] for o in outs)
        lat = [x for o in outs for x in o["lat"]]
        client_cpu = sum(o.get("cpu_s", 0.0) for o in outs)
        return Result(name, ops / duration_s, percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 0.999),
                      fsyncs / max(ops, 1) / self.acceptors, cpu / max(ops, 1) * 1000,
                      client_cpu_s_per_1k=client_cpu / max(ops, 1) * 1000)


def results_of(workers: list[subprocess.Popen[str]], timeout_s: float) -> list[dict[str, Any]]:
    """Each client process's last line, a JSON object. All are read at once: one that finishes
    while another is still being read must not wait on a full pipe."""
    with ThreadPoolExecutor(len(workers)) as pool:
        outputs = list(pool.map(lambda w: w.communicate(timeout=timeout_s)[0], workers))
    results = []
    for w, out in zip(workers, outputs, strict=True):
        try:
            results.append(json.loads(out.strip().splitlines()[-1]))
        except (json.JSONDecodeError, IndexError):
            raise RuntimeError(f"client process {w.pid} exited {w.returncode} with {len(out)} characters of "
                               f"output, not a result: {out[-200:]!r}") from None
    return results


async def worker(config: str, tasks: int, duration_s: float, value_size: int, mix: str, start_at: float,
                 seed: int, batch: int = 1) -> dict[str, Any]:
    from runtime.client import Client

    rng = random.Random(seed)
    value = "v" * value_size
    lat: list[float] = []
    ops = 0
    fill_per_task = 1_000_000 // (2 * tasks)  # two client processes fill a million keys
    async with Client(config, timeout_s=30.0) as kv:
        await kv.put(f"warm{seed}", "x")
        await asyncio.sleep(max(0.0, start_at - time.time()))
        end = time.perf_counter() + duration_s
        cpu0 = time.process_time()  # the client's own CPU: is it the client or the cluster that saturates?
        # A load generator, not the product: with thousands of operations in flight (each an Op,
        # a command, a future, a coroutine), the default gen-0 threshold of 700 ran a collection
        # every few hundred operations, a fifth of this process's CPU, for reads and writes alike.
        # The same setting for every workload; what is created from here on is short-lived.
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)

        async def one(t: int) -> None:
            nonlocal ops
            n = 0
            while True:
                n += 1
                # "o": overwrite 1,000 keys shared by every client; "fill": a million distinct keys
                key = f"k{rng.randrange(1000)}" if mix == "o" else f"f{seed}.{t}.{n}" if mix == "fill" \
                    else f"k{rng.randrange(4)}" if mix == "few" else f"k{seed}.{t}.{n % 64}"
                t0 = time.perf_counter()
                if t0 >= end or (mix == "fill" and n > fill_per_task):
                    return
                if mix == "rw" and rng.random() < 0.5:
                    await kv.get(key, via_log=True)  # the read as a command in the log
                elif mix == "r" or (mix == "r90" and rng.random() < 0.9):
                    await kv.get(key)  # without a log write: the leader's lease (actors/lease.py)
                else:
                    await kv.put(key, value)
                t1 = time.perf_counter()
                if t1 <= end:
                    ops += 1
                    if len(lat) < 100_000:
                        lat.append((t1 - t0) * 1000)

        async def many(t: int) -> None:
            # `batch` operations per call (get_many / put_many), the same shape for reads and
            # writes: each call is all reads or all writes, 90/10 per call for "r90". A latency
            # is a call's.
            nonlocal ops
            n = 0
            # The task's 64 keys, made once: formatting them per call cost the load generator
            # more than the client library's own work per read.
            ring = [f"k{seed}.{t}.{i}" for i in range(64)] * (2 + batch // 64)
            items = [(k, value) for k in ring]
            while True:
                n += 1
                first = (n * batch) % 64
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                if mix == "r" or (mix == "r90" and rng.random() < 0.9):
                    await kv.get_many(ring[first:first + batch])
                else:
                    await kv.put_many(items[first:first + batch])
                t1 = time.perf_counter()
                if t1 <= end:
                    ops += batch
                    if len(lat) < 100_000:
                        lat.append((t1 - t0) * 1000)

        await asyncio.gather(*((many if batch > 1 else one)(t) for t in range(tasks)))
        cpu_s = time.process_time() - cpu0
    return {"ops": ops, "lat": lat, "cpu_s": cpu_s, "stats": dict(kv.stats)}


# --- the peer -------------------------------------------------------------------------------


def peer_run(name: str, mode: str, duration_s: float, value_size: int, batch: bool = True) -> Result:
    ports = free_ports(3)
    addrs = [f"127.0.0.1:{p}" for p in ports]
    nodes = []
    result_file = Path(tempfile.mkdtemp(prefix="paxos-peer-")) / "result.json"
    stderr_path = result_file.parent / "stderr.log"
    stderr = stderr_path.open("w")
    try:
        for i, me in enumerate(addrs):
            partners = ",".join(a for j, a in enumerate(addrs) if j != i)
            cmd = [sys.executable, "-m", "runtime.harness.bench_peer", "--self", me, "--partners", partners,
                   "--mode", mode, "--duration-s", str(duration_s), "--value-size", str(value_size),
                   "--out", str(result_file)]
            if not batch:
                cmd.append("--no-batch")
            # PySyncObj prints warnings of its own on followers; keep them out of the table.
            nodes.append(subprocess.Popen(cmd, stderr=stderr))
        cpu0 = proc_cpu_s([n.pid for n in nodes])
        deadline = time.monotonic() + duration_s + 60
        out = None
        while out is None and time.monotonic() < deadline:
            cpu = proc_cpu_s([n.pid for n in nodes if n.poll() is None]) - cpu0  # before the leader exits
            if result_file.exists():
                out = json.loads(result_file.read_text())
            time.sleep(0.05)
    finally:
        for n in nodes:
            if n.poll() is None:
                n.kill()
            n.wait()
        stderr.close()
        errors = stderr_path.read_text()[-2000:]
        shutil.rmtree(result_file.parent, ignore_errors=True)
    if out is None:
        raise RuntimeError(f"PySyncObj run failed, no result within {duration_s + 60:.0f} s: {errors}")
    lat = out["latencies"]
    # The leader's CPU is in its own report; the followers' is what /proc saw while it ran.
    return Result(name, out["acked"] / out["seconds"], percentile(lat, 0.5), percentile(lat, 0.99),
                  percentile(lat, 0.999), None, max(cpu, out["cpu_s"]) / max(out["acked"], 1) * 1000,
                  note="no fsync")


def peer_available() -> bool:
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        return False
    return True


# --- recovery figures -----------------------------------------------------------------------


async def recovery_times(cluster: LocalCluster, kills: int, acceptor_kills: int = 3,
                         acceptor: str = "a2") -> tuple[list[float], list[tuple[float, dict[str, Any]]]]:
    """Under a light write load (4 writers): kill -9 the leading proposer `kills` times, timing
    each to the next acknowledged write; then kill -9 `acceptor` `acceptor_kills` times, timing
    each to its `voting` log event (it answered an Accept again, after the supervisor's restart
    delay, process start and replay of its whole file)."""
    from runtime.client import Client
    from runtime.harness.workload import Ledger, writers

    leader_times: list[float] = []
    acceptor_times: list[tuple[float, dict[str, Any]]] = []  # and its `recovered` log event
    async with Client(cluster.config_path, timeout_s=20.0) as kv:
        ledger = Ledger()
        stop = asyncio.Event()
        load = asyncio.create_task(writers(kv, ledger, stop, tasks=4))
        await ledger.progress_after(time.monotonic())
        for _ in range(kills):
            def leading() -> tuple[str, int] | None:  # a leader, and its pid, once there is one
                status = cluster.status()
                return next(((a["name"], a["pid"]) for a in status["actors"]
                             if a["name"] == status.get("leader") and a["pid"]), None)

            leader, pid = await asyncio.to_thread(cluster.wait_for, "a leader", leading)
            os.kill(pid, signal.SIGKILL)
            t = time.monotonic()
            leader_times.append(await ledger.progress_after(t))
            # Wait until the killed proposer is back (a follower now) before the next kill.
            def restarted(ld: str = leader, p: int = pid) -> bool:
                a = cluster.actor(ld)
                return bool(a["state"] == "running" and a["pid"] != p and a["info"].get("state"))

            await asyncio.to_thread(cluster.wait_for, f"{leader} back", restarted)
            await asyncio.sleep(0.3)
        for _ in range(acceptor_kills):
            pid = (await asyncio.to_thread(cluster.actor, acceptor))["pid"]
            wall = time.time()
            os.kill(pid, signal.SIGKILL)

            def voting(wall: float = wall) -> tuple[float, dict[str, Any]] | None:
                events = [e for e in cluster.log_events(acceptor) if e["ts"] > wall]
                recovered = next((e for e in events if e["event"] == "recovered"), {})
                return next(((float(e["ts"]) - wall, recovered) for e in events if e["event"] == "voting"), None)

            back, recovered = await asyncio.to_thread(cluster.wait_for, f"{acceptor} voting", voting, timeout_s=60)
            acceptor_times.append((back, recovered))
        stop.set()
        await load
    return leader_times, acceptor_times


def replay_speed(records: int, per_frame: int = 100) -> float:
    """records/s to open and replay an acceptor wal of `records` accept records (16 B commands)."""
    from actors.acceptor import Acceptor
    from actors.ballot import Ballot
    from actors.messages import COMMANDS, Value
    from actors.records import AcceptRecord, Record
    from runtime import codec
    from runtime.wal import Wal, gc_paused

    tmp = Path(tempfile.mkdtemp(prefix="paxos-replay-"))
    try:
        path = tmp / "a1.wal"
        wal, _ = Wal.open(path, "acceptor", "a1", fsync=False)
        b = Ballot(1, 1)
        blob = codec.encode_client_batch("c0123456789abcde", 1, [[1, "put", "k", "v" * 16]])
        slot = 0
        for _ in range(records // per_frame):
            batch: list[Record] = []
            for _ in range(per_frame):
                slot += 1
                batch.append(AcceptRecord(b, max(0, slot - 64), ((slot, Value(COMMANDS, b, (blob,))),)))
            wal.append(batch, sync=False)
        wal.close()
        t0 = time.perf_counter()
        with gc_paused():  # as runtime/actor.py replays
            acceptor = Acceptor("a1", {"p1": 1}, [], 1 << 20)
            wal, _ = Wal.open(path, "acceptor", "a1", fsync=False, apply=acceptor.apply)
        elapsed = time.perf_counter() - t0
        wal.close()
        assert acceptor.highest_slot == slot
        return slot / elapsed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- membership change under load (issue 11) -------------------------------------------------

BUCKET_S = 0.1  # throughput is counted per 100 ms of wall time (every process shares the clock)
REPLACE_BEFORE_S = 3.0  # the "before" window ends where the change starts
REPLACE_AFTER_S = 2.0  # the "after" window starts 1 s after the change is chosen
RECOVERED = 0.9  # "back within 10% of before"
SMOOTH_S = 0.5  # the dip is counted on throughput over the last 500 ms
REPLACES = 3  # a1, a2 and a3 replaced in turn


async def acked_worker(config: str, tasks: int, start_at: float, stop_file: str, max_s: float,
                       seed: int) -> dict[str, Any]:
    """Saturated writes of distinct keys until `stop_file` exists (or `max_s`): every
    acknowledged one is remembered, counted in its 100 ms bucket, and read back at the end. Any
    exception of a write is a client error (counted by type, with the first message of each); a
    read back that fails leaves its write unverified."""
    from runtime.client import Client

    acked: list[tuple[int, int]] = []  # (task, n): key m{seed}.{task}.{n} was acknowledged with value n
    buckets: dict[int, int] = {}
    errors: dict[str, int] = {}
    first_error: dict[str, str] = {}
    stop = False


    async with Client(config, timeout_s=30.0) as kv:
        await kv.put(f"warm{seed}", "x")
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + max_s

        async def watch() -> None:
            nonlocal stop
            while not (os.path.exists(stop_file) or time.monotonic() > deadline):
                await asyncio.sleep(0.02)
            stop = True

        async def one(t: int) -> None:
            n = 0
            while not stop:
                n += 1
                try:
                    await kv.put(f"m{seed}.{t}.{n}", str(n))
                except Exception as exc:  # every kind counts as a client error
                    name = f"put {type(exc).__name__}"
                    errors[name] = errors.get(name, 0) + 1
                    first_error.setdefault(name, f"{time.time():.3f} {exc}"[:300])
                    await asyncio.sleep(0.01)
                    continue
                b = int(time.time() / BUCKET_S)
                buckets[b] = buckets.get(b, 0) + 1
                acked.append((t, n))

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(one(t) for t in range(tasks)))
        await watcher
        lost: list[str] = []
        unverified = 0

        async def check(i: int) -> None:
            nonlocal unverified
            for t, n in acked[i::tasks]:
                key = f"m{seed}.{t}.{n}"
                try:
                    value = await kv.get(key)
                except Exception as exc:  # a read that fails leaves the write unverified
                    first_error.setdefault(f"get {type(exc).__name__}", f"{time.time():.3f} {exc}"[:300])
                    unverified += 1
                    continue
                if value != str(n):
                    lost.append(f"{key}={value!r}")

        await asyncio.gather(*(check(i) for i in range(tasks)))
    return {"acks": len(acked), "buckets": {str(b): c for b, c in buckets.items()}, "errors": errors,
            "first_error": first_error, "lost": len(lost), "lost_sample": lost[:5], "unverified": unverified}


def merge_buckets(outs: list[dict[str, Any]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for o in outs:
        for b, c in o["buckets"].items():
            total[int(b)] = total.get(int(b), 0) + c
    return total


def whole_buckets(lo: float, hi: float) -> range:
    """The 100 ms buckets that lie wholly inside [lo, hi) (wall-clock seconds)."""
    return range(int(lo / BUCKET_S + 1 - 1e-9), int(hi / BUCKET_S + 1e-9))


def rate(buckets: dict[int, int], lo: float, hi: float) -> float:
    """Acknowledged ops/s over the whole 100 ms buckets inside [lo, hi)."""
    span = whole_buckets(lo, hi)
    return sum(buckets.get(b, 0) for b in span) / (len(span) * BUCKET_S) if span else 0.0


def below_ms(buckets: dict[int, int], lo: float, hi: float, floor: float) -> int:
    """Milliseconds inside [lo, hi), in 100 ms steps, at which throughput over the last 500 ms
    (one 100 ms bucket is mostly noise: clients' batches land as bursts) was below `floor` ops/s."""
    smooth = round(SMOOTH_S / BUCKET_S)
    return sum(round(BUCKET_S * 1000) for b in whole_buckets(lo, hi)
               if sum(buckets.get(b - i, 0) for i in range(smooth)) / SMOOTH_S < floor)


def longest_gap_ms(buckets: dict[int, int], lo: float, hi: float) -> int:
    """The longest run, in ms, of 100 ms buckets inside [lo, hi) in which nothing was acknowledged."""
    longest = run = 0
    for b in whole_buckets(lo, hi):
        run = run + 1 if not buckets.get(b, 0) else 0
        longest = max(longest, run)
    return longest * round(BUCKET_S * 1000)


def replace_figures(buckets: dict[int, int], change_start: float, change_done: float,
                    before_s: float = REPLACE_BEFORE_S, after_s: float = REPLACE_AFTER_S) -> dict[str, Any]:
    """One change's figures: throughput in the `before_s` before it started and in the `after_s`
    from 1 s after it was chosen, whether that is within 10% of before; the dip (time below 90%
    of before, 500 ms smoothed, from the change's start to the end of the after window) and the
    longest stretch with no acknowledgement in that span, each with the same figure over the
    before window beside it (what noise alone gives)."""
    before = rate(buckets, change_start - before_s, change_start)
    after = rate(buckets, change_done + 1.0, change_done + 1.0 + after_s)
    end = change_done + 1.0 + after_s
    return {"ops_per_s_before": before, "ops_per_s_after_1s": after,
            "after_vs_before": after / before if before else 0.0,
            "recovered_within_1s": before > 0 and after >= RECOVERED * before,
            "dip_ms": below_ms(buckets, change_start, end, RECOVERED * before),
            "dip_ms_before": below_ms(buckets, change_start - before_s, change_start, RECOVERED * before),
            "gap_ms": longest_gap_ms(buckets, change_start, end),
            "gap_ms_before": longest_gap_ms(buckets, change_start - before_s, change_start),
            "change_ms": (change_done - change_start) * 1000}


def members_change(config_path: Path, name: str, endpoint: str | None = None, timeout_s: float = 30.0,
                   within_s: float = 60.0) -> int:
    """Add acceptor `name` at `endpoint` (or remove `name`, without one) as `paxos members add|remove`
    does (runtime.admin, in this process: no interpreter start per try), asked again while the
    leader refuses for another change's alpha window. Returns how many times it was refused."""
    from runtime import admin
    from runtime.config import load

    what = f"members {'add acceptor' if endpoint else 'remove'} {name}"
    refusals = 0
    deadline = time.monotonic() + within_s
    while True:
        config = admin.in_force(load(config_path))
        try:
            current = config.current()
            new = admin.added(current, "acceptor", name, endpoint, None) if endpoint else admin.removed(current, name)
            admin.change(config, new, timeout_s)
            return refusals
        except admin.ChangeRefused as exc:
            again = "alpha window" in str(exc) or "not chosen yet" in str(exc)
            if not again or time.monotonic() > deadline:
                raise RuntimeError(f"{what}: refused after {refusals} tries: {exc}") from None
            refusals += 1
            time.sleep(0.02)
        except admin.ChangeUnknown as exc:
            raise RuntimeError(f"{what}: {exc}") from None


def first_event(cluster: LocalCluster, name: str, event: str, after: float, **fields: Any) -> float | None:
    """The wall time of `name`'s first `event` log line after `after` (with these fields)."""
    return next((float(e["ts"]) for e in cluster.log_events(name) if e["ts"] > after and e["event"] == event
                 and all(e.get(k) == v for k, v in fields.items())), None)


def replace_under_load(config: Path, clients: int, tasks: int, replaces: int = REPLACES,
                       before_s: float = REPLACE_BEFORE_S, after_s: float = REPLACE_AFTER_S) -> dict[str, Any]:
    """A 3-acceptor cluster at saturation (distinct keys, every acknowledged one recorded): while it
    runs, each original acceptor in turn is replaced (add a4, remove a1; then a5 for a2, ...), one
    replacement every before + 1 s + after; then every acknowledged write is read back."""
    changes: list[dict[str, Any]] = []
    with Ours(config) as ours:
        c = ours.cluster
        print(f"# replace under load: data in {ours.root}", file=sys.stderr)
        stop_file = ours.root / "stop"
        start_at = time.time() + 1.0
        workers = [subprocess.Popen(
            [sys.executable, "-m", "runtime.harness.bench", "--worker", str(c.config_path), "--mix", "acked",
             "--tasks", str(tasks), "--duration-s", "300", "--start-at", str(start_at), "--seed", str(i),
             "--stop-file", str(stop_file)], stdout=subprocess.PIPE, text=True) for i in range(clients)]
        try:
            next_at = start_at + 1.0 + before_s  # 1 s to ramp up, then the first before window
            for k in range(1, replaces + 1):
                old, new = f"a{k}", f"a{k + 3}"
                time.sleep(max(0.0, next_at - time.time()))
                start = time.time()
                refusals = members_change(c.config_path, new, f"tcp://127.0.0.1:{free_ports(1)[0]}")
                added = time.time()
                refusals += members_change(c.config_path, old)
                done = time.time()
                changes.append({"old": old, "new": new, "start": start, "added": added, "done": done,
                                "refusals": refusals})
                next_at = done + 1.0 + after_s + before_s
            time.sleep(max(0.0, done + 1.0 + after_s + BUCKET_S - time.time()))
        finally:
            stop_file.touch()
            outs = results_of(workers, 600)
        status = c.status()
        for ch in changes:
            ch["voting"] = first_event(c, ch["new"], "voting", ch["start"])
            ch["retired"] = first_event(c, "supervisor", "member_retired", ch["done"], child=ch["old"])
    buckets = merge_buckets(outs)
    errors: dict[str, int] = {}
    first_error: dict[str, str] = {}
    for o in outs:
        for name, n in o["errors"].items():
            errors[name] = errors.get(name, 0) + n
        first_error.update({k: v for k, v in o["first_error"].items() if k not in first_error})
    for ch in changes:
        ch.update(replace_figures(buckets, ch["start"], ch["done"], before_s, after_s))
    series_from = changes[0]["start"] - before_s
    series_to = changes[-1]["done"] + 1.0 + after_s
    median = {k: statistics.median(ch[k] for ch in changes) for k in (
        "ops_per_s_before", "ops_per_s_after_1s", "after_vs_before", "dip_ms", "dip_ms_before", "gap_ms",
        "gap_ms_before", "change_ms")}
    return median | {
        "replaces": len(changes), "recovered": sum(ch["recovered_within_1s"] for ch in changes),
        "recovered_within_1s": median["after_vs_before"] >= RECOVERED, "changes": changes,
        "acks": sum(o["acks"] for o in outs), "lost": sum(o["lost"] for o in outs),
        "lost_sample": [x for o in outs for x in o["lost_sample"]][:5],
        "unverified": sum(o["unverified"] for o in outs), "errors": errors, "first_error": first_error,
        "acceptors": {a["name"]: (a["state"], a["member"]) for a in status["actors"] if a["role"] == "acceptor"},
        "series": [buckets.get(b, 0) for b in whole_buckets(series_from, series_to)], "series_from": series_from}


def settled(cluster: LocalCluster, acceptors: list[str]) -> bool:
    """Exactly these acceptors, each running, voting and neither joining nor leaving."""
    found = {a["name"]: a for a in cluster.status()["actors"] if a["role"] == "acceptor" and a["member"] != "removed"}
    return sorted(found) == sorted(acceptors) and all(
        a["state"] == "running" and not a["member"] and a["info"].get("state") == "voting" for a in found.values())


def grown_vs_started(config: Path, clients: int, tasks: int, duration_s: float, rounds: int) -> dict[str, Any]:
    """A 3-acceptor cluster grown to 5 by two adds (then settled) against one started with 5: the
    same saturated load on each, alternated `rounds` times; the medians."""
    five = ["a1", "a2", "a3", "a4", "a5"]
    with Ours(config) as grown, Ours(config, acceptors=5) as started:
        print(f"# grown vs started: data in {grown.root} and {started.root}", file=sys.stderr)
        for name, port in zip(("a4", "a5"), free_ports(2), strict=True):
            members_change(grown.cluster.config_path, name, f"tcp://127.0.0.1:{port}")
        grown.acceptors = 5
        # The same short load on both: the grown one's change takes effect (alpha slots later)
        # and its new acceptors catch up; then every acceptor must be voting.
        for ours in (grown, started):
            ours.run("settle", clients, tasks, 2.0, 16, "w")
        for cluster in (grown.cluster, started.cluster):
            cluster.wait_for("five acceptors voting", partial(settled, cluster, five), timeout_s=60)
        g: list[Result] = []
        s: list[Result] = []
        for _ in range(rounds):
            g.append(grown.run("saturation, 16 B, 3 acceptors grown to 5", clients, tasks, duration_s, 16, "w"))
            s.append(started.run("saturation, 16 B, started with 5 acceptors", clients, tasks, duration_s, 16, "w"))
    gm, sm = statistics.median(r.ops_per_s for r in g), statistics.median(r.ops_per_s for r in s)
    return {"grown": g, "started": s, "grown5_ops_per_s": gm, "started5_ops_per_s": sm,
            "grown_vs_started": gm / sm if sm else 0.0}


def members_line(rep: dict[str, Any], grow: dict[str, Any]) -> str:
    """The machine-readable line of the membership figures (medians over the replacements)."""
    fields: dict[str, Any] = {
        "replace_lost_acks": rep["lost"], "replace_client_errors": sum(rep["errors"].values()),
        "replace_unverified": rep["unverified"], "replace_acks": rep["acks"], "replaces": rep["replaces"],
        "replaces_recovered": rep["recovered"], "ops_per_s_before": rep["ops_per_s_before"],
        "ops_per_s_after_1s": rep["ops_per_s_after_1s"], "after_vs_before": rep["after_vs_before"],
        "recovered_within_1s": rep["recovered_within_1s"], "dip_ms": rep["dip_ms"],
        "dip_ms_before": rep["dip_ms_before"], "gap_ms": rep["gap_ms"], "gap_ms_before": rep["gap_ms_before"],
        "change_ms": rep["change_ms"], "grown5_ops_per_s": grow["grown5_ops_per_s"],
        "started5_ops_per_s": grow["started5_ops_per_s"], "grown_vs_started": grow["grown_vs_started"]}

    def show_value(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else f"{v:.4g}" if isinstance(v, float) else str(v)

    return "bench-members " + " ".join(f"{k}={show_value(v)}" for k, v in fields.items())


def membership_bench(config: Path, clients: int, tasks: int, duration_s: float, rounds: int) -> str:
    """Both membership figures, their human-readable lines printed; returns the machine-readable one."""
    rep = replace_under_load(config, clients, tasks)
    grow = grown_vs_started(config, clients, tasks, duration_s, rounds)
    print(f"replace each original acceptor under saturated load ({rep['replaces']} replacements, add then remove): "
          f"{rep['acks']:,} acknowledged writes, {rep['lost']} lost, {rep['unverified']} not read back, client "
          f"errors {rep['errors'] or 'none'}" + (f" (first: {rep['first_error']})" if rep["first_error"] else ""))
    if rep["lost_sample"]:
        print(f"  lost, for example: {', '.join(rep['lost_sample'])}")
    for ch in rep["changes"]:
        voting = "never" if ch["voting"] is None else f"{(ch['voting'] - ch['start']) * 1000:.0f} ms"
        retired = "not yet" if ch["retired"] is None else f"{(ch['retired'] - ch['done']) * 1000:.0f} ms"
        print(f"  {ch['old']} -> {ch['new']}: add chosen in {(ch['added'] - ch['start']) * 1000:.0f} ms, remove in "
              f"{(ch['done'] - ch['added']) * 1000:.0f} ms ({ch['refusals']} alpha-window refusals); "
              f"{ch['new']} voting {voting} after the start, {ch['old']} retired {retired} after its removal. "
              f"{ch['ops_per_s_before']:,.0f} ops/s in the {REPLACE_BEFORE_S:g} s before, "
              f"{ch['ops_per_s_after_1s']:,.0f} in the {REPLACE_AFTER_S:g} s from 1 s after "
              f"({ch['after_vs_before']:.2f}: {'within' if ch['recovered_within_1s'] else 'NOT within'} 10%); "
              f"below 90% for {ch['dip_ms']} ms from the start to the end of that window (before: "
              f"{ch['dip_ms_before']} ms), longest stretch without an ack {ch['gap_ms']} ms "
              f"(before: {ch['gap_ms_before']} ms)")
    print(f"  acceptors at the end: {rep['acceptors']}")
    marks = ", ".join(f"{ch['start'] - rep['series_from']:.1f}-{ch['done'] - rep['series_from']:.1f} s"
                      for ch in rep["changes"])
    print(f"  acks per 100 ms from {REPLACE_BEFORE_S:g} s before the first change (changes at {marks}): "
          + " ".join(str(n) for n in rep["series"]))
    print(f"grown 3 to 5 vs started with 5, {rounds} alternated rounds of {duration_s:g} s: grown "
          + " / ".join(f"{r.ops_per_s:,.0f}" for r in grow["grown"]) + " ops/s, started "
          + " / ".join(f"{r.ops_per_s:,.0f}" for r in grow["started"])
          + f" ops/s; medians {grow['grown5_ops_per_s']:,.0f} and {grow['started5_ops_per_s']:,.0f}, "
          f"ratio {grow['grown_vs_started']:.3f}")
    return members_line(rep, grow)


# --- the report -----------------------------------------------------------------------------


def show(results: list[Result]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="benchmark (acknowledged operations; latencies in ms)")
    for col in ("workload", "ops/s", "p50", "p99", "p99.9", "fsyncs/op/acceptor", "CPU s/1k ops", "note"):
        table.add_column(col, justify="right" if col not in ("workload", "note") else "left")
    for r in results:
        table.add_row(r.name, f"{r.ops_per_s:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.p999_ms:.2f}",
                      "-" if r.fsyncs_per_op is None else f"{r.fsyncs_per_op:.4f}",
                      "-" if r.cpu_s_per_1k is None else f"{r.cpu_s_per_1k:.3f}", r.note)
    Console(width=max(Console().width, 150)).print(table)


def positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such config file: {text}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=existing_file, default=ROOT / "cluster.toml")
    parser.add_argument("--duration-s", type=positive(float), default=5.0)
    parser.add_argument("--rounds", type=positive(int), default=2, help="alternating rounds of ours and the peer")
    parser.add_argument("--clients", type=positive(int), default=2, help="client processes for saturation")
    parser.add_argument("--tasks", type=positive(int), default=2048, help="concurrent operations per client process")
    parser.add_argument("--kills", type=positive(int), default=20)
    parser.add_argument("--quick", action="store_true", help="saturation, latency and the peer only")
    parser.add_argument("--long-commands", type=positive(int), default=10_000_000,
                        help="commands of the long run (1,000 keys overwritten); it is left out with --quick")
    parser.add_argument("--no-long", action="store_true", help="leave out the long run and the catch-up")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--membership", action="store_true",
                        help="only the membership figures: an acceptor replaced under saturated load, and a cluster "
                             "grown from 3 to 5 acceptors against one started with 5")
    parser.add_argument("--fast", action="store_true",
                        help="only the Fast Paxos figures: fast mode against classic on the same acceptors")
    parser.add_argument("--acceptors", type=positive(int), default=4, help="acceptors for --fast (at least 4)")
    parser.add_argument("--reads", action="store_true",
                        help="only the read figures: saturated writes, 100%% reads and a 90/10 mix, and one "
                             "sequential writer against one sequential reader (about a minute)")
    parser.add_argument("--trace", action="store_true",
                        help="only the tracing cost: saturated throughput with tracing on (the default config) and "
                             "off, alternating --rounds times in one run")
    parser.add_argument("--breakdown", action="store_true",
                        help="only where the time goes: saturated load with clients tracing too, then p50/p99 per "
                             "stage of the sampled requests, from the trace files")
    parser.add_argument("--web", action="store_true",
                        help="only what the live page costs: saturated throughput with --tabs tabs open and with none, "
                             "alternating --rounds times on one cluster started with `up --web`")
    parser.add_argument("--tabs", type=positive(int), default=3, help="with --web: tabs open (event streams)")
    parser.add_argument("--batch", type=positive(int), default=1,
                        help="with --reads: operations per client call (get_many / put_many, for the writes too); "
                             "--tasks is then split into calls of that many (default 1: one get or put per call)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--value-size", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--mix", default="w", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import uvloop

    if args.batch != 1 and not (args.reads or args.worker):
        # The full run compares against unbatched writes: a batched side would not be like for like.
        parser.error("--batch is for --reads only")
    if args.worker and args.mix == "acked":
        print(json.dumps(uvloop.run(acked_worker(args.worker, args.tasks, args.start_at, args.stop_file,
                                                 args.duration_s, args.seed))), flush=True)
        return 0
    if args.worker:
        out = uvloop.run(worker(args.worker, args.tasks, args.duration_s, args.value_size, args.mix,
                                args.start_at, args.seed, args.batch))
        out["lat"] = [round(x, 4) for x in out["lat"]]
        # A long line must leave whole: straight to the descriptor, in blocking mode, until every
        # byte is written (through sys.stdout, a partial write to the pipe once lost the rest).
        sys.stdout.flush()
        fd = sys.stdout.fileno()
        os.set_blocking(fd, True)
        data = memoryview((json.dumps(out) + "\n").encode())
        while data:
            data = data[os.write(fd, data):]
        return 0
    try:
        if args.membership:
            print(membership_bench(args.config, args.clients, args.tasks, args.duration_s, max(2, args.rounds)))
            return 0
        if args.fast:
            print(fast_bench(args.config, max(4, args.acceptors), args.duration_s, max(2, args.rounds), 16))
            return 0
        if args.reads:
            return reads_bench(args)
        if args.trace:
            return trace_bench(args)
        if args.breakdown:
            return breakdown_bench(args)
        if args.web:
            from runtime.harness.bench_web import web_bench

            return web_bench(args)
        return run_bench(args)
    except RuntimeError as exc:  # a cluster or the peer did not start: say why, without a traceback
        print(f"bench: {exc}", file=sys.stderr)
        return 1


def reads_figures(ours: Ours, args: argparse.Namespace, sat_write: list[Result], seq_write: Result) -> str:
    """Reads without a log write against writes, on the same cluster: saturated 100% reads and a
    90/10 read/write mix, after the saturated writes of `sat_write`, and one sequential reader
    against `seq_write`. Prints the table rows; returns the line."""
    d = args.duration_s
    reads: list[Result] = []
    mix: list[Result] = []
    for rnd in range(args.rounds):
        print(f"# round {rnd + 1}: reads", file=sys.stderr)
        reads.append(ours.run("saturation, 100% reads (lease, no log write)", args.clients, args.tasks, d, 16, "r"))
        mix.append(ours.run("saturation, 90% reads / 10% writes", args.clients, args.tasks, d, 16, "r90"))
    seq_read = ours.run("sequential reads, 1 client (lease)", 1, 1, d, 16, "r")
    return reads_line(sat_write, reads, mix, seq_write, seq_read, 1)


def reads_line(writes: list[Result], reads: list[Result], mix: list[Result], seq_write: Result, seq_read: Result,
               batch: int) -> str:
    """The table and the `bench-reads` line: the best round of each saturated workload, and the
    median over rounds of each round's ratio (round i's reads against round i's writes: the
    machine's drift falls on both sides of it)."""
    ratios_r = [r.ops_per_s / w.ops_per_s for r, w in zip(reads, writes, strict=False)]
    ratios_m = [m.ops_per_s / w.ops_per_s for m, w in zip(mix, writes, strict=False)]
    w, r, m = best_of(writes, ""), best_of(reads, ""), best_of(mix, "")
    show([w, r, m, seq_write, seq_read])
    figures = {"write_ops_per_s": w.ops_per_s, "read_ops_per_s": r.ops_per_s,
               "read_vs_write": r.ops_per_s / w.ops_per_s, "mix90_ops_per_s": m.ops_per_s,
               "mix90_vs_write": m.ops_per_s / w.ops_per_s, "seq_write_p50_ms": seq_write.p50_ms,
               "seq_read_p50_ms": seq_read.p50_ms, "read_p50_vs_write": seq_read.p50_ms / seq_write.p50_ms,
               "read_p99_ms": r.p99_ms, "write_p99_ms": w.p99_ms, "batch": batch,
               "read_vs_write_median": statistics.median(ratios_r),
               "mix90_vs_write_median": statistics.median(ratios_m)}
    # CPU µs per operation of the cluster's processes and of the client processes (the best
    # round of each workload): which side saturated.
    for name, res in (("write", w), ("read", r), ("mix90", m)):
        figures[f"{name}_cluster_us_per_op"] = (res.cpu_s_per_1k or 0.0) * 1000  # s per 1k ops -> µs per op
        figures[f"{name}_client_us_per_op"] = (res.client_cpu_s_per_1k or 0.0) * 1000
    return "bench-reads " + " ".join(f"{k}={v:.4g}" for k, v in figures.items())


def reads_bench(args: argparse.Namespace) -> int:
    """`--reads`: only the read figures. Each round runs saturated writes, 100% reads and the
    90/10 mix back to back on one cluster (so a round's ratios share the machine's mood); then one
    sequential writer and one sequential reader. With `--batch N` every saturated workload, the
    writes too, makes calls of N operations (`get_many`, `put_many`) from `--tasks / N` tasks per
    client process; the sequential ones stay at one operation per call."""
    d, batch = args.duration_s, args.batch
    tasks = max(1, args.tasks // batch)
    writes: list[Result] = []
    reads: list[Result] = []
    mix: list[Result] = []
    with Ours(args.config) as ours:
        print(f"# our cluster: {args.config} on free ports, data in {ours.root}", file=sys.stderr)
        for rnd in range(args.rounds):
            print(f"# round {rnd + 1}: writes, reads, 90/10 (batch {batch})", file=sys.stderr)
            writes.append(ours.run("saturation, 16 B, 3 acceptors (writes)", args.clients, tasks, d, 16, "w", batch))
            reads.append(ours.run("saturation, 100% reads (lease, no log write)", args.clients, tasks, d, 16, "r",
                                  batch))
            mix.append(ours.run("saturation, 90% reads / 10% writes", args.clients, tasks, d, 16, "r90", batch))
        seq = ours.run("sequential, 1 client, 16 B (writes)", 1, 1, d, 16, "w")
        seq_read = ours.run("sequential reads, 1 client (lease)", 1, 1, d, 16, "r")
        line = reads_line(writes, reads, mix, seq, seq_read, batch)
    print(line)
    return 0


def run_bench(args: argparse.Namespace) -> int:
    import uvloop

    d = args.duration_s
    peer = peer_available() and not args.no_peer
    if not peer and not args.no_peer:
        print("# PySyncObj is not installed (pip install -e '.[bench]'): no peer figures", file=sys.stderr)
    results: list[Result] = []
    sat_ours: list[Result] = []
    sat_peer: list[Result] = []
    sat_insecure: list[Result] = []
    with Ours(args.config) as ours, Ours(args.config, curve=False) as insecure:
        print(f"# our cluster: {args.config} on free ports, data in {ours.root}", file=sys.stderr)
        for rnd in range(args.rounds):
            print(f"# round {rnd + 1}: saturation", file=sys.stderr)
            sat_ours.append(ours.run("saturation, 16 B, 3 acceptors", args.clients, args.tasks, d, 16, "w"))
            # Rounds alternate, so that drift in the machine falls on both sides of the ratio.
            sat_insecure.append(insecure.run("saturation, 16 B, no CurveZMQ (insecure mode)", args.clients,
                                             args.tasks, d, 16, "w"))
            if peer:
                sat_peer.append(peer_run("PySyncObj saturation, 16 B", "saturate", d, 16))
        seq = ours.run("sequential, 1 client, 16 B", 1, 1, d, 16, "w")
        reads_line = reads_figures(ours, args, sat_ours, seq)
        if not args.quick:
            mixed = ours.run("mixed 50% reads through the log, 16 B", args.clients, args.tasks, d, 16, "rw")
            kib = ours.run("saturation, 1 KiB", args.clients, args.tasks, d, 1024, "w")
            big = ours.run("saturation, 64 KiB", args.clients, 16, d, 64 * 1024, "w")
            kill_times, back = uvloop.run(recovery_times(ours.cluster, args.kills))
    best = best_of(sat_ours, "")
    best_insecure = best_of(sat_insecure, "")
    results += [best, best_insecure, seq]
    peer_best = None
    if peer:
        peer_best = best_of(sat_peer, "no fsync; ")
        results.append(peer_best)
        results.append(peer_run("PySyncObj sequential (default)", "sequential", d, 16))
        results.append(peer_run("PySyncObj sequential, batching off", "sequential", d, 16, batch=False))
    if not args.quick:
        results += [mixed, kib, big]
        if peer:
            results.append(peer_run("PySyncObj mixed (local reads)", "mixed", d, 16))
        for n in (5, 7):
            with Ours(args.config, acceptors=n) as ours_n:
                results.append(ours_n.run(f"saturation, 16 B, {n} acceptors", args.clients, args.tasks, d, 16, "w"))
        with Ours(args.config, fsync=False) as nofs:
            r = nofs.run("saturation, 16 B, fsync OFF (like PySyncObj)", args.clients, args.tasks, d, 16, "w")
            r.note = "like-for-like"
            results.append(r)
    show(results)
    line = {"ops_per_s": best.ops_per_s, "p50_ms": seq.p50_ms, "p99_ms": seq.p99_ms,
            "fsyncs_per_op": best.fsyncs_per_op, "peer_ops_per_s": peer_best.ops_per_s if peer_best else 0.0,
            "ratio": best.ops_per_s / peer_best.ops_per_s if peer_best else 0.0,
            "insecure_ops_per_s": best_insecure.ops_per_s,
            "auth_cost": 1 - best.ops_per_s / best_insecure.ops_per_s if best_insecure.ops_per_s else 0.0}
    if not args.quick:
        # Three tries each (the best, and the range: this is where machine noise shows most).
        tries = {n: sorted(replay_speed(n) for _ in range(3)) for n in (100_000, 1_000_000)}
        replay = {n: t[-1] for n, t in tries.items()}
        print(f"leader kill -9 to next acknowledged write, {len(kill_times)} kills: median "
              f"{statistics.median(kill_times) * 1000:.0f} ms, worst {max(kill_times) * 1000:.0f} ms")
        replays = ", ".join(f"{e.get('wal_bytes', 0) / 1e6:.0f} MB in {e.get('seconds')} s" for _, e in back)
        print(f"killed acceptor back and voting: {', '.join(f'{b * 1000:.0f} ms' for b, _ in back)} "
              f"(each replayed its whole file: {replays})")
        print("acceptor replay, best of 3: " + ", ".join(
            f"{n:,} records {t[-1]:,.0f} records/s (min-max {t[0]:,.0f} / {t[-1]:,.0f})" for n, t in tries.items()))
        line.update(kill_median_ms=statistics.median(kill_times) * 1000, kill_worst_ms=max(kill_times) * 1000,
                    acceptor_back_ms=statistics.median(b for b, _ in back) * 1000, replay_100k_per_s=replay[100_000],
                    replay_1m_per_s=replay[1_000_000])
    if not args.quick and not args.no_long:
        lr = long_run(args.config, args.long_commands, args.clients, args.tasks)
        cu = catch_up(args.config, args.tasks)
        for done, usage in lr["samples"]:
            worst_file = max(usage.items(), key=lambda kv: kv[1][0])
            worst_rss = max(usage.items(), key=lambda kv: kv[1][1])
            print(f"long run at {done:,} commands: largest files {worst_file[0]} {worst_file[1][0] / 1e6:.1f} MB, "
                  f"largest RSS {worst_rss[0]} {worst_rss[1][1] / 1e6:.0f} MB")
        print("long run: acceptor kill -9 to voting " + ", ".join(f"{ms:.0f} ms at {n:,}" for n, ms in lr["backs"]))
        print(f"long run: saturated {lr['on_ops_per_s']:,.0f} ops/s with snapshots "
              f"(worst p99 {lr['on_p99_ms']:.1f} ms), {lr['off_ops_per_s']:,.0f} without "
              f"(worst p99 {lr['off_p99_ms']:.1f} ms), last 3 segments of 5 s each")
        print(f"catch-up: a wiped learner fetched and restored {cu['bytes'] / 1e6:.0f} MB ({cu['keys']:,.0f} keys) "
              f"in {cu['transfer_s']:.2f} s ({cu['mb_per_s']:.0f} MB/s; reading, checking and applying that file "
              f"alone takes {cu['restore_s']:.2f} s) and served {cu['wipe_to_serving_s']:.1f} s after the wipe")
        end_usage = lr["samples"][-1][1]
        print("bench-long " + " ".join(f"{k}={v:.4g}" for k, v in {
            "commands": float(lr["samples"][-1][0]),
            "files_mb_max": max(f for f, _ in end_usage.values()) / 1e6,
            "rss_mb_max": max(m for _, m in end_usage.values()) / 1e6,
            "acceptor_back_ms_first": lr["backs"][0][1], "acceptor_back_ms_last": lr["backs"][-1][1],
            "snapshots_on_ops_per_s": lr["on_ops_per_s"], "snapshots_off_ops_per_s": lr["off_ops_per_s"],
            "snapshots_on_p99_ms": lr["on_p99_ms"], "snapshots_off_p99_ms": lr["off_p99_ms"],
            "catch_up_mb_per_s": cu["mb_per_s"], "catch_up_mb": cu["bytes"] / 1e6}.items()))
    print(reads_line)
    print("bench " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items()))
    return 0



# --- Fast Paxos against classic, in one run ----------------------------------------------------


def fast_stats(ours: Ours) -> dict[str, int]:
    """The leaders' fast-round counters (actors/proposer.py `fast_stats`), summed over proposers."""
    out: dict[str, int] = {}
    for a in ours.cluster.status()["actors"]:
        if a["role"] == "proposer":
            for k, v in a["info"].items():
                if k.startswith("fast_") and isinstance(v, int) and not isinstance(v, bool):
                    out[k[5:]] = out.get(k[5:], 0) + v
    return out


def fast_bench(config: Path, acceptors: int, duration_s: float, rounds: int, clients: int) -> str:
    """Fast mode against classic with the same acceptors, rounds alternating: one sequential client
    (a write's p50: one message delay fewer), and `clients` client processes writing 4 keys at once
    (collisions, and what they cost)."""
    seq: dict[str, list[Result]] = {"classic": [], "fast": []}
    many: dict[str, list[Result]] = {"classic": [], "fast": []}
    counters: dict[str, int] = {}
    with Ours(config, acceptors=acceptors) as classic, Ours(config, acceptors=acceptors, mode="fast") as fast:
        for rnd in range(rounds):
            print(f"# fast bench round {rnd + 1}", file=sys.stderr)
            for name, ours in (("classic", classic), ("fast", fast)):
                seq[name].append(ours.run(f"sequential, 1 client, {name}", 1, 1, duration_s, 16, "w"))
            for name, ours in (("classic", classic), ("fast", fast)):
                many[name].append(ours.run(f"{clients} clients on 4 keys, {name}", clients, 1, duration_s, 16,
                                           "few"))
        counters = fast_stats(fast)
    p50 = {k: statistics.median(r.p50_ms for r in v) for k, v in seq.items()}
    ops = {k: statistics.median(r.ops_per_s for r in v) for k, v in many.items()}
    show([*seq["classic"], *seq["fast"], *many["classic"], *many["fast"]])
    writes = sum(r.ops_per_s * duration_s for r in many["fast"])
    line = {"acceptors": acceptors, "classic_p50_ms": p50["classic"], "fast_p50_ms": p50["fast"],
            "fast_vs_classic_p50": p50["fast"] / p50["classic"], "clients": clients,
            "classic_many_ops_per_s": ops["classic"], "fast_many_ops_per_s": ops["fast"],
            "collisions": counters.get("collisions", 0),
            "collision_rate": counters.get("collisions", 0) / max(writes, 1.0),
            "recovered_coordinated": counters.get("coordinated", 0),
            "recovered_new_ballot": counters.get("new_ballot", 0), "fallbacks": counters.get("fallbacks", 0),
            "fast_chosen": counters.get("fast_chosen", 0)}
    return "bench-fast " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items())


# --- the long run: cost follows the state, not the history ------------------------------------


def actor_usage(ours: Ours) -> dict[str, tuple[int, int]]:
    """Per actor: (bytes of its files, resident memory in bytes)."""
    out = {}
    for a in ours.cluster.status()["actors"]:
        rss = 0
        try:
            for line in Path(f"/proc/{a['pid']}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        except (FileNotFoundError, TypeError):
            pass
        out[a["name"]] = (int(a["info"].get("file_bytes") or a["info"].get("wal_bytes") or 0), rss)
    return out


def acceptor_back_ms(cluster: LocalCluster, name: str) -> float:
    """kill -9 to its first answered Accept (`voting`), restart delay and replay included."""
    pid = cluster.actor(name)["pid"]
    wall = time.time()
    os.kill(pid, signal.SIGKILL)

    def voting() -> float | None:
        return next((float(e["ts"]) - wall for e in cluster.log_events(name)
                     if e["ts"] > wall and e["event"] == "voting"), None)

    return float(cluster.wait_for(f"{name} voting", voting, timeout_s=60)) * 1000


def long_run(config: Path, commands: int, clients: int, tasks: int, segment_s: float = 5.0) -> dict[str, Any]:
    """1,000 keys overwritten at saturation for `commands` acknowledged commands. Files and memory
    per actor at 1M, 5M and the end; an acceptor's kill -9 to voting at 1M and at the end; the
    throughput of the last segments, against the same load with snapshots off (in this run)."""
    marks = [m for m in (1_000_000, 5_000_000) if m < commands] + [commands]
    samples: list[tuple[int, dict[str, tuple[int, int]]]] = []
    backs: list[tuple[int, float]] = []
    rates: list[Result] = []
    done = 0
    with Ours(config) as ours:
        print(f"# long run: {commands:,} commands on 1,000 keys, data in {ours.root}", file=sys.stderr)
        while marks:
            r = ours.run("long", clients, tasks, segment_s, 16, "o")
            done += int(r.ops_per_s * segment_s)
            rates.append(r)
            if done >= marks[0]:
                time.sleep(1.0)  # let the last snapshot and compaction of the segment land
                samples.append((done, actor_usage(ours)))
                if not backs or len(marks) == 1:  # at the first mark and at the end
                    backs.append((done, acceptor_back_ms(ours.cluster, "a3")))
                print(f"# {done:,} commands: " + ", ".join(f"{n} {f / 1e6:.1f} MB {m / 1e6:.0f} MB RSS"
                                                          for n, (f, m) in samples[-1][1].items()), file=sys.stderr)
                marks.pop(0)
    # Snapshots come every few seconds at this rate (every_bytes of decided values), so each
    # segment holds some: its p99 is the latency while they are taken.
    with Ours(config, snapshots=False) as off:
        off_rates = [off.run("long, snapshots off", clients, tasks, segment_s, 16, "o") for _ in range(3)]
    return {"samples": samples, "backs": backs, "on_ops_per_s": statistics.mean(r.ops_per_s for r in rates[-3:]),
            "off_ops_per_s": statistics.mean(r.ops_per_s for r in off_rates),
            "on_p99_ms": max(r.p99_ms for r in rates[-3:]), "off_p99_ms": max(r.p99_ms for r in off_rates)}


def catch_up(config: Path, tasks: int) -> dict[str, float]:
    """A learner wiped under a state of a million keys (~100 B each) catches up by snapshot: the
    rate of the transfer itself, and the time from the wipe until it serves again."""
    with Ours(config) as ours:
        c = ours.cluster
        ours.run("fill", 2, tasks, 120.0, 100, "fill")
        filled = c.wait_for("l1's delivered slot", lambda: c.actor("l1")["info"].get("delivered"))
        # Overwrite a few keys until the acceptors hold a snapshot of the whole filled state.
        deadline = time.monotonic() + 180
        while c.wait_for("a3's snapshot", lambda: c.actor("a3")["info"].get("snapshot_slot")) < filled:
            if time.monotonic() > deadline:
                raise RuntimeError("no snapshot of the filled state within 180 s")
            ours.run("top up", 1, 256, 3.0, 16, "o")
        target = c.wait_for("l1's delivered slot", lambda: c.actor("l1")["info"].get("delivered"))
        wall = time.time()
        c.paxos("wipe", "l2", check=True)
        c.wait_for("l2 caught up", lambda: c.actor("l2")["info"].get("delivered", 0) >= target, timeout_s=180)
        serving = time.time() - wall
        assert c.paxos("put", "after", "catch-up").returncode == 0
        events = [e for e in c.log_events("l2") if e["ts"] > wall]
        start = next(e for e in events if e["event"] == "snapshot_fetch_started")
        received = next(e for e in events if e["event"] == "snapshot_received")
        installed = next(e for e in events if e["event"] == "snapshot_installed")
        # Events carry the time of the turn that logged them: the receipt of the last chunk and the
        # restore share one, so `seconds` covers both; the restore alone is timed again below.
        seconds = float(received["ts"]) - float(start["ts"])
        return {"bytes": float(installed["bytes"]), "keys": float(installed["keys"]), "transfer_s": seconds,
                "mb_per_s": installed["bytes"] / 1e6 / seconds, "wipe_to_serving_s": serving,
                "restore_s": restore_s(c.config_path, "l2", int(installed["slot"]))}


def restore_s(config_path: Path, name: str, slot: int) -> float:
    """Seconds to read, check, decode and apply a learner's snapshot file, in this process."""
    from actors.kv import KVStore
    from runtime.config import load
    from runtime.storage import DiskStorage, SnapshotDir

    config = load(config_path)
    t0 = time.perf_counter()
    state = SnapshotDir(DiskStorage(), config.snapshot_dir(name)).load(slot)
    KVStore(config.limits.key_bytes_max, config.limits.value_bytes_max).restore(state[4])
    return time.perf_counter() - t0

# --- tracing ------------------------------------------------------------------------------


def show_pair(a_name: str, a_runs: list[Result], b_name: str, b_runs: list[Result]) -> tuple[float, float]:
    """The table of two alternated sides (each one's best round, noted with its median and range),
    and the two medians of ops/s (`--trace`, `--web`)."""
    rows = []
    for name, runs in ((a_name, a_runs), (b_name, b_runs)):
        best = best_of(runs, f"median {statistics.median(r.ops_per_s for r in runs):,.0f}; ")
        best.name = f"saturation, 16 B, {name}"
        rows.append(best)
    show(rows)
    return statistics.median(r.ops_per_s for r in a_runs), statistics.median(r.ops_per_s for r in b_runs)


def trace_bytes(ours: Ours) -> int:
    return sum(f.stat().st_size for f in (ours.cluster.data_dir / "logs").glob("*.trace*"))


def traced_s(ours: Ours) -> tuple[float, float]:
    """The actors' seconds spent tracing so far (their StatusReply's `trace_s`) and their CPU
    seconds so far (from /proc)."""
    actors = ours.cluster.status()["actors"]
    return (sum(float(a["info"].get("trace_s", 0.0)) for a in actors),
            proc_cpu_s([a["pid"] for a in actors if a["pid"]]))


def trace_bench(args: argparse.Namespace) -> int:
    """`--trace`: what tracing costs at saturation. Two clusters of the same config, one with
    tracing on (the default) and one with `[trace] enabled = false`, measured in alternating
    rounds (which one goes first alternates too, so drift falls on both); medians."""
    d = args.duration_s
    rounds = max(2, args.rounds)
    on_runs: list[Result] = []
    off_runs: list[Result] = []
    shares: list[float] = []  # of the tracing cluster's CPU, the part its tracing code took
    with Ours(args.config, trace="on") as on, Ours(args.config, trace="off") as off:
        print(f"# tracing on: data in {on.root}; off: {off.root}", file=sys.stderr)
        for rnd in range(rounds):
            print(f"# round {rnd + 1}: saturation, tracing on and off", file=sys.stderr)
            pair = [(on, on_runs, "on"), (off, off_runs, "off")]
            for ours, runs, name in pair if rnd % 2 == 0 else pair[::-1]:
                before = traced_s(ours) if ours is on else None
                runs.append(ours.run(f"saturation, 16 B, tracing {name}", args.clients, args.tasks, d, 16, "w"))
                if before is not None:
                    spent_s, cpu_s = (b - a for a, b in zip(before, traced_s(on), strict=True))
                    shares.append(spent_s / max(1e-9, cpu_s))
        written = trace_bytes(on)
        assert trace_bytes(off) == 0, "a cluster with tracing off wrote trace files"
    med_on, med_off = show_pair("tracing on", on_runs, "tracing off", off_runs)
    figures = {"on_ops_per_s": med_on, "off_ops_per_s": med_off, "on_vs_off": med_on / med_off,
               "on_p50_ms": statistics.median(r.p50_ms for r in on_runs),
               "off_p50_ms": statistics.median(r.p50_ms for r in off_runs),
               "on_cpu_s_per_1k": statistics.median(r.cpu_s_per_1k or 0 for r in on_runs),
               "off_cpu_s_per_1k": statistics.median(r.cpu_s_per_1k or 0 for r in off_runs),
               # CPU per op of the cluster's processes: less at the mercy of a shared machine than ops/s.
               "cpu_on_vs_off": statistics.median(r.cpu_s_per_1k or 0 for r in on_runs)
               / max(1e-9, statistics.median(r.cpu_s_per_1k or 0 for r in off_runs)),
               # Each round's on against the off run next to it: what drift between rounds leaves out.
               "pair_ratio_median": statistics.median(a.ops_per_s / b.ops_per_s for a, b in zip(on_runs, off_runs,
                                                                                                   strict=True)),
               # Time in the tracing code over the tracing cluster's CPU, as the actors measure it:
               # the cost itself, where ops/s and CPU per op carry the machine's noise.
               "trace_cpu_share": statistics.median(shares),
               "trace_mb": written / 1e6}
    print(f"bench-trace rounds={rounds} " + " ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    return 0


def breakdown_table(stages: dict[str, list[float]], followed: int, whole: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from runtime.tracefiles import stage_order

    table = Table(title=f"where the time goes: {followed} sampled batches of writes, {whole} end to end (ms)")
    for col in ("stage", "n", "p50", "p99", "max"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name in sorted(stages, key=stage_order):
        v = stages[name]
        table.add_row(name, str(len(v)), f"{percentile(v, 0.5):.3f}", f"{percentile(v, 0.99):.3f}", f"{max(v):.3f}")
    Console(width=max(Console().width, 100)).print(table)


def breakdown_line(stages: dict[str, list[float]], followed: int, whole: int, ops_per_s: float) -> str:
    """The machine-readable line: every stage's p50 and p99 (an acceptor's stages pooled over the
    acceptors: `persist_p50_ms`; each one's too: `a1.persist_p50_ms`)."""
    from runtime.tracefiles import stage_order

    pooled: dict[str, list[float]] = {}
    for name, v in stages.items():
        if "." in name:
            pooled.setdefault(name.split(".", 1)[1], []).extend(v)
    figures: dict[str, float] = {"ops_per_s": ops_per_s, "batches": followed, "whole": whole}
    for name in sorted({**stages, **pooled}, key=stage_order):
        v = pooled.get(name) or stages[name]
        figures[f"{name}_p50_ms"] = percentile(v, 0.5)
        figures[f"{name}_p99_ms"] = percentile(v, 0.99)
    return "bench-breakdown " + " ".join(f"{k}={v:.4g}" for k, v in figures.items())


def breakdown_bench(args: argparse.Namespace) -> int:
    """`--breakdown`: saturated writes on a cluster whose clients trace too, then the per-stage
    p50/p99 of the sampled writes, computed from every process's trace file (one host clock)."""
    from runtime.tracefiles import Traces, breakdown

    with Ours(args.config, trace="clients") as ours:
        print(f"# breakdown: data in {ours.root}", file=sys.stderr)
        result = ours.run("saturation, 16 B, clients tracing", args.clients, args.tasks, args.duration_s, 16, "w")
        traces = Traces.load(ours.cluster.data_dir / "logs")
    stages, followed, whole = breakdown(traces)
    if not followed:
        print("bench: no sampled write was found in the trace files", file=sys.stderr)
        return 1
    show([result])
    breakdown_table(stages, followed, whole)
    print(breakdown_line(stages, followed, whole, result.ops_per_s))
    return 0


if __name__ == "__main__":
    sys.exit(quiet_on_broken_pipe(main))
