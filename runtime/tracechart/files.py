"""The trace files of a data directory, as `TraceEvent`s: `<data_dir>/logs/<actor>.trace` (and
its rotated `<actor>.trace.1`), the clients' `client-<pid>.trace`, and the supervisor's exits
from `supervisor.jsonl` (an actor killed from outside writes no `crash` line of its own).

Reading never takes a lock and never writes: the files are opened read-only, so this works on a
running cluster (whose actors append as we read) as on a stopped one. The last line of a file
that has no newline yet is one being written (or cut by a crash): skipped, and said. Any other
line that is not a trace event is corruption: `TraceFileError` names the file, the line and its
byte offset. A file that holds another actor's events, or an actor the config does not know, is
refused the same way: the logs of another cluster mixed in. (A line that a time window or a
slot filter skips unparsed is only checked to be framed as one JSON object: the chart does not
use what it holds.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.tracechart.model import TraceEvent, TraceFormatError, check

CLIENT_PREFIX = "client-"
# What a line must show, unparsed, to matter to a --slot selection: a slot it names (in a label's
# `s=` or the `s` key), a kind kept whatever its slot (a start, a crash), or the first fsync
# after a kept record (the one that made it durable: the rule of select.select).
_SLOT_BYTES = re.compile(rb'(?:\bs=|"s":\s*"?)(\d+)(?:\.\.(\d+))?')
_KEPT_KINDS = re.compile(rb'"e":\s*"(?:start|crash)"')
_FSYNC = re.compile(rb'"e":\s*"fsync"')
_PERSIST = re.compile(rb'"e":\s*"persist"')
SUPERVISOR_EXITS = ("child_exited", "child_failed")
TS_BACK_S = 1.0  # one process appends in time order; lines this much older than the one before are another's


class TraceFileError(Exception):
    """A trace file that cannot be used as it stands (corrupt, or not this cluster's)."""


class NoTraces(Exception):
    """No trace file to read."""


@dataclass
class Loaded:
    events: list[TraceEvent] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped_lines: int = 0  # not read: before the tails asked for
    slot_low: int | None = None  # of every line seen, kept or skipped by the slot filter
    slot_high: int | None = None
    first_ts: float | None = None  # of every line seen, kept or skipped by the time window
    last_ts: float | None = None
    ends: dict[str, float] = field(default_factory=dict)  # each actor's last written line, kept or not

    def note_ts(self, ts: float) -> None:
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts


def trace_files(logs_dir: Path) -> list[Path]:
    """Each actor's rotated file before its current one, so lines come in the order written."""
    current = sorted(logs_dir.glob("*.trace"))
    out: list[Path] = []
    for path in current:
        older = path.with_name(path.name + ".1")
        if older.exists():
            out.append(older)
        out.append(path)
    return out


def _owner(path: Path) -> str:
    return path.name.removesuffix(".1").removesuffix(".trace")


def quick_ts(line: bytes) -> float | None:
    """The `ts` of a line as the writer lays it out (`{"ts":1764694000.123,...`) without parsing
    the rest, or None when it is laid out otherwise (then the line is parsed in full)."""
    if not line.startswith(b'{"ts":'):
        return None
    end = line.find(b",", 6)
    try:
        return float(line[6:end])
    except ValueError:
        return None


def _slot_wanted(line: bytes, slots: tuple[int, int], loaded: Loaded) -> bool:
    """Whether a line may matter to a --slot selection, told without parsing it."""
    if _KEPT_KINDS.search(line):
        return True
    lo, hi = slots
    wanted = False
    for m in _SLOT_BYTES.finditer(line):
        a = int(m.group(1))
        b = int(m.group(2) or a)
        loaded.slot_low = a if loaded.slot_low is None else min(loaded.slot_low, a)
        loaded.slot_high = b if loaded.slot_high is None else max(loaded.slot_high, b)
        wanted = wanted or (a <= hi and lo <= b)
    return wanted


def _note_end(owner: str, is_client: bool, lines: list[bytes], loaded: Loaded) -> None:
    """Where the actor's file ends in time (its last complete line), whether or not a filter
    keeps that line: a send to it stamped later is not known to be lost (model.build)."""
    if is_client:
        return  # a client file holds sessions under other names: their events say where they end
    for raw_line in reversed(lines[-2:]):
        if not raw_line.endswith(b"\n"):
            continue
        ts = quick_ts(raw_line)
        if ts is None:
            try:
                obj = json.loads(raw_line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return  # the read below reports it
            ts = obj.get("ts") if isinstance(obj, dict) and isinstance(obj.get("ts"), (int, float)) else None
        if ts is not None:
            loaded.ends[owner] = max(float(ts), loaded.ends.get(owner, float("-inf")))
        return


def read_file(path: Path, start_idx: int, known: Mapping[str, str] | None, loaded: Loaded,
              since: float | None = None, until: float | None = None, tail_lines: int | None = None,
              slots: tuple[int, int] | None = None, needle: bytes | None = None) -> None:
    """One file's events into `loaded`. Lines stamped outside [since, until] are skipped before
    they are parsed, with `tail_lines` only the last lines are read, and with `slots` only the
    lines that name those slots (and their fsyncs, and starts and crashes), and with `needle` (the JSON
    text of an op) the lines that hold it as well (without `slots`: only those): each keeps a
    long file cheap when only part of it is wanted."""
    owner = _owner(path)
    is_client = owner.startswith(CLIENT_PREFIX)
    if known is not None and not is_client and owner not in known:
        raise TraceFileError(f"{path}: actor {owner!r} is not in the cluster's membership "
                             f"({', '.join(sorted(known))}): the trace of another cluster mixed in? "
                             f"Move it out of {path.parent}")
    try:
        with open(path, "rb") as f:  # read-only, no lock: the actor may be appending right now
            data = f.read()
    except FileNotFoundError:
        return  # rotated away between listing and opening: its lines are in the .1 file
    except OSError as exc:
        raise TraceFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    lines = data.splitlines(keepends=True)
    _note_end(owner, is_client, lines, loaded)
    first = 0 if tail_lines is None else max(0, len(lines) - tail_lines)
    offset = sum(map(len, lines[:first]))
    loaded.skipped_lines += first
    record_kept = False  # the latest record (persist) was kept, and no fsync since
    latest_ts: float | None = None
    for number, raw_line in enumerate(lines[first:], start=first + 1):
        line_offset = offset
        offset += len(raw_line)
        if not raw_line.endswith(b"\n"):
            loaded.warnings.append(f"{path}: the last line (byte offset {line_offset}) is incomplete "
                                   f"(being written, or cut by a crash): skipped")
            break
        # A line is skipped unparsed only if it is framed as one JSON object; any other is
        # parsed, so that corruption is reported wherever it lies.
        framed = raw_line.startswith(b"{") and raw_line.rstrip().endswith(b"}")
        if framed and (since is not None or until is not None):
            ts = quick_ts(raw_line)
            if ts is not None:
                loaded.note_ts(ts)
                if (since is not None and ts < since) or (until is not None and ts > until):
                    continue
        if not raw_line.strip():
            continue
        if framed and (slots is not None or needle is not None):
            if _FSYNC.search(raw_line):
                wanted, record_kept = record_kept, False
            else:
                wanted = (needle is not None and needle in raw_line) or (
                    slots is not None and _slot_wanted(raw_line, slots, loaded))
                if _PERSIST.search(raw_line):
                    record_kept = wanted
            if not wanted:
                continue
        where = f"{path}: line {number} (byte offset {line_offset})"
        try:
            obj: Any = json.loads(raw_line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TraceFileError(f"{where}: not a JSON line ({exc}): the file is corrupt") from None
        try:
            event = check(obj, start_idx + len(loaded.events), where)
        except TraceFormatError as exc:
            raise TraceFileError(f"{exc}: the file is corrupt, or not a trace file") from None
        if not is_client and event.actor != owner:
            raise TraceFileError(f"{where}: an event of actor {event.actor!r} in {owner}'s file: "
                                 f"logs of another cluster mixed in?")
        if known is not None and not is_client and event.kind == "start":
            role = obj.get("role")
            if isinstance(role, str) and known.get(owner) not in (None, role):
                raise TraceFileError(f"{where}: {owner} started as a {role}, but the cluster's {owner} is a "
                                     f"{known[owner]}: the trace of another cluster mixed in?")
        if not is_client and latest_ts is not None and event.ts < latest_ts - TS_BACK_S:
            raise TraceFileError(f"{where}: stamped {latest_ts - event.ts:.1f} s before the line above it: one "
                                 f"process writes this file in time order, so these are the lines of another run "
                                 f"mixed in (the logs of another cluster?), or the clock was set back")
        latest_ts = event.ts if latest_ts is None else max(latest_ts, event.ts)
        loaded.note_ts(event.ts)
        loaded.events.append(event)


def supervisor_exits(path: Path, start_idx: int, loaded: Loaded) -> None:
    """`child_exited` and `child_failed` as `exit` events (the supervisor's log is structlog's
    JSON lines; a line that does not parse is not ours to judge, `paxos logs` shows it)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    for raw_line in data.splitlines():
        try:
            obj = json.loads(raw_line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(obj, dict) or obj.get("event") not in SUPERVISOR_EXITS:
            continue
        ts, child = obj.get("ts"), obj.get("child")
        if not isinstance(ts, (int, float)) or not isinstance(child, str):
            continue
        how = str(obj.get("exit", "?")) + ("" if obj.get("action") != "restart" else ", restarting")
        raw = {"ts": float(ts), "a": child, "e": "exit", "lc": 0, "how": how}
        loaded.events.append(check(raw, start_idx + len(loaded.events), f"{path}"))


def load(data_dir: Path, known: Mapping[str, str] | None = None, since: float | None = None,
         until: float | None = None, tail_lines: int | None = None, slots: tuple[int, int] | None = None,
         needle: bytes | None = None) -> Loaded:
    """The trace events under `data_dir` (those stamped in [since, until]; with `tail_lines`, of
    each file's last lines only). `known`: the cluster's actors and their roles, to refuse the
    files of another cluster (None: no such check)."""
    logs_dir = data_dir / "logs"
    files = trace_files(logs_dir) if logs_dir.is_dir() else []
    if not files:
        raise NoTraces(f"no trace files in {logs_dir} (a cluster writes them while it runs; is [trace] "
                       f"enabled in the config?)")
    loaded = Loaded(files=files)
    for path in files:
        read_file(path, 0, known, loaded, since, until, tail_lines, slots, needle)
    supervisor_exits(logs_dir / "supervisor.jsonl", 0, loaded)
    return loaded


def traced(loaded: Loaded) -> set[str]:
    """The actors that write traces: the owners of the files (whether or not a filter kept any
    of their lines) and every actor with an event (the client sessions)."""
    owners = {_owner(p) for p in loaded.files}
    return {o for o in owners if not o.startswith(CLIENT_PREFIX)} | {e.actor for e in loaded.events}
