"""`paxos trace` on trace files (runtime/tracechart/files.py, command.py): a chart from a data
directory, and every kind of bad input refused with its own exit code and a message that names
what is wrong (the file, the line, the byte offset), without writing anything."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from runtime import cli
from runtime.config import SECTIONS, render
from runtime.harness.local import free_ports
from runtime.tracechart import files

pytestmark = pytest.mark.fast

NAMES = ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
INSECURE = "[security]\ncurve = false\n" if "security" in SECTIONS else ""
CRAFTED = Path(__file__).parent / "charts" / "write_one.json"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A cluster's config whose data directory holds the crafted write's trace files, one per
    actor as the actors write them (the client c1 writes none)."""
    path = tmp_path / "cluster.toml"
    path.write_text(render(dict(zip(NAMES, free_ports(len(NAMES)), strict=True)), extra=INSECURE))
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    per_actor: dict[str, list[str]] = {}
    for event in json.loads(CRAFTED.read_text()):
        per_actor.setdefault(event["a"], []).append(json.dumps(event))
    for actor, lines in per_actor.items():
        (logs / f"{actor}.trace").write_text("\n".join(lines) + "\n")
    return path


def logs_of(config_path: Path) -> Path:
    return config_path.parent / "data" / "logs"


def trace(config_path: Path, *args: str) -> int:
    return cli.main(["trace", "--config", str(config_path), "--no-pager", "--width", "200", *args])


def test_a_slot_chart_from_the_files_and_nothing_written(config_path: Path, capsys: Any) -> None:
    logs = logs_of(config_path)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in logs.iterdir()}
    assert trace(config_path, "--slot", "1") == 0
    out = capsys.readouterr().out
    assert "├─Accept b=1.1 s=1" in out and "Accepted b=1.1 s=1" in out
    assert "★ chosen s=1 b=1.1" in out and "✔ delivered s=1" in out and "◆ fsync 480µs" in out
    assert "Nack" not in out  # not about slot 1
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in logs.iterdir()} == before


def test_an_op_end_to_end_and_the_supervisors_exits(config_path: Path, capsys: Any) -> None:
    (logs_of(config_path) / "supervisor.jsonl").write_text(
        json.dumps({"ts": 100.0010, "event": "child_exited", "child": "a3", "pid": 9, "exit": "killed by SIGKILL",
                    "action": "restart", "level": "warning"}) + "\nnot json\n")
    assert trace(config_path, "--op", "c1:1") == 0
    out = capsys.readouterr().out
    assert "Submit n=1" in out and "Reply n=1" in out and "exited: killed by SIGKILL, restarting" in out


def test_outputs_svg_and_shiviz(config_path: Path, tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "chart.svg"
    assert trace(config_path, "--svg", str(target)) == 0
    ET.fromstring(target.read_bytes())
    assert "wrote" in capsys.readouterr().out
    assert trace(config_path, "--format", "shiviz", "--slot", "1") == 0
    out = capsys.readouterr().out
    assert out.split("\n")[0] == r"(?<host>\S*) (?<clock>{.*})\n(?<event>.*)"
    assert trace(config_path, "--svg", str(tmp_path / "no" / "such" / "dir.svg")) == 73
    assert "cannot write" in capsys.readouterr().err


def test_empty_selections_say_why_and_exit_1(config_path: Path, capsys: Any) -> None:
    assert trace(config_path, "--slot", "7..9") == 1
    assert "slots 7..9 are beyond the log: the traced slots reach 1" in capsys.readouterr().err
    assert trace(config_path, "--op", "c1:5") == 1
    assert "c1:5" in capsys.readouterr().err
    assert trace(config_path, "--since", "1000000000", "--until", "1000000001") == 1
    assert "time window" in capsys.readouterr().err


def test_a_corrupt_line_names_the_file_the_line_and_its_byte_offset(config_path: Path, capsys: Any) -> None:
    path = logs_of(config_path) / "a1.trace"
    lines = path.read_bytes().split(b"\n")
    offset = len(lines[0]) + 1 + len(lines[1]) + 1
    lines[2] = b'{"ts": 100.0, "a": "a1", \xff'
    path.write_bytes(b"\n".join(lines))
    before = path.read_bytes()
    assert trace(config_path, "--slot", "1") == 65
    err = capsys.readouterr().err
    assert f"{path}: line 3 (byte offset {offset}): not a JSON line" in err and "corrupt" in err
    assert path.read_bytes() == before
    lines[2] = b'{"ts": 100.0, "a": "a1", "e": "fsync"}'
    path.write_bytes(b"\n".join(lines))
    assert trace(config_path) == 65
    assert f"{path}: line 3 (byte offset {offset}): no 'lc' key" in capsys.readouterr().err
    # With --slot a line naming no slot is skipped unparsed, but only if it is framed as one
    # JSON object: a torn or garbled one is still found.
    lines[2] = b"garbage in the middle"
    path.write_bytes(b"\n".join(lines))
    assert trace(config_path, "--slot", "1") == 65
    assert f"{path}: line 3 (byte offset {offset}): not a JSON line" in capsys.readouterr().err


def test_a_torn_last_line_is_skipped_and_said(config_path: Path, capsys: Any) -> None:
    path = logs_of(config_path) / "a2.trace"
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b'{"ts": 100.5, "a": "a2", "e": "se')
    assert trace(config_path, "--slot", "1") == 0
    captured = capsys.readouterr()
    assert f"{path}: the last line (byte offset {size}) is incomplete" in captured.err
    assert "Accepted b=1.1 s=1" in captured.out


