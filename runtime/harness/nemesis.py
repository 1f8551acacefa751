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
  membership one change through the log (`paxos members add|remove`, the real CLI), in a loop of
             its own that runs alongside the other faults: a fresh acceptor (a4, a5, ...) or
             learner (l3, ...) joins, or a running one leaves; names are never reused. It keeps
             3 to 5 acceptors and 2 to 4 learners, and removes only a running, settled member that
             no other fault holds (or held just before: `HOLD_AFTER_S`), and only if the
             acceptors left that are running and unheld are a majority of the new membership.
             A refusal while another change is inside its alpha window is asked again (a few
             times); an unknown outcome (exit 2) is noted, and that name is never a target
             again. The other faults draw their victims from the membership as the supervisor
             runs it now (`status`), never from a member that is leaving or removed
  disk-full  one acceptor (drawn once a run) keeps its wal and snapshots on a small disk of its
             own (a tmpfs of `DISK_BYTES`, runtime/harness/disk.py); the fault fills that disk
             under load, waits for the acceptor to fail with "no space left on device" (the
             supervisor must not restart it in a loop), frees the space and `start`s it again.
             Mounting needs root or CAP_SYS_ADMIN: without it the fault is skipped, with the
             reason on stderr. The disk is unmounted at the end of the run, whatever happened
             (and that acceptor is never the one `wipe` picks)
  clock      the leader's or an acceptor's ticks run fast or slow, at 90% of `[reads]
             clock_drift_max` (`--clock-beyond X`: X beyond it, a negative test), through the
             test-mode actor's clock file (runtime/harness/actor.py)
  crash      an acceptor or a learner ends itself at a named crash point of its next turn that
             persists (`paxos kill NAME --at POINT`, runtime/crashpoints.py: a point its role has,
             torn-write among them); the supervisor restarts it. (A leader persists only when it
             campaigns, so it is no victim here: tests/integration/test_crash_points.py has one.)

Every run writes its fault schedule beside the history (`HISTORY.schedule.json`, or `--schedule
PATH`): every fault with its offset from the start of the load, its targets and parameters, the
seed and the options (runtime/harness/schedule.py). `--replay FILE` runs that schedule again on a
fresh cluster: the same faults at the same offsets (a fault that comes due while the one before
still runs waits for it, and says how late it is), the same seed and options. The workload draws
from a generator of its own, so it issues the same sequence of operations, but their timing is
this machine's: what each fault meets differs, and so may the outcome of a membership change
(which is replayed as the same `paxos members` command). A replay writes the faults it applied
to `HISTORY.replay.schedule.json`, never over the file it replays.

Every `get` of the workload is a read without a log write (the leader's lease, actors/lease.py).
Besides the history checks below, a lease-overlap check reads the proposers' logs: no lease read
served under a ballot (`lease_reads_served`, stamped with when its lease was checked) after a
leader of a higher ballot was elected (`leader_elected`), by the host's clock.

The history is JSON lines, one event per line:
  {"process": int, "type": "invoke"|"ok"|"fail"|"info", "f": "get"|"put"|"cas"|"append",
   "key": str, "value": ..., "time": float_seconds}
A timeout is `info`, never `fail`; the process that timed out is retired and a new one takes
its place (as in Jepsen). After the run everything heals and every key is read once more; those
reads must succeed. Then: linearizability per key (runtime/harness/check/linearizability.py; unknown
counts as a violation), and the append checks (runtime/harness/check/appendlog.py) on the final values
and on every learner's log read back from its wal (every learner the run had, added or removed
ones too, each pair compared from the later of their snapshots). The last line is
`ops=N ok=.. info=.. fail=.. faults=.. violations=V`.

Fast mode (issue 12): `--mode fast [--fast-recovery coordinated|uncoordinated] [--acceptors 5]`
writes `[protocol] mode = "fast"` into the run's cluster.toml, on 4 acceptors by default (fast
quorum 3: with one acceptor down the other three must agree, and any split is a collision to
recover); the membership fault is skipped (membership changes are refused in fast mode: the
output says so), and every worker gets a `Client` of its own, so that first attempts from
several clients on the same few keys race to the acceptors. The last line then also counts the
actors' fast-mode log events, before `violations=` (which stays last):
`fast_rounds` (fast_round_opened), `collisions` and `stuck` (collision_detected: a split vote,
or a slot that stayed open and got a new ballot), `recovered_coordinated` and
`recovered_uncoordinated` (collision_recovered by `way`, as the leader saw the slot chosen),
`acceptor_recoveries` (collision_recovered: the acceptors' own recovery votes, uncoordinated)
and `fallbacks` (classic_fallback). The recovered counts may exceed `collisions`: a leader that
finds a slot stuck (a vote missing) recovers it in the recovery round too, and logs only that.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.fast import CLASSIC, COORDINATED, FAST, FAST_ACCEPTORS_MIN, MODES, RECOVERIES
from runtime import crashpoints
from runtime.admin import WAIT_FOR
from runtime.client import Client, CommandFailed, OutcomeUnknown
from runtime.config import ClusterConfig, load
from runtime.control import request
from runtime.harness.disk import MountUnavailable, SmallDisk
from runtime.harness.faults import power_loss, set_clocks, set_rules
from runtime.harness.local import LocalCluster, free_ports
from runtime.harness.schedule import Fault, Schedule, ScheduleError
from runtime.harness.schedule import load as load_schedule
from runtime.members import load as load_members
from runtime.program import quiet_on_broken_pipe

FAULTS = ("kill", "pause", "partition", "chaos", "power", "wipe", "disk-full", "membership", "clock", "crash")
DISK_BYTES = 16 << 20
REGISTER_KEYS = 4
APPEND_KEYS = 2
OPS_PER_KEY = 250  # then the workload moves to fresh keys: short per-key histories check fast
HOLD_AFTER_S = 5.0  # a killed, wiped or powered-off victim is no member to remove for this long
HOLD_LINK_S = 1.0  # after it heals (it restarts, rebuilds, catches up); a paused or cut one, this
ACCEPTORS = (3, 5)  # the membership fault keeps this many acceptors, and learners (the workers
LEARNERS = (2, 4)   # read through learners: two keep reads available while one is down)
CHANGE_TIMEOUT_S = 10.0  # `paxos members add|remove --timeout-s` (it waits out an alpha window)
CHANGE_BUDGET_S = 20.0  # one change, asked again while refused for an alpha window, for this long
CHANGE_TRIES = 5  # at most
# Fast mode (issue 12): 4 acceptors by default (`--acceptors 5` for five). Either way the fast
# quorum is all acceptors but one (4: 3, 5: 4), so with one acceptor down (kill, pause, power,
# wipe, disk-full, an isolated one) the fast path goes on only if all the others take the same
# value, and any split is a collision to recover; 4 is one process less on a small machine.
FAST_ACCEPTORS = 4
FAST_EVENTS = ("fast_round_opened", "collision_detected", "collision_recovered", "classic_fallback")
EXIT_BAD_SCHEDULE = 3  # --replay FILE: not a schedule this build can replay (the message says why)


@dataclass
class Stats:
    faults: dict[str, int] = field(default_factory=dict)
    ops: int = 0
    ok: int = 0
    info: int = 0
    fail: int = 0
    # The membership fault's changes: chosen, refused, unknown (exit 2 or no answer) and skipped
    # (no member could go safely, or the cluster was not running).
    changes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("applied", "refused", "unknown", "skipped"), 0))
    fault_spans: list[tuple[float, float]] = field(default_factory=list)
    load_span: tuple[float, float] = (0.0, 0.0)  # when the workload ran

    def active_s(self) -> float:
        """How long some fault was active while the workload ran: the union of the spans (the
        membership loop runs alongside the others), within the workload's."""
        first, last = self.load_span
        total, end = 0.0, first
        for a, b in sorted(self.fault_spans):
            b = min(b, last)
            if b > end:
                total += b - max(a, end)
                end = b
        return total


