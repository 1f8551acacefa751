"""The live page's sequence chart, its explain-on-click and its plot (issue 15, "the chart").

What it owns: three routes added to the page's aiohttp application (`add_routes`), every one
behind the server's guard (origin, token, body size), with every query value checked (a bad one
is a 400 whose reason goes to the web log, and nothing is read):

- `GET /api/chart?rows=N&keepalive=0|1` the latest rows of the trace files under the data dir,
  as `paxos trace` draws them (runtime/tracechart: the same model, labels and column order), as
  JSON: columns, then rows (arrows with from, to, label and their lost/dropped/orphan/nack flags;
  marks: a record written, an fsync, a slot chosen, delivered, a crash, a (re)start, ...), each
  with the slots it is about. Read-only and bounded: only the last `TAIL_BYTES` of each file are
  read (from the end, with a plain read: never a lock an actor needs) and at most
  `LINES_PER_ROW * rows` lines of each parsed, so a saturated cluster's big files cost no more
  than an idle one's; the rows start where every file's tail reaches (older rows would miss
  the ends their messages have in a file read less far back). Computed at most every
  `CHART_MIN_INTERVAL_S`, whatever the number of tabs. Keep-alives (an Accept of no slot and its
  answer) are left out unless `keepalive=1`.
- `GET /api/explain/<slot>` what `paxos explain SLOT --json` prints (runtime/explain.py's
  `explain` and `to_json`), one at a time, in a thread, given `EXPLAIN_TIMEOUT_S`.
- `GET /api/plot` a bounded ring (`PLOT_WINDOW_S`) of commands a second (runtime/watch.py's
  `rates`: the learners' commands applied between two of the supervisor statuses the page's
  poller gathers, one sample a `SAMPLE_INTERVAL_S`) and the latency of the server's own probe:
  a linearizable `get` through runtime/client.py every `PROBE_INTERVAL_S`, never two in flight.
  Both are sampled only while a page watches (an event stream is open), as the server polls only
  then: a gap in the plot is a time nobody watched. The sampler starts with the first request
  of the plot.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from runtime import logs
from runtime.config import ClusterConfig
from runtime.tracechart import files, model
from runtime.watch import Sample, rates

if TYPE_CHECKING:
    from runtime.web.server import WebServer

ROWS_DEFAULT = 150
ROWS_MAX = 400
LINES_PER_ROW = 4  # lines parsed per file, per row drawn (room for the other ends of the messages)
TAIL_BYTES = 256 * 1024  # of each trace file, read from its end (its rotated .1 too when it is shorter)
SUPERVISOR_TAIL_BYTES = 64 * 1024  # of supervisor.jsonl, for the exits of actors killed from outside
CHART_MIN_INTERVAL_S = 0.25  # the chart is read at most this often, whatever asks for it
EXPLAIN_TIMEOUT_S = 10.0
SLOT_MAX = 1 << 62  # as `paxos explain` takes them
SAMPLE_INTERVAL_S = 1.0
PLOT_WINDOW_S = 300.0
PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 2.0
PROBE_KEY = "paxos-web-probe"  # read, never written: a get of a key that is not there is as good
P50_WINDOW_S = 60.0
LATENCY_SOURCE = (f"the web server's own linearizable get, every {PROBE_INTERVAL_S:g} s "
                  f"(p50 over the last {P50_WINDOW_S:g} s)")
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_KEEP_ALIVE_BYTES = model.KEEP_ALIVE.encode()


# --- the chart ----------------------------------------------------------------------------------


@dataclass
class Tail:
    """What the tails of the trace files hold, as the chart's model takes it."""

    events: list[model.TraceEvent] = field(default_factory=list)
    owners: set[str] = field(default_factory=set)  # the actors whose files were read
    cut_ts: float | None = None  # rows before this are not drawn: some file's tail starts here
    truncated: bool = False  # some file holds lines before those read
    warnings: list[str] = field(default_factory=list)


