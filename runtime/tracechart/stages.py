"""One request's stages as a table, for `paxos trace --op CLIENT:SEQ`: every stage of
runtime/tracefiles.py's STAGES in order (the acceptor's, ACCEPTOR_STAGES, once per acceptor:
"a1 persist"), each with its duration in ms and the processes it spans, or "not traced" and why
(the client does not trace, the sender did not sample that frame, ...), then the total.

The path and the durations are tracefiles' (`Traces.follow`, `OpPath.stages`): this module only
lays them out and says what is missing. Pure: no files, no terminal; the command prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.tracefiles import ACCEPTOR_STAGES, STAGES, Event, OpPath, Traces

ARROW = " → "


@dataclass(frozen=True)
class Row:
    """One stage: `key` as tracefiles names it ("a1.persist"), `ms` None when not traced (then
    `why` says what is missing). `partial`: the total of a path whose two ends (the client's) are
    not traced: the traced part only, from `why`'s first event to its last."""

    key: str
    spans: tuple[str, ...]
    ms: float | None
    why: str = ""
    partial: bool = False

    @property
    def name(self) -> str:
        return self.key.replace(".", " ")


@dataclass(frozen=True)
class Table:
    op: str
    slot: int
    leader: str
    learner: str  # "" when no learner's reply was traced
    rows: tuple[Row, ...]


def follow(events: Iterable[Mapping[str, Any]], op: str) -> OpPath | None:
    """`op`'s path through the events (dicts in the trace schema), by tracefiles' own join."""
    return Traces(dict(e) for e in events).follow(op)


def table(path: OpPath, acceptors: Iterable[str], traced: set[str], clients_trace: bool) -> Table:
    """The rows of `path`. `acceptors`: every acceptor to give a row (those of the config, in
    the order to show them); `traced`: the actors that write trace files; `clients_trace`:
    whether any client trace file exists (the reason a client's end is missing)."""
    got = {s.name: s.ms for s in path.stages()}
    # "client", not its session id: the title names the op, and the id is as wide as the rest.
    client, leader, slot = "client", path.leader, path.slot
    learner = path.learner or "learner"
    shown = list(acceptors)
    names = shown + sorted(a for a in path.accepts if a not in shown)
    voted = [a for a in names if a in path.accepts]
    why = _Reasons(path, traced, clients_trace)
    rows: list[Row] = []

    def add(key: str, spans: tuple[str, ...], reason: str) -> None:
        ms = got.get(key)
        rows.append(Row(key, spans, ms, "" if ms is not None else reason or "not in the traces"))

    for stage in STAGES:
        if stage == "client_to_leader":
            add(stage, (client, leader), why.client_send() or why.leader_recv())
        elif stage == "leader_queue":
            add(stage, (leader,), why.leader_recv())
        elif stage == "accept_sent":
            add(stage, (leader,), why.accepts())
        elif stage == ACCEPTOR_STAGES[0]:
            for a in names:  # the acceptor's stages together, one acceptor after the other
                add(f"{a}.net_to_acceptor", (leader, a), why.acceptor(a))
                add(f"{a}.persist", (a,), why.acceptor(a) or why.fsync(a))
                add(f"{a}.fsync", (a,), why.acceptor(a) or why.fsync(a))
                add(f"{a}.net_to_learner", (a, learner), why.acceptor(a) or why.to_learner(a))
        elif stage in ACCEPTOR_STAGES:
            continue
        elif stage == "learner_queue":
            add(stage, (learner,), why.reply() or why.decide() or why.majority())
        elif stage == "quorum":
            add(stage, (leader, ",".join(voted) or "acceptors", learner), why.accepts() or why.reply() or why.decide())
        elif stage == "learner_apply":
            add(stage, (learner,), why.reply() or why.decide() or why.deliver())
        elif stage == "reply":
            add(stage, (learner,), why.reply() or why.deliver())
        elif stage == "reply_to_client":
            add(stage, (learner, client), why.reply() or why.reply_send() or why.client_recv())
        elif stage == "total":
            spans = (client, leader, ",".join(voted) or "acceptors", learner, client)
            if "total" in got:
                add(stage, spans, "")
            else:
                short = "the client does not trace" if not clients_trace else why.client_send() or why.client_recv()
                rows.append(_partial(path, spans, short))
    return Table(path.op, slot, leader, path.learner, tuple(rows))


def _partial(path: OpPath, spans: tuple[str, ...], missing: str) -> Row:
    """The total when the client's ends are missing: from the first event of the path traced to
    the last, said so."""
    firsts = [("the Submit's arrival at " + path.leader, path.leader_recv), (path.leader + "'s assign", path.assign)]
    lasts = [(f"{path.learner}'s Reply send", path.reply_send), (f"{path.learner}'s reply", path.reply),
             (f"{path.learner}'s delivery", path.deliver), (f"{path.learner}'s decision", path.decide)]
    start = next(((what, e) for what, e in firsts if e is not None), None)
    end = next(((what, e) for what, e in lasts if e is not None), None)
    if start is None or end is None:
        return Row("total", spans, None, missing)
    ms = (end[1]["ts"] - start[1]["ts"]) * 1000
    return Row("total", spans[1:-1], ms, f"only from {start[0]} to {end[0]} ({missing})", partial=True)


class _Reasons:
    """Why an end of a stage is missing, event by event ("" when it is there)."""

    def __init__(self, path: OpPath, traced: set[str], clients_trace: bool) -> None:
        self.path, self.traced, self.clients_trace = path, traced, clients_trace

    def _client(self) -> str:
        return "" if self.clients_trace else "the client does not trace (it does with [trace] clients = true)"

    def client_send(self) -> str:
        if self.path.client_send is not None:
            return ""
        if self.path.leader_recv is not None:  # sampled (the leader traced it), yet not in the client's file
            return self._client() or "the client's trace lacks its Submit (it ended before writing it?)"
        return self._client() or "the client did not sample that frame"

    def leader_recv(self) -> str:
        if self.path.leader_recv is not None:
            return ""
        # A receive is traced only when its sender sampled the frame.
        if not self.clients_trace:
            return f"{self.path.leader} traced no Submit's arrival: the client does not trace, so samples no frame"
        return "the client did not sample that frame"

    def accepts(self) -> str:
        if self.path.accepts:
            return ""
        return f"no Accept of slot {self.path.slot} by {self.path.leader} to an acceptor that wrote it is traced"

    def acceptor(self, a: str) -> str:
        """Why `a`'s Accept, its receive or its record is missing ("" when `a` voted, as traced)."""
        p = self.path
        if a in p.accepts:
            return ""
        if a not in self.traced:
            return f"{a} does not trace (no trace file)"
        last: Event | None = p.unvoted.get(a)
        if last is None:
            return f"{p.leader} did not sample its Accept to {a} (or sent it none)"
        if last["e"] == "send":
            return f"{a} did not receive the Accept (down, or the frame was lost)"
        return f"{a} received the Accept but wrote no record of it (it refused it?)"

    def fsync(self, a: str) -> str:
        return "" if a in self.path.fsync else f"{a}'s fsync of the record is not in the traces"

    def reply(self) -> str:
        return "" if self.path.reply is not None else "no learner's reply to the client is traced (which learner " \
                                                      "answered is not known)"

    def to_learner(self, a: str) -> str:
        if self.reply():
            return self.reply()
        learner = self.path.learner
        if a not in self.path.accepted:
            return f"{a}'s Accepted to {learner} is not traced ({a} did not sample that frame)"
        if a not in self.path.learner_recv:
            return f"its arrival at {learner} is not traced ({learner} down, or the frame was lost)"
        return ""

    def decide(self) -> str:
        return "" if self.path.decide is not None else f"{self.path.learner}'s decision is not traced"

    def majority(self) -> str:
        return f"fewer than a majority of the Accepteds' arrivals at {self.path.learner} are traced"

    def deliver(self) -> str:
        return "" if self.path.deliver is not None else f"{self.path.learner}'s delivery is not traced"

    def reply_send(self) -> str:
        if self.path.reply_send is not None:
            return ""
        return f"{self.path.learner}'s Reply is not traced ({self.path.learner} did not sample that frame)"

    def client_recv(self) -> str:
        if self.path.client_recv is not None:
            return ""
        return self._client() or "the client's trace lacks the Reply's arrival"


# --- output ------------------------------------------------------------------------------


def title(t: Table) -> str:
    learner = f", answered by {t.learner}" if t.learner else ""
    return f"where the time went: {t.op}, slot {t.slot}, led by {t.leader}{learner}"


def _ms(r: Row) -> str:
    return "-" if r.ms is None else f"{r.ms:.3f}"


def _note(r: Row) -> str:
    if r.ms is None:
        return f"not traced: {r.why}"
    return r.why  # a partial total says which part it is


def plain(t: Table) -> list[str]:
    """The table as plain text, columns aligned with spaces (stdout a file or a pipe)."""
    head = ("stage", "ms", "spans", "note")
    body = [(r.name, _ms(r), ARROW.join(r.spans), _note(r)) for r in t.rows]
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(3)]
    out = [title(t)]
    for cells in (head, *body):
        line = f"{cells[0]:<{widths[0]}}  {cells[1]:>{widths[1]}}  {cells[2]:<{widths[2]}}  {cells[3]}"
        out.append(line.rstrip())
    return out


