"""`paxos trace`'s chart, drawn from crafted event lists (runtime/tracechart/): the terminal
text against reviewed golden files, the selections, and the SVG and ShiViz outputs checked for
what their readers need. The events' timestamps are crafted, and the goldens are also checked
to be the same whatever the input order and whatever the timing noise that keeps the order of
events, so timing cannot flake them.

After a deliberate change: `CHART_UPDATE=1 python -m pytest tests/test_chart.py`, then review
the diff of tests/charts/*.golden."""

from __future__ import annotations

import json
import os
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from runtime.tracechart import model, shiviz, svg, text, transcript
from runtime.tracechart.select import Selection, explain_empty, parse_op, parse_slots, select

pytestmark = pytest.mark.fast

CHARTS = Path(__file__).parent / "charts"


def raw_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads((CHARTS / "write_one.json").read_text())
    return events


def events() -> list[model.TraceEvent]:
    return model.check_all(raw_events())


def golden(name: str, got: str) -> None:
    path = CHARTS / name
    if os.environ.get("CHART_UPDATE"):
        path.write_text(got)
    assert path.exists(), f"no golden {path}: run with CHART_UPDATE=1 and review it"
    assert got == path.read_text(), f"{name} changed; if intended, regenerate with CHART_UPDATE=1 and review"


def test_the_chart_of_one_write_matches_its_golden_wide_and_narrow() -> None:
    chart = model.build(events())
    golden("write_one.golden", text.plain(chart, width=200))
    golden("write_one_narrow.golden", text.plain(chart, width=80))


def test_the_chart_does_not_depend_on_how_files_interleave_or_on_timing_noise_that_keeps_the_order() -> None:
    want = text.plain(model.build(events()), width=200, times=False)
    rng = random.Random(7)
    for _ in range(20):
        # Another interleaving of the actors' files (each actor's own lines stay in order, as
        # its file holds them).
        per_actor: dict[str, list[dict[str, Any]]] = {}
        for r in raw_events():
            per_actor.setdefault(r["a"], []).append(r)
        raws = []
        while per_actor:
            actor = rng.choice(sorted(per_actor))
            raws.append(per_actor[actor].pop(0))
            if not per_actor[actor]:
                del per_actor[actor]
        # Every gap stretched or shrunk by the same factor: other times, the same order.
        factor = rng.uniform(0.5, 3.0)
        for r in raws:
            r["ts"] = 100.0 + (r["ts"] - 100.0) * factor
        assert text.plain(model.build(model.check_all(raws)), width=200, times=False) == want


def test_columns_are_clients_then_proposers_acceptors_learners_in_natural_order() -> None:
    assert model.column_order(["l1", "a10", "p2", "a2", "c9", "p1", "a1"]) == \
        ["c9", "p1", "p2", "a1", "a2", "a10", "l1"]
    roles = {"zed": "acceptor", "bob": "proposer"}
    assert model.column_order(["zed", "bob", "l1"], roles) == ["bob", "zed", "l1"]


def test_arrows_join_sends_and_receives_and_say_lost_and_orphan() -> None:
    raws = raw_events()
    # a2's Accepted never reached p1 (its recv is gone): that arrow is lost, not drawn as received.
    raws = [r for r in raws if not (r["a"] == "p1" and r["e"] == "recv" and r.get("from") == "a2")]
    raws.append({"ts": 100.3, "a": "p1", "e": "recv", "lc": 40, "from": "a3", "slc": 99, "m": ["Promise b=2.1"]})
    chart = model.build(model.check_all(raws))
    arrows = [r for r in chart.rows if isinstance(r, model.Arrow)]
    status = {(a.src, a.dst, a.text): a.status for a in arrows}
    assert status[("a2", "p1", "Accepted b=1.1 s=1")] == "lost"
    assert status[("a1", "p1", "Accepted b=1.1 s=1")] == "ok"
    assert status[("a3", "p1", "Promise b=2.1")] == "orphan"
    assert status[("p1", "a3", "Accept b=1.1 s=1")] == "lost"  # a3 crashed before it took it
    # The client writes no trace: its Submit and the Reply to it are plain arrows, not lost ones.
    assert status[("c1", "p1", "Submit n=1")] == "ok"
    assert status[("l1", "c1", "Reply n=1")] == "ok"
    lines = text.plain(chart, width=200)
    assert "Accepted b=1.1 s=1 (lost)" in lines and "?" in lines


