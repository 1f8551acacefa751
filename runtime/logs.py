"""structlog, configured once per process: JSON lines to the actor's log file (for machines and
for `paxos logs`) and, when asked, colored console lines on stderr (for people).

Events are facts with fields (`promised ballot=3.1 peer=p1`), never prose. The file is
buffered and flushed by the shell at the end of every event-loop turn, so a burst of debug
events costs one write.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, Any

import structlog

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class _Sink:
    """The last processor: writes the event and drops it (no further logger is involved)."""

    def __init__(self, file: IO[str] | None, console: bool) -> None:
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
            print(self.console(logger, method, shown), file=sys.stderr, flush=True)
        raise structlog.DropEvent


def _add_ts(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["ts"] = round(time.time(), 6)
    return event


_file: IO[str] | None = None


def configure(actor: str, role: str, path: Path | None, console: bool, level: str = "info") -> Any:
    """Configure structlog for this process and return the bound logger."""
    global _file
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _file = open(path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115 - process-long
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
