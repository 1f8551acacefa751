"""Following the trace files between the page's reads (runtime/web/follow.py, and the chart's
TailReader on it): a read after appends returns the newest kept lines of everything written, in
order, parsing each line once and reading only the bytes appended since; a line still being
written waits for its newline; a rotated, truncated or far-grown file is read afresh (the rotated
file's tail first, no line twice); `more` says when kept lines were cut; and the chart of a
followed reader is the chart a fresh read draws."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from runtime.web import chart, follow

pytestmark = pytest.mark.fast


def line_of(i: int, kind: str = "fsync") -> bytes:
    return json.dumps({"ts": 1000.0 + i, "a": "p1", "e": kind, "lc": i + 1, "dur_us": i}).encode() + b"\n"


def keep_all(line: bytes) -> bool:
    return bool(line.strip())


def stamp(line: bytes) -> float:
    return float(json.loads(line)["ts"])


def lc_of(lines: list[follow.Line]) -> list[int]:
    return [json.loads(x.raw)["lc"] for x in lines]


def test_appends_are_read_from_where_the_last_read_ended_and_each_line_is_parsed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p1.trace"
    rng = random.Random(5)
    written = b""
    f = follow.Follower(50, keep_all, stamp)
    parses: list[int] = []
    read_sizes: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.inner.close()

        def seek(self, *a: Any) -> int:
            return int(self.inner.seek(*a))

        def read(self, n: int = -1) -> bytes:
            data: bytes = self.inner.read(n)
            read_sizes.append(len(data))
            return data

    def parse(raw: bytes, idx: int) -> Any:
        parses.append(idx)
        return json.loads(raw)

    monkeypatch.setattr(follow, "open", lambda p, mode="r": Counting(real_open(p, mode)), raising=False)
    i = 0
    with real_open(path, "wb") as out:
        for _ in range(40):
            chunk = b"".join(line_of(i + k) for k in range(rng.randint(0, 7)))
            i += chunk.count(b"\n")
            cut = rng.randint(0, 30) if chunk else 0  # the writer is mid-line sometimes
            out.write(chunk + (line_of(i)[:cut]))
            out.flush()
            written += chunk + line_of(i)[:cut]
            lines, more = f.lines(path, 1 << 20)
            complete = written[:written.rfind(b"\n") + 1].split(b"\n")[:-1]
            assert [x.raw for x in lines] == complete[-50:]  # the newest 50, in order
            assert more == (len(complete) > 50)
            for x in lines:
                f.parsed(x, parse)
            if cut:  # the rest of the line being written, so the next chunk starts on a line
                out.write(line_of(i)[cut:])
                written += line_of(i)[cut:]
                i += 1
    assert len(parses) == len(set(parses))  # never parsed twice
    # Every complete line read once: only a line still being written (at most 30 bytes here) is
    # read again by the next read.
    assert sum(read_sizes) <= len(written) + 30 * len(read_sizes)


def test_a_rotated_file_is_read_afresh_with_the_older_files_tail_first(tmp_path: Path) -> None:
    path = tmp_path / "p1.trace"
    path.write_bytes(b"".join(line_of(i) for i in range(10)))
    f = follow.Follower(100, keep_all, stamp)
    assert lc_of(f.lines(path, 1 << 20, path.with_name("p1.trace.1"))[0]) == list(range(1, 11))
    os.rename(path, path.with_name("p1.trace.1"))  # as runtime/trace.py rotates: a new inode
    path.write_bytes(b"".join(line_of(i) for i in range(10, 13)))
    lines, more = f.lines(path, 1 << 20, path.with_name("p1.trace.1"))
    assert lc_of(lines) == list(range(1, 14)) and not more  # no line twice, none lost


def test_a_truncated_or_far_grown_file_is_read_afresh(tmp_path: Path) -> None:
    path = tmp_path / "p1.trace"
    path.write_bytes(b"".join(line_of(i) for i in range(10)))
    f = follow.Follower(100, keep_all, stamp)
    f.lines(path, 1 << 20)
    path.write_bytes(b"".join(line_of(i) for i in range(100, 103)))  # same inode, shorter
    assert lc_of(f.lines(path, 1 << 20)[0]) == [101, 102, 103]
    budget = len(line_of(0)) * 5
    with open(path, "ab") as out:
        out.write(b"".join(line_of(i) for i in range(200, 220)))  # more than the budget since
    lines, more = f.lines(path, budget)
    assert lc_of(lines) == list(range(217, 221)) and more  # the tail within the budget, like a first read


def test_a_followed_chart_is_the_chart_a_fresh_read_draws(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    roles = {"p1": "proposer", "a1": "acceptor"}
    followed = chart.TailReader(60, keepalive=False)
    rng = random.Random(11)
    lc = {"p1": 0, "a1": 0}
    files = {name: open(logs / f"{name}.trace", "ab") for name in roles}  # noqa: SIM115
    try:
        t = 1000.0
        for _ in range(30):
            for _ in range(rng.randint(1, 6)):
                t += 0.001
                lc["p1"] += 1
                slot = int(t * 1000) % 10000
                label = "Accept b=1.1 keep-alive" if rng.random() < 0.2 else f"Accept b=1.1 s={slot}"
                files["p1"].write(json.dumps({"ts": t, "a": "p1", "e": "send", "lc": lc["p1"], "to": "a1",
                                              "m": [label]}).encode() + b"\n")
                lc["a1"] = max(lc["a1"], lc["p1"]) + 1
                files["a1"].write(json.dumps({"ts": t + 0.0005, "a": "a1", "e": "recv", "lc": lc["a1"], "from": "p1",
                                              "slc": lc["p1"], "m": [label]}).encode() + b"\n")
            for out in files.values():
                out.flush()
            a = followed.read(tmp_path, roles)
            b = chart.TailReader(60, keepalive=False).read(tmp_path, roles)
            key = [(e.ts, e.actor, e.kind, e.lc) for e in a.events]
            assert key == [(e.ts, e.actor, e.kind, e.lc) for e in b.events]
            assert (a.truncated, a.cut_ts) == (b.truncated, b.cut_ts)
            assert len({e.idx for e in a.events}) == len(a.events)  # ids stay unique across reads
    finally:
        for out in files.values():
            out.close()
