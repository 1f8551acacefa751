"""Exhaustive model checking of small configurations of the real cores.

Breadth-first search over every reachable state of a small cluster (by default 2 proposers,
3 acceptors, no learner), where the actions are: a proposer's election timer fires (with a fresh
client command queued, up to `campaigns` times each), deliver any frame in flight, deliver it
but keep a copy (duplication, up to `duplicates` times), restart an acceptor or a proposer
from its durable records (up to `restarts` times), and an acceptor installs a snapshot of the
chosen prefix and compacts (up to `compactions` times). A frame that is never delivered is a lost
one, so loss needs no action of its own. What one turn sends to one destination travels as
one frame, as in the real shell; heartbeats are left out (they only serve liveness). States are deduplicated by a
fingerprint of everything that matters (cores, messages in flight, durable records, budgets,
and the ghost record of every vote ever cast).

In every state it checks agreement: no two different values are ever chosen for one slot (a
value is chosen when a majority of acceptors has voted for it under one ballot, at any time in
the history, not just now), and what the learner delivered is what was chosen.

Membership mode (`Bounds.members`, issue 11): a spare acceptor a4 runs outside the bootstrap
membership of a1..a3, and one more action lets the serving leader propose a change (`replace`:
a3 out, a4 in; `add`: a4 in), up to `changes` times in a path, with a small window and alpha.
`settle` starts the search from p1 serving (its election with every frame delivered), and
`submits` hands the serving leader client commands, so that slots after the change exist without
a command per election. With the second proposer's campaign an action like any other, a change
proposed just before (or while) a leader change is among the paths. The ghost decides slot s by
the membership chosen at or below s - alpha, once every slot up to there is chosen (as the
simulator's ghost does), and checks agreement by that membership; it also checks every
proposer's watermark (a claim that every slot up to it is chosen, by the membership of each
slot: what a leader counting by the wrong membership gets wrong). Acceptors are interchangeable
only inside the groups that every membership treats alike (a1 and a2 for `replace`, a1..a3 for
`add`).

    python -m runtime.harness.sim.model [--campaigns 2,1] [--duplicates 1] [--restarts 1] [--dfs] [--bugs ...]
    python -m runtime.harness.sim.model --members add --alpha 1 --settle --no-commands --duplicates 0 --restarts 0
    python -m runtime.harness.sim.model --members replace --campaigns 1,0 --submits 2 --settle --no-commands \
        --duplicates 0 --restarts 0 [--bugs membership_before_alpha]

Fast mode (`Bounds.mode = "fast"`, issue 12): every core under the same FastRules, 4 acceptors,
and `fast_clients` client commands in flight from the start as FastAccepts to every acceptor (the
acceptors take them in every order, so they collide); `fast_window` 2 keeps each acceptor to one
fast slot, and `fast_resends` off loses the commands a leader re-sends after a collision. The
ghost records every vote per value, and a value is chosen under a fast ballot (and an
uncoordinated recovery round) by a fast quorum, under a classic ballot (a coordinated recovery
round, or the leader's own proposal under its fast ballot) by a majority.

    python -m runtime.harness.sim.model --mode fast [--fast-recovery uncoordinated] --acceptors 4 \
        --campaigns 1,0 --settle --no-commands --fast-clients 2 --fast-window 2 --no-fast-resends \
        --duplicates 0 --restarts 0
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from actors.acceptor import Acceptor
from actors.ballot import Ballot
from actors.fast import FastRules, classic_quorum, fast_quorum
from actors.invariants import InvariantViolation
from actors.kv import KVStore, Session
from actors.learner import Tally
from actors.membership import History, Membership
from actors.membership import decode as decode_membership
from actors.messages import (
    MEMBERSHIP,
    Accept,
    Accepted,
    FastAccept,
    Heartbeat,
    Message,
    Nack,
    Prepare,
    Promise,
    Submit,
    Value,
)
from actors.proposer import Candidacy, FastSlot, InFlight, Leadership, Proposer, ProposerParams, Reconfirmation
from actors.ready import Action, Event, Ready
from actors.records import DecidedRecord, Record, SnapshotRecord
from runtime import codec
from runtime.turn import PRODUCT, Kinds


@dataclass(frozen=True)
class Bounds:
    proposers: int = 2
    acceptors: int = 3
    learners: int = 0
    campaigns: tuple[int, ...] = (1, 1)  # elections per proposer
    duplicates: int = 1  # deliveries that keep the message in flight
    restarts: int = 1  # acceptor or proposer restarts, in total
    commands: bool = True  # each election also queues a client command (else only StartWorking)
    states_max: int = 2_000_000
    compactions: int = 0  # an acceptor installs a snapshot of the chosen prefix and compacts
    # An acceptor is told a watermark as high as the bound lets it take (the highest slot it
    # accepted): a forged or a leader's empty Accept, whether or not those slots are chosen.
    watermarks: int = 0
    # Membership mode: "" (off), "replace" (a3 out, a4 in) or "add" (a4 in); a spare acceptor
    # a4 runs from the start, the serving leader may propose the change `changes` times in a
    # path, and proposers run with this window and alpha.
    members: str = ""
    changes: int = 1
    submits: int = 0  # the serving leader is handed a client command, up to this many times in a path
    # The search starts after the first proposer's election (with no client command), every frame
    # of it delivered: what is explored is what comes after (a change, client commands, the other
    # proposer's election).
    settle: bool = False
    alpha: int = 2
    window: int = 1
    # Fast Paxos (issue 12): "fast" runs every core under FastRules(mode, fast_recovery); up to
    # `fast_clients` client commands are sent as FastAccepts straight to every acceptor (each copy
    # delivered in its own action, so acceptors take them in different orders and collide).
    mode: str = "classic"
    fast_recovery: str = "coordinated"
    fast_clients: int = 0
    # A fast leader re-sends the commands that lost a collision (as FastAccepts to every
    # acceptor): False leaves those frames out, as lost (fewer slots, a far smaller search).
    fast_resends: bool = True
    fast_window: int = 4096  # acceptors' open slots ahead of their watermark (1: one fast slot)


class Frozen:
    """A tuple with its hash computed once: the fingerprint of one core, reused by every state
    that shares the core. Equality still compares the whole tuple, so nothing merges on a hash
    collision."""

    __slots__ = ("h", "t")

    def __init__(self, t: tuple[Any, ...]) -> None:
        self.t = t
        self.h = hash(t)

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frozen) and self.h == other.h and self.t == other.t


@dataclass
class State:
    cores: dict[str, Any]
    fps: dict[str, Frozen]  # per core: what matters of its state and of its durable records
    net: dict[tuple[str, str, int], int]  # (source, destination, interned frame) -> copies in flight
    disks: dict[str, tuple[Record, ...]]
    campaigns: dict[str, int]
    duplicates: int = 0
    restarts: int = 0
    compactions: int = 0
    watermarks: int = 0
    changes: int = 0
    submits: int = 0
    # (membership mode) what `chosen_by_members` found for these votes; None: not computed yet
    ghost: tuple[dict[int, Value], int, str | None] | None = None
    # Every vote ever cast (the ghost history): (slot, ballot) -> (bitmask of acceptors, value).
    votes: dict[tuple[int, Ballot], tuple[int, Value]] = field(default_factory=dict)
    trail: tuple[str, ...] = ()  # the actions that led here (for the counterexample)
    # Fast mode: every vote ever cast, per value ((slot, ballot, value) -> bitmask), since under
    # a fast ballot acceptors vote for different values; the leaders' own proposals ((slot,
    # ballot) -> value: a majority chooses those); client commands sent so far.
    fast_votes: dict[tuple[int, Ballot, Value], int] = field(default_factory=dict)
    proposed: dict[tuple[int, Ballot], Value] = field(default_factory=dict)
    fast_sent: int = 0


@dataclass
class ModelResult:
    ok: bool
    states: int
    transitions: int
    seconds: float
    violation: str = ""
    trail: tuple[str, ...] = ()
    complete: bool = True
    compacted_states: int = 0  # explored states in which an acceptor has compacted: the bound was reached
    # (membership mode) explored states in which a slot the new membership decides is chosen
    changed_states: int = 0


PARAMS = ProposerParams(window_slots=4, message_bytes_max=1 << 20)


class _NoJitter(random.Random):
    """Timeouts play no part here (elections are explicit actions), so no randomness either."""

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return 0


def _inflight(inflight: dict[int, InFlight]) -> dict[int, InFlight]:
    return {s: InFlight(e.value, set(e.acks), e.sent_tick) for s, e in inflight.items()}


def _fast_slot(f: FastSlot) -> FastSlot:
    r = f.recovery
    return FastSlot(f.first_tick, dict(f.votes), dict(f.rvotes), f.collided_tick,
                    r and InFlight(r.value, set(r.acks), r.sent_tick))


def clone_core(core: Any) -> Any:
    """A copy sharing every immutable value (ballots, values, messages) and copying every mutable
    container; far cheaper than pickling frozen dataclasses."""
    new = copy.copy(core)
    if isinstance(core, Acceptor):
        new.accepted = dict(core.accepted)
        new.history = core.history.copy()
        new.learners = list(core.learners)
        if core.fast.enabled:  # (only fast mode ever changes it)
            new.peer_votes = {slot: dict(v) for slot, v in core.peer_votes.items()}
    elif isinstance(core, Proposer):
        cand, lead = core.cand, core.lead
        if cand is not None:
            new.cand = Candidacy(cand.p1_from, cand.p1_ticks, dict(cand.promises), _inflight(cand.inflight),
                                 list(cand.asked))
        if lead is not None:
            rc = lead.reconfirming
            new.lead = Leadership(lead.sw_slot, lead.next_slot, lead.led_since, dict(lead.heard),
                                  _inflight(lead.inflight), lead.last_heartbeat_tick,
                                  lead.serving, rc and Reconfirmation(rc.from_slot, rc.to_slot, rc.nonce, rc.ticks,
                                                                      dict(rc.answers)), set(lead.promised_by),
                                  lead.fast_from, {slot: _fast_slot(f) for slot, f in lead.fast.items()},
                                  lead.fast_top)
        if core.fast.enabled:  # (only fast mode ever changes them)
            new.collision_ticks = deque(core.collision_ticks)
            new.chosen_batches = OrderedDict(core.chosen_batches)
            new.fast_stats = dict(core.fast_stats)
        new.chosen_above = set(core.chosen_above)
        new.queue = deque(core.queue)
        new.history = core.history.copy()
        new.pending = list(core.pending)
        new.member_waiters = list(core.member_waiters)
        new.heard_of = list(core.heard_of)
        new.known_acceptors = set(core.known_acceptors)
        new.all_acceptors = list(core.all_acceptors)
        new.acceptors, new.learners, new.peers = list(core.acceptors), list(core.learners), list(core.peers)
        new.names_by_id = dict(core.names_by_id)
    else:
        new.tally = {s: {b: Tally(list(e.voters), e.value, None if e.contested is None else
                                 {v: list(n) for v, n in e.contested.items()}, e.fast) for b, e in t.items()}
                     for s, t in core.tally.items()}
        new.chosen = dict(core.chosen)
        new.chosen_votes = {s: (b, list(v)) for s, (b, v) in core.chosen_votes.items()}
        new.history = core.history.copy()
        new.acceptor_set = set(core.acceptor_set)
        new.joining = set(core.joining)
        new.acceptors = list(core.acceptors)
        new.proposer_ids = dict(core.proposer_ids)
        kv = copy.copy(core.kv)
        kv.data = dict(core.kv.data)
        kv.sessions = OrderedDict((c, Session(s.acked_below, dict(s.results))) for c, s in core.kv.sessions.items())
        new.kv = kv
    return new


def clone_state(s: State) -> State:
    """Copy on write: cores are shared until one is stepped (see `ModelChecker.own`)."""
    return State(dict(s.cores), dict(s.fps), dict(s.net), dict(s.disks), dict(s.campaigns), s.duplicates,
                 s.restarts, s.compactions, s.watermarks, s.changes, s.submits, s.ghost, dict(s.votes), s.trail,
                 dict(s.fast_votes), dict(s.proposed), s.fast_sent)


class ModelChecker:
    def __init__(self, bounds: Bounds | None = None, kinds: Kinds = PRODUCT) -> None:
        self.b = bounds or Bounds()
        self.kinds = kinds
        self.proposers = [f"p{i}" for i in range(1, self.b.proposers + 1)]
        self.initial_acceptors = [f"a{i}" for i in range(1, self.b.acceptors + 1)]
        spare = [f"a{self.b.acceptors + 1}"] if self.b.members else []
        self.acceptors = [*self.initial_acceptors, *spare]
        self.learners = [f"l{i}" for i in range(1, self.b.learners + 1)]
        self.names = [*self.proposers, *self.acceptors, *self.learners]
        self.ids = {n: i for i, n in enumerate(self.proposers, start=1)}
        self.majority = self.b.acceptors // 2 + 1
        self.bit = {a: 1 << i for i, a in enumerate(self.acceptors)}
        self.params = PARAMS
        self.fast = FastRules(self.b.mode, self.b.fast_recovery)
        if self.fast.enabled:
            if self.b.members or self.b.compactions or self.b.acceptors < 4:
                raise ValueError("fast mode: 4 acceptors or more, no membership change, no compaction")
            self.params = ProposerParams(window_slots=4, message_bytes_max=1 << 20, fast=self.fast)
        self.bootstrap: Membership | None = None
        self.target: Membership | None = None
        # Groups of acceptors that may be renamed into one another (symmetry): all of them
        # without a change; with one, those that every membership treats alike.
        self.groups = [self.acceptors]
        if self.b.members:
            if self.b.members not in ("replace", "add"):
                raise ValueError(f"members is replace or add, not {self.b.members!r}")
            if self.b.alpha < self.b.window:
                raise ValueError("alpha must be at least the window")
            # A learner name in every membership (a membership needs one); with no learner core
            # in the model, what is sent to it goes nowhere.
            learners = self.learners or ["l1"]
            self.bootstrap = Membership(tuple((p, i, f"sim://{p}") for p, i in self.ids.items()),
                                        tuple((a, f"sim://{a}") for a in self.initial_acceptors),
                                        tuple((n, f"sim://{n}") for n in learners))
            new = spare[0]
            base = self.bootstrap.without(self.initial_acceptors[-1]) if self.b.members == "replace" \
                else self.bootstrap
            self.target = base.with_acceptor(new, f"sim://{new}")
            self.params = ProposerParams(window_slots=self.b.window, message_bytes_max=1 << 20,
                                         alpha_slots=self.b.alpha)
            groups: dict[tuple[bool, ...], list[str]] = {}
            for a in self.acceptors:
                key = tuple(a in m.acceptor_names for m in (self.bootstrap, self.target))
                groups.setdefault(key, []).append(a)
            self.groups = list(groups.values())
        self.frames: list[tuple[Message, ...]] = []  # interned frames: equal frames share one id
        self.obj_ids: dict[int, int] = {}
        self.value_ids: dict[Any, int] = {}
        self.objs: list[Any] = []
        self.frame_ids: dict[tuple[Message, ...], int] = {}
        self.masks: dict[tuple[str, ...], list[int]] = {}  # per renaming: voters' bitmasks renamed
        self.decoded: dict[bytes, Membership] = {}

    # --- building --------------------------------------------------------------------------

    def build(self, name: str, records: tuple[Record, ...] = ()) -> Any:
        k = self.kinds
        history = self._history()
        if name in self.ids:
            core: Any = k.proposer(name, self.ids[name], self.ids, self.initial_acceptors, self.learners,
                                   self.params, _NoJitter(), history=history)
        elif name in self.acceptors:
            if self.fast.enabled:
                core = k.acceptor(name, self.ids, self.learners, 1 << 20, acceptors=self.acceptors, fast=self.fast,
                                  fast_window_slots=self.b.fast_window)
            else:
                core = k.acceptor(name, self.ids, self.learners, 1 << 20)
        else:
            core = k.learner(name, self.initial_acceptors, codec.decode_client_batch, KVStore(64, 64),
                             proposer_ids=self.ids, history=history, fast=self.fast)
        for r in records:
            core.apply(r)
        return core

    def _history(self) -> History | None:
        return History(self.bootstrap, self.b.alpha) if self.bootstrap is not None else None

    def initial(self) -> State:
        names = [*self.proposers, *self.acceptors, *self.learners]
        s = State({n: self.build(n) for n in names}, {}, {}, {n: () for n in names}, {p: 0 for p in self.proposers})
        s.fps = {n: self.core_fp(s, n) for n in names}
        if self.b.settle:
            # The first proposer's election, every frame delivered in order: the search starts
            # from a serving leader (its campaign is used up).
            s = self.apply(s, ("campaign", self.proposers[0], False))
            while s.net:
                s = self.apply(s, ("deliver", min(s.net)))
            lead = s.cores[self.proposers[0]].lead
            if lead is None or not lead.serving:
                raise RuntimeError("the settled prefix does not end with a serving leader")
            s.trail = (f"{self.proposers[0]} campaigns and serves (every frame delivered)",)
        if self.b.fast_clients:
            # Each client's first attempt, straight to every acceptor, all in flight from the start
            # (one frame each, delivered in any order: acceptors may take different commands for
            # one slot). Sent later would change nothing: a frame in flight waits all the same.
            for k in range(1, self.b.fast_clients + 1):
                client = f"f{k}"
                fid = self._frame((FastAccept(codec.encode_client_batch(client, 0, [[1, "put", "k", client]])),))
                for a in self.acceptors:
                    s.net[(client, a, fid)] = 1
            s.fast_sent = self.b.fast_clients
            s.trail = (*s.trail, f"clients f1..f{self.b.fast_clients} send a command each to every acceptor")
        return s

    # --- fingerprints ----------------------------------------------------------------------

    def _id(self, obj: Any) -> int:
        """A small int per distinct value (messages, values, records are immutable), so that
        fingerprints need not hash frozen dataclasses again and again. Lookups go by identity
        first (cheap) and fall back to equality (one hash), so equal objects share an id."""
        got = self.obj_ids.get(id(obj))
        if got is None:
            got = self.value_ids.get(obj)
            if got is None:
                got = self.value_ids[obj] = len(self.objs)
            self.obj_ids[id(obj)] = got
            self.objs.append(obj)  # keep it alive, so its id() is never reused by another object
        return got

    def core_fp(self, s: State, name: str) -> Frozen:
        """What matters of one core and its durable records, without acceptor names (those are
        renamed per state, for the symmetry reduction)."""
        core = s.cores[name]
        v = self._id
        if isinstance(core, Acceptor):
            t: tuple[Any, ...] = (core.promised, core.chosen_through, core.compacted_through,
                                  core.snapshot.slot if core.snapshot is not None else 0,
                                  tuple(sorted((slot, b, v(x)) for slot, (b, x) in core.accepted.items())))
            if self.bootstrap is not None:
                t = (*t, tuple(c for c, _ in core.history.changes))
            if self.fast.enabled:
                t = (*t, core.any and v(core.any))  # its peer votes carry names: `fingerprint`
        elif isinstance(core, Proposer):
            cand, lead = core.cand, core.lead
            own = lead or cand
            # A proposer with no election left never uses its round or the ballots it heard of
            # again (they only make its next ballot): membership mode forgets them, and the
            # frames that would only change them (`_prune`).
            spent = self.bootstrap is not None and self._spent(s, name)
            t = (core.state, core.ballot, None if spent else core.round, None if spent else core.known_ballot,
                 cand.p1_from if cand else 0,
                 core.chosen_through, (lead.next_slot, lead.sw_slot, lead.serving) if lead else (),
                 tuple(core.queue), tuple(sorted((k, v(e.value)) for k, e in own.inflight.items())) if own else ())
            if self.bootstrap is not None:
                # What a change adds: the changes it knows chosen, its pending ones, the ones a
                # Phase 1 heard of, and the slots it marked chosen out of order.
                t = (*t, tuple(c for c, _ in core.history.changes), tuple((c, v(m)) for c, m in core.pending),
                     tuple(v(m) for m in core.heard_of), tuple(sorted(core.chosen_above)))
            if self.fast.enabled:
                # (Its open slots' votes carry names: `fingerprint`.)
                t = (*t, core.want_fast, (lead.fast_from, lead.fast_top) if lead else (),
                     tuple(sorted(core.chosen_above)), tuple((v(b), slot) for b, slot in core.chosen_batches.items()))
        else:
            t = (core.delivered, core.epoch, tuple(sorted((k, v(x)) for k, x in core.chosen.items())))
            if self.bootstrap is not None:
                t = (*t, tuple(c for c, _ in core.history.changes))
        return Frozen((*t, len(s.disks[name]), tuple(v(r) for r in s.disks[name])))

    def fingerprint(self, s: State) -> Any:
        """Acceptors are interchangeable (symmetry): they are renamed in the order of their own
        fingerprints, so states that differ only by which acceptor is which share one
        fingerprint. It is always the exact fingerprint of a renamed, equivalent state, so two
        truly different states never merge; ties between acceptors merely cost some reduction."""
        order: list[str] = []
        for group in self.groups:
            order += sorted(group, key=lambda a: s.fps[a].h)
        rename = dict(zip(order, self.acceptors, strict=True))
        r = rename.get
        v = self._id
        parts: list[Any] = [tuple(s.fps[a] for a in order)]
        for p in self.proposers:
            core = s.cores[p]
            parts.append(s.fps[p])
            cand = core.cand
            own = core.lead or cand
            parts.append(frozenset((r(a), v(m)) for a, m in cand.promises.items()) if cand else frozenset())
            parts.append(tuple(sorted((k, frozenset(r(x) for x in e.acks)) for k, e in own.inflight.items()))
                         if own else ())
            if self.fast.enabled and core.lead is not None:
                parts.append(frozenset(
                    (slot, frozenset((r(a), v(x)) for a, x in f.votes.items()),
                     frozenset((r(a), v(x)) for a, x in f.rvotes.items()), f.collided_tick,
                     f.recovery and (v(f.recovery.value), frozenset(r(a) for a in f.recovery.acks)))
                    for slot, f in core.lead.fast.items()))
            if self.bootstrap is not None:
                parts.append(frozenset(r(a) for a in core.lead.promised_by) if core.lead else frozenset())
                parts.append(frozenset(r(a) for a in cand.asked) if cand else frozenset())
        if self.fast.enabled:
            for a in order:  # (uncoordinated recovery) the fast-round votes it heard from the others
                parts.append(frozenset((slot, frozenset((r(x), v(y)) for x, y in vs.items()))
                                       for slot, vs in s.cores[a].peer_votes.items()))
        for name in self.learners:
            core = s.cores[name]
            parts.append(s.fps[name])
            if self.fast.enabled:
                parts.append(frozenset((slot, b, e.fast, frozenset((v(x), frozenset(r(y) for y in n))
                                                                   for x, n in (e.contested or {}).items()))
                                       for slot, t in core.tally.items() for b, e in t.items()))
            parts.append(tuple(sorted((slot, tuple(sorted((b, frozenset(r(x) for x in e.voters), v(e.value))
                                                          for b, e in t.items())))
                                      for slot, t in core.tally.items())))
        net = frozenset(((r(a, a), r(b, b), f), n) for (a, b, f), n in s.net.items())
        key = tuple(order)
        masks = self.masks.get(key)
        if masks is None:
            bit = self.bit
            masks = self.masks[key] = [sum(bit[rename[a]] for a in self.acceptors if m & bit[a])
                                       for m in range(1 << len(self.acceptors))]
        votes = frozenset((k, masks[voters], v(value)) for k, (voters, value) in s.votes.items())
        if self.fast.enabled:
            fast_votes = frozenset((k[0], k[1], v(k[2]), masks[voters]) for k, voters in s.fast_votes.items())
            proposed = frozenset((k, v(x)) for k, x in s.proposed.items())
            return (tuple(parts), net, tuple(s.campaigns.values()), s.duplicates, s.restarts, s.fast_sent,
                    fast_votes, proposed)
        return (tuple(parts), net, tuple(s.campaigns.values()), s.duplicates, s.restarts, s.compactions,
                s.watermarks, s.changes, s.submits, votes)

    def own(self, s: State, name: str) -> Any:
        """The core of `name` in `s`, copied first: states share cores until one changes."""
        core = s.cores[name] = clone_core(s.cores[name])
        return core

    # --- actions ---------------------------------------------------------------------------

    def actions(self, s: State) -> list[tuple[Any, ...]]:
        acts: list[tuple[Any, ...]] = []
        for p in self.proposers:
            if s.campaigns[p] < self.b.campaigns[self.proposers.index(p)]:
                acts.append(("campaign", p))
        for key in s.net:
            acts.append(("deliver", key))
            if s.duplicates < self.b.duplicates:
                acts.append(("duplicate", key))
        if s.restarts < self.b.restarts:
            for name in [*self.acceptors, *self.proposers]:
                acts.append(("restart", name))
        if s.watermarks < self.b.watermarks:
            for a in self.acceptors:
                core = s.cores[a]
                if core.promised.node and core.highest_slot > core.chosen_through:
                    acts.append(("watermark", a))
        for p in self.proposers:
            lead = s.cores[p].lead
            if lead is not None and lead.serving:
                if self.target is not None and s.changes < self.b.changes:
                    acts.append(("members", p))
                if s.submits < self.b.submits:
                    acts.append(("submit", p))
        if s.compactions < self.b.compactions:
            prefix = self.chosen_prefix(s)
            for a in self.acceptors:
                snap = s.cores[a].snapshot
                if prefix > (snap.slot if snap is not None else 0):
                    acts.append(("compact", a, prefix))
        return acts

    def chosen_prefix(self, s: State) -> int:
        """The highest slot through which every slot is chosen: what a learner could snapshot."""
        chosen = {slot for (slot, _), (voters, _) in s.votes.items() if voters.bit_count() >= self.majority}
        k = 0
        while k + 1 in chosen:
            k += 1
        return k

    def apply(self, s: State, act: tuple[Any, ...]) -> State:
        s = clone_state(s)
        kind = act[0]
        if kind == "campaign":
            p = act[1]
            s.campaigns[p] += 1
            core = self.own(s, p)
            n = s.campaigns[p]
            with_command = self.b.commands and (len(act) < 3 or act[2])
            blob = codec.encode_client_batch(f"c{p}", 0, [[n, "put", "k", f"{p}.{n}"]]) if with_command else b""

            def campaign(ready: Ready) -> None:
                core.campaign(ready)
                if blob:
                    core.step(f"c{p}", Submit(blob), ready)

            self._turn(s, p).perform(campaign)
            self._committed(s, p)
            label = f"{p} campaigns"
        elif kind in ("deliver", "duplicate"):
            key = act[1]
            src, dst, frame = key
            if kind == "deliver":
                s.net[key] -= 1
                if not s.net[key]:
                    del s.net[key]
            else:
                s.duplicates += 1
            msgs = self.frames[frame]
            label = f"{kind} {src}->{dst} " + ", ".join(f"{m.TYPE} {getattr(m, 'ballot', '')}" for m in msgs)
            self.own(s, dst)
            self._turn(s, dst).receive(src, list(msgs))
            self._committed(s, dst)
        elif kind == "watermark":
            name = act[1]
            s.watermarks += 1
            core = self.own(s, name)
            b = core.promised
            owner = self.proposers[b.node - 1]
            # Beyond what the acceptor holds, as far as the wire can say: it must take no more than
            # its highest slot, and agreement and durability must hold whatever it took.
            self._turn(s, name).receive(owner, [Accept(b, codec.INT_MAX >> 1, ())])
            self._committed(s, name)
            label = f"{name} is told watermark {core.chosen_through} (as far as it takes one)"
        elif kind == "members":
            p = act[1]
            s.changes += 1
            core = self.own(s, p)
            target = self.target
            outcome: list[str | None] = []
            self._turn(s, p).perform(lambda ready: outcome.append(core.propose_membership(target, ready)))
            self._committed(s, p)
            label = f"{p} proposes {target and target.describe()}: {outcome[0] if outcome else '?'}"
        elif kind == "submit":
            p = act[1]
            s.submits += 1
            core = self.own(s, p)
            blob = codec.encode_client_batch("cs", 0, [[s.submits, "put", "k", f"s{s.submits}"]])
            self._turn(s, p).perform(lambda ready: core.step("cs", Submit(blob), ready))
            self._committed(s, p)
            label = f"{p} is handed a client command"
        elif kind == "compact":
            _, name, slot = act
            s.compactions += 1
            core = self.own(s, name)
            # The snapshot file itself is abstracted: it is durable once installed.
            self._turn(s, name).perform(lambda ready: core.compact(SnapshotRecord(slot, 1, 0), ready))
            self._committed(s, name)
            label = f"{name} compacts through {slot}"
        else:
            name = act[1]
            s.restarts += 1
            s.cores[name] = self.build(name, s.disks[name])
            s.fps[name] = self.core_fp(s, name)
            label = f"restart {name}"
        if self.bootstrap is not None:
            self._prune(s)
        s.trail = (*s.trail, label)
        return s

    def _spent(self, s: State, name: str) -> bool:
        return s.campaigns[name] >= self.b.campaigns[self.proposers.index(name)]

    def _prune(self, s: State) -> None:
        """(Membership mode) Drop frames whose delivery can change nothing, now or later, but
        the round or the ballots heard of a proposer with no election left (forgotten there):
        anything to such a proposer once it is a follower (it stays one: it cannot campaign, and
        heartbeats are left out), a Nack to it for a ballot that is not its own (its ballot can
        no longer change), and a Prepare or Accept an acceptor would only answer with such a Nack
        (its ballot is below the acceptor's promise, which only grows). Delivering such a frame
        or leaving it in flight lead to the same futures."""
        dead = []
        for key in s.net:
            src, dst, frame = key
            core = s.cores[dst]
            msgs = self.frames[frame]
            if isinstance(core, Proposer):
                if self._spent(s, dst) and (core.state.value == "follower" or all(
                        isinstance(m, Nack) and m.ballot != core.ballot for m in msgs)):
                    dead.append(key)
            elif isinstance(core, Acceptor) and src in self.ids and self._spent(s, src) \
                    and type(core).may_accept is Acceptor.may_accept:
                sender = s.cores[src]
                if all(isinstance(m, (Prepare, Accept)) and m.ballot < core.promised and (
                        sender.state.value == "follower" or m.ballot != sender.ballot) for m in msgs):
                    dead.append(key)
        for key in dead:
            del s.net[key]

    def _frame(self, frame: tuple[Message, ...]) -> int:
        """Equal frames share one id."""
        fid = self.frame_ids.get(frame)
        if fid is None:
            fid = self.frame_ids[frame] = len(self.frames)
            self.frames.append(frame)
        return fid

    def _turn(self, s: State, name: str) -> Any:
        """The real turn driver, for one turn of `name` in state `s`."""
        return self.kinds.turn(s.cores[name], _ModelShell(self, s, name), self.names)

    def _committed(self, s: State, name: str) -> None:
        """After a turn of `name`: its fingerprint, dead frames, and the ghost record of votes."""
        s.fps[name] = self.core_fp(s, name)
        core = s.cores[name]
        if isinstance(core, Proposer) and core.ballot.round:
            self._collect_dead_frames(s, name, core)
        if isinstance(core, Acceptor) and self.fast.enabled:
            me = self.bit[name]
            for slot, (ballot, value) in core.accepted.items():
                key3 = (slot, ballot, value)
                voters = s.fast_votes.get(key3, 0)
                if not voters & me:
                    if any(k[0] == slot and k[1] == ballot and m & me for k, m in s.fast_votes.items()):
                        raise _Broken(f"{name} accepted a second value for slot {slot} ballot {ballot}")
                    s.fast_votes[key3] = voters | me
        elif isinstance(core, Acceptor):
            me = self.bit[name]
            for slot, (ballot, value) in core.accepted.items():
                voters, kept = s.votes.get((slot, ballot), (0, value))
                if not voters & me:
                    s.votes[(slot, ballot)] = (voters | me, kept if voters else value)
                    s.ghost = None
                    if voters and kept != value:
                        raise _Broken(f"{name} accepted a second value for slot {slot} ballot {ballot}")

    def _collect_dead_frames(self, s: State, name: str, core: Proposer) -> None:
        """A Promise or Accepted for a ballot below the proposer's current one can never change
        it again (its ballots only grow, and its rounds are durable), so delivering such a frame
        and keeping it pending forever lead to the same futures: drop it now. The check on the
        durable round keeps this sound even when a planted bug makes a proposer forget rounds."""
        for key in [k for k in s.net if k[1] == name]:
            msgs = self.frames[key[2]]
            if all(isinstance(m, (Promise, Accepted)) and m.ballot < core.ballot and m.ballot.round <= core.round
                   for m in msgs):
                del s.net[key]

    # --- the check -------------------------------------------------------------------------

    def chosen_by_members(self, s: State) -> tuple[dict[int, Value], int, str | None]:
        """Membership mode: the slots chosen by the membership of each, in slot order, as far as
        the memberships are known (every slot up to s - alpha chosen); the chosen prefix; and
        an agreement violation, if any. Computed once per set of votes."""
        if s.ghost is None:
            s.ghost = self._chosen_by_members(s)
        return s.ghost

    def _chosen_by_members(self, s: State) -> tuple[dict[int, Value], int, str | None]:
        assert self.bootstrap is not None
        by_slot: dict[int, list[tuple[int, Value]]] = {}
        for (slot, _), vote in s.votes.items():
            by_slot.setdefault(slot, []).append(vote)
        history = History(self.bootstrap, self.b.alpha)
        chosen: dict[int, Value] = {}
        prefix = 0
        for slot in sorted(by_slot):
            if slot - self.b.alpha > prefix:
                break  # its membership depends on a slot not chosen yet
            m = history.at(slot)
            mask = sum(self.bit[a] for a in m.acceptor_names)
            need = m.majority()
            for voters, value in by_slot[slot]:
                if (voters & mask).bit_count() >= need:
                    prior = chosen.setdefault(slot, value)
                    if prior != value:
                        return chosen, prefix, (f"agreement: slot {slot} chose {prior.describe()} and "
                                                f"{value.describe()} (members {','.join(m.acceptor_names)})")
            got = chosen.get(slot)
            if got is None:
                continue
            if got.kind == MEMBERSHIP:
                blob = got.batches[0]
                m = self.decoded.get(blob) or self.decoded.setdefault(blob, decode_membership(blob))
                history.learn(slot, m)
            if slot == prefix + 1:
                prefix = slot
        return chosen, prefix, None

    def changed(self, s: State) -> bool:
        """A slot that the new membership decides is chosen (membership mode)."""
        chosen, _, _ = self.chosen_by_members(s)
        change = [c for c, v in chosen.items() if v.kind == MEMBERSHIP]
        return bool(change) and any(slot >= change[0] + self.b.alpha for slot in chosen)

    def fast_chosen(self, s: State) -> tuple[dict[int, Value], str | None]:
        """Fast mode's ghost: a value is chosen under a fast ballot (and an uncoordinated
        recovery round) by a fast quorum of votes for it, under a classic ballot (the coordinated
        recovery round, or a leader's own proposal under its fast ballot) by a majority; a
        classic ballot has one value per slot."""
        n = len(self.acceptors)
        qf, q = fast_quorum(n), classic_quorum(n)
        chosen: dict[int, Value] = {}
        classic: dict[tuple[int, Ballot], Value] = {}
        for (slot, ballot, value), voters in s.fast_votes.items():
            fast = self.fast.is_fast(ballot)
            if not fast:
                prior = classic.setdefault((slot, ballot), value)
                if prior != value:
                    return chosen, f"agreement: two values under the classic ballot {ballot} at slot {slot}"
            elif s.proposed.get((slot, ballot)) == value:
                fast = False
            if voters.bit_count() >= (qf if fast else q):
                prior = chosen.setdefault(slot, value)
                if prior != value:
                    return chosen, (f"agreement: slot {slot} chose {prior.describe()} and {value.describe()} "
                                    f"(under {ballot})")
        return chosen, None

    def check(self, s: State) -> str | None:
        chosen: dict[int, Value] = {}
        if self.fast.enabled:
            chosen, problem = self.fast_chosen(s)
            if problem:
                return problem
        elif self.bootstrap is not None:
            chosen, prefix, problem = self.chosen_by_members(s)
            if problem:
                return problem
            for p in self.proposers:
                through = s.cores[p].chosen_through
                if through > prefix:
                    return (f"watermark: {p} holds every slot through {through} chosen, but slot {prefix + 1} is "
                            f"not (by the membership of each slot)")
        else:
            for (slot, _), (voters, value) in s.votes.items():
                if voters.bit_count() >= self.majority:
                    prior = chosen.setdefault(slot, value)
                    if prior != value:
                        return f"agreement: slot {slot} chose {prior.describe()} and {value.describe()}"
        for name in self.learners:
            for record in s.disks[name]:
                if isinstance(record, DecidedRecord) and chosen.get(record.slot) != record.value:
                    return f"agreement: {name} delivered slot {record.slot} which was not chosen as such"
        if s.compactions:
            # Durability across compaction: a majority holds each chosen value, as the value or
            # inside its snapshot.
            for slot, value in chosen.items():
                holders = 0
                for a in self.acceptors:
                    core = s.cores[a]
                    snap = core.snapshot.slot if core.snapshot is not None else 0
                    got = core.accepted.get(slot)
                    holders += slot <= snap or (got is not None and got[1] == value)
                if holders < self.majority:
                    return f"durability: chosen slot {slot} is held by {holders} acceptors"
        return None

    def run(self, time_budget_s: float | None = None, depth_first: bool = False) -> ModelResult:
        """Explore every reachable state (breadth first: shortest counterexamples; depth first:
        deep counterexamples sooner)."""
        t0 = time.perf_counter()
        start = self.initial()
        seen = {self.fingerprint(start)}
        queue = deque([start])
        transitions = 0
        take = queue.pop if depth_first else queue.popleft
        compacted = changed = 0
        while queue:
            if len(seen) > self.b.states_max or (time_budget_s and time.perf_counter() - t0 > time_budget_s):
                return ModelResult(True, len(seen), transitions, time.perf_counter() - t0, complete=False,
                                   compacted_states=compacted, changed_states=changed)
            state = take()
            for act in self.actions(state):
                transitions += 1
                try:
                    nxt = self.apply(state, act)
                except (InvariantViolation, _Broken) as exc:
                    return ModelResult(False, len(seen), transitions, time.perf_counter() - t0,
                                       f"core invariant: {exc}", (*state.trail, f"{act[0]} {act[1]!s:.60}"), False)
                problem = self.check(nxt)
                if problem:
                    return ModelResult(False, len(seen), transitions, time.perf_counter() - t0, problem, nxt.trail,
                                       False)
                fp = self.fingerprint(nxt)
                if fp not in seen:
                    seen.add(fp)
                    queue.append(nxt)
                    compacted += nxt.compactions > 0
                    changed += nxt.changes > 0 and self.changed(nxt)
        return ModelResult(True, len(seen), transitions, time.perf_counter() - t0, compacted_states=compacted,
                           changed_states=changed)


class _Broken(Exception):
    pass


class _ModelShell:
    """Where a turn's effects go in the model: records onto the state's disk, frames into its
    network (heartbeats left out: they only serve liveness), events nowhere."""

    def __init__(self, checker: ModelChecker, s: State, name: str) -> None:
        self.checker = checker
        self.s = s
        self.name = name

    def persist(self, records: list[Record], durable: bool) -> None:
        self.s.disks[self.name] = (*self.s.disks[self.name], *records)

    def send(self, dest: str, messages: list[Message]) -> None:
        if dest not in self.s.cores:
            return  # a client
        frame = tuple(m for m in messages if not isinstance(m, Heartbeat) and not (
            isinstance(m, Accept) and not m.entries) and not (isinstance(m, Accepted) and not m.slots)
            and not (isinstance(m, FastAccept) and not self.checker.b.fast_resends))
        if not frame:
            return
        c = self.checker
        if c.fast.enabled and self.name in c.ids:
            for m in frame:
                if isinstance(m, Accept):
                    for slot, value in m.entries:
                        self.s.proposed[(slot, m.ballot)] = value
        key = (self.name, dest, c._frame(frame))
        self.s.net[key] = self.s.net.get(key, 0) + 1

    def sync(self) -> None:
        pass

    def log(self, events: list[Event]) -> None:
        pass

    def act(self, actions: list[Action]) -> None:
        pass  # the model keeps records, not files: compaction is an action of its own there

    def status(self) -> dict[str, Any]:
        return {}


def main(argv: list[str] | None = None) -> int:
    from runtime.harness import bugs as planted

    parser = argparse.ArgumentParser(prog="python -m runtime.harness.sim.model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--proposers", type=int, default=2)
    parser.add_argument("--acceptors", type=int, default=3)
    parser.add_argument("--learners", type=int, default=0)
    parser.add_argument("--campaigns", default="1,1", help="elections per proposer, e.g. 2,1")
    parser.add_argument("--duplicates", type=int, default=1)
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--compactions", type=int, default=0, help="snapshot installs (compaction) in a path")
    parser.add_argument("--watermarks", type=int, default=0,
                        help="times an acceptor is told a watermark above what is chosen (as high as it takes one)")
    parser.add_argument("--no-commands", action="store_true", help="elections queue no client command")
    parser.add_argument("--members", default="", choices=["", "replace", "add"],
                        help="membership mode: the serving leader may replace a3 by a spare a4, or add a4")
    parser.add_argument("--changes", type=int, default=1, help="(membership mode) changes proposed in a path")
    parser.add_argument("--alpha", type=int, default=2, help="(membership mode) the alpha of the alpha rule")
    parser.add_argument("--window", type=int, default=1, help="(membership mode) the leaders' window of slots")
    parser.add_argument("--submits", type=int, default=0, help="client commands handed to the serving leader")
    parser.add_argument("--settle", action="store_true",
                        help="start from the first proposer serving (its election, every frame delivered)")
    parser.add_argument("--states-max", type=int, default=2_000_000)
    parser.add_argument("--budget-s", type=float, default=None)
    parser.add_argument("--bugs", default="")
    parser.add_argument("--dfs", action="store_true", help="depth first (deep counterexamples sooner)")
    parser.add_argument("--mode", default="classic", choices=["classic", "fast"], help="fast: Fast Paxos (issue 12)")
    parser.add_argument("--fast-recovery", default="coordinated", choices=["coordinated", "uncoordinated"])
    parser.add_argument("--fast-clients", type=int, default=0,
                        help="(fast mode) client commands sent straight to every acceptor, in flight from the start")
    parser.add_argument("--fast-window", type=int, default=4096,
                        help="(fast mode) open slots an acceptor takes ahead of its watermark (2: one fast slot)")
    parser.add_argument("--no-fast-resends", action="store_true",
                        help="(fast mode) the leader's re-sent losers of a collision are lost")
    args = parser.parse_args(argv)
    campaigns = tuple(int(x) for x in args.campaigns.split(","))
    if len(campaigns) == 1:
        campaigns *= args.proposers
    if len(campaigns) != args.proposers:
        parser.error("--campaigns needs one number, or one per proposer")
    bounds = Bounds(args.proposers, args.acceptors, args.learners, campaigns, args.duplicates, args.restarts,
                    not args.no_commands, args.states_max, args.compactions, args.watermarks, members=args.members,
                    changes=args.changes, alpha=args.alpha, window=args.window, submits=args.submits,
                    settle=args.settle, mode=args.mode, fast_recovery=args.fast_recovery,
                    fast_clients=args.fast_clients, fast_resends=not args.no_fast_resends,
                    fast_window=args.fast_window)
    result = ModelChecker(bounds, planted.kinds(args.bugs)).run(args.budget_s, args.dfs)
    if not result.ok:
        print(f"violation: {result.violation}")
        print("trail:\n  " + "\n  ".join(result.trail))
    print(f"model states={result.states} transitions={result.transitions} seconds={result.seconds:.1f} "
          f"complete={result.complete} ok={result.ok}"
          + (f" changed_states={result.changed_states}" if args.members else ""))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
