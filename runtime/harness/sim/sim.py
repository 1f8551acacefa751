"""Deterministic simulation of a whole cluster in one thread, on virtual time, from one seed.

The same `actors/` cores behind the same turn driver as real processes (`runtime.turn.Turn`:
every frame is encoded, decoded and admitted; invariants after every step; the commit order and
the sync policy), the same wal framing and recovery scan, and clients that run the real client's
core (`actors/client.py`). Every choice (delays, losses, duplicates, partitions, crashes, crash
points, clock rates, client operations, protocol timings) is drawn from one
`random.Random(seed)`, so a seed and a commit give the same run bit for bit (`trace_hash`).

A run has a safety phase with faults, then heals everything (partitions lifted, losses off,
every actor restarted) and runs a liveness phase in which every outstanding client command must
be answered and every learner must converge to the same state within a bound of virtual time.

Invariants are checked as events happen (see `Invariants`); the first violation ends the run.

Byzantine-lite (`SimConfig.byzantine`): a forger mixes frames into the run that claim to come from
a proposer, an acceptor or a name of no actor, and carry numbers out of bounds (rounds far above
any known, watermarks above the ceiling, far-future slots, votes from a non-acceptor or under a
ballot of no proposer; see `Forger`). Each is delivered as a turn of its own, and must be
rejected with a reason and change nothing: no record, no message, no action, the same core
state; else the run fails (`byzantine`). The forger draws from a random generator of its own and
its deliveries leave no note in the trace, so a run with it has the trace hash of the run
without it: the proof that none of its frames changed anything at all.

Membership changes (`SimConfig.membership`, issue 11): spare acceptors and a spare learner run
from the start outside the bootstrap membership (no one sends them anything), and a simulated
operator asks the serving leader, now and then during the safety phase, for the next change of a
plan (grow 3 -> 5 acceptors, shrink back, add the spare learner, replace the three original
acceptors one by one by new names, remove the first learner, then the leader removes itself and
is added back), retrying while it is refused. An added learner starts empty and must catch up
like any other before the run converges. The ghost
decides a slot chosen by a majority of the membership chosen alpha slots before it
(`_members_at`), once it knows every slot up to there; every other check is the same. Acceptors
and learners lose their files as in other runs (proposers do not: see `_may_wipe`), and an
acceptor of the membership in force that lost its file must have rebuilt, from the acceptors
of the memberships that name it, before the run counts as converged.

Fast Paxos (`SimConfig.mode = "fast"`, `--mode fast [--fast-recovery uncoordinated]`, issue 12):
4 or 5 acceptors (by the seed's parity), every actor under the same `FastRules`, fallback knobs
drawn small enough that a run falls back to classic rounds and back, and clients whose first
attempts go to every acceptor (the real client core with `fast=True`). The ghost counts a value
chosen under a fast ballot, and under an uncoordinated recovery round, only when a fast quorum of
acceptors voted for it; under a classic ballot, a coordinated recovery round, or a leader's own
proposal under its fast ballot, a majority (`_fast_vote`). The recoveries are counted
(`SimResult.fast_events`) so tests can see that each kind happens.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from actors.acceptor import Acceptor
from actors.ballot import ZERO, Ballot
from actors.bounds import ROUND_MAX, SLOT_MAX
from actors.client import ClientCore, ClientParams, ClientReady
from actors.fast import FastRules, classic_quorum, fast_quorum
from actors.invariants import InvariantViolation
from actors.kv import KVStore
from actors.learner import Learner
from actors.lease import ReadParams
from actors.membership import History, Membership
from actors.membership import decode as decode_membership
from actors.messages import (
    COMMANDS,
    MEMBERSHIP,
    NOOP,
    START,
    Accept,
    Accepted,
    FastAccept,
    Fetch,
    Fetched,
    Heartbeat,
    Message,
    Nack,
    Prepare,
    Promise,
    Recover,
    Recovered,
    Submit,
    Value,
    Vote,
)
from actors.proposer import LEADER, Proposer, ProposerParams
from actors.ready import Action, Compact, Event
from actors.records import DecidedRecord, RebuildRecord, Record
from runtime import codec
from runtime.harness.sim.world import Files
from runtime.storage import CRASH_POINTS as STORAGE_CRASH_POINTS
from runtime.storage import SnapshotCorrupt
from runtime.turn import PRODUCT, REJECTIONS, Kinds, Turn, replayer
from runtime.wal import WalCorrupt, scan

US = 1_000_000  # virtual time unit: microseconds
MGET_SHARE = 0.3  # of the reads that take the read path: an mget of every register key (Client.get_many)
DROP_LEADER, RESTORE_PROPOSERS = "drop_leader", "restore_proposers"  # operator steps made when due
# A commit's crash points, and those inside replacing a file whole (a snapshot being written or
# installed, the wal being compacted: runtime/storage.CRASH_POINTS, prefixed).
CRASH_POINTS = ("before_persist", "after_write_before_fsync", "after_fsync_before_send", "mid_send",
                *(f"replace:{p}" for p in STORAGE_CRASH_POINTS))


FAST_EVENTS = {"fast_round_opened": "fast_opened", "collision_detected": "collision",
               "collision_recovered": "recovered", "classic_fallback": "fallback"}


class Violation(Exception):
    """An invariant broke; `rule` names it."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


class _Crashed(Exception):
    """Raised inside a commit to stop it at a crash point."""


class _SimShell:
    """One actor's shell in the simulation: its disk, its network, and an armed crash point that
    may stop a commit between any two of its effects."""

    def __init__(self, sim: Simulation, name: str) -> None:
        self.sim = sim
        self.name = name
        self.actor = sim.actors[name]
        self.encoder = codec.FrameEncoder(name)  # per turn: a message sent to many is packed once
        self.point: str | None = None
        self.cut_at = 0
        self.sent = 0
        self.touched = False

    def begin(self, point: str | None, cut_at: int) -> None:
        self.point, self.cut_at, self.sent, self.touched = point, cut_at, 0, False
        self.encoder.reset()

    def persist(self, records: list[Record], durable: bool) -> None:
        self.touched = True
        if self.point == "before_persist":
            raise _Crashed
        disk = self.actor.disk
        disk.append(records, sync=False)
        if self.point == "after_write_before_fsync":
            raise _Crashed
        if durable:
            disk.sync()

    def send(self, dest: str, messages: list[Message]) -> None:
        self.touched = True
        if self.point == "after_fsync_before_send" or (self.point == "mid_send" and self.sent >= self.cut_at):
            raise _Crashed
        self.sent += 1
        self.sim._check_send(self.name, dest, messages)
        # No trace context (lc 0): a forged frame moves the receiver's clock, and the run with the
        # forger must stay the very run without it (the same trace hash).
        self.sim._network_send(self.name, dest, self.encoder.encode(messages))

    def sync(self) -> None:
        self.actor.disk.sync()

    def act(self, actions: list[Action]) -> None:
        self.touched = True
        sim, actor = self.sim, self.actor
        incarnation = actor.incarnation
        actor.files.act(self.name, actor.core, actions, lambda m: sim._schedule(
            sim.rng.randrange(1_000, 30_000), "internal", (self.name, incarnation, m)))
        if any(isinstance(a, Compact) for a in actions):
            sim._check_held(f"{self.name} compacted")

    def crash(self, point: str) -> None:
        """runtime.storage's hook: stop at the armed point inside a file replacement."""
        if self.point == f"replace:{point}":
            raise _Crashed

    def log(self, events: list[Event]) -> None:
        # What honest traffic got rejected for (the forger's frames never come here): a bound
        # that rejects a legit message would cost liveness, so tests require none of those.
        rejected = self.sim.rejected
        fast = self.sim.fast_events
        for _, event, f in events:
            if event in REJECTIONS:
                reason = str(f.get("reason"))
                rejected[reason] = rejected.get(reason, 0) + 1
            elif event in FAST_EVENTS:
                # Fast mode's recoveries, counted so a test can see that each kind happens.
                key = FAST_EVENTS[event] + (f".{f.get('way') or f.get('recovery')}" if event.startswith("collision")
                                            else "") + ("@acceptor" if self.actor.role == "acceptor" else "")
                fast[key] = fast.get(key, 0) + 1
            elif event in ("leader_elected", "lease_reads_served"):
                self.sim._check_lease(self.name, event, f)

    def status(self) -> dict[str, Any]:
        return {}


@dataclass
class SimConfig:
    """What a seed may vary; `draw` picks concrete values from the seed."""

    proposers: int = 2
    acceptors: int = 3
    learners: int = 2
    clients: int = 3
    safety_ms: int = 3000
    liveness_ms: int = 20000
    ops_per_client: int = 40
    faults: bool = True
    wipes: bool = True  # a crash may also wipe an actor's files (at most one acceptor a run)
    byzantine: bool = False  # a forger mixes out-of-bound frames into the run (see `Forger`)
    membership: bool = False  # an operator grows, shrinks and replaces acceptors through the log
    # Fast Paxos (actors/fast.py): "fast" runs 4 or 5 acceptors (by the seed's parity) and clients
    # whose first attempts go to every acceptor; `fast_recovery` is how collisions are recovered.
    mode: str = "classic"
    fast_recovery: str = "coordinated"


