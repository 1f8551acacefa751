"""Reads without a log write (issue 12): leader leases, the read index, and the knobs.

A linearizable `get` costs no slot, no Accept and no fsync. The client sends its reads to the
leader in one `Read` per flush; the leader answers with `ReadAt(index, batch)` to the learner the
client named, where `index = Proposer.read_index()` (today `next_slot - 1`: every slot chosen
before the reads arrived is at or below it, since a new leader's Phase 1 re-proposes everything
up to the highest slot any acceptor holds). The learner answers once it has delivered through
`index`, with an ordinary `Reply`; a read of a key that none of the leader's proposals up to
`index` writes (`ReadAt` carries its ballot; the learner holds its proposals, from its Accepts) is
answered at once, since any write chosen before the reads reached the leader is one of those
proposals (a value chosen under a lower ballot was re-proposed by our Phase 1; none can be under a
higher one while we hold the lease or our round). The leader sends `ReadAt` only when it knows no
other leader can have been elected, one of two ways:

- **a lease** (`lease = true`): with every heartbeat the leader sends a `LeaseRenew(ballot,
  round)` next to its empty Accept (one frame). An acceptor whose promise is that ballot answers
  `LeaseGranted(ballot, round)` and grants the owner a lease of `lease_ticks` of ITS OWN ticks;
  while a grant to X runs it takes no Prepare and no Recover from any other proposer that would
  raise its promise (`refuses_for_lease`). It answers them with silence, not a Nack: a refused
  candidate keeps its ballot and sends its Prepare again every `retry_ticks`, so it does not
  climb rounds while it waits; once the grants lapse (the leader is dead or deposed: nobody
  renews) its next retransmission is promised. An acceptor that (re)started forgot its grants:
  it takes no Prepare nor Recover from anyone but a proposer it granted since, for `lease_ticks`.
  The leader's lease starts at the tick it SENT the round that a majority of every membership
  governing the slots above its watermark acknowledged, and lasts `lease_span` of its own ticks:
  `(lease_ticks - 1) * (1 - drift) / (1 + drift)`, rounded down. An acceptor's grant lasts at
  least `lease_ticks - 1` of its tick periods from when the round reached it (after it was sent),
  its clock at most `1 + drift` fast; the leader's span at most `lease_span` periods at most
  `1 - drift` slow. So every lease ends, in real time, before any of its grants does, and no
  other proposer completes Phase 1 (it needs one of those acceptors) while a lease runs: reads
  served under it see every write acknowledged before they arrived;
- **a read index confirmed by a round** (`lease = false`, or no valid lease: just elected, or
  the lease lapsed): reads are held (at most `held_max` batches; beyond that the client is told
  `busy`) with the index of their arrival until a round sent after they arrived is acknowledged
  by such a majority: then no higher ballot had completed Phase 1 when they arrived.

Beyond the drift bound (a clock faster or slower than `clock_drift_max` says), leases can
overlap: a deposed leader may answer a read with a value older than an acknowledged write. The
read index without a lease does not depend on clocks at all.

Fast Paxos (acceptors fill slots from clients directly, actors/fast.py): the leader's own
`next_slot` no longer bounds what was chosen, and a lease alone says nothing about slots a fast
quorum chose without the leader. While a fast round is open, every read waits for a round sent
after it arrived, and its index is the highest slot that round's answers report (each acceptor
says the highest slot it voted in): a slot a fast quorum chose before the read arrived was voted
by some acceptor of any majority. It costs a round trip to the acceptors, still no fsync.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.ballot import ZERO, Ballot


@dataclass(frozen=True, slots=True)
class ReadParams:
    """`[reads]` of cluster.toml (runtime/config.py). `lease_ticks` 0 at an acceptor: it grants
    nothing and refuses nothing (it still confirms rounds)."""

    lease: bool = True
    lease_ticks: int = 20
    clock_drift_max: float = 0.05
    held_max: int = 4096  # read batches a leader holds while it waits for a round


def lease_span(lease_ticks: int, drift: float) -> int:
    """How many of its own ticks a leader may serve reads for after sending an acknowledged round."""
    if lease_ticks <= 1:
        return 0
    return int((lease_ticks - 1) * (1.0 - drift) / (1.0 + drift))


@dataclass(slots=True)
class Grant:
    """An acceptor's lease to one proposer: until its tick `until` (exclusive)."""

    holder: str = ""
    ballot: Ballot = ZERO
    until: int = 0


@dataclass(slots=True)
class HeldRead:
    client: str
    learner: str
    batch: bytes
    index: int
    round: int  # the first round sent after it arrived: its confirmation


@dataclass(slots=True)
class ReadState:
    """A leader's reads: the rounds in flight, the lease, the reads held. Made for one ballot and
    dropped with it (`Proposer._reads_for`)."""

    ballot: Ballot
    round: int = 0  # the last round sent
    sent: dict[int, int] = field(default_factory=dict)  # round -> the tick it was sent
    acks: dict[int, set[str]] = field(default_factory=dict)
    highs: dict[int, int] = field(default_factory=dict)  # round -> the highest slot its answers report
    lease_until: int = 0  # reads are served at once while ticks < lease_until
    lease_acks: set[str] = field(default_factory=set)  # the acceptors whose grants it rests on
    confirmed: int = 0  # the highest round a majority acknowledged
    held: list[HeldRead] = field(default_factory=list)
    want_round: bool = False
    heartbeat_seen: int = -1  # the heartbeat tick a round was last sent with
    served: int = 0  # lease reads served this turn (one event per turn)
