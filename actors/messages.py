"""Every message the actors exchange, named as the papers name them.

Frozen, slotted dataclasses: a message is a value, never mutated after it is built. Commands
travel as opaque client batches (`bytes`): proposers and acceptors never look inside them, only
learners decode them (through the decoder the shell injects), so the per-command cost of the
protocol path is one byte copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from actors.ballot import ZERO, Ballot

# Kinds of slot values.
NOOP = 0  # fills a slot that a new leader found empty (the "maximum commit" rule, seed 001)
START = 1  # StartWorking(epoch): written by a new leader before any command of its own
COMMANDS = 2  # client batches proposed by the leader of `epoch`
MEMBERSHIP = 3  # a new membership, its one batch the encoding of actors/membership.py

KIND_NAMES = {NOOP: "noop", START: "start_working", COMMANDS: "commands", MEMBERSHIP: "membership"}


@dataclass(frozen=True, slots=True)
class Value:
    """What a slot decides. `epoch` is the ballot of the leader that first proposed it; a
    re-proposal keeps the whole value, epoch included, so the ghost rule can see its origin."""

    kind: int
    epoch: Ballot
    batches: tuple[bytes, ...] = ()

    def size_bytes(self) -> int:
        return 16 + sum(len(b) + 8 for b in self.batches)

    def describe(self) -> str:
        name = KIND_NAMES.get(self.kind, str(self.kind))
        if self.kind == COMMANDS:
            return f"{name}@{self.epoch}x{len(self.batches)}"
        return f"{name}@{self.epoch}"


ACCEPT_ENTRY_OVERHEAD_BYTES = 24  # what an (slot, value) entry costs on the wire besides its batches


def chunked(entries: Iterable[tuple[int, Value]], budget_bytes: int) -> Iterator[tuple[tuple[int, Value], ...]]:
    """Slot entries cut into Accept-sized chunks, in order (a chunk holds one entry at least)."""
    chunk: list[tuple[int, Value]] = []
    size = 0
    for slot, value in entries:
        cost = value.size_bytes() + ACCEPT_ENTRY_OVERHEAD_BYTES
        if chunk and size + cost > budget_bytes:
            yield tuple(chunk)
            chunk, size = [], 0
        chunk.append((slot, value))
        size += cost
    if chunk:
        yield tuple(chunk)


@dataclass(frozen=True, slots=True)
class Vote:
    """An acceptor's report of what it accepted for one slot."""

    slot: int
    ballot: Ballot
    value: Value


class Message:
    """Marker base. `TYPE` names the message in logs and transcripts; on the wire a message is
    tagged by a number (runtime/codec.py)."""

    __slots__ = ()
    TYPE: ClassVar[str] = ""


# --- proposer -> acceptor ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepare(Message):
    """Phase 1a for every slot >= from_slot, under one ballot (Multi-Paxos)."""

    TYPE: ClassVar[str] = "prepare"
    ballot: Ballot
    from_slot: int


@dataclass(frozen=True, slots=True)
class Recover(Message):
    """Re-confirmation (seed 001, "重确认"): the leader asks for what was accepted in
    [from_slot, to_slot], whatever the chosen watermark, under its own ballot (a Prepare for
    those slots). Answered with Recovered, echoing `nonce`: an answer to anything else (a
    delayed Promise of the same ballot, an earlier Recover) must never be taken for it."""

    TYPE: ClassVar[str] = "recover"
    ballot: Ballot
    from_slot: int
    to_slot: int
    nonce: int


@dataclass(frozen=True, slots=True)
class Accept(Message):
    """Phase 2a for a batch of slots. `chosen_through` piggybacks the leader's chosen
    watermark: every slot up to it is known chosen."""

    TYPE: ClassVar[str] = "accept"
    ballot: Ballot
    chosen_through: int
    entries: tuple[tuple[int, Value], ...]
    # The leader's membership history (actors/membership.py), complete through chosen_through;
    # empty while there never was a change (the wire is then what it always was).
    members: bytes = b""


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """The leader is alive; slots up to `chosen_through` are chosen."""

    TYPE: ClassVar[str] = "heartbeat"
    ballot: Ballot
    chosen_through: int
    members: bytes = b""  # as in Accept


@dataclass(frozen=True, slots=True)
class Any_(Message):
    """Fast Paxos (seed 003, `Any(N, I, Recovery)`): under the fast ballot `ballot`, every slot
    from `from_slot` on is open: an acceptor may accept any client's command there, straight from
    the client (FastAccept). Sent with every heartbeat of a fast leader."""

    TYPE: ClassVar[str] = "any"
    ballot: Ballot
    from_slot: int


