"""Which events a chart shows: `--slot N[..M]`, `--op CLIENT:SEQ` (one client request end to
end), `--since/--until` (a wall-clock window), and the checks that turn an empty answer into a
clear reason (a slot beyond the log, or older than the traces).

Pure: the caller hands in the events (and, for the reasons, what it knows of compaction).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.tracechart.model import TraceEvent, order_key

SLOTS_MAX = 1 << 62  # far beyond any slot a cluster reaches; larger is a typo
_SLOTS = re.compile(r"^(\d+)(?:\.\.(\d+))?$")
_OP = re.compile(r"^(.+):(\d+)$")


class SelectionError(ValueError):
    """A selection that cannot be met: the message says why (beyond the log, compacted, unknown)."""


def parse_slots(text: str) -> tuple[int, int]:
    """`N` or `N..M` (N <= M, both positive)."""
    m = _SLOTS.match(text.strip())
    if not m:
        raise ValueError(f"a slot is N or N..M (say 7 or 1..3), not {text!r}")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if lo < 1:
        raise ValueError(f"slots start at 1, not {lo}")
    if hi < lo:
        raise ValueError(f"the range {text!r} ends before it starts")
    if hi > SLOTS_MAX:
        raise ValueError(f"slot {hi} is beyond any log (at most {SLOTS_MAX})")
    return lo, hi


def parse_op(text: str) -> str:
    """`CLIENT:SEQ`: a client id and the command's sequence number."""
    m = _OP.match(text.strip())
    if not m or not m.group(1).strip():
        raise ValueError(f"an op is CLIENT:SEQ (say c7f3:12), not {text!r}")
    return f"{m.group(1)}:{int(m.group(2))}"


@dataclass(frozen=True)
class Selection:
    slots: tuple[int, int] | None = None
    op: str | None = None
    since: float | None = None  # wall-clock seconds, inclusive
    until: float | None = None

    @property
    def narrowed(self) -> bool:
        """Whether it picks events by what they are about (not only by time)."""
        return self.slots is not None or self.op is not None


def _in_window(e: TraceEvent, sel: Selection) -> bool:
    return (sel.since is None or e.ts >= sel.since) and (sel.until is None or e.ts <= sel.until)


def _seeds(events: Sequence[TraceEvent], sel: Selection) -> list[TraceEvent]:
    ranges: list[tuple[int, int]] = [sel.slots] if sel.slots else []
    if sel.op is not None:
        with_op = [e for e in events if sel.op in e.ops]
        # The slots the op went into (assign, deliver): their Accepts and votes belong to its story.
        ranges += [e.slots for e in with_op if e.slots is not None and e.kind in ("assign", "deliver", "decide")]
        if not ranges:
            return with_op
    return [e for e in events if any(e.touches(lo, hi) for lo, hi in ranges) or (sel.op is not None
                                                                                   and sel.op in e.ops)]


def select(events: Sequence[TraceEvent], sel: Selection) -> list[TraceEvent]:
    """The events of the selection, in time order. With --slot or --op: the events about those
    slots (or carrying the op), with each message's other end, the fsync that made a selected
    record durable, and the crashes and starts of the actors involved while it went on."""
    window = [e for e in events if _in_window(e, sel)]
    if not sel.narrowed:
        return sorted(window, key=order_key)
    chosen = {e.idx: e for e in _seeds(window, sel)}
    if not chosen:
        return []
    # Each message's other end, joined on (sender, lc).
    sends = {(e.actor, e.lc): e for e in window if e.kind == "send"}
    recvs: dict[tuple[str, int], list[TraceEvent]] = {}
    for e in window:
        if e.kind == "recv" and e.peer is not None and e.slc is not None:
            recvs.setdefault((e.peer, e.slc), []).append(e)
    for e in list(chosen.values()):
        if e.kind == "send":
            for r in recvs.get((e.actor, e.lc), []):
                chosen.setdefault(r.idx, r)
        elif e.kind == "recv" and e.peer is not None and e.slc is not None:
            s = sends.get((e.peer, e.slc))
            if s is not None:
                chosen.setdefault(s.idx, s)
    # The fsync after a selected persist, on the same actor, before its next persist.
    by_actor: dict[str, list[TraceEvent]] = {}
    for e in sorted(window, key=order_key):
        by_actor.setdefault(e.actor, []).append(e)
    for seq in by_actor.values():
        pending = False
        for e in seq:
            if e.kind == "persist":
                pending = e.idx in chosen
            elif e.kind == "fsync" and pending:
                chosen.setdefault(e.idx, e)
                pending = False
    # Crashes and (re)starts of the actors involved, while the selected events went on.
    first = min(e.ts for e in chosen.values())
    last = max(e.ts for e in chosen.values())
    involved = {e.actor for e in chosen.values()} | {e.peer for e in chosen.values() if e.peer}
    for e in window:
        if e.kind in ("crash", "start", "exit") and e.actor in involved and first <= e.ts <= last:
            chosen.setdefault(e.idx, e)
    return sorted(chosen.values(), key=order_key)


def explain_empty(events: Sequence[TraceEvent], sel: Selection, compacted_through: int = 0,
                  covered: tuple[float, float] | None = None, traced_slots: tuple[int, int] | None = None) -> str:
    """Why the selection found nothing, in one sentence. `compacted_through`: the highest slot
    any actor has compacted away (0 when none), as the caller read it from the files; `covered`:
    the first and last stamps of the files, when the caller skipped lines outside the window;
    `traced_slots`: the lowest and highest slot the files name, when it skipped lines by slot."""
    window = [e for e in events if _in_window(e, sel)]
    if not window and (covered or events):
        lo, hi = covered or (min(e.ts for e in events), max(e.ts for e in events))
        return f"no trace event falls in that time window (the traces cover {_clock(lo)} to {_clock(hi)})"
    if not events:
        return "there are no trace events at all (is tracing on? see [trace] enabled in cluster.toml)"
    if sel.slots is not None:
        traced = [e.slots for e in window if e.slots is not None]
        if traced_slots is not None:
            traced.append(traced_slots)
        if not traced:
            return "no traced event names a slot in that window"
        low, high = min(s[0] for s in traced), max(s[1] for s in traced)
        lo, hi = sel.slots
        what = f"slot {lo} is" if lo == hi else f"slots {lo}..{hi} are"
        if lo > high:
            return f"{what} beyond the log: the traced slots reach {high}"
        if hi < low:
            if compacted_through >= hi:
                return (f"{what} below the compaction point: slots up to {compacted_through} are compacted "
                        f"away, and the traces start at slot {low}")
            return f"{what} older than the traces: they start at slot {low}"
        return (f"no traced event is about {what.rsplit(' ', 1)[0]} (the traced slots are {low}..{high}; "
                f"tracing samples frames)")
    if sel.op is not None:
        clients = sorted({o.split(":", 1)[0] for e in window for o in e.ops})
        client = sel.op.split(":", 1)[0]
        if client not in clients:
            known = ", ".join(clients[:8]) or "none"
            return f"no traced event carries a command of client {client!r} (clients traced: {known})"
        return f"no traced event carries {sel.op} (that client's other commands are traced; tracing samples frames)"
    return "nothing selected"


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"