@dataclass
class View:
    """The cluster as its supervisor runs it now: members by role, in config order, without the
    ones leaving or removed (and without those the membership fault is removing or may have
    removed); `names` are every actor not removed yet (link rules may name them all)."""

    names: list[str]
    proposers: list[str]
    acceptors: list[str]
    learners: list[str]
    state: dict[str, str]  # name -> the supervisor's state: running, stopped, ...
    member: dict[str, str]  # name -> "", "joining", "leaving" or "removed"
    leader: str | None


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
                 workers: int = 12, op_timeout_s: float = 3.0, whole_cluster_share: float = 0.3,
                 mode: str = "classic", fast_recovery: str = "coordinated", acceptors: int = 0,
                 clock_beyond: float = 0.0, bugs: str = "", schedule_path: Path | None = None,
                 replay: Schedule | None = None) -> None:
        self.root = root
        self.mode = mode
        # The fault schedule this run writes (runtime/harness/schedule.py), and the one it
        # replays instead of drawing faults (`--replay`).
        self.schedule = Schedule(seed, {
            "duration_s": duration_s, "faults": list(faults), "workers": workers, "mode": mode,
            "fast_recovery": fast_recovery, "acceptors": acceptors, "whole_cluster_share": whole_cluster_share,
            "clock_beyond": clock_beyond, "bugs": bugs, "disk_owner": ""})
        self.schedule_path = schedule_path
        self.replay = replay
        self.t0 = time.monotonic()  # the start of the load: the schedule's offsets count from it
        self._stop = asyncio.Event()
        if mode == "fast" and "membership" in faults:
            # The proposers refuse membership changes in fast mode (issue 12): no such fault.
            self.note("membership fault skipped: membership changes are refused in fast mode")
            faults = [f for f in faults if f != "membership"]
        self.faults = faults
        self.duration_s = duration_s
        self.history_path = history
        self.rng = random.Random(seed)  # the faults' draws
        # The workload's own, so that a replay (which draws no faults) runs the same operations.
        self.load_rng = random.Random(f"{seed}:load")
        self.workers = workers
        self.op_timeout_s = op_timeout_s
        self.whole_cluster_share = whole_cluster_share
        # The clock fault: a rate within the drift bound, or (a negative test) this far beyond it.
        self.clock_beyond = clock_beyond
        self.clocks_set = False
        # Snapshots every few hundred slots, so that a run compacts often and wiped learners catch
        # up by snapshot.
        extra = "[testing]\nenabled = true\n\n[snapshot]\nevery_slots = 300"
        if mode == "fast":
            extra += f'\n\n[protocol]\nmode = "fast"\nfast_recovery = "{fast_recovery}"'
        self.cluster = LocalCluster(root, acceptors=acceptors or (FAST_ACCEPTORS if mode == "fast" else 3),
                                    extra=extra)
        self.config = load(self.cluster.config_path)
        # The bootstrap membership, in config order; fault targets are drawn from the membership
        # as the supervisor runs it now (`view`), also in config order (seeded runs repeat).
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
        self.held: dict[str, float] = {}  # a fault's victims -> until when (inf: while it lasts)
        self.held_after: dict[str, float] = {}  # -> how long they stay held once it heals
        self.removing: set[str] = set()  # a removal in flight (no other fault picks it)
        self.gone: set[str] = set()  # removed, or maybe removed (exit 2): never a target again
        self.used_names = set(self.names)  # names are never reused, even after a refusal
        self.next_member = {"acceptor": len(self.acceptors) + 1, "learner": len(self.learners) + 1}
        self.changes_made = 0  # which role the membership fault changes next: they alternate
        self._view: View | None = None
        self.disk: SmallDisk | None = None  # the disk-full fault's, with its acceptor
        self.disk_owner = ""
        self.disk_filled = False

    def mount_disk(self) -> None:
        """For the disk-full fault: a small disk for one acceptor, before the cluster starts;
        without the right to mount, the fault is dropped with the reason."""
        if "disk-full" not in self.faults:
            return
        replayed = self.replay.options["disk_owner"] if self.replay is not None else ""
        owner = replayed or self.rng.choice(self.acceptors)
        disk = SmallDisk(self.root / f"disk-{owner}", DISK_BYTES)
        try:
            disk.mount()
        except MountUnavailable as exc:
            self.note(f"disk-full fault skipped: {exc}")
            self.faults = [f for f in self.faults if f != "disk-full"]
            return
        self.disk, self.disk_owner = disk, owner
        self.schedule.options["disk_owner"] = owner
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

    def note(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)

    async def view(self) -> View:
        """The membership the supervisor runs now (the last one seen if it does not answer);
        every pid it lists is remembered, so the end of the run stops added actors too."""
        try:
            status = await self.act({"cmd": "status"})
        except Exception:  # a busy supervisor: what we saw last
            status = {}
        if status.get("actors"):
            self.cluster.remember_pids(status)
            actors = status["actors"]
            member = {a["name"]: str(a.get("member") or "") for a in actors}
            names = [a["name"] for a in actors if member[a["name"]] != "removed"]
            out = [a for a in actors if member[a["name"]] in ("", "joining")
                   and a["name"] not in self.gone and a["name"] not in self.removing]
            self._view = View(names, [a["name"] for a in out if a["role"] == "proposer"],
                              [a["name"] for a in out if a["role"] == "acceptor"],
                              [a["name"] for a in out if a["role"] == "learner"],
                              {a["name"]: str(a["state"]) for a in actors}, member, status.get("leader"))
        elif self._view is None:
            self._view = View(list(self.names), list(self.proposers), list(self.acceptors), list(self.learners),
                              dict.fromkeys(self.names, "running"), dict.fromkeys(self.names, ""), None)
        view = self._view
        # What changed since the status was read (a removal may have started meanwhile).
        out_now = self.gone | self.removing
        return dataclasses.replace(view, proposers=[n for n in view.proposers if n not in out_now],
                                   acceptors=[n for n in view.acceptors if n not in out_now],
                                   learners=[n for n in view.learners if n not in out_now])

    def hold(self, *names: str, after_s: float = HOLD_AFTER_S) -> None:
        """These are a fault's victims until it heals (and `after_s` longer): the membership
        fault does not remove them meanwhile."""
        for name in names:
            self.held[name] = float("inf")
            self.held_after[name] = max(after_s, self.held_after.get(name, 0.0))

    def held_now(self) -> set[str]:
        now = time.monotonic()
        return {n for n, until in self.held.items() if until > now}

    # --- the workload ----------------------------------------------------------------------

    async def worker(self, slot: int, client: Client, recorder: Recorder, stop: asyncio.Event) -> None:
        process = slot
        n = 0
        last_seen: dict[str, str | None] = {}
        while not stop.is_set():
            n += 1
            gen = self.stats.ops // (OPS_PER_KEY * REGISTER_KEYS)
            rng = self.load_rng
            r = rng.random()
            value: Any
            if r < 0.3:
                key = f"a{gen}.{rng.randrange(APPEND_KEYS)}"
                f, value = ("append", f"e{process}.{n};") if rng.random() < 0.85 else ("get", None)
                self.append_keys_used.add(key)
            else:
                key = f"r{gen}.{rng.randrange(REGISTER_KEYS)}"
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
            await asyncio.sleep(self.load_rng.uniform(0.002, 0.02))

    # --- the nemesis -----------------------------------------------------------------------

    async def nemesis(self, stop: asyncio.Event) -> None:
        self._stop = stop
        if self.replay is not None:
            steps = self.replay.faults
            await asyncio.gather(self.replay_loop([f for f in steps if f.loop == "faults"], stop, heal=True),
                                 self.replay_loop([f for f in steps if f.loop == "membership"], stop, heal=False))
            return
        others = [f for f in self.faults if f != "membership"]
        loops = [self.fault_loop(others, stop)] if others else []
        if "membership" in self.faults:
            loops.append(self.membership_loop(stop))
        await asyncio.gather(*loops)

    async def fault_loop(self, faults: list[str], stop: asyncio.Event) -> None:
        await asyncio.sleep(2.0)  # a quiet start: the first writes happen without faults
        while not stop.is_set():
            fault = self.rng.choice(faults)
            hold_s = self.rng.uniform(1.0, 3.0)
            started = time.monotonic()
            await self.inject(fault, hold_s)
            await self.heal()
            self.stats.fault_spans.append((started, time.monotonic()))
            self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
            await asyncio.sleep(self.rng.uniform(0.5, 1.5))

    async def replay_loop(self, steps: list[Fault], stop: asyncio.Event, heal: bool) -> None:
        """`--replay`: each fault of the schedule at its offset from the start of the load (at
        once if the one before ran late), healed as the original run healed it."""
        for i, step in enumerate(steps):
            due = self.t0 + step.at_s
            # asyncio may wake a timer up to its clock resolution early: a replayed fault
            # must never run before its offset, so sleep again until the offset is reached.
            while (left_s := due - time.monotonic()) > 0:
                await asyncio.sleep(left_s)
            if stop.is_set():
                self.note(f"replay: {len(steps) - i} {steps[0].loop} faults not replayed: the load ended first")
                return
            started = time.monotonic()
            if started - due > 0.5:
                self.note(f"replay: {step.kind} {started - due:.1f}s late (the fault before it ran long)")
            await self.run_step(step)
            if heal:
                await self.heal()
            self.stats.fault_spans.append((started, time.monotonic()))
            self.stats.faults[step.kind] = self.stats.faults.get(step.kind, 0) + 1

    def save_schedule(self) -> None:
        if self.schedule_path is not None:
            self.schedule.save(self.schedule_path)

    async def run_step(self, step: Fault) -> None:
        """Apply one fault, written into the schedule first (with its offset now), and its error
        after if it could not be applied (reported; the run goes on)."""
        step = dataclasses.replace(step, at_s=round(time.monotonic() - self.t0, 3), error="")
        self.schedule.faults.append(step)
        self.save_schedule()
        try:
            await self.apply(step)
        except Exception as exc:
            step.error = f"{type(exc).__name__}: {exc}"[:300]
            self.note(f"fault {step.kind} could not be applied: {exc}")
            self.save_schedule()

    async def inject(self, fault: str, hold_s: float) -> None:
        """Draw one fault of kind `fault` against the cluster as it runs now, and apply it."""
        try:
            step = self.plan(fault, hold_s, await self.view())
        except Exception as exc:  # no victim to draw, say: reported, the run goes on
            self.note(f"fault {fault} could not be applied: {exc}")
            return
        await self.run_step(step)

    def plan(self, fault: str, hold_s: float, view: View) -> Fault:
        """One fault with its victims and parameters drawn (from `rng` only): what the schedule
        keeps and `apply` does. Its offset is set when it is applied."""
        names, acceptors, learners = view.names, view.acceptors, view.learners
        leader = view.leader if view.leader in view.proposers else self.rng.choice(view.proposers)
        if fault == "kill":
            victim = self.rng.choice([leader, self.rng.choice(acceptors), self.rng.choice(learners)])
            return Fault(0.0, fault, hold_s, [victim], {"signal": "KILL"})
        if fault == "pause":
            victim = self.rng.choice([leader, self.rng.choice(acceptors)])
            return Fault(0.0, fault, hold_s, [victim], {"signal": "STOP"})
        if fault == "partition":
            shape = self.rng.choice(["isolate_leader", "split", "one_way", "isolate_acceptor"])
            rules: dict[str, Any]
            if shape in ("isolate_leader", "isolate_acceptor"):
                victim = leader if shape == "isolate_leader" else self.rng.choice(acceptors)
                held = [victim]
                rules = {victim: {"*": {"cut": True}}, **{n: {victim: {"cut": True}} for n in names if n != victim}}
            elif shape == "split":
                side = set(self.rng.sample(names, self.rng.randrange(1, len(names))))
                held = list(names)  # either side may lack a majority
                rules = {a: {b: {"cut": True} for b in names if (b in side) != (a in side)} for a in names}
            else:
                held = [leader]
                rules = {leader: {a: {"cut": True} for a in acceptors}}
            return Fault(0.0, fault, hold_s, held, {"shape": shape, "rules": rules})
        if fault == "chaos":
            link = {"drop": self.rng.choice([0.02, 0.1]), "dup": self.rng.choice([0.02, 0.1]),
                    "delay_ms": self.rng.choice([2, 10, 30])}
            return Fault(0.0, fault, hold_s, list(names), {"link": link})
        if fault == "wipe":
            pool = [*learners, *view.proposers] + ([] if self.acceptor_wiped else
                                                   [a for a in acceptors if a != self.disk_owner])
            victim = self.rng.choice(pool)
            return Fault(0.0, fault, hold_s, [victim], {"acceptor": victim in acceptors})
        if fault == "power":
            # Never one leaving or removed: power_loss starts its victims again, and a removed
            # actor must not run.
            whole = [n for n in names if n in {*view.proposers, *acceptors, *learners}]
            victims = whole if self.rng.random() < self.whole_cluster_share else [self.rng.choice(acceptors)]
            # The torn tails power_loss makes are drawn from a generator of their own, seeded here.
            return Fault(0.0, fault, hold_s, victims, {"cut_seed": self.rng.randrange(1 << 31)})
        if fault == "disk-full":
            return Fault(0.0, fault, hold_s, [self.disk_owner])
        if fault == "crash":
            victim = self.rng.choice([self.rng.choice(acceptors), self.rng.choice(learners)])
            role = "acceptor" if victim in acceptors else "learner"
            return Fault(0.0, fault, hold_s, [victim], {"point": self.rng.choice(crashpoints.ROLES_POINTS[role])})
        if fault == "clock":
            # One actor's clock runs fast or slow: within [reads] clock_drift_max (90% of it), or,
            # with clock_beyond, that much beyond it (leases may then overlap).
            d = self.config.reads.clock_drift_max
            victim = self.rng.choice([leader, self.rng.choice(acceptors)])
            sign = self.rng.choice([-1.0, 1.0])
            rate = 1.0 + sign * (d + self.clock_beyond if self.clock_beyond else 0.9 * d)
            return Fault(0.0, fault, hold_s, [victim], {"rate": max(0.05, rate)})
        raise ValueError(f"no fault named {fault!r}")

    async def apply(self, step: Fault) -> None:
        """Do one fault (drawn now, or read from a schedule) and hold it for `hold_s`; `heal`
        ends it (the membership fault's change is over when it returns)."""
        kind, hold_s, targets, params = step.kind, step.hold_s, step.targets, step.params
        if kind == "membership":
            await self.apply_change(list(params["args"]), self._stop)
            return
        victim = targets[0] if targets else ""
        if kind == "kill":
            self.hold(victim)
            self.note(f"kill -9 {victim}")
            await self.act({"cmd": "kill", "name": victim, "signal": params.get("signal", "KILL"), "restart": True})
        elif kind == "pause":
            self.hold(victim, after_s=HOLD_LINK_S)
            self.note(f"SIGSTOP {victim} for {hold_s:.1f}s")
            await self.act({"cmd": "kill", "name": victim, "signal": "STOP", "restart": True})
            self.paused.add(victim)
        elif kind == "partition":
            self.hold(*targets, after_s=HOLD_LINK_S)
            self.note(f"partition {params['shape']} for {hold_s:.1f}s")
            await asyncio.to_thread(set_rules, self.config, params["rules"])
        elif kind == "chaos":
            self.note(f"link chaos {params['link']} for {hold_s:.1f}s")
            await asyncio.to_thread(set_rules, self.config, {n: {"*": params["link"]} for n in targets})
        elif kind == "wipe":
            self.hold(victim)
            self.acceptor_wiped = self.acceptor_wiped or bool(params.get("acceptor"))
            self.note(f"wipe {victim}")
            await self.act({"cmd": "wipe", "name": victim})
        elif kind == "power":
            self.hold(*targets)
            self.note(f"power loss of {'the whole cluster' if len(targets) > 1 else victim}")
            cut = await asyncio.to_thread(power_loss, self.config, targets, True,
                                          random.Random(int(params["cut_seed"])))
            self.note(f"  cut bytes: {cut}")
        elif kind == "crash":
            self.hold(victim)
            self.note(f"crash {victim} at {params['point']}")
            reply = await self.act({"cmd": "kill", "name": victim, "at": params["point"], "restart": True})
            if not reply.get("ok"):
                raise RuntimeError(f"kill {victim} --at {params['point']}: {reply.get('error')}")
        elif kind == "disk-full":
            if self.disk is None or victim != self.disk_owner:
                raise RuntimeError(f"no small disk for {victim} in this run (disk-full needs a mount)")
            self.hold(self.disk_owner)
            await self.fill_disk(hold_s)
            return
        elif kind == "clock":
            rate = float(params["rate"])
            self.note(f"clock of {victim} at {rate:.3f}x for {hold_s:.1f}s")
            await asyncio.to_thread(set_clocks, self.config, {victim: rate})
            self.clocks_set = True
        else:
            raise ValueError(f"no fault named {kind!r}")
        await asyncio.sleep(hold_s)

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
        if self.clocks_set:
            await asyncio.to_thread(set_clocks, self.config, {})
            self.clocks_set = False
        now = time.monotonic()
        until = {n: min(t, now + self.held_after.get(n, 0.0)) for n, t in self.held.items()}
        self.held, self.held_after = {n: t for n, t in until.items() if t > now}, {}
        for name in list(self.paused):
            await self.act({"cmd": "kill", "name": name, "signal": "CONT", "restart": True})
            self.paused.discard(name)

    # --- the membership fault ---------------------------------------------------------------

    async def membership_loop(self, stop: asyncio.Event) -> None:
        """One change every few seconds, alongside the other faults, until the run stops (a
        change under way finishes: each is bounded by `CHANGE_BUDGET_S` and `CHANGE_TRIES`)."""
        await asyncio.sleep(2.5)
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.change_membership(stop)
            except Exception as exc:  # reported, the run goes on
                self.note(f"fault membership could not be applied: {type(exc).__name__}: {exc}")
            self.stats.fault_spans.append((started, time.monotonic()))
            self.stats.faults["membership"] = self.stats.faults.get("membership", 0) + 1
            await asyncio.sleep(self.rng.uniform(1.0, 2.0))

    def removable(self, role: str, view: View) -> list[str]:
        """Members of `role` that may leave now: running, settled (not joining), held by no
        fault, not the disk-full acceptor; an acceptor only if the acceptors left that run and
        are not held are a majority of the new membership."""
        held = self.held_now()
        group = view.acceptors if role == "acceptor" else view.learners
        healthy = [n for n in group if view.state.get(n) == "running" and n not in held]
        out = [n for n in healthy if view.member.get(n) == "" and n != self.disk_owner]
        if role == "acceptor":
            out = [n for n in out if len(healthy) - 1 >= (len(group) - 1) // 2 + 1]
        else:
            out = [n for n in out if len(healthy) - 1 >= 1]  # reads stay available
        return out

    async def change_membership(self, stop: asyncio.Event) -> None:
        """One change, in the order add an acceptor, remove one, add a learner, remove one, ...;
        one in four does the other (so the cluster also grows to 5 acceptors), the bounds
        decide at a bound, and a removal with no member that may go safely adds instead."""
        step = self.changes_made % 4
        self.changes_made += 1
        role = "acceptor" if step < 2 else "learner"
        view = await self.view()
        group = view.acceptors if role == "acceptor" else view.learners
        low, high = ACCEPTORS if role == "acceptor" else LEARNERS
        add = (step % 2 == 0) != (self.rng.random() < 0.25)
        add = len(group) <= low or (len(group) < high and add)
        victim = None
        if not add:
            candidates = self.removable(role, view)
            if candidates:
                victim = self.rng.choice(candidates)
            elif len(group) < high:
                add = True
            else:
                self.stats.changes["skipped"] += 1
                self.note(f"membership: no {role} may leave now ({group}, held {sorted(self.held_now())}); skipped")
                return
        if victim is not None:
            args = ["remove", victim]
        else:
            prefix = "a" if role == "acceptor" else "l"
            while (name := f"{prefix}{self.next_member[role]}") in self.used_names:
                self.next_member[role] += 1
            known = {int(e.rsplit(":", 1)[1]) for e in self.endpoints()}
            port = next(p for p in iter(lambda: free_ports(1)[0], None) if p not in known)
            args = ["add", role, name, "--endpoint", f"tcp://127.0.0.1:{port}"]
        await self.run_step(Fault(0.0, "membership", 0.0, [args[1] if victim is not None else args[2]],
                                  {"args": args}, loop="membership"))

    async def apply_change(self, args: list[str], stop: asyncio.Event) -> None:
        """One change (`paxos members ARGS`), drawn now or read from a schedule."""
        victim = args[1] if args[0] == "remove" else None
        if victim is not None:
            self.removing.add(victim)  # at once: no other fault picks it from here on
        else:
            self.used_names.add(args[2])  # names are never reused, even after a refusal
        what = " ".join(args[:3])
        try:
            outcome = await self.members_change(args, stop)
        finally:
            self.removing.discard(victim or "")
        if victim is not None and outcome in ("applied", "unknown"):
            self.gone.add(victim)  # removed, or maybe: never a target again
        self.stats.changes[outcome] += 1
        if outcome == "unknown":
            self.note(f"membership: {what}: outcome unknown; in force now: {await self.members_in_force()}")

    def endpoints(self) -> list[str]:
        try:
            return [spec.endpoint for spec in load_members(self.cluster.config_path).actors.values()]
        except Exception:
            return [spec.endpoint for spec in self.config.actors.values()]

    async def members_change(self, args: list[str], stop: asyncio.Event) -> str:
        """`paxos members ARGS` through the CLI, asked again (a bounded number of times) while
        another change is inside its alpha window: "applied", "refused" or "unknown"."""
        what = " ".join(args[:3])
        deadline = time.monotonic() + CHANGE_BUDGET_S
        for attempt in range(CHANGE_TRIES):
            timeout_s = max(1.0, min(CHANGE_TIMEOUT_S, deadline - time.monotonic()))
            try:
                proc = await asyncio.to_thread(self.cluster.paxos, "members", *args, "--timeout-s",
                                               f"{timeout_s:.1f}", timeout_s=timeout_s + 30)
            except subprocess.TimeoutExpired:
                self.note(f"membership: {what}: the command did not return in time (outcome unknown)")
                return "unknown"
            reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
            if proc.returncode == 0:
                for m in re.finditer(r"started (\S+) \(pid (\d+)\)", proc.stdout):
                    self.cluster.seen_pids.add(int(m.group(2)))
                self.note(f"membership: {what}: {proc.stdout.strip().splitlines()[0]}")
                return "applied"
            if proc.returncode == 1 and any(w in reason for w in WAIT_FOR) and attempt + 1 < CHANGE_TRIES:
                if stop.is_set() or time.monotonic() > deadline - 1.0:
                    break
                await asyncio.sleep(0.5)
                continue
            if proc.returncode == 2:
                self.note(f"membership: {what}: exit 2: {reason}")
                return "unknown"
            self.note(f"membership: {what}: exit {proc.returncode}: {reason}")
            return "refused"
        self.note(f"membership: {what}: still refused after {attempt + 1} asks: {reason}")
        return "refused"

    async def members_in_force(self) -> str:
        """`paxos members --json`, in short (for the notes after an unknown outcome)."""
        proc = await asyncio.to_thread(self.cluster.paxos, "members", "--json")
        if proc.returncode != 0:
            return f"unknown (exit {proc.returncode}: {proc.stderr.strip()})"
        view = json.loads(proc.stdout)
        return (f"slot {view['slot']}: acceptors {[a['name'] for a in view['acceptors']]}, "
                f"learners {[lr['name'] for lr in view['learners']]}")

    # --- the run ---------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        t0 = self.t0 = time.monotonic()
        self.save_schedule()  # the seed and the options, before any fault
        recorder = Recorder(self.history_path, t0)
        # In fast mode every worker has a Client of its own: first attempts from different
        # clients race to the acceptors, and collisions happen.
        n_clients = self.workers if self.mode == "fast" else 4
        clients = [Client(self.cluster.config_path, timeout_s=self.op_timeout_s) for _ in range(n_clients)]
        for c in clients:
            await c.connect()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self.worker(i, clients[i % len(clients)], recorder, stop))
                 for i in range(self.workers)]
        nemesis = asyncio.create_task(self.nemesis(stop)) if self.faults else None
        await asyncio.sleep(self.duration_s)
        self.stats.load_span = (t0, time.monotonic())
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


