"""The chart as a ShiViz log (`paxos trace --format shiviz`), so a run opens in ShiViz
(https://bestchai.bitbucket.io/shiviz/): paste it, or upload the file.

ShiViz orders events by vector clocks, so this module derives them from the chart: every event
ticks its own host's entry; a receive also takes the entry-wise maximum with its send's clock
(the send and receive joined on (sender, lc)). Peers that write no trace (clients) get the
sends and receives their messages imply, so their requests are edges too. The file starts with
the parsing regular expression on its first line and a blank line (GoVector's layout, which
ShiViz reads), then two lines per event:

    (?<host>\\S*) (?<clock>{.*})\\n(?<event>.*)

    p1 {"p1": 3, "c1": 1}
    recv Submit n=1 from c1
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from runtime.tracechart.model import IN_FLIGHT, Arrow, Chart, Key, order_key

REGEX = r"(?<host>\S*) (?<clock>{.*})\n(?<event>.*)"


@dataclass
class _Node:
    host: str
    key: Key
    text: str
    send: _Node | None = None  # for a receive: its send
    clock: dict[str, int] = field(default_factory=dict)
    done: bool = False


def _host(name: str) -> str:
    return re.sub(r"\s", "_", name) or "_"


def _nodes(chart: Chart) -> list[_Node]:
    nodes: list[_Node] = []
    sends: dict[int, _Node] = {}  # a send received twice (a duplicate) is one event
    for r in chart.rows:
        if isinstance(r, Arrow):
            src, dst = _host(r.src), _host(r.dst)
            if r.status == "orphan":
                nodes.append(_Node(dst, r.key, f"recv {r.text} from {r.src} (its send is not in the traces)"))
                continue
            if r.send is not None and r.send.idx in sends:
                send = sends[r.send.idx]
            else:
                # A synthesized send (an untraced sender) sorts with its receive, on its own host.
                key = order_key(r.send) if r.send else r.key
                send = _Node(src, key, f"send {r.text} to {r.dst}")
                nodes.append(send)
                if r.send is not None:
                    sends[r.send.idx] = send
            if r.status in ("lost", IN_FLIGHT):
                send.text += (" (dropped in step mode)" if r.dropped else " (never received)" if r.status == "lost"
                              else " (not received when the traces were read)")
                continue
            nodes.append(_Node(dst, r.key if r.recv else (r.key[0], r.key[1], r.key[2], r.key[3] + 1),
                               f"recv {r.text} from {r.src}", send=send))
        else:
            nodes.append(_Node(_host(r.actor), r.key, f"{r.glyph} {r.text}"))
    return nodes


def clocks(chart: Chart) -> list[_Node]:
    """The chart's events with their vector clocks, in an order consistent with them."""
    per_host: dict[str, list[_Node]] = {}
    for n in sorted(_nodes(chart), key=lambda n: n.key):
        per_host.setdefault(n.host, []).append(n)
    heads = {h: 0 for h in per_host}
    now: dict[str, dict[str, int]] = {h: {} for h in per_host}
    ordered: list[_Node] = []
    total = sum(len(v) for v in per_host.values())
    for _ in range(total + 1):  # each pass places at least one event, or breaks a wait
        progressed = False
        for h, seq in per_host.items():
            while heads[h] < len(seq):
                n = seq[heads[h]]
                if n.send is not None and not n.send.done:
                    break
                clock = dict(now[h])
                if n.send is not None:
                    for k, v in n.send.clock.items():
                        clock[k] = max(clock.get(k, 0), v)
                clock[h] = clock.get(h, 0) + 1
                n.clock, n.done = clock, True
                now[h] = clock
                ordered.append(n)
                heads[h] += 1
                progressed = True
        if len(ordered) == total:
            break
        if not progressed:
            # Receives waiting on each other (clocks that disagree with the timestamps): the
            # earliest one waits no longer and is drawn without its edge.
            waiting = min((seq[heads[h]] for h, seq in per_host.items() if heads[h] < len(seq)),
                          key=lambda n: n.key)
            waiting.send = None
            waiting.text += " (edge dropped: its send could not be ordered first)"
    return ordered


def render(chart: Chart) -> str:
    lines = [REGEX, ""]
    for n in clocks(chart):
        lines.append(f"{n.host} {json.dumps(n.clock, separators=(', ', ': '))}")
        lines.append(n.text.replace("\n", " "))
    return "\n".join(lines) + "\n"
