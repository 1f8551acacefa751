"""A world of real cores connected by a hand-driven network, for scenarios and tests.

Every actor runs through the same turn driver as a real process (`runtime.turn.Turn`:
admission, invariants, end-of-turn flush, commit order, sync policy). Everything a core sends
goes through the real codec (encode, then decode) into `queue`, where a test or a script decides
what is delivered, dropped, duplicated or delayed. Everything a core persists is appended,
through the real wal framing, to an in-memory "disk" per actor; `crash` throws the core away
(losing the unsynced tail) and `restart` rebuilds it by running the real recovery scan and
replaying the records through `apply`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.acceptor import Acceptor
from actors.fast import CLASSIC_RULES, FastRules
from actors.kv import KVStore
from actors.learner import Learner
from actors.membership import History, Membership
from actors.messages import Message, Reply, SnapshotTaken, Submit
from actors.proposer import Proposer, ProposerParams
from actors.ready import Action, Compact, Event, Ready, TakeSnapshot
from actors.records import RebuildRecord, Record
from runtime import codec
from runtime.harness.sim.simfs import SimFile, SimFS
from runtime.storage import Crash, Rewrite, SnapshotDir, no_crash
from runtime.turn import PRODUCT, Kinds, Turn, replayer
from runtime.wal import SCANNER, Scanner, compacted, frame

Core = Acceptor | Proposer | Learner


@dataclass
class Envelope:
    src: str
    dst: str
    message: Message
    id: int
    deliver_at: int = 0  # virtual time (ticks) when it may be delivered


WAL = Path("wal")
SNAPSHOTS = Path("snap")


class Disk:
    """An actor's wal, as a file on its SimFS (a header frame, then frames of records, as the
    real one); `synced` is how much of it survives a power loss."""

    def __init__(self, fs: SimFS | None = None, path: Path = WAL) -> None:
        self.fs = fs or SimFS()
        self.path = path
        self.rewriting: Rewrite | None = None  # a compaction under way (as Wal.rewriting)

    @property
    def file(self) -> SimFile:
        """The file; created with its header (durably, name included) if it is not there, as
        Wal.open creates a missing one."""
        if self.fs.size(self.path) is None:
            created = self.fs.file(self.path)
            created.data += frame(codec.pack(["paxos-wal", 1, "sim", "sim"]))
            created.synced = len(created.data)
            return created
        return self.fs.file(self.path)

    @property
    def data(self) -> bytearray:
        return self.file.data

    @property
    def synced(self) -> int:
        return self.file.synced

    def append(self, records: list[Record], sync: bool = True) -> None:
        """Write one frame and, if `sync`, make it durable (as `Wal.append`)."""
        data = frame(codec.encode_records(records))
        self.data.extend(data)
        if self.rewriting is not None:
            self.rewriting.tail += data
        if sync:
            self.sync()

    def sync(self) -> None:
        self.fs.fsync(self.path)

    def records(self, scanner: Scanner = SCANNER) -> list[Record]:
        """Recovery: the records of the valid prefix; a torn tail is cut, as the real one does."""
        payloads, valid, _ = scanner.scan(self.path, bytes(self.data))
        del self.data[valid:]
        self.file.synced = min(self.file.synced, len(self.data))
        return [r for payload in payloads[1:] for r in codec.decode_records(payload)]

    def begin_rewrite(self, records: list[Record], crash: Crash = no_crash,
                      tail_bytes_finish: int = Rewrite.TAIL_BYTES_FINISH) -> Rewrite:
        """Compaction, through the product's procedure (runtime/storage.Rewrite, as `Wal`): the
        new file is written now; `end_rewrite` renames it, maybe after more appends."""
        self.rewriting = Rewrite(self.fs, self.path, crash, tail_bytes_finish)
        self.rewriting.write(compacted(self.path, bytes(self.data), records))
        return self.rewriting

    def end_rewrite(self) -> None:
        rewrite, self.rewriting = self.rewriting, None
        assert rewrite is not None
        rewrite.finish()


class Files:
    """One simulated actor's files: its wal and its snapshots, on one SimFS. `act` does with a
    turn's actions what the process shell does (runtime/actor.py), without the fork: the
    snapshot is written in the turn, and `taken` hands the core its SnapshotTaken later. A
    compaction writes the new file in the turn; with `later` (the simulator's), the rounds that
    copy what was appended meanwhile and the rename come in later events (`rewrite_step`), as
    the process's worker thread and ticks do them; without it (scenarios), all at once."""

    def __init__(self, crash: Crash = no_crash, snapshot_dir: type[SnapshotDir] = SnapshotDir,
                 later: Callable[[], None] | None = None, tail_bytes_finish: int = Rewrite.TAIL_BYTES_FINISH) -> None:
        self.fs = SimFS()
        self.disk = Disk(self.fs)
        self.crash = crash
        self.snapshots = snapshot_dir(self.fs, SNAPSHOTS, lambda point: self.crash(point))
        self.later = later
        self.tail_bytes_finish = tail_bytes_finish
        self.compacting: int | None = None  # the slot of the compaction under way
        self.compact_next: int | None = None

    def act(self, name: str, core: Any, actions: list[Action], taken: Callable[[SnapshotTaken], None]) -> None:
        for action in actions:
            if isinstance(action, TakeSnapshot):
                info = self.snapshots.write(core.role, name, action.slot, core.snapshot_state())
                taken(SnapshotTaken(info.slot, info.size_bytes, info.crc))
            elif isinstance(action, Compact):
                self.compact(core, action.slot)

    def compact(self, core: Any, slot: int) -> None:
        if self.compacting is not None:
            self.compact_next = slot
            return
        self.disk.begin_rewrite(core.checkpoint(), self.crash, self.tail_bytes_finish)
        self.compacting = slot
        if self.later is None:
            while self.compacting is not None:
                self.rewrite_step(core)
        else:
            self.later()

    def rewrite_step(self, core: Any) -> None:
        """One round of the compaction under way: copy what was appended meanwhile, or rename."""
        rewrite = self.disk.rewriting
        assert rewrite is not None and self.compacting is not None
        chunk = rewrite.next_chunk()
        if chunk is not None:
            rewrite.copy(chunk)
            if self.later is not None:
                self.later()
            return
        self.disk.end_rewrite()
        self.snapshots.prune(self.compacting)
        self.compacting = None
        if self.compact_next is not None:  # only with `later`: without, each one ends in its turn
            slot, self.compact_next = self.compact_next, None
            self.compact(core, slot)

    def restarted(self) -> None:
        """A crash ends a compaction under way: the old file is whole; the new one is dropped."""
        self.disk.rewriting = None
        self.compacting = self.compact_next = None


@dataclass
class WorldConfig:
    proposers: int = 2
    acceptors: int = 3
    learners: int = 1
    params: ProposerParams = field(default_factory=lambda: ProposerParams(
        heartbeat_ticks=5, election_ticks=30, retry_ticks=20, window_slots=16,
        batch_bytes_max=64 * 1024, message_bytes_max=1024 * 1024))
    reply_bytes_max: int = 1024 * 1024
    key_bytes_max: int = 256
    value_bytes_max: int = 4096
    fetch_ticks: int = 10
    snapshot_every_slots: int = 0  # learners' snapshot trigger (0: off)
    snapshot_chunk_bytes: int = 1 << 20
    # Membership change (issue 11): acceptors outside the bootstrap membership, and the alpha of
    # the alpha rule (0: the cores' defaults, no history given).
    spare_acceptors: int = 0
    alpha: int = 0
    spare_learners: int = 0  # learners outside the bootstrap membership (a change may add them)
    fast: FastRules = CLASSIC_RULES  # Fast Paxos (issue 12): every actor under the same rules


class _ActorShell:
    """What the turn driver of one actor of the world writes to, sends to and logs to."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name

    def persist(self, records: list[Record], durable: bool) -> None:
        self.world.disks[self.name].append(records, sync=durable)

    def send(self, dest: str, messages: list[Message]) -> None:
        w = self.world
        # Through the real codec both ways: what arrives is what the wire can carry.
        _, decoded = codec.decode_frame(codec.encode_frame(self.name, messages))
        for message in decoded:
            w._ids += 1
            if dest in w.cores:
                w.queue.append(Envelope(self.name, dest, message, w._ids, w.now))
            else:
                w.client_inbox.setdefault(dest, []).append(message)

    def sync(self) -> None:
        self.world.disks[self.name].sync()

    def act(self, actions: list[Action]) -> None:
        w = self.world
        w.files[self.name].act(self.name, w.cores[self.name], actions,
                               lambda m: w.internal.append((self.name, m)))

    def log(self, events: list[Event]) -> None:
        w = self.world
        for level, event, fields in events:
            w.events.append((self.name, level, event, fields))
        if w.on_events is not None:
            w.on_events(self.name, events)

    def status(self) -> dict[str, Any]:
        return {}


class World:
    def __init__(self, config: WorldConfig | None = None, seed: int = 0, kinds: Kinds = PRODUCT) -> None:
        self.config = config or WorldConfig()
        self.kinds = kinds
        c = self.config
        self.rng = random.Random(seed)
        self.proposer_names = [f"p{i}" for i in range(1, c.proposers + 1)]
        self.acceptor_names = [f"a{i}" for i in range(1, c.acceptors + c.spare_acceptors + 1)]
        self.initial_acceptors = self.acceptor_names[:c.acceptors]
        self.learner_names = [f"l{i}" for i in range(1, c.learners + c.spare_learners + 1)]
        self.initial_learners = self.learner_names[:c.learners]
        self.proposer_ids = {n: i for i, n in enumerate(self.proposer_names, start=1)}
        self.bootstrap = Membership(tuple((p, i, f"sim://{p}") for p, i in self.proposer_ids.items()),
                                    tuple((a, f"sim://{a}") for a in self.initial_acceptors),
                                    tuple((n, f"sim://{n}") for n in self.initial_learners))
        self.names = [*self.proposer_names, *self.acceptor_names, *self.learner_names]
        self.files: dict[str, Files] = {n: Files(snapshot_dir=kinds.snapshot_dir) for n in self.names}
        self.internal: list[tuple[str, Message]] = []  # shell-to-core messages, handed over at the next tick
        self.cores: dict[str, Core] = {}
        self.turns: dict[str, Turn] = {}
        self.down: set[str] = set()
        self.queue: list[Envelope] = []
        self.client_inbox: dict[str, list[Message]] = {}
        self.events: list[tuple[str, str, str, dict[str, Any]]] = []  # (actor, level, event, fields)
        self.now = 0
        self._ids = 0
        self.on_events: Callable[[str, list[Event]], None] | None = None
        for name in self.names:
            self._build(name)

    # --- actors ----------------------------------------------------------------------------

    def _build(self, name: str) -> Core:
        c = self.config
        k = self.kinds
        history = History(self.bootstrap, c.alpha) if c.alpha else None
        if name in self.proposer_ids:
            core: Core = k.proposer(name, self.proposer_ids[name], self.proposer_ids, self.initial_acceptors,
                                    self.initial_learners, dataclasses.replace(c.params, fast=c.fast),
                                    random.Random(self.rng.getrandbits(64)), history=history)
        elif name in self.acceptor_names:
            core = k.acceptor(name, self.proposer_ids, self.initial_learners, c.reply_bytes_max,
                              acceptors=self.initial_acceptors, alpha=c.alpha, fast=c.fast)
        else:
            core = k.learner(name, self.initial_acceptors, codec.decode_client_batch,
                             KVStore(c.key_bytes_max, c.value_bytes_max), fetch_ticks=c.fetch_ticks,
                             proposer_ids=self.proposer_ids, snapshot_every_slots=c.snapshot_every_slots,
                             history=history, fast=c.fast)
        files = self.files[name]
        apply = replayer(core, files.snapshots)
        for record in files.disk.records(k.scanner):
            apply(record)
        self.cores[name] = core
        self.turns[name] = k.turn(core, _ActorShell(self, name), [n for n in self.names if n != name],
                                  snapshots=files.snapshots if name not in self.proposer_ids else None,
                                  chunk_bytes=c.snapshot_chunk_bytes)
        return core

    @property
    def disks(self) -> dict[str, Disk]:
        return {n: f.disk for n, f in self.files.items()}

    def proposer(self, name: str) -> Proposer:
        core = self.cores[name]
        assert isinstance(core, Proposer)
        return core

    def acceptor(self, name: str) -> Acceptor:
        core = self.cores[name]
        assert isinstance(core, Acceptor)
        return core

    def learner(self, name: str) -> Learner:
        core = self.cores[name]
        assert isinstance(core, Learner)
        return core

    def crash(self, name: str, lose_unsynced: bool = True) -> None:
        """The process dies: its memory is gone, its disk stays (minus what was not synced)."""
        if lose_unsynced:
            self.files[name].fs.power_loss(self.rng, tear=False)
        self.down.add(name)
        self.queue = [e for e in self.queue if e.dst != name]
        self.internal = [x for x in self.internal if x[0] != name]

    def wipe(self, name: str) -> None:
        """`paxos wipe`: the actor stops and loses every file (a marker of having voted stays:
        it comes back rebuilding, not as a fresh acceptor)."""
        self.crash(name, lose_unsynced=False)
        self.files[name].fs.wipe()
        role = "acceptor" if name in self.acceptor_names else "proposer" if name in self.proposer_ids else None
        if role is not None:
            self.files[name].disk.append([RebuildRecord(False)])

    def restart(self, name: str) -> Core:
        self.down.discard(name)
        return self._build(name)

    # --- driving ---------------------------------------------------------------------------

    def perform(self, name: str, action: Callable[[Ready], Any]) -> None:
        """An action on a core as a turn of its own (`world.perform("p1", p1.campaign)`)."""
        if name not in self.down:
            self.turns[name].perform(action)

    def step(self, name: str, sender: str, message: Message) -> None:
        if name not in self.down:
            self.turns[name].receive(sender, [message])

    def tick(self, names: Iterable[str] | None = None, n: int = 1) -> None:
        for _ in range(n):
            self.now += 1
            for name in list(names or self.names):
                if name in self.down:
                    continue
                for who, m in [x for x in self.internal if x[0] == name]:
                    self.internal.remove((who, m))
                    self.turns[name].internal(m)
                self.turns[name].tick()

    def submit(self, proposer: str, client_id: str, commands: list[list[Any]], acked_below: int = 0) -> None:
        blob = codec.encode_client_batch(client_id, acked_below, commands)
        self.step(proposer, client_id, Submit(blob))

    def take(self, pred: Callable[[Envelope], bool]) -> list[Envelope]:
        taken = [e for e in self.queue if pred(e)]
        ids = {e.id for e in taken}
        self.queue = [e for e in self.queue if e.id not in ids]
        return taken

    def deliver(self, pred: Callable[[Envelope], bool] = lambda e: True, limit: int = 100_000) -> int:
        """Deliver matching messages (and whatever they cause that also matches) until none is
        left; returns how many were delivered."""
        count = 0
        while count < limit:
            batch = self.take(pred)
            if not batch:
                return count
            for e in batch:
                self.step(e.dst, e.src, e.message)
                count += 1
        raise RuntimeError(f"deliver: more than {limit} messages; a livelock?")

    def drop(self, pred: Callable[[Envelope], bool]) -> int:
        return len(self.take(pred))

    def replies(self, client_id: str) -> list[tuple[int, bool, Any]]:
        return [r for m in self.client_inbox.get(client_id, []) if isinstance(m, Reply) for r in m.results]

    def elect(self, proposer: str, max_ticks: int = 1000) -> None:
        """Tick only `proposer` until it starts an election, then deliver everything."""
        p = self.proposer(proposer)
        for _ in range(max_ticks):
            if p.state.value != "follower":
                break
            self.tick([proposer])
        self.deliver()

    def event_names(self, actor: str | None = None) -> list[str]:
        return [e for a, _, e, _ in self.events if actor is None or a == actor]


def to(*names: str) -> Callable[[Envelope], bool]:
    return lambda e: e.dst in names


def from_(*names: str) -> Callable[[Envelope], bool]:
    return lambda e: e.src in names


def of_type(*types: type[Message]) -> Callable[[Envelope], bool]:
    return lambda e: isinstance(e.message, types)
