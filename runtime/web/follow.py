"""Following the tails of files that actors append to, between one read of the page and the next.

What it owns: `Follower`, which keeps for each file the newest lines a reader wants (at most a
given number, each with its stamp and, once asked, what it parses to) and the offset it read up
to, so that the next read costs only the bytes appended since, not the file's whole tail again.
The live page reads the traces' tails every second while a saturated cluster appends to them:
reading and scanning 256 KiB of seven files, and parsing the same lines again, each time cost
the web server (and so the cluster, on the same cores) more than everything else it does.

A file that was rotated (another inode), truncated, or grew by more than the byte budget since
the last read is read afresh from its end, as the first read is; so a follower answers what a
fresh read of the tail would, save that lines it has already parsed are not parsed again. Read
only, with plain reads and no lock: an actor may be appending at that moment (a line without its
newline yet is left for the next read). Not thread-safe: one reader at a time (the page's chart
and its plot each have their own, and read in one thread at a time).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNPARSED: Any = object()  # a line not asked for yet (None is a line that did not parse)


class Line:
    """One kept line: its stamp, an id unique within its follower (the chart's tie-break and
    identity of an event), the bytes, and what they parsed to once asked."""

    __slots__ = ("idx", "parsed", "raw", "ts")

    def __init__(self, ts: float, idx: int, raw: bytes) -> None:
        self.ts, self.idx, self.raw = ts, idx, raw
        self.parsed: Any = UNPARSED


def tail_lines(path: Path, bytes_max: int) -> tuple[list[bytes], bool, int]:
    """The complete lines in the last `bytes_max` bytes of a file (the one at the cut, and a last
    one being written, are left out), whether the file holds more before them, and the offset
    just past the last complete line. A file that is not there (rotated away between listing
    and opening) holds none."""
    try:
        with open(path, "rb") as f:  # read-only, no lock: the actor may be appending right now
            size = f.seek(0, 2)
            start = max(0, size - bytes_max)
            f.seek(start)
            data = f.read(bytes_max)
    except FileNotFoundError:
        return [], False, 0
    end = data.rfind(b"\n") + 1  # 0: no complete line
    lines = data[:end].split(b"\n")
    lines.pop()  # b"" after the last newline
    if start > 0 and lines:
        lines.pop(0)  # cut in the middle
    return lines, start > 0, start + end


@dataclass
class _State:
    ino: int
    offset: int  # just past the last complete line read
    lines: deque[Line]
    more: bool  # the file holds lines before the oldest kept


class Follower:
    """The newest `lines_max` lines of each file that `keep` accepts, followed between reads.
    `stamp` tells a line's time (None: the line is left out)."""

    def __init__(self, lines_max: int, keep: Callable[[bytes], bool], stamp: Callable[[bytes], float]) -> None:
        self.lines_max = lines_max
        self.keep = keep
        self.stamp = stamp
        self.next_idx = 0
        self._files: dict[Path, _State] = {}

    def forget_all_but(self, paths: set[Path]) -> None:
        """Drop what is kept of files no longer listed (rotated away, removed)."""
        for path in [p for p in self._files if p not in paths]:
            del self._files[path]

    def lines(self, path: Path, bytes_max: int, rotated: Path | None = None) -> tuple[list[Line], bool]:
        """The kept lines of `path`, oldest first, after reading what was appended since the last
        call, and whether the file holds lines before them. On a first (or fresh) read, when the
        current file holds less than `bytes_max`, the tail of `rotated` (its older file) comes
        first, within what is left of the budget."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._files.pop(path, None)
            return [], False
        state = self._files.get(path)
        if state is None or state.ino != st.st_ino or st.st_size < state.offset \
                or st.st_size - state.offset > bytes_max:
            state = self._fresh(path, st.st_ino, bytes_max, rotated)
        elif st.st_size > state.offset:
            with open(path, "rb") as f:
                f.seek(state.offset)
                data = f.read(st.st_size - state.offset)
            end = data.rfind(b"\n") + 1
            if end:
                state.offset += end
                self._add(state, data[:end - 1].split(b"\n"))
        return list(state.lines), state.more

    def _fresh(self, path: Path, ino: int, bytes_max: int, rotated: Path | None) -> _State:
        raw, more, offset = tail_lines(path, bytes_max)
        state = _State(ino, offset, deque(maxlen=self.lines_max), more)
        if not more and rotated is not None and rotated.exists():
            left = bytes_max - offset
            if left > 0:
                before, more_before, _ = tail_lines(rotated, left)
                raw = before + raw
                state.more = more_before
        self._add(state, raw)
        self._files[path] = state
        return state

    def _add(self, state: _State, raw: list[bytes]) -> None:
        """The lines `keep` accepts, newest last; only the newest `lines_max` of them are kept
        (stamped), and a kept line left out for them makes `more` true."""
        taken: list[bytes] = []
        for line in reversed(raw):
            if self.keep(line):
                if len(taken) >= self.lines_max:
                    state.more = True
                    break
                taken.append(line)
        if len(state.lines) + len(taken) > self.lines_max:
            state.more = True  # kept lines leave the deque for newer ones
        for line in reversed(taken):
            state.lines.append(Line(self.stamp(line), self.next_idx, line))
            self.next_idx += 1

    def parsed(self, line: Line, parse: Callable[[bytes, int], Any]) -> Any:
        """What `parse(raw, idx)` makes of a line, computed once (None: it did not parse)."""
        if line.parsed is UNPARSED:
            line.parsed = parse(line.raw, line.idx)
        return line.parsed
