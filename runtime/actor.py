"""One actor as one OS process: `python -m runtime.actor --config cluster.toml --name a1`.

The shell around a pure core: it replays the actor's wal through the core, then hands frames and
ticks to the turn driver (`runtime.turn.Turn`), which commits each turn in the only safe order:
persist (one frame, one fsync), then send, then log. It runs the same in the foreground (for
systemd or a person) and under the supervisor.

Crash-only: any exception while handling input or a tick ends the process at once, with the
error and its context in the log and a distinct exit code; memory that ran ahead of the disk
dies with it, and the supervisor's restart rebuilds the actor from its file alone.

Snapshots are written by a forked child (copy-on-write, as Redis's BGSAVE does), so the actor
keeps serving while the state is encoded and written; the child reports the file's size and
checksum through a pipe, and the next tick hands the core `SnapshotTaken`. Compaction writes the
new wal on a worker thread while appends go on to the old one (as Redis rewrites its AOF), and
renames it on a tick. An acceptor or
proposer whose file is gone although it ran before (its marker says so) starts a new file with
a `RebuildRecord` and rebuilds (actors/acceptor.py, actors/proposer.py) instead of refusing.

Exit codes: 0 stopped on request; 65 the wal is corrupt or not ours (fail-stop: do not
restart); 70 an invariant broke (our bug: fail-stop); 71 crashed on an unexpected error
(restarted by policy); 72 it ended itself at a crash point an operator armed (`paxos kill NAME
--at POINT`, runtime/crashpoints.py: a crash like 71, restarted by policy); 73 the wal is locked
by another process; 74 a write or fsync failed; 75 the disk
(or quota) holding one of its files is full (ENOSPC/EDQUOT, wherever it struck: the wal, a
snapshot, its marker): the last stderr line then reads `NAME: no space left on device: PATH: ...`,
and the supervisor fails it until space is freed instead of restarting it in a loop; 78 bad
configuration or arguments.

A full disk never makes the process hang or lie: its own log lines are dropped when they cannot
be written (runtime/logs.py), and every reply still waits for its record to be durable.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import json
import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from actors.core import Core
from actors.invariants import InvariantViolation
from actors.kv import KVStore
from actors.messages import COMMANDS, Message, Reply, SnapshotTaken
from actors.ready import Action, Compact, Event, TakeSnapshot
from actors.records import RebuildRecord, Record
from runtime import codec, crashpoints, keys, logs, metrics, step
from runtime.config import ClusterConfig, ConfigError
from runtime.control import die_with_parent
from runtime.members import load
from runtime.storage import DISK, Rewrite, SnapshotCorrupt
from runtime.trace import Ops, Tracer, capped, record_labels, starts_a_trace, status_only
from runtime.transport import Transport
from runtime.turn import PRODUCT, Kinds, replayer
from runtime.wal import Recovery, Wal, WalCorrupt, WalError, WalFatal, WalFormatError, WalLocked, compacted, gc_paused

EXIT_OK = 0
EXIT_CORRUPT = 65
EXIT_INVARIANT = 70
EXIT_CRASHED = 71
EXIT_CRASH_POINT = crashpoints.EXIT_CRASH_POINT  # 72
EXIT_LOCKED = 73
EXIT_IO = 74
EXIT_NOSPACE = 75
EXIT_CONFIG = 78
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
CRASH_LINGER_MS = 1000  # after-reply: at most this long for the replies to leave
CRASH_POLL_TICKS = 10  # how often an actor looks for a crash-point request (one stat: cheap, not free)


def no_space(exc: BaseException) -> OSError | WalFatal | None:
    """The full-disk error behind `exc` (itself or a cause), if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, WalFatal) and seen.no_space:
            return seen
        if isinstance(seen, OSError) and seen.errno in NO_SPACE_ERRNOS:
            return seen
        seen = seen.__cause__
    return None


def no_space_text(name: str, exc: OSError | WalFatal) -> str:
    """The stderr line a full disk ends the process with (the supervisor reads the path in it)."""
    path = exc.path if isinstance(exc, WalFatal) else exc.filename
    return f"{name}: no space left on device: {path or '?'}: {exc}"


