"""Membership change through the log (issue 11; seed 001: "slot i is decided by the membership
chosen at slot i - alpha").

What it owns: the membership value (who the proposers, acceptors and learners are, each with a
name and an endpoint), its encoding inside a slot value, the history of memberships a node knows
as facts, the rule that maps a slot to the membership that governs it, and the checks that
refuse a bad change. It never does I/O, never reads a clock, never logs.

## Representation

A `Membership` is three tuples, in configured order (iteration order is part of determinism):
`proposers` of `(name, id, endpoint)`, `acceptors` and `learners` of `(name, endpoint)`. The
bootstrap membership is cluster.toml's; it governs every slot until a change takes effect.

## In the log

A change is a slot value of kind `MEMBERSHIP` (actors/messages.py) whose one batch is the
canonical encoding of the whole new membership (`encode`, UTF-8 JSON of plain lists: the
standard library, and byte for byte the same on every node). Proposers and acceptors treat it as
any other value (Phase 2 is unchanged); it is never applied to the key-value state. A change can
change any role, several members in one entry.

## Which membership decides a slot

A membership chosen at slot `c` governs every slot `s >= c + alpha` until the next one takes
effect (`History.at`). `alpha` is a config knob (`[protocol] alpha_slots`), at least
`window_slots`, so that a leader that keeps `window_slots` slots in flight always knows the
membership of the slots it opens next. The same alpha must be configured on every node (it is
part of the protocol, like the bootstrap membership).

A node's `History` holds only facts: changes it knows were chosen (a learner: delivered; a
proposer: chosen by its own quorum, or told by a leader's Heartbeat or an acceptor's Promise,
which relay the sender's facts as one opaque blob, `History.encode`). Facts are
prefix-consistent across nodes (a chosen slot has one value), so of two histories the one with
more changes is the newer; merging takes the union. A history relayed with a watermark `W` lists
every change chosen at or below `W`: the leader's own history covers its watermark, and
acceptors keep the newest they were sent, durably (`MembersRecord`) and before the AcceptRecord
carrying the watermark it came with, so a Promise's `chosen_through` never outruns its history.
Proposers persist what they learn the same way, so a restarted one asks today's acceptors.

## The proposer

* Quorum of slot `s`: a majority of `at(s)`. While a change of its own at slot `c` is still in
  flight (`pending`), a slot `s >= c + alpha` is governed by the new membership if `c` is chosen
  and by the old one if not; the leader counts `s` chosen only with a majority of BOTH, so it is
  right either way (a deposed leader's chosen marks are never wrong).
* It allocates no slot `s >= c + alpha` before a majority of the new membership has promised its
  ballot (a Prepare to the new acceptors, sent when it proposes the change). Should those
  Promises report any vote at or above `c + alpha` (only a leader that guessed wrong can have
  left one), it steps down and the next election reads them.
* Phase 1 across memberships: the Promise of a majority of EVERY membership that governs a slot
  from the first unchosen one on: the older ones still governing open slots, the newest known
  (it governs all future slots), and every membership value the Promises report in the range it
  re-proposes (it will govern the slots from its slot + alpha if re-chosen). Each re-proposed
  value is the highest-ballot vote over all the Promises: a superset of a quorum of the slot's
  membership, and any vote above the ballot at which a value was chosen carries that value
  (P2c), so the superset picks it too. With no change ever, the one required membership is the
  bootstrap one, and Phase 1 is exactly the old rule.

## Learners

Votes for slot `s` count when their acceptor is in `at(s)` (votes are taken from every acceptor
of a known membership, of a proposed one, or of a leader's relayed history, and counted per
slot). A learner knows `at(s)` as a fact
once it delivered through `s - alpha`; for slots further ahead it counts with its newest
knowledge and checks again when it delivers the slot (`verify`): a slot whose voters are not a
quorum of the slot's real membership goes back to waiting for votes (and to the gap fetch). Its
snapshot carries its history (the learner's snapshot state gains a sixth item, only when there
was a change), so a learner or an acceptor restored from a snapshot knows the memberships of the
slots after it.

## A removed acceptor

It may keep answering: old ballots, Prepare, Fetch. Its votes count only for slots whose
membership includes it (learners and leaders count per slot), its Promise counts only toward the
memberships it belongs to, and Phase 1 asks the old memberships only while they still govern an
open slot. So it can neither make a slot chosen nor hide a chosen value.

## One change at a time

`refusal` says why a change cannot be proposed now: fewer than 3 acceptors, a duplicate name,
endpoint or proposer id, no change at all, or a change while another is still inside its alpha
window (pending, or chosen at `c` with the leader's next slot below `c + alpha`). The operator
asks again later; nothing is queued, but a leader refusing for the alpha window fills it with
no-ops, or an idle cluster would never pass it.

## A proposer that is removed

It keeps leading the slots before its removal takes effect (it opens none after), stands down
once they are chosen, and never campaigns again; the others take over by election.

## On real processes

The runtime around these rules (runtime/members.py, runtime/admin.py, the supervisor): an
operator's `ChangeMembers` reaches the serving leader, which answers once the change is chosen
(or at once with a refusal); an idle leader fills the slots before the newest change with no-ops,
so it takes effect without client traffic (and a removed leader stands down). Shells reach a
member a change brought from the endpoint its membership names; the supervisor caches the chosen
changes, starts new local members and stops removed ones once no slot they serve is open.

Not here: the re-confirmation (Repair) of a range that straddles a change (it is cut at the
change).
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from typing import Any

from actors.invariants import check

ACCEPTORS_MIN = 3


class BadMembership(ValueError):
    """A membership value or history blob that is not one (the peer's fault, or a bad file)."""


@dataclass(frozen=True, slots=True)
class Membership:
    proposers: tuple[tuple[str, int, str], ...]
    acceptors: tuple[tuple[str, str], ...]
    learners: tuple[tuple[str, str], ...]

    @property
    def acceptor_names(self) -> list[str]:
        return [a for a, _ in self.acceptors]

    @property
    def learner_names(self) -> list[str]:
        return [n for n, _ in self.learners]

    @property
    def proposer_ids(self) -> dict[str, int]:
        return {n: i for n, i, _ in self.proposers}

    def endpoints(self) -> dict[str, str]:
        """Every member's endpoint by name, proposers first."""
        return {n: e for n, _, e in self.proposers} | dict(self.acceptors) | dict(self.learners)

    def majority(self) -> int:
        return len(self.acceptors) // 2 + 1

    def names(self) -> list[str]:
        return [*(p for p, _, _ in self.proposers), *self.acceptor_names, *self.learner_names]

    def to_plain(self) -> list[list[list[object]]]:
        return [[list(p) for p in self.proposers], [list(a) for a in self.acceptors],
                [list(n) for n in self.learners]]

    @staticmethod
    def from_plain(raw: object) -> Membership:
        try:
            if not isinstance(raw, (list, tuple)) or len(raw) != 3:
                raise TypeError("a membership is [proposers, acceptors, learners]")
            ps: list[Any] = list(raw[0])
            acs: list[Any] = list(raw[1])
            ls: list[Any] = list(raw[2])
            proposers = tuple((str(n), int(i), str(e)) for n, i, e in ps)
            acceptors = tuple((str(n), str(e)) for n, e in acs)
            learners = tuple((str(n), str(e)) for n, e in ls)
        except (TypeError, ValueError) as exc:
            raise BadMembership(f"not a membership: {exc}") from None
        return Membership(proposers, acceptors, learners)

    # --- building a change (the operator's words) ------------------------------------------

    def with_acceptor(self, name: str, endpoint: str) -> Membership:
        return Membership(self.proposers, (*self.acceptors, (name, endpoint)), self.learners)

    def with_learner(self, name: str, endpoint: str) -> Membership:
        return Membership(self.proposers, self.acceptors, (*self.learners, (name, endpoint)))

    def with_proposer(self, name: str, node_id: int, endpoint: str) -> Membership:
        return Membership((*self.proposers, (name, node_id, endpoint)), self.acceptors, self.learners)

    def without(self, name: str) -> Membership:
        if name not in self.names():
            raise BadMembership(f"unknown member {name}")
        return Membership(tuple(p for p in self.proposers if p[0] != name),
                          tuple(a for a in self.acceptors if a[0] != name),
                          tuple(n for n in self.learners if n[0] != name))

    def describe(self) -> str:
        return (f"proposers={','.join(p for p, _, _ in self.proposers)} acceptors={','.join(self.acceptor_names)} "
                f"learners={','.join(self.learner_names)}")


def encode(m: Membership) -> bytes:
    """Canonical bytes: the same membership gives the same bytes on every node (values are
    compared byte for byte: a retransmission must equal the first copy)."""
    return json.dumps(m.to_plain(), separators=(",", ":")).encode()


def decode(blob: bytes) -> Membership:
    try:
        raw = json.loads(blob.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadMembership(f"not a membership: {exc}") from None
    return Membership.from_plain(raw)


NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # as cluster.toml's names (runtime/config.py)
# tcp://HOST:PORT, or sim://NAME in the simulator.
ENDPOINT = re.compile(r"^tcp://[A-Za-z0-9.\-]{1,253}:(?P<port>[0-9]{1,5})$|^sim://[a-z0-9_-]{1,32}$")
MEMBERS_MAX = 64  # of each role: a change names whole memberships, and every node keeps them


def invalid(m: Membership) -> str | None:
    """Why `m` cannot be a membership at all (None if it can)."""
    for role, group in (("proposers", m.proposers), ("acceptors", m.acceptors), ("learners", m.learners)):
        if len(group) > MEMBERS_MAX:
            return f"more than {MEMBERS_MAX} {role}"
    for name, endpoint in [(p[0], p[2]) for p in m.proposers] + list(m.acceptors) + list(m.learners):
        if not NAME.match(name) or name == "supervisor":
            return f"bad member name {name[:40]!r} (1-32 of a-z, 0-9, _ and -, starting with a letter)"
        ep = ENDPOINT.match(endpoint) if endpoint else None
        if endpoint and (ep is None or (ep["port"] is not None and not 1 <= int(ep["port"]) <= 65535)):
            return f"bad endpoint {endpoint[:80]!r} for {name} (tcp://HOST:PORT)"
    if any(not 1 <= i <= 1_000_000 for _, i, _ in m.proposers):
        return "a proposer id must be from 1 to 1000000"
    if len(m.acceptors) < ACCEPTORS_MIN:
        return f"fewer than {ACCEPTORS_MIN} acceptors"
    if not m.proposers or not m.learners:
        return "no proposer or no learner"
    names = m.names()
    if len(set(names)) != len(names):
        return "duplicate name"
    endpoints = [p[2] for p in m.proposers] + [e for _, e in m.acceptors] + [e for _, e in m.learners]
    if len(set(endpoints)) != len(endpoints):
        return "duplicate endpoint"
    ids = [i for _, i, _ in m.proposers]
    if len(set(ids)) != len(ids) or min(ids) < 1:
        return "duplicate or non-positive proposer id"
    return None


class History:
    """The memberships a node knows were chosen, in slot order: the bootstrap one, then every
    change as `(chosen_slot, membership)`. `at(slot)` is the membership that governs `slot` as
    far as these facts go (a later change unknown here may exist only at slots the holder does
    not know chosen)."""

    __slots__ = ("_blob", "alpha", "bootstrap", "changes", "effective")

    def __init__(self, bootstrap: Membership, alpha: int) -> None:
        check(alpha >= 1, "alpha is at least one slot", alpha=alpha)
        self.bootstrap = bootstrap
        self.alpha = alpha
        self.changes: list[tuple[int, Membership]] = []
        self.effective: list[int] = []  # the first slot each change governs
        self._blob = b""

    def copy(self) -> History:
        new = History.__new__(type(self))
        new.bootstrap, new.alpha, new._blob = self.bootstrap, self.alpha, self._blob
        new.changes, new.effective = list(self.changes), list(self.effective)
        return new

    def effective_from(self, chosen_slot: int) -> int:
        """The first slot a membership chosen at `chosen_slot` governs (the alpha rule; a
        planted bug overrides this)."""
        return chosen_slot + self.alpha

    def at(self, slot: int) -> Membership:
        effective = self.effective
        if not effective or slot < effective[0]:
            return self.bootstrap
        i = len(effective) - 1
        while effective[i] > slot:
            i -= 1
        return self.changes[i][1]

    def in_force(self, slot: int) -> tuple[Membership, int]:
        """The membership that governs `slot`, and the slot that chose it (0: the bootstrap)."""
        effective = self.effective
        if not effective or slot < effective[0]:
            return self.bootstrap, 0
        i = len(effective) - 1
        while effective[i] > slot:
            i -= 1
        return self.changes[i][1], self.changes[i][0]

    def latest(self) -> Membership:
        return self.changes[-1][1] if self.changes else self.bootstrap

    def latest_change_slot(self) -> int:
        return self.changes[-1][0] if self.changes else 0

    def governing(self, from_slot: int) -> list[Membership]:
        """Every membership that governs some slot >= from_slot, oldest first."""
        out = [self.at(from_slot)]
        for e, (_, m) in zip(self.effective, self.changes, strict=True):
            if e > from_slot and m not in out:
                out.append(m)
        return out

    def all_members(self) -> list[Membership]:
        return [self.bootstrap, *(m for _, m in self.changes)]

    def learn(self, slot: int, m: Membership) -> bool:
        """A fact: `m` was chosen at `slot`. True if it is news. Changes may become known out of
        slot order (a leader sees its slots chosen out of order); they are kept in slot order."""
        slots = [s for s, _ in self.changes]
        if slot in slots:
            return False
        i = bisect.bisect(slots, slot)
        self.changes.insert(i, (slot, m))
        self.effective.insert(i, self.effective_from(slot))
        check(all(a < b for a, b in zip(self.effective, self.effective[1:], strict=False)),
              "memberships take effect in slot order", effective=self.effective)
        self._blob = b""
        return True

    def encode(self) -> bytes:
        """The changes as one blob (empty: none), what Heartbeat, Accept and Promise relay."""
        if not self.changes:
            return b""
        if not self._blob:
            self._blob = json.dumps([[s, m.to_plain()] for s, m in self.changes], separators=(",", ":")).encode()
        return self._blob

    def merge(self, blob: bytes) -> bool:
        """Take the changes a relayed history knows and this one does not (facts agree on a
        slot both know). True if it learned something."""
        if not blob or blob == self._blob:
            return False
        try:
            raw = json.loads(blob.decode())
            changes = [(int(s), Membership.from_plain(m)) for s, m in raw]
        except (UnicodeDecodeError, ValueError, TypeError) as exc:
            raise BadMembership(f"not a membership history: {exc}") from None
        grew = False
        for slot, m in changes:
            grew = self.learn(slot, m) or grew
        return grew


def refusal(history: History, new: Membership, next_slot: int, pending: bool) -> str | None:
    """Why the leader cannot propose `new` now (None: it can). `next_slot` is the slot the change
    would take."""
    why = invalid(new)
    if why is not None:
        return why
    if pending:
        return "another change is not chosen yet"
    if new == history.latest():
        return "no change"
    if history.changes and next_slot < history.effective[-1]:
        return f"another change is inside its alpha window until slot {history.effective[-1]}"
    return None