# --- acceptor -> proposer / learner --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Promise(Message):
    """Phase 1b. `votes` lists, for every slot in [max(from_slot, chosen_through + 1),
    reported_through], the highest-ballot value this acceptor accepted. `highest_slot` is the
    highest slot it ever accepted. If the report would not fit in one message, it stops early:
    `reported_through < highest_slot`, and the proposer asks again from the next slot."""

    TYPE: ClassVar[str] = "promise"
    ballot: Ballot
    from_slot: int
    chosen_through: int
    highest_slot: int
    reported_through: int
    votes: tuple[Vote, ...]
    members: bytes = b""  # the newest membership history this acceptor was sent (Accept.members)


@dataclass(frozen=True, slots=True)
class Recovered(Message):
    """The answer to Recover: every accepted (slot, ballot, value) in [from_slot,
    reported_through], which is `to_slot` unless the answer had to stop early to fit. Slots at
    or below `compacted_through` are chosen and no longer held as values (compaction, or a
    rebuild): the leader must never re-propose them."""

    TYPE: ClassVar[str] = "recovered"
    ballot: Ballot
    nonce: int
    from_slot: int
    reported_through: int
    votes: tuple[Vote, ...]
    compacted_through: int = 0
    snapshot_slot: int = 0  # of the durable snapshot it keeps (<= compacted_through)


@dataclass(frozen=True, slots=True)
class Nack(Message):
    """`ballot` was refused because the acceptor promised `promised` (seed 000, the Chubby
    rule: the proposer then picks a round above it)."""

    TYPE: ClassVar[str] = "nack"
    ballot: Ballot
    promised: Ballot


@dataclass(frozen=True, slots=True)
class Accepted(Message):
    """Phase 2b. To the proposer `values` is empty; to learners it is aligned with `slots`."""

    TYPE: ClassVar[str] = "accepted"
    ballot: Ballot
    slots: tuple[int, ...]
    values: tuple[Value, ...]


# --- learner <-> acceptor ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetch(Message):
    """A learner asks for what an acceptor accepted in [from_slot, to_slot] (seed 000: learn
    in order, fetch what is missing)."""

    TYPE: ClassVar[str] = "fetch"
    from_slot: int
    to_slot: int


@dataclass(frozen=True, slots=True)
class Fetched(Message):
    """What an acceptor holds of the slots asked for. Slots at or below `compacted_through` it
    holds no values for; `snapshot_slot` is the durable snapshot it can serve instead (a learner
    that needs those slots fetches it)."""

    TYPE: ClassVar[str] = "fetched"
    chosen_through: int
    votes: tuple[Vote, ...]
    compacted_through: int = 0
    snapshot_slot: int = 0
    snapshot_bytes: int = 0
    snapshot_crc: int = 0


@dataclass(frozen=True, slots=True)
class Probe(Message):
    """A rebuilding acceptor or proposer asks an acceptor what it has promised (no state
    changes)."""

    TYPE: ClassVar[str] = "probe"


@dataclass(frozen=True, slots=True)
class Probed(Message):
    TYPE: ClassVar[str] = "probed"
    promised: Ballot
    highest_slot: int
    chosen_through: int
    members: bytes = b""  # the answerer's membership history (actors/membership.py), if any change


# --- snapshots -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotOffer(Message):
    """A learner took a durable snapshot through `slot`: acceptors fetch it, keep it, and
    compact their logs up to it."""

    TYPE: ClassVar[str] = "snapshot_offer"
    slot: int
    size_bytes: int
    crc: int


@dataclass(frozen=True, slots=True)
class SnapshotFetch(Message):
    """Ask for bytes [offset, offset + length) of the snapshot through `slot`."""

    TYPE: ClassVar[str] = "snapshot_fetch"
    slot: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SnapshotChunk(Message):
    """Bytes of a snapshot file; `size_bytes` and `crc` are the whole file's. An empty `data`
    with `size_bytes` 0 says the sender does not have that snapshot (any more)."""

    TYPE: ClassVar[str] = "snapshot_chunk"
    slot: int
    offset: int
    size_bytes: int
    crc: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Repair(Message):
    """A learner that cannot find a majority under one ballot for slots the leaders consider
    chosen (their acceptors have moved on to different ballots, or lost them) asks the leader to
    re-confirm [from_slot, to_slot]."""

    TYPE: ClassVar[str] = "repair"
    from_slot: int
    to_slot: int


# --- clients -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submit(Message):
    """A client batch for the leader: opaque bytes, decoded only by learners."""

    TYPE: ClassVar[str] = "submit"
    batch: bytes


@dataclass(frozen=True, slots=True)
class FastAccept(Message):
    """Fast Paxos (seed 003, `Accept!(N, I, W)`): a client batch sent to every acceptor at once;
    each acceptor that holds an `Any` puts it in its next free slot. Refused with a Redirect
    (`no_fast_round`, `busy`) when it cannot."""

    TYPE: ClassVar[str] = "fast_accept"
    batch: bytes


