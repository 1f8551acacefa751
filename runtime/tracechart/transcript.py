"""A scenario transcript (runtime/harness/sim/scenario.py, tests/scenarios/*.golden) as trace
events, so a scenario draws the same chart as a real run: each `deliver X -> Y: ...` line is a
send and its receive, each `drop` a send nobody receives (marked `dropped`, as step mode traces
it), `> crash X` a crash, `X: recovered` a restart, and every info event (`X: leader_elected
...`) a note on X's lifeline.

Time is the transcript's line number (a millisecond each), so the chart is as deterministic as
the transcript. Message texts become the trace labels (`accept 1.1 3:cmd@1.1[...]` becomes
`Accept b=1.1 s=3`), the rest of the line is dropped: the transcript keeps the details.
"""

from __future__ import annotations

import re
from typing import Any

from runtime.tracechart import model, text
from runtime.tracechart.model import TraceEvent, check_all

_MOVE = re.compile(r"^  (deliver|drop) (\S+) -> (\S+): (.*)$")
_EVENT = re.compile(r"^    (\S+): (\S+)(.*)$")
_CRASH = re.compile(r"^> (crash|wipe) (\S+)")
_ENTRY_SLOT = re.compile(r"(?:^|, )(\d+):")


def label(text: str) -> str:
    """A transcript's message text as a trace label."""
    words = text.split()
    kind = words[0]
    ballot = words[1] if len(words) > 1 and re.match(r"^\d+\.\d+", words[1]) else ""
    b = f" b={ballot}" if ballot else ""
    if kind == "accept":
        if "(heartbeat)" in text:
            # An Accept of no slot, as a real run's trace labels it (not a Heartbeat message).
            return f"Accept{b} {model.KEEP_ALIVE}"
        slots = [int(s) for s in _ENTRY_SLOT.findall(text.split(" ", 2)[2] if len(words) > 2 else "")]
        s = f" s={min(slots)}" + (f"..{max(slots)}" if max(slots) > min(slots) else "") if slots else ""
        return f"Accept{b}{s}"
    if kind == "accepted":
        m = re.search(r"slots=([\d,]+)", text)
        slots = [int(x) for x in m.group(1).split(",")] if m else []
        s = f" s={min(slots)}" + (f"..{max(slots)}" if max(slots) > min(slots) else "") if slots else ""
        return f"Accepted{b}{s or ' ' + model.KEEP_ALIVE}"  # no slot (slots=-): a keep-alive's answer
    if kind == "nack":
        m = re.search(r"promised=(\S+)", text)
        return f"Nack promised={m.group(1) if m else '?'}"
    if kind in ("prepare", "promise"):
        return f"{kind.capitalize()}{b}"
    if kind in ("submit", "fast-accept"):
        return f"{'Submit' if kind == 'submit' else 'FastAccept'} n={text.count(';') + 1}"
    return "".join(p.capitalize() for p in kind.split("-")) + b


def events(transcript: str) -> list[TraceEvent]:
    """The transcript's deliveries, drops, crashes, restarts and info events as trace events."""
    raws: list[dict[str, Any]] = []
    clocks: dict[str, int] = {}

    def tick(actor: str) -> int:
        clocks[actor] = clocks.get(actor, 0) + 1
        return clocks[actor]

    for number, line in enumerate(transcript.splitlines(), start=1):
        ts = number / 1000
        move = _MOVE.match(line)
        if move:
            verb, src, dst, text = move.groups()
            lab = label(text)
            lc = tick(src)
            send: dict[str, Any] = {"ts": ts, "a": src, "e": "send", "lc": lc, "to": dst, "m": [lab]}
            if verb == "drop":  # as a real actor traces a held message step mode drops
                send["dropped"] = True
            raws.append(send)
            if verb == "deliver":
                clocks[dst] = max(clocks.get(dst, 0), lc) + 1
                raws.append({"ts": ts, "a": dst, "e": "recv", "lc": clocks[dst], "from": src, "slc": lc,
                             "m": [lab]})
            continue
        crash = _CRASH.match(line)
        if crash:
            raws.append({"ts": ts, "a": crash.group(2), "e": "crash", "lc": tick(crash.group(2)),
                         "point": crash.group(1)})
            continue
        event = _EVENT.match(line)
        if event:
            actor, name, rest = event.groups()
            if name == "recovered":
                raws.append({"ts": ts, "a": actor, "e": "start", "lc": tick(actor)})
            elif actor not in ("refused", "proposed"):  # the script's own verdicts, not an actor's
                raws.append({"ts": ts, "a": actor, "e": "note", "lc": tick(actor), "text": f"{name}{rest}"})
    return check_all(raws)


def chart_text(transcript: str, width: int = 140, max_rows: int = 400) -> str:
    """A scenario transcript's chart as plain text (no time column: a transcript has no clock)."""
    return text.plain(model.limit(model.build(events(transcript)), max_rows), width=width, times=False)