def test_a_send_past_the_end_of_its_peers_trace_is_in_flight_not_lost() -> None:
    # A running cluster's traces are read while a1 has not written its receive yet: the Accept
    # sent after a1's last line is in flight; the one before it, which a1 never took, is lost.
    raws = [{"ts": 1.0, "a": "p1", "e": "send", "lc": 1, "to": "a1", "m": ["Accept b=1.1 s=1"]},
            {"ts": 1.5, "a": "a1", "e": "persist", "lc": 1, "m": ["promise b=1.1"]},
            {"ts": 2.0, "a": "p1", "e": "send", "lc": 2, "to": "a1", "m": ["Accept b=1.1 s=2"]}]
    chart = model.build(model.check_all(raws))
    status = {a.text: a.status for a in chart.rows if isinstance(a, model.Arrow)}
    assert status == {"Accept b=1.1 s=1": "lost", "Accept b=1.1 s=2": model.IN_FLIGHT}
    out = text.plain(chart, width=120)
    assert "Accept b=1.1 s=1 (lost)" in out and "Accept b=1.1 s=2 (in flight)" in out
    # Where a1's file ends counts, whether or not a filter kept its last lines.
    later = model.build(model.check_all(raws), ends={"a1": 2.5})
    assert {a.status for a in later.rows if isinstance(a, model.Arrow)} == {"lost"}


def test_a_keep_alive_accept_is_labelled_so_also_from_files_written_before_it_was() -> None:
    from runtime import trace

    assert model.KEEP_ALIVE == trace.KEEP_ALIVE
    old = [{"ts": 1.0, "a": "p1", "e": "send", "lc": 1, "to": "a1", "m": ["Accept b=3.1 s="]},
           {"ts": 1.1, "a": "a1", "e": "recv", "lc": 2, "from": "p1", "slc": 1, "m": ["Accept b=3.1 s="]},
           {"ts": 1.2, "a": "a1", "e": "send", "lc": 3, "to": "p1", "m": ["Accepted b=3.1 s=", "Promise b=3.1"]}]
    evs = model.check_all(old)
    assert [e.labels for e in evs] == [("Accept b=3.1 keep-alive",), ("Accept b=3.1 keep-alive",),
                                       ("Accepted b=3.1 keep-alive", "Promise b=3.1")]
    assert all(e.slots is None for e in evs)  # about no slot: no --slot selection picks it
    out = text.plain(model.build(evs), width=120)
    assert "Accept b=3.1 keep-alive" in out and "Accepted b=3.1 keep-alive" in out and " s=" not in out


def test_a_restarted_senders_repeated_clock_does_not_swallow_a_dropped_message() -> None:
    # Seed 002 on real processes: p1's round-1 Prepare to a2 is dropped in step mode (lc 18);
    # p1 restarts, its clock counts from 0 again, and its round-3 Prepare to a5 is lc 18 too.
    # Joined on (sender, lc) alone, a5's receive took the dropped send and the drop vanished.
    raws: list[dict[str, Any]] = [
        {"ts": 1.0, "a": "p1", "e": "start", "lc": 0, "pid": 10},
        {"ts": 1.1, "a": "p1", "e": "send", "lc": 18, "to": "a2", "m": ["Prepare b=1.1"], "dropped": True},
        {"ts": 1.2, "a": "p1", "e": "send", "lc": 19, "to": "a1", "m": ["Prepare b=1.1"]},
        {"ts": 1.3, "a": "a1", "e": "recv", "lc": 20, "from": "p1", "slc": 19, "m": ["Prepare b=1.1"]},
        {"ts": 1.4, "a": "a2", "e": "start", "lc": 0, "pid": 11},
        {"ts": 1.4, "a": "a5", "e": "start", "lc": 0, "pid": 12},
        {"ts": 2.0, "a": "p1", "e": "start", "lc": 0, "pid": 13},
        # The new run's lc 19 went to a1 as well, with other labels: the receive of each run
        # joins its own run's send.
        {"ts": 2.1, "a": "p1", "e": "send", "lc": 18, "to": "a5", "m": ["Prepare b=3.1"]},
        {"ts": 2.1, "a": "p1", "e": "send", "lc": 19, "to": "a1", "m": ["Prepare b=3.1"]},
        {"ts": 2.2, "a": "a5", "e": "recv", "lc": 40, "from": "p1", "slc": 18, "m": ["Prepare b=3.1"]},
        {"ts": 2.2, "a": "a1", "e": "recv", "lc": 41, "from": "p1", "slc": 19, "m": ["Prepare b=3.1"]},
    ]
    chart = model.build(model.check_all(raws))
    arrows = {(a.src, a.dst, a.text): a for a in chart.rows if isinstance(a, model.Arrow)}
    assert len(arrows) == 4
    dropped = arrows[("p1", "a2", "Prepare b=1.1")]
    assert (dropped.status, dropped.dropped, dropped.recv) == ("lost", True, None)
    for dst, label, sent_ts in (("a1", "Prepare b=1.1", 1.2), ("a5", "Prepare b=3.1", 2.1),
                                ("a1", "Prepare b=3.1", 2.1)):
        arrow = arrows[("p1", dst, label)]
        assert arrow.status == "ok" and arrow.send is not None and arrow.send.ts == sent_ts
    lines = text.plain(chart, width=200)
    assert "Prepare b=1.1 (dropped)" in lines and "(lost)" not in lines
    # A receive can never be of a dropped send, even when it is the only one under its key.
    alone = model.build(model.check_all([raws[1], {**raws[9], "slc": 18, "a": "a2", "m": ["Prepare b=1.1"]}]))
    assert sorted(a.status for a in alone.rows if isinstance(a, model.Arrow)) == ["lost", "orphan"]


