"""Reading trace files back: load every process's, join sends to receives, follow one client op.

    traces = Traces.load(config.data_dir / "logs")     # every *.trace and *.trace.1 there
    traces.receive_of(send_event), traces.send_of(recv_event)  # joined on (sender, lc)
    path = traces.follow("CLIENT:SEQ")                  # one op, client to reply, or None
    stages = breakdown(traces)                          # {stage: [ms, ...]} over sampled ops

The schema of the lines is runtime/trace.py's docstring. Every process of a host stamps `ts`
with the same wall clock, so events of different processes compare on one time line; `lc` and
the (sender, lc) join give the order that clocks cannot (a receive always follows its send).
Events are plain dicts, as read; unknown keys are kept and ignored. A line that is not a JSON
object (a torn last line of a killed process) is skipped and counted in `bad_lines`.

`follow(op)` finds, for a client op CLIENT:SEQ: the leader's `assign` of it (slot S), the
Submit it came in (`recv` at the leader, and the client's `send` of it when the client traced),
the leader's Accepts of S to each acceptor, each acceptor's `recv`, `persist`, `fsync` and
`send` of the Accepted, the learner that replied (`reply`), its `decide` and `deliver` of S, and
the client's `recv` of the Reply. Any part may be missing (a frame its sender did not sample, a
restart); `breakdown` uses the stages whose two ends it has.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Event = dict[str, Any]
SCAN_MAX = 20_000  # events looked at per search forward in one actor's events

# The stages of a write, in order (per acceptor for the acceptor's: "a1.persist").
STAGES = ("client_to_leader", "leader_queue", "accept_sent", "net_to_acceptor", "persist", "fsync",
          "net_to_learner", "learner_queue", "quorum", "learner_apply", "reply", "reply_to_client", "total")
ACCEPTOR_STAGES = ("net_to_acceptor", "persist", "fsync", "net_to_learner")


def slot_ranges(text: str) -> list[tuple[int, int]]:
    """"5" -> [(5, 5)], "5..9,12" -> [(5, 9), (12, 12)]; anything else -> []."""
    out = []
    for part in str(text).split(","):
        a, _, b = part.partition("..")
        try:
            out.append((int(a), int(b or a)))
        except ValueError:
            continue
    return out


def covers(text: str, slot: int) -> bool:
    return any(a <= slot <= b for a, b in slot_ranges(text))


def label_slots(label: str) -> str:
    """The `s=` part of a message or record label ("Accept b=3.1 s=812..815" -> "812..815")."""
    for word in label.split():
        if word.startswith("s="):
            return word[2:]
    return ""


def _has(ev: Event, kind: str, slot: int) -> bool:
    return any(m.startswith(kind + " ") and covers(label_slots(m), slot) for m in ev.get("m", ()))


@dataclass
class Stage:
    name: str
    start: float  # ts, seconds
    end: float

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass
class OpPath:
    """One client op's events across processes (None where the trace lacks them)."""

    op: str
    slot: int
    leader: str
    assign: Event
    leader_recv: Event | None = None
    client_send: Event | None = None
    accepts: dict[str, Event] = field(default_factory=dict)  # acceptor -> the leader's send to it
    acceptor_recv: dict[str, Event] = field(default_factory=dict)
    persist: dict[str, Event] = field(default_factory=dict)
    fsync: dict[str, Event] = field(default_factory=dict)
    accepted: dict[str, Event] = field(default_factory=dict)  # acceptor -> its send of Accepted
    # Destinations of the Accept that wrote no accept record of it (learners, and an acceptor that
    # refused it or whose persist is not in the traces): the last event of it traced, the
    # receive if there was one, else the leader's send. What a reader says of a missing acceptor.
    unvoted: dict[str, Event] = field(default_factory=dict)
    learner: str = ""
    learner_recv: dict[str, Event] = field(default_factory=dict)  # acceptor -> the learner's receive of its Accepted
    decide: Event | None = None
    deliver: Event | None = None
    reply: Event | None = None
    reply_send: Event | None = None
    client_recv: Event | None = None

    def stages(self) -> list[Stage]:
        """The stages whose ends the trace has (acceptor stages named "a1.persist" and so on)."""
        out: list[Stage] = []

        def add(name: str, a: Event | None, b: Event | None) -> None:
            if a is not None and b is not None:
                out.append(Stage(name, a["ts"], b["ts"]))

        add("client_to_leader", self.client_send, self.leader_recv)
        add("leader_queue", self.leader_recv, self.assign)
        first_accept = min(self.accepts.values(), key=lambda e: e["ts"], default=None)
        add("accept_sent", self.assign, first_accept)
        for name, send in sorted(self.accepts.items()):
            recv = self.acceptor_recv.get(name)
            add(f"{name}.net_to_acceptor", send, recv)
            fs = self.fsync.get(name)
            if recv is not None and fs is not None:
                # From the Accept's arrival to its record written (the fsync's start).
                out.append(Stage(f"{name}.persist", recv["ts"], fs["ts"] - fs.get("dur_us", 0) / 1e6))
                out.append(Stage(f"{name}.fsync", fs["ts"] - fs.get("dur_us", 0) / 1e6, fs["ts"]))
        for name, recv in sorted(self.learner_recv.items()):
            add(f"{name}.net_to_learner", self.accepted.get(name), recv)
        need = len(self.accepts) // 2 + 1  # a majority of the acceptors the Accept went to
        arrivals = sorted(e["ts"] for e in self.learner_recv.values())
        if self.decide is not None and len(arrivals) >= need:
            # From the Accepted that made a majority (as far as the trace saw them) to the decision.
            out.append(Stage("learner_queue", arrivals[need - 1], self.decide["ts"]))
        add("quorum", first_accept, self.decide)
        add("learner_apply", self.decide, self.deliver)
        add("reply", self.deliver, self.reply)
        add("reply_to_client", self.reply_send, self.client_recv)
        add("total", self.client_send, self.client_recv)
        return out


