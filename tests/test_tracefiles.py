"""Reading trace files back (runtime/tracefiles.py): the join of a send and its receive on
(sender, lc), one client op followed through every process, and the per-stage breakdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.tracefiles import Traces, breakdown, covers, slot_ranges

OPS = ["c.1:1", "c.1:2"]


def ev(ts: float, a: str, e: str, lc: int, **kw: object) -> dict:
    return {"ts": ts, "a": a, "e": e, "lc": lc, **kw}


def one_write(client: bool = True) -> list[dict]:
    """One batch of two ops: c.1 -> p1 -> a1, a2 (and l1's copy of the Accept) -> l1 -> c.1."""
    events = [
        ev(1.001, "p1", "recv", 10, **{"from": "c.1"}, slc=5, m=["Submit n=2"], ops=OPS),
        ev(1.002, "p1", "assign", 10, s=7, ops=OPS),
        ev(1.003, "p1", "send", 11, to="a1", m=["Accept b=1.1 s=7"], ops=OPS),
        ev(1.003, "p1", "send", 12, to="a2", m=["Accept b=1.1 s=7"], ops=OPS),
        ev(1.004, "p1", "send", 13, to="l1", m=["Accept b=1.1 s=7"], ops=OPS),
        ev(1.005, "a1", "recv", 12, **{"from": "p1"}, slc=11, m=["Accept b=1.1 s=7"], ops=OPS),
        ev(1.006, "a1", "persist", 12, m=["accept b=1.1 s=7"], bytes=66, durable=True),
        ev(1.008, "a1", "fsync", 12, dur_us=2000),
        ev(1.009, "a1", "send", 13, to="l1", m=["Accepted b=1.1 s=7"]),
        ev(1.007, "a2", "recv", 13, **{"from": "p1"}, slc=12, m=["Accept b=1.1 s=7"], ops=OPS),
        ev(1.010, "a2", "persist", 13, m=["accept b=1.1 s=6..7"], bytes=66, durable=True),
        ev(1.014, "a2", "fsync", 13, dur_us=3000),
        ev(1.015, "a2", "send", 14, to="l1", m=["Accepted b=1.1 s=6..7"]),
        ev(1.005, "l1", "recv", 14, **{"from": "p1"}, slc=13, m=["Accept b=1.1 s=7"], ops=OPS),
        ev(1.011, "l1", "recv", 15, **{"from": "a1"}, slc=13, m=["Accepted b=1.1 s=7"]),
        ev(1.018, "l1", "recv", 16, **{"from": "a2"}, slc=14, m=["Accepted b=1.1 s=6..7"]),
        ev(1.020, "l1", "decide", 20, s="6..7", b="1.1"),
        ev(1.021, "l1", "deliver", 20, s="6..7", ops=OPS),
        ev(1.022, "l1", "reply", 21, to="c.1", ops=OPS),
        ev(1.0225, "l1", "send", 21, to="c.1", m=["Reply n=2"], ops=OPS),
    ]
    if client:
        events += [ev(1.000, "c.1", "send", 5, to="p1", m=["Submit n=2"], ops=OPS),
                   ev(1.025, "c.1", "recv", 22, **{"from": "l1"}, slc=21, m=["Reply n=2"], ops=OPS)]
    return events


def write(logs: Path, events: list[dict], torn: str = "") -> Path:
    logs.mkdir(parents=True, exist_ok=True)
    by: dict[str, list[str]] = {}
    for e in events:
        name = "client-1" if "." in e["a"] else e["a"]
        by.setdefault(name, []).append(json.dumps(e))
    for name, lines in by.items():
        (logs / f"{name}.trace").write_text("\n".join(lines) + "\n" + torn)
    return logs


def test_slot_texts() -> None:
    assert slot_ranges("5") == [(5, 5)] and slot_ranges("5..9,12") == [(5, 9), (12, 12)]
    assert covers("5..9,12", 12) and covers("5..9", 7) and not covers("5..9,12", 10) and not covers("", 1)


def test_a_send_and_its_receive_join_on_sender_and_clock(tmp_path: Path) -> None:
    t = Traces.load(write(tmp_path, one_write()))
    send = t.sends[("p1", 11)]
    recv = t.receive_of(send)
    assert recv is not None and recv["a"] == "a1" and t.send_of(recv) is send
    assert t.receive_of(t.sends[("a2", 14)])["a"] == "l1"
    assert t.receive_of(t.sends[("p1", 12)])["a"] == "a2"


def test_one_op_is_followed_from_the_client_to_its_reply(tmp_path: Path) -> None:
    t = Traces.load(write(tmp_path, one_write()))
    path = t.follow("c.1:2")
    assert path is not None and (path.leader, path.slot, path.learner) == ("p1", 7, "l1")
    assert path.client_send is not None and path.client_recv is not None
    assert sorted(path.accepts) == ["a1", "a2"]  # l1's copy of the Accept is not an acceptor's
    assert sorted(path.fsync) == ["a1", "a2"] and sorted(path.accepted) == ["a1", "a2"]
    ms = {s.name: round(s.ms, 3) for s in path.stages()}
    assert ms == {"client_to_leader": 1.0, "leader_queue": 1.0, "accept_sent": 1.0,
                  "a1.net_to_acceptor": 2.0, "a1.persist": 1.0, "a1.fsync": 2.0,
                  "a2.net_to_acceptor": 4.0, "a2.persist": 4.0, "a2.fsync": 3.0,
                  "a1.net_to_learner": 2.0, "a2.net_to_learner": 3.0, "learner_queue": 2.0,
                  "quorum": 17.0, "learner_apply": 1.0, "reply": 1.0, "reply_to_client": 2.5, "total": 25.0}


def test_without_the_client_trace_the_cluster_stages_remain(tmp_path: Path) -> None:
    t = Traces.load(write(tmp_path, one_write(client=False)))
    path = t.follow("c.1:1")
    assert path is not None and path.client_send is None
    names = {s.name for s in path.stages()}
    assert "total" not in names and "client_to_leader" not in names
    assert {"leader_queue", "quorum", "a1.fsync", "reply"} <= names


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    t = Traces.load(write(tmp_path, one_write(), torn='{"ts": 1.03, "a": "p1", "e": "se'))
    assert t.bad_lines == 5  # one per file
    assert t.follow("c.1:1") is not None


def test_the_breakdown_counts_a_batch_once_however_many_ops_it_carried(tmp_path: Path) -> None:
    events = one_write()
    # A second batch, later and slower at the leader, of one op in slot 8.
    later = [dict(e, ts=e["ts"] + 1, lc=e["lc"] + 100, **({"slc": e["slc"] + 100} if "slc" in e else {}))
             for e in events]
    for e in later:
        if "ops" in e:
            e["ops"] = ["c.1:3"]
        for k in ("m",):
            if k in e:
                e[k] = [x.replace("s=7", "s=8").replace("6..7", "8") for x in e[k]]
        if e["e"] == "assign":
            e["s"], e["ts"] = 8, e["ts"] + 0.004
        if e["e"] in ("decide", "deliver"):
            e["s"] = "8"
    t = Traces.load(write(tmp_path, events + later))
    stages, batches, whole = breakdown(t)
    assert (batches, whole) == (2, 2)
    assert len(stages["total"]) == 2 and sorted(round(x, 3) for x in stages["leader_queue"]) == [1.0, 5.0]


def test_an_op_no_leader_assigned_is_not_followed(tmp_path: Path) -> None:
    t = Traces.load(write(tmp_path, [e for e in one_write() if e["e"] != "assign"]))
    assert t.follow("c.1:1") is None and breakdown(t)[1] == 0


@pytest.mark.parametrize("line", ["[1, 2]", '{"ts": "x", "a": "p1", "e": "send", "lc": 1}',
                                  '{"ts": 1.0, "a": "p1", "e": "send", "lc": 1.5}', "not json"])
def test_lines_that_are_not_events_are_skipped(tmp_path: Path, line: str) -> None:
    (tmp_path / "p1.trace").write_text(line + "\n" + json.dumps(ev(1.0, "p1", "start", 0, pid=1)) + "\n")
    t = Traces.load(tmp_path)
    assert t.bad_lines == 1 and [e["e"] for e in t.events] == ["start"]
