"""The live page's sequence chart, its explain-on-click and its plot (issue 15, "the chart").

What it owns: three routes added to the page's aiohttp application (`add_routes`), every one
behind the server's guard (origin, token, body size), with every query value checked (a bad one
is a 400 whose reason goes to the web log, and nothing is read):

- `GET /api/chart?rows=N&keepalive=0|1` the latest rows of the trace files under the data dir,
  as `paxos trace` draws them (runtime/tracechart: the same model, labels and column order), as
  JSON: columns, then rows (arrows with from, to, label and their lost/dropped/orphan/inflight/nack flags;
  marks: a record written, an fsync, a slot chosen, delivered, a crash, a (re)start, ...), each
  with the slots it is about. Read-only and bounded: only the last `TAIL_BYTES` of each file are
  read (from the end, with a plain read: never a lock an actor needs) and of those only the
  newest `EVENTS_PER_ROW * rows` lines of all files parsed, so a saturated cluster's big files
  cost no more than an idle one's; the files are followed from one read to the next
  (runtime/web/follow.py: a read costs the lines appended since, a line is parsed once). The
  rows start where every file's tail reaches (older rows would miss the ends their messages
  have in a file read less far back). Computed at most every `CHART_MIN_INTERVAL_S` (longer when
  a read is slow), whatever the number of tabs. Keep-alives (an Accept of no slot and its
  answer) are left out unless `keepalive=1`.
- `GET /api/explain/<slot>` what `paxos explain SLOT --json` prints (runtime/explain.py's
  `explain` and `to_json`), one at a time, in a thread, given `EXPLAIN_TIMEOUT_S`.
- `GET /api/plot` two bounded rings (`PLOT_WINDOW_S`, one point a `SAMPLE_INTERVAL_S`): commands
  a second (runtime/watch.py's `rates`: the learners' commands applied between two of the
  supervisor statuses the page's poller gathers) and slot latency, from the traces' tails: the
  leader's assign of commands to a slot to the first learner's delivery of it, the p50 of the
  slots new since the point before (traces are sampled: the slots traced). No request of its own
  to the cluster. Both are sampled only while a page watches (an event stream is open), as the
  server polls only then: a gap in the plot is a time nobody watched; the traces are read for
  the latency only while a page shows the plot (asked for it in the last `PLOT_ASKED_S`; the
  page asks only while the plot is on screen). The sampler starts with the first request of
  the plot.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from runtime import logs
from runtime.config import ClusterConfig
from runtime.tracechart import files, model
from runtime.watch import Sample, rates
from runtime.web import follow

if TYPE_CHECKING:
    from runtime.web.server import WebServer

ROWS_DEFAULT = 150
ROWS_MAX = 400
EVENTS_PER_ROW = 3  # events parsed per row drawn: an arrow is two (its send and its receive), a mark one
TAIL_BYTES = 256 * 1024  # of each trace file, read from its end (its rotated .1 too when it is shorter)
SUPERVISOR_TAIL_BYTES = 64 * 1024  # of supervisor.jsonl, for the exits of actors killed from outside
CHART_MIN_INTERVAL_S = 1.0  # the chart is read at most this often, whatever asks for it
# ... and never more often than this many times its last read took: a chart of a saturated
# cluster's tails takes 35-45 ms to build there (its 450 lines are all new at every read: the
# traces grow by ~2,000 lines a second), and the web server shares the cluster's cores
# (`paxos bench --web`: reading it four times a second cost the cluster 5% of its throughput;
# once a second, 0.014 cores). An idle cluster's chart takes a few ms: read once a second.
CHART_BUSY_FACTOR = 40.0
LATENCY_INTERVAL_S = 2.0  # the traces are read for the slots' latencies at most this often (the page's plot every 2 s)
EXPLAIN_TIMEOUT_S = 10.0
SLOT_MAX = 1 << 62  # as `paxos explain` takes them
SAMPLE_INTERVAL_S = 1.0
PLOT_WINDOW_S = 300.0
PLOT_ASKED_S = 10.0  # the latency is read from the traces only while the plot was asked for this recently
LATENCY_EVENTS = 4000  # the latest assigns and deliveries of the traces' tails, for the slots' latencies
P50_WINDOW_S = 60.0
LATENCY_SOURCE = ("slot latency from the traces: the leader's assign of commands to a slot to the first "
                  "learner's delivery of it (sampled slots; a point is the p50 of the slots new since the last)")
RATE_SOURCE = "commands/s: the learners' commands applied between two supervisor statuses (as paxos status --watch)"
CLIENTS = "clients"  # the one column of every client session
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_KEEP_ALIVE_BYTES = model.KEEP_ALIVE.encode()
_SLOT_ENDS = re.compile(rb'"e":\s*"(?:assign|deliver)"')  # the only lines the slots' latencies need


# --- the chart ----------------------------------------------------------------------------------


@dataclass
class Tail:
    """What the tails of the trace files hold, as the chart's model takes it."""

    events: list[model.TraceEvent] = field(default_factory=list)
    owners: set[str] = field(default_factory=set)  # the actors whose files were read
    cut_ts: float | None = None  # rows before this are not drawn: some file's tail starts here
    truncated: bool = False  # some file holds lines before those read
    warnings: list[str] = field(default_factory=list)