def rich_table(t: Table) -> Any:
    """The table for a terminal (a rich Table, like `paxos bench --breakdown`'s)."""
    from rich.table import Table as RichTable
    from rich.text import Text

    table = RichTable(title=title(t))
    table.add_column("stage")
    table.add_column("ms", justify="right")
    table.add_column("spans")
    table.add_column("note")
    for r in t.rows:
        style = "bold" if r.key == "total" else ""
        ms = Text(_ms(r), style="dim" if r.ms is None else style)
        table.add_row(Text(r.name, style=style), ms, ARROW.join(r.spans),
                      Text(_note(r), style="yellow" if r.ms is None else "dim"))
    return table


def as_json(t: Table) -> dict[str, Any]:
    """The stages as one JSON object: {"op", "slot", "leader", "learner", "stages": {key: {"ms",
    "spans", and "not_traced" (the reason) or "partial": true}}}, in the table's order."""
    stages: dict[str, Any] = {}
    for r in t.rows:
        entry: dict[str, Any] = {"ms": None if r.ms is None else round(r.ms, 4), "spans": list(r.spans)}
        if r.ms is None:
            entry["not_traced"] = r.why
        elif r.partial:
            entry["partial"] = True
            entry["note"] = r.why
        stages[r.key] = entry
    return {"op": t.op, "slot": t.slot, "leader": t.leader, "learner": t.learner or None, "stages": stages}
