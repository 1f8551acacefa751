"""Deterministic simulation of a whole cluster in one thread, on virtual time, from one seed.

The same `actors/` cores, the same codec (every frame is encoded and decoded), the same commit
order (`runtime/commit.py`) and the same wal framing and recovery scan as real processes. Every
choice (delays, losses, duplicates, partitions, crashes, crash points, clock rates, client
operations, protocol timings) is drawn from one `random.Random(seed)`, so a seed and a commit
give the same run bit for bit (`trace_hash`).

A run has a safety phase with faults, then heals everything (partitions lifted, losses off,
every actor restarted) and runs a liveness phase in which every outstanding client command must
be answered and every learner must converge to the same state within a bound of virtual time.

Invariants are checked as events happen (see `Invariants`); the first violation ends the run.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from actors.acceptor import Acceptor
from actors.ballot import ZERO, Ballot
from actors.invariants import InvariantViolation
from actors.kv import KVStore
from actors.learner import Learner
from actors.messages import (
    COMMANDS,
    Accepted,
    Fetched,
    Message,
    Nack,
    Prepare,
    Promise,
    Recovered,
    Redirect,
    Reply,
    Submit,
    Value,
)
from actors.output import Output
from actors.proposer import LEADER, Proposer, ProposerParams
from actors.records import Record
from runtime import codec
from runtime.commit import commit
from runtime.sim.world import Disk
from runtime.wal import WalCorrupt

US = 1_000_000  # virtual time unit: microseconds
CRASH_POINTS = ("before_persist", "after_write_before_fsync", "after_fsync_before_send", "mid_send")


class Violation(Exception):
    """An invariant broke; `rule` names it."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


class _Crashed(Exception):
    """Raised inside a commit to stop it at a crash point."""


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


@dataclass
class SimActor:
    name: str
    role: str
    disk: Disk = field(default_factory=Disk)
    core: Any = None
    incarnation: int = 0
    busy_until: int = 0
    crash_point: str | None = None
    announced: Ballot = ZERO  # highest ballot this acceptor ever told anyone it promised
    shadow: Any = None  # the actor as its durable bytes alone would rebuild it
    shadow_offset: int = 0
    ticks: int = 0


@dataclass
class ClientOp:
    seq: int
    process: int
    command: list[Any]
    due_us: int = 0
    tries: int = 0


@dataclass
class SimClient:
    name: str
    target: int = 0
    next_seq: int = 1
    issued: int = 0
    ops: dict[int, ClientOp] = field(default_factory=dict)
    free: list[int] = field(default_factory=list)  # idle process ids
    hold_until: int = 0
    last_reply_us: int = 0


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

    def repro(self, bugs: frozenset[str] = frozenset()) -> str:
        extra = f" --bugs {','.join(sorted(bugs))}" if bugs else ""
        return f"python -m runtime.sim --seed {self.seed}{extra}"