def test_renamed_sessions_take_the_scripts_names_in_columns_peers_and_ops() -> None:
    evs = model.check_all([
        {"ts": 1.0, "a": "p1", "e": "assign", "lc": 1, "s": 2, "ops": ["ab12.cd34:1", "ef56.0000:7"]},
        {"ts": 1.1, "a": "l1", "e": "send", "lc": 2, "to": "ab12.cd34", "m": ["Reply n=1"], "ops": ["ab12.cd34:1"]},
    ])
    renamed = model.rename(evs, {"ab12.cd34": "c"})
    assert [(e.actor, e.peer, e.ops) for e in renamed] == [("p1", None, ("c:1", "ef56.0000:7")),
                                                           ("l1", "c", ("c:1",))]
    assert model.build(renamed).columns == ["c", "p1", "l1"]
    assert model.rename(evs, {}) == evs


def test_slot_selection_keeps_the_slots_messages_their_fsyncs_and_the_crash_in_between() -> None:
    chosen = select(events(), Selection(slots=(1, 1)))
    kinds = [(e.actor, e.kind) for e in chosen]
    assert ("a1", "fsync") in kinds and ("a2", "fsync") in kinds
    assert ("a3", "crash") in kinds  # a3 was sent an Accept of slot 1 and crashed while it went on
    assert ("a3", "start") not in kinds  # its restart came after slot 1's story ended
    assert not any(e.labels and e.labels[0].startswith("Nack") for e in chosen)
    assert not any(e.labels and e.labels[0].startswith("Submit") for e in chosen)  # no slot named


def test_op_selection_follows_one_command_from_its_submit_to_its_reply() -> None:
    chosen = select(events(), Selection(op="c1:1"))
    labels = {lab for e in chosen for lab in e.labels}
    assert {"Submit n=1", "Accept b=1.1 s=1", "Accepted b=1.1 s=1", "Reply n=1"} <= labels
    assert {e.kind for e in chosen} >= {"assign", "decide", "deliver", "reply", "fsync"}
    assert select(events(), Selection(op="c1:2")) == []


def test_time_window_and_limits() -> None:
    chosen = select(events(), Selection(since=100.0010, until=100.0018))
    assert chosen and all(100.0010 <= e.ts <= 100.0018 for e in chosen)
    chart = model.build(events())
    first = model.limit(chart, 5)
    assert len(first.rows) == 5 and first.dropped_rows == len(chart.rows) - 5
    assert text.plain(first).rstrip().endswith("raise --limit)")
    last = model.limit(chart, 3, keep="last")
    assert last.rows == chart.rows[-3:] and "earlier rows not shown" in text.plain(last)


