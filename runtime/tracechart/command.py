"""`paxos trace`: the command's options and what it does with them (runtime/cli.py only adds
the subcommand and calls `add_arguments` and `run`). With --op, after the chart, the op's stages
(runtime/tracechart/stages.py, from runtime/tracefiles.py's follow of the same events): a rich
table on a terminal, plain text into a file or a pipe, also after --svg's line, not with
--format shiviz (its stdout is the log); --json prints only them, as one JSON object.

Exit codes: 0 a chart was drawn; 1 the selection found nothing (the message says why: a slot
beyond the log, older than the traces or compacted away, an op no event carries, a time window
the traces miss), or --json found no leader's assign of the op to time; 64 a bad option; 65 a
trace file that is corrupt or not this cluster's (the message names the file, the line and its
byte offset); 66 no trace files at all; 73 the output file cannot be written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.tracechart import files, model, stages
from runtime.tracechart.select import Selection, explain_empty, parse_op, parse_slots, select

EXIT_EMPTY = 1
EXIT_DATA = 65
EXIT_NO_INPUT = 66
EXIT_CANT_CREATE = 73
LIMIT_DEFAULT = 300
LIMIT_MAX = 100_000
TAIL_FACTOR = 4  # no selection: lines read per file, per row drawn
WIDTH_PIPE = 160  # stdout is a file or a pipe: wide enough for most labels to sit on their arrows
_AGO = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_AGO_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?$")

DESCRIPTION = """\
Draw a message sequence chart from the trace files (<data_dir>/logs/*.trace): one column per
actor, one arrow per message with its label (Prepare b=3.1, Promise, Accept b=3.1 s=812,
Accepted, Nack promised=4.2; Accept b=3.1 keep-alive: the leader's Accept of no slot), the
records written and fsynced, crashes and restarts, and the moment a slot is chosen and
delivered. Works on a running cluster (it reads without locks and never writes) and on the
files of a stopped one.

Select with --slot N or N..M (the messages and records about those slots), --op CLIENT:SEQ
(one client command end to end: its Submit, the slot it went into, the votes, the delivery and
the reply), --since/--until (a time window). Without a selection it shows the latest rows.
At most --limit rows are drawn. Output: the terminal (colored, paged when long), --svg FILE,
or --format shiviz (a log ShiViz opens, with vector clocks derived from the joined messages).

With --op, the chart is followed by where that request's time went: each stage in order
(client_to_leader, leader_queue, accept_sent; per acceptor net_to_acceptor, persist, fsync,
net_to_learner; learner_queue, quorum, learner_apply, reply, reply_to_client), its ms and the
processes it spans, then the total; a stage whose ends the traces lack says "not traced" and
why (the client does not trace, the sender did not sample that frame, an acceptor refused the
Accept, ...). The same stages as `paxos bench --breakdown` times over many requests. The table
is plain text when stdout is not a terminal, printed after --svg's line too, not with --format
shiviz. --json (with --op) prints only the stages, as one JSON object.

Exit codes: 0 drawn; 1 nothing selected (says why: beyond the log, older than the traces,
compacted away; with --json: no leader's assign of the op traced); 64 a bad option; 65 a
corrupt trace file or one of another cluster (names the file, line and byte offset); 66 no
trace files; 73 cannot write the output file."""

EXAMPLES = """\
paxos trace --slot 1..3
paxos trace --op c1a2b3:7
paxos trace --op c1a2b3:7 --json
paxos trace --since 30s --limit 100
paxos trace --since 17:05:00 --until 17:05:02 --svg run.svg
paxos trace --slot 40 --format shiviz > slot40.log
paxos trace --data-dir /backup/data --slot 12"""


def when(text_: str, now: float | None = None) -> float:
    """An argparse type for --since/--until: `30s`/`5m`/`2h` ago, `HH:MM[:SS]` today (local
    time), an ISO date-time (`2026-12-02T17:05:00`, local unless it says its zone) or epoch
    seconds."""
    now = time.time() if now is None else now
    s = text_.strip()
    m = _AGO.match(s)
    if m:
        return now - float(m.group(1)) * _AGO_S[m.group(2)]
    m = _CLOCK.match(s)
    if m:
        h, mi, sec = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if h > 23 or mi > 59 or sec > 59:
            raise argparse.ArgumentTypeError(f"{text_!r} is not a time of day")
        today = dt.datetime.fromtimestamp(now).replace(hour=h, minute=mi, second=sec, microsecond=0)
        return today.timestamp() + float(m.group(4) or 0)
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if value >= 1e9 and value < 1e11:
            return value
        raise argparse.ArgumentTypeError(f"{text_!r}: epoch seconds look like 1764694000 (or say 30s for 30 "
                                         f"seconds ago)")
    try:
        return dt.datetime.fromisoformat(s).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text_!r} is not a time: say 30s, 5m or 2h (ago), 17:05:00 (today), "
            f"2026-12-02T17:05:00 or epoch seconds") from None


def _typed(parse: Any) -> Any:
    def check(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    check.__name__ = parse.__name__
    return check


def _limit(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of rows") from None
    if not 1 <= n <= LIMIT_MAX:
        raise argparse.ArgumentTypeError(f"must be 1 to {LIMIT_MAX} rows, not {n}")
    return n


def _width(value: str) -> int:
    if not value.strip().isdigit():
        raise ValueError(f"{value!r} is not a number of columns")
    n = int(value)
    if not 40 <= n <= 10_000:
        raise ValueError(f"must be 40 to 10000 columns, not {n}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slot", type=_typed(parse_slots), metavar="N[..M]", help="the slot or slots to follow")
    p.add_argument("--op", type=_typed(parse_op), metavar="CLIENT:SEQ",
                   help="one client command, end to end, then its stages")
    p.add_argument("--since", type=when, metavar="T", help="from this time: 30s (ago), 17:05:00, an ISO time")
    p.add_argument("--until", type=when, metavar="T", help="up to this time (same forms as --since)")
    p.add_argument("--limit", type=_limit, default=LIMIT_DEFAULT, metavar="N",
                   help="draw at most N rows (default: %(default)s)")
    p.add_argument("--svg", metavar="FILE", help="write the chart as SVG to FILE instead of the terminal")
    p.add_argument("--format", choices=["text", "shiviz"], default="text",
                   help="text (the terminal chart) or shiviz (a log for ShiViz, on stdout) (default: %(default)s)")
    p.add_argument("--no-times", action="store_true", help="leave out the left column of milliseconds")
    p.add_argument("--width", type=_typed(_width), default=None, metavar="COLUMNS",
                   help="fit the chart to this many columns (default: the terminal's, 160 when not a terminal)")
    p.add_argument("--no-pager", action="store_true", help="print even a long chart straight to the terminal")
    p.add_argument("--json", action="store_true",
                   help="with --op: only the op's stages, as one JSON object (no chart)")
    p.add_argument("--data-dir", metavar="DIR", type=Path,
                   help="read the trace files of this data directory (default: the config's data_dir)")


def _fail(message: str, code: int) -> int:
    print(f"paxos trace: {message}", file=sys.stderr)
    return code


def compacted_through(data_dir: Path) -> int:
    """The highest slot any actor has a snapshot of (what it may have compacted away), read from
    the snapshot files' names only."""
    best = 0
    snap = data_dir / "snap"
    try:
        for path in snap.glob("*/*.snap"):
            if path.stem.isdigit():
                best = max(best, int(path.stem))
    except OSError:
        return 0
    return best


def _load(data_dir: Path, known: dict[str, str] | None, args: argparse.Namespace, tail: int | None) -> files.Loaded:
    """Only the lines a selection can use are parsed: with --slot those naming the slots; with
    --op, first the lines holding the op, then those naming the slots it went into as well."""
    if args.op is None:
        return files.load(data_dir, known, args.since, args.until, tail, args.slot)
    needle = json.dumps(args.op).encode()  # as the op stands in a line's "ops" list
    first = files.load(data_dir, known, args.since, args.until, None, args.slot, needle)
    ranges = [e.slots for e in first.events if args.op in e.ops and e.slots is not None
              and e.kind in ("assign", "deliver", "decide")]
    if not ranges:
        return first
    hull = (min(r[0] for r in ranges), max(r[1] for r in ranges))
    if args.slot is not None:  # both given: the op's story and those slots' (select takes both)
        hull = (min(hull[0], args.slot[0]), max(hull[1], args.slot[1]))
    return files.load(data_dir, known, args.since, args.until, None, hull, needle)


def run(config: Any, args: argparse.Namespace) -> int:
    if args.since is not None and args.until is not None and args.until < args.since:
        return _fail("--until is before --since", 64)
    if args.svg and args.format != "text":
        return _fail("--svg and --format shiviz are two outputs: choose one", 64)
    if args.json and (args.svg or args.format != "text"):
        return _fail("--json is an output of its own: not with --svg or --format shiviz", 64)
    if args.json and args.op is None:
        return _fail("--json gives one op's stages: say which with --op CLIENT:SEQ", 64)
    data_dir: Path = args.data_dir if args.data_dir is not None else config.data_dir
    if args.data_dir is not None and not data_dir.is_dir():
        return _fail(f"{data_dir}: no such directory", EXIT_NO_INPUT)
    roles = {name: spec.role for name, spec in config.actors.items()}
    sel = Selection(slots=args.slot, op=args.op, since=args.since, until=args.until)
    # Without a selection only the latest rows are drawn: each file's last lines hold them (every
    # row is at least one line), with room to spare for the sends their receives join to.
    tail = None if sel.narrowed or args.since is not None or args.until is not None else args.limit * TAIL_FACTOR
    try:
        known = None if args.data_dir is not None else roles
        loaded = _load(data_dir, known, args, tail)
    except files.NoTraces as exc:
        return _fail(str(exc), EXIT_NO_INPUT)
    except files.TraceFileError as exc:
        return _fail(str(exc), EXIT_DATA)
    for warning in loaded.warnings:
        print(f"paxos trace: note: {warning}", file=sys.stderr)
    chosen = select(loaded.events, sel)
    if not chosen and args.op is not None:
        # Which clients the traces do know is in the lines the op filter skipped: read them all
        # (only on the way to an error).
        try:
            loaded = files.load(data_dir, known, args.since, args.until)
        except (files.NoTraces, files.TraceFileError) as exc:
            return _fail(str(exc), EXIT_DATA)
    if not chosen:
        covered = (loaded.first_ts, loaded.last_ts) if loaded.first_ts is not None and loaded.last_ts is not None \
            else None
        traced = (loaded.slot_low, loaded.slot_high) if loaded.slot_low is not None and loaded.slot_high is not None \
            else None
        return _fail(explain_empty(loaded.events, sel, compacted_through(data_dir), covered, traced), EXIT_EMPTY)
    # The op's stages go with the text chart, --svg's line and --json; shiviz's stdout is its log.
    op_table = _op_table(loaded, args.op, roles) if args.op is not None and args.format == "text" else None
    if args.json:
        if op_table is None:
            return _fail(f"no leader's assign of {args.op} is in the traces: its stages cannot be timed", EXIT_EMPTY)
        print(json.dumps(stages.as_json(op_table), indent=2))
        return 0
    chart = model.build(chosen, roles, traced=files.traced(loaded), ends=loaded.ends)
    chart = model.limit(chart, args.limit, keep="first" if sel.narrowed else "last")
    if loaded.skipped_lines:  # only the files' tails were read: rows before them exist, uncounted
        chart.dropped_known = False
        chart.dropped_rows, chart.dropped_where = max(chart.dropped_rows, 1), "before"
    if args.format == "shiviz":
        from runtime.tracechart import shiviz

        sys.stdout.write(shiviz.render(chart))
        return 0
    if args.svg:
        try:
            write_svg(chart, Path(args.svg), f"paxos trace of {data_dir}", times=not args.no_times)
        except OSError as exc:
            return _fail(f"cannot write {args.svg}: {exc.strerror or exc}", EXIT_CANT_CREATE)
        print(f"wrote {args.svg}: {len(chart.rows)} rows, {len(chart.columns)} columns")
        if op_table is not None:
            _print_table(op_table)
        return 0
    print_chart(chart, times=not args.no_times, page=not args.no_pager, width=args.width, op_table=op_table)
    if args.op is not None and op_table is None:  # its Submit was traced, no leader's assign of it
        print(f"paxos trace: note: no leader's assign of {args.op} is in the traces: its stages cannot be timed",
              file=sys.stderr)
    return 0


def _op_table(loaded: files.Loaded, op: str, roles: dict[str, str]) -> stages.Table | None:
    """The op's stages from the events loaded for its chart (they hold every line the op's path
    needs: those naming the op, and those naming its slots), or None when no leader assigned it."""
    path = stages.follow((e.raw for e in loaded.events), op)
    if path is None:
        return None
    acceptors = model.column_order([n for n, role in roles.items() if role == "acceptor"], roles)
    clients_trace = any(p.name.startswith(files.CLIENT_PREFIX) for p in loaded.files)
    return stages.table(path, acceptors, files.traced(loaded), clients_trace)


def _print_table(op_table: stages.Table) -> None:
    """The op's stages after its chart: a rich table on a terminal, plain text otherwise."""
    if sys.stdout.isatty():
        from rich.console import Console

        Console(highlight=False).print(stages.rich_table(op_table))
    else:
        print("\n".join(["", *stages.plain(op_table)]))


def whole_chart(data_dir: Path, roles: Mapping[str, str], max_rows: int,
                names: Mapping[str, str] | None = None) -> tuple[model.Chart, files.Loaded]:
    """The chart of every event in a data directory's traces, its first `max_rows` rows (a run
    told from its start: `paxos scenario`'s chart of each cluster), with participants renamed
    (`names`, see model.rename). files.NoTraces or files.TraceFileError when it cannot be read."""
    loaded = files.load(data_dir, roles)
    traced = {names.get(a, a) for a in files.traced(loaded)} if names else files.traced(loaded)
    ends = {names.get(a, a): ts for a, ts in loaded.ends.items()} if names else loaded.ends
    chart = model.build(model.rename(loaded.events, names or {}), roles, traced=traced, ends=ends)
    return model.limit(chart, max_rows, keep="first"), loaded


def write_svg(chart: model.Chart, path: Path, title: str, times: bool = True) -> None:
    """The chart as an SVG file (OSError when it cannot be written)."""
    from runtime.tracechart import svg

    path.write_text(svg.render(chart, times=times, title=title), encoding="utf-8")


def print_chart(chart: model.Chart, times: bool, page: bool, width: int | None, color: bool = True,
                op_table: stages.Table | None = None) -> None:
    """The chart on stdout: colored and fitted to a terminal (paged when `page` and longer than
    it), else `width` or WIDTH_PIPE columns; `color=False` prints it plain when stdout is not a
    terminal, whatever FORCE_COLOR says (a transcript saved to a file stays readable); `op_table`,
    one request's stages, follows it."""
    from rich.console import Console

    from runtime.tracechart import text

    console = Console(highlight=False)
    tty = sys.stdout.isatty()  # not rich's is_terminal: FORCE_COLOR into a pipe must not start a pager
    width = width or (console.width if tty else WIDTH_PIPE)
    if not tty and not color:
        sys.stdout.write(text.plain(chart, width, times))
        sys.stdout.flush()
        if op_table is not None:
            _print_table(op_table)
        return
    lines = text.render(chart, width, times)
    if page and tty and len(lines) + (len(op_table.rows) + 6 if op_table else 0) > console.height:
        with console.pager(styles=True):  # the table pages with the chart: it is read after it
            for line in lines:
                console.print(line, soft_wrap=True)
            if op_table is not None:
                console.print(stages.rich_table(op_table))
        return
    for line in lines:
        console.print(line, soft_wrap=True)
    if op_table is not None:
        _print_table(op_table)