class Simulation:
    def __init__(self, seed: int, config: SimConfig | None = None, bugs: frozenset[str] = frozenset(),
                 check_linearizability: bool = True) -> None:
        self.seed = seed
        self.config = config or SimConfig()
        self.bugs = bugs
        self.check_linearizability = check_linearizability
        self.rng = random.Random(seed)
        c = self.config
        self.proposers = [f"p{i}" for i in range(1, c.proposers + 1)]
        self.acceptors = [f"a{i}" for i in range(1, c.acceptors + 1)]
        self.learners = [f"l{i}" for i in range(1, c.learners + 1)]
        self.names = [*self.proposers, *self.acceptors, *self.learners]
        self.proposer_ids = {n: i for i, n in enumerate(self.proposers, start=1)}
        self.majority = c.acceptors // 2 + 1
        self.drawn = self._draw()
        self.actors = {n: SimActor(n, self._role(n)) for n in self.names}
        self.clients = [SimClient(f"c{i}", target=self.rng.randrange(len(self.proposers)),
                                  free=list(range(i * 4, i * 4 + 4))) for i in range(c.clients)]
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
        self.chosen: dict[int, Value] = {}
        self.delivered: dict[int, Value] = {}
        self.applied: dict[str, list[tuple[str, int]]] = {n: [] for n in self.learners}
        self.acked: dict[tuple[str, int], Any] = {}
        self.crashes = 0
        self.partitions = 0
        self.recent: list[str] = []
        for name in self.names:
            self._start(name)
        for cl in self.clients:
            self._schedule(self.rng.randrange(5_000, 50_000), "client", cl.name)
        if c.faults:
            self._schedule(self.rng.randrange(100_000, 500_000), "crash", None)
            self._schedule(self.rng.randrange(100_000, 800_000), "partition", None)
        self._schedule(c.safety_ms * 1000, "heal", None)

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
        faults = self.config.faults
        return Drawn(
            tick_ms=r.choice([5, 10]),
            params=params,
            drop=r.choice([0.0, 0.01, 0.05, 0.2]) if faults else 0.0,
            dup=r.choice([0.0, 0.01, 0.1]) if faults else 0.0,
            delay_mean_us=r.choice([100, 1000, 5000, 20000]),
            crash_every_ms=r.choice([100, 300, 1000]),
            partition_every_ms=r.choice([200, 500, 1500]),
            power_crash=r.choice([0.0, 0.5, 1.0]),
            clock_rate={n: r.uniform(0.8, 1.25) for n in self.names} if faults else {n: 1.0 for n in self.names},
            cpu_us={n: r.choice([20, 50, 200, 2000]) if faults else 20 for n in self.names},
            fetch_ticks=r.randint(3, 20),
        )

    def _build(self, name: str) -> Any:
        d = self.drawn
        role = self._role(name)
        if role == "proposer":
            core: Any = Proposer(name, self.proposer_ids[name], self.proposer_ids, self.acceptors, self.learners,
                                 d.params, random.Random(self.rng.getrandbits(64)))
        elif role == "acceptor":
            core = Acceptor(name, self.proposer_ids, self.learners, d.params.message_bytes_max)
        else:
            kv = KVStore(64, 4096)
            self.applied[name] = kv.applied_log = []  # rebuilt by the replay below
            core = Learner(name, self.acceptors, codec.decode_client_batch, kv, fetch_ticks=d.fetch_ticks,
                           proposer_ids=self.proposer_ids)
        core.bugs = self.bugs
        return core

    def _start(self, name: str) -> None:
        actor = self.actors[name]
        core = self._build(name)
        try:
            records = actor.disk.records(self.bugs)
        except WalCorrupt as exc:
            raise Violation("recovery", f"{name}: {exc}") from None
        actor.disk.sync()  # recovery fsyncs what it replays (runtime/wal.py)
        for record in records:
            core.apply(record)
        if isinstance(core, Learner):
            # A learner's replay must reproduce what the cluster decided.
            self._check_learner_prefix(name, records)
        if isinstance(core, Acceptor) and core.promised < actor.announced:
            raise Violation("promise_durable", f"{name} restarted with promise {core.promised} below the "
                                               f"{actor.announced} it had announced")
        actor.core = core
        actor.incarnation += 1
        actor.busy_until = self.now
        actor.crash_point = None
        self._schedule(self._tick_period(name), "tick", (name, actor.incarnation))

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
        return SimResult(self.seed, ok, rule, detail, self.events, self.now / 1000, self.trace.hexdigest()[:16],
                         len(self.acked), self.crashes, self.partitions, self.history, self.recent[-20:])

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
                    # A slow actor handles its messages in order, one after another.
                    self._schedule(actor.busy_until - self.now, "deliver", data)
                    return
                actor.busy_until = self.now + self.drawn.cpu_us[dst]
                self._note(f"deliver {src}->{dst} {hashlib.sha1(frame).hexdigest()[:8]}")
                self._step(dst, frame)
            else:
                self._client_receive(dst, frame)
        elif kind == "tick":
            name, incarnation = data
            actor = self.actors[name]
            if actor.core is None or actor.incarnation != incarnation:
                return
            self._schedule(self._tick_period(name), "tick", data)
            out = Output()
            actor.core.tick(out)
            deferred = not actor.core.replies_wait_for_disk  # read before a commit can crash it
            self._commit(name, out)
            actor.ticks += 1
            if "reply_before_fsync" in self.bugs or (deferred and actor.ticks % 10 == 0):
                # The deferred fsync, as in runtime/actor.py: the planted bug's one tick late,
                # a learner's (which writes without waiting for the disk) every ten ticks.
                actor.disk.sync()
        elif kind == "client":
            self._client_act(self.client_by_name[data])
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

    def _step(self, name: str, frame: bytes) -> None:
        actor = self.actors[name]
        sender, messages = codec.decode_frame(frame)
        out = Output()
        core = actor.core
        for m in messages:
            core.step(sender, m, out)
        if isinstance(core, Proposer):
            core.flush(out)
        if isinstance(core, Acceptor) and core.promised < actor.announced:
            raise Violation("promise_monotonic", f"{name} promised {core.promised} after announcing {actor.announced}")
        self._commit(name, out)

    # --- committing a turn: persist, then send (the shared order) --------------------------

    def _commit(self, name: str, out: Output) -> None:
        actor = self.actors[name]
        point = actor.crash_point
        sent = [0]
        cut_at = self.rng.randrange(1, 4) if point == "mid_send" else 0
        encoder = codec.FrameEncoder(name)  # per turn: a message sent to many is packed once

        def persist(records: list[Record], durable: bool) -> None:
            if point == "before_persist":
                raise _Crashed
            if actor.role == "learner":
                for record in records:
                    self._check_delivery(name, record.slot, record.value)  # type: ignore[attr-defined]
            actor.disk.append(records, sync=False)
            if point == "after_write_before_fsync":
                raise _Crashed
            if durable:
                actor.disk.sync()

        def send(dest: str, msgs: list[Message]) -> None:
            if point == "after_fsync_before_send" or (point == "mid_send" and sent[0] >= cut_at):
                raise _Crashed
            sent[0] += 1
            self._check_send(name, dest, msgs)
            self._network_send(name, dest, encoder.encode(msgs))

        armed = point is not None and bool(out.persist or out.send)
        try:
            commit(out, persist, send, self.bugs, durable=actor.core.replies_wait_for_disk)
        except _Crashed:  # raised only by an armed crash point
            self._note(f"crash {name} at {point}")
            self._crash(name, power=point == "after_write_before_fsync")
            return
        if armed:
            self._note(f"crash point {point} passed without firing at {name}")
            actor.crash_point = None

    def _check_send(self, name: str, dest: str, msgs: list[Message]) -> None:
        """I4 (durability): a Promise or Accepted never leaves before the records that justify it
        are durable; also feeds the ghost votes and the announced promises."""
        actor = self.actors[name]
        if actor.role == "proposer":
            for m in msgs:
                if isinstance(m, Prepare):
                    durable = _durable(actor)
                    if m.ballot.round > durable.round:
                        raise Violation("durability", f"{name} sent Prepare {m.ballot} with durable round "
                                                      f"{durable.round}")
            return
        if actor.role != "acceptor":
            return
        durable: Any = None
        for m in msgs:
            kind = type(m)
            if kind is Promise or kind is Accepted or kind is Nack or kind is Recovered:
                ballot = m.promised if kind is Nack else m.ballot
                if ballot > actor.announced:
                    actor.announced = ballot
            if kind is Promise or kind is Recovered:
                durable = durable or _durable(actor)
                if durable.promised < m.ballot:
                    raise Violation("durability", f"{name} sent Promise {m.ballot} while its durable promise is "
                                                  f"{durable.promised}")
                for v in m.votes:
                    self._vote(name, v.slot, v.ballot, v.value)
            elif kind is Accepted:
                durable = durable or _durable(actor)
                values = m.values or tuple(actor.core.accepted[s][1] for s in m.slots)
                for slot, value in zip(m.slots, values, strict=True):
                    got = durable.accepted.get(slot)
                    if got is None or got[0] < m.ballot:
                        raise Violation("durability", f"{name} sent Accepted {m.ballot} for slot {slot} without a "
                                                      f"durable accept (durable: {got and got[0]})")
                    self._vote(name, slot, m.ballot, value)
            elif kind is Fetched:
                for v in m.votes:
                    self._vote(name, v.slot, v.ballot, v.value)

    def _vote(self, acceptor: str, slot: int, ballot: Ballot, value: Value) -> None:
        """I1 and I3 (agreement, stability): at most one value is ever chosen per slot."""
        voters = self.votes.setdefault((slot, ballot), {})
        prior = voters.get(acceptor)
        if prior is not None and prior != value:
            raise Violation("agreement", f"{acceptor} announced two values for slot {slot} ballot {ballot}")
        voters[acceptor] = value
        if len(voters) >= self.majority:
            chosen = self.chosen.get(slot)
            if chosen is None:
                self.chosen[slot] = value
            elif chosen != value:
                raise Violation("agreement", f"slot {slot}: {chosen.describe()} was chosen, then "
                                             f"{value.describe()} under ballot {ballot}")

    def _crash(self, name: str, power: bool) -> None:
        actor = self.actors[name]
        actor.core = None
        actor.crash_point = None
        self.crashes += 1
        disk = actor.disk
        unsynced = len(disk.data) - disk.synced
        if power and unsynced:
            # Power loss: what was not synced survives only in part, maybe torn.
            keep = self.rng.randrange(0, unsynced + 1)
            del disk.data[disk.synced + keep:]
            if self.rng.random() < 0.5:
                disk.data += bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 16)))
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
            else:
                self._note(f"crash {name}")
                self._crash(name, power=self.rng.random() < self.drawn.power_crash)
        self._schedule(self.rng.randrange(1, 2 * self.drawn.crash_every_ms) * 1000, "crash", None)

    def _partition_random(self) -> None:
        if self.healed:
            return
        r = self.rng
        everyone = [*self.names, *(cl.name for cl in self.clients)]
        shape = r.choice(["split", "isolate", "leader", "oneway"])
        if shape == "split":
            side = set(r.sample(self.names, r.randrange(1, len(self.names))))
            self.blocked = {(a, b) for a in everyone for b in everyone if (a in side) != (b in side)
                            and a in self.names and b in self.names}
        elif shape in ("isolate", "leader"):
            leaders = [p for p in self.proposers if self.actors[p].core is not None
                       and self.actors[p].core.role == LEADER]
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
        seq = cl.next_seq
        cl.next_seq += 1
        cl.issued += 1
        f = r.choice(["get", "put", "cas", "append"])
        if f == "append":
            key = f"a{r.randrange(2)}"
            element = f"{cl.name}.{seq};"
            command: list[Any] = [seq, "append", key, element]
            value: Any = element
        else:
            key = f"r{r.randrange(3)}"
            if f == "get":
                command, value = [seq, "get", key], None
            elif f == "put":
                v = f"{cl.name}.{seq}"
                command, value = [seq, "put", key, v], v
            else:
                expected = r.choice([None, f"c{r.randrange(len(self.clients))}.{r.randrange(1, max(2, seq))}"])
                new = f"{cl.name}.{seq}"
                command, value = [seq, "cas", key, expected, new], [expected, new]
        cl.ops[seq] = ClientOp(seq, process, command, due_us=self.now)
        self.history.append({"process": process, "type": "invoke", "f": f, "key": key, "value": value,
                             "time": self.now / US})

    def _client_flush(self, cl: SimClient) -> None:
        if self.now < cl.hold_until or not cl.ops:
            return
        due = [op for op in cl.ops.values() if op.due_us <= self.now]
        if not due:
            return
        retry_us = 200_000
        if any(op.tries for op in due) and self.now - cl.last_reply_us > retry_us:
            cl.target = (cl.target + 1) % len(self.proposers)  # nothing comes back: try another
        acked_below = min(cl.ops)
        for op in due:
            op.tries += 1
            op.due_us = self.now + min(retry_us << min(op.tries - 1, 3), 2_000_000)
        blob = codec.encode_client_batch(cl.name, acked_below, [op.command for op in due])
        self.sent_blobs.add(blob)
        self._network_send(cl.name, self.proposers[cl.target], codec.encode_frame(cl.name, [Submit(blob)]))

    def _client_receive(self, name: str, frame: bytes) -> None:
        cl = self.client_by_name.get(name)
        if cl is None:
            return
        sender, messages = codec.decode_frame(frame)
        for m in messages:
            if isinstance(m, Reply):
                cl.last_reply_us = self.now
                for seq, ok, result in m.results:
                    op = cl.ops.pop(seq, None)
                    if op is None:
                        continue
                    cl.free.append(op.process)
                    self._complete(cl, op, ok, result)
            elif isinstance(m, Redirect) and sender == self.proposers[cl.target]:
                cl.last_reply_us = self.now  # a sign of life: no need to rotate on our own
                if m.reason == "busy":
                    cl.hold_until = self.now + 5_000
                    continue
                if m.leader in self.proposers and m.leader != sender:
                    cl.target = self.proposers.index(m.leader)
                else:
                    cl.target = (cl.target + 1) % len(self.proposers)
                    cl.hold_until = self.now + 20_000
                for op in cl.ops.values():
                    op.due_us = min(op.due_us, cl.hold_until)

    def _complete(self, cl: SimClient, op: ClientOp, ok: bool, result: Any) -> None:
        f = op.command[1]
        key = op.command[2]
        self.acked[(cl.name, op.seq)] = result
        if f == "cas":
            kind = "ok" if ok and result is True else "fail"
            value: Any = [op.command[3], op.command[4]]
        elif f == "get":
            kind, value = ("ok", result) if ok else ("fail", None)
        else:
            kind, value = ("ok" if ok else "fail"), op.command[3]
        self.history.append({"process": op.process, "type": kind, "f": f, "key": key, "value": value,
                             "time": self.now / US})

    # --- invariants at the learners and at the end -----------------------------------------

    def _check_learner_prefix(self, name: str, records: list[Record]) -> None:
        for record in records:
            self._check_delivery(name, record.slot, record.value)  # type: ignore[attr-defined]

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

    def _converged(self) -> bool:
        if any(cl.ops for cl in self.clients):
            return False
        learners = [self.actors[n].core for n in self.learners]
        if any(lr is None for lr in learners):
            return False
        top = max(self.chosen, default=0)
        if any(lr.delivered < top for lr in learners):
            return False
        return len({(lr.delivered, lr.kv.digest()) for lr in learners}) == 1

    def _liveness_report(self) -> str:
        waiting = sum(len(cl.ops) for cl in self.clients)
        learners = {n: (a.core.delivered if a.core else None) for n, a in self.actors.items() if a.role == "learner"}
        leaders = [n for n in self.proposers if self.actors[n].core is not None and self.actors[n].core.serving]
        return (f"not converged {self.config.liveness_ms} ms after healing: {waiting} client commands unanswered, "
                f"learners delivered {learners}, highest chosen slot {max(self.chosen, default=0)}, "
                f"serving leaders {leaders}")

    def _final_checks(self) -> None:
        """I6: every acknowledged command was applied exactly once, on every learner."""
        for name in self.learners:
            applied = self.applied[name]
            counts: dict[tuple[str, int], int] = {}
            for item in applied:
                counts[item] = counts.get(item, 0) + 1
            twice = [k for k, n in counts.items() if n > 1]
            if twice:
                raise Violation("exactly_once", f"{name} applied {twice[:3]} more than once")
            missing = [k for k in self.acked if k not in counts]
            if missing:
                raise Violation("exactly_once", f"{name} never applied acknowledged commands {missing[:3]}")
        if self.check_linearizability:
            from runtime.check.history import parse
            from runtime.check.linearizability import check

            report = check(parse(self.history), budget_s_per_key=5.0)
            if not report.valid:
                bad = [r for r in report.results if r.valid is not True]
                raise Violation("linearizability", "; ".join(f"{r.key}: {'unknown' if r.valid is None else r.detail}"
                                                              for r in bad)[:600])


def _durable(actor: SimActor) -> Any:
    """The actor as its durable records alone would rebuild it (I4's reference), kept up to date
    incrementally: synced bytes never shrink, and they always end at a frame boundary."""
    if actor.shadow is None:
        if actor.role == "acceptor":
            actor.shadow = Acceptor(actor.name, {}, [], 1)
        else:
            actor.shadow = Proposer(actor.name, 1, {actor.name: 1}, ["x"], [], ProposerParams(), random.Random(0))
    synced = actor.disk.synced
    if synced > actor.shadow_offset:
        chunk = Disk(actor.disk.data[actor.shadow_offset:synced], synced - actor.shadow_offset)
        for record in chunk.records():
            actor.shadow.apply(record)
        actor.shadow_offset = synced
    return actor.shadow