def fast_counts(log_dir: Path) -> dict[str, int]:
    """The fast-mode events of the actors' logs (`<data_dir>/logs/*.jsonl`): fast rounds the
    leaders opened, collisions they detected (and slots they found stuck, recovered by a new
    ballot), collisions recovered per way as the leader saw the slot chosen (coordinated: its
    recovery Accept took a majority; uncoordinated: the acceptors' own recovery votes took a fast
    quorum), the recovery votes acceptors cast by themselves (uncoordinated), and fallbacks to
    classic ballots."""
    counts = dict.fromkeys(("fast_rounds", "collisions", "stuck", "recovered_coordinated",
                            "recovered_uncoordinated", "acceptor_recoveries", "fallbacks"), 0)
    for path in sorted(log_dir.glob("*.jsonl")):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not any(e in line for e in FAST_EVENTS):
                    continue
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:  # a torn last line (power loss)
                    continue
                if not isinstance(e, dict):
                    continue
                event, role = e.get("event"), e.get("role")
                if event == "fast_round_opened":
                    counts["fast_rounds"] += 1
                elif event == "classic_fallback":
                    counts["fallbacks"] += 1
                elif event == "collision_detected":
                    counts["stuck" if e.get("recovery") == "new_ballot" else "collisions"] += 1
                elif event == "collision_recovered" and role == "acceptor":
                    counts["acceptor_recoveries"] += 1
                elif event == "collision_recovered" and e.get("way") in ("coordinated", "uncoordinated"):
                    counts[f"recovered_{e['way']}"] += 1
    return counts


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