def test_an_empty_selection_says_why() -> None:
    evs = events()
    assert explain_empty(evs, Selection(slots=(9, 12))) == "slots 9..12 are beyond the log: the traced slots reach 1"
    assert "below the compaction point" in explain_empty(
        model.check_all([{"ts": 1.0, "a": "l1", "e": "deliver", "lc": 1, "s": 50}]), Selection(slots=(3, 3)),
        compacted_through=40)
    assert "older than the traces: they start at slot 50" in explain_empty(
        model.check_all([{"ts": 1.0, "a": "l1", "e": "deliver", "lc": 1, "s": 50}]), Selection(slots=(3, 3)))
    assert "client 'zz'" in explain_empty(evs, Selection(op="zz:1"))
    assert "time window" in explain_empty(evs, Selection(since=500.0))
    assert "no trace events at all" in explain_empty([], Selection(slots=(1, 1)))


@pytest.mark.parametrize("bad", ["0", "x", "3..1", "1..", "-2", "1...3", str(1 << 63)])
def test_bad_slot_arguments_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_slots(bad)


def test_slot_and_op_arguments() -> None:
    assert parse_slots("7") == (7, 7) and parse_slots("1..3") == (1, 3)
    assert parse_op("4e91cd.93ce:12") == "4e91cd.93ce:12"
    for bad in ("c1", ":3", "c1:x", "c1:"):
        with pytest.raises(ValueError):
            parse_op(bad)


@pytest.mark.parametrize("raw,why", [
    ([1, 2], "JSON object"),
    ({"a": "p1", "e": "send", "lc": 1}, "no 'ts'"),
    ({"ts": 1.0, "a": "p1", "e": "send", "lc": "3", "to": "a1"}, "'lc' is '3'"),
    ({"ts": 1.0, "a": "p1", "e": "teleport", "lc": 1}, "unknown event kind"),
    ({"ts": 1.0, "a": "p1", "e": "send", "lc": 1}, "needs 'to'"),
    ({"ts": 1.0, "a": "p1", "e": "recv", "lc": 1, "from": "a1"}, "needs 'slc'"),
    ({"ts": 1.0, "a": "p1", "e": "decide", "lc": 1, "s": "x..y"}, "not a slot"),
    ({"ts": 1.0, "a": "p1", "e": "send", "lc": 1, "to": "a1", "m": [3]}, "list of labels"),
])
def test_events_off_the_schema_are_refused_by_name(raw: Any, why: str) -> None:
    with pytest.raises(model.TraceFormatError, match=re.escape(why)) as info:
        model.check(raw, 0, "x.trace: line 3 (byte offset 120)")
    assert str(info.value).startswith("x.trace: line 3 (byte offset 120): ")


SHIVIZ_PAIR = re.compile(r"(?P<host>\S*) (?P<clock>{.*})\n(?P<event>.*)")  # shiviz.REGEX in Python's syntax


def _shiviz(chart: model.Chart) -> list[tuple[str, dict[str, int], str]]:
    out = shiviz.render(chart)
    header, blank, *rest = out.rstrip("\n").split("\n")
    assert header == shiviz.REGEX and blank == ""
    assert header.replace("(?<", "(?P<") == SHIVIZ_PAIR.pattern
    assert len(rest) % 2 == 0
    parsed = []
    for i in range(0, len(rest), 2):
        m = SHIVIZ_PAIR.fullmatch(rest[i] + "\n" + rest[i + 1])
        assert m, rest[i:i + 2]
        parsed.append((m["host"], json.loads(m["clock"]), m["event"]))
    return parsed


def test_shiviz_log_parses_with_its_regex_and_its_vector_clocks_are_consistent() -> None:
    chart = model.build(events())
    parsed = _shiviz(chart)
    # A mark is one event, a message two (its send and its receive), a lost or orphan one only one.
    assert len(parsed) == sum(1 if isinstance(r, model.Mark) or r.status != "ok" else 2 for r in chart.rows)
    seen: dict[str, int] = {}
    for host, clock, _ in parsed:
        assert clock[host] == seen.get(host, 0) + 1  # each host's own entry counts its events
        seen[host] = clock[host]
        for other, value in clock.items():  # everything it knows of happened, earlier in the file
            assert value <= seen.get(other, 0)
    hosts = {h for h, _, _ in parsed}
    assert hosts == set(chart.columns)
    by_text = {(h, e): c for h, c, e in parsed}
    send = by_text[("a1", "send Accepted b=1.1 s=1 to p1")]
    recv = by_text[("p1", "recv Accepted b=1.1 s=1 from a1")]
    assert all(recv.get(k, 0) >= v for k, v in send.items())  # the receive happened after the send
    submit = by_text[("c1", "send Submit n=1 to p1")]  # the untraced client gets its send
    assert submit == {"c1": 1}