def test_the_logs_of_another_cluster_are_refused(config_path: Path, capsys: Any) -> None:
    logs = logs_of(config_path)
    (logs / "q9.trace").write_text(json.dumps({"ts": 1.0, "a": "q9", "e": "start", "lc": 1, "pid": 3}) + "\n")
    assert trace(config_path) == 65
    assert "actor 'q9' is not in the cluster's membership" in capsys.readouterr().err
    (logs / "q9.trace").unlink()
    with open(logs / "l1.trace", "a") as f:  # an l1 that is a proposer: not this cluster's l1
        f.write(json.dumps({"ts": 300.0, "a": "l1", "e": "start", "lc": 30, "pid": 3, "role": "proposer"}) + "\n")
    assert trace(config_path) == 65
    assert "l1 started as a proposer, but the cluster's l1 is a learner" in capsys.readouterr().err
    lines = (logs / "l1.trace").read_text().splitlines()[:-1]
    lines.append(json.dumps({"ts": 300.0, "a": "a1", "e": "start", "lc": 30, "pid": 3}))
    (logs / "l1.trace").write_text("\n".join(lines) + "\n")
    assert trace(config_path) == 65
    assert "an event of actor 'a1' in l1's file" in capsys.readouterr().err
    lines[-1] = json.dumps({"ts": 50.0, "a": "l1", "e": "start", "lc": 1, "pid": 3})  # another run's, older
    (logs / "l1.trace").write_text("\n".join(lines) + "\n")
    assert trace(config_path) == 65
    assert f"line {len(lines)} " in (err := capsys.readouterr().err) and "lines of another run mixed in" in err


def test_no_trace_files_exit_66(config_path: Path, tmp_path: Path, capsys: Any) -> None:
    for p in logs_of(config_path).glob("*.trace"):
        p.unlink()
    assert trace(config_path) == 66
    assert "no trace files in" in capsys.readouterr().err
    assert trace(config_path, "--data-dir", str(tmp_path / "nowhere")) == 66
    assert "no such directory" in capsys.readouterr().err


def test_a_copied_data_directory_reads_without_the_config(config_path: Path, tmp_path: Path, capsys: Any) -> None:
    copy = tmp_path / "copy"
    (copy / "logs").mkdir(parents=True)
    for p in logs_of(config_path).glob("*.trace"):
        (copy / "logs" / p.name).write_bytes(p.read_bytes())
    assert trace(config_path, "--data-dir", str(copy), "--slot", "1") == 0
    assert "★ chosen s=1" in capsys.readouterr().out


