"""The chart's model: trace events (dicts in the trace contract's schema) checked and turned into
`TraceEvent`s, sends joined to their receives, and the rows a chart draws (one arrow per message,
one mark per fsync, decision, delivery, crash or start), in a fixed column order.

Pure: no files, no clocks, no terminal. The schema (see the module that writes the traces,
runtime/trace.py): every event has `ts` (wall-clock seconds), `a` (actor), `e` (kind), `lc`
(the actor's Lamport clock); a `send` has `to` and `m` (labels), a `recv` has `from`, `slc` (the
frame's clock as its sender stamped it) and `m`. A send and its receive join on (sender, lc) =
(recv's from, recv's slc). That pair names one frame only within one run of the sender: a
restarted actor counts its clock from 0 again, so after a restart a receive may find a send of
each run under its key; it is joined to the one that carries its labels and was sent before it,
the latest such (`join`). A send with `dropped: true` (step mode discarded the held message) was
never on the wire: no receive joins it, and it is drawn lost, "(dropped)". A send whose peer's
trace ends before it (no event of the peer at or after the send: the traces of a running cluster
are read while the peer has not written its receive yet) is "in flight", not lost. Kinds this module adds
for its own sources: `exit` (the supervisor saw the process end: `how`) and `note` (`text`: a
scenario's info event).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KINDS = frozenset({"send", "recv", "persist", "fsync", "decide", "deliver", "reply", "assign", "start", "crash",
                   "exit", "note"})
IN_FLIGHT = "in flight"  # an Arrow's status: see Arrow
KEEP_ALIVE = "keep-alive"  # as runtime/trace.py labels an Accept of no slot (a test keeps the two equal)
ROLE_RANK = {"client": 0, "proposer": 1, "acceptor": 2, "learner": 3, "other": 4}
_SLOT_IN_LABEL = re.compile(r"\bs=(\d+)(?:\.\.(\d+))?")
_SLOT_FIELD = re.compile(r"^(\d+)(?:\.\.(\d+))?$")
_NAME_NUMBER = re.compile(r"^(\D*)(\d*)(.*)$")


class TraceFormatError(ValueError):
    """An event that does not follow the schema. `where` names it (a file, line and byte offset,
    or the event's index in a list)."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where = where
        self.why = why


@dataclass(frozen=True)
class TraceEvent:
    """One checked event. `idx` is its position in the input (the tie-break that keeps the order
    of equal timestamps stable); `slots` the slot range it is about, if any."""

    idx: int
    ts: float
    actor: str
    kind: str
    lc: int
    peer: str | None = None  # `to` of a send or reply, `from` of a recv
    slc: int | None = None
    labels: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()
    slots: tuple[int, int] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def touches(self, lo: int, hi: int) -> bool:
        return self.slots is not None and self.slots[0] <= hi and lo <= self.slots[1]


def _slot_range(value: Any) -> tuple[int, int] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str):
        m = _SLOT_FIELD.match(value.strip())
        if m:
            lo = int(m.group(1))
            return (lo, int(m.group(2) or lo))
    return None


def _labels_slots(labels: Iterable[str]) -> tuple[int, int] | None:
    lo: int | None = None
    hi: int | None = None
    for label in labels:
        if "s=" not in label:  # most labels name no slot: skip the regex (a reader's hot loop)
            continue
        for m in _SLOT_IN_LABEL.finditer(label):
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    return None if lo is None or hi is None else (lo, hi)