@dataclass
class Drawn:
    tick_ms: int
    params: ProposerParams
    drop: float
    dup: float
    delay_mean_us: int
    crash_every_ms: int
    partition_every_ms: int
    power_crash: float  # share of crashes that lose unsynced bytes (else a process crash)
    clock_rate: dict[str, float]
    cpu_us: dict[str, int]
    fetch_ticks: int
    client_retry_s: float
    snapshot_every_slots: int
    chunk_bytes: int
    wipe_share: float  # of crashes that also wipe the actor's files
    alpha_slots: int = 0  # (membership runs) the alpha of the alpha rule
    fast_off_s: float = 1.0  # (fast runs) how long a client uses the leader after a no_fast_round
    # Reads without a log write (actors/lease.py): the bound every clock rate is drawn within,
    # which the leaders are configured with too.
    reads: ReadParams = field(default_factory=ReadParams)
    lease_read_share: float = 0.0  # of gets that take the read path (the rest go through the log)


@dataclass
class SimActor:
    name: str
    role: str
    files: Files = field(default_factory=Files)
    core: Any = None
    turn: Turn | None = None
    shell: _SimShell | None = None
    incarnation: int = 0
    busy_until: int = 0
    crash_point: str | None = None
    announced: Ballot = ZERO  # highest ballot this acceptor ever told anyone it promised
    ballot_used: Ballot = ZERO  # highest ballot this proposer sent an Accept under, across files lost
    shadow: Any = None  # the actor as its durable bytes alone would rebuild it
    shadow_offset: int = 0
    shadow_file: Any = None  # the wal file the shadow was built from (compaction replaces it)
    marker: bool = False  # it has voted or proposed (runtime/actor.py's marker file)
    inbox: list[tuple[str, bytes]] = field(default_factory=list)  # arrived while it was busy
    wiped: int = 0
    installed: bool = False  # a learner that restored a snapshot fetched from an acceptor
    # It had a turn since it (re)started: the end-of-turn work its replay left (a snapshot that is
    # due) is done, so a turn of a forged frame alone has nothing to do (see `Forger`).
    turned: bool = False

    @property
    def disk(self) -> Any:
        return self.files.disk


@dataclass
class SimOp:
    """One operation of the history: which process invoked what."""

    process: int
    f: str
    key: str
    command: list[Any]
    read: bool = False  # through the read path (never in the log)
    # An mget (Client.get_many): the process of each further key, a history process of its own
    # (one that invokes nothing else), so each key's read is checked as a get of its own.
    more: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class SimClient:
    name: str
    core: ClientCore
    issued: int = 0
    ops: dict[int, SimOp] = field(default_factory=dict)  # by seq: invoked, not yet answered
    free: list[int] = field(default_factory=list)  # idle process ids


@dataclass
class SimResult:
    seed: int
    ok: bool
    rule: str = ""
    detail: str = ""
    events: int = 0
    virtual_ms: float = 0.0
    trace_hash: str = ""
    acked: int = 0
    crashes: int = 0
    partitions: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    last_events: list[str] = field(default_factory=list)
    forged: int = 0  # forged frames delivered (each rejected, none changed anything)
    forged_reasons: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # honest traffic rejected, by reason
    fast_events: dict[str, int] = field(default_factory=dict)  # fast mode's recoveries (`FAST_EVENTS`)
    mode: str = "classic"
    fast_recovery: str = "coordinated"
    reads_acked: int = 0  # reads answered through the read path (not in `acked`)
    lease_reads: int = 0  # read batches served under a lease

    def repro(self, bugs: frozenset[str] | set[str] = frozenset()) -> str:
        extra = f" --bugs {','.join(sorted(bugs))}" if bugs else ""
        if self.mode != "classic":
            extra += f" --mode {self.mode} --fast-recovery {self.fast_recovery}"
        return f"python -m runtime.harness.sim --seed {self.seed}{extra}"