def lease_overlaps(config: ClusterConfig) -> tuple[int, list[str]]:
    """Leases never overlap, by the real host clock of the proposers' logs: no lease read served
    under ballot b1 (`lease_reads_served`, stamped with the time its lease was checked) after a
    leader of a higher ballot was elected (`leader_elected`, logged after its election: later, if
    anything, than the election itself). Returns (lease read batches seen, problems)."""
    elected: list[tuple[float, tuple[int, int], str]] = []
    served: list[tuple[float, tuple[int, int], str, int]] = []
    for spec in config.actors.values():
        if spec.role != "proposer" or not config.log_path(spec.name).exists():
            continue
        for line in config.log_path(spec.name).read_text(errors="replace").splitlines():
            if '"leader_elected"' not in line and '"lease_reads_served"' not in line:
                continue
            try:
                e = json.loads(line)
                r, n = (int(x) for x in str(e["ballot"]).split("."))
            except (ValueError, KeyError):
                continue
            if e.get("event") == "leader_elected":
                elected.append((float(e["ts"]), (r, n), spec.name))
            elif e.get("event") == "lease_reads_served":
                served.append((float(e.get("clock_ts") or e["ts"]), (r, n), spec.name, int(e.get("batches", 1))))
    elected.sort()
    problems = []
    for ts, ballot, name, _ in served:
        later = next(((t, b, who) for t, b, who in elected if b > ballot and t < ts), None)
        if later is not None:
            problems.append(f"lease overlap: {name} served reads under ballot {ballot[0]}.{ballot[1]} at {ts:.3f}, "
                            f"{(ts - later[0]) * 1000:.0f} ms after {later[2]} was elected with "
                            f"{later[1][0]}.{later[1][1]}")
    return sum(s[3] for s in served), problems