def _stamp(line: bytes) -> float:
    """A line's `ts`, read unparsed where the writer laid it out so (0.0 when it has none: a
    bad line, counted when it is parsed)."""
    ts = files.quick_ts(line)
    if ts is not None:
        return ts
    try:  # laid out otherwise: parsed for its stamp
        raw = json.loads(line)
        return float(raw["ts"]) if isinstance(raw, dict) and isinstance(raw.get("ts"), (int, float)) else 0.0
    except (ValueError, UnicodeDecodeError):
        return 0.0


def _supervisor_exit(line: bytes, idx: int, where: str) -> model.TraceEvent | None:
    """An exit the supervisor logged, as files.supervisor_exits reads it, or None."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("event") not in files.SUPERVISOR_EXITS:
        return None
    ts, child = obj.get("ts"), obj.get("child")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not isinstance(child, str):
        return None
    how = str(obj.get("exit", "?")) + ("" if obj.get("action") != "restart" else ", restarting")
    return model.check({"ts": float(ts), "a": child, "e": "exit", "lc": 0, "how": how}, idx, where)


_EXIT_BYTES = tuple(kind.encode() for kind in files.SUPERVISOR_EXITS)


class TailReader:
    """The latest `events_max` events of the trace files, by their stamps, and the supervisor's
    exits since, read again and again: each file is followed (runtime/web/follow.py), so a read
    costs the lines appended since the one before, and a line is parsed once. Keep-alives are
    left out unless `keepalive`, and with `only` the lines it does not match. One read at a time."""

    def __init__(self, events_max: int, keepalive: bool, only: re.Pattern[bytes] | None = None) -> None:
        self.events_max = events_max

        def keep(line: bytes) -> bool:
            return bool(line.strip()) and (keepalive or _KEEP_ALIVE_BYTES not in line) and (
                only is None or only.search(line) is not None)

        self.traces = follow.Follower(events_max, keep, _stamp)
        self.exits = follow.Follower(events_max, lambda line: any(k in line for k in _EXIT_BYTES), _stamp)

    def read(self, data_dir: Path, roles: dict[str, str], bytes_max: int | None = None) -> Tail:
        """Each file's last `bytes_max` bytes (default TAIL_BYTES) at most; of the lines kept,
        only the newest `events_max` of all files are parsed (their stamps read unparsed), so the
        work is bounded by what is drawn, not by the files. The events start at one moment for
        every file: no earlier than the oldest line of a file's tail, when that file holds more
        before it (so a message whose one end lies in a file read less far back is not drawn
        half). A line that does not parse, or an event in a file not its actor's, is left out and
        counted (a live chart draws what it can; `paxos trace` names the file, line and offset).
        files.NoTraces when there is no trace file."""
        bytes_max = TAIL_BYTES if bytes_max is None else bytes_max
        logs_dir = data_dir / "logs"
        current = sorted(logs_dir.glob("*.trace")) if logs_dir.is_dir() else []
        if not current:
            raise files.NoTraces(f"no trace files in {logs_dir} yet (the actors write them as the cluster works)")
        self.traces.forget_all_but(set(current))
        out = Tail()
        bad = 0
        candidates: list[tuple[float, int, str, follow.Line]] = []  # (ts, idx, owner, line)
        for path in current:
            owner = path.name.removesuffix(".trace")
            is_client = owner.startswith(files.CLIENT_PREFIX)
            if not is_client and owner not in roles:
                out.warnings.append(f"{path.name}: no actor {owner!r} in the config: not drawn")
                continue
            if not is_client:
                out.owners.add(owner)
            lines, more = self.traces.lines(path, bytes_max, path.with_name(path.name + ".1"))
            if more and lines:
                oldest = min(line.ts for line in lines)
                out.truncated = True
                out.cut_ts = oldest if out.cut_ts is None else max(out.cut_ts, oldest)
            candidates.extend((line.ts, line.idx, owner, line) for line in lines)
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        if len(candidates) > self.events_max:
            out.truncated = True
            newest_left_out = candidates[self.events_max][0]
            out.cut_ts = newest_left_out if out.cut_ts is None else max(out.cut_ts, newest_left_out)
            del candidates[self.events_max:]
        for ts, _, owner, line in reversed(candidates):
            if out.cut_ts is not None and ts <= out.cut_ts and ts != 0.0:
                continue
            event = self.traces.parsed(line, functools.partial(_trace_event, owner=owner))
            if event is None:
                bad += 1
                continue
            out.events.append(event)
        since = out.cut_ts
        supervisor = logs_dir / "supervisor.jsonl"
        exits, _ = self.exits.lines(supervisor, SUPERVISOR_TAIL_BYTES)
        for line in exits:
            event = self.exits.parsed(line, lambda raw, idx: _supervisor_exit(raw, idx, supervisor.name))
            if event is not None and (since is None or event.ts > since):
                out.events.append(event)
        if bad:
            out.warnings.append(f"{bad} line(s) that are not trace events left out (`paxos trace` names them)")
        return out


def _trace_event(raw: bytes, idx: int, owner: str) -> model.TraceEvent | None:
    """A trace line checked, or None: not an event, or an actor's event in another's file."""
    try:
        event = model.check(json.loads(raw), idx, f"{owner}.trace")
    except (ValueError, UnicodeDecodeError, model.TraceFormatError):
        return None
    if not owner.startswith(files.CLIENT_PREFIX) and event.actor != owner:
        return None
    return event


def _slots(r: model.Row) -> list[int] | None:
    if isinstance(r, model.Arrow):
        e = r.send or r.recv
        s = e.slots if e is not None else None
    else:
        s = r.event.slots
    return [s[0], s[1]] if s is not None else None


def column_of(name: str, roles: dict[str, str]) -> str:
    """The page's column for a participant: an actor's own; every client session shares one,
    CLIENTS (each `paxos put` and each put of the page's box is a session of its own: a column
    each would push the actors off the page). Their ids stay in the labels' ops."""
    return CLIENTS if model.role_of(name, roles) == "client" else name