class Traces:
    def __init__(self, events: Iterable[Event], bad_lines: int = 0) -> None:
        self.events = sorted(events, key=lambda e: e["ts"])
        self.bad_lines = bad_lines
        self.by_actor: dict[str, list[Event]] = {}
        self.sends: dict[tuple[str, int], Event] = {}
        self.recvs: dict[tuple[str, int], Event] = {}
        self.by_op: dict[str, list[Event]] = {}
        for e in self.events:
            a = e["a"]
            self.by_actor.setdefault(a, []).append(e)
            kind = e["e"]
            if kind == "send":
                self.sends[(a, e["lc"])] = e
            elif kind == "recv" and "from" in e and "slc" in e:
                self.recvs[(e["from"], e["slc"])] = e
            for op in e.get("ops", ()):
                self.by_op.setdefault(op, []).append(e)
        self._ts = {a: [e["ts"] for e in evs] for a, evs in self.by_actor.items()}

    @classmethod
    def load(cls, logs_dir: Path) -> Traces:
        """Every trace file in `logs_dir` (the rotated `.trace.1` ones too)."""
        events: list[Event] = []
        bad = 0
        files = sorted([*logs_dir.glob("*.trace.1"), *logs_dir.glob("*.trace")])
        for path in files:
            with path.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        bad += 1
                        continue
                    if (type(e) is not dict or not isinstance(e.get("ts"), (int, float))
                            or type(e.get("a")) is not str or type(e.get("e")) is not str
                            or type(e.get("lc")) is not int):
                        bad += 1
                        continue
                    events.append(e)
        return cls(events, bad)

    # --- joins -----------------------------------------------------------------------------

    def receive_of(self, send: Event) -> Event | None:
        """The receive of this frame (its sender and lc name it), if the receiver traced it."""
        return self.recvs.get((send["a"], send["lc"]))

    def send_of(self, recv: Event) -> Event | None:
        return self.sends.get((recv["from"], recv["slc"]))

    def after(self, actor: str, ts: float, pred: Callable[[Event], bool]) -> Event | None:
        """The first event of `actor` at or after `ts` that satisfies `pred` (a bounded scan)."""
        evs = self.by_actor.get(actor, [])
        i = bisect.bisect_left(self._ts.get(actor, []), ts)
        for e in evs[i:i + SCAN_MAX]:
            if pred(e):
                return e
        return None

    def before(self, actor: str, ts: float, pred: Callable[[Event], bool]) -> Event | None:
        """The last event of `actor` at or before `ts` that satisfies `pred`."""
        evs = self.by_actor.get(actor, [])
        i = bisect.bisect_right(self._ts.get(actor, []), ts)
        for e in reversed(evs[max(0, i - SCAN_MAX):i]):
            if pred(e):
                return e
        return None

    # --- one op ----------------------------------------------------------------------------

    def ops(self) -> list[str]:
        """The client ops some leader's `assign` names, in time order."""
        seen: dict[str, None] = {}
        for e in self.events:
            if e["e"] == "assign":
                for op in e.get("ops", ()):
                    seen.setdefault(op, None)
        return list(seen)

    def follow(self, op: str) -> OpPath | None:
        """`op`'s path through the cluster (see the module docstring), or None when no leader's
        assign of it was traced. A retried op is followed through the assign of the slot whose
        learner replied (or the first)."""
        evs = self.by_op.get(op, [])
        assigns = [e for e in evs if e["e"] == "assign"]
        if not assigns:
            return None
        reply = next((e for e in evs if e["e"] == "reply"), None)
        assign = assigns[0]
        if reply is not None:
            # The latest assign before the reply is the one that was chosen and applied.
            assign = max((a for a in assigns if a["ts"] <= reply["ts"]), key=lambda a: a["ts"], default=assign)
        slot, leader = int(assign["s"]), assign["a"]
        path = OpPath(op, slot, leader, assign)
        path.leader_recv = self.before(leader, assign["ts"],
                                       lambda e: e["e"] == "recv" and op in e.get("ops", ()))
        if path.leader_recv is not None:
            path.client_send = self.send_of(path.leader_recv)
        for e in self.by_actor.get(leader, [])[bisect.bisect_left(self._ts[leader], assign["ts"]):][:SCAN_MAX]:
            if e["e"] == "send" and _has(e, "Accept", slot) and e["to"] not in path.accepts:
                path.accepts[e["to"]] = e
            elif e["e"] == "assign" and e is not assign and e.get("s") == slot:
                break  # a later leader's (or a retry's) assign of the same slot: stop here
        for dest, send in list(path.accepts.items()):
            recv = self.receive_of(send)
            if recv is None:
                continue
            a = recv["a"]
            path.acceptor_recv[dest] = recv
            persist = self.after(a, recv["ts"], lambda e: e["e"] == "persist" and _has(e, "accept", slot))
            if persist is None:
                continue  # a learner (Accepts reach learners too) or an acceptor that refused
            path.persist[dest] = persist
            fs = self.after(a, persist["ts"], _fsync_of(persist["lc"]))
            if fs is not None:
                path.fsync[dest] = fs
            acc = self.after(a, persist["ts"], lambda e: e["e"] == "send" and _has(e, "Accepted", slot))
            if acc is not None:
                path.accepted[dest] = acc
        # Only acceptors persist an accept record: the other destinations were learners.
        for dest in [d for d in path.accepts if d not in path.persist]:
            recv = path.acceptor_recv.pop(dest, None)
            path.unvoted[dest] = recv if recv is not None else path.accepts[dest]
            del path.accepts[dest]
        if reply is not None:
            r = reply["a"]
            path.learner, path.reply = r, reply
            for dest, persist in path.persist.items():
                acc = self.after(persist["a"], persist["ts"], _accepted_to(r, slot))
                if acc is not None:
                    path.accepted[dest] = acc
                    recv = self.receive_of(acc)
                    if recv is not None:
                        path.learner_recv[dest] = recv
            path.decide = self.before(r, reply["ts"], lambda e: e["e"] == "decide" and covers(e.get("s", ""), slot))
            path.deliver = self.before(r, reply["ts"],
                                       lambda e: e["e"] == "deliver" and covers(e.get("s", ""), slot))
            path.reply_send = next((e for e in evs if e["e"] == "send" and e["a"] == r and e["ts"] >= reply["ts"]),
                                   None)
            if path.reply_send is not None:
                path.client_recv = self.receive_of(path.reply_send)
        return path