def check(history: Path, final: dict[str, str | None],
          learners: dict[str, tuple[int, list[tuple[int, str, str]]]],
          budget_s_per_key: float = 10.0) -> tuple[int, list[str]]:
    """`learners`: each learner's appends with their slots, and the slot its file starts from
    (`learner_appends`)."""
    from itertools import combinations

    from runtime.harness.check import appendlog, linearizability
    from runtime.harness.check.history import load

    ops = load(history)
    report = linearizability.check(ops, budget_s_per_key=budget_s_per_key)
    problems = [f"linearizability {r.key}: {'unknown (budget exhausted)' if r.valid is None else r.detail}"
                for r in report.results if r.valid is not True]
    append_final = {k: v for k, v in final.items() if k.startswith("a")}
    append_report = appendlog.check(ops, append_final)
    problems += [f"append: {v}" for v in append_report.violations]
    # Each learner's file starts at its latest snapshot (a learner the run added, or a wiped
    # one, starts late): each pair is compared from the later of their two starts, so a late
    # learner does not shorten what the others are compared on.
    for (a, (first_a, log_a)), (b, (first_b, log_b)) in combinations(sorted(learners.items()), 2):
        start = max(first_a, first_b)
        pair = {a: [(k, e) for slot, k, e in log_a if slot > start],
                b: [(k, e) for slot, k, e in log_b if slot > start]}
        problems += [f"append: {v}" for v in appendlog.check([], {}, pair).violations]
    return len(problems), problems


