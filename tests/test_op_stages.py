"""One request's stages (runtime/tracechart/stages.py) and `paxos trace --op`'s table of them:
every stage in order with its duration and the processes it spans, "not traced" and why for the
stages whose ends the traces lack (an acceptor that does not trace, was not sent the Accept, did
not receive it or refused it; a client that does not trace), the total, and the command's
outputs (plain text into a pipe, --json, --svg, shiviz without it) on crafted trace files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from runtime import cli
from runtime.config import SECTIONS, render
from runtime.harness.local import free_ports
from runtime.tracechart import stages
from runtime.tracefiles import ACCEPTOR_STAGES, STAGES
from tests.test_tracefiles import ev, one_write, write

pytestmark = pytest.mark.fast

OP = "c.1:2"
TRACED = {"p1", "a1", "a2", "a3", "l1"}
NAMES = ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
INSECURE = "[security]\ncurve = false\n" if "security" in SECTIONS else ""


def table(events: list[dict], acceptors: tuple[str, ...] = ("a1", "a2"), traced: set[str] = TRACED,
          clients_trace: bool = True) -> stages.Table:
    path = stages.follow(events, OP)
    assert path is not None
    return stages.table(path, acceptors, traced, clients_trace)


def rows(t: stages.Table) -> dict[str, stages.Row]:
    return {r.key: r for r in t.rows}


def test_every_stage_of_a_fully_traced_write_in_order_with_its_duration_and_processes() -> None:
    t = table(one_write())
    assert (t.op, t.slot, t.leader, t.learner) == (OP, 7, "p1", "l1")
    # STAGES in order, the acceptor's four once per acceptor, each acceptor's together.
    per_acceptor = [f"{a}.{s}" for a in ("a1", "a2") for s in ACCEPTOR_STAGES]
    want = [s for s in STAGES[:STAGES.index(ACCEPTOR_STAGES[0])]] + per_acceptor + \
        [s for s in STAGES if s not in ACCEPTOR_STAGES and STAGES.index(s) > STAGES.index(ACCEPTOR_STAGES[0])]
    assert [r.key for r in t.rows] == want
    assert all(r.ms is not None and not r.why and not r.partial for r in t.rows)
    got = {k: round(r.ms or 0, 3) for k, r in rows(t).items()}
    # The crafted times (tests/test_tracefiles.py): a1 took the Accept at 1.005, its fsync of
    # 2 ms ended at 1.008; a2's Accepted reached l1 at 1.018 and made the majority.
    assert got["client_to_leader"] == 1.0 and got["leader_queue"] == 1.0 and got["accept_sent"] == 1.0
    assert got["a1.net_to_acceptor"] == 2.0 and got["a1.persist"] == 1.0 and got["a1.fsync"] == 2.0
    assert got["a2.persist"] == 4.0 and got["a2.fsync"] == 3.0 and got["a2.net_to_learner"] == 3.0
    assert got["learner_queue"] == 2.0 and got["quorum"] == 17.0 and got["total"] == 25.0
    r = rows(t)
    assert r["client_to_leader"].spans == ("client", "p1") and r["a1.net_to_acceptor"].spans == ("p1", "a1")
    assert r["a2.net_to_learner"].spans == ("a2", "l1") and r["quorum"].spans == ("p1", "a1,a2", "l1")
    assert r["total"].spans == ("client", "p1", "a1,a2", "l1", "client")
    assert r["a1.persist"].name == "a1 persist"


def test_an_acceptor_that_does_not_trace_or_was_not_sent_the_accept_is_not_traced_and_says_why() -> None:
    events = one_write()
    t = table(events, acceptors=("a1", "a2", "a3"), traced=TRACED - {"a3"})
    assert {rows(t)[f"a3.{s}"].why for s in ACCEPTOR_STAGES} == {"a3 does not trace (no trace file)"}
    assert all(rows(t)[f"a3.{s}"].ms is None for s in ACCEPTOR_STAGES)
    assert rows(t)["a1.persist"].ms is not None and rows(t)["total"].ms == pytest.approx(25.0)
    t = table(events, acceptors=("a1", "a2", "a3"))
    assert rows(t)["a3.persist"].why == "p1 did not sample its Accept to a3 (or sent it none)"
    # Sent, never received; then received and refused (no accept record).
    sent = [*events, ev(1.0035, "p1", "send", 14, to="a3", m=["Accept b=1.1 s=7"])]
    t = table(sent, acceptors=("a1", "a2", "a3"))
    assert rows(t)["a3.net_to_acceptor"].why == "a3 did not receive the Accept (down, or the frame was lost)"
    refused = [*sent, ev(1.006, "a3", "recv", 15, **{"from": "p1"}, slc=14, m=["Accept b=1.1 s=7"]),
               ev(1.007, "a3", "send", 16, to="p1", m=["Nack promised=2.1"])]
    t = table(refused, acceptors=("a1", "a2", "a3"))
    assert rows(t)["a3.fsync"].why == "a3 received the Accept but wrote no record of it (it refused it?)"
    assert rows(t)["quorum"].spans == ("p1", "a1,a2", "l1")  # only the acceptors that voted


def test_a_missing_fsync_and_a_missing_accepted_name_their_acceptor() -> None:
    events = [e for e in one_write() if not (e["a"] == "a2" and e["e"] == "fsync")]
    events = [e for e in events if not (e["a"] == "l1" and e["e"] == "recv" and e.get("from") == "a1")]
    r = rows(table(events))
    assert r["a2.persist"].ms is None and r["a2.fsync"].why == "a2's fsync of the record is not in the traces"
    assert r["a1.persist"].ms is not None and r["a1.fsync"].ms is not None
    assert r["a1.net_to_learner"].why.startswith("its arrival at l1 is not traced")


def test_a_client_that_does_not_trace_leaves_its_stages_not_traced_and_a_partial_total() -> None:
    # Without the client's trace the leader's receive of the Submit is not traced either (a
    # receive is traced when its sender sampled the frame).
    events = [e for e in one_write(client=False) if not (e["a"] == "p1" and e["e"] == "recv")]
    r = rows(table(events, clients_trace=False))
    for key in ("client_to_leader", "reply_to_client"):
        assert r[key].ms is None and r[key].why == "the client does not trace (it does with [trace] clients = true)"
    assert r["leader_queue"].ms is None and "the client does not trace" in r["leader_queue"].why
    assert r["accept_sent"].ms is not None and r["a1.fsync"].ms is not None and r["reply"].ms is not None
    total = r["total"]
    assert total.partial and total.ms == pytest.approx(20.5)  # p1's assign at 1.002 to l1's Reply at 1.0225
    assert total.why == "only from p1's assign to l1's Reply send (the client does not trace)"
    assert total.spans == ("p1", "a1,a2", "l1")
    # A client that traces but did not sample that frame is said so.
    r = rows(table(events, clients_trace=True))
    assert r["client_to_leader"].why == "the client did not sample that frame"


def test_no_reply_traced_leaves_the_learners_stages_not_traced() -> None:
    events = [e for e in one_write() if e["e"] != "reply"]
    r = rows(table(events))
    assert r["learner_apply"].ms is None and r["learner_apply"].why.startswith("no learner's reply")
    assert r["a1.net_to_learner"].ms is None and r["a1.persist"].ms is not None
    assert r["a1.net_to_learner"].spans == ("a1", "learner")


def test_plain_rich_and_json_outputs() -> None:
    t = table(one_write(client=False), clients_trace=False)
    lines = stages.plain(t)
    assert lines[0] == "where the time went: c.1:2, slot 7, led by p1, answered by l1"
    assert lines[1].split() == ["stage", "ms", "spans", "note"]
    persist = next(x for x in lines if x.startswith("a1 persist"))
    assert persist.split() == ["a1", "persist", "1.000", "a1"]
    assert next(x for x in lines if x.startswith("client_to_leader")).split()[1:2] == ["-"]
    assert "not traced: the client does not trace" in next(x for x in lines if x.startswith("reply_to_client"))
    assert lines[-1].startswith("total") and "only from" in lines[-1]
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=220, color_system=None).print(stages.rich_table(t))
    text = out.getvalue()
    assert "a2 fsync" in text and "3.000" in text and "not traced: the client does not trace" in text
    obj = stages.as_json(t)
    assert json.loads(json.dumps(obj)) == obj
    assert list(obj["stages"])[:3] == ["client_to_leader", "leader_queue", "accept_sent"]
    assert obj["stages"]["a1.fsync"] == {"ms": 2.0, "spans": ["a1"]}
    assert obj["stages"]["client_to_leader"]["ms"] is None and "not_traced" in obj["stages"]["client_to_leader"]
    assert obj["stages"]["total"]["partial"] is True


# --- through the command, on crafted files --------------------------------------------------


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(render(dict(zip(NAMES, free_ports(len(NAMES)), strict=True)), extra=INSECURE))
    write(tmp_path / "data" / "logs", one_write())  # the client c.1 writes client-1.trace
    return path


def trace(config_path: Path, *args: str) -> int:
    return cli.main(["trace", "--config", str(config_path), "--no-pager", "--width", "200", *args])


def test_trace_op_prints_the_chart_then_the_stages_into_a_pipe(config_path: Path, capsys: Any) -> None:
    assert trace(config_path, "--op", OP) == 0
    out = capsys.readouterr().out
    chart, _, table_text = out.partition("where the time went: c.1:2, slot 7, led by p1, answered by l1\n")
    assert "Submit n=2" in chart and "Accept b=1.1 s=7" in chart  # the chart first
    lines = table_text.splitlines()
    assert [x.split()[0] for x in lines[1:4]] == ["client_to_leader", "leader_queue", "accept_sent"]
    assert next(x for x in lines if x.startswith("a2 fsync")).split()[2] == "3.000"
    # a3 is in the config but wrote no trace file: its rows say so.
    a3 = next(x for x in lines if x.startswith("a3 persist"))
    assert a3.endswith("not traced: a3 does not trace (no trace file)")
    assert lines[-1].split()[:2] == ["total", "25.000"]
    assert "┃" not in table_text and "\x1b[" not in table_text  # plain text, not a terminal's table


def test_trace_op_json_svg_and_shiviz(config_path: Path, tmp_path: Path, capsys: Any) -> None:
    assert trace(config_path, "--op", OP, "--json") == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["slot"] == 7 and obj["stages"]["a1.persist"]["ms"] == 1.0 and obj["stages"]["total"]["ms"] == 25.0
    assert trace(config_path, "--op", OP, "--svg", str(tmp_path / "op.svg")) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote ") and "a1 fsync" in out and (tmp_path / "op.svg").exists()
    assert trace(config_path, "--op", OP, "--format", "shiviz") == 0
    out = capsys.readouterr().out
    assert "where the time went" not in out and out.startswith("(?<host>")


def test_trace_op_bad_requests(config_path: Path, tmp_path: Path, capsys: Any) -> None:
    logs = config_path.parent / "data" / "logs"
    before = {p.name: p.read_bytes() for p in logs.iterdir()}
    assert trace(config_path, "--op", "c.1:9") == 1
    captured = capsys.readouterr()
    assert "no traced event carries c.1:9" in captured.err and captured.out == ""
    assert trace(config_path, "--op", "c.1:9", "--json") == 1
    assert "no traced event carries c.1:9" in capsys.readouterr().err
    assert trace(config_path, "--json") == 64
    assert "--op CLIENT:SEQ" in capsys.readouterr().err
    assert trace(config_path, "--op", OP, "--json", "--svg", str(tmp_path / "x.svg")) == 64
    assert "--json is an output of its own" in capsys.readouterr().err
    assert not (tmp_path / "x.svg").exists()
    assert {p.name: p.read_bytes() for p in logs.iterdir()} == before


def test_an_op_whose_assign_is_not_traced_draws_its_chart_and_says_there_are_no_stages(
        config_path: Path, capsys: Any) -> None:
    logs = config_path.parent / "data" / "logs"
    p1 = logs / "p1.trace"
    p1.write_text("".join(x for x in p1.read_text().splitlines(keepends=True) if '"assign"' not in x))
    assert trace(config_path, "--op", OP) == 0
    captured = capsys.readouterr()
    assert "Submit n=2" in captured.out and "where the time went" not in captured.out
    assert f"no leader's assign of {OP} is in the traces: its stages cannot be timed" in captured.err
    assert trace(config_path, "--op", OP, "--json") == 1
    assert captured.out and capsys.readouterr().out == ""
