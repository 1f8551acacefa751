"""Planted bugs, for testing the tests (Paxos Made Live, section 6.3: "we left some protocol bugs
... in the system, and verified that our test system detected these bugs").

None of them is in the product: each is a subclass here that overrides one named rule method
of a product class (`Acceptor.may_accept`, `Turn.commit`, `Scanner.corrupt`, ...). `kinds(names)`
builds the classes a shell uses with the named bugs mixed in; the simulator, the scenario world
and the model checker take those, and a test-mode process takes them from the environment
(`PAXOS_PLANTED_BUGS=name,...`, read by runtime/harness/actor.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.acceptor import Acceptor
from actors.ballot import Ballot
from actors.learner import Learner
from actors.membership import Membership
from actors.messages import Vote
from actors.proposer import FOLLOWER, Proposer
from actors.ready import Ready, by_destination
from actors.records import PromiseRecord, Record, SnapshotRecord
from runtime.storage import SnapshotDir, SnapshotFile, encode_snapshot
from runtime.turn import PRODUCT, Kinds, Turn
from runtime.wal import Scanner

# --- one subclass per broken rule -------------------------------------------------------------


class ReplyBeforeFsync(Turn):
    """Sends replies before the records that justify them are durable (fsync every half second:
    a power loss every few seconds then nearly always lands between a reply and its fsync; with an
    fsync one tick later, the Jepsen-style power-loss run missed it in about one CI run in ten)."""

    SYNC_EVERY_TICKS = 50

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.durable = False
        self.sync_every_ticks = self.SYNC_EVERY_TICKS

    def commit(self, ready: Ready) -> None:
        for dest, msgs in by_destination(ready.send).items():
            self.shell.send(dest, msgs)
        ready.send = []
        super().commit(ready)  # then the records, written without waiting for the disk


class AcceptBelowPromise(Acceptor):
    """The acceptor accepts a ballot below its promise."""

    def may_accept(self, b: Ballot) -> bool:
        return True


class PromiseInMemory(Acceptor):
    """The acceptor keeps its promise only in memory (no record)."""

    def record_promise(self, b: Ballot, ready: Ready) -> None:
        self.apply(PromiseRecord(b))


class IgnorePromisedValues(Proposer):
    """A new leader takes the first value reported for a slot, not the highest-ballot one."""

    def prefers(self, vote: Vote, seen: Vote) -> bool:
        return False


class ReuseBallotAfterRestart(Proposer):
    """The proposer forgets its rounds on restart (replay, before its first election) and
    reuses ballots."""

    def apply(self, record: Record) -> None:
        if self.state is FOLLOWER and not self.ticks and not self.elections:
            return
        super().apply(record)


class CountDuplicateAccepted(Learner):
    """The learner counts a duplicated Accepted twice toward the quorum."""

    def counts_vote(self, voters: list[str], sender: str) -> bool:
        return True


class AckBeforeChosen(Learner):
    """The learner applies (and answers the client) on the first Accepted, before a quorum."""

    def quorum(self) -> int:
        return 1


class FastQuorumTooSmall(Learner):
    """Fast mode: the learner takes a slot chosen when one acceptor fewer than a fast quorum
    voted for one value under a fast ballot (4 acceptors: 2, 5: 3, a mere majority)."""

    def fast_quorum(self, n: int) -> int:
        return super().fast_quorum(n) - 1


class MembershipBeforeAlpha(Learner):
    """The learner counts a slot's votes by the newest membership chosen before it, even one
    chosen less than alpha slots before (the alpha rule of issue 11 broken)."""

    def members_at(self, slot: int) -> Membership:
        members = self.history.bootstrap
        for chosen_slot, m in self.history.changes:
            if chosen_slot < slot:
                members = m
        return members


class ProposerMembershipBeforeAlpha(Proposer):
    """The leader counts and sends a slot by the newest membership proposed before it, even one
    not chosen yet or chosen less than alpha slots before (the alpha rule of issue 11 broken)."""

    def _quorums(self, slot: int) -> list[Membership]:
        members = self.history.bootstrap
        for chosen_slot, m in sorted([*self.history.changes, *self.pending], key=lambda c: c[0]):
            if chosen_slot < slot:
                members = m
        return [members]


class CompactPastSnapshot(Acceptor):
    """The acceptor compacts past what its durable snapshot holds (everything it has accepted)."""

    def compaction_point(self, snapshot: SnapshotRecord) -> int:
        return max(snapshot.slot, self.highest_slot)


class TrimBeforeSnapshotDurable(SnapshotDir):
    """Snapshots are made final (renamed in, the file compacted to them) before they are on disk:
    the fsync before the rename is skipped."""

    def write(self, role: str, name: str, slot: int, state: Any) -> SnapshotFile:
        data = encode_snapshot(role, name, slot, state)
        tmp = self.file(slot).with_name(self.file(slot).name + ".tmp")
        self.storage.write(tmp, data)
        self.storage.rename(tmp, self.file(slot))
        self.storage.fsync_dir(self.path)
        return SnapshotFile(slot, len(data), zlib.crc32(data))

    def finish(self, slot: int, size_bytes: int, crc: int) -> bool:
        part = self.part(slot, crc)
        data = self.storage.read(part) if self.storage.size(part) is not None else b""
        if len(data) != size_bytes or zlib.crc32(data) != crc:
            self.storage.unlink(part)
            return False
        self.storage.rename(part, self.file(slot))
        self.storage.fsync_dir(self.path)
        return True


class TruncateOnCorruption(Scanner):
    """Recovery cuts the file at corruption in the middle instead of stopping."""

    def corrupt(self, path: Path, offset: int, reason: str, later: int) -> None:
        return None


class LeaseIgnoresDrift(Proposer):
    """The leader serves reads for the acceptors' whole lease_ticks of its own ticks after the round
    it sent (the clock-drift bound and the tick's rounding ignored)."""

    def lease_span_ticks(self) -> int:
        p = self.read_params
        return p.lease_ticks if p is not None and p.lease else 0


class AcceptorIgnoresGrant(Acceptor):
    """The acceptor grants leases but promises another proposer while one runs."""

    def refuses_for_lease(self, sender: str, b: Ballot, ready: Ready) -> bool:
        return False


class MgetChecksOneKey(Learner):
    """The learner answers an mget before its read index when its first key is not written by a
    pending proposal, whatever its other keys are."""

    @staticmethod
    def read_touches(keys: str | tuple[str, ...], written: frozenset[str]) -> bool:
        return (keys if type(keys) is str else keys[0]) in written


@dataclass(frozen=True)
class Bug:
    doc: str
    cls: type


BUGS: dict[str, Bug] = {
    "reply_before_fsync": Bug(ReplyBeforeFsync.__doc__ or "", ReplyBeforeFsync),
    "accept_below_promise": Bug(AcceptBelowPromise.__doc__ or "", AcceptBelowPromise),
    "promise_in_memory": Bug(PromiseInMemory.__doc__ or "", PromiseInMemory),
    "ignore_promised_values": Bug(IgnorePromisedValues.__doc__ or "", IgnorePromisedValues),
    "count_duplicate_accepted": Bug(CountDuplicateAccepted.__doc__ or "", CountDuplicateAccepted),
    "reuse_ballot_after_restart": Bug(ReuseBallotAfterRestart.__doc__ or "", ReuseBallotAfterRestart),
    "ack_before_chosen": Bug(AckBeforeChosen.__doc__ or "", AckBeforeChosen),
    "truncate_on_corruption": Bug(TruncateOnCorruption.__doc__ or "", TruncateOnCorruption),
    "membership_before_alpha": Bug(ProposerMembershipBeforeAlpha.__doc__ or "", ProposerMembershipBeforeAlpha),
    "learner_membership_before_alpha": Bug(MembershipBeforeAlpha.__doc__ or "", MembershipBeforeAlpha),
    "compact_past_snapshot": Bug(CompactPastSnapshot.__doc__ or "", CompactPastSnapshot),
    "trim_before_snapshot_durable": Bug(TrimBeforeSnapshotDurable.__doc__ or "", TrimBeforeSnapshotDurable),
    "fast_quorum_too_small": Bug(FastQuorumTooSmall.__doc__ or "", FastQuorumTooSmall),
    "lease_ignores_drift": Bug(LeaseIgnoresDrift.__doc__ or "", LeaseIgnoresDrift),
    "acceptor_ignores_grant": Bug(AcceptorIgnoresGrant.__doc__ or "", AcceptorIgnoresGrant),
    "mget_checks_one_key": Bug(MgetChecksOneKey.__doc__ or "", MgetChecksOneKey),
}


def parse(text: str | None) -> frozenset[str]:
    """`a,b` -> {"a", "b"}; unknown names are an error (a typo must not test nothing)."""
    names = frozenset(n.strip() for n in (text or "").split(",") if n.strip())
    unknown = names - set(BUGS)
    if unknown:
        raise ValueError(f"unknown planted bug(s) {', '.join(sorted(unknown))}; known: {', '.join(BUGS)}")
    return names


def _mix(base: type, names: frozenset[str]) -> type:
    """`base` with every named bug that subclasses it mixed in (in a stable order)."""
    mixins = [BUGS[n].cls for n in sorted(names) if issubclass(BUGS[n].cls, base)]
    if not mixins:
        return base
    if len(mixins) == 1:
        return mixins[0]
    return type("+".join(m.__name__ for m in mixins), tuple(mixins), {})


def kinds(names: frozenset[str] | str | None = None) -> Kinds:
    """The classes to build actors from, with the named bugs planted."""
    bugs = parse(names) if names is None or isinstance(names, str) else names
    if not bugs:
        return PRODUCT
    scanner = _mix(Scanner, bugs)
    return Kinds(acceptor=_mix(Acceptor, bugs), proposer=_mix(Proposer, bugs), learner=_mix(Learner, bugs),
                 turn=_mix(Turn, bugs), scanner=scanner(), snapshot_dir=_mix(SnapshotDir, bugs))