def schedule_path_for(history: Path, replaying: bool = False) -> Path:
    """Where a run writes its schedule by default: beside its history (a replay's own, of the
    faults it applied, under another name, so that it never overwrites the one it replays)."""
    return history.with_suffix(".replay.schedule.json" if replaying else ".schedule.json")


def run(duration_s: float, faults: list[str], history: Path, seed: int, keep: bool = False, bugs: str = "",
        workers: int = 12, whole_cluster_share: float = 0.3, mode: str = "classic",
        fast_recovery: str = "coordinated", acceptors: int = 0, clock_beyond: float = 0.0,
        schedule: Path | None = None, replay: Schedule | None = None) -> dict[str, Any]:
    """One run; `mode="fast"` runs Fast Paxos (`[protocol] mode`, with `fast_recovery`) on
    `acceptors` acceptors (0: 4 in fast mode, 3 in classic mode), without the membership fault.
    It writes its fault schedule to `schedule` (default: beside the history); with `replay` it
    applies that schedule's faults at their offsets instead of drawing its own (the caller passes
    the schedule's options too: `replay_run`)."""
    import uvloop

    root = Path(tempfile.mkdtemp(prefix="paxos-nemesis-"))
    schedule = schedule or schedule_path_for(history, replay is not None)
    nr = NemesisRun(root, faults, duration_s, history, seed, workers=workers,
                    whole_cluster_share=whole_cluster_share, mode=mode, fast_recovery=fast_recovery,
                    acceptors=acceptors, clock_beyond=clock_beyond, bugs=bugs, schedule_path=schedule,
                    replay=replay)
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
    # Every learner the run had: cluster.toml's and the ones the membership fault added (a
    # removed one's files stay); one that never wrote a wal has nothing to compare.
    config = load_members(nr.cluster.config_path)
    rebuilt = {spec.name: learner_appends(config, spec.name) for spec in config.actors.values()
               if spec.role == "learner" and config.wal_path(spec.name).exists()}
    violations, problems = check(history, outcome["final"], rebuilt)
    lease_reads, overlaps = lease_overlaps(config)
    violations += len(overlaps)
    problems += overlaps[:10]
    violations += outcome["final_failures"]
    if outcome["final_failures"]:
        problems.append(f"{outcome['final_failures']} final reads failed after healing")
    s = nr.stats
    summary = {
        "skipped": [f for f in faults if f not in nr.faults],
        "ops": s.ops, "ok": s.ok, "info": s.info, "fail": s.fail, "faults": sum(s.faults.values()),
        "violations": violations, "fault_kinds": s.faults, "fault_active_share": s.active_s() / duration_s,
        "membership": dict(s.changes), "learners_checked": sorted(rebuilt), "lease_reads": lease_reads,
        "lease_overlaps": len(overlaps),
        "ok_per_s": s.ok / duration_s, "problems": [p if len(p) < 400 else p[:400] + " ..." for p in problems[:20]],
        "data": str(root), "mode": mode, "acceptors": len(nr.acceptors),
        "fast": fast_counts(nr.config.data_dir / "logs") if mode == "fast" else {},
        "schedule": str(schedule), "scheduled": len(nr.schedule.faults),
        "replayed_from": len(replay.faults) if replay is not None else None,
    }
    if not keep and not violations:
        shutil.rmtree(root, ignore_errors=True)
    return summary