def row_json(r: model.Row, t0: float, roles: dict[str, str]) -> dict[str, Any]:
    """One row as the page draws it; `t_ms` since the first row shown."""
    t_ms = round((r.ts - t0) * 1000.0, 2)
    if isinstance(r, model.Arrow):
        return {"kind": "arrow", "t_ms": t_ms, "from": column_of(r.src, roles), "to": column_of(r.dst, roles),
                "label": r.text + r.lost_text, "lost": r.status == "lost", "dropped": r.dropped,
                "orphan": r.status == "orphan", "inflight": r.status == model.IN_FLIGHT, "nack": r.nack,
                "slots": _slots(r)}
    return {"kind": "mark", "t_ms": t_ms, "actor": column_of(r.actor, roles), "glyph": r.glyph, "text": r.text,
            "style": r.style, "slots": _slots(r)}


def chart_json(config: ClusterConfig, rows: int, keepalive: bool, reader: TailReader | None = None) -> dict[str, Any]:
    """The latest `rows` rows of the traces, or why there are none (`tracing`, `message`); with
    `reader` (made for `rows * EVENTS_PER_ROW` events and this `keepalive`) the files are
    followed from the last read."""
    started = time.perf_counter()
    base: dict[str, Any] = {"ok": True, "tracing": config.trace.enabled, "columns": [], "rows": [],
                            "message": "", "warnings": []}
    if not config.trace.enabled:
        base["message"] = f"tracing is off ([trace] enabled = false in {config.path.name}): no chart"
        return base
    roles = {name: spec.role for name, spec in config.actors.items()}
    try:
        if reader is None:
            reader = TailReader(rows * EVENTS_PER_ROW, keepalive)
        tail = reader.read(config.data_dir, roles)
    except files.NoTraces as exc:
        base["message"] = str(exc)
        return base
    # Built with every participant's own name (sends join receives by sender), drawn with the
    # client sessions in one column.
    chart = model.limit(model.build(tail.events, roles, traced=tail.owners), rows, keep="last")
    t0 = chart.t0
    columns: list[str] = []
    for name in chart.columns:
        if column_of(name, roles) not in columns:
            columns.append(column_of(name, roles))
    base.update({
        "columns": columns,
        "rows": [row_json(r, t0, roles) for r in chart.rows],
        "t0": t0,
        "earlier": bool(chart.dropped_rows) or tail.truncated,  # rows before these exist
        "warnings": tail.warnings,
        "read_ms": round((time.perf_counter() - started) * 1000.0, 1),
    })
    if not chart.rows:
        base["message"] = "no trace events yet (an idle cluster traces nothing: put a key)"
    return base