def tail_lines(path: Path, bytes_max: int) -> tuple[list[bytes], bool]:
    """The complete lines in the last `bytes_max` bytes of a file (the one at the cut, and a last
    one being written, are left out), and whether the file holds more before them. A file that
    is not there (rotated away between listing and opening) holds none."""
    try:
        with open(path, "rb") as f:  # read-only, no lock: the actor may be appending right now
            size = f.seek(0, 2)
            start = max(0, size - bytes_max)
            f.seek(start)
            data = f.read(bytes_max)
    except FileNotFoundError:
        return [], False
    lines = data.split(b"\n")
    lines.pop()  # b"" after the last newline, or a line still being written
    if start > 0 and lines:
        lines.pop(0)  # cut in the middle
    return lines, start > 0


def _file_lines(current: Path, bytes_max: int) -> tuple[list[bytes], bool]:
    """An actor's latest lines: its current file's tail, after the rotated file's when the
    current one is shorter than the budget."""
    lines, more = tail_lines(current, bytes_max)
    older = current.with_name(current.name + ".1")
    if not more and older.exists():
        try:
            left = bytes_max - current.stat().st_size
        except OSError:
            left = 0
        if left > 0:
            before, more = tail_lines(older, left)
            lines = before + lines
    return lines, more


def read_tail(data_dir: Path, roles: dict[str, str], lines_max: int, keepalive: bool,
              bytes_max: int = TAIL_BYTES) -> Tail:
    """The events of each trace file's last lines (at most `lines_max` of each, keep-alives left
    out before they are parsed unless `keepalive`), and the supervisor's exits. A line that does
    not parse, or an event in a file not its actor's, is left out and counted (a live chart
    draws what it can; `paxos trace` names the file, line and offset). files.NoTraces when there
    is no trace file."""
    logs_dir = data_dir / "logs"
    current = sorted(logs_dir.glob("*.trace")) if logs_dir.is_dir() else []
    if not current:
        raise files.NoTraces(f"no trace files in {logs_dir} yet (the actors write them as the cluster works)")
    out = Tail()
    bad = 0
    for path in current:
        owner = path.name.removesuffix(".trace")
        is_client = owner.startswith(files.CLIENT_PREFIX)
        if not is_client and owner not in roles:
            out.warnings.append(f"{path.name}: no actor {owner!r} in the config: not drawn")
            continue
        lines, more = _file_lines(path, bytes_max)
        kept: list[bytes] = []
        for line in reversed(lines):
            if len(kept) >= lines_max:
                more = True
                break
            if not line.strip() or (not keepalive and _KEEP_ALIVE_BYTES in line):
                continue
            kept.append(line)
        first_ts: float | None = None
        for line in reversed(kept):
            try:
                event = model.check(json.loads(line), len(out.events), f"{path.name}")
            except (ValueError, UnicodeDecodeError, model.TraceFormatError):
                bad += 1
                continue
            if not is_client and event.actor != owner:
                bad += 1
                continue
            first_ts = event.ts if first_ts is None else min(first_ts, event.ts)
            out.events.append(event)
        if not is_client:
            out.owners.add(owner)
        if more and first_ts is not None:
            out.truncated = True
            out.cut_ts = first_ts if out.cut_ts is None else max(out.cut_ts, first_ts)
    out.events.extend(supervisor_exits(logs_dir / "supervisor.jsonl", len(out.events)))
    if bad:
        out.warnings.append(f"{bad} line(s) that are not trace events left out (`paxos trace` names them)")
    if out.cut_ts is not None:
        cut = out.cut_ts
        out.events = [e for e in out.events if e.ts >= cut]
    return out


def supervisor_exits(path: Path, start_idx: int) -> list[model.TraceEvent]:
    """The exits the supervisor saw in its log's tail, as files.supervisor_exits reads them."""
    lines, _ = tail_lines(path, SUPERVISOR_TAIL_BYTES)
    out: list[model.TraceEvent] = []
    for line in lines:
        if not any(kind.encode() in line for kind in files.SUPERVISOR_EXITS):
            continue
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(obj, dict) or obj.get("event") not in files.SUPERVISOR_EXITS:
            continue
        ts, child = obj.get("ts"), obj.get("child")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not isinstance(child, str):
            continue
        how = str(obj.get("exit", "?")) + ("" if obj.get("action") != "restart" else ", restarting")
        raw = {"ts": float(ts), "a": child, "e": "exit", "lc": 0, "how": how}
        out.append(model.check(raw, start_idx + len(out), path.name))
    return out