def replay_run(schedule: Schedule, history: Path, keep: bool = False, out: Path | None = None) -> dict[str, Any]:
    """`--replay`: a fresh cluster, the schedule's seed and options, its faults at their offsets.
    The faults are the same; the workload's operations are the same sequence (its own seeded
    generator), but their timing is the machine's, so what each fault meets differs."""
    o = schedule.options
    return run(float(o["duration_s"]), list(o["faults"]), history, schedule.seed, keep, o["bugs"], o["workers"],
               whole_cluster_share=float(o["whole_cluster_share"]), mode=o["mode"],
               fast_recovery=o["fast_recovery"], acceptors=o["acceptors"], clock_beyond=float(o["clock_beyond"]),
               schedule=out, replay=schedule)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.harness.nemesis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", "--duration-s", type=float, default=60.0,
                        help="seconds of load and faults per run")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, from {', '.join(FAULTS)}")
    parser.add_argument("--history", type=Path, default=Path("history.jsonl"))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--soak", type=float, default=0.0, metavar="HOURS",
                        help="repeat runs (fresh cluster, fresh history file each) for this many hours")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's directory")
    parser.add_argument("--bugs", default="", help="planted bugs for the actors (tests of the tests)")
    parser.add_argument("--mode", choices=MODES, default=CLASSIC,
                        help="[protocol] mode: fast runs Fast Paxos (4 acceptors unless --acceptors; "
                             "no membership fault, refused in fast mode)")
    parser.add_argument("--fast-recovery", choices=RECOVERIES, default=COORDINATED,
                        help="[protocol] fast_recovery: who recovers a collision in fast mode")
    parser.add_argument("--acceptors", type=int, default=0,
                        help=f"acceptors (default: 3, in fast mode {FAST_ACCEPTORS})")
    parser.add_argument("--clock-beyond", type=float, default=0.0, metavar="X",
                        help="the clock fault sets rates this far beyond [reads] clock_drift_max (a negative test: "
                             "leases may overlap); default 0: 90%% of the bound")
    parser.add_argument("--schedule", type=Path, default=None, metavar="PATH",
                        help="where to write the run's fault schedule, with its seed and options (default: beside "
                             "the history, HISTORY.schedule.json; a replay's: HISTORY.replay.schedule.json)")
    parser.add_argument("--replay", type=Path, default=None, metavar="FILE",
                        help="run FILE's schedule again on a fresh cluster: its seed, options and faults at their "
                             "offsets (the workload's timing may differ); takes only --history, --schedule, --keep")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay_main(parser, args)
    if args.mode == FAST and 0 < args.acceptors < FAST_ACCEPTORS_MIN:
        parser.error(f"fast mode needs at least {FAST_ACCEPTORS_MIN} acceptors")
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
        schedule = args.schedule if not (args.soak and args.schedule) else args.schedule.with_suffix(f".{runs}.json")
        summary = run(args.duration, faults, history, seed + runs, args.keep, args.bugs, args.workers,
                      mode=args.mode, fast_recovery=args.fast_recovery, acceptors=args.acceptors,
                      clock_beyond=args.clock_beyond, schedule=schedule)
        runs += 1
        total_violations += summary["violations"]
        report(summary, history, seed + runs - 1, faults, args.mode, args.fast_recovery)
        if not args.soak or time.monotonic() > deadline:
            break
    return 1 if total_violations else 0