class Simulation:
    def __init__(self, seed: int, config: SimConfig | None = None, kinds: Kinds = PRODUCT,
                 check_linearizability: bool = True) -> None:
        self.seed = seed
        self.config = config or SimConfig()
        self.kinds = kinds
        self.check_linearizability = check_linearizability
        self.rng = random.Random(seed)
        # Whether a read is an mget: drawn apart, so that the main stream of draws (and what a
        # seed means) is the same as before mgets were.
        self.mget_rng = random.Random(seed ^ 0x6D676574)
        self.mget_process = 1_000_000  # the history processes of an mget's further keys
        c = self.config
        self.proposers = [f"p{i}" for i in range(1, c.proposers + 1)]
        # Spare acceptors (membership runs) run from the start, outside the bootstrap membership.
        spares = 5 if c.membership else 0
        self.fast = FastRules(c.mode, c.fast_recovery)
        if self.fast.enabled:
            if c.membership:
                raise ValueError("fast mode takes no membership change (actors/proposer.py)")
            # 4 or 5 acceptors (fast quorums 3 and 4), by the seed: no draw, so the draws of a
            # seed mean what they mean in classic runs.
            c = self.config = SimConfig(**{**c.__dict__, "acceptors": max(c.acceptors, 4 + seed % 2)})
        self.acceptors = [f"a{i}" for i in range(1, c.acceptors + spares + 1)]
        self.initial_acceptors = self.acceptors[:c.acceptors]
        # And a spare learner, which the operator adds (it starts empty and catches up).
        self.learners = [f"l{i}" for i in range(1, c.learners + (1 if c.membership else 0) + 1)]
        self.initial_learners = self.learners[:c.learners]
        self.names = [*self.proposers, *self.acceptors, *self.learners]
        self.proposer_ids = {n: i for i, n in enumerate(self.proposers, start=1)}
        self.majority = c.acceptors // 2 + 1
        self.drawn = self._draw()
        self.bootstrap = Membership(tuple((p, self.proposer_ids[p], f"sim://{p}") for p in self.proposers),
                                    tuple((a, f"sim://{a}") for a in self.initial_acceptors),
                                    tuple((n, f"sim://{n}") for n in self.initial_learners))
        self.ghost_history = History(self.bootstrap, self.drawn.alpha_slots or self.drawn.params.window_slots)
        self.ghost_through = 0  # every slot up to here is chosen, as the ghost saw
        self.undecided: set[int] = set()  # slots whose membership the ghost does not know yet
        self.plan: list[Membership | str] = self._plan() if c.membership else []
        self.changes: list[tuple[float, int, str]] = []  # (virtual ms, slot, members) proposed
        # A compaction's later rounds are due a few milliseconds on (a worker writes the file); a
        # small tail threshold makes the rounds that copy what was appended meanwhile happen.
        self.actors = {n: SimActor(n, self._role(n), Files(snapshot_dir=kinds.snapshot_dir, tail_bytes_finish=256,
                                                           later=partial(self._rewrite_later, n)))
                       for n in self.names}
        d = self.drawn
        # The real client's core; its deadline is past the end of the run: an answer that never
        # comes is a liveness failure here, not an outcome to shrug at.
        client_params = ClientParams(timeout_s=(c.safety_ms + c.liveness_ms) / 1000 + 60, retry_s=d.client_retry_s,
                                     batch_bytes_max=d.params.batch_bytes_max, fast=self.fast.enabled,
                                     fast_off_s=d.fast_off_s)
        client_acceptors = list(self.initial_acceptors) if self.fast.enabled else None
        self.clients = [SimClient(f"c{i}", ClientCore(f"c{i}", self.proposers, self.initial_learners,
                                                      codec.encode_client_batch, client_params,
                                                      acceptors=client_acceptors),
                                  free=list(range(i * 4, i * 4 + 4))) for i in range(c.clients)]
        for cl in self.clients:
            cl.core.target = self.rng.randrange(len(self.proposers))
        self.client_by_name = {cl.name: cl for cl in self.clients}
        self.now = 0
        self.heap: list[tuple[int, int, str, Any]] = []
        self.seq = 0
        self.events = 0
        self.trace = hashlib.sha256()
        self.blocked: set[tuple[str, str]] = set()
        self.lossy = c.faults
        self.healed = False
        self.history: list[dict[str, Any]] = []
        self.sent_blobs: set[bytes] = set()
        # Ghost state for the invariants.
        self.votes: dict[tuple[int, Ballot], dict[str, Value]] = {}
        self.proposed: dict[tuple[int, Ballot], Value] = {}
        self.chosen: dict[int, Value] = {}
        self.delivered: dict[int, Value] = {}
        self.applied: dict[str, list[tuple[str, int]]] = {n: [] for n in self.learners}
        self.acked: dict[tuple[str, int], Any] = {}
        self.crashes = 0
        self.partitions = 0
        self.recent: list[str] = []
        self.rejected: dict[str, int] = {}  # rejections of honest traffic, by reason (`_SimShell.log`)
        self.fast_events: dict[str, int] = {}
        self.elected: tuple[Ballot, str, int] = (ZERO, "", 0)  # the highest ballot elected: who, when
        self.lease_reads = 0  # read batches served under a lease
        self.reads_acked = 0  # reads answered through the read path
        for name in self.names:
            self._start(name)
        for cl in self.clients:
            self._schedule(self.rng.randrange(5_000, 50_000), "client", cl.name)
            self._schedule(self._client_timer_us(), "client_timer", cl.name)
        if self.plan:
            self._schedule(self.rng.randrange(100_000, 600_000), "members", None)
        if c.faults:
            self._schedule(self.rng.randrange(100_000, 500_000), "crash", None)
            self._schedule(self.rng.randrange(100_000, 800_000), "partition", None)
        self._schedule(c.safety_ms * 1000, "heal", None)
        self.forger = Forger(self, random.Random(seed * 1_000_003 + 7)) if c.byzantine else None
        if self.forger is not None:
            self._schedule(self.forger.rng.randrange(1_000, 20_000), "forge", None)

    # --- setup -----------------------------------------------------------------------------

    def _role(self, name: str) -> str:
        return {"p": "proposer", "a": "acceptor", "l": "learner"}[name[0]]

    def _draw(self) -> Drawn:
        r = self.rng
        election = r.randint(10, 40)
        params = ProposerParams(
            heartbeat_ticks=r.randint(2, max(2, election // 3)),
            election_ticks=election,
            backoff_max=r.choice([2, 4, 8]),
            retry_ticks=r.randint(5, 30),
            window_slots=r.choice([1, 2, 4, 16, 64]),
            batch_bytes_max=r.choice([200, 2048, 64 * 1024]),
            batch_count_max=r.choice([1, 4, 64]),
            message_bytes_max=r.choice([4096, 1 << 20]),
            queue_batches_max=r.choice([4, 64, 1024]),
        )
        alpha = 0
        if self.config.membership:
            # An alpha at or above the window (drawn here, after the protocol's knobs: the order of
            # draws is what a seed means).
            alpha = params.window_slots + r.choice([0, 1, 3, params.window_slots])
            params = ProposerParams(**{**{f: getattr(params, f) for f in params.__slots__}, "alpha_slots": alpha})
        fast_off_s = 1.0
        if self.fast.enabled:
            # Fast knobs (drawn after every other protocol knob: a classic seed's draws are unchanged),
            # small enough that a three-second run falls back to classic rounds and back.
            params = ProposerParams(**{**{f: getattr(params, f) for f in params.__slots__}, "fast": self.fast,
                                       "fallback_collisions": r.choice([2, 4, 8]),
                                       "fallback_window_ticks": r.choice([20, 50, 100]),
                                       "classic_hold_ticks": r.choice([20, 50, 150])})
            fast_off_s = r.choice([0.05, 0.2, 1.0])
        faults = self.config.faults
        wipes = faults and self.config.wipes
        # Leases: the drift bound first, then every clock rate within it, a third of them at its
        # edges (where a lease computed without the bound overlaps the next one).
        drift = r.choice([0.0, 0.05, 0.1, 0.25]) if faults else 0.0
        reads = ReadParams(lease=r.random() < 0.8, lease_ticks=r.randint(max(2, election // 3), election - 1),
                           clock_drift_max=drift)

        def rate() -> float:
            return 1.0 + drift * max(-0.99, min(0.99, 1.5 * (2.0 * r.random() - 1.0)))

        return Drawn(
            tick_ms=r.choice([5, 10]),
            params=params,
            drop=r.choice([0.0, 0.01, 0.05, 0.2]) if faults else 0.0,
            dup=r.choice([0.0, 0.01, 0.1]) if faults else 0.0,
            delay_mean_us=r.choice([100, 1000, 5000, 20000]),
            crash_every_ms=r.choice([100, 300, 1000]),
            partition_every_ms=r.choice([200, 500, 1500]),
            power_crash=r.choice([0.0, 0.5, 1.0]),
            clock_rate={n: rate() for n in self.names} if faults else {n: 1.0 for n in self.names},
            cpu_us={n: r.choice([20, 50, 200, 2000]) if faults else 20 for n in self.names},
            fetch_ticks=r.randint(3, 20),
            client_retry_s=r.choice([0.05, 0.1, 0.3]),
            snapshot_every_slots=r.choice([0, 3, 10, 40]),
            chunk_bytes=r.choice([64, 512, 4096]),
            wipe_share=r.choice([0.0, 0.1, 0.3]) if wipes else 0.0,
            alpha_slots=alpha,
            fast_off_s=fast_off_s,
            reads=reads,
            lease_read_share=r.choice([0.5, 0.8, 1.0]),
        )

    def _plan(self) -> list[Membership | str]:
        """The operator's changes, in order: grow to five acceptors (two in one entry), shrink
        back to three, add the spare learner (it starts empty and catches up), then replace the
        three original acceptors one by one by new names, in a drawn order, then remove the first
        learner; then the leader of the moment removes itself, and is added back."""
        b = self.bootstrap
        a4, a5, a6, a7, a8 = self.acceptors[3:8]
        spare = self.learners[len(self.initial_learners)]
        grown = b.with_acceptor(a4, f"sim://{a4}").with_acceptor(a5, f"sim://{a5}")
        current = b.with_learner(spare, f"sim://{spare}")
        plan: list[Membership | str] = [grown, b, current]
        for victim, new in zip(self.rng.sample(self.initial_acceptors, 3), (a6, a7, a8), strict=True):
            current = current.without(victim).with_acceptor(new, f"sim://{new}")
            plan.append(current)
        plan.append(current.without(self.initial_learners[0]))
        if len(self.proposers) > 1:
            plan += [DROP_LEADER, RESTORE_PROPOSERS]
        return plan

    def _build(self, name: str) -> Any:
        d = self.drawn
        k = self.kinds
        role = self._role(name)
        if role == "proposer":
            core: Any = k.proposer(name, self.proposer_ids[name], self.proposer_ids, self.initial_acceptors,
                                   self.initial_learners, d.params, random.Random(self.rng.getrandbits(64)),
                                   history=self._history(), reads=d.reads)
        elif role == "acceptor":
            core = k.acceptor(name, self.proposer_ids, self.initial_learners, d.params.message_bytes_max,
                              acceptors=self.initial_acceptors if self.config.membership else self.acceptors,
                              alpha=self.ghost_history.alpha if self.config.membership else 0,
                              fast=self.fast, batch_bytes_max=d.params.batch_bytes_max,
                              lease_ticks=d.reads.lease_ticks if d.reads.lease else 0)
        else:
            kv = KVStore(64, 4096)
            self.applied[name] = kv.applied_log = []  # rebuilt by the replay below
            core = k.learner(name, self.initial_acceptors, codec.decode_client_batch, kv, fetch_ticks=d.fetch_ticks,
                             proposer_ids=self.proposer_ids, snapshot_every_slots=d.snapshot_every_slots,
                             history=self._history(), fast=self.fast)
        return core

    def _start(self, name: str) -> None:
        actor = self.actors[name]
        actor.files.restarted()
        core = self._build(name)
        try:
            existed = actor.files.fs.size(actor.disk.path) is not None
            records = actor.disk.records(self.kinds.scanner)
            if not existed and actor.marker and actor.role != "learner":
                # As runtime/actor.py does: it voted (or proposed) before and its file is gone.
                records = [RebuildRecord(False)]
                actor.disk.append(records)
            actor.disk.sync()  # recovery fsyncs what it replays (runtime/wal.py)
            if existed:
                actor.files.fs.fsync_dir(actor.disk.path.parent)  # and its name (runtime/wal.py)
            apply = replayer(core, actor.files.snapshots)
            for record in records:
                apply(record)
        except (WalCorrupt, SnapshotCorrupt) as exc:
            raise Violation("recovery", f"{name}: {exc}") from None
        actor.marker = True
        if isinstance(core, Learner) and core.restores:
            actor.installed = True
        if isinstance(core, Learner):
            # A learner's replay must reproduce what the cluster decided.
            for record in records:
                if isinstance(record, DecidedRecord):
                    self._check_delivery(name, record.slot, record.value)
        if isinstance(core, Acceptor) and core.promised < actor.announced:
            raise Violation("promise_durable", f"{name} restarted with promise {core.promised} below the "
                                               f"{actor.announced} it had announced")
        actor.core = core
        actor.shell = _SimShell(self, name)
        deliver = (lambda decisions: self._delivered(name, decisions)) if actor.role == "learner" else None
        actor.files.crash = actor.shell.crash
        actor.turn = self.kinds.turn(core, actor.shell, [n for n in self.names if n != name], deliver=deliver,
                                     snapshots=actor.files.snapshots if actor.role != "proposer" else None,
                                     chunk_bytes=self.drawn.chunk_bytes, tick_ms=self.drawn.tick_ms)
        actor.incarnation += 1
        actor.turned = False
        actor.busy_until = self.now
        actor.crash_point = None
        self._schedule(self._tick_period(name), "tick", (name, actor.incarnation))

    def _history(self) -> History | None:
        """A fresh bootstrap history with the run's alpha (membership runs; else the cores'
        default)."""
        if not self.config.membership:
            return None
        return History(self.bootstrap, self.ghost_history.alpha)

    def _operator(self) -> None:
        """The operator asks the serving leader for the next change of the plan; a refusal (no
        leader, or another change inside its alpha window) is retried later."""
        while self.plan and self.ghost_history.latest() == self.plan[0]:
            self.plan.pop(0)  # chosen: on to the next change
        if self.healed or not self.plan:
            return
        if self.plan[0] == RESTORE_PROPOSERS:
            latest = self.ghost_history.latest()
            self.plan[0] = Membership(self.bootstrap.proposers, latest.acceptors, latest.learners)
        for name in self.proposers:
            actor = self.actors[name]
            core = actor.core
            if core is None or not core.status()["serving"]:
                continue
            if self.plan[0] == DROP_LEADER:
                # The leader proposes its own removal.
                self.plan[0] = core.history.latest().without(name)
            target = self.plan[0]
            assert isinstance(target, Membership)
            outcome: list[str | None] = []
            turn = actor.turn
            assert turn is not None

            def propose(ready: Any, core: Any = core, outcome: list[str | None] = outcome,
                        target: Membership = target) -> None:
                outcome.append(core.propose_membership(target, ready))

            self._turn(name, partial(turn.perform, propose))
            if outcome and outcome[0] is None:
                # Proposed; the next visit checks it was chosen (a deposed leader's may not be).
                self._note(f"members {name} {target.describe()}")
                self.changes.append((self.now / 1000, core.lead.next_slot - 1 if core.lead else 0, target.describe()))
            break
        if self.plan:
            self._schedule(self.rng.randrange(20_000, 300_000), "members", None)

    def _members_at(self, slot: int) -> Membership | None:
        """The membership that decides `slot`, once the ghost knows every slot it depends on."""
        h = self.ghost_history
        if slot - h.alpha > self.ghost_through:
            return None
        return h.at(slot)

    def _rewrite_later(self, name: str) -> None:
        self._schedule(self.rng.randrange(1_000, 40_000), "rewrite", (name, self.actors[name].incarnation))

    def _tick_period(self, name: str) -> int:
        return int(self.drawn.tick_ms * 1000 * self.drawn.clock_rate[name])

    # --- the event loop --------------------------------------------------------------------

    def _schedule(self, delay_us: int, kind: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (self.now + max(0, int(delay_us)), self.seq, kind, data))

    def run(self) -> SimResult:
        c = self.config
        limit = (c.safety_ms + c.liveness_ms) * 1000
        try:
            while self.heap:
                t, _, kind, data = heapq.heappop(self.heap)
                if t > limit:
                    raise Violation("liveness", self._liveness_report())
                self.now = t
                self.events += 1
                self._handle(kind, data)
                if self.healed and self._converged():
                    break
            else:
                raise Violation("liveness", "the simulation ran out of events")
            self._final_checks()
        except Violation as v:
            return self._result(False, v.rule, v.detail)
        except InvariantViolation as exc:
            return self._result(False, "core_invariant", str(exc))
        return self._result(True)

    def _result(self, ok: bool, rule: str = "", detail: str = "") -> SimResult:
        forger = self.forger
        return SimResult(self.seed, ok, rule, detail, self.events, self.now / 1000, self.trace.hexdigest()[:16],
                         len(self.acked), self.crashes, self.partitions, self.history, self.recent[-20:],
                         forger.delivered if forger else 0, dict(forger.reasons) if forger else {},
                         dict(self.rejected), dict(self.fast_events), self.fast.mode, self.fast.recovery,
                         self.reads_acked, self.lease_reads)

    def _note(self, text: str) -> None:
        self.trace.update(f"{self.now}|{text}\n".encode())
        self.recent.append(f"{self.now / 1000:.3f}ms {text}")
        if len(self.recent) > 200:
            del self.recent[:100]

    def _handle(self, kind: str, data: Any) -> None:
        if kind == "deliver":
            src, dst, frame = data
            actor = self.actors.get(dst)
            if actor is not None:
                if actor.core is None:
                    return  # it is down: the frame is lost
                if actor.busy_until > self.now:
                    # A busy actor finds what arrived meanwhile all at once, in order, and
                    # handles it as one turn (as an event loop drains its socket).
                    if not actor.inbox:
                        self._schedule(actor.busy_until - self.now, "drain", (dst, actor.incarnation))
                    actor.inbox.append((src, frame))
                    return
                actor.busy_until = self.now + self.drawn.cpu_us[dst]
                self._note(f"deliver {src}->{dst} {hashlib.sha1(frame).hexdigest()[:8]}")
                self._step(dst, [(src, frame)])
            else:
                self._client_receive(dst, frame)
        elif kind == "drain":
            name, incarnation = data
            actor = self.actors[name]
            batch, actor.inbox = actor.inbox, []
            if actor.core is None or actor.incarnation != incarnation or not batch:
                return
            actor.busy_until = self.now + self.drawn.cpu_us[name] * len(batch)
            self._note(f"drain {name} {len(batch)} frames")
            self._step(name, batch)
        elif kind == "tick":
            name, incarnation = data
            actor = self.actors[name]
            if actor.core is None or actor.incarnation != incarnation:
                return
            self._schedule(self._tick_period(name), "tick", data)
            turn = actor.turn
            assert turn is not None
            self._turn(name, turn.tick)
        elif kind == "internal":
            name, incarnation, message = data
            actor = self.actors[name]
            if actor.core is not None and actor.incarnation == incarnation:
                turn = actor.turn
                assert turn is not None
                self._turn(name, lambda: turn.internal(message))
        elif kind == "rewrite":  # a compaction's next round, as the process's worker and tick run it
            name, incarnation = data
            actor = self.actors[name]
            if actor.core is None or actor.incarnation != incarnation or actor.files.compacting is None:
                return
            files, core = actor.files, actor.core
            self._turn(name, lambda: files.rewrite_step(core))
            if actor.core is not None:
                self._check_held(f"{name} finished a rewrite step")
        elif kind == "client":
            self._client_act(self.client_by_name[data])
        elif kind == "client_timer":
            cl = self.client_by_name[data]
            self._schedule(self._client_timer_us(), "client_timer", cl.name)
            self._client_apply(cl, cl.core.timer(self.now / US))
            self._client_flush(cl)
        elif kind == "crash":
            self._crash_random()
        elif kind == "restart":
            name = data
            if self.actors[name].core is None:
                self._note(f"restart {name}")
                self._start(name)
        elif kind == "partition":
            self._partition_random()
        elif kind == "unpartition":
            self.blocked = set()
            self._note("partition healed")
            if not self.healed:
                self._schedule(self.rng.randrange(50_000, self.drawn.partition_every_ms * 1000), "partition", None)
        elif kind == "heal":
            self._heal()
        elif kind == "members":
            self._operator()
        elif kind == "forge":
            assert self.forger is not None
            self.forger.forge()
            self._schedule(self.forger.rng.randrange(1_000, 20_000), "forge", None)

    def _step(self, name: str, frames: list[tuple[str, bytes]]) -> None:
        actor = self.actors[name]
        turn = actor.turn
        assert turn is not None
        self._turn(name, lambda: turn.frames([[src.encode(), frame] for src, frame in frames]))
        core = actor.core
        if isinstance(core, Acceptor) and core.promised < actor.announced:
            raise Violation("promise_monotonic", f"{name} promised {core.promised} after announcing {actor.announced}")
        # A proposer's ballots only grow past every ballot it sent an Accept under, even across a
        # lost file (else two values could be proposed under one ballot). A ballot whose Prepare no
        # majority promised (lost, or refused for a lease: actors/lease.py) sent no Accept, and a
        # proposer that lost its file cannot know it: it may come again.
        if isinstance(core, Proposer) and core.ballot != ZERO and core.ballot < actor.ballot_used:
            raise Violation("ballot_monotonic", f"{name} uses ballot {core.ballot} after sending Accepts "
                                                f"under {actor.ballot_used}")

    # --- one turn: the driver commits through _SimShell, which may crash it at a point ------

    def _turn(self, name: str, drive: Callable[[], None]) -> None:
        actor = self.actors[name]
        shell = actor.shell
        assert shell is not None
        point = actor.crash_point
        shell.begin(point, self.rng.randrange(1, 4) if point == "mid_send" else 0)
        try:
            drive()
        except _Crashed:  # raised only by an armed crash point
            self._note(f"crash {name} at {point}")
            self._crash(name, power=point == "after_write_before_fsync")
            return
        actor.turned = True
        if point is not None and shell.touched:
            self._note(f"crash point {point} passed without firing at {name}")
            actor.crash_point = None
        if actor.role == "learner" and actor.core is not None and actor.core.restores:
            actor.installed = True

    def _delivered(self, name: str, decisions: list[tuple[int, Value]]) -> None:
        for slot, value in decisions:
            self._check_delivery(name, slot, value)

    def _check_held(self, why: str) -> None:
        """Durability across compaction: every chosen slot is held by a majority of acceptors,
        each as the chosen value or inside a durable snapshot, by what their disks would give
        back after a power loss. (Not with a wiped acceptor in the run: a lost disk is exactly
        what takes one of those copies away.)"""
        if any(self.actors[a].wiped for a in self.acceptors):
            return
        held: dict[str, tuple[int, dict[int, Value]]] = {}
        for a in self.acceptors:
            actor = self.actors[a]
            shadow = _durable(actor)
            snap = shadow.snapshot
            covered = snap.slot if snap is not None and _snapshot_durable(actor, snap.slot) else 0
            held[a] = (covered, {s: v for s, (_, v) in shadow.accepted.items()})
        for slot, value in self.chosen.items():
            if self.config.membership:
                members = self.ghost_history.at(slot).acceptor_names
                need = len(members) // 2 + 1
                holders = sum(1 for a, (covered, values) in held.items()
                              if a in members and (slot <= covered or values.get(slot) == value))
            else:
                need = self.majority
                holders = sum(1 for covered, values in held.values() if slot <= covered or values.get(slot) == value)
            if holders < need:
                raise Violation("durability", f"{why}: chosen slot {slot} is held by {holders} acceptors, "
                                              f"as a value or in a durable snapshot")

    def _check_send(self, name: str, dest: str, msgs: list[Message]) -> None:
        """I4 (durability): a Promise or Accepted never leaves before the records that justify it
        are durable; also feeds the ghost votes and the announced promises."""
        actor = self.actors[name]
        if actor.role == "proposer":
            for m in msgs:
                if isinstance(m, Accept):
                    # (A coordinated recovery round's Accept, R.N+1, is the leader's ballot R.N's.)
                    if m.ballot.base() > actor.ballot_used:
                        actor.ballot_used = m.ballot.base()
                    # What each (slot, ballot) proposes: an acceptor's Accepted names only slots.
                    proposed = self.proposed
                    for slot, value in m.entries:
                        proposed[(slot, m.ballot)] = value
                if isinstance(m, Prepare):
                    shadow = _durable(actor)
                    if m.ballot.round > shadow.round:
                        raise Violation("durability", f"{name} sent Prepare {m.ballot} with durable round "
                                                      f"{shadow.round}")
                elif (self.config.membership and isinstance(m, (Accept, Heartbeat))
                      and m.chosen_through > self.ghost_through):
                    # A watermark is a claim that every slot up to it is chosen, by the membership
                    # of each slot (a leader counting by the wrong one claims slots that are not).
                    raise Violation("watermark", f"{name} says slots through {m.chosen_through} are chosen, "
                                                 f"but slot {self.ghost_through + 1} is not")
            return
        if actor.role != "acceptor":
            return
        durable: Any = None
        for m in msgs:
            if isinstance(m, Nack):
                if m.promised > actor.announced:
                    actor.announced = m.promised
            elif isinstance(m, (Promise, Recovered)):
                if m.ballot > actor.announced:
                    actor.announced = m.ballot
                durable = durable or _durable(actor)
                if durable.promised < m.ballot:
                    raise Violation("durability", f"{name} sent Promise {m.ballot} while its durable promise is "
                                                  f"{durable.promised}")
                for v in m.votes:
                    self._vote(name, v.slot, v.ballot, v.value)
            elif isinstance(m, Accepted):
                if m.ballot.base() > actor.announced:  # a recovery round's vote promises its base ballot
                    actor.announced = m.ballot.base()
                durable = durable or _durable(actor)
                core = actor.core
                durable_snap = durable.snapshot.slot if durable.snapshot is not None else 0
                for slot in m.slots:
                    if slot <= (core.snapshot.slot if core.snapshot is not None else 0) and durable_snap < slot:
                        raise Violation("durability", f"{name} acknowledged slot {slot} from its snapshot before "
                                                      f"that was durable")
                covered = core.snapshot.slot if core.snapshot is not None else 0
                for slot in m.slots:
                    if slot <= covered and slot in self.chosen and not self.fast.enabled:
                        # Acknowledged from inside the snapshot: a vote for what was chosen there.
                        # (Not in fast mode: under a fast ballot the acceptor may have voted for
                        # another value before, and the slot is chosen already anyway.)
                        self._vote(name, slot, m.ballot, self.chosen[slot])
                kept = [s for s in m.slots if s > covered]
                # By what was proposed under that ballot: a later Accept of the same turn may
                # already have replaced the acceptor's value (a duplicate of an older Accept
                # acknowledged again, then a newer ballot's value taken).
                values = m.values or tuple(self.proposed.get((s, m.ballot)) or core.accepted[s][1] for s in kept)
                for slot, value in zip(kept if not m.values else m.slots, values, strict=True):
                    got = durable.accepted.get(slot)
                    if got is None or got[0] < m.ballot:
                        raise Violation("durability", f"{name} sent Accepted {m.ballot} for slot {slot} without a "
                                                      f"durable accept (durable: {got and got[0]})")
                    self._vote(name, slot, m.ballot, value)
            elif isinstance(m, Fetched):
                for v in m.votes:
                    self._vote(name, v.slot, v.ballot, v.value)

    def _vote(self, acceptor: str, slot: int, ballot: Ballot, value: Value) -> None:
        """I1 and I3 (agreement, stability): at most one value is ever chosen per slot."""
        voters = self.votes.setdefault((slot, ballot), {})
        prior = voters.get(acceptor)
        if prior is not None and prior != value:
            raise Violation("agreement", f"{acceptor} announced two values for slot {slot} ballot {ballot}")
        voters[acceptor] = value
        if self.fast.enabled:
            self._fast_vote(slot, ballot, value, voters)
            return
        if not self.config.membership:
            if len(voters) >= self.majority:
                self._ghost_chosen(slot, ballot, value)
            return
        members = self._members_at(slot)
        if members is None:
            self.undecided.add(slot)
        elif sum(1 for a in members.acceptor_names if a in voters) >= members.majority():
            self._ghost_chosen(slot, ballot, value)

    def _fast_vote(self, slot: int, ballot: Ballot, value: Value, voters: dict[str, Value]) -> None:
        """Fast mode's ghost: a value is chosen under a fast ballot (and, with uncoordinated
        recovery, under its recovery round) when a fast quorum of acceptors voted for it, under a
        classic ballot (and the coordinated recovery round) when a majority did. A slot the leader
        itself proposed under its fast ballot (below the slots its Any opened: StartWorking, the
        values Phase 1 found) has that one value under it, which a majority chooses. (A leader
        re-confirming a chosen slot for a learner proposes it again under its ballot, fast or not,
        over the acceptors' own votes: the chosen value, which a majority may choose again.)"""
        n = len(self.acceptors)
        fast = self.fast.is_fast(ballot)
        if not fast and len(set(voters.values())) > 1:
            raise Violation("agreement", f"two values under the classic ballot {ballot} at slot {slot}")
        if fast and self.proposed.get((slot, ballot)) == value:
            fast = False
        need = fast_quorum(n) if fast else classic_quorum(n)
        if sum(1 for v in voters.values() if v == value) >= need:
            self._ghost_chosen(slot, ballot, value)

    def _ghost_chosen(self, slot: int, ballot: Ballot, value: Value) -> None:
        chosen = self.chosen.get(slot)
        if chosen is None:
            self.chosen[slot] = value
            if self.config.membership:
                self._ghost_advance(slot, value)
        elif chosen != value:
            raise Violation("agreement", f"slot {slot}: {chosen.describe()} was chosen, then "
                                         f"{value.describe()} under ballot {ballot}")

    def _ghost_advance(self, slot: int, value: Value) -> None:
        """A slot became chosen: a change is a fact, and slots that waited for their membership
        are decided once the prefix they depend on is known."""
        if value.kind == MEMBERSHIP:
            self.ghost_history.learn(slot, decode_membership(value.batches[0]))
        before = self.ghost_through
        while self.ghost_through + 1 in self.chosen:
            self.ghost_through += 1
        if self.ghost_through == before or not self.undecided:
            return
        for s in sorted(self.undecided):
            members = self._members_at(s)
            if members is None:
                continue
            self.undecided.discard(s)
            if s in self.chosen:
                continue
            for (vs, b), voters in self.votes.items():
                if vs == s and sum(1 for a in members.acceptor_names if a in voters) >= members.majority():
                    values = {voters[a] for a in members.acceptor_names if a in voters}
                    if len(values) != 1:
                        raise Violation("agreement", f"two values under one ballot {b} at slot {s}")
                    self._ghost_chosen(s, b, values.pop())
                    break

    def _crash(self, name: str, power: bool, wipe: bool = False) -> None:
        actor = self.actors[name]
        actor.core = None
        actor.crash_point = None
        actor.inbox = []  # what it had not read yet dies with it
        self.crashes += 1
        if wipe:
            # `paxos wipe`, or a dead disk: every file is gone; the marker stays.
            actor.files.fs.wipe()
            actor.wiped += 1
            actor.shadow = None
            actor.announced = ZERO  # what it told others is covered by its rebuild, not its disk
            self._note(f"wipe {name}")
        elif power:
            # Power loss: what was not synced survives only in part, maybe torn; names the
            # directory did not sync are gone.
            actor.files.fs.power_loss(self.rng)
        # A process crash leaves written bytes in the page cache, still unsynced: recovery will
        # sync them. A power loss loses them, or part of them, torn.
        downtime = self.rng.choice([5_000, 50_000, 300_000, 1_000_000])
        self._schedule(downtime, "restart", name)

    def _crash_random(self) -> None:
        if self.healed:
            return
        name = self.rng.choice(self.names)
        actor = self.actors[name]
        if actor.core is not None:
            if self.rng.random() < 0.5:
                actor.crash_point = self.rng.choice(CRASH_POINTS)
                self._note(f"arm {name} {actor.crash_point}")
            elif self.rng.random() < self.drawn.wipe_share and self._may_wipe(name):
                self._crash(name, power=False, wipe=True)
            else:
                self._note(f"crash {name}")
                self._crash(name, power=self.rng.random() < self.drawn.power_crash)
        self._schedule(self.rng.randrange(1, 2 * self.drawn.crash_every_ms) * 1000, "crash", None)

    def _may_wipe(self, name: str) -> bool:
        """At most one acceptor loses its disk in a run (two would be more failures than three
        acceptors survive); learners and proposers may lose theirs any number of times, but for
        proposers in membership runs: a proposer that lost its file learns the ballots it forgot
        from a majority of the newest membership it knows (actors/proposer.py, `_on_probed`),
        which here, with no supervisor's cache of the log's changes, starts as the bootstrap
        one; the Probed answers relay each acceptor's history, but a majority of stale ones can
        still answer first (with proposer wipes on, the `ballot_monotonic` check fails 1 of 300
        membership seeds, `--seed 255 --membership`; 2 of 300 before Probed carried histories)."""
        role = self.actors[name].role
        if role == "proposer":
            return not self.config.membership
        if role != "acceptor":
            return True
        return not any(self.actors[a].wiped for a in self.acceptors)

    def _partition_random(self) -> None:
        if self.healed:
            return
        r = self.rng
        everyone = [*self.names, *(cl.name for cl in self.clients)]
        # "proposers" cuts the proposers from each other (a follower elects while the leader
        # still reaches the acceptors: its lease must hold the election off); "leader_actors" cuts
        # the leader from every actor while clients still reach it (it serves reads under its
        # lease until that lapses, as the next leader is elected).
        shape = r.choice(["split", "isolate", "leader", "oneway", "proposers", "leader_actors"])
        if shape == "split":
            side = set(r.sample(self.names, r.randrange(1, len(self.names))))
            self.blocked = {(a, b) for a in everyone for b in everyone if (a in side) != (b in side)
                            and a in self.names and b in self.names}
        elif shape == "proposers":
            self.blocked = {(a, b) for a in self.proposers for b in self.proposers if a != b}
        elif shape == "leader_actors":
            leaders = [p for p in self.proposers if self.actors[p].core is not None
                       and self.actors[p].core.state is LEADER] or [r.choice(self.proposers)]
            victim = leaders[0]
            self.blocked = {(victim, b) for b in self.names if b != victim}
            self.blocked |= {(a, victim) for a in self.names if a != victim}
        elif shape in ("isolate", "leader"):
            leaders = [p for p in self.proposers if self.actors[p].core is not None
                       and self.actors[p].core.state is LEADER]
            victim = leaders[0] if shape == "leader" and leaders else r.choice(self.names)
            self.blocked = {(victim, b) for b in everyone if b != victim}
            self.blocked |= {(a, victim) for a in everyone if a != victim}
        else:
            pairs = [(a, b) for a in self.names for b in self.names if a != b]
            self.blocked = set(r.sample(pairs, r.randrange(1, len(pairs) // 2)))
        self.partitions += 1
        self._note(f"partition {shape} {len(self.blocked)} links")
        self._schedule(r.randrange(50_000, 2_000_000), "unpartition", None)

    def _heal(self) -> None:
        self.healed = True
        self.lossy = False
        self.blocked = set()
        self._note("heal")
        for name, actor in self.actors.items():
            actor.crash_point = None
            if actor.core is None:
                self._start(name)

    # --- the network -----------------------------------------------------------------------

    def _network_send(self, src: str, dst: str, frame: bytes) -> None:
        if (src, dst) in self.blocked:
            return
        r = self.rng
        copies = 1
        if self.lossy:
            if r.random() < self.drawn.drop:
                return
            if r.random() < self.drawn.dup:
                copies = 2
        for _ in range(copies):
            delay = 50 + int(r.expovariate(1.0 / self.drawn.delay_mean_us)) if self.lossy else 50 + r.randrange(200)
            self._schedule(delay, "deliver", (src, dst, frame))

    # --- clients ---------------------------------------------------------------------------

    def _client_timer_us(self) -> int:
        return int(min(self.drawn.client_retry_s / 3, 0.05) * US)

    def _client_act(self, cl: SimClient) -> None:
        r = self.rng
        if not self.healed and cl.issued < self.config.ops_per_client:
            while cl.free and r.random() < 0.7 and cl.issued < self.config.ops_per_client:
                self._invoke(cl)
        self._client_flush(cl)
        self._schedule(r.randrange(2_000, 30_000), "client", cl.name)

    def _invoke(self, cl: SimClient) -> None:
        r = self.rng
        process = cl.free.pop(0)
        seq = cl.core.next_seq
        cl.issued += 1
        f = r.choice(["get", "get", "put", "cas", "append"])
        if f == "append":
            key = f"a{r.randrange(2)}"
            element = f"{cl.name}.{seq};"
            command: list[Any] = ["append", key, element]
            value: Any = element
        else:
            key = f"r{r.randrange(3)}"
            if f == "get":
                command, value = ["get", key], None
                if r.random() < self.drawn.lease_read_share:
                    # Through the read path: the leader's lease, or a round (actors/lease.py).
                    more: list[tuple[int, str]] = []
                    if self.mget_rng.random() < MGET_SHARE:
                        # An mget of this key and the others, read together (actors/learner.py).
                        for other in (k for k in ("r0", "r1", "r2") if k != key):
                            self.mget_process += 1
                            more.append((self.mget_process, other))
                        op = cl.core.submit(["mget", key, *(k for _, k in more)], self.now / US)
                        op.read = "lease"
                    else:
                        op = cl.core.read(key, self.now / US)
                    cl.ops[op.seq] = SimOp(process, f, key, op.command, read=True, more=more)
                    for p, k in [(process, key), *more]:
                        self.history.append({"process": p, "type": "invoke", "f": f, "key": k, "value": None,
                                             "time": self.now / US})
                    return
            elif f == "put":
                v = f"{cl.name}.{seq}"
                command, value = ["put", key, v], v
            else:
                expected = r.choice([None, f"c{r.randrange(len(self.clients))}.{r.randrange(1, max(2, seq))}"])
                new = f"{cl.name}.{seq}"
                command, value = ["cas", key, expected, new], [expected, new]
        op = cl.core.submit(command, self.now / US)
        cl.ops[op.seq] = SimOp(process, f, key, op.command)
        self.history.append({"process": process, "type": "invoke", "f": f, "key": key, "value": value,
                             "time": self.now / US})

    def _client_flush(self, cl: SimClient) -> None:
        if cl.core.wants_flush(self.now / US):
            self._client_apply(cl, cl.core.flush(self.now / US))

    def _client_apply(self, cl: SimClient, ready: ClientReady) -> None:
        """What the client shell does with its core's output (as runtime/client.py does)."""
        for dest, messages, ops in ready.send:
            actor = self.actors[dest]
            if actor.core is None:
                # The process is gone, so is its connection: the send fails at once, as a
                # ZeroMQ socket with IMMEDIATE does, and the core moves on.
                if ops:
                    cl.core.unsent(ops, self.now / US)
                continue
            for m in messages:
                if isinstance(m, (Submit, FastAccept)):
                    self.sent_blobs.add(m.batch)
            self._network_send(cl.name, dest, codec.encode_frame(cl.name, messages))
        for op, ok, result in ready.results:
            sim_op = cl.ops.pop(op.seq, None)
            if sim_op is not None:
                cl.free.append(sim_op.process)
                self._complete(cl, op.seq, sim_op, ok, result)
        if ready.expired:
            raise Violation("liveness", f"{cl.name}: no answer before the deadline for seq "
                                        f"{[op.seq for op in ready.expired][:5]}")

    def _client_receive(self, name: str, frame: bytes) -> None:
        cl = self.client_by_name.get(name)
        if cl is None:
            return
        sender, messages = codec.decode_frame(frame)
        ready = ClientReady()
        for m in messages:
            cl.core.receive(sender, m, self.now / US, ready)
        self._client_apply(cl, ready)
        self._client_flush(cl)

    def _complete(self, cl: SimClient, seq: int, op: SimOp, ok: bool, result: Any) -> None:
        f = op.f
        if op.read:
            self.reads_acked += 1
        else:
            self.acked[(cl.name, seq)] = result
        if f == "cas":
            kind = "ok" if ok and result is True else "fail"
            value: Any = [op.command[3], op.command[4]]
        elif f == "get" and op.more:
            values = list(result) if ok and isinstance(result, (list, tuple)) else []
            if ok and len(values) != 1 + len(op.more):
                raise Violation("mget", f"{cl.name}: an mget of {1 + len(op.more)} keys answered {result!r}")
            for i, (p, k) in enumerate([(op.process, op.key), *op.more]):
                self.history.append({"process": p, "type": "ok" if ok else "fail", "f": f, "key": k,
                                     "value": values[i] if ok else None, "time": self.now / US})
            return
        elif f == "get":
            kind, value = ("ok", result) if ok else ("fail", None)
        else:
            kind, value = ("ok" if ok else "fail"), op.command[3]
        self.history.append({"process": op.process, "type": kind, "f": f, "key": op.key, "value": value,
                             "time": self.now / US})

    # --- invariants at the learners and at the end -----------------------------------------

    def _check_lease(self, name: str, event: str, f: dict[str, Any]) -> None:
        """Leases never overlap: no read is served under ballot b1's lease after a leader of a
        higher ballot was elected (in simulated time; a turn is one instant)."""
        r, n = (int(x) for x in str(f["ballot"]).split("."))
        ballot = Ballot(r, n)
        if event == "leader_elected":
            if ballot > self.elected[0]:
                self.elected = (ballot, name, self.now)
            return
        self.lease_reads += int(f.get("batches", 1))
        self._check_grants(name, ballot)
        top, who, when = self.elected
        if ballot < top:
            raise Violation("lease_overlap", f"{name} served {f.get('batches')} read batches under the lease of "
                                             f"ballot {ballot} at {self.now / 1000:.3f} ms, after {who} was elected "
                                             f"with {top} at {when / 1000:.3f} ms")

    def _check_grants(self, name: str, ballot: Ballot) -> None:
        """The lease's premise, when it serves: a majority of every membership it counts on can
        promise no other proposer now (each is down, or holds a running grant to it, or is in its
        window after a start with no grant to another) and promised nothing above its ballot."""
        core = self.actors[name].core

        def protected(a: str) -> bool:
            acc = self.actors[a].core
            if acc is None:
                return True  # down: it comes back refusing Prepares for lease_ticks
            g = acc.grant
            if acc.promised > ballot:
                return False
            return (g.holder == name and g.until > acc.ticks) or (acc.ticks < acc.lease_ticks
                                                                  and g.holder in ("", name))

        members = core._lease_members() if not core.simple else [self.bootstrap]
        for m in members:
            names = m.acceptor_names
            held = [a for a in names if protected(a)]
            if len(held) < len(names) // 2 + 1:
                raise Violation("lease_grants", f"{name} served reads under the lease of ballot {ballot} at "
                                                f"{self.now / 1000:.3f} ms, but only {held} of {names} would refuse "
                                                f"another proposer now")

    def _check_delivery(self, name: str, slot: int, value: Value) -> None:
        """I1/I7: what a learner delivers is what was chosen, the same on every learner; I2:
        every command batch was sent by a client."""
        chosen = self.chosen.get(slot)
        if chosen is None:
            raise Violation("agreement", f"{name} delivered slot {slot} ({value.describe()}), which no majority "
                                         f"of acceptors announced")
        if chosen != value:
            raise Violation("agreement", f"{name} delivered {value.describe()} at slot {slot}, but "
                                         f"{chosen.describe()} was chosen")
        if value.kind == COMMANDS:
            for blob in value.batches:
                if blob not in self.sent_blobs:
                    raise Violation("validity", f"{name} delivered a batch no client sent at slot {slot}")
        seen = self.delivered.setdefault(slot, value)
        if seen != value:
            raise Violation("agreement", f"learners delivered different values at slot {slot}")

    def _member_learners(self) -> list[str]:
        """The learners that ever were members (a spare never added learns nothing; one removed
        still hears votes and values, and is held to the same checks)."""
        named = {n for m in self.ghost_history.all_members() for n in m.learner_names}
        return [n for n in self.learners if n in named]

    def _converged(self) -> bool:
        if any(cl.ops for cl in self.clients):
            return False
        learners = [self.actors[n].core for n in self._member_learners()]
        if any(lr is None for lr in learners):
            return False
        top = max(self.chosen, default=0)
        if any(lr.delivered < top for lr in learners):
            return False
        if self.config.membership and any(
                self.actors[a].wiped and self.actors[a].core is not None and self.actors[a].core.rebuild is not None
                for a in self.ghost_history.latest().acceptor_names):
            # An acceptor of the membership in force that lost its file must rebuild from the
            # acceptors that are members now (the bootstrap ones may all be gone).
            return False
        return len({(lr.delivered, lr.kv.digest()) for lr in learners}) == 1

    def _liveness_report(self) -> str:
        waiting = sum(len(cl.ops) for cl in self.clients)
        learners = {n: (a.core.delivered if a.core else None) for n, a in self.actors.items() if a.role == "learner"}
        leaders = [n for n in self.proposers
                   if self.actors[n].core is not None and self.actors[n].core.status()["serving"]]
        rebuilding = [n for n in self.acceptors if self.actors[n].core is not None
                      and self.actors[n].core.rebuild is not None]
        return (f"not converged {self.config.liveness_ms} ms after healing: {waiting} client commands unanswered, "
                f"learners delivered {learners}, highest chosen slot {max(self.chosen, default=0)}, "
                f"serving leaders {leaders}" + (f", acceptors rebuilding {rebuilding}" if rebuilding else ""))

    def _final_checks(self) -> None:
        """I6: every acknowledged command was applied exactly once, on every learner (one that
        restored a snapshot applied the commands before it inside that snapshot's learner; its
        state then has to match, which convergence checked); compaction kept every chosen slot."""
        self._check_held("at the end")
        for name in self._member_learners():
            applied = self.applied[name]
            counts: dict[tuple[str, int], int] = {}
            for item in applied:
                counts[item] = counts.get(item, 0) + 1
            twice = [k for k, n in counts.items() if n > 1]
            if twice:
                raise Violation("exactly_once", f"{name} applied {twice[:3]} more than once")
            missing = [k for k in self.acked if k not in counts]
            if missing and not self.actors[name].installed:
                raise Violation("exactly_once", f"{name} never applied acknowledged commands {missing[:3]}")
        if self.check_linearizability:
            from runtime.harness.check.history import parse
            from runtime.harness.check.linearizability import check

            report = check(parse(self.history), budget_s_per_key=5.0)
            if not report.valid:
                bad = [r for r in report.results if r.valid is not True]
                raise Violation("linearizability", "; ".join(f"{r.key}: {'unknown' if r.valid is None else r.detail}"
                                                              for r in bad)[:600])


def _durable(actor: SimActor) -> Any:
    """The actor as its durable records alone would rebuild it (I4's reference), kept up to date
    incrementally: synced bytes never shrink, and they always end at a frame boundary; when the
    file is replaced (compaction), the shadow starts again from the new one."""
    disk = actor.disk
    if actor.shadow is None or actor.shadow_file is not disk.file:
        actor.shadow_file = disk.file
        actor.shadow_offset = 0
        if actor.role == "acceptor":
            actor.shadow = Acceptor(actor.name, {}, [], 1)
        else:
            actor.shadow = Proposer(actor.name, 1, {actor.name: 1}, ["x"], [], ProposerParams(), random.Random(0))
    synced = disk.synced
    if synced > actor.shadow_offset:
        payloads, _, _ = scan(disk.path, bytes(disk.data[actor.shadow_offset:synced]))
        if actor.shadow_offset == 0:
            payloads = payloads[1:]  # the header
        for payload in payloads:
            for record in codec.decode_records(payload):
                actor.shadow.apply(record)
        actor.shadow_offset = synced
    return actor.shadow


def _snapshot_durable(actor: SimActor, slot: int) -> bool:
    """Would that snapshot file survive a power loss whole?"""
    fs = actor.files.fs
    key = str(actor.files.snapshots.file(slot))
    f = fs.durable.get(key)
    return f is not None and f is fs.files.get(key) and f.synced == len(f.data) > 0


# --- Byzantine-lite: a forger of out-of-bound frames ------------------------------------------


def core_digest(core: Any) -> tuple[Any, ...]:
    """Everything of a core that a message could change and that matters to the protocol (what
    a forged frame must leave as it was)."""
    if isinstance(core, Acceptor):
        rb = core.rebuild
        return ("acceptor", core.promised, core.highest_slot, core.chosen_through, core.compacted_through,
                core.accepted_ballot_max, tuple(sorted((s, b, v) for s, (b, v) in core.accepted.items())),
                core.snapshot, core.offer, core.fetching,
                None if rb is None else (rb.floor_ballot, tuple(sorted(rb.answers.items()))))
    if isinstance(core, Proposer):
        own = core.lead or core.cand
        return ("proposer", core.state, core.round, core.ballot, core.known_ballot, core.leader, core.chosen_through,
                tuple(sorted(core.chosen_above)), core.backoff, core.quiet_ticks, core.timeout_ticks, core.nonce,
                None if core.probed is None else tuple(sorted(core.probed.items())),
                None if own is None else tuple(sorted((s, e.value, frozenset(e.acks))
                                                      for s, e in own.inflight.items())),
                len(core.queue))
    assert isinstance(core, Learner)
    return ("learner", core.delivered, core.epoch, core.known_chosen_through, core.leader,
            tuple(sorted((s, tuple(sorted((b, tuple(t.voters), t.value, None if t.contested is None else
                                           tuple(sorted((v.describe(), tuple(n)) for v, n in t.contested.items())))
                                          for b, t in by.items())))
                         for s, by in core.tally.items())),
            tuple(sorted(core.chosen.items())), core.snapshot, core.snapshot_fetching)


class _Watch:
    """Wraps an actor's shell for one forged turn: whatever the turn asks of the world is noted
    and goes nowhere (a forged frame may cause nothing)."""

    def __init__(self, inner: _SimShell) -> None:
        self.inner = inner
        self.effects: list[str] = []
        self.events: list[Event] = []

    def persist(self, records: list[Record], durable: bool) -> None:
        self.effects.append(f"persisted {records!r:.200}")

    def send(self, dest: str, messages: list[Message]) -> None:
        self.effects.append(f"sent {[m.TYPE for m in messages]} to {dest}")

    def act(self, actions: list[Action]) -> None:
        self.effects.append(f"acted {actions!r:.200}")

    def sync(self) -> None:
        pass

    def log(self, events: list[Event]) -> None:
        self.events.extend(events)

    def status(self) -> dict[str, Any]:
        return {}


class Forger:
    """A Byzantine-lite peer: it forges frames with numbers out of bounds for their receiver (the
    attacks of issue 10), as a proposer, an acceptor or a stranger, and checks that each is
    rejected with a reason and changes nothing."""

    def __init__(self, sim: Simulation, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.delivered = 0
        self.reasons: dict[str, int] = {}

    def _huge(self, above: int, ceiling: int) -> int:
        """A number above `above`: just above it, near the ceiling, or up to the codec's limit."""
        r = self.rng
        top = (1 << 63) - 1
        choice = r.randrange(3)
        if choice == 0:
            return min(top, above + 1 + r.randrange(1000))
        if choice == 1:
            return min(top, max(above + 1, ceiling - r.randrange(1000)))
        return r.randrange(min(top, above + 1), top + 1)

    def _messages(self, target: str, core: Any) -> list[tuple[str, Message]]:
        """What may be forged at this target now: (claimed sender, message), each out of bounds."""
        sim = self.sim
        r = self.rng
        p = r.choice(sim.proposers)
        pid = sim.proposer_ids[p]
        a = r.choice(sim.acceptors)
        params = sim.drawn.params
        step, ahead = params.ballot_round_step_max, params.slots_ahead_max
        value = Value(NOOP, Ballot(1, pid))
        out: list[tuple[str, Message]] = []
        if isinstance(core, Acceptor):
            high = Ballot(self._huge(core.promised.round + step, ROUND_MAX), pid)
            known = core.known_slot()
            far = self._huge(known + ahead, SLOT_MAX)
            b = core.promised if core.promised.node == pid else Ballot(max(1, core.promised.round), pid)
            out += [(p, Prepare(high, 1)), (p, Recover(high, 1, 2, 1)),
                    (p, Accept(high, 0, ((1, Value(NOOP, Ballot(1, pid))),))),
                    (p, Accept(b, min(far, (1 << 63) - 1), ((min(far, SLOT_MAX + 1), value),))),
                    (p, Accept(b, self._huge(SLOT_MAX, SLOT_MAX), ())),
                    (p, Accept(b, 0, ((1, Value(START, Ballot(b.round + 1, pid))),))),  # an epoch from the future
                    (p, Accept(b, 0, ((1, value), (1, Value(START, Ballot(1, pid)))))),  # two values, one slot
                    ("mallory", Prepare(Ballot(1, pid), 1)),
                    (p, Fetch(1, self._huge(SLOT_MAX, SLOT_MAX)))]
        elif isinstance(core, Proposer):
            others = [q for q in sim.proposers if q != target] or [target]
            q = r.choice(others)
            qid = sim.proposer_ids[q]
            known = core.known_round()
            out += [(q, Heartbeat(Ballot(self._huge(known + step, ROUND_MAX), qid), 0)),
                    (q, Heartbeat(Ballot(1, qid), self._huge(SLOT_MAX, SLOT_MAX))),
                    (a, Nack(core.ballot, Ballot(self._huge(known + step, ROUND_MAX), pid))),
                    (q, Nack(core.ballot, Ballot(known + 1, qid))),  # a Nack from no acceptor
                    (a, Promise(core.ballot, 1, 0, self._huge(SLOT_MAX, SLOT_MAX), 0, ())),
                    (a, Promise(core.ballot, 1, 0, 1, 1, (Vote(1, Ballot(core.ballot.round + 1, pid), value),))),
                    ("mallory", Heartbeat(Ballot(1, qid), 0))]
        else:
            slot = core.delivered + 1
            out += [(p, Accepted(Ballot(1, pid), (slot,), (value,))),  # a vote from a proposer
                    (a, Accepted(Ballot(1, 999_999), (slot,), (Value(NOOP, Ballot(1, 999_999)),))),
                    (a, Accepted(Ballot(1, pid), (core.delivered + core.window_slots_max + 1 + r.randrange(9),),
                                 ())),
                    (a, Accepted(Ballot(1, pid), (slot, slot), ())),
                    (a, Fetched(self._huge(SLOT_MAX, SLOT_MAX), ())),
                    (p, Fetched(0, (Vote(slot, Ballot(1, pid), value),))),
                    (p, Heartbeat(Ballot(1, pid), self._huge(SLOT_MAX, SLOT_MAX))),
                    (p, Accept(Ballot(1, pid), 0, ((0, value),))),
                    ("mallory", Accepted(Ballot(1, pid), (slot,), (value,)))]
        return out

    def forge(self) -> None:
        sim = self.sim
        up = [n for n in sim.names if sim.actors[n].core is not None and sim.actors[n].turned]
        if not up:
            return
        target = self.rng.choice(up)
        actor = sim.actors[target]
        core = actor.core
        sender, message = self.rng.choice(self._messages(target, core))
        try:
            frame = codec.encode_frame(sender, [message])
        except (OverflowError, ValueError):
            return
        turn = actor.turn
        assert turn is not None and actor.shell is not None
        before = core_digest(core)
        counted = turn.frames_rejected + turn.messages_rejected
        limited = dict(turn._rejects)
        watch = _Watch(actor.shell)
        shell, turn.shell = turn.shell, watch
        try:
            turn.frames([[sender.encode(), frame]])
        finally:
            turn.shell = shell
        self.delivered += 1
        what = f"forged {message.TYPE} from {sender} to {target}"
        if watch.effects:
            raise Violation("byzantine", f"{what} caused: {'; '.join(watch.effects)[:400]}")
        if core_digest(core) != before:
            raise Violation("byzantine", f"{what} changed the core's state: {message!r:.300}")
        reasons = [str(f.get("reason")) for _, e, f in watch.events if e in ("frame_rejected", "message_rejected",
                                                                               "vote_ignored")]
        # (A rate-limited rejection leaves no event this turn; the turn's counters say it was one.)
        if turn.frames_rejected + turn.messages_rejected == counted:
            raise Violation("byzantine", f"{what} was taken without a rejection: {message!r:.300}")
        # A reason already logged in this interval is only counted (the rate limit).
        reasons += [key[1] for key, n in turn._rejects.items() if key in limited and n > limited[key]]
        for reason in reasons:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
