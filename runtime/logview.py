"""`paxos logs`: every actor's JSON log lines merged in time order, one color per actor.

Reads `<data_dir>/logs/*.jsonl` (the files the actors and the supervisor write); `follow`
keeps reading as they grow, and copes with files that appear later (a restarted actor appends
to its own file).
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

COLORS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan",
          "bright_magenta", "bright_green", "bright_yellow", "bright_blue", "red"]
LEVEL_STYLES = {"debug": "dim", "info": "", "warning": "bold yellow", "error": "bold red",
                "critical": "bold white on red"}
SKIP = ("ts", "actor", "role", "level", "event")


def _parse(line: str) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("ts"), (int, float)) else None


def log_files(log_dir: Path, names: list[str] | None) -> list[Path]:
    files = sorted(log_dir.glob("*.jsonl"))
    if names:
        files = [f for f in files if f.stem in names]
    return files


def read_all(log_dir: Path, names: list[str] | None = None) -> Iterator[tuple[dict[str, Any], str]]:
    """All events of the chosen actors, merged by timestamp (each file is already in order)."""
    def events(path: Path) -> Iterator[tuple[float, int, dict[str, Any], str]]:
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                event = _parse(line)
                if event is not None:
                    yield event["ts"], i, event, line.rstrip("\n")
    for _, _, event, line in heapq.merge(*(events(p) for p in log_files(log_dir, names)),
                                         key=lambda t: (t[0], t[1])):
        yield event, line


class Formatter:
    def __init__(self, names: list[str]) -> None:
        self.colors: dict[str, str] = {}
        for name in names:
            self.color(name)

    def color(self, name: str) -> str:
        if name not in self.colors:
            self.colors[name] = "white" if name == "supervisor" else COLORS[len(self.colors) % len(COLORS)]
        return self.colors[name]

    def render(self, event: dict[str, Any]) -> Text:
        ts = event.get("ts", 0.0)
        actor = str(event.get("actor", "?"))
        level = str(event.get("level", "info"))
        stamp = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"
        text = Text()
        text.append(stamp + " ", style="dim")
        text.append(f"{actor:<10} ", style=self.color(actor))
        text.append(f"{level[:4]:<4} ", style=LEVEL_STYLES.get(level, ""))
        text.append(str(event.get("event", "")), style="bold")
        for key, value in event.items():
            if key in SKIP:
                continue
            text.append(f" {key}=", style="dim")
            text.append(str(value))
        return text


def show(log_dir: Path, names: list[str] | None, as_json: bool, follow: bool,
         console: Console | None = None, stop: Any = None, since: float = 0.0) -> None:
    """Print the merged logs (events at or after `since`, a Unix time), then follow them."""
    console = console or Console(highlight=False, soft_wrap=True)
    files = log_files(log_dir, names)
    fmt = Formatter([f.stem for f in files])

    def emit(event: dict[str, Any], line: str) -> None:
        if as_json:
            console.out(line, highlight=False)
        else:
            console.print(fmt.render(event))

    offsets: dict[Path, int] = {}
    for event, line in read_all(log_dir, names):
        if event["ts"] >= since:
            emit(event, line)
    for path in log_files(log_dir, names):
        offsets[path] = path.stat().st_size
    while follow and not (stop is not None and stop()):
        time.sleep(0.1)
        fresh: list[tuple[float, dict[str, Any], str]] = []
        for path in log_files(log_dir, names):
            start = offsets.get(path, 0)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < start:
                start = 0  # the file was replaced
            if size == start:
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(start)
                chunk = f.read()
            complete = chunk.rfind("\n") + 1
            offsets[path] = start + len(chunk[:complete].encode("utf-8"))
            for line in chunk[:complete].splitlines():
                parsed = _parse(line)
                if parsed is not None:
                    fresh.append((parsed["ts"], parsed, line))
        fresh.sort(key=lambda t: t[0])
        for ts, event, line in fresh:
            if ts >= since:
                emit(event, line)
