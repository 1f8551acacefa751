"""Jepsen-style runs on real processes: a fresh local cluster, concurrent clients that record
every operation, a nemesis that breaks things through the supervisor, and checkers.

    python -m runtime.harness.nemesis --duration 60 --faults kill,pause,partition,chaos,power --history h.jsonl

Faults (each lasts about 1-3 s, then heals; the nemesis acts every few seconds):
  kill       kill -9 the leader, one acceptor (a minority) or a learner; the supervisor restarts it
  pause      SIGSTOP the leader or an acceptor for longer than the election timeout, then SIGCONT
  partition  isolate the leader, split the cluster in two, cut the leader's links one way, or
             isolate one acceptor (the test-mode fault layer of runtime/harness/faults.py)
  chaos      every link drops, duplicates, delays and reorders frames
  power      kill -9 one acceptor, or the whole cluster at once, and cut their files back to the
             last fsync, with a torn tail (`runtime.harness.faults.power_loss`)
  wipe       `paxos wipe` a learner or a proposer (it catches up by snapshot, or rebuilds), or
             once a run an acceptor (it rebuilds before it votes again: two lost acceptor disks
             would be more than three acceptors survive)
  disk-full  one acceptor (drawn once a run) keeps its wal and snapshots on a small disk of its
             own (a tmpfs of `DISK_BYTES`, runtime/harness/disk.py); the fault fills that disk
             under load, waits for the acceptor to fail with "no space left on device" (the
             supervisor must not restart it in a loop), frees the space and `start`s it again.
             Mounting needs root or CAP_SYS_ADMIN: without it the fault is skipped, with the
             reason on stderr. The disk is unmounted at the end of the run, whatever happened
             (and that acceptor is never the one `wipe` picks)

The history is JSON lines, one event per line:
  {"process": int, "type": "invoke"|"ok"|"fail"|"info", "f": "get"|"put"|"cas"|"append",
   "key": str, "value": ..., "time": float_seconds}
A timeout is `info`, never `fail`; the process that timed out is retired and a new one takes
its place (as in Jepsen). After the run everything heals and every key is read once more; those
reads must succeed. Then: linearizability per key (runtime/harness/check/linearizability.py; unknown
counts as a violation), and the append checks (runtime/harness/check/appendlog.py) on the final values
and on every learner's log read back from its wal. The last line is
`ops=N ok=.. info=.. fail=.. faults=.. violations=V`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.client import Client, CommandFailed, OutcomeUnknown
from runtime.config import ClusterConfig, load
from runtime.control import request
from runtime.harness.disk import MountUnavailable, SmallDisk
from runtime.harness.faults import power_loss, set_rules
from runtime.harness.local import LocalCluster

FAULTS = ("kill", "pause", "partition", "chaos", "power", "wipe", "disk-full")
DISK_BYTES = 16 << 20
REGISTER_KEYS = 4
APPEND_KEYS = 2
OPS_PER_KEY = 250  # then the workload moves to fresh keys: short per-key histories check fast


@dataclass
class Stats:
    faults: dict[str, int] = field(default_factory=dict)
    fault_active_s: float = 0.0
    ops: int = 0
    ok: int = 0
    info: int = 0
    fail: int = 0


class Recorder:
    """Appends history events to a JSON-lines file."""

    def __init__(self, path: Path, t0: float) -> None:
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        self.t0 = t0

    def record(self, process: int, kind: str, f: str, key: str, value: Any) -> None:
        self.file.write(json.dumps({"process": process, "type": kind, "f": f, "key": key, "value": value,
                                    "time": round(time.monotonic() - self.t0, 6)}) + "\n")

    def close(self) -> None:
        self.file.close()


class NemesisRun:
    def __init__(self, root: Path, faults: list[str], duration_s: float, history: Path, seed: int,
                 workers: int = 12, op_timeout_s: float = 3.0, whole_cluster_share: float = 0.3) -> None:
        self.root = root
        self.faults = faults
        self.duration_s = duration_s
        self.history_path = history
        self.rng = random.Random(seed)
        self.workers = workers
        self.op_timeout_s = op_timeout_s
        self.whole_cluster_share = whole_cluster_share
        # Snapshots every few hundred slots, so that a run compacts often and wiped learners catch
        # up by snapshot.
        self.cluster = LocalCluster(root, extra="[testing]\nenabled = true\n\n[snapshot]\nevery_slots = 300")
        self.config = load(self.cluster.config_path)
        # In config order, which is the order fault targets are drawn from (seeded runs repeat).
        self.names = list(self.config.actors)
        self.proposers = [p.name for p in self.config.proposers]
        self.acceptors = [a.name for a in self.config.acceptors]
        self.learners = [lr.name for lr in self.config.learners]
        self.stats = Stats()
        self.keys_used: set[str] = set()
        self.append_keys_used: set[str] = set()
        self.next_process = workers
        self.paused: set[str] = set()
        self.acceptor_wiped = False
        self.disk: SmallDisk | None = None  # the disk-full fault's, with its acceptor
        self.disk_owner = ""
        self.disk_filled = False

    def mount_disk(self) -> None:
        """For the disk-full fault: a small disk for one acceptor, before the cluster starts;
        without the right to mount, the fault is dropped with the reason."""
        if "disk-full" not in self.faults:
            return
        owner = self.rng.choice(self.acceptors)
        disk = SmallDisk(self.root / f"disk-{owner}", DISK_BYTES)
        try:
            disk.mount()
        except MountUnavailable as exc:
            self.note(f"disk-full fault skipped: {exc}")
            self.faults = [f for f in self.faults if f != "disk-full"]
            return
        self.disk, self.disk_owner = disk, owner
        disk.place(self.config, owner)
        self.note(f"disk-full: {owner}'s wal and snapshots on a {DISK_BYTES >> 20} MB tmpfs at {disk.path}")

    def unmount_disk(self) -> None:
        """After the cluster is down: copy the acceptor's files back, unmount."""
        if self.disk is not None:
            try:
                self.disk.restore()
            finally:
                self.disk.close()
                self.disk = None

    # --- control ---------------------------------------------------------------------------

    def control(self, message: dict[str, Any]) -> dict[str, Any]:
        return request(self.config, message, timeout_s=30.0)

    async def act(self, message: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self.control, message)

    async def leader(self) -> str | None:
        try:
            return (await self.act({"cmd": "status"})).get("leader")
        except Exception:  # a busy supervisor: no leader known right now
            return None

    def note(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)

    # --- the workload ----------------------------------------------------------------------

    async def worker(self, slot: int, client: Client, recorder: Recorder, stop: asyncio.Event) -> None:
        process = slot
        n = 0
        last_seen: dict[str, str | None] = {}
        while not stop.is_set():
            n += 1
            gen = self.stats.ops // (OPS_PER_KEY * REGISTER_KEYS)
            r = self.rng.random()
            value: Any
            if r < 0.3:
                key = f"a{gen}.{self.rng.randrange(APPEND_KEYS)}"
                f, value = ("append", f"e{process}.{n};") if self.rng.random() < 0.85 else ("get", None)
                self.append_keys_used.add(key)
            else:
                key = f"r{gen}.{self.rng.randrange(REGISTER_KEYS)}"
                self.keys_used.add(key)
                if r < 0.55:
                    f, value = "get", None
                elif r < 0.85:
                    f, value = "put", f"v{process}.{n}"
                else:
                    f, value = "cas", [last_seen.get(key), f"v{process}.{n}"]
            recorder.record(process, "invoke", f, key, value)
            self.stats.ops += 1
            completed: Any = value  # what the completion records: the invoke's value, or what a get read
            try:
                if f == "get":
                    completed = last_seen[key] = await client.get(key)
                    kind = "ok"
                elif f == "put":
                    await client.put(key, value)
                    last_seen[key] = value
                    kind = "ok"
                elif f == "append":
                    await client.append(key, value)
                    kind = "ok"
                elif await client.cas(key, value[0], value[1]):
                    last_seen[key] = value[1]
                    kind = "ok"
                else:
                    kind = "fail"  # a cas that did not swap
            except OutcomeUnknown:
                kind = "info"
            except CommandFailed:
                kind = "fail"
            recorder.record(process, kind, f, key, completed)
            setattr(self.stats, kind, getattr(self.stats, kind) + 1)  # stats.ok, .info or .fail
            if kind == "info":
                process = self.next_process  # a timed-out process is retired (Jepsen)
                self.next_process += 1
            await asyncio.sleep(self.rng.uniform(0.002, 0.02))

    # --- the nemesis -----------------------------------------------------------------------

    async def nemesis(self, stop: asyncio.Event) -> None:
        await asyncio.sleep(2.0)  # a quiet start: the first writes happen without faults
        while not stop.is_set():
            fault = self.rng.choice(self.faults)
            hold_s = self.rng.uniform(1.0, 3.0)
            started = time.monotonic()
            try:
                await self.inject(fault, hold_s)
            except Exception as exc:  # a failed fault is reported, the run goes on
                self.note(f"fault {fault} could not be applied: {exc}")
            await self.heal()
            self.stats.fault_active_s += time.monotonic() - started
            self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
            await asyncio.sleep(self.rng.uniform(0.5, 1.5))

    async def inject(self, fault: str, hold_s: float) -> None:
        names, acceptors = self.names, self.acceptors
        leader = await self.leader() or self.rng.choice(self.proposers)
        if fault == "kill":
            victim = self.rng.choice([leader, self.rng.choice(acceptors), self.rng.choice(self.learners)])
            self.note(f"kill -9 {victim}")
            await self.act({"cmd": "kill", "name": victim, "signal": "KILL", "restart": True})
            await asyncio.sleep(hold_s)
        elif fault == "pause":
            victim = self.rng.choice([leader, self.rng.choice(acceptors)])
            self.note(f"SIGSTOP {victim} for {hold_s:.1f}s")
            await self.act({"cmd": "kill", "name": victim, "signal": "STOP", "restart": True})
            self.paused.add(victim)
            await asyncio.sleep(hold_s)
        elif fault == "partition":
            shape = self.rng.choice(["isolate_leader", "split", "one_way", "isolate_acceptor"])
            if shape in ("isolate_leader", "isolate_acceptor"):
                victim = leader if shape == "isolate_leader" else self.rng.choice(acceptors)
                rules = {victim: {"*": {"cut": True}}, **{n: {victim: {"cut": True}} for n in names if n != victim}}
            elif shape == "split":
                side = set(self.rng.sample(names, self.rng.randrange(1, len(names))))
                rules = {a: {b: {"cut": True} for b in names if (b in side) != (a in side)} for a in names}
            else:
                rules = {leader: {a: {"cut": True} for a in acceptors}}
            self.note(f"partition {shape} for {hold_s:.1f}s")
            await asyncio.to_thread(set_rules, self.config, rules)
            await asyncio.sleep(hold_s)
        elif fault == "chaos":
            link = {"drop": self.rng.choice([0.02, 0.1]), "dup": self.rng.choice([0.02, 0.1]),
                    "delay_ms": self.rng.choice([2, 10, 30])}
            self.note(f"link chaos {link} for {hold_s:.1f}s")
            await asyncio.to_thread(set_rules, self.config, {n: {"*": link} for n in names})
            await asyncio.sleep(hold_s)
        elif fault == "wipe":
            pool = [*self.learners, *self.proposers] + ([] if self.acceptor_wiped else
                                                        [a for a in acceptors if a != self.disk_owner])
            victim = self.rng.choice(pool)
            self.acceptor_wiped = self.acceptor_wiped or victim in acceptors
            self.note(f"wipe {victim}")
            await self.act({"cmd": "wipe", "name": victim})
            await asyncio.sleep(hold_s)
        elif fault == "power":
            victims = names if self.rng.random() < self.whole_cluster_share else [self.rng.choice(acceptors)]
            self.note(f"power loss of {'the whole cluster' if len(victims) > 1 else victims[0]}")
            cut = await asyncio.to_thread(power_loss, self.config, victims, True, self.rng)
            self.note(f"  cut bytes: {cut}")
            await asyncio.sleep(hold_s)
        elif fault == "disk-full":
            await self.fill_disk(hold_s)

    async def child(self, name: str) -> dict[str, Any]:
        status = await self.act({"cmd": "status"})
        return next(a for a in status["actors"] if a["name"] == name)

    async def fill_disk(self, hold_s: float, timeout_s: float = 20.0) -> None:
        """Fill the acceptor's disk; it must fail for it (not restart in a loop) within
        `timeout_s` while the load goes on; hold; then `heal` frees the space and starts it."""
        disk, name = self.disk, self.disk_owner
        assert disk is not None
        filled = await asyncio.to_thread(disk.fill)
        self.disk_filled = True
        self.note(f"disk-full: filled {name}'s disk ({filled} bytes)")
        deadline = time.monotonic() + timeout_s
        while (a := await self.child(name))["state"] != "failed":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not fail within {timeout_s:g}s of its disk filling up "
                                   f"(state {a['state']}, restarts {a['restarts']})")
            await asyncio.sleep(0.1)
        if "no space left on device" not in a["reason"] or not a.get("disk_full"):
            raise RuntimeError(f"{name} failed without saying that its disk is full: {a['reason']!r}")
        self.note(f"disk-full: {name} failed: {a['reason']}")
        await asyncio.sleep(hold_s)
        if (await self.child(name))["state"] != "failed":
            raise RuntimeError(f"{name} left the failed state while its disk was still full")

    async def free_disk(self, timeout_s: float = 20.0) -> None:
        """Free the space and start the acceptor; it must be running again within `timeout_s`."""
        disk, name = self.disk, self.disk_owner
        assert disk is not None
        await asyncio.to_thread(disk.free)
        self.disk_filled = False
        if (await self.child(name))["state"] == "failed":
            reply = await self.act({"cmd": "start", "name": name})
            if not reply.get("ok"):
                raise RuntimeError(f"start {name} after freeing its disk: {reply.get('error')}")
        deadline = time.monotonic() + timeout_s
        while (await self.child(name))["state"] != "running":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not come back within {timeout_s:g}s of its disk being freed")
            await asyncio.sleep(0.1)
        self.note(f"disk-full: freed; {name} running again")

    async def heal(self) -> None:
        if self.disk_filled:
            try:
                await self.free_disk()
            except Exception as exc:  # reported; the run goes on with the acceptors it has
                self.note(f"disk-full: could not bring {self.disk_owner} back: {exc}")
        await asyncio.to_thread(set_rules, self.config, {})
        for name in list(self.paused):
            await self.act({"cmd": "kill", "name": name, "signal": "CONT", "restart": True})
            self.paused.discard(name)

    # --- the run ---------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        recorder = Recorder(self.history_path, t0)
        clients = [Client(self.cluster.config_path, timeout_s=self.op_timeout_s) for _ in range(4)]
        for c in clients:
            await c.connect()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self.worker(i, clients[i % len(clients)], recorder, stop))
                 for i in range(self.workers)]
        nemesis = asyncio.create_task(self.nemesis(stop)) if self.faults else None
        await asyncio.sleep(self.duration_s)
        stop.set()
        if nemesis is not None:
            await nemesis
        await asyncio.gather(*tasks)
        await self.heal()
        self.note("healed; final reads")
        final: dict[str, str | None] = {}
        keys = sorted(self.keys_used | self.append_keys_used)
        async with Client(self.cluster.config_path, timeout_s=10.0) as reader:
            # Concurrently, each on a process of its own, twice at most: a healed cluster must
            # answer them all (the last operations after the faults must succeed).
            for attempt in range(2):
                todo = [k for k in keys if k not in final]
                first = self.next_process
                self.next_process += len(todo)

                async def read(process: int, key: str) -> None:
                    recorder.record(process, "invoke", "get", key, None)
                    try:
                        value = await reader.get(key)
                    except OutcomeUnknown:
                        recorder.record(process, "info", "get", key, None)
                        return
                    recorder.record(process, "ok", "get", key, value)
                    final[key] = value

                await asyncio.gather(*(read(first + i, k) for i, k in enumerate(todo)))
                if len(final) == len(keys):
                    break
                self.note(f"final reads: {len(keys) - len(final)} unanswered after attempt {attempt + 1}")
        final_failures = len(keys) - len(final)
        for c in clients:
            await c.close()
        recorder.close()
        return {"final": final, "final_failures": final_failures, "elapsed_s": time.monotonic() - t0}


