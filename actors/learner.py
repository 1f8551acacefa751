"""The learner: majority tally per slot and ballot, strictly in-order delivery, hole filling,
the StartWorking epoch rule, and the key-value state machine.

A slot is chosen when a majority of acceptors report `Accepted` for it under one ballot. The
value comes with the vote (a Fetched answer) or, to save two copies of every value, from the
leader's own Accept, which it sends to the learners too: one ballot never has two values for
one slot, so the proposer that owns the ballot is as good a source as any acceptor. The
learner delivers chosen slots in slot order only; a gap that does not close by itself is
fetched from the acceptors (seed 000). Delivered slots become `DecidedRecord`s, so a restart
replays them instead of re-learning the whole log.

Epoch rule (seed 001, "ghost reappearance"): every command entry carries the epoch (ballot) of
the leader that first proposed it, and every new leader writes StartWorking(epoch) before its
own commands. A command entry whose epoch is below the highest StartWorking epoch applied so
far is skipped: it was proposed by a leader that had already been superseded, and a client may
have read the log without it.

Snapshots (seed 001's "confirmed prefix that replay need not re-run"): after every
`snapshot_every_slots` delivered slots or `snapshot_every_bytes` of delivered values, the learner
asks its shell for a snapshot of the state machine; once it is durable it records it, compacts
its file to what came after, and offers it to the acceptors, which keep it and compact theirs.
A learner that needs a slot some acceptor no longer holds (it was wiped, or was down while the
others moved on) fetches that acceptor's snapshot, restores it and learns the tail as usual.

The rules a planted bug may break are methods of their own: `counts_vote` (a quorum is a
set of acceptors), `quorum` (a majority) and `members_at` (the alpha rule).

Membership (actors/membership.py): votes for a slot count when their acceptor is in the
membership of that slot. Delivering a MEMBERSHIP value makes it a fact of `history`. A slot
further ahead than alpha past what was delivered is counted with the newest knowledge, and
checked again when it is delivered (`_verified`); a slot that fails goes back to its tally.
Gap fetches go to the acceptors of every membership it knows and of the leader's relayed
history: a learner added late starts from the bootstrap membership, whose acceptors may be gone,
and catches up from today's (by their snapshot, for the slots before them).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.ballot import ZERO, Ballot
from actors.core import Core, owner_ok, reject
from actors.fast import CLASSIC_RULES, FastRules, fast_quorum
from actors.invariants import InvariantViolation, check
from actors.kv import BadBatch, BadSnapshot, KVStore, parse_batch
from actors.membership import BadMembership, History, Membership
from actors.membership import decode as decode_membership
from actors.membership import encode as encode_membership
from actors.messages import (
    COMMANDS,
    MEMBERSHIP,
    START,
    Accept,
    Accepted,
    Fetch,
    Fetched,
    Heartbeat,
    Message,
    Read,
    ReadAt,
    Repair,
    Reply,
    SnapshotInstalled,
    SnapshotOffer,
    SnapshotTaken,
    Tick,
    Value,
)
from actors.ready import DEBUG, INFO, WARNING, Compact, FetchSnapshot, Ready, TakeSnapshot
from actors.records import DecidedRecord, Record, SnapshotRecord


@dataclass(slots=True)
class Tally:
    """The votes for one (slot, ballot), and its value once someone brought it. `contested`:
    two different values were offered under this one ballot (a forgery: a proposer never does
    that), so which one a vote without a value stands for is unknown; from then on only votes
    that carry their value count, per value (a gap fetch brings those from the acceptors)."""

    voters: list[str] = field(default_factory=list)
    value: Value | None = None
    contested: dict[Value, list[str]] | None = None
    # Under a fast ballot, contested from its first vote (a fast round's votes may differ): the
    # leader's own proposal there may still come, with acknowledgements that carry no value.
    fast: bool = False


@dataclass(slots=True)
class Applied:
    """What applying one decided slot tells the world; replay ignores it, the live path sends
    and logs it."""

    replies: list[tuple[str, Reply]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why a batch was skipped, per bad batch
    ghost: bool = False  # a command of a superseded epoch, skipped (seed 001)
    epoch_started: bool = False
    membership: Membership | None = None  # a change this slot chose


DIGEST_KEYS_MAX = 100_000
READS_WAITING_MAX = 16_384  # read batches waiting for their index (actors/lease.py)
ReadKeys = str | tuple[str, ...]  # what one read asks: a get's key, or an mget's keys


class Learner(Core):
    role = "learner"
    # Learner records only make a restart fast: every value a learner applies is durable on a
    # majority of acceptors, and one that loses decisions learns and applies them again, to the
    # same state. So its replies need not wait for an fsync (see Ready.commit).
    replies_wait_for_disk = False

    def __init__(
        self,
        name: str,
        acceptors: list[str],
        decode: Callable[[bytes], Any],
        kv: KVStore,
        fetch_ticks: int = 10,
        fetch_slots_max: int = 4096,
        window_slots_max: int = 1_000_000,
        proposer_ids: dict[str, int] | None = None,
        debug_events: bool = False,
        snapshot_every_slots: int = 0,
        snapshot_every_bytes: int = 0,
        history: History | None = None,
        fast: FastRules = CLASSIC_RULES,
    ) -> None:
        self.name = name
        self.fast = fast
        self.acceptors = list(acceptors)
        self.proposer_ids = dict(proposer_ids or {})
        self.majority = len(self.acceptors) // 2 + 1
        # The bootstrap membership and alpha; without one, a change never takes effect here.
        self.history = history or History(Membership(tuple((n, i, "") for n, i in self.proposer_ids.items()),
                                                     tuple((a, "") for a in self.acceptors), ((name, ""),)),
                                          1 << 62)
        self.acceptor_set = set(self.acceptors)
        # Acceptors named by a membership value proposed but not delivered yet: their votes are
        # taken (and counted only where a slot's membership has them), not rejected.
        self.joining: set[str] = set()
        self.members_heard = b""  # the latest history a leader's heartbeat brought
        # Per slot chosen but not delivered: the ballot and voters that made it so (re-checked at
        # delivery once the slot's membership is a fact).
        self.chosen_votes: dict[int, tuple[Ballot, list[str]]] = {}
        self.decode = decode
        self.kv = kv
        self.fetch_ticks = fetch_ticks
        self.fetch_slots_max = fetch_slots_max
        self.window_slots_max = window_slots_max
        self.debug_events = debug_events  # one event per delivered slot
        self.delivered = 0
        self.epoch: Ballot = ZERO
        self.tally: dict[int, dict[Ballot, Tally]] = {}
        self.chosen: dict[int, Value] = {}  # chosen, above `delivered`, not yet deliverable
        self.known_chosen_through = 0
        self.stall_ticks = 0
        self.fetch_rounds = 0  # fetches in a row that brought no progress
        self.repair_after_fetches = 3
        self.leader: str | None = None  # the sender of the latest heartbeat
        self.skipped_entries = 0
        # Snapshots (0: off). `snapshot` is the latest durable one: taken here, or installed.
        self.snapshot_every_slots = snapshot_every_slots
        self.snapshot_every_bytes = snapshot_every_bytes
        self.snapshot: SnapshotRecord | None = None
        self.snapshot_taking = 0  # the slot of a snapshot the shell is writing
        # Decisions since a snapshot began (taken or installed), until the file is compacted to it:
        # what the compacted file keeps after the snapshot record.
        self.tail: list[DecidedRecord] | None = None
        self.snapshot_fetching = 0  # the slot of a snapshot being fetched from an acceptor
        self.bytes_since_snapshot = 0
        self.restores = 0  # snapshots this incarnation started from or installed (for observers)
        self.ticks = 0
        self.offer_ticks = 10 * fetch_ticks
        # Reads the leader sent with their index: (index, arrival, client, gets), answered once delivered.
        self.reads_waiting: list[tuple[int, int, str, list[tuple[int, ReadKeys]]]] = []
        # Per slot above `delivered`: the keys a leader's proposal there writes (early reads).
        self.slot_keys: dict[int, tuple[Ballot, frozenset[str]]] = {}
        self.reads_arrived = 0
        self.reads_answered = 0  # read batches answered (linearizable and stale; for observers)

    # --- durable state ---------------------------------------------------------------------

    def apply(self, record: Record) -> Applied:
        """Deliver one decided slot to the state machine; the same on replay and live. (A
        `SnapshotRecord` on replay is `restore`d by the shell, which has the file.)"""
        if type(record) is not DecidedRecord:
            raise TypeError(f"learner cannot apply {type(record).__name__}")
        check(record.slot == self.delivered + 1, "learners deliver gap-free, in slot order",
              slot=record.slot, delivered=self.delivered)
        self.delivered = record.slot
        value = record.value
        self.bytes_since_snapshot += value.size_bytes()
        applied = Applied()
        if value.kind == COMMANDS:
            if value.epoch < self.epoch:
                self.skipped_entries += 1
                applied.ghost = True
                return applied
            for blob in value.batches:
                try:
                    batch = parse_batch(self.decode(blob))
                except (BadBatch, ValueError) as exc:
                    applied.rejected.append(str(exc))
                    continue
                replies = self.kv.apply_batch(batch)
                # Every learner applies every batch; one answers it, the one the client named
                # (a retry names none, so that any learner still up answers it).
                if replies and (not batch.reply_by or batch.reply_by == self.name):
                    applied.replies.append((batch.client_id, Reply(tuple(replies))))
        elif value.kind == MEMBERSHIP:
            try:
                members = decode_membership(value.batches[0])
            except BadMembership as exc:
                applied.rejected.append(str(exc))
                return applied
            if self.history.learn(record.slot, members):
                self._members_changed()
                applied.membership = members
        elif value.kind == START and value.epoch > self.epoch:
            # Highest, not last: a stale StartWorking re-proposed later in slot order must not
            # lower the epoch and let an older leader's commands back in.
            self.epoch = value.epoch
            applied.epoch_started = True
        return applied

    def snapshot_state(self) -> list[Any]:
        """What a snapshot holds: the delivered slot, the epoch rule's epoch, and the state
        machine. It references live state: the shell writes it at once (or from a fork)."""
        state = [self.delivered, self.epoch.round, self.epoch.node, self.skipped_entries, self.kv.snapshot_state()]
        if self.history.changes:
            state.append(self.history.encode())  # the memberships of the slots after it
        return state

    def restore(self, record: SnapshotRecord, state: Any) -> None:
        """Become the learner that delivered through `record.slot`, from a snapshot's state.
        Raises BadSnapshot (and changes nothing) if the state is not a learner's of that slot."""
        if type(state) not in (list, tuple) or len(state) not in (5, 6) or state[0] != record.slot \
                or not all(type(x) is int for x in state[:4]) or (len(state) == 6 and type(state[5]) is not bytes):
            raise BadSnapshot(f"not a learner snapshot of slot {record.slot}")
        if len(state) == 6:
            try:
                probe = History(self.history.bootstrap, self.history.alpha)
                probe.merge(state[5])
            except BadMembership as exc:
                raise BadSnapshot(str(exc)) from None
        self.kv.restore(state[4])
        if len(state) == 6 and self.history.merge(state[5]):
            self._members_changed()
        self.delivered = record.slot
        self.epoch = Ballot(state[1], state[2])
        self.skipped_entries = state[3]
        self.snapshot = record
        self.bytes_since_snapshot = 0
        self.restores += 1
        self.known_chosen_through = max(self.known_chosen_through, record.slot)
        self.chosen = {s: v for s, v in self.chosen.items() if s > record.slot}
        self.chosen_votes = {s: v for s, v in self.chosen_votes.items() if s > record.slot}
        self.tally = {s: t for s, t in self.tally.items() if s > record.slot}

    # --- the rules ---------------------------------------------------------------------------

    def counts_vote(self, voters: list[str], sender: str) -> bool:
        """A duplicated Accepted counts once: the quorum is a set of acceptors."""
        return sender not in voters

    def quorum(self) -> int:
        """Votes under one ballot that make a slot chosen: a majority of acceptors."""
        return self.majority

    def members_at(self, slot: int) -> Membership:
        """The membership whose acceptors decide `slot`: chosen at least alpha slots before it."""
        return self.history.at(slot)

    def fast_quorum(self, n: int) -> int:
        """Votes for one value under a fast ballot that make a slot chosen (actors/fast.py)."""
        return fast_quorum(n)

    def _enough(self, slot: int, voters: list[str], fast: bool = False) -> bool:
        if not self.history.changes and not self.joining:
            if fast:
                return len(voters) >= self.fast_quorum(len(self.acceptors))
            return len(voters) >= self.quorum()  # the bootstrap membership: every voter is in it
        m = self.members_at(slot)
        names = m.acceptor_names
        need = self.fast_quorum(len(names)) if fast else m.majority()
        return sum(1 for v in voters if v in names) >= need

    def _members_changed(self) -> None:
        """A change became a fact: whom we hear votes from, and which tallies are now enough."""
        for m in self.history.all_members():
            for a in m.acceptor_names:
                if a not in self.acceptor_set:
                    self.acceptor_set.add(a)
                    self.acceptors.append(a)
            for p, i in m.proposer_ids.items():
                self.proposer_ids.setdefault(p, i)
        for slot in sorted(self.tally):
            if slot in self.chosen:
                continue
            for ballot, entry in self.tally[slot].items():
                if entry.contested is None and entry.value is not None and self._enough(slot, entry.voters):
                    self._choose(slot, ballot, entry.value, entry.voters)
                    break

    def _choose(self, slot: int, ballot: Ballot, value: Value, voters: list[str], fast: bool = False) -> None:
        self.chosen[slot] = value
        if not fast:
            self.chosen_votes[slot] = (ballot, voters)  # (fast mode takes no membership change)
        del self.tally[slot]

    def _verified(self, slot: int) -> bool:
        """At delivery the slot's membership is a fact: were its voters a quorum of it? If not,
        back to its tally (it was counted with a membership that no longer governs it)."""
        got = self.chosen_votes.pop(slot, None)
        if got is None or (not self.history.changes and not self.joining) or self._enough(slot, got[1]):
            return True
        ballot, voters = got
        self.tally[slot] = {ballot: Tally(voters=list(voters), value=self.chosen.pop(slot))}
        return False
    # --- messages --------------------------------------------------------------------------

    def _acceptor(self, sender: str, ready: Ready, m: Message | None = None) -> bool:
        if sender in self.acceptor_set or sender in self.joining:
            return True
        ready.event("message_rejected", WARNING, peer=sender, type=m.TYPE if m is not None else "",
                    reason="not_an_acceptor")
        return False

    def _proposers_ballot(self, sender: str, m: Message, ballots: list[Ballot], ready: Ready) -> bool:
        """A vote counts only under a ballot some configured proposer owns: a vote under anyone
        else's is a forgery (when the learner knows the proposers)."""
        ids = self.proposer_ids
        if ids:
            nodes = set(ids.values())
            for b in ballots:
                if b.node not in nodes:
                    reject(ready, sender, m, "ballot_of_no_proposer", ballot=str(b))
                    return False
        return True

    def _on_accepted(self, sender: str, m: Accepted, ready: Ready) -> None:
        if not self._acceptor(sender, ready, m) or not self._proposers_ballot(sender, m, [m.ballot], ready):
            return
        ballot = m.ballot
        if m.values:
            for slot, value in zip(m.slots, m.values, strict=True):
                self._vote(sender, slot, ballot, value, ready)
        else:
            for slot in m.slots:
                self._vote(sender, slot, ballot, None, ready)
        self._deliver(ready)

    def _on_fetched(self, sender: str, m: Fetched, ready: Ready) -> None:
        if not self._acceptor(sender, ready, m) or not self._proposers_ballot(
                sender, m, [v.ballot for v in m.votes], ready):
            return
        self._note_chosen_through(m.chosen_through)
        for vote in m.votes:
            self._vote(sender, vote.slot, vote.ballot, vote.value, ready)
        self._deliver(ready)
        if (m.compacted_through > self.delivered and m.snapshot_slot > self.delivered
                and not self.snapshot_fetching and m.snapshot_bytes):
            # The slot we need is folded into that acceptor's snapshot: take the snapshot.
            self.snapshot_fetching = m.snapshot_slot
            ready.actions.append(FetchSnapshot(sender, m.snapshot_slot, m.snapshot_bytes, m.snapshot_crc))
            ready.event("catching_up_by_snapshot", peer=sender, slot=m.snapshot_slot, delivered=self.delivered,
                        bytes=m.snapshot_bytes)

    def _on_snapshot_taken(self, sender: str, m: SnapshotTaken, ready: Ready) -> None:
        self.snapshot_taking = 0
        if not m.size_bytes or (self.snapshot is not None and m.slot <= self.snapshot.slot):
            return  # it failed (the shell logged why), or a newer one is already in place
        record = SnapshotRecord(m.slot, m.size_bytes, m.crc)
        self.snapshot = record
        ready.persist.append(record)
        ready.actions.append(Compact(m.slot))
        ready.event("snapshot_taken", slot=m.slot, bytes=m.size_bytes)
        offer = SnapshotOffer(m.slot, m.size_bytes, m.crc)
        for acceptor in self.acceptors:
            ready.send.append((acceptor, offer))

    def _on_snapshot_installed(self, sender: str, m: SnapshotInstalled, ready: Ready) -> None:
        self.snapshot_fetching = 0
        if not m.ok or m.slot <= self.delivered:
            return
        record = SnapshotRecord(m.slot, m.size_bytes, m.crc)
        before = self.delivered
        try:
            self.restore(record, m.state)
        except BadSnapshot as exc:
            ready.event("snapshot_rejected", WARNING, slot=m.slot, reason=str(exc))
            return
        ready.persist.append(record)
        if self.tail is None:
            self.tail = []
        ready.actions.append(Compact(m.slot))
        ready.event("snapshot_installed", slot=m.slot, bytes=m.size_bytes, keys=len(self.kv.data),
                    delivered_before=before)
        self.stall_ticks = self.fetch_rounds = 0
        self._deliver(ready)

    def _on_accept(self, sender: str, m: Accept, ready: Ready) -> None:
        # The leader's proposal: values for (slot, ballot); the votes come from acceptors.
        if self.proposer_ids and sender not in self.proposer_ids:
            self._proposer_from_relay(sender, m.members)
        if not owner_ok(self.proposer_ids, sender, m.ballot, ready, m):
            return
        for slot, value in m.entries:
            self._vote(None, slot, m.ballot, value, ready)
        self._deliver(ready)

    def _on_heartbeat(self, sender: str, m: Heartbeat, ready: Ready) -> None:
        # Only a proposer with its own ballot is a leader we send Repair to.
        if self.proposer_ids and sender not in self.proposer_ids:
            self._proposer_from_relay(sender, m.members)
        if self.proposer_ids and not owner_ok(self.proposer_ids, sender, m.ballot, ready, m):
            return
        self.leader = sender
        if m.members and m.members != self.members_heard:
            # The leader's chosen changes: whose votes to take (still counted per slot, by what
            # was delivered here).
            self.members_heard = m.members
            heard = History(self.history.bootstrap, self.history.alpha)
            try:
                heard.merge(m.members)
            except BadMembership:
                pass
            for members in heard.all_members():
                self.joining.update(members.acceptor_names)
        self._note_chosen_through(m.chosen_through)

    def _proposer_from_relay(self, sender: str, members: bytes) -> None:
        """A proposer a change added after our config was read (a learner started by `members
        replace` while the cache of changes lagged): its id, from the chosen changes it relays.
        Without it every Heartbeat and Accepted of its ballot is refused, so we never learn that
        anything is chosen, never fetch, and never deliver the change that would name it: stuck.
        The relay is as trusted as the acceptors it already makes us count (`joining`)."""
        if not members:
            return
        heard = History(self.history.bootstrap, self.history.alpha)
        try:
            heard.merge(members)
        except BadMembership:
            return
        for membership in heard.all_members():
            node = membership.proposer_ids.get(sender)
            if node is not None:
                self.proposer_ids.setdefault(sender, node)
                return

    def _note_chosen_through(self, slot: int) -> None:
        """What the leaders say is chosen: what gap fetches aim at. Only within the window we
        take votes in (it is the wire's word: a far one would only make us fetch in vain)."""
        slot = min(slot, self.delivered + self.window_slots_max)
        if slot > self.known_chosen_through:
            self.known_chosen_through = slot

    def _fast_proposal(self, slot: int, ballot: Ballot, sender: str | None, value: Value | None, entry: Tally,
                       ready: Ready) -> bool:
        """A fast ballot's tally that began with the acceptors' own votes, and now the leader's
        proposal under that ballot (`sender` None: a slot below those its Any opened, or a chosen
        slot it re-confirms for a learner) or an acknowledgement of it (no value): that ballot's
        one value there, which a majority chooses, counting the acceptors' votes that carry it.
        Ignoring those, a learner that first heard a fetched vote of a StartWorking that only a
        majority took never learned it (simulator, fast seed 135). True: handled here."""
        contested = entry.contested
        assert contested is not None
        if sender is None:
            if value is None:
                return True
            if entry.value is not None and entry.value != value:
                # Two proposals under one ballot: a forgery. From now on, only fast quorums.
                ready.event("message_rejected", WARNING, peer="", reason="conflicting_value", slot=slot,
                            ballot=str(ballot), first=entry.value.describe(), second=value.describe())
                entry.fast = False
                entry.value = None
                entry.voters = []
                return True
            entry.value = value
        elif value is None:
            if self.counts_vote(entry.voters, sender):
                entry.voters.append(sender)
        else:
            return False  # a vote with its value: counted per value by the caller
        proposed = entry.value
        if proposed is not None:
            voters = list(dict.fromkeys([*entry.voters, *contested.get(proposed, [])]))
            if self._enough(slot, voters):
                self._choose(slot, ballot, proposed, voters, True)
        return True

    def _vote(self, sender: str | None, slot: int, ballot: Ballot, value: Value | None, ready: Ready) -> None:
        """One acceptor's vote (`sender`), with or without the value, or the proposal itself
        (`sender` None: a value and no vote)."""
        if slot <= self.delivered or slot in self.chosen:
            return
        if value is not None and value.kind == MEMBERSHIP and sender is None:
            try:
                self.joining.update(decode_membership(value.batches[0]).acceptor_names)
            except BadMembership:
                pass
        if slot > self.delivered + self.window_slots_max:
            ready.event("vote_ignored", WARNING, peer=sender, slot=slot, reason="beyond_window")
            return
        by_ballot = self.tally.get(slot)
        if by_ballot is None:
            by_ballot = self.tally[slot] = {}
        entry = by_ballot.get(ballot)
        fast = self.fast.enabled and self.fast.is_fast(ballot)
        if fast and entry is None and sender is not None and value is not None:
            # A fast round's vote, with its value: acceptors may differ, so it is counted per value
            # from the start (as a contested tally is), and only a fast quorum of one value chooses.
            entry = by_ballot[ballot] = Tally(contested={}, fast=True)
        if entry is None:
            entry = by_ballot[ballot] = Tally(value=value)
        elif value is not None and entry.contested is None:
            known = entry.value
            if known is None:
                entry.value = value
            elif known != value:
                # Two values under one ballot: someone forged one (a proposer never proposes two).
                # Which one the votes so far stood for is unknown: drop them all, and from now on
                # count only votes that carry their value.
                ready.event("message_rejected", WARNING, peer=sender or "", reason="conflicting_value", slot=slot,
                            ballot=str(ballot), first=known.describe(), second=value.describe())
                entry.contested = {}
                entry.value = None
                entry.voters = []
        contested = entry.contested
        if contested is not None:
            if entry.fast and self._fast_proposal(slot, ballot, sender, value, entry, ready):
                return
            if sender is None or value is None:
                return
            voters = contested.setdefault(value, [])
            if self.counts_vote(voters, sender):
                voters.append(sender)
            # Under a fast ballot, values may differ honestly: a majority of one is not enough
            # (but for the leader's own proposal there, `_fast_proposal`). A value no client's
            # FastAccept can make under it (not a command batch of that ballot's epoch: a
            # StartWorking, a value Phase 1 found) is the leader's proposal too: a learner that
            # missed the leader's Accept of a StartWorking only a majority took, and fetched those
            # votes, waited for ever (simulator, fast seed 843: its re-confirmation under the next
            # fast ballot was refused by acceptors holding other values in the range).
            if fast and (value.kind != COMMANDS or value.epoch != ballot.base()):
                fast = False
            if self._enough(slot, voters, fast):
                self._choose(slot, ballot, value, voters, fast)
            elif entry.fast and value == entry.value:
                self._fast_proposal(slot, ballot, None, value, entry, ready)
            return
        # (A duplicated vote may still bring the value, so the check below runs either way.)
        if sender is not None and self.counts_vote(entry.voters, sender):
            entry.voters.append(sender)
        if entry.value is not None and self._enough(slot, entry.voters):
            self._choose(slot, ballot, entry.value, entry.voters)

    def _deliver(self, ready: Ready) -> None:
        chosen = self.chosen
        start = self.delivered
        while self.delivered + 1 in chosen:
            slot = self.delivered + 1
            if not self._verified(slot):
                ready.event("vote_recount", slot=slot, members=self.members_at(slot).describe())
                break
            record = DecidedRecord(slot, chosen.pop(slot))
            ready.persist.append(record)
            if self.tail is not None:
                self.tail.append(record)
            applied = self.apply(record)
            ready.deliver.append((slot, record.value))
            ready.send.extend(applied.replies)
            if applied.ghost:
                ready.event("ghost_skipped", INFO, slot=slot, epoch=str(record.value.epoch),
                            current_epoch=str(self.epoch))
            elif applied.epoch_started:
                ready.event("epoch_started", slot=slot, epoch=str(record.value.epoch))
            elif applied.membership is not None:
                ready.event("membership_learned", slot=slot, from_slot=self.history.effective[-1],
                            members=applied.membership.describe())
            for reason in applied.rejected:
                ready.event("batch_rejected", WARNING, slot=slot, reason=reason)
            if self.debug_events:
                ready.event("slot_delivered", DEBUG, slot=slot, value=record.value.describe())
        if self.delivered != start:
            self.stall_ticks = 0
            self.fetch_rounds = 0
            self._note_chosen_through(self.delivered)

    def _on_tick(self, sender: str, m: Tick, ready: Ready) -> None:
        self.ticks += 1
        if self.snapshot is not None and self.ticks % self.offer_ticks == 0:
            # Offer it again now and then: an acceptor that was down, busy or behind takes it now.
            offer = SnapshotOffer(self.snapshot.slot, self.snapshot.size_bytes, self.snapshot.crc)
            for acceptor in self.acceptors:
                ready.send.append((acceptor, offer))
        target = max(self.known_chosen_through, max(self.chosen, default=0))
        if target <= self.delivered:
            self.stall_ticks = 0
            return
        self.stall_ticks += 1
        if self.stall_ticks < self.fetch_ticks:
            return
        self.stall_ticks = 0
        first = self.delivered + 1
        last = min(target, self.delivered + self.fetch_slots_max)
        fetch = Fetch(first, last)
        for acceptor in self.acceptors:
            ready.send.append((acceptor, fetch))
        # And the acceptors a leader's history names that our own does not yet: a learner added
        # after the bootstrap acceptors were replaced (and stopped) can reach only those.
        for acceptor in sorted(self.joining - self.acceptor_set):
            ready.send.append((acceptor, fetch))
        ready.event("gap_fetch", DEBUG, from_slot=first, to_slot=last)
        self.fetch_rounds += 1
        if self.fetch_rounds >= self.repair_after_fetches and self.leader is not None and not self.snapshot_fetching:
            # The acceptors answered but no ballot has a majority: ask for re-confirmation.
            self.fetch_rounds = 0
            ready.send.append((self.leader, Repair(first, last)))
            ready.event("repair_requested", from_slot=first, to_slot=last, leader=self.leader)

    def end_turn(self, ready: Ready) -> None:
        """After a turn's deliveries: reads whose index is delivered; time for a snapshot?"""
        if self.reads_waiting and self.reads_waiting[0][0] <= self.delivered:
            self._release_reads(ready)
        if self.snapshot_taking or not (self.snapshot_every_slots or self.snapshot_every_bytes):
            return
        since = self.delivered - (self.snapshot.slot if self.snapshot is not None else 0)
        # Never more often than the snapshot's own size in log: a big state is not rewritten
        # whole for every few megabytes of new log.
        every_bytes = max(self.snapshot_every_bytes, self.snapshot.size_bytes if self.snapshot is not None else 0)
        if since > 0 and ((self.snapshot_every_slots and since >= self.snapshot_every_slots)
                          or (self.snapshot_every_bytes and self.bytes_since_snapshot >= every_bytes)):
            self.snapshot_taking = self.delivered
            self.bytes_since_snapshot = 0
            if self.tail is None:
                self.tail = []
            ready.actions.append(TakeSnapshot(self.delivered))

    def checkpoint(self) -> list[Record]:
        """The snapshot record and the decisions after it."""
        assert self.snapshot is not None
        slot = self.snapshot.slot
        tail = [r for r in self.tail or () if r.slot > slot]
        # Keep collecting while a snapshot of our own is still being written: its compaction
        # needs the decisions after it too.
        self.tail = tail if self.snapshot_taking else None
        return [self.snapshot, *tail]

    # --- reads without a log write (actors/lease.py) ---------------------------------------

    def _on_read_at(self, sender: str, m: ReadAt, ready: Ready) -> None:
        """The leader's reads: answered once every slot through `index` is delivered here."""
        if self.proposer_ids and sender not in self.proposer_ids:
            reject(ready, sender, m, "not_a_proposer")
            return
        if m.index > self.delivered + self.window_slots_max:
            reject(ready, sender, m, "slot_beyond_horizon", index=m.index, delivered=self.delivered)
            return
        parsed = self._parse_reads(m.batch, ready)
        if parsed is None:
            return
        client, gets, bad = parsed
        if m.index > self.delivered and gets:
            # Those of its keys that no proposal of the leader up to the index writes are answered
            # now: a write to them chosen before the reads reached the leader would be one of
            # those proposals (actors/lease.py), so they read the same now as after the index.
            written = self.keys_written(m.index, m.ballot)
            if written is not None:
                touches = self.read_touches
                early = [g for g in gets if not touches(g[1], written)]
                if early:
                    gets = [g for g in gets if touches(g[1], written)]
                    self._answer(client, early, [], ready)
        if m.index <= self.delivered or not gets:
            self._answer(client, gets, bad, ready)
            return
        if bad:
            self._answer(client, [], bad, ready)
        if len(self.reads_waiting) >= READS_WAITING_MAX:
            ready.event("read_dropped", WARNING, peer=sender, reason="too_many_waiting", index=m.index)
            return  # the client asks again
        self.reads_arrived += 1
        heapq.heappush(self.reads_waiting, (m.index, self.reads_arrived, client, gets))

    @staticmethod
    def read_touches(keys: ReadKeys, written: frozenset[str]) -> bool:
        """Whether a read asks for a key that `written` holds: an mget waits if ANY of its keys
        may be written, or it would read one key before a write chosen before it arrived."""
        return keys in written if type(keys) is str else not written.isdisjoint(keys)

    def keys_written(self, index: int, ballot: Ballot) -> frozenset[str] | None:
        """Every key the proposals of `ballot` in the slots after `delivered` through `index` may
        write, or None when one of them is not known here (then the reads wait for the index)."""
        if ballot == ZERO or index - self.delivered > self.fetch_slots_max:
            return None
        keys: set[str] = set()
        cache = self.slot_keys
        for slot in range(self.delivered + 1, index + 1):
            got = cache.get(slot)
            if got is None or got[0] != ballot:
                entry = self.tally.get(slot, {}).get(ballot)
                value = self.chosen.get(slot) or (entry.value if entry is not None and entry.contested is None
                                                   else None)
                if value is None:
                    return None
                got = cache[slot] = (ballot, self._writes(value))
            keys |= got[1]
        return frozenset(keys)

    def _writes(self, value: Value) -> frozenset[str]:
        """The keys a slot's value may write (a batch that does not parse writes nothing: every
        learner skips it)."""
        if value.kind != COMMANDS:
            return frozenset()
        keys: set[str] = set()
        for blob in value.batches:
            try:
                batch = parse_batch(self.decode(blob))
            except (BadBatch, ValueError):
                continue
            for c in batch.commands:
                if len(c) >= 3 and c[1] != "get" and type(c[2]) is str:
                    keys.add(c[2])
        return frozenset(keys)

    def _on_read(self, sender: str, m: Read, ready: Ready) -> None:
        """A client's stale reads: answered from the state as it stands, with no check at all."""
        parsed = self._parse_reads(m.batch, ready)
        if parsed is not None:
            self._answer(*parsed, ready)

    def _release_reads(self, ready: Ready) -> None:
        waiting = self.reads_waiting
        while waiting and waiting[0][0] <= self.delivered:
            _, _, client, gets = heapq.heappop(waiting)
            self._answer(client, gets, [], ready)
        if self.slot_keys and min(self.slot_keys) <= self.delivered:
            self.slot_keys = {s: k for s, k in self.slot_keys.items() if s > self.delivered}

    def _parse_reads(self, blob: bytes, ready: Ready) -> tuple[str, list[tuple[int, ReadKeys]], list[int]] | None:
        """(client, [(seq, key)] of its gets, [seq] of anything else), or None if it is no batch.
        A `get` reads one key (a str); an `mget` (`[seq, "mget", key, ...]`, `Client.get_many`)
        reads several at once (a tuple of them), answered with their values as a list.
        One pass over the commands as decoded: a read batch is checked as `parse_batch` checks
        any batch, without first copying each command into a tuple of its own (most of what a
        read cost here)."""
        try:
            raw = self.decode(blob)
            if type(raw) is tuple and len(raw) in (3, 4) and type(raw[2]) is tuple:
                client_id = parse_batch((raw[0], raw[1], (), *raw[3:])).client_id  # the outer shape
                commands: tuple[Any, ...] = raw[2]
            else:
                batch = parse_batch(raw)
                client_id, commands = batch.client_id, batch.commands
        except (BadBatch, ValueError) as exc:
            ready.event("batch_rejected", WARNING, reason=f"read: {exc}"[:200])
            return None
        gets: list[tuple[int, ReadKeys]] = []
        bad: list[int] = []
        for c in commands:
            if type(c) is tuple or type(c) is list:
                if len(c) == 3 and type(c[0]) is int and c[1] == "get" and type(c[2]) is str and c[2]:
                    gets.append((c[0], c[2]))
                elif (len(c) >= 3 and type(c[0]) is int and c[1] == "mget"
                      and all(type(k) is str and k for k in c[2:])):
                    gets.append((c[0], tuple(c[2:])))
                elif c and type(c[0]) is int and c[0] >= 0:
                    bad.append(c[0])
            elif type(c) is int and c >= 0:  # a bare seq: `parse_batch` makes it a command of one
                bad.append(c)
        return client_id, gets, bad

    def _answer(self, client: str, gets: list[tuple[int, ReadKeys]], bad: list[int], ready: Ready) -> None:
        data = self.kv.data
        get = data.get
        # An mget's keys are read together, from this one state.
        results: list[tuple[int, bool, Any]] = [
            (seq, True, get(key) if type(key) is str else [get(k) for k in key]) for seq, key in gets]
        results += [(seq, False, "bad_command: a read batch holds only gets and mgets") for seq in bad]
        self.reads_answered += 1
        if results:
            ready.send.append((client, Reply(tuple(results))))

    HANDLERS = {Accepted: _on_accepted, Fetched: _on_fetched, Accept: _on_accept, Heartbeat: _on_heartbeat,
                Tick: _on_tick, SnapshotTaken: _on_snapshot_taken, SnapshotInstalled: _on_snapshot_installed}
    HANDLERS = {**HANDLERS, ReadAt: _on_read_at, Read: _on_read}

    # --- observation -----------------------------------------------------------------------

    def invariants(self) -> None:
        if self.delivered + 1 in self.chosen:
            raise InvariantViolation("a learner delivers every slot it can", delivered=self.delivered)

    def status(self) -> dict[str, Any]:
        members, members_slot = self.history.in_force(self.delivered + 1)
        return {
            "role": "learner",
            # The membership of the next slot to deliver, as the canonical JSON of a membership
            # value (`paxos members` shows it), and the slot that chose it (0: the bootstrap).
            "members": encode_membership(members).decode(),
            "members_slot": members_slot,
            "alpha": self.history.alpha,
            "state": "catching_up" if self.snapshot_fetching else "learning",
            "delivered": self.delivered,
            "snapshot_slot": self.snapshot.slot if self.snapshot is not None else 0,
            "records_in_memory": len(self.tally) + len(self.chosen),
            "epoch": str(self.epoch),
            "known_chosen_through": self.known_chosen_through,
            "keys": len(self.kv.data),
            "skipped_entries": self.skipped_entries,
            "reads_answered": self.reads_answered,
            "reads_waiting": len(self.reads_waiting),
        }

    def status_digest(self) -> str | None:
        """The store's hash for a status that asks for it (StatusQuery.digest); None above
        DIGEST_KEYS_MAX keys: hashing every key costs seconds at millions of them."""
        return self.kv.digest() if len(self.kv.data) <= DIGEST_KEYS_MAX else None