def test_rotated_files_are_read_before_the_current_one(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a1.trace.1").write_text(json.dumps({"ts": 1.0, "a": "a1", "e": "start", "lc": 1}) + "\n")
    (logs / "a1.trace").write_text(json.dumps({"ts": 2.0, "a": "a1", "e": "fsync", "lc": 2, "dur_us": 5}) + "\n")
    loaded = files.load(tmp_path)
    assert [e.kind for e in loaded.events] == ["start", "fsync"]
    assert [p.name for p in loaded.files] == ["a1.trace.1", "a1.trace"]


@pytest.mark.parametrize("args,what", [
    (["--slot", "x"], "--slot"), (["--slot", "0"], "--slot"), (["--slot", "5..2"], "--slot"),
    (["--op", "c1"], "--op"), (["--limit", "0"], "--limit"), (["--since", "yesterday"], "--since"),
    (["--until", "25:00"], "--until"), (["--width", "5"], "--width"), (["--format", "dot"], "--format"),
])
def test_bad_options_exit_64(config_path: Path, args: list[str], what: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        trace(config_path, *args)
    assert exit_.value.code == 64
    assert what in capsys.readouterr().err


def test_options_that_contradict_each_other_exit_64(config_path: Path, tmp_path: Path, capsys: Any) -> None:
    assert trace(config_path, "--since", "17:00", "--until", "16:00") == 64
    assert "--until is before --since" in capsys.readouterr().err
    assert trace(config_path, "--svg", str(tmp_path / "x.svg"), "--format", "shiviz") == 64
    assert not (tmp_path / "x.svg").exists()


def test_since_and_until_forms() -> None:
    from runtime.tracechart.command import when

    now = 1_764_694_000.0
    assert when("30s", now) == now - 30 and when("5m", now) == now - 300 and when("250ms", now) == now - 0.25
    assert when("1764690000.5", now) == 1764690000.5
    assert abs(when("2026-12-02T17:05:00+00:00", now) - 1796231100.0) < 1e-6
    local = when("17:05", now)
    assert 0 <= now - local + 86400 <= 2 * 86400  # today, local time


def test_help_has_a_description_exit_codes_and_examples(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["trace", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "paxos trace --slot 1..3" in text.split("examples:")[1]
    assert "65 a corrupt trace file" in " ".join(text.split())


def _many_slots(data_dir: Path, slots: int) -> None:
    """A leader, three acceptors and a learner writing `slots` slots, one file each, in the
    writer's layout (`ts` first, compact separators)."""
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[str]] = {a: [] for a in ("p1", "a1", "a2", "a3", "l1")}
    lc = dict.fromkeys(out, 0)
    ts = 1_764_694_000.0

    def put(actor: str, **fields: Any) -> None:
        out[actor].append(json.dumps({"ts": ts, "a": actor, **fields}, separators=(",", ":")))

    for s in range(1, slots + 1):
        for a in ("a1", "a2", "a3"):
            ts += 0.001
            lc["p1"] += 1
            sent = lc["p1"]
            put("p1", e="send", lc=sent, to=a, m=[f"Accept b=1.1 s={s}"], ops=[f"c1:{s}"])
            ts += 0.001
            lc[a] = max(lc[a], sent) + 1
            put(a, e="recv", lc=lc[a], **{"from": "p1"}, slc=sent, m=[f"Accept b=1.1 s={s}"])
            put(a, e="persist", lc=lc[a], m=[f"accept b=1.1 s={s}"], bytes=64, durable=True)
            put(a, e="fsync", lc=lc[a], dur_us=300)
            lc[a] += 1
            put(a, e="send", lc=lc[a], to="l1", m=[f"Accepted b=1.1 s={s}"])
            lc["l1"] = max(lc["l1"], lc[a]) + 1
            put("l1", e="recv", lc=lc["l1"], **{"from": a}, slc=lc[a], m=[f"Accepted b=1.1 s={s}"])
        put("l1", e="deliver", lc=lc["l1"], s=s, ops=[f"c1:{s}"])
    for actor, lines in out.items():
        (logs / f"{actor}.trace").write_text("\n".join(lines) + "\n")


def same(a: list[Any], b: list[Any]) -> bool:
    """The same events, whatever their index in what was read."""
    return [(e.ts, e.actor, e.kind, e.lc, e.labels) for e in a] == [(e.ts, e.actor, e.kind, e.lc, e.labels) for e in b]


def test_reading_only_the_tails_or_the_window_draws_what_reading_everything_does(tmp_path: Path) -> None:
    from runtime.tracechart import model, text
    from runtime.tracechart.select import Selection, select

    _many_slots(tmp_path, 300)
    everything = files.load(tmp_path).events
    full = model.limit(model.build(everything), 40, keep="last")
    tails = files.load(tmp_path, tail_lines=40 * 4).events
    assert len(tails) < len(everything) / 5
    drawn = model.limit(model.build(tails, traced=model.traced_actors(everything)), 40, keep="last")
    full.dropped_known = drawn.dropped_known = False  # how many earlier rows: not known from the tails
    assert text.plain(drawn) == text.plain(full)
    since, until = everything[500].ts, everything[900].ts
    window = files.load(tmp_path, since=since, until=until)
    assert len(window.events) < len(everything) / 2
    sel = Selection(since=since, until=until)
    assert same(select(window.events, sel), select(everything, sel))
    assert (window.first_ts, window.last_ts) == (min(e.ts for e in everything), max(e.ts for e in everything))
    by_slot = files.load(tmp_path, slots=(120, 122))
    assert len(by_slot.events) < len(everything) / 2
    sel = Selection(slots=(120, 122))
    assert same(select(by_slot.events, sel), select(everything, sel))
    assert (by_slot.slot_low, by_slot.slot_high) == (1, 300)
    # --op: the lines holding the op, then those of the slot it went into.
    import argparse

    from runtime.tracechart.command import _load

    args = argparse.Namespace(op="c1:77", slot=None, since=None, until=None)
    by_op = _load(tmp_path, None, args, None)
    assert len(by_op.events) < len(everything) / 10
    sel = Selection(op="c1:77")
    assert select(by_op.events, sel) and same(select(by_op.events, sel), select(everything, sel))


def test_a_peer_whose_lines_the_slot_filter_skipped_still_counts_as_traced(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(render(dict(zip(NAMES, free_ports(len(NAMES)), strict=True)), extra=INSECURE))
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    (logs / "p1.trace").write_text(json.dumps({"ts": 1.0, "a": "p1", "e": "send", "lc": 1, "to": "a1",
                                               "m": ["Accept b=1.1 s=1"]}) + "\n")
    (logs / "a1.trace").write_text(json.dumps({"ts": 2.0, "a": "a1", "e": "recv", "lc": 5, "from": "p1", "slc": 9,
                                               "m": ["Accept b=1.1 s=9"]}) + "\n")
    assert trace(path, "--slot", "1") == 0
    assert "Accept b=1.1 s=1 (lost)" in capsys.readouterr().out  # a1 traces: it never took it