def learner_appends(config: ClusterConfig, name: str) -> tuple[int, list[tuple[int, str, str]]]:
    """The appends learner `name` applied, in order, each with its slot, rebuilt from its wal (and
    the snapshot it starts from) through the core its process runs (so the epoch rule,
    de-duplication and limits are the same); and the slot of that snapshot (0: none)."""
    from actors.learner import Learner
    from actors.messages import COMMANDS
    from actors.records import DecidedRecord, SnapshotRecord
    from runtime import codec
    from runtime.actor import build_core
    from runtime.storage import DISK, SnapshotDir
    from runtime.turn import replayer
    from runtime.wal import read_records

    learner = build_core(config, name, random.Random())
    assert isinstance(learner, Learner), f"{name} is not a learner"
    apply = replayer(learner, SnapshotDir(DISK, config.snapshot_dir(name)))
    kv = learner.kv
    kv.applied_log = []
    first = 0
    out: list[tuple[int, str, str]] = []
    for record in read_records(config.wal_path(name)):
        if type(record) is SnapshotRecord:
            apply(record)
            first = max(first, learner.delivered)
            continue
        assert isinstance(record, DecidedRecord)
        commands: dict[tuple[str, int], list[Any]] = {}
        if record.value.kind == COMMANDS:
            for blob in record.value.batches:
                try:
                    client, _, batch = codec.decode_client_batch(blob)
                except Exception:  # the learner skips such a batch too
                    continue
                for command in batch:
                    commands[(client, command[0])] = list(command)
        applied = len(kv.applied_log)
        learner.apply(record)
        for client, seq in kv.applied_log[applied:]:
            command = commands.get((client, seq))
            if command and command[1] == "append":
                out.append((record.slot, command[2], command[3]))
    return first, out