def _accepted_to(learner: str, slot: int) -> Callable[[Event], bool]:
    return lambda e: e["e"] == "send" and e.get("to") == learner and _has(e, "Accepted", slot)


def _fsync_of(lc: int) -> Callable[[Event], bool]:
    """The fsync of a persist: the same turn's, so the same clock (nothing is sent between)."""
    return lambda e: e["e"] == "fsync" and e["lc"] == lc


def breakdown(traces: Traces, ops_max: int = 100_000) -> tuple[dict[str, list[float]], int, int]:
    """Per stage, the milliseconds of every sampled batch that has both its ends; how many
    batches were followed, and how many of them end to end (client send to client receive).
    A batch is the ops that travelled together (one Submit, one slot): they share every stage,
    so each counts once, whatever the number of ops it carried."""
    stages: dict[str, list[float]] = {}
    followed = whole = 0
    seen: set[tuple[str, int, int]] = set()
    for op in traces.ops()[:ops_max]:
        path = traces.follow(op)
        if path is None:
            continue
        key = (path.leader, path.slot, path.leader_recv["lc"] if path.leader_recv is not None else -1)
        if key in seen:
            continue
        seen.add(key)
        followed += 1
        got = path.stages()
        if any(s.name == "total" for s in got):
            whole += 1
        for s in got:
            stages.setdefault(s.name, []).append(s.ms)
    return stages, followed, whole


def stage_order(name: str) -> tuple[int, str]:
    base = name.split(".", 1)[-1]
    return (STAGES.index(base) if base in STAGES else len(STAGES), name)