def _slots(r: model.Row) -> list[int] | None:
    if isinstance(r, model.Arrow):
        e = r.send or r.recv
        s = e.slots if e is not None else None
    else:
        s = r.event.slots
    return [s[0], s[1]] if s is not None else None


def row_json(r: model.Row, t0: float) -> dict[str, Any]:
    """One row as the page draws it; `t_ms` since the first row shown."""
    t_ms = round((r.ts - t0) * 1000.0, 2)
    if isinstance(r, model.Arrow):
        return {"kind": "arrow", "t_ms": t_ms, "from": r.src, "to": r.dst, "label": r.text + r.lost_text,
                "lost": r.status == "lost", "dropped": r.dropped, "orphan": r.status == "orphan", "nack": r.nack,
                "slots": _slots(r)}
    return {"kind": "mark", "t_ms": t_ms, "actor": r.actor, "glyph": r.glyph, "text": r.text, "style": r.style,
            "slots": _slots(r)}


def chart_json(config: ClusterConfig, rows: int, keepalive: bool) -> dict[str, Any]:
    """The latest `rows` rows of the traces, or why there are none (`tracing`, `message`)."""
    started = time.perf_counter()
    base: dict[str, Any] = {"ok": True, "tracing": config.trace.enabled, "columns": [], "rows": [],
                            "message": "", "warnings": []}
    if not config.trace.enabled:
        base["message"] = f"tracing is off ([trace] enabled = false in {config.path.name}): no chart"
        return base
    roles = {name: spec.role for name, spec in config.actors.items()}
    try:
        tail = read_tail(config.data_dir, roles, rows * LINES_PER_ROW, keepalive)
    except files.NoTraces as exc:
        base["message"] = str(exc)
        return base
    chart = model.limit(model.build(tail.events, roles, traced=tail.owners), rows, keep="last")
    t0 = chart.t0
    base.update({
        "columns": chart.columns,
        "rows": [row_json(r, t0) for r in chart.rows],
        "t0": t0,
        "earlier": bool(chart.dropped_rows) or tail.truncated,  # rows before these exist
        "warnings": tail.warnings,
        "read_ms": round((time.perf_counter() - started) * 1000.0, 1),
    })
    if not chart.rows:
        base["message"] = "no trace events yet (an idle cluster traces nothing: put a key)"
    return base


# --- the plot -----------------------------------------------------------------------------------


Probe = Callable[[], Awaitable[float]]  # one probe read: its latency in ms (raises when it failed)


class Plot:
    """Two bounded rings: commands (and slots) a second, one point a sample; the probe's
    latency, one point a probe."""

    def __init__(self, window_s: float = PLOT_WINDOW_S, sample_interval_s: float = SAMPLE_INTERVAL_S,
                 probe_interval_s: float = PROBE_INTERVAL_S) -> None:
        self.window_s = window_s
        self.rate: deque[dict[str, Any]] = deque(maxlen=max(2, int(window_s / sample_interval_s)))
        self.latency: deque[dict[str, Any]] = deque(maxlen=max(2, int(window_s / probe_interval_s)))
        self._last: Sample | None = None

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

    def probed(self, t_wall_s: float, latency_ms: float | None) -> None:
        self.latency.append({"t": round(t_wall_s, 3), "ms": None if latency_ms is None else round(latency_ms, 2)})

    def p50_ms(self, now_wall_s: float, window_s: float = P50_WINDOW_S) -> float | None:
        recent = [p["ms"] for p in self.latency if p["ms"] is not None and p["t"] >= now_wall_s - window_s]
        return round(statistics.median(recent), 2) if recent else None

    def as_json(self, now_wall_s: float) -> dict[str, Any]:
        since = now_wall_s - self.window_s
        return {"now": round(now_wall_s, 3), "window_s": self.window_s,
                "rate": [p for p in self.rate if p["t"] >= since],
                "latency": [p for p in self.latency if p["t"] >= since],
                "latency_p50_ms": self.p50_ms(now_wall_s), "latency_source": LATENCY_SOURCE,
                "rate_source": "learners' commands applied between the supervisor's statuses (paxos status --watch)"}