def check(history: Path, final: dict[str, str | None], learner_logs: dict[str, list[tuple[str, str]]],
          budget_s_per_key: float = 10.0) -> tuple[int, list[str]]:
    from runtime.harness.check import appendlog, linearizability
    from runtime.harness.check.history import load

    ops = load(history)
    report = linearizability.check(ops, budget_s_per_key=budget_s_per_key)
    problems = [f"linearizability {r.key}: {'unknown (budget exhausted)' if r.valid is None else r.detail}"
                for r in report.results if r.valid is not True]
    append_final = {k: v for k, v in final.items() if k.startswith("a")}
    append_report = appendlog.check(ops, append_final, learner_logs)
    problems += [f"append: {v}" for v in append_report.violations]
    return len(problems), problems


def run(duration_s: float, faults: list[str], history: Path, seed: int, keep: bool = False, bugs: str = "",
        workers: int = 12, whole_cluster_share: float = 0.3) -> dict[str, Any]:
    import uvloop

    root = Path(tempfile.mkdtemp(prefix="paxos-nemesis-"))
    nr = NemesisRun(root, faults, duration_s, history, seed, workers=workers,
                    whole_cluster_share=whole_cluster_share)
    if bugs:
        os.environ["PAXOS_PLANTED_BUGS"] = bugs
    try:
        nr.mount_disk()
        up = nr.cluster.up()
        if up.returncode != 0:
            raise RuntimeError(f"the cluster did not start: {up.stderr.strip()}")
        outcome = uvloop.run(nr.run())
    finally:
        try:
            nr.cluster.down()
        finally:
            nr.unmount_disk()  # the mount this run made goes, whatever happened
            os.environ.pop("PAXOS_PLANTED_BUGS", None)
    rebuilt = {n: learner_appends(nr.config, n) for n in nr.learners}
    # Each learner's file starts at its latest snapshot: compare them from the latest of those.
    start = max(first for first, _ in rebuilt.values())
    learner_logs = {n: [(k, e) for slot, k, e in log if slot > start] for n, (_, log) in rebuilt.items()}
    violations, problems = check(history, outcome["final"], learner_logs)
    violations += outcome["final_failures"]
    if outcome["final_failures"]:
        problems.append(f"{outcome['final_failures']} final reads failed after healing")
    s = nr.stats
    summary = {
        "skipped": [f for f in faults if f not in nr.faults],
        "ops": s.ops, "ok": s.ok, "info": s.info, "fail": s.fail, "faults": sum(s.faults.values()),
        "violations": violations, "fault_kinds": s.faults, "fault_active_share": s.fault_active_s / duration_s,
        "ok_per_s": s.ok / duration_s, "problems": [p if len(p) < 400 else p[:400] + " ..." for p in problems[:20]],
        "data": str(root),
    }
    if not keep and not violations:
        shutil.rmtree(root, ignore_errors=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.harness.nemesis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load and faults per run")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, from {', '.join(FAULTS)}")
    parser.add_argument("--history", type=Path, default=Path("history.jsonl"))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--soak", type=float, default=0.0, metavar="HOURS",
                        help="repeat runs (fresh cluster, fresh history file each) for this many hours")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's directory")
    parser.add_argument("--bugs", default="", help="planted bugs for the actors (tests of the tests)")
    args = parser.parse_args(argv)
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {', '.join(sorted(unknown))} (known: {', '.join(FAULTS)})")
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    deadline = time.monotonic() + args.soak * 3600
    runs = 0
    total_violations = 0
    while True:
        history = args.history if not args.soak else args.history.with_suffix(f".{runs}.jsonl")
        summary = run(args.duration, faults, history, seed + runs, args.keep, args.bugs, args.workers)
        runs += 1
        total_violations += summary["violations"]
        for p in summary["problems"]:
            print(f"VIOLATION {p}")
        if summary["skipped"]:
            print(f"# skipped faults (see stderr for why): {', '.join(summary['skipped'])}")
        if summary["violations"]:
            print(f"# kept the cluster's files in {summary['data']}; history in {history}")
        print(f"# seed={seed + runs - 1} fault kinds {summary['fault_kinds']}, faults active "
              f"{summary['fault_active_share']:.0%} of the time, {summary['ok_per_s']:.0f} acknowledged ops/s")
        print(f"ops={summary['ops']} ok={summary['ok']} info={summary['info']} fail={summary['fail']} "
              f"faults={summary['faults']} violations={summary['violations']}", flush=True)
        if not args.soak or time.monotonic() > deadline:
            break
    return 1 if total_violations else 0


if __name__ == "__main__":
    sys.exit(main())