# What a replay takes from its file, not from the command line.
RUN_OPTIONS = ("duration", "faults", "seed", "workers", "soak", "bugs", "mode", "fast_recovery", "acceptors",
               "clock_beyond")


def replay_main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    given = [f"--{k.replace('_', '-')}" for k in RUN_OPTIONS if getattr(args, k) != parser.get_default(k)]
    if given:
        parser.error(f"--replay runs the seed and options of its file; drop {', '.join(given)}")
    try:
        schedule = load_schedule(args.replay, FAULTS)
        o = schedule.options
        if o["mode"] not in MODES or o["fast_recovery"] not in RECOVERIES:
            raise ScheduleError(f"{args.replay}: options.mode must be one of {', '.join(MODES)} and "
                                f"options.fast_recovery one of {', '.join(RECOVERIES)}")
        if o["workers"] < 1 or o["acceptors"] < 0 or not 0.0 <= o["whole_cluster_share"] <= 1.0:
            raise ScheduleError(f"{args.replay}: options.workers must be at least 1, options.acceptors at least 0 "
                                f"and options.whole_cluster_share between 0 and 1")
        if o["mode"] == FAST and 0 < o["acceptors"] < FAST_ACCEPTORS_MIN:
            raise ScheduleError(f"{args.replay}: fast mode needs at least {FAST_ACCEPTORS_MIN} acceptors")
    except ScheduleError as exc:
        print(f"nemesis: {exc}", file=sys.stderr)
        return EXIT_BAD_SCHEDULE
    print(f"# replaying {args.replay}: seed {schedule.seed}, {len(schedule.faults)} faults over "
          f"{o['duration_s']:g}s", flush=True)
    summary = replay_run(schedule, args.history, args.keep, args.schedule)
    report(summary, args.history, schedule.seed, list(o["faults"]), o["mode"], o["fast_recovery"])
    return 1 if summary["violations"] else 0


def report(summary: dict[str, Any], history: Path, seed: int, faults: list[str], mode: str,
           fast_recovery: str) -> None:
    """A run's lines on stdout; the last is `ops=... violations=V`."""
    for p in summary["problems"]:
        print(f"VIOLATION {p}")
    if summary["skipped"]:
        print(f"# skipped faults (see stderr for why): {', '.join(summary['skipped'])}")
    if mode == FAST and "membership" in faults:
        print("# membership fault skipped: membership changes are refused in fast mode")
    fast = summary["fast"]
    if mode == FAST:
        print(f"# fast mode, {fast_recovery} recovery, {summary['acceptors']} acceptors: {fast}")
    if summary["violations"]:
        print(f"# kept the cluster's files in {summary['data']}; history in {history}")
    if "membership" in faults and "membership" not in summary["skipped"]:
        print(f"# membership changes {summary['membership']}; learner logs compared: "
              f"{', '.join(summary['learners_checked'])}")
    replayed = summary["replayed_from"]
    print(f"# schedule: {summary['scheduled']} faults in {summary['schedule']}" +
          (f" (replayed from a schedule of {replayed})" if replayed is not None else
           f" (run it again: --replay {summary['schedule']})"))
    print(f"# seed={seed} fault kinds {summary['fault_kinds']}, faults active "
          f"{summary['fault_active_share']:.0%} of the time, {summary['ok_per_s']:.0f} acknowledged ops/s, "
          f"{summary['lease_reads']} lease read batches, {summary['lease_overlaps']} lease overlaps")
    # Fast mode adds its counts before `violations=`, which stays last.
    counts = "".join(f"{k}={v} " for k, v in fast.items())
    print(f"ops={summary['ops']} ok={summary['ok']} info={summary['info']} fail={summary['fail']} "
          f"faults={summary['faults']} {counts}violations={summary['violations']}", flush=True)


if __name__ == "__main__":
    sys.exit(quiet_on_broken_pipe(main))