class ClientProbe:
    """A linearizable get of PROBE_KEY through one kept client (made anew after a failure)."""

    def __init__(self, config: Callable[[], ClusterConfig]) -> None:
        self._config = config
        self._client: Any = None

    async def __call__(self) -> float:
        from runtime.client import Client

        if self._client is None:
            self._client = Client(self._config(), timeout_s=PROBE_TIMEOUT_S)
            await self._client.connect()
        started = time.perf_counter()
        try:
            await self._client.get(PROBE_KEY)
        except BaseException:
            await self.close()
            raise
        return (time.perf_counter() - started) * 1000.0

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class Sampler:
    """While a page watches: the poller's newest status into the plot every SAMPLE_INTERVAL_S,
    and a probe every PROBE_INTERVAL_S (one at a time) while the cluster runs."""

    def __init__(self, server: WebServer, plot: Plot, probe: Probe | None = None) -> None:
        self.server = server
        self.plot = plot
        self.probe = probe
        self._task: asyncio.Task[None] | None = None
        self._probing: asyncio.Task[None] | None = None
        self._probed_at = 0.0
        self._seen = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        for task in (self._task, self._probing):
            if task is not None:
                task.cancel()
                try:
                    await task
                except BaseException:  # cancelled, or a probe's failure: both end here
                    pass
        close = getattr(self.probe, "close", None)
        if close is not None:
            await close()

    async def _run(self) -> None:
        while True:
            self.tick(time.monotonic(), time.time())
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    def tick(self, now_mono_s: float, now_wall_s: float) -> None:
        samples = self.server._samples  # the poller's (monotonic time, status) pairs
        if not self.server.hub.watched.is_set() or not samples:
            self.plot.gap()
            return
        t_s, status = samples[-1]
        if t_s != self._seen:
            self._seen = t_s
            self.plot.observe(now_wall_s - (now_mono_s - t_s), Sample(t_s, status))
        if (self.probe is not None and (self._probing is None or self._probing.done())
                and now_mono_s - self._probed_at >= PROBE_INTERVAL_S):
            self._probed_at = now_mono_s
            self._probing = asyncio.ensure_future(self._probe_once(self.probe))

    async def _probe_once(self, probe: Probe) -> None:
        try:
            latency_ms: float | None = await asyncio.wait_for(probe(), PROBE_TIMEOUT_S * 2)
        except Exception:  # a failed read is a point without a value: the plot shows the gap
            latency_ms = None
        self.plot.probed(time.time(), latency_ms)


# --- the routes ---------------------------------------------------------------------------------


class ChartRoutes:
    def __init__(self, server: WebServer, probe: Probe | None) -> None:
        self.server = server
        self.plot = Plot()
        self.sampler = Sampler(server, self.plot, probe if probe is not None else ClientProbe(lambda: server.config))
        self._chart_lock = asyncio.Lock()
        self._chart_cache: dict[tuple[int, bool], tuple[float, bytes]] = {}
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
            if cached is None or time.monotonic() - cached[0] >= CHART_MIN_INTERVAL_S:
                data = await asyncio.to_thread(chart_json, self.server.config, *key)
                cached = (time.monotonic(), json.dumps(data, separators=(",", ":")).encode())
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
        self.sampler.start()
        return web.json_response(self.plot.as_json(time.time()))

    async def cleanup(self, app: web.Application) -> None:
        await self.sampler.stop()


CHART_ROUTES = web.AppKey("chart", ChartRoutes)


def add_routes(app: web.Application, server: WebServer, probe: Probe | None = None) -> ChartRoutes:
    """The chart's, the explain's and the plot's routes on the page's application (the server's
    guard checks them as every other); `probe` stands in for the client's probe read in tests."""
    routes = ChartRoutes(server, probe)
    app.router.add_get("/api/chart", routes.chart)
    app.router.add_get("/api/explain/{slot}", routes.explain)
    app.router.add_get("/api/plot", routes.plot_route)
    app.on_cleanup.append(routes.cleanup)
    app[CHART_ROUTES] = routes
    return routes
