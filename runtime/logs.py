"""structlog, configured once per process: JSON lines to the actor's log file (for machines and
for `paxos logs`) and, when asked, colored console lines on stderr (for people).

Events are facts with fields (`promised ballot=3.1 peer=p1`), never prose. The file is
buffered and flushed by the shell at the end of every event-loop turn, so a burst of debug
events costs one write.

Logging never stops a process: when the log's disk is full (or the file cannot be opened), the
lines that cannot be written are dropped and counted (`dropped_lines`), and writing resumes,
with a `log_lines_dropped` line, once there is room again. A line cut short by a full disk is
cut off again (the file is truncated back to the end of its last whole line, which needs no
space), so every line stays one JSON object; only if that truncation fails too is the broken
line ended before the next one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class LogFile:
    """An append-only JSON-lines file that buffers lines and writes them with `os.write` on
    `flush` (or when the buffer passes `buffer_bytes`), dropping what a full disk refuses."""

    def __init__(self, path: Path, buffer_bytes: int = 1 << 16) -> None:
        self.path = path
        self.buffer_bytes = buffer_bytes
        self.fd = -1
        self.pending: list[str] = []
        self.pending_bytes = 0
        self.dropped_lines = 0
        self.error = ""  # the last failure, while lines are being dropped
        self.mid_line = False  # a write was cut short inside a line
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            self.fd = -1
            self.error = f"{self.path}: {exc.strerror or exc}"

    def write(self, line: str) -> None:
        self.pending.append(line)
        self.pending_bytes += len(line)
        if self.pending_bytes >= self.buffer_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if self.fd < 0:
            self._open()
        lines, self.pending, self.pending_bytes = self.pending, [], 0
        if self.fd < 0:
            self.dropped_lines += len(lines)
            return
        notice = self.dropped_lines > 0
        if notice:
            lines.insert(0, json.dumps({"event": "log_lines_dropped", "level": "warning", "ts": round(time.time(), 6),
                                        "lines": self.dropped_lines, "reason": self.error}) + "\n")
        prefix = b"\n" if self.mid_line else b""
        data = prefix + "".join(lines).encode()
        written = 0
        try:
            while written < len(data):
                written += os.write(self.fd, memoryview(data)[written:])
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror or exc}"
            self.mid_line = written > 0 and data[written - 1:written] != b"\n"
            if self.mid_line:
                written = self._cut_partial_line(data, written)
            whole = data[len(prefix):written].count(b"\n") if written > len(prefix) else 0
            if notice and whole:
                self.dropped_lines = 0  # the notice made it: it told of those
                whole -= 1
            self.dropped_lines += len(lines) - int(notice) - whole
            return
        self.mid_line = False
        self.dropped_lines = 0
        self.error = ""

    def _cut_partial_line(self, data: bytes, written: int) -> int:
        """Truncate the file back to the end of the last whole line of `data[:written]`; return
        how many bytes of `data` remain. Truncating frees space, so it works on a full disk."""
        keep = data.rfind(b"\n", 0, written) + 1
        try:
            os.ftruncate(self.fd, os.fstat(self.fd).st_size - (written - keep))
        except OSError:
            return written  # the broken line stays; the next write ends it first
        self.mid_line = False
        return keep

    def close(self) -> None:
        self.flush()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Sink:
    """The last processor: writes the event and drops it (no further logger is involved)."""

    def __init__(self, file: LogFile | None, console: bool) -> None:
        self.file = file
        self.console = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()) if console else None

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        if self.file is not None:
            self.file.write(json.dumps(event, default=str, separators=(",", ":")) + "\n")
        if self.console is not None:
            shown = dict(event)
            ts = shown.pop("ts", None)
            if ts is not None:
                shown["timestamp"] = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"
            try:
                print(self.console(logger, method, shown), file=sys.stderr, flush=True)
            except OSError:  # stderr on a full disk: the file has the event, or counts it
                pass
        raise structlog.DropEvent


def _add_ts(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["ts"] = round(time.time(), 6)
    return event


_file: LogFile | None = None


def configure(actor: str, role: str, path: Path | None, console: bool, level: str = "info") -> Any:
    """Configure structlog for this process and return the bound logger."""
    global _file
    if path is not None:
        _file = LogFile(path)
    structlog.configure(
        processors=[structlog.processors.add_log_level, _add_ts, _Sink(_file, console)],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger().bind(actor=actor, role=role)


def flush() -> None:
    if _file is not None:
        _file.flush()


def is_debug(logger: Any) -> bool:
    return bool(logger.is_enabled_for(LEVELS["debug"]))
