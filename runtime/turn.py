"""The one turn driver that every shell uses: the actor process, the simulator, the scenario world
and the model checker. What the simulator checks is therefore what the processes run.

A turn is what one event-loop iteration hands an actor: a batch of frames, or a tick. The driver
owns everything between the bytes and the core, and between the core and the world:

- admission: a frame is decoded whole before any of it reaches the core (malformed, oversized,
  wrong version or unknown type: rejected with a reason); the sender it names must be the
  identity it came from; a message from a name that is not in the config is rejected, except a
  client's `Submit` to a proposer (in fast mode its `FastAccept` to an acceptor) and the
  `Hello` and `StatusQuery` that anyone may send, which the driver answers itself; every number
  in a message must be within the absolute ceilings of `actors.bounds.shape` (the bounds that
  need the core's state, the core checks itself);
- rate-limited rejections: every rejection (the driver's `frame_rejected`, the core's
  `message_rejected` and the like) is counted per reason and peer, and logged at once only the
  first time in an interval of `REJECT_LOG_TICKS` ticks; the rest are summed up in one
  `frames_rejected` warning at the end of the interval, so a flood cannot fill the disk;
- the steps, with the core's `invariants()` checked after each one;
- the end-of-turn flush (`Core.end_turn`: the proposer turns the turn's commands into slots);
- snapshot transfer (runtime/transfer.py): it serves chunks of the core's durable snapshot,
  runs the core's `FetchSnapshot` actions, and hands the core `SnapshotInstalled` when a fetched
  snapshot is checked and durable;
- the commit in `Ready.commit`'s order (persist, then act, then send, then deliver, then log),
  and the sync policy: a core whose replies wait for the disk persists durably; one whose
  replies do not (the learner) writes without waiting and syncs every `SYNC_EVERY_TICKS` ticks.

- the trace context (runtime/trace.py): the actor's Lamport clock (`clock`: a received frame moves
  it past the frame's `lc`; the shell bumps it for each frame it sends), whether this turn handled
  a frame its sender sampled (`traced`), and, when the shell gave it a `tracer`, the turn's trace
  events: recv (of sampled frames), assign, decide and deliver. The shell traces what only it
  sees (send, persist, fsync, reply). Without a tracer nothing is traced and nothing changes.

It does no I/O itself: a `Shell` writes, sends and logs. Exceptions leave through it unchanged;
the process shell turns any of them into a crash (crash-only), the simulator into a violation
or a crash point.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from actors.acceptor import Acceptor
from actors.bounds import shape
from actors.core import Core
from actors.learner import Learner
from actors.messages import (
    TICK,
    Accept,
    ChangeMembers,
    FastAccept,
    Hello,
    Message,
    Read,
    SnapshotChunk,
    SnapshotFetch,
    SnapshotInstalled,
    StatusQuery,
    StatusReply,
    Submit,
    Value,
)
from actors.proposer import Proposer
from actors.ready import DEBUG, WARNING, Action, Event, FetchSnapshot, Ready
from actors.records import DecidedRecord, Record, SnapshotRecord
from runtime import codec
from runtime.metrics import count_reason
from runtime.storage import SnapshotCorrupt, SnapshotDir
from runtime.trace import OPS_MAX, Clock, Ops, Tracer, capped, value_ops
from runtime.transfer import Transfers
from runtime.wal import SCANNER, Scanner

SYNC_EVERY_TICKS = 10
# Rejections: at most one warning per (event, reason, peer) every REJECT_LOG_TICKS ticks (a second
# at 10 ms), the rest summed up; at most REJECT_KEYS_MAX distinct keys an interval (an attacker
# may invent a new identity per frame), the rest counted under the peer "*".
REJECT_LOG_TICKS = 100
REJECT_KEYS_MAX = 64
CHOSEN_SCAN_MAX = 256  # chosen slots a traced learner turn looks through for newly chosen ones
WATCHED_MAX = 4096  # sampled client batches a leader waits to see assigned
REJECTIONS = frozenset(("frame_rejected", "message_rejected", "vote_ignored", "submit_rejected"))


class Shell(Protocol):
    """What a turn needs from the world around it."""

    def persist(self, records: list[Record], durable: bool) -> None:
        """Write the records as one frame; return only once they are on disk when `durable`."""

    def send(self, dest: str, messages: list[Message]) -> None:
        """Hand one frame to the network (a peer by name, or a client by its id)."""

    def sync(self) -> None:
        """Make everything written so far durable (the deferred fsync)."""

    def log(self, events: list[Event]) -> None: ...

    def act(self, actions: list[Action]) -> None:
        """Take a snapshot (in the background), compact the file."""

    def status(self) -> dict[str, Any]:
        """The shell's own fields for a StatusReply (pid, file sizes, ...)."""