def check(raw: Any, idx: int, where: str) -> TraceEvent:
    """One event dict checked against the schema, or a `TraceFormatError` that names `where`."""
    if not isinstance(raw, dict):
        raise TraceFormatError(where, f"an event is a JSON object, not {type(raw).__name__}")
    for key, types in (("ts", (int, float)), ("a", (str,)), ("e", (str,)), ("lc", (int,))):
        value = raw.get(key)
        if value is None:
            raise TraceFormatError(where, f"no {key!r} key")
        if isinstance(value, bool) or not isinstance(value, types):
            raise TraceFormatError(where, f"{key!r} is {value!r}, not a {types[0].__name__}")
    kind = raw["e"]
    if kind not in KINDS:
        raise TraceFormatError(where, f"unknown event kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    labels = raw.get("m", [])
    if isinstance(labels, str):
        labels = [labels]
    if type(labels) is not list or any(type(x) is not str for x in labels):
        raise TraceFormatError(where, f"'m' is {labels!r}, not a list of labels")
    if any(x.endswith(" s=") for x in labels):
        # Files written before runtime/trace.py named the keep-alive: an Accept (or Accepted) of
        # no slot read "Accept b=3.1 s=". Drawn as today's files say it.
        labels = [x[:-2] + KEEP_ALIVE if x.endswith(" s=") else x for x in labels]
    ops = raw.get("ops", [])
    if not isinstance(ops, list):
        raise TraceFormatError(where, f"'ops' is {ops!r}, not a list")
    peer: str | None = None
    slc: int | None = None
    if kind in ("send", "reply"):
        peer = raw.get("to")
        if not isinstance(peer, str):
            raise TraceFormatError(where, f"a {kind} needs 'to' (a peer name), got {peer!r}")
    if kind == "recv":
        peer, slc = raw.get("from"), raw.get("slc")
        if not isinstance(peer, str):
            raise TraceFormatError(where, f"a recv needs 'from' (a peer name), got {peer!r}")
        if isinstance(slc, bool) or not isinstance(slc, int):
            raise TraceFormatError(where, f"a recv needs 'slc' (the sender's clock), got {slc!r}")
    slots = _slot_range(raw.get("s")) if "s" in raw else None
    if "s" in raw and slots is None:
        raise TraceFormatError(where, f"'s' is {raw['s']!r}, not a slot or a range like 812..815")
    if slots is None:
        slots = _labels_slots(labels)
    return TraceEvent(idx=idx, ts=float(raw["ts"]), actor=raw["a"], kind=kind, lc=raw["lc"], peer=peer, slc=slc,
                      labels=tuple(labels), ops=tuple(str(o) for o in ops), slots=slots, raw=raw)


def rename(events: Iterable[TraceEvent], names: Mapping[str, str]) -> list[TraceEvent]:
    """The events with some participants renamed (a scenario's client session ids become the
    script's names for them: `c` rather than `911514d23728.e7c0718e`), as actor, peer and in the
    `CLIENT:SEQ` of their ops, so the chart's columns and texts say what the script says."""
    if not names:
        return list(events)

    def op(text: str) -> str:
        client, colon, seq = text.rpartition(":")
        return f"{names[client]}:{seq}" if colon and client in names else text

    out = []
    for e in events:
        actor = names.get(e.actor, e.actor)
        peer = names.get(e.peer, e.peer) if e.peer is not None else None
        ops = tuple(op(o) for o in e.ops)
        if actor != e.actor or peer != e.peer or ops != e.ops:
            e = dataclasses.replace(e, actor=actor, peer=peer, ops=ops)
        out.append(e)
    return out


def check_all(raws: Iterable[Any]) -> list[TraceEvent]:
    """Crafted event lists (tests, scenarios): each checked, named by its index."""
    return [check(raw, i, f"event #{i}") for i, raw in enumerate(raws)]


Key = tuple[float, int, str, int]


def order_key(e: TraceEvent) -> Key:
    """Time order; equal times by Lamport clock, then by actor name, so that the order of
    events with equal stamps does not depend on the order the files were read in."""
    return (e.ts, e.lc, e.actor, e.idx)


def role_of(name: str, roles: Mapping[str, str] | None = None) -> str:
    """An actor's role: from the config's roles when known, else from the default names
    (p1, a2, l1); anything else (client ids) is a client."""
    if roles and name in roles:
        return roles[name]
    m = re.match(r"^([pal])\d+$", name)
    if m:
        return {"p": "proposer", "a": "acceptor", "l": "learner"}[m.group(1)]
    return "client"


def column_order(names: Iterable[str], roles: Mapping[str, str] | None = None) -> list[str]:
    """A fixed order that does not depend on timing: clients (where requests come from), then
    proposers, acceptors, learners, each in natural order (a2 before a10)."""
    def key(name: str) -> tuple[int, str, int, str]:
        prefix, number, rest = _NAME_NUMBER.match(name).groups()  # type: ignore[union-attr]
        return (ROLE_RANK.get(role_of(name, roles), 4), prefix, int(number) if number else -1, rest)
    return sorted(set(names), key=key)


@dataclass(frozen=True)
class Arrow:
    """One message: from `src` to `dst`. `status`: "ok" (sent and received, or to/from a peer
    that writes no trace, such as a client), "lost" (sent to a traced peer, never received though
    the peer's trace goes on past it), "in flight" (sent to a traced peer whose trace ends before
    it: the receive may not be written yet) or "orphan" (received; its send is not in the traces)."""

    ts: float
    src: str
    dst: str
    text: str
    status: str
    send: TraceEvent | None
    recv: TraceEvent | None
    key: Key
    dropped: bool = False  # a "lost" send that step mode discarded (`dropped: true` in the trace)

    @property
    def lost_text(self) -> str:
        """What a renderer adds to the label of an arrow that did not arrive (or not yet)."""
        if self.status == IN_FLIGHT:
            return " (in flight)"
        if self.status != "lost":
            return ""
        return " (dropped)" if self.dropped else " (lost)"

    @property
    def nack(self) -> bool:
        return self.text.startswith("Nack")


@dataclass(frozen=True)
class Mark:
    """Something that happens on one lifeline: `glyph` drawn on it, `text` next to it."""

    ts: float
    actor: str
    glyph: str
    text: str
    style: str  # one of MARK_STYLES: how a renderer colors it
    event: TraceEvent
    key: Key


Row = Arrow | Mark

MARK_STYLES = ("persist", "fsync", "decide", "deliver", "crash", "start", "assign", "reply", "note")


def _ops_text(ops: Sequence[str], cap: int = 3) -> str:
    if not ops:
        return ""
    shown = ", ".join(ops[:cap])
    return f" [{shown}{f', +{len(ops) - cap}' if len(ops) > cap else ''}]"


def _dur(us: Any) -> str:
    if isinstance(us, bool) or not isinstance(us, (int, float)):
        return "?"
    return f"{us / 1000:.1f}ms" if us >= 1000 else f"{us:.0f}µs"


def mark_for(e: TraceEvent, restarted: bool) -> Mark | None:
    """The mark an event draws, or None for kinds that draw arrows."""
    r = e.raw
    key = order_key(e)
    if e.kind == "persist":
        size = f" {r['bytes']}B" if isinstance(r.get("bytes"), int) else ""
        return Mark(e.ts, e.actor, "▪", f"wal {', '.join(e.labels)}{size}", "persist", e, key)
    if e.kind == "fsync":
        return Mark(e.ts, e.actor, "◆", f"fsync {_dur(r.get('dur_us'))}", "fsync", e, key)
    if e.kind == "decide":
        b = f" b={r['b']}" if r.get("b") is not None else ""
        return Mark(e.ts, e.actor, "★", f"chosen s={r.get('s')}{b}", "decide", e, key)
    if e.kind == "deliver":
        return Mark(e.ts, e.actor, "✔", f"delivered s={r.get('s')}{_ops_text(e.ops)}", "deliver", e, key)
    if e.kind == "assign":
        return Mark(e.ts, e.actor, "•", f"assign s={r.get('s')}{_ops_text(e.ops)}", "assign", e, key)
    if e.kind == "reply":
        return Mark(e.ts, e.actor, "↩", f"reply {e.peer}{_ops_text(e.ops)}", "reply", e, key)
    if e.kind == "start":
        word = "restart" if restarted else "start"
        pid = f" pid={r['pid']}" if r.get("pid") is not None else ""
        return Mark(e.ts, e.actor, "▶", f"{word}{pid}", "start", e, key)
    if e.kind == "crash":
        return Mark(e.ts, e.actor, "✖", f"crash at {r.get('point', '?')}", "crash", e, key)
    if e.kind == "exit":
        return Mark(e.ts, e.actor, "✖", f"exited: {r.get('how', '?')}", "crash", e, key)
    if e.kind == "note":
        return Mark(e.ts, e.actor, "·", str(r.get("text", "")), "note", e, key)
    return None


@dataclass
class Chart:
    """What a renderer draws: the columns (left to right) and the rows (top to bottom)."""

    columns: list[str]
    rows: list[Row]
    dropped_rows: int = 0  # rows left out by a limit (see `limit`)
    dropped_where: str = ""  # "before" or "after" the rows shown
    dropped_known: bool = True  # False: the reader skipped lines, so how many rows is not known

    @property
    def t0(self) -> float:
        return self.rows[0].ts if self.rows else 0.0


def traced_actors(events: Iterable[TraceEvent]) -> set[str]:
    return {e.actor for e in events}


def build(events: Sequence[TraceEvent], roles: Mapping[str, str] | None = None,
          traced: set[str] | None = None, ends: Mapping[str, float] | None = None) -> Chart:
    """The chart of these events: every receive joined to its send on (sender, lc); a send
    nobody traced receiving is an arrow too ("lost" if its peer writes traces, "in flight" if the
    peer's trace ends before the send, "ok" if the peer writes none).
    `traced`: the actors that write traces (default: those with an event here), so that a
    send to a peer outside a selection is not taken for a lost one. `ends`: where each actor's
    trace ends in time, lines a filter skipped included (default: its latest event here)."""
    traced = traced if traced is not None else traced_actors(events)
    # (sender, lc) -> its sends: one per run of the sender (a restart counts from 0 again).
    sends: dict[tuple[str, int], list[TraceEvent]] = {}
    for e in events:
        if e.kind == "send":
            sends.setdefault((e.actor, e.lc), []).append(e)
    received: set[int] = set()  # the idx of every send a receive joined
    last_ts: dict[str, float] = dict(ends or {})  # where what each actor wrote so far ends
    for e in events:
        if e.ts > last_ts.get(e.actor, float("-inf")):
            last_ts[e.actor] = e.ts
    rows: list[Row] = []
    started: set[str] = set()
    for e in sorted(events, key=order_key):
        if e.kind == "recv":
            assert e.peer is not None and e.slc is not None
            send = join(e, sends.get((e.peer, e.slc), ()))
            if send is not None:
                received.add(send.idx)
            text = ", ".join(e.labels or (send.labels if send else ()))
            status = "ok" if send is not None or e.peer not in traced else "orphan"
            rows.append(Arrow(e.ts, e.peer, e.actor, text, status, send, e, order_key(e)))
        elif e.kind != "send":
            mark = mark_for(e, restarted=e.actor in started)
            if e.kind in ("start", "crash", "exit"):
                started.add(e.actor)
            if mark is not None:
                rows.append(mark)
    for runs in sends.values():
        for e in runs:
            if e.idx in received:
                continue
            assert e.peer is not None
            dropped = e.raw.get("dropped") is True
            # A dropped message is lost whoever its peer is: it never left its sender.
            if dropped:
                status = "lost"
            elif e.peer not in traced:
                status = "ok"
            else:
                status = "lost" if last_ts.get(e.peer, float("-inf")) >= e.ts else IN_FLIGHT
            rows.append(Arrow(e.ts, e.actor, e.peer, ", ".join(e.labels), status, e, None, order_key(e), dropped))
    rows.sort(key=lambda r: r.key)
    names: set[str] = set()
    for r in rows:
        names.update((r.src, r.dst) if isinstance(r, Arrow) else (r.actor,))
    return Chart(column_order(names, roles), rows)


def join(recv: TraceEvent, candidates: Sequence[TraceEvent]) -> TraceEvent | None:
    """The send a receive took, among the sends under its (sender, lc) key: one per run of the
    sender, since a restart counts the clock from 0 again. A dropped send was never on the wire;
    of the others, the one to this receiver with the receive's labels (a frame's labels are the
    same on both sides) sent before it, the latest such: the run alive then. Wall clocks of one
    host agree, so a send after its receive is a last resort."""
    if len(candidates) == 1:  # the common case: the sender never restarted (or no lc repeated)
        only = candidates[0]
        return None if only.raw.get("dropped") is True else only
    best: TraceEvent | None = None
    best_key: tuple[bool, bool, bool, float] | None = None
    for send in candidates:
        if send.raw.get("dropped") is True:
            continue
        after = send.ts > recv.ts
        key = (send.peer != recv.actor, send.labels != recv.labels, after,
               send.ts - recv.ts if after else recv.ts - send.ts)
        if best_key is None or key < best_key:
            best, best_key = send, key
    return best


def limit(chart: Chart, max_rows: int, keep: str = "first") -> Chart:
    """At most `max_rows` rows: the first ones (`keep="first"`) or the latest ones ("last")."""
    if len(chart.rows) <= max_rows:
        return chart
    dropped = len(chart.rows) - max_rows
    if keep == "last":
        return Chart(chart.columns, chart.rows[-max_rows:], dropped, "before")
    return Chart(chart.columns, chart.rows[:max_rows], dropped, "after")