# --- the plot -----------------------------------------------------------------------------------


def slot_latencies_ms(events: list[model.TraceEvent]) -> dict[int, float]:
    """Per slot both ends of which the events hold: from the leader's assign of commands to it
    to its first delivery by a learner, in ms (the time a command waits, sans the client's
    network and the reply). Traces are sampled: the slots whose ends were traced."""
    assigned: dict[int, float] = {}
    delivered: dict[int, float] = {}
    for e in events:
        if e.kind not in ("assign", "deliver") or e.slots is None or e.slots[0] != e.slots[1]:
            continue
        ends = assigned if e.kind == "assign" else delivered
        slot = e.slots[0]
        ends[slot] = min(ends.get(slot, e.ts), e.ts)
    return {s: (delivered[s] - t) * 1000.0 for s, t in assigned.items() if s in delivered and delivered[s] >= t}


class Plot:
    """Two bounded rings: commands (and slots) a second, one point a sample; the slots' latency,
    one point a sample that saw new slots (their p50, and how many)."""

    def __init__(self, window_s: float = PLOT_WINDOW_S, sample_interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.window_s = window_s
        n = max(2, int(window_s / sample_interval_s))
        self.rate: deque[dict[str, Any]] = deque(maxlen=n)
        self.latency: deque[dict[str, Any]] = deque(maxlen=n)
        self._last: Sample | None = None
        self._latest_slot = 0  # the highest slot whose latency is plotted: each slot counts once

    def gap(self) -> None:
        """Nobody watched (or the cluster did not answer): the next rate does not span the gap."""
        self._last = None

    def observe(self, t_wall_s: float, sample: Sample) -> None:
        """A supervisor's status (`sample.t_s` monotonic) at `t_wall_s`: a point of the rate, from
        the change since the one before."""
        last, self._last = self._last, sample
        if last is None or sample.status is None or sample.t_s <= last.t_s:
            return
        slots_per_s, commands_per_s = rates([last, sample])
        if commands_per_s is None:
            return
        self.rate.append({"t": round(t_wall_s, 3), "commands_per_s": round(commands_per_s, 1),
                          "slots_per_s": round(slots_per_s, 1) if slots_per_s is not None else None})

    def latencies(self, t_wall_s: float, by_slot: dict[int, float]) -> None:
        """The slots' latencies the traces hold now: a point of those not plotted yet."""
        new = [ms for s, ms in by_slot.items() if s > self._latest_slot]
        if by_slot:
            self._latest_slot = max(self._latest_slot, *by_slot)
        if new:
            self.latency.append({"t": round(t_wall_s, 3), "ms": round(statistics.median(new), 2), "slots": len(new)})

    def p50_ms(self, now_wall_s: float, window_s: float = P50_WINDOW_S) -> float | None:
        """The median of the points of the last `window_s` (each the p50 of its slots)."""
        recent = [p["ms"] for p in self.latency if p["t"] >= now_wall_s - window_s]
        return round(statistics.median(recent), 2) if recent else None

    def as_json(self, now_wall_s: float, tracing: bool = True) -> dict[str, Any]:
        since = now_wall_s - self.window_s
        return {"now": round(now_wall_s, 3), "window_s": self.window_s,
                "rate": [p for p in self.rate if p["t"] >= since],
                "latency": [p for p in self.latency if p["t"] >= since],
                "latency_p50_ms": self.p50_ms(now_wall_s),
                "latency_source": LATENCY_SOURCE if tracing else "tracing is off: no latency ([trace] enabled)",
                "rate_source": RATE_SOURCE}


class Sampler:
    """While a page watches, every SAMPLE_INTERVAL_S: the poller's newest status into the plot's
    rate, and the slots' latencies from the traces' tails (read in a thread, never two at once)."""

    def __init__(self, server: WebServer, plot: Plot) -> None:
        self.server = server
        self.plot = plot
        self._task: asyncio.Task[None] | None = None
        self._seen = 0.0
        self.asked_at_s = -PLOT_ASKED_S  # monotonic: when a page last asked for the plot
        self._latency_at_s = -LATENCY_INTERVAL_S  # monotonic: when the traces were last read for it
        self._reader = TailReader(LATENCY_EVENTS, keepalive=False, only=_SLOT_ENDS)  # followed between reads

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await self.tick(time.monotonic(), time.time())
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    async def tick(self, now_mono_s: float, now_wall_s: float) -> None:
        samples = self.server._samples  # the poller's (monotonic time, status) pairs
        if not self.server.hub.watched.is_set() or not samples:
            self.plot.gap()
            return
        t_s, status = samples[-1]
        if t_s != self._seen:
            self._seen = t_s
            self.plot.observe(now_wall_s - (now_mono_s - t_s), Sample(t_s, status))
        config = self.server.config
        if status is None or not config.trace.enabled or now_mono_s - self.asked_at_s > PLOT_ASKED_S:
            return  # the traces are read only while a page shows the plot
        if now_mono_s - self._latency_at_s < LATENCY_INTERVAL_S:
            return
        self._latency_at_s = now_mono_s
        try:
            by_slot = await asyncio.to_thread(self._latencies, config, self._reader)
        except (files.NoTraces, OSError):
            return
        self.plot.latencies(time.time(), by_slot)

    @staticmethod
    def _latencies(config: ClusterConfig, reader: TailReader) -> dict[int, float]:
        roles = {name: spec.role for name, spec in config.actors.items()}
        return slot_latencies_ms(reader.read(config.data_dir, roles).events)


# --- the routes ---------------------------------------------------------------------------------


class ChartRoutes:
    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.plot = Plot()
        self.sampler = Sampler(server, self.plot)
        self._chart_lock = asyncio.Lock()
        self._chart_cache: dict[tuple[int, bool], tuple[float, bytes]] = {}
        self._chart_gap_s = CHART_MIN_INTERVAL_S  # until the next read: longer after a slow one
        self._readers: dict[tuple[int, bool], TailReader] = {}  # the files followed, per shape asked
        self._explain_lock = asyncio.Lock()

    async def chart(self, request: web.Request) -> web.Response:
        rows_text = request.query.get("rows", str(ROWS_DEFAULT))
        if not _DIGITS.match(rows_text) or not 1 <= int(rows_text) <= ROWS_MAX:
            return self.server._refuse(request, 400, f"rows must be 1 to {ROWS_MAX}, not {rows_text[:20]!r}")
        keep_text = request.query.get("keepalive", "0")
        if keep_text not in ("0", "1"):
            return self.server._refuse(request, 400, f"keepalive must be 0 or 1, not {keep_text[:20]!r}")
        key = (int(rows_text), keep_text == "1")
        async with self._chart_lock:  # one reader at a time; the others take its answer
            cached = self._chart_cache.get(key)
            if cached is None or time.monotonic() - cached[0] >= self._chart_gap_s:
                started = time.monotonic()
                reader = self._readers.get(key) or TailReader(key[0] * EVENTS_PER_ROW, key[1])
                self._readers = {key: reader}  # the page asks one shape: follow only for it
                data = await asyncio.to_thread(chart_json, self.server.config, *key, reader)
                cached = (time.monotonic(), json.dumps(data, separators=(",", ":")).encode())
                self._chart_gap_s = max(CHART_MIN_INTERVAL_S, CHART_BUSY_FACTOR * (cached[0] - started))
                self._chart_cache = {key: cached}  # the page asks one shape: keep only the latest
        return web.Response(body=cached[1], content_type="application/json")

    async def explain(self, request: web.Request) -> web.Response:
        text = request.match_info["slot"]
        if not _DIGITS.match(text) or not 1 <= int(text) <= SLOT_MAX:
            return self.server._refuse(request, 400, f"a slot is a number from 1 to {SLOT_MAX}, not {text[:30]!r}")
        from runtime.explain import explain, to_json

        slot = int(text)
        async with self._explain_lock:  # it reads every wal whole: one at a time
            try:
                e = await asyncio.wait_for(asyncio.to_thread(explain, self.server.config, slot), EXPLAIN_TIMEOUT_S)
            except TimeoutError:
                return web.json_response({"ok": False, "error": f"explain {slot} took over {EXPLAIN_TIMEOUT_S:g} s"},
                                         status=504)
            except Exception as exc:  # an unforeseen file state: said, not a stack trace on the page
                self.server.logger.warning("web_explain_failed", slot=slot, error=str(exc)[:300])
                logs.flush()
                return web.json_response({"ok": False, "error": f"explain {slot} failed: {str(exc)[:300]}"},
                                         status=500)
        return web.Response(text=to_json(e), content_type="application/json")

    async def plot_route(self, request: web.Request) -> web.Response:
        self.sampler.asked_at_s = time.monotonic()
        self.sampler.start()
        return web.json_response(self.plot.as_json(time.time(), self.server.config.trace.enabled))

    async def cleanup(self, app: web.Application) -> None:
        await self.sampler.stop()


CHART_ROUTES = web.AppKey("chart", ChartRoutes)


def add_routes(app: web.Application, server: WebServer) -> ChartRoutes:
    """The chart's, the explain's and the plot's routes on the page's application (the server's
    guard checks them as every other)."""
    routes = ChartRoutes(server)
    app.router.add_get("/api/chart", routes.chart)
    app.router.add_get("/api/explain/{slot}", routes.explain)
    app.router.add_get("/api/plot", routes.plot_route)
    app.on_cleanup.append(routes.cleanup)
    app[CHART_ROUTES] = routes
    return routes
