"""Bounds on every number that comes from the wire (issue 10, "trust nobody on the wire").

A peer is trusted with nothing it says about numbers: a ballot round, a slot, a watermark. Two
kinds of bound apply, and both are checked before a number touches state:

- absolute ceilings (`ROUND_MAX`, `SLOT_MAX`, `NODE_MAX`), the same for every receiver, checked
  at admission by `shape` (runtime/turn.py calls it for every decoded message). They sit far below
  what the codec can hold (2^63 - 1), so everything a core derives from an admitted number (the
  next round, a slot above a watermark, a window's end) is always writable and readable back:
  a proposer's `RoundRecord` can never become one its own reader rejects;
- relative bounds (`WireBounds`), which need the receiver's state: a round no further above the
  highest round the receiver knows than `round_step_max`, a slot no further above the highest
  slot it knows than `slots_ahead_max`. Those the cores check themselves (`round_beyond`,
  `slot_beyond`), since only they know their state.

A number out of bounds is the peer's fault, never an `InvariantViolation` of ours: the message
is rejected with a reason (a `message_rejected` or `frame_rejected` warning, which the turn driver
rate-limits), it changes no state and writes no record.

Why relative bounds at all, with ceilings in place: one forged Prepare at round `ROUND_MAX` would
still end every election (no ballot can exceed it); one Accept for a slot near `SLOT_MAX` would
still make the next leader fill every slot below it with no-ops. A legit proposer's rounds grow by
one per election above the highest it heard of, and a legit leader's slots run at most its window
(and what it recovers) above its watermark, so generous steps cost honest peers nothing. What they
do cost: an acceptor that slept through more than `round_step_max` elections or more than
`slots_ahead_max` slots refuses the leader until an operator raises the knob or rebuilds it (its
refusals say so in the log, with the reason `round_beyond_step` or `slot_beyond_horizon`).
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.ballot import Ballot
from actors.messages import (
    Accept,
    Accepted,
    Any_,
    Fetch,
    Fetched,
    Heartbeat,
    LeaseGranted,
    LeaseRenew,
    Message,
    Nack,
    Prepare,
    Probed,
    Promise,
    ReadAt,
    Recover,
    Recovered,
    Repair,
    SnapshotChunk,
    SnapshotFetch,
    SnapshotOffer,
    Value,
    Vote,
)

# Ceilings. 2^62 leaves 2^62 - 1 of headroom below the codec's 2^63 - 1: a round above the highest
# known, a slot above a watermark plus any window, all stay encodable.
ROUND_MAX = 1 << 62
SLOT_MAX = 1 << 62
NODE_MAX = 1_000_000  # runtime/config.py: a proposer id is at most 1000000
ENTRIES_MAX = 1 << 20  # slots in one Accept, Accepted, or in one reply's votes


@dataclass(frozen=True, slots=True)
class WireBounds:
    """The relative bounds; `runtime.config` has them as `[limits] ballot_round_step_max` and
    `[limits] slots_ahead_max`, with these defaults. Proposers get the configured values through
    `ProposerParams`; an acceptor takes them as its `bounds` argument (the defaults, unless its
    shell passes the configured ones)."""

    round_step_max: int = 1_000_000
    slots_ahead_max: int = 1_000_000


DEFAULT_BOUNDS = WireBounds()


def round_beyond(ballot: Ballot, known_round: int, bounds: WireBounds) -> str | None:
    """Why `ballot` may not be taken by a receiver whose highest known round is `known_round`,
    or None if it may."""
    if ballot.round > ROUND_MAX:
        return "round_above_ceiling"
    if ballot.round > known_round + bounds.round_step_max:
        return "round_beyond_step"
    return None


def slot_beyond(slot: int, known_slot: int, bounds: WireBounds) -> str | None:
    """Why `slot` may not be taken by a receiver whose highest known slot is `known_slot`."""
    if slot > SLOT_MAX:
        return "slot_above_ceiling"
    if slot > known_slot + bounds.slots_ahead_max:
        return "slot_beyond_horizon"
    return None


# --- shape: what no receiver may take, whatever its state ---------------------------------


def _ballot(b: Ballot) -> str | None:
    if b.round > ROUND_MAX:
        return "round_above_ceiling"
    if b.node > NODE_MAX:
        return "node_above_ceiling"
    return None


def _value(v: Value, under: Ballot | None) -> str | None:
    """A value's epoch is the ballot of the leader that first proposed it: never above the ballot
    it travels under (a re-proposal keeps an older epoch). A value with a future epoch would let
    the ghost rule skip every later command."""
    why = _ballot(v.epoch)
    if why is None and under is not None and v.epoch > under:
        why = "epoch_above_ballot"
    return why


def _slot(s: int) -> str | None:
    if s < 1:
        return "slot_zero"
    if s > SLOT_MAX:
        return "slot_above_ceiling"
    return None


def _watermark(s: int) -> str | None:
    return "slot_above_ceiling" if s > SLOT_MAX else None


def _votes(votes: tuple[Vote, ...], under: Ballot | None) -> str | None:
    """Votes in a reply: slots in range, each once; a vote's ballot never above the promise the
    reply is under (an acceptor's votes are all at or below what it promised; a recovery round's,
    actors/ballot.py, counts as its fast ballot's)."""
    if len(votes) > ENTRIES_MAX:
        return "too_many_votes"
    seen: set[int] = set()
    for v in votes:
        why = _slot(v.slot) or _ballot(v.ballot) or _value(v.value, v.ballot)
        # (A fast ballot's recovery-round vote sits just above it: what it promised is the base.)
        if why is None and under is not None and v.ballot.base() > under:
            why = "vote_above_promise"
        if why is None and v.slot in seen:
            why = "duplicate_slot"
        if why:
            return why
        seen.add(v.slot)
    return None


def _accept(m: Accept) -> str | None:
    entries = m.entries
    if len(entries) > ENTRIES_MAX:
        return "too_many_entries"
    why = _ballot(m.ballot) or _watermark(m.chosen_through)
    if why:
        return why
    ballot = m.ballot
    for slot, value in entries:
        why = _slot(slot) or _value(value, ballot)
        if why:
            return why
    if len(entries) > 1 and len({s for s, _ in entries}) != len(entries):
        # Two values for one slot in one message: a learner would see two values under one ballot.
        return "duplicate_slot"
    return None


def _accepted(m: Accepted) -> str | None:
    slots = m.slots
    if len(slots) > ENTRIES_MAX:
        return "too_many_entries"
    why = _ballot(m.ballot)
    if why:
        return why
    for s in slots:
        why = _slot(s)
        if why:
            return why
    if len(slots) > 1 and len(set(slots)) != len(slots):
        return "duplicate_slot"
    for v in m.values:
        why = _value(v, m.ballot)
        if why:
            return why
    return None


def _range(first: int, last: int) -> str | None:
    return _slot(first) or _slot(last)


def shape(m: Message) -> str | None:
    """Why no receiver may take `m` (a reason code), or None. Pure: no state, no I/O; the turn
    driver applies it to every decoded message before any reaches a core."""
    # Hottest first: a leader's Accept and an acceptor's Accepted are most of the traffic.
    if isinstance(m, Accept):
        return _accept(m)
    if isinstance(m, Accepted):
        return _accepted(m)
    if isinstance(m, Heartbeat):
        return _ballot(m.ballot) or _watermark(m.chosen_through)
    if isinstance(m, Prepare):
        return _ballot(m.ballot) or _slot(m.from_slot)
    if isinstance(m, Promise):
        return (_ballot(m.ballot) or _slot(m.from_slot) or _watermark(m.chosen_through)
                or _watermark(m.highest_slot) or _watermark(m.reported_through) or _votes(m.votes, m.ballot))
    if isinstance(m, Nack):
        return _ballot(m.ballot) or _ballot(m.promised)
    if isinstance(m, Recover):
        return _ballot(m.ballot) or _range(m.from_slot, m.to_slot)
    if isinstance(m, Recovered):
        return (_ballot(m.ballot) or _watermark(m.from_slot) or _watermark(m.reported_through)
                or _watermark(m.compacted_through) or _watermark(m.snapshot_slot) or _votes(m.votes, m.ballot))
    if isinstance(m, (Fetch, Repair)):
        return _range(m.from_slot, m.to_slot)
    if isinstance(m, Any_):
        return _ballot(m.ballot) or _slot(m.from_slot)
    if isinstance(m, Fetched):
        return (_watermark(m.chosen_through) or _watermark(m.compacted_through) or _watermark(m.snapshot_slot)
                or _votes(m.votes, None))
    if isinstance(m, Probed):
        return _ballot(m.promised) or _watermark(m.highest_slot) or _watermark(m.chosen_through)
    if isinstance(m, (SnapshotOffer, SnapshotFetch, SnapshotChunk)):
        return _slot(m.slot)
    if isinstance(m, (LeaseRenew, LeaseGranted)):
        return (_ballot(m.ballot) or ("round_above_ceiling" if m.round > ROUND_MAX else None)
                or (_watermark(m.highest_slot) if isinstance(m, LeaseGranted) else None))
    if isinstance(m, ReadAt):
        return _watermark(m.index) or _ballot(m.ballot)
    return None