def replayer(core: Core, snapshots: SnapshotDir | None) -> Callable[[Record], object]:
    """What recovery applies each record of a file with: `core.apply`, except that a learner's
    `SnapshotRecord` restores the snapshot file it names (SnapshotCorrupt if that file is
    missing or damaged: the record says it was durable)."""
    if not isinstance(core, Learner):
        return core.apply

    def apply(record: Record) -> object:
        if type(record) is SnapshotRecord:
            if record.slot <= core.delivered:
                # The decisions before it in the file already brought us there (a crash before
                # the compaction that follows a snapshot): keep the state, note the snapshot.
                core.snapshot = record
                return None
            if snapshots is None:
                raise SnapshotCorrupt(f"snapshot of slot {record.slot}: this shell keeps no snapshots")
            core.restore(record, snapshots.load(record.slot))
            return None
        return core.apply(record)

    return apply


class Turn:
    """Drives one core for one shell. `peers` are the configured actor names the core may hear
    from; anything else is a client."""

    def __init__(self, core: Core, shell: Shell, peers: Iterable[str], message_bytes_max: int = 1 << 30,
                 debug: bool = False,
                 deliver: Callable[[list[tuple[int, Value]]], None] | None = None,
                 snapshots: SnapshotDir | None = None, chunk_bytes: int = 1 << 20, tick_ms: float = 10.0) -> None:
        self.core = core
        self.snapshots = snapshots
        self.transfers = Transfers(snapshots, min(chunk_bytes, message_bytes_max - 1024), tick_ms) \
            if snapshots is not None else None
        self.shell = shell
        self.peers = set(peers)
        self.message_bytes_max = message_bytes_max
        self.debug = debug
        self.deliver = deliver  # observers of decisions (the simulator's checks)
        self.durable = core.replies_wait_for_disk
        self.sync_every_ticks = 0 if self.durable else SYNC_EVERY_TICKS
        self.takes_submit = core.role == "proposer"
        # Fast mode: acceptors take client batches straight from the clients (actors/fast.py).
        fast = getattr(core, "fast", None)
        self.takes_fast = core.role == "acceptor" and fast is not None and fast.enabled
        self.takes_read = core.role in ("proposer", "learner")  # linearizable, stale
        self.ticks = 0
        self.frames_rejected = 0  # by the driver (admission), since this process started
        self.messages_rejected = 0  # by the core, since this process started
        # Every rejection since this process started, by reason (the metrics endpoint's counter:
        # runtime/metrics.py), logged or not; bounded in keys.
        self.rejected: dict[str, int] = {}
        # This interval's rejections: (event, reason, peer) -> how many were not logged.
        self._rejects: dict[tuple[str, str, str], int] = {}
        self.clock = Clock()
        self.traced = False  # this turn handled a frame whose sender sampled it
        self.tracer: Tracer | None = None  # set by a shell that writes traces
        self._announced: set[int] = set()  # slots traced as decided and not delivered yet
        # A leader's sampled client batches not yet in an Accept (the window may be full): the turn
        # that assigns one is traced too, so the path goes on from there. By identity (the core
        # keeps the very bytes object it was given), without holding them: a reused id only
        # traces one turn more.
        self._watched: dict[int, None] = {}

    # --- input -----------------------------------------------------------------------------

    def frames(self, batch: Iterable[Sequence[bytes]]) -> None:
        """One turn of frames, each `[identity, frame]` as a ROUTER socket delivers them: admit
        and step them all, then commit once (group commit)."""
        ready = Ready()
        limit = self.message_bytes_max
        self.traced = False
        tracer = self.tracer
        for parts in batch:
            if len(parts) != 2:
                self._reject(ready, b"?", "framing", f"{len(parts)} frame parts, expected 2")
                continue
            identity, frame = parts
            if len(frame) > limit:
                self._reject(ready, identity, "oversized", f"{len(frame)} bytes > {limit}")
                continue
            try:
                sender, messages, frame_lc, sampled = codec.decode_frame_ctx(frame)
            except codec.DecodeError as exc:
                self._reject(ready, identity, exc.reason, exc.detail)
                continue
            if sender.encode() != identity:
                self._reject(ready, identity, "sender_mismatch", f"frame claims to be from {sender!r}")
                continue
            lc = self.clock.recv(frame_lc)
            if sampled:
                self.traced = True
                if tracer is not None:
                    t0 = time.perf_counter()
                    tracer.recv(sender, frame_lc, lc, messages)
                    if self.takes_submit:
                        self._watch(messages)
                    tracer.spent_s += time.perf_counter() - t0
            self._admit(sender, messages, ready)
        self._end(ready)

    def receive(self, sender: str, messages: list[Message]) -> None:
        """One turn of messages already decoded (the scenario world, the model checker)."""
        ready = Ready()
        self.traced = False
        self._admit(sender, messages, ready)
        self._end(ready)

    def tick(self) -> None:
        self.traced = False
        ready = self.core.step("", TICK, Ready())
        self.core.invariants()
        if self._rejects and (self.ticks + 1) % REJECT_LOG_TICKS == 0:
            self._summarize(ready)
        if self.transfers is not None:
            done = self.transfers.tick(ready)
            if done is not None:
                self._installed(done, ready)
        self._end(ready)
        self.ticks += 1
        if self.sync_every_ticks and self.ticks % self.sync_every_ticks == 0:
            self.shell.sync()

    def internal(self, message: Message) -> None:
        """A message from the shell itself (SnapshotTaken) as a turn of its own."""
        self.traced = False
        ready = self.core.step("", message, Ready())
        self.core.invariants()
        self._end(ready)

    def perform(self, action: Callable[[Ready], Any]) -> None:
        """An operator's or a script's action on the core as a turn of its own (a campaign)."""
        self.traced = False
        ready = Ready()
        action(ready)
        self.core.invariants()
        self._end(ready)

    def _admit(self, sender: str, messages: list[Message], ready: Ready) -> None:
        core = self.core
        step = core.step
        known = sender in self.peers or ("." not in sender and self._learn(sender))
        for message in messages:
            kind = type(message)
            if self.debug:
                ready.event("message_received", DEBUG, peer=sender, type=kind.TYPE, **fields(message))
            why = shape(message)
            if why is not None:
                self._reject(ready, sender.encode(), why, f"{kind.TYPE}: a number out of bounds")
                continue
            if isinstance(message, StatusQuery):
                history = getattr(core, "history", None)
                info: dict[str, Any] = {}
                if not message.brief:  # a brief one: a client's discovery needs only the history
                    info = {**core.status(), **self.shell.status(), "frames_rejected": self.frames_rejected,
                            "messages_rejected": self.messages_rejected}
                    digest = getattr(core, "status_digest", None)
                    if message.digest and digest is not None:
                        info["digest"] = digest()
                if history is not None and history.changes:
                    info["history"] = history.encode().decode()  # the changes it knows were chosen
                ready.send.append((sender, StatusReply(tuple(info.items()))))
            elif kind is Hello:
                ready.send.append((sender, Hello()))
            elif known and self.transfers is not None and isinstance(message, SnapshotFetch):
                snap = getattr(core, "snapshot", None)
                self.transfers.serve(sender, message, (snap.slot, snap.size_bytes, snap.crc) if snap else None,
                                     ready)
            elif known and self.transfers is not None and isinstance(message, SnapshotChunk):
                done = self.transfers.on_chunk(sender, message, ready)
                if done is not None:
                    self._installed(done, ready)
            elif known:
                step(sender, message, ready)
                core.invariants()
            elif kind is ChangeMembers and self.takes_submit:
                step(sender, message, ready)  # an operator's (any client key may: runtime/keys.py)
                core.invariants()
            elif ((isinstance(message, Submit) and self.takes_submit) or (isinstance(message, Read) and self.takes_read)
                  or (isinstance(message, FastAccept) and self.takes_fast)):
                # A client's batch (writes, reads, or in fast mode writes to an acceptor) names its
                # session; only that session's own connection (whose id its key allowed,
                # runtime/keys.py) may send it.
                if codec.batch_is_from(message.batch, sender):
                    step(sender, message, ready)
                    core.invariants()
                else:
                    self._reject(ready, sender.encode(), "session_not_yours",
                                 f"a {kind.TYPE} from {sender!r} for another client's session")
            else:
                self._reject(ready, sender.encode(), "unknown_sender", f"{kind.TYPE} from {sender!r}, "
                             f"which is not an actor of this cluster")

    def _learn(self, name: str) -> bool:
        """An actor name that is not a configured peer: one a membership change added? A shell that
        can reach such actors has `learn_peer(name) -> bool` (the process shell does; the
        simulator's worlds know every name from the start). A session id always has a dot, an
        actor name never."""
        learn = getattr(self.shell, "learn_peer", None)
        if learn is None or not learn(name):
            return False
        self.peers.add(name)
        return True

    def refused(self, identity: bytes, reason: str, detail: str) -> None:
        """What the transport refused before any frame reached a turn (a handshake with an unknown
        key, a frame whose key may not make its claim): logged like any rejection."""
        ready = Ready()
        self._reject(ready, identity, reason, detail)
        self.commit(ready)

    def _reject(self, ready: Ready, identity: bytes, reason: str, detail: str) -> None:
        self.frames_rejected += 1
        ready.event("frame_rejected", WARNING, peer=identity.decode("utf-8", "replace")[:64], reason=reason,
                    detail=detail[:200])

    def _limit(self, events: list[Event]) -> list[Event]:
        """The turn's events with rejections rate-limited: the first of each (event, reason,
        peer) in an interval is kept, the others only counted (`_summarize` logs the counts)."""
        out: list[Event] = []
        rejects = self._rejects
        for e in events:
            name = e[1]
            if name not in REJECTIONS:
                out.append(e)
                continue
            if name != "frame_rejected":
                self.messages_rejected += 1
            f = e[2]
            count_reason(self.rejected, str(f.get("reason", "")))
            key = (name, str(f.get("reason", "")), str(f.get("peer", ""))[:64])
            if key not in rejects:
                if len(rejects) >= REJECT_KEYS_MAX:
                    key = (name, key[1], "*")
                    rejects[key] = rejects.get(key, 0) + 1
                    continue
                rejects[key] = 0
                out.append(e)
            else:
                rejects[key] += 1
        return out

    def _summarize(self, ready: Ready) -> None:
        """The end of an interval: one warning with what was not logged, then a fresh start (the
        next rejection of each kind is logged at once again)."""
        suppressed = {f"{event}:{reason}:{peer}": n for (event, reason, peer), n in self._rejects.items() if n}
        self._rejects = {}
        if suppressed:
            ready.event("frames_rejected", WARNING, ticks=REJECT_LOG_TICKS, total=sum(suppressed.values()),
                        counts=suppressed)

    # --- output ----------------------------------------------------------------------------

    def _installed(self, m: SnapshotInstalled, ready: Ready) -> None:
        """Hand a finished transfer to the core; a learner gets the snapshot's content too."""
        if m.ok and isinstance(self.core, Learner) and self.snapshots is not None:
            try:
                m = SnapshotInstalled(m.slot, m.size_bytes, m.crc, self.snapshots.load(m.slot))
            except SnapshotCorrupt as exc:
                ready.event("snapshot_rejected", WARNING, slot=m.slot, reason=str(exc))
                m = SnapshotInstalled(m.slot, 0, 0, ok=False)
        self.core.step("", m, ready)
        self.core.invariants()

    def _end(self, ready: Ready) -> None:
        self.core.end_turn(ready)
        if ready.actions:
            fetches = [a for a in ready.actions if isinstance(a, FetchSnapshot)]
            if fetches:
                ready.actions = [a for a in ready.actions if not isinstance(a, FetchSnapshot)]
                for action in fetches:
                    done = self.transfers.start(action, ready) if self.transfers is not None else \
                        SnapshotInstalled(action.slot, 0, 0, ok=False)
                    if done is not None:
                        self._installed(done, ready)
        self.commit(ready)

    def commit(self, ready: Ready) -> None:
        """The turn's effects, in the one safe order (`Ready.commit`)."""
        if ready.events:
            ready.events = self._limit(ready.events)
        if self._watched and ready.send and not self.traced:
            self.traced = self._assigns_watched(ready)
        if self.traced and self.tracer is not None:
            t0 = time.perf_counter()
            self._trace(ready)
            self.tracer.spent_s += time.perf_counter() - t0
        shell = self.shell
        send = shell.send
        if self.debug and ready.send:
            ready.events.extend((DEBUG, "message_sent", {"peer": dest, "type": m.TYPE, **fields(m)})
                                for dest, m in ready.send)
        ready.commit(shell.persist, send, self.durable, self.deliver, shell.log, shell.act)


    def _watch(self, messages: list[Message]) -> None:
        watched = self._watched
        for m in messages:
            if isinstance(m, Submit):
                if len(watched) >= WATCHED_MAX:
                    del watched[next(iter(watched))]  # the oldest (a follower's Submits are never assigned)
                watched[id(m.batch)] = None

    def _assigns_watched(self, ready: Ready) -> bool:
        """Whether this turn's Accepts carry a watched batch (and forget those it carries)."""
        watched = self._watched
        found = False
        for _, m in ready.send:
            if type(m) is Accept:
                for _, value in m.entries:
                    for b in value.batches:
                        if id(b) in watched:
                            del watched[id(b)]
                            found = True
        return found

    def trace_assigns(self, messages: list[Message]) -> None:
        """`assign` of every slot of these Accepts that holds client commands (a leader's), each
        Accept once however many destinations it goes to. The shell calls it too, for the Accept
        of a turn that did not follow a sample but whose frame it sampled."""
        tracer = self.tracer
        assert tracer is not None
        lc = self.clock.lc
        seen: set[int] = set()
        room = OPS_MAX  # for the whole turn: a pipelined turn may assign dozens of full slots
        for m in messages:
            if type(m) is Accept and id(m) not in seen:  # one Accept goes to every acceptor
                seen.add(id(m))
                for slot, value in m.entries:
                    for b in value.batches:
                        self._watched.pop(id(b), None)
                    if room <= 0:
                        continue  # its Accept's send still names the slot; its ops go unlisted
                    ops = value_ops(value.batches, Ops(room))
                    room -= len(ops.listed)
                    if ops.listed:
                        tracer.event("assign", lc, **capped(ops, {"s": slot}))

    def _trace(self, ready: Ready) -> None:
        """The turn's own trace events, before its effects take place (the core has already
        assigned, chosen and applied them in its steps)."""
        tracer = self.tracer
        assert tracer is not None
        lc = self.clock.lc
        if self.takes_submit and ready.send:
            self.trace_assigns([m for _, m in ready.send])
        if isinstance(self.core, Learner):
            decided = [r.slot for r in ready.persist if type(r) is DecidedRecord]
            announced = self._announced
            fresh = [s for s in decided if s not in announced]
            chosen = self.core.chosen
            if len(chosen) <= CHOSEN_SCAN_MAX:  # beyond, a gap's slots are announced as delivered
                fresh += sorted(s for s in chosen if s not in announced)
                announced.update(chosen)
            for s in decided:
                announced.discard(s)
            if len(announced) > 100_000:  # a learner far behind: forget, at worst a decide twice
                announced.clear()
            if fresh:
                tracer.event("decide", lc, s=_slot_runs(fresh), b=tracer.last_ballot)
            if ready.deliver:
                ops = Ops()
                for _, value in ready.deliver:
                    value_ops(value.batches, ops)
                tracer.event("deliver", lc, **capped(ops, {"s": _slot_runs([s for s, _ in ready.deliver])}))