class Fatal(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def build_core(config: ClusterConfig, name: str, rng: random.Random, kinds: Kinds = PRODUCT,
               debug_events: bool = False) -> Core:
    spec = config.actor(name)
    acceptors = [a.name for a in config.acceptors]
    learners = [lr.name for lr in config.learners]
    if spec.role == "acceptor":
        return kinds.acceptor(name, config.proposer_ids, learners, config.reply_bytes_max,
                              config.protocol.fetch_slots_max, acceptors=acceptors, bounds=config.wire_bounds,
                              alpha=config.history().alpha, fast=config.fast_rules(),
                              batch_bytes_max=config.protocol.batch_bytes_max,
                              lease_ticks=config.acceptor_lease_ticks)
    if spec.role == "proposer":
        # A proposer starts from the changes this machine knows the log chose (facts: a proposer
        # a change added must know it is one; a removed one that it must not campaign again).
        ids = {**config.proposer_ids, name: spec.id}
        return kinds.proposer(name, spec.id, ids, acceptors, learners, config.proposer_params(), rng,
                              debug_events=debug_events, history=config.known_history(),
                              reads=config.read_params())
    kv = KVStore(config.limits.key_bytes_max, config.limits.value_bytes_max, config.limits.sessions_max)
    snap = config.snapshot
    return kinds.learner(name, acceptors, codec.decode_client_batch, kv,
                         fetch_ticks=config.protocol.fetch_ticks, fetch_slots_max=config.protocol.fetch_slots_max,
                         proposer_ids=config.proposer_ids, debug_events=debug_events,
                         snapshot_every_slots=snap.every_slots if snap.enabled else 0,
                         snapshot_every_bytes=snap.every_bytes if snap.enabled else 0,
                         history=config.history(), fast=config.fast_rules())


@dataclass
class Compacting:
    """A compaction under way: the rewrite, and the worker's current step of it."""

    slot: int
    rewrite: Rewrite
    started: float  # time.perf_counter()
    step: Future[None]


class Hooks:
    """Seams for a test-mode process. The product runs with this base, which changes nothing;
    the harness's test actor (runtime/harness/actor.py) passes a subclass in."""

    kinds: Kinds = PRODUCT

    def started(self, shell: ActorShell) -> None:
        """After recovery, with the transport up and before the first turn."""

    def send_peer(self, send: Callable[[str, bytes], None]) -> Callable[[str, bytes], None]:
        """The function that sends a frame to a peer (a fault layer may wrap it)."""
        return send

    def tick(self, shell: ActorShell) -> None:
        """After every tick's turn."""


class ActorShell:
    def __init__(self, config: ClusterConfig, name: str, console: bool, hooks: Hooks | None = None) -> None:
        self.config = config
        self.spec = config.actor(name)
        self.name = name
        self.role = self.spec.role
        self.hooks = hooks or Hooks()
        self.logger = logs.configure(name, self.role, config.log_path(name), console, config.cluster.log_level)
        self.debug = logs.is_debug(self.logger)
        self.peers = {s.name: s.endpoint for s in config.actors.values() if s.name != name}
        kinds = self.hooks.kinds
        self.core = build_core(config, name, random.Random(int.from_bytes(os.urandom(8), "big")), kinds,
                               debug_events=self.debug)
        self.snapshots = kinds.snapshot_dir(DISK, config.snapshot_dir(name)) if self.role != "proposer" else None
        self.turn = kinds.turn(self.core, self, self.peers, config.limits.message_bytes_max, debug=self.debug,
                               snapshots=self.snapshots, chunk_bytes=config.snapshot.chunk_bytes,
                               tick_ms=config.cluster.tick_ms)
        self._snapshotting: tuple[int, int, int, float] | None = None  # (child pid, pipe fd, slot, started)
        self._compacting: Compacting | None = None
        self._compact_next: int | None = None  # a compaction asked for while one was under way
        self.wal_compacted_slot = 0  # the slot of this run's last wal compaction (its status says it)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-rewrite")
        self.wal: Wal | None = None
        self.transport: Transport | None = None
        self.started = time.monotonic()
        self.turns = 0
        self._stop = asyncio.Event()
        self._send_peer: Callable[[str, bytes], None] = lambda dest, frame: None
        self.stepper: step.Stepper | None = None  # step mode (runtime/step.py), once the transport is up
        self._client_sent = False
        self._encoder = codec.FrameEncoder(name)
        self._tick_s = config.cluster.tick_ms / 1000.0
        # A leader's lease is counted in its ticks (actors/lease.py): its ticks must follow the
        # monotonic clock, so a busy loop or a pause (SIGSTOP) never stretches one. Such a shell
        # runs the ticks it is late by before anything else, frames included.
        self._ticks_follow_clock = self.role == "proposer" and config.reads.lease
        self._next_tick = 0.0
        self._turn_ts = 0.0  # the wall time its tick count was last true for (lease_reads_served)
        tr = config.trace
        self.tracer = Tracer(config.trace_path(name), name, tr.frames_per_s, bytes_max=tr.file_bytes_max) \
            if tr.enabled else None
        self.turn.tracer = self.tracer
        # Metrics (runtime/metrics.py), kept as bucket counts and sent in the StatusReply: the
        # hot path pays a perf_counter pair per fsync and a look at the leader's new slots per turn.
        self._fsync_s = metrics.Buckets(metrics.FSYNC_BOUNDS_S)
        self._batch_sizes = metrics.Buckets(metrics.BATCH_BOUNDS) if self.role == "proposer" else None
        self._batch_bytes = metrics.Buckets(metrics.BATCH_BYTES_BOUNDS)
        self._lead_seen: object = None  # the leadership whose slots _proposed_through counts
        self._proposed_through = 0  # slots below it were observed in _batch_sizes
        # A crash point an operator armed (`paxos kill --at`, runtime/crashpoints.py); for
        # after-reply, whether this turn persisted (it ends once the turn's sends are out).
        self._crash_point: str | None = None
        self._crash_persisted = False
        self._crash_request = str(crashpoints.request_path(config.run_dir, name))
        self._crash_polls = 0

    # --- recovery --------------------------------------------------------------------------

    def recover(self) -> None:
        path = self.config.wal_path(self.name)
        marker = self.config.marker_path(self.name)
        # It promised, accepted or proposed before and its file is gone: a fresh file would forget
        # those promises and ballots, so it comes back rebuilding.
        rebuild = self.role != "learner" and marker.exists() and not path.exists()
        mode = self.config.protocol.mode
        recorded = marker.read_text().strip() if self.role != "learner" and marker.exists() else None
        if recorded is not None:
            # Its votes and ballots were made in that mode: read in the other, a fast round's
            # split votes would be taken for a classic one's (actors/fast.py). An old marker is
            # empty: classic.
            ran = recorded or "classic"
            if ran != mode:
                raise Fatal(EXIT_CONFIG, f"{self.name} ran in {ran} mode and cluster.toml says mode = {mode!r}: "
                                         f"the mode is fixed for a cluster's data (set it back, or start a new "
                                         f"data_dir)")
        t0 = time.perf_counter()
        with gc_paused():
            recovery = self._replay(path)
        # What replay built lives as long as the process: keep the collector from rescanning it.
        gc.freeze()
        if rebuild:
            record = RebuildRecord(False)
            self.core.apply(record)
            self.persist([record], True)
            self.logger.warning("rebuilding", reason="wal missing after it had run", marker=str(marker))
        if self.role != "learner":
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                if recorded != mode:
                    marker.write_text(mode)
            except OSError as exc:
                if exc.errno in NO_SPACE_ERRNOS:
                    raise Fatal(EXIT_NOSPACE, no_space_text(self.name, exc)) from None
                raise
        elapsed = time.perf_counter() - t0
        self.logger.info("recovered", records=recovery.count, frames=recovery.frames,
                         wal_bytes=recovery.bytes, created=recovery.created,
                         seconds=round(elapsed, 4), **_summary(self.core.status()))

    def _replay(self, path: Path) -> Recovery:
        """Open the wal and apply every record through the live path's `apply`."""
        try:
            self.wal, recovery = Wal.open(path, self.role, self.name, self.config.cluster.fsync,
                                          self.hooks.kinds.scanner, apply=replayer(self.core, self.snapshots))
        except WalLocked as exc:
            raise Fatal(EXIT_LOCKED, str(exc)) from None
        except WalFatal as exc:  # recovery could not cut a torn tail or write a header
            self.logger.critical("wal_write_failed", path=str(path), error=str(exc), where="recovery",
                                 no_space=exc.no_space)
            if exc.no_space:
                raise Fatal(EXIT_NOSPACE, no_space_text(self.name, exc)) from None
            raise Fatal(EXIT_IO, str(exc)) from None
        except (WalCorrupt, WalFormatError) as exc:
            self.logger.critical("wal_corrupt", path=str(path), error=str(exc),
                                 offset=getattr(exc, "offset", None))
            raise Fatal(EXIT_CORRUPT, str(exc)) from None
        except (InvariantViolation, TypeError) as exc:
            self.logger.critical("wal_corrupt", path=str(path), error=str(exc))
            raise Fatal(EXIT_CORRUPT, f"{path}: records contradict each other: {exc}") from None
        except SnapshotCorrupt as exc:
            self.logger.critical("snapshot_corrupt", path=str(path), error=str(exc))
            raise Fatal(EXIT_CORRUPT, f"{path} names a snapshot that cannot be read back: {exc}; "
                                      f"`paxos wipe {self.name}` lets it learn everything again") from None
        if recovery.truncated_at is not None:
            self.logger.warning("wal_tail_truncated", path=str(path), offset=recovery.truncated_at,
                                bytes_cut=recovery.truncated_bytes, torn=str(recovery.torn or ""),
                                **({"torn_not_kept": recovery.torn_error} if recovery.torn_error else {}))
        return recovery

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        # Crash-only, even for an error outside our callbacks (in the transport, say).
        loop.set_exception_handler(self._loop_error)
        self.recover()
        keyring = self._keyring()
        self.transport = Transport(zmq.Context.instance(), self.name, self.spec.endpoint, self.peers,
                                   self._on_frames, self.config.limits.message_bytes_max,
                                   keyring=keyring, on_refused=self._on_refused)
        try:
            self.transport.start()
        except zmq.ZMQError as exc:
            raise Fatal(EXIT_CONFIG, f"cannot bind {self.spec.endpoint}: {exc}") from None
        self._send_peer = self.hooks.send_peer(self.transport.send_peer)
        # Step mode holds what goes to peers before anything else sees it (a fault layer applies
        # when a held message is released).
        self._step_send = self._send_peer
        self.stepper = step.Stepper(self.config.run_dir, self.name, self._send_peer, self.core.status)
        self.stepper.on_tick, self.stepper.on_campaign = self._step_ticks, self._step_campaign
        self.stepper.release_send = self._send_released
        self.stepper.on_drop = lambda dest, frame: self._send_released(dest, frame, dropped=True)
        self._send_peer = self.stepper.send_peer
        self.hooks.started(self)
        self.stepper.flush()
        if self.tracer is not None:
            self.tracer.event("start", self.turn.clock.lc, pid=os.getpid(), role=self.role)
            self.tracer.flush()
        self.logger.info("actor_started", endpoint=self.spec.endpoint, pid=os.getpid(),
                         tick_ms=self.config.cluster.tick_ms, fsync=self.config.cluster.fsync)
        loop.call_later(self._tick_s, self._tick)
        try:
            await self._stop.wait()
        finally:
            if self.tracer is not None:
                self.tracer.flush()
            self.logger.info("actor_stopping", turns=self.turns, frames_in=self.transport.frames_in,
                             frames_out=self.transport.frames_out, dropped=self.transport.dropped)
            self.transport.close()
            self._worker.shutdown(wait=True, cancel_futures=True)  # a rewrite's temporary file: Wal.open drops it
            if self.wal is not None:
                self.wal.close()
            logs.flush()
        return EXIT_OK

    def _keyring(self) -> keys.Keyring | None:
        """This actor's keys, or None in the explicit insecure mode (warned about every start)."""
        if not self.config.security.curve:
            self.logger.warning("insecure_transport", reason="security.curve = false in "
                                f"{self.config.path}: anyone who can reach {self.spec.endpoint} may "
                                "speak as any actor or client")
            return None
        try:
            return keys.Keyring.load(self.config, self.name)
        except keys.KeyFileError as exc:
            raise Fatal(EXIT_CONFIG, f"{exc}; `paxos keys` creates missing keys") from None

    def _on_refused(self, who: bytes, reason: str, detail: str) -> None:
        """A handshake or frame the transport refused: logged through the turn (rate-limited)."""
        try:
            self.turn.refused(who, reason, detail)
            logs.flush()
        except Exception as exc:
            self.crash(exc, "refused")

    def _tick(self) -> None:
        if self._stop.is_set():
            return
        try:
            if self.stepper is not None and self.stepper.ticks_paused:
                # Step mode with paused timers: no core tick (no retransmission, no election)
                # until a step request runs some; nothing is owed when they resume.
                self._next_tick = 0.0
                asyncio.get_running_loop().call_later(self._tick_s, self._tick)
            elif self._ticks_follow_clock:
                self._catch_up(schedule=True)
            else:
                asyncio.get_running_loop().call_later(self._tick_s, self._tick)
                self.turn.tick()
                self._after_turn()
            if self._snapshotting is not None:
                self._snapshot_done()
            if self._compacting is not None and self._compacting.step.done():
                self._compaction_step()
            self.hooks.tick(self)
            if self.stepper is not None:
                self.stepper.poll()
                self.stepper.flush()
            if self.tracer is not None:  # every tick, even with the core's ticks paused
                self.tracer.flush_due(time.monotonic())
            self._take_crash_request()
        except Exception as exc:
            self.crash(exc, "tick")

    def _step_ticks(self, n: int) -> None:
        """A step request: run `n` core ticks now (step mode's timers are paused)."""
        for _ in range(n):
            self.turn.tick()
            self._after_turn()

    def _step_campaign(self) -> str:
        """A step request: a proposer's election timer fires now; why not, or ""."""
        campaign = getattr(self.core, "campaign", None)
        if self.role != "proposer" or campaign is None:
            return f"{self.name} is a {self.role}, not a proposer"
        self.turn.perform(campaign)
        self._after_turn()
        return ""

    def _catch_up(self, schedule: bool = False) -> None:
        """Run every tick due by the monotonic clock (one at least when `schedule`), then schedule
        the next at its due time."""
        now = time.monotonic()
        if not self._next_tick:
            self._next_tick = now
        if schedule or now >= self._next_tick:
            while True:
                self.turn.tick()
                self._after_turn()
                self._next_tick += self._tick_s
                now = time.monotonic()
                if now < self._next_tick:
                    break
                if getattr(self.core, "lead", None) is None:
                    # Not leading (or no longer: a leader back from a pause steps down in its late
                    # ticks), so no lease rests on its count: the rest of the late ticks are
                    # dropped, as every other actor's are, before frames from the others (a
                    # follower's late ticks would otherwise all count as silence and elect).
                    self._next_tick = now + self._tick_s
                    break
        if schedule:
            asyncio.get_running_loop().call_later(max(0.0, self._next_tick - time.monotonic()), self._tick)

    def _on_frames(self, batch: list[list[bytes]]) -> None:
        try:
            if self._ticks_follow_clock:
                if self._next_tick and time.monotonic() >= self._next_tick:
                    self._catch_up()
                self._turn_ts = time.time()
            if self.stepper is not None:
                self.stepper.received(batch, self.peers)
            self.turn.frames(batch)
            self._after_turn()
        except Exception as exc:
            self.crash(exc, "frames", frames=len(batch))

    def _after_turn(self) -> None:
        self.turns += 1
        if self._batch_sizes is not None:
            self._observe_batches()
        self._encoder.reset()  # per turn: a message sent to many is packed once
        if self._client_sent:
            self._client_sent = False
            assert self.transport is not None
            self.transport.after_sends()
        if self.stepper is not None and self.stepper.active:
            self.stepper.dirty = True  # the core's status may have changed: the index shows it
            self.stepper.flush()
        logs.flush()
        if self.tracer is not None:
            if self.stepper is not None and self.stepper.active:
                self.tracer.flush()  # a user steps by hand and reads the chart right after
            else:
                self.tracer.flush_due(time.monotonic())
        if self._crash_persisted:
            self._crash_at(crashpoints.AFTER_REPLY, flush_sends=True)

    # --- what the turn driver needs (runtime.turn.Shell) ---------------------------------

    def persist(self, records: list[Record], durable: bool) -> None:
        wal = self.wal
        assert wal is not None
        if self._crash_point is not None:
            self._persist_at_point(self._crash_point, records, durable)
            return
        tracer = self.tracer
        if tracer is None or not self.turn.traced:
            wal.append(records, sync=False)
            if durable:
                self._timed_sync()
            return
        # Traced: the write and the fsync apart (append then sync is what append(sync=True) does).
        ts, before = time.time(), wal.offset
        wal.append(records, sync=False)
        lc = self.turn.clock.lc
        t0 = time.perf_counter()
        tracer.event("persist", lc, ts=ts, m=record_labels(records), bytes=wal.offset - before, durable=durable)
        tracer.spent_s += time.perf_counter() - t0
        took_s = self._timed_sync() if durable else None
        if took_s is not None:
            tracer.event("fsync", lc, dur_us=round(took_s * 1e6))

    def send(self, dest: str, messages: list[Message]) -> None:
        turn, tracer = self.turn, self.tracer
        lc = turn.clock.send()
        # A message step mode holds is traced when it is released (_send_released), not here.
        held = self.stepper is not None and self.stepper.active and "." not in dest
        # A status answer is never traced, even in a traced turn: the supervisor asks every actor
        # several times a second, and a chart drew its session as a client column of its own.
        sampled = tracer is not None and not held and (turn.traced or starts_a_trace(messages)) \
            and not status_only(messages) and tracer.sample(turn.traced)
        frame = self._encoder.encode(messages, lc, sampled)
        if tracer is not None and (sampled or turn.traced):
            t0 = time.perf_counter()
            if turn.traced and "." in dest:
                ops = Ops()
                for m in messages:
                    if isinstance(m, Reply):
                        ops.results(dest, m.results)
                if ops.listed:
                    tracer.event("reply", lc, **capped(ops, {"to": dest}))
            if sampled:
                if not turn.traced and turn.takes_submit:
                    # A leader's frame sampled on its own: its Accept's slots get their assign, and
                    # the rest of the turn follows it (the Accept's other destinations too).
                    turn.traced = True
                    turn.trace_assigns(messages)
                tracer.send(dest, lc, messages)
            tracer.spent_s += time.perf_counter() - t0
        if dest in self.peers or ("." not in dest and self.learn_peer(dest)):
            self._send_peer(dest, frame)
        else:
            assert self.transport is not None
            self.transport.send_client(dest.encode(), frame)
            self._client_sent = True

    def _send_released(self, dest: str, frame: bytes, dropped: bool = False) -> None:
        """A message step mode held, sent now: stamped with a fresh clock and traced as it leaves;
        a dropped one is traced the same way, marked `dropped`, and never sent (the chart draws
        it lost). A drop is always traced, whatever the budget: it is the operator's doing, rare,
        and nothing else shows that the message ever existed."""
        tracer = self.tracer
        _, messages = codec.decode_frame(frame)
        lc = self.turn.clock.send()
        sampled = tracer is not None and (dropped or tracer.sample(True))
        if sampled:
            assert tracer is not None
            tracer.send(dest, lc, messages, dropped=dropped)
            tracer.flush()
        if not dropped:
            self._step_send(dest, codec.encode_frame(self.name, messages, lc, sampled))

    def sync(self) -> None:
        if self.wal is not None:
            self._timed_sync()

    def _timed_sync(self) -> float | None:
        """`wal.sync()`; its latency in seconds, observed and returned, when it did fsync (None
        when nothing was new or fsync is off)."""
        wal = self.wal
        assert wal is not None
        before = wal.fsyncs
        t0 = time.perf_counter()
        wal.sync()
        if wal.fsyncs == before:
            return None
        took_s = time.perf_counter() - t0
        self._fsync_s.observe(took_s)
        return took_s

    def _observe_batches(self) -> None:
        """The leader's batch sizes: client batches in each command slot it proposed since the
        last turn (a takeover's re-proposals, below its StartWorking, are not new batches)."""
        assert self._batch_sizes is not None
        lead: Any = getattr(self.core, "lead", None)
        if lead is None:
            return
        if lead is not self._lead_seen:
            self._lead_seen, self._proposed_through = lead, lead.sw_slot + 1
        end = lead.next_slot
        inflight = lead.inflight
        for slot in range(max(self._proposed_through, end - 4096), end):  # a turn proposes a window at most
            f = inflight.get(slot)
            if f is not None and f.value.kind == COMMANDS:
                self._batch_sizes.observe(len(f.value.batches))
                self._batch_bytes.observe(sum(len(b) for b in f.value.batches))
        self._proposed_through = max(self._proposed_through, end)

    def learn_peer(self, name: str) -> bool:
        """An actor that a membership change brought (runtime.turn.Shell): admitted when the core
        knows it from a membership (which carries its endpoint) and, with keys, the keys
        directory holds its key; from then on reached like a configured peer."""
        if name in self.peers or name == self.name:
            return name in self.peers
        endpoint = None
        for m in self.core.memberships():
            endpoint = m.endpoints().get(name, endpoint)  # the newest membership that names it
        if endpoint is None or not endpoint.startswith("tcp://"):
            return False
        keyring = self.transport.keyring if self.transport is not None else None
        if keyring is not None and not keyring.add_actor(name):
            self.logger.warning("peer_key_missing", peer=name, reason=f"no key for {name} in the keys directory "
                                "(`paxos members add` creates it; copy it here for a remote actor)")
            return False
        assert self.transport is not None
        try:
            self.transport.add_peer(name, endpoint)
        except zmq.ZMQError as exc:
            self.logger.warning("peer_unreachable", peer=name, endpoint=endpoint, reason=str(exc))
            return False
        self.peers[name] = endpoint
        self.turn.peers.add(name)
        self.logger.info("peer_added", peer=name, endpoint=endpoint)
        return True

    def act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, TakeSnapshot):
                self._take_snapshot(action.slot)
            elif isinstance(action, Compact):
                self._compact(action.slot)

    # --- crash points (`paxos kill NAME --at POINT`, runtime/crashpoints.py) ------------------

    def _take_crash_request(self) -> None:
        """Every few ticks: a crash point the supervisor asked for (its request file), armed here.
        One this role does not have (the file written by hand) is refused, with the reason."""
        self._crash_polls += 1
        if self._crash_polls % CRASH_POLL_TICKS or not os.path.exists(self._crash_request):
            return
        point = crashpoints.take_request(self.config.run_dir, self.name)
        if point is None:
            return
        try:
            self._crash_point = crashpoints.check(point, self.role)
        except crashpoints.CrashPointError as exc:
            self.logger.warning("crash_point_refused", point=point[:64], reason=str(exc))
            logs.flush()
            return
        self.logger.warning("crash_point_armed", point=point, pid=os.getpid())
        logs.flush()

    def _persist_at_point(self, point: str, records: list[Record], durable: bool) -> None:
        """The armed turn's persist: up to the point, then the end (after-reply goes on to the
        turn's sends and ends in `_after_turn`)."""
        wal = self.wal
        assert wal is not None
        kinds = sorted({type(r).__name__ for r in records})
        if point == crashpoints.BEFORE_PERSIST:
            self._crash_at(point, records=len(records), kinds=kinds)
        if point == crashpoints.TORN_WRITE:
            written, frame_bytes = wal.write_torn(records, crashpoints.torn_length)
            self._crash_at(point, records=len(records), kinds=kinds, torn_bytes=written,
                           frame_bytes=frame_bytes)
        if point == crashpoints.AFTER_WRITE:
            wal.append(records, sync=False)
            self._crash_at(point, records=len(records), kinds=kinds)
        wal.append(records, sync=durable)
        if point == crashpoints.AFTER_FSYNC:
            self._crash_at(point, records=len(records), kinds=kinds)
        self._crash_persisted = True  # after-reply

    def _crash_at(self, point: str, flush_sends: bool = False, **fields: Any) -> None:
        """End the process here, as asked: the event first (flushed), then, after a reply, the
        turn's frames out of ZeroMQ's queues (bounded by a linger), then exit 72."""
        wal = self.wal
        self.logger.warning("crash_point_reached", point=point, pid=os.getpid(),
                            wal_bytes=wal.offset if wal else 0, wal_synced_bytes=wal.synced_offset if wal else 0,
                            **fields)
        logs.flush()
        if self.tracer is not None:  # the chart marks where it died
            self.tracer.event("crash", self.turn.clock.lc, point=point)
            self.tracer.flush()
        if flush_sends:
            # Closing the sockets with a linger hands what they queued to the network first: an
            # after-reply crash whose replies never left would be an after-fsync one.
            zmq.Context.instance().destroy(linger=CRASH_LINGER_MS)
        say(f"{self.name}: ended itself at crash point {point} (paxos kill --at)")
        os._exit(EXIT_CRASH_POINT)

    # --- compaction on a worker thread -----------------------------------------------------

    def _compact(self, slot: int) -> None:
        """Replace the wal by the core's checkpoint, taken now (after this turn's records). The
        new file is written and fsynced on a worker thread while the actor keeps serving and
        appending (runtime.storage.Rewrite): a large file takes seconds to write, and every
        acceptor compacts at about the same moment. One at a time; one asked for meanwhile runs
        next, from the checkpoint of then."""
        assert self.wal is not None
        if self._compacting is not None:
            self._compact_next = slot
            return
        records = self.core.checkpoint()
        rewrite, header = self.wal.begin_rewrite()
        path = self.wal.path
        self._compacting = Compacting(slot, rewrite, time.perf_counter(), self._worker.submit(
            lambda: rewrite.write(compacted(path, header, records))))

    def _compaction_step(self) -> None:
        """On a tick, once the worker's step is done: the next round of what was appended
        meanwhile, or the rename (here, between turns: no append runs meanwhile)."""
        job, wal = self._compacting, self.wal
        assert job is not None and wal is not None
        failed = job.step.exception()
        if failed is not None:  # the old file is whole: keep serving from it, try again next time
            self._compacting = None
            wal.abandon_rewrite()
            self.logger.error("wal_compaction_failed", slot=job.slot, reason=str(failed))
            return
        chunk = job.rewrite.next_chunk()
        if chunk is not None:
            job.step = self._worker.submit(job.rewrite.copy, chunk)
            return
        self._compacting = None
        before = wal.end_rewrite()
        if self.snapshots is not None:
            self.snapshots.prune(job.slot)  # the old file, which named older snapshots, is gone
        self.wal_compacted_slot = job.slot
        self.logger.info("wal_compacted", slot=job.slot, bytes_before=before, bytes_after=wal.offset,
                         rounds=job.rewrite.rounds, seconds=round(time.perf_counter() - job.started, 4))
        if self._compact_next is not None:
            slot, self._compact_next = self._compact_next, None
            self._compact(slot)

    # --- snapshots in a forked child -------------------------------------------------------

    def _take_snapshot(self, slot: int) -> None:
        """Fork: the child sees the state as it is now (copy-on-write) and writes it; we go on."""
        assert self.snapshots is not None and self.wal is not None
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: write the file, report, leave without running any cleanup
            code = 1
            try:
                os.close(r)
                for fd in (self.wal.fd, self.wal.lock_fd):
                    os.close(fd)  # never hold the parent's lock if it dies first
                die_with_parent(signal.SIGKILL)  # never outlive the actor
                info = self.snapshots.write(self.role, self.name, slot, self.core.snapshot_state())
                os.write(w, f"{info.slot} {info.size_bytes} {info.crc}\n".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        self._snapshotting = (pid, r, slot, time.perf_counter())

    def _snapshot_done(self) -> None:
        assert self._snapshotting is not None
        pid, r, slot, started = self._snapshotting
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            return
        self._snapshotting = None
        report = os.read(r, 128).decode().split()
        os.close(r)
        if os.waitstatus_to_exitcode(status) != 0 or len(report) != 3:
            self.logger.error("snapshot_failed", slot=slot, exit=os.waitstatus_to_exitcode(status))
            self.turn.internal(SnapshotTaken(slot, 0, 0))
        else:
            self.logger.info("snapshot_written", slot=slot, bytes=int(report[1]),
                             seconds=round(time.perf_counter() - started, 4))
            self.turn.internal(SnapshotTaken(int(report[0]), int(report[1]), int(report[2])))
        self._after_turn()

    def log(self, events: list[Event]) -> None:
        log = self.logger
        for level, event, fields in events:
            if event == "lease_reads_served":
                # When its lease was checked (the log line itself comes after the sends): what the
                # lease-overlap check of real runs compares with the next leader's election.
                fields = {**fields, "clock_ts": self._turn_ts}
            getattr(log, level)(event, **fields)

    def status(self) -> dict[str, Any]:
        wal, transport = self.wal, self.transport
        snapshot_bytes = 0
        if self.snapshots is not None:
            snapshot_bytes = sum(DISK.size(self.snapshots.path / f) or 0 for f in DISK.listdir(self.snapshots.path))
        return {"name": self.name, "pid": os.getpid(), "uptime_s": round(time.monotonic() - self.started, 3),
                "wal_bytes": wal.offset if wal else 0, "wal_synced_bytes": wal.synced_offset if wal else 0,
                "snapshot_bytes": snapshot_bytes, "file_bytes": (wal.offset if wal else 0) + snapshot_bytes,
                "wal_compacted_slot": self.wal_compacted_slot,  # 0: none since it started
                "fsyncs": wal.fsyncs if wal else 0, "frames_dropped": transport.dropped if transport else 0,
                "trace_s": round(self.tracer.spent_s, 6) if self.tracer is not None else 0.0,
                # Status values are scalars (runtime/codec.py): the per-peer counts go as JSON.
                "frames_to": json.dumps(transport.frames_to if transport else {}, separators=(",", ":")),
                **self._metrics_status()}

    def _metrics_status(self) -> dict[str, Any]:
        """The metrics fields of a StatusReply (runtime/metrics.py): one JSON string, and a
        learner's commands applied (what `paxos status --watch` takes commands per second from)."""
        histograms = {"fsync_seconds": self._fsync_s}
        if self._batch_sizes is not None:
            histograms |= {"batch_size": self._batch_sizes, "batch_bytes": self._batch_bytes}
        out: dict[str, Any] = {"metrics": metrics.encode(histograms, getattr(self.turn, "rejected", {}))}
        kv = getattr(self.core, "kv", None)
        if kv is not None:
            out["commands_applied"] = kv.applied_commands
        return out

    # --- crash-only ------------------------------------------------------------------------

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.crash(exc if isinstance(exc, BaseException) else RuntimeError(str(context.get("message"))),
                   "event_loop")

    def crash(self, exc: BaseException, where: str, **context: Any) -> None:
        """End the process now. Nothing of this turn has left unless its records were durable
        first (the driver commits in that order), and whatever ran ahead in memory dies here."""
        if isinstance(exc, InvariantViolation):
            self.logger.critical("invariant_violated", rule=exc.rule, where=where,
                                 **{k: str(v) for k, v in exc.state.items()})
            code, text = EXIT_INVARIANT, f"invariant violated: {exc}"
        elif (full := no_space(exc)) is not None:
            path = full.path if isinstance(full, WalFatal) else full.filename
            self.logger.critical("disk_full", path=str(path or ""), error=str(full), where=where)
            code, text = EXIT_NOSPACE, no_space_text(self.name, full)
        elif isinstance(exc, WalFatal):
            self.logger.critical("wal_write_failed", error=str(exc), where=where)
            code, text = EXIT_IO, str(exc)
        else:
            self.logger.critical("actor_crashed", error=f"{type(exc).__name__}: {exc}", where=where,
                                 state=self.core.status().get("state"), **context,
                                 traceback="".join(traceback.format_exception(exc))[-4000:])
            code, text = EXIT_CRASHED, f"crashed in {where}: {type(exc).__name__}: {exc}"
        logs.flush()
        if self.tracer is not None:
            self.tracer.event("crash", self.turn.clock.lc, point=where, error=f"{type(exc).__name__}: {exc}"[:200])
            self.tracer.flush()
        say(text if code == EXIT_NOSPACE else f"{self.name}: {text}")
        os._exit(code)


def say(text: str) -> None:
    """The last word on stderr; a full disk under the stderr file must not stop the exit."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def _summary(status: dict[str, Any]) -> dict[str, Any]:
    keep = ("promised", "highest_slot", "chosen_through", "delivered", "round", "epoch")
    return {k: v for k, v in status.items() if k in keep}


def _set_parent_death_signal() -> None:
    """Under the supervisor: die with it, so no actor outlives a killed supervisor."""
    parent = os.environ.get("PAXOS_SUPERVISOR_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    if not die_with_parent(signal.SIGKILL):
        return
    if os.getppid() != int(parent):
        os._exit(EXIT_OK)  # the supervisor is already gone


def main(argv: Sequence[str] | None = None, hooks: Hooks | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.actor",
                                     description="Run one actor of a Paxos cluster in the foreground.")
    parser.add_argument("--config", default="cluster.toml", help="cluster config (default: ./cluster.toml)")
    parser.add_argument("--name", required=True, help="the actor's name in the config")
    parser.add_argument("--no-console", action="store_true", help="log to the JSON file only")
    args = parser.parse_args(argv)
    _set_parent_death_signal()
    try:
        config = load(args.config)
        config.actor(args.name)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        import uvloop
        runner: Callable[[Any], int] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; this is a fallback
        runner = asyncio.run
    shell = ActorShell(config, args.name, console=not args.no_console, hooks=hooks)
    profile_dir = os.environ.get("PAXOS_PROFILE", "")  # diagnostics: cProfile stats at shutdown
    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        return runner(shell.run())
    except Fatal as exc:
        logs.flush()
        say(str(exc) if exc.code == EXIT_NOSPACE else f"{args.name}: {exc}")
        return exc.code
    except WalFatal as exc:  # a write in recovery (a rebuild's first record, say)
        logs.flush()
        say(no_space_text(args.name, exc) if exc.no_space else f"{args.name}: {exc}")
        return EXIT_NOSPACE if exc.no_space else EXIT_IO
    except WalError as exc:
        logs.flush()
        say(f"{args.name}: {exc}")
        return EXIT_CORRUPT
    except OSError as exc:  # before the loop ran (the log file, say): a full disk is said as such
        if exc.errno not in NO_SPACE_ERRNOS:
            raise
        logs.flush()
        say(no_space_text(args.name, exc))
        return EXIT_NOSPACE
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(os.path.join(profile_dir, f"{args.name}.prof"))


if __name__ == "__main__":
    sys.exit(main())