@dataclass(frozen=True, slots=True)
class Redirect(Message):
    """From a proposer that will not take a Submit: `leader` is its best guess ("" if it has
    none) and `reason` says why (`not_leader`, `busy`, `too_large`, `stepped_down`)."""

    TYPE: ClassVar[str] = "redirect"
    leader: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reply(Message):
    """Results for one client: `(seq, ok, result)` triples; `result` is an error text when
    `ok` is false."""

    TYPE: ClassVar[str] = "reply"
    results: tuple[tuple[int, bool, Any], ...]


@dataclass(frozen=True, slots=True)
class ChangeMembers(Message):
    """An operator's membership change, for the serving leader: `members` is the whole new
    membership (actors/membership.py's encoding); `request` matches the answer to it."""

    TYPE: ClassVar[str] = "change_members"
    request: int
    members: bytes


@dataclass(frozen=True, slots=True)
class MembersChanged(Message):
    """The leader's answer to a ChangeMembers: `ok` once the change is chosen at `slot` (it
    governs the slots from `slot + alpha` on), or why it was not taken (`reason`; `leader` is a
    hint when the answer is "not the serving leader")."""

    TYPE: ClassVar[str] = "members_changed"
    request: int
    ok: bool
    slot: int
    reason: str
    leader: str = ""


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Client <-> learner: opens the reply path; answered with a Hello."""

    TYPE: ClassVar[str] = "hello"


# --- reads without a log write (actors/lease.py) --------------------------------------------


@dataclass(frozen=True, slots=True)
class Read(Message):
    """A client's batch of linearizable reads, for the leader (`learner` names the learner that
    answers), or of stale reads, for a learner (which answers from its state at once; `learner`
    is then ignored). `batch` is a client batch (`runtime.codec.encode_client_batch`) of
    `[seq, "get", key]` commands: opaque to proposers, decoded only by learners."""

    TYPE: ClassVar[str] = "read"
    learner: str
    batch: bytes


@dataclass(frozen=True, slots=True)
class ReadAt(Message):
    """Leader -> learner: answer the reads in `batch` once every slot up to `index` is delivered
    (the leader's read index: every slot chosen before the reads reached it is at or below it).
    `ballot` is the leader's: a read of a key that none of its proposals up to `index` writes may
    be answered before they are delivered (ZERO: never)."""

    TYPE: ClassVar[str] = "read_at"
    index: int
    batch: bytes
    ballot: Ballot = ZERO


@dataclass(frozen=True, slots=True)
class LeaseRenew(Message):
    """Leader -> acceptor, with every heartbeat (and when reads wait for a confirmation): round
    `round` of `ballot`. An acceptor whose promise is `ballot` answers `LeaseGranted` and grants
    the owner a lease for its own `lease_ticks` ticks."""

    TYPE: ClassVar[str] = "lease_renew"
    ballot: Ballot
    round: int


@dataclass(frozen=True, slots=True)
class LeaseGranted(Message):
    """Acceptor -> leader: its promise is still `ballot` (echoing the leader's `round`), and the
    highest slot it voted in (Fast Paxos: acceptors fill slots the leader never saw; any
    majority's highest bounds every slot a fast quorum chose)."""

    TYPE: ClassVar[str] = "lease_granted"
    ballot: Ballot
    round: int
    highest_slot: int = 0


# --- the shell ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick(Message):
    """One tick of the core's clock, from its own shell. It has no wire tag, so no peer can send
    one: the codec cannot decode it."""

    TYPE: ClassVar[str] = "tick"


TICK = Tick()


@dataclass(frozen=True, slots=True)
class SnapshotTaken(Message):
    """From the shell: the snapshot through `slot` that the core asked for is durable."""

    TYPE: ClassVar[str] = "snapshot_taken"
    slot: int
    size_bytes: int
    crc: int


@dataclass(frozen=True, slots=True)
class SnapshotInstalled(Message):
    """From the shell: a snapshot fetched from a peer is durable here, checksum verified;
    `state` is its content for a learner, which restores it (an acceptor only keeps the file)."""

    TYPE: ClassVar[str] = "snapshot_installed"
    slot: int
    size_bytes: int
    crc: int
    state: Any = None
    ok: bool = True  # false: the transfer failed or was abandoned; nothing changed


# --- operators -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusQuery(Message):
    """`brief`: only the membership changes the actor knows (a client's discovery, every few
    seconds), not its whole status. `digest`: a learner's status includes the hash of its whole
    store (tens of ms at 100k keys): asked by `paxos status`, not by the supervisor's own watch
    or the live page, which ask several times a second."""

    TYPE: ClassVar[str] = "status_query"
    brief: bool = False
    digest: bool = True


@dataclass(frozen=True, slots=True)
class StatusReply(Message):
    """`info` is a flat map of str -> str | int | bool | None."""

    TYPE: ClassVar[str] = "status_reply"
    info: tuple[tuple[str, Any], ...]