def _slot_runs(slots: list[int]) -> str:
    """"5", "5..9", or "5..9,12": the slots, in runs."""
    slots = sorted(set(slots))
    runs: list[str] = []
    first = last = slots[0]
    for s in slots[1:]:
        if s == last + 1:
            last = s
            continue
        runs.append(str(first) if first == last else f"{first}..{last}")
        first = last = s
    runs.append(str(first) if first == last else f"{first}..{last}")
    return ",".join(runs)


@dataclass(frozen=True)
class Kinds:
    """The classes a shell builds an actor from. The product uses these defaults; the harness
    passes subclasses that break one named rule each (runtime/harness/bugs.py)."""

    acceptor: type[Acceptor] = Acceptor
    proposer: type[Proposer] = Proposer
    learner: type[Learner] = Learner
    turn: type[Turn] = Turn
    scanner: Scanner = SCANNER
    snapshot_dir: type[SnapshotDir] = SnapshotDir


PRODUCT = Kinds()


def fields(message: Message) -> dict[str, Any]:
    """A short, log-friendly view of a message (no payloads)."""
    out: dict[str, Any] = {}
    for name in getattr(message, "__slots__", ()):
        value = getattr(message, name)
        if name == "entries":
            out["slots"] = f"{value[0][0]}..{value[-1][0]}" if value else ""
            out["count"] = len(value)
        elif name == "votes":
            out["votes"] = len(value)
        elif name == "slots":
            out["slots"] = f"{value[0]}..{value[-1]}" if value else ""
        elif name in ("values", "batch", "info", "results"):
            out[name] = len(value)
        else:
            out[name] = value if isinstance(value, (int, str, bool)) else str(value)
    return out