def test_shiviz_breaks_receives_that_wait_on_each_other_instead_of_hanging() -> None:
    # Two receives whose sends each come after the other's receive: no order satisfies both.
    raws = [
        {"ts": 1.0, "a": "p1", "e": "recv", "lc": 1, "from": "a1", "slc": 2, "m": ["Promise b=1.1"]},
        {"ts": 2.0, "a": "p1", "e": "send", "lc": 2, "to": "a1", "m": ["Prepare b=1.1"]},
        {"ts": 1.0, "a": "a1", "e": "recv", "lc": 1, "from": "p1", "slc": 2, "m": ["Prepare b=1.1"]},
        {"ts": 2.0, "a": "a1", "e": "send", "lc": 2, "to": "p1", "m": ["Promise b=1.1"]},
    ]
    parsed = _shiviz(model.build(model.check_all(raws)))
    assert len(parsed) == 4
    assert sum("edge dropped" in e for _, _, e in parsed) == 1


def test_svg_is_well_formed_xml_with_an_arrow_per_message_and_a_lifeline_per_actor() -> None:
    chart = model.build(events())
    doc = svg.render(chart, title="one <write> & its reply")
    root = ET.fromstring(doc.encode())
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    lines = root.findall(f".//{ns}line")
    arrows = [r for r in chart.rows if isinstance(r, model.Arrow)]
    assert len(lines) == len(chart.columns) + len(arrows)
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "Accepted b=1.1 s=1" in texts and "chosen s=1 b=1.1" in texts
    assert root.find(f"{ns}title").text == "one <write> & its reply"  # type: ignore[union-attr]


def test_a_scenario_transcript_draws_the_same_kind_of_chart() -> None:
    evs = transcript.events((CHARTS / "lost_messages.transcript").read_text())
    chart = model.build(evs)
    assert chart.columns == ["p1", "a1", "a2", "a3", "a4", "a5"]
    arrows = [r for r in chart.rows if isinstance(r, model.Arrow)]
    # The dropped Prepares of round 1 are lost messages; the delivered ones are answered.
    assert [(a.dst, a.status) for a in arrows[:5]] == [("a2", "lost"), ("a3", "lost"), ("a4", "lost"),
                                                        ("a1", "ok"), ("a5", "ok")]
    assert {a.text for a in arrows} >= {"Prepare b=1.1", "Promise b=2.1", "Accept b=2.1 s=2",
                                         "Accept b=2.1 keep-alive"}
    golden("lost_messages.golden", text.plain(chart, width=140, times=False))


def test_transcript_labels() -> None:
    assert transcript.label("accept 2.1 2:cmd@2.1[c/1 put x V1], 3:noop@2.1") == "Accept b=2.1 s=2..3"
    assert transcript.label("accepted 1.1 slots=1,2 values=[x]") == "Accepted b=1.1 s=1..2"
    assert transcript.label("nack 1.1 promised=1.2") == "Nack promised=1.2"
    assert transcript.label("accept 1.1 (heartbeat) chosen_through=0") == "Accept b=1.1 keep-alive"
    assert transcript.label("accepted 1.1 slots=-") == "Accepted b=1.1 keep-alive"
    assert transcript.label("snapshot-offer slot=3 bytes=10") == "SnapshotOffer"


def test_every_scenario_transcript_draws_a_chart() -> None:
    # What a later task wires into the scenarios: each golden transcript of tests/scenarios has
    # arrows, and every delivered message of it is an arrow that is not lost.
    for path in sorted((Path(__file__).parent / "scenarios").glob("*.golden")):
        script = path.read_text()
        chart = model.build(transcript.events(script))
        arrows = [r for r in chart.rows if isinstance(r, model.Arrow)]
        delivered = sum(1 for line in script.splitlines() if line.startswith("  deliver "))
        assert sum(1 for a in arrows if a.status == "ok") == delivered, path.name
        assert transcript.chart_text(script).count("\n") <= 402
