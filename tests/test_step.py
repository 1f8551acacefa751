"""Step mode's holding store and the actor's side of it (runtime/step.py), without processes: a
Stepper on a temporary run directory with a recording send; and the scenario executor's checks
that need no cluster (runtime/harness/scenario_live.py)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from actors.ballot import Ballot
from actors.messages import NOOP, START, Accept, Heartbeat, Message, Prepare, Promise, Value
from actors.records import AcceptRecord
from runtime import codec, step
from runtime.config import load, render
from runtime.harness import scenario_live
from runtime.wal import Wal

pytestmark = pytest.mark.fast

P = Prepare(Ballot(1, 1), 1)


def frame(*messages: Message) -> bytes:
    return codec.encode_frame("p1", list(messages))


class Wire:
    """The transport's send_peer, recorded: (dest, messages)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []

    def __call__(self, dest: str, data: bytes) -> None:
        _, messages = codec.decode_frame(data)
        self.sent.append((dest, [m.TYPE for m in messages]))


def stepper(run_dir: Path, wire: Wire, ticks: str | None = step.TICKS_PAUSED) -> step.Stepper:
    step.set_mode(run_dir, ticks)
    return step.Stepper(run_dir, "p1", wire, lambda: {"state": "follower", "ballot": Ballot(1, 1)})


def ask(run_dir: Path, s: step.Stepper, request: dict[str, object]) -> dict[str, object]:
    req = step.post(run_dir, "p1", request)
    s.poll()
    s.flush()
    index = step.read_index(run_dir, "p1")
    assert index is not None
    answer: dict[str, object] = index["done"][req]
    return answer


def test_the_store_collapses_identical_messages_per_link_and_numbers_the_rest_in_order() -> None:
    store = step.HeldStore("p1", first_number=7)
    a = store.park("a1", P, frame(P), 1)
    again = store.park("a1", P, frame(P), 2)  # a retransmission: the same entry, counted
    b = store.park("a2", P, frame(P), 3)  # the same message on another link: its own entry
    h = Heartbeat(Ballot(1, 1), 0)
    c = store.park("a1", h, frame(h), 4)
    assert again is a and a.count == 2 and a.parked_ms == 1
    assert [e.id for e in (a, b, c)] == ["p1.7", "p1.8", "p1.9"]
    taken, missing = store.take(["p1.9", "p1.7", "p1.99"])
    assert [e.id for e in taken] == ["p1.7", "p1.9"]  # in parking order, whatever the order asked
    assert missing == ["p1.99"]
    assert store.take(["p1.7"]) == ([], ["p1.7"])  # delivered: gone, never another message's id
    d = store.park("a1", P, frame(P), 5)  # parked again after it went: a new entry, a new id
    assert d.id == "p1.10" and d.count == 1
    assert [e.id for e in store.take_all()] == ["p1.8", "p1.10"] and store.view() == []


def test_the_label_names_the_type_ballot_and_slots_and_no_payload() -> None:
    accept = Accept(Ballot(2, 1), 0, ((3, Value(NOOP, Ballot(2, 1))),))
    assert step.label(P) == "prepare ballot=1.1 from_slot=1"
    text = step.label(accept)
    assert text.startswith("accept ballot=2.1") and "slots=3..3" in text and "b'" not in text
    promise = step.label(Promise(Ballot(1, 1), 1, 0, 4, 4, ()))
    assert promise.startswith("promise ballot=1.1") and "highest_slot=4" in promise and "members" not in promise


def test_off_it_sends_at_once_and_on_it_parks_each_message_of_a_frame_on_its_own(tmp_path: Path) -> None:
    wire = Wire()
    s = stepper(tmp_path, wire, ticks=None)
    s.send_peer("a1", frame(P))
    assert wire.sent == [("a1", ["prepare"])] and not s.active
    step.set_mode(tmp_path, step.TICKS_PAUSED)
    s.poll()
    assert s.active and s.ticks_paused
    s.send_peer("a1", frame(Heartbeat(Ballot(1, 1), 0), P))
    assert wire.sent == [("a1", ["prepare"])]  # nothing more left
    s.flush()
    index = step.read_index(tmp_path, "p1")
    assert index is not None
    assert [(e["id"], e["type"], e["to"]) for e in index["held"]] == [("p1.1", "heartbeat", "a1"),
                                                                      ("p1.2", "prepare", "a1")]
    assert index["status"] == {"state": "follower", "ballot": "1.1"}  # as str, as `expect` compares


def test_deliver_drop_and_dup_by_id_and_an_id_that_is_gone_is_said_to_be(tmp_path: Path) -> None:
    wire = Wire()
    s = stepper(tmp_path, wire)
    for dest in ("a1", "a2", "a3"):
        s.send_peer(dest, frame(P))
    done = ask(tmp_path, s, {"op": "deliver", "ids": ["p1.2"]})
    assert done == {"ok": True, "done": ["p1.2"], "missing": [], "sent": {"p1.2": "a2"}}
    assert wire.sent == [("a2", ["prepare"])]
    assert ask(tmp_path, s, {"op": "drop", "ids": ["p1.1"]})["done"] == ["p1.1"]
    assert ask(tmp_path, s, {"op": "dup", "ids": ["p1.3"]})["done"] == ["p1.3"]
    assert wire.sent[1:] == [("a3", ["prepare"]), ("a3", ["prepare"])]  # dropped: never sent
    gone = ask(tmp_path, s, {"op": "deliver", "ids": ["p1.2", "p1.1"]})
    assert gone["ok"] is False and gone["missing"] == ["p1.2", "p1.1"] and len(wire.sent) == 3
    index = step.read_index(tmp_path, "p1")
    assert index is not None and index["held"] == [] and index["sent"] == {"a2": 1, "a3": 2}


def test_tick_and_campaign_requests_reach_the_shell_and_bad_ones_are_refused(tmp_path: Path) -> None:
    s = stepper(tmp_path, Wire())
    ticked: list[int] = []
    s.on_tick = ticked.append
    assert ask(tmp_path, s, {"op": "tick", "n": 20})["ok"] is True and ticked == [20]
    assert ask(tmp_path, s, {"op": "tick", "n": 0})["ok"] is False and ticked == [20]
    assert ask(tmp_path, s, {"op": "campaign"}) == {"ok": False, "error": "not a proposer"}
    assert ask(tmp_path, s, {"op": "explode"})["ok"] is False


def test_leaving_step_mode_sends_everything_held_in_parking_order(tmp_path: Path) -> None:
    wire = Wire()
    s = stepper(tmp_path, wire)
    s.send_peer("a2", frame(P))
    s.send_peer("a1", frame(P, Heartbeat(Ballot(1, 1), 0)))
    s.send_peer("a2", frame(P))  # collapsed into the first: sent once
    step.set_mode(tmp_path, None)
    s.poll()
    assert not s.active
    assert wire.sent == [("a2", ["prepare"]), ("a1", ["prepare"]), ("a1", ["heartbeat"])]
    s.send_peer("a3", frame(P))
    assert wire.sent[-1] == ("a3", ["prepare"])


def test_a_restarted_actor_continues_the_numbering_and_ignores_requests_of_its_past(tmp_path: Path) -> None:
    wire = Wire()
    s = stepper(tmp_path, wire)
    s.send_peer("a1", frame(P))
    s.send_peer("a2", frame(P))
    s.flush()
    step.post(tmp_path, "p1", {"op": "deliver", "ids": ["p1.1"]})  # never read by the first run
    again = step.Stepper(tmp_path, "p1", wire, dict)  # the next run: what the first held died with it
    again.poll()
    assert wire.sent == [] and again.done == {}
    again.send_peer("a1", frame(P))
    assert [e.id for e in again.store.entries.values()] == ["p1.3"]


def test_a_half_written_request_waits_and_garbage_lines_are_skipped(tmp_path: Path) -> None:
    wire = Wire()
    s = stepper(tmp_path, wire)
    s.send_peer("a1", frame(P))
    path = step.requests_path(tmp_path, "p1")
    with open(path, "ab") as f:
        f.write(b"not json\n[1, 2]\n" + b'{"req": "x", "op": "deliver", "ids": ["p1.1"]')
    s.poll()
    assert wire.sent == [] and s.done == {}
    with open(path, "ab") as f:
        f.write(b"}\n")
    s.poll()
    assert wire.sent == [("a1", ["prepare"])] and s.done["x"]["ok"] is True


def test_the_frames_each_sender_sent_are_counted_while_on(tmp_path: Path) -> None:
    s = stepper(tmp_path, Wire())
    peers = {"a1": "tcp://x", "a2": "tcp://y"}
    s.received([[b"a1", b""], [b"a1", b""], [b"abc.def", b""]], peers)
    assert s.recv == {"a1": 2, "abc.def": 1}
    for i in range(step.RECV_KEPT + 10):  # many clients: the oldest clients' counts go, never a peer's
        s.received([[f"c.{i}".encode(), b""]], peers)
    assert len(s.recv) == step.RECV_KEPT and s.recv["a1"] == 2


def test_mode_file_values_and_requests_too_long(tmp_path: Path) -> None:
    assert step.read_mode(tmp_path) is None
    step.set_mode(tmp_path, step.TICKS_RUN)
    assert step.read_mode(tmp_path) == step.TICKS_RUN
    with pytest.raises(ValueError):
        step.set_mode(tmp_path, "sometimes")
    with pytest.raises(ValueError, match="too long"):
        step.post(tmp_path, "p1", {"op": "deliver", "ids": ["p1.1"] * 1000})
    assert json.loads(step.mode_path(tmp_path).read_text()) == {"ticks": "run"}


# --- the scenario executor on real processes, the parts that need no cluster -----------------


def test_every_seed_scenario_is_runnable_on_real_processes_and_others_are_named_unsupported() -> None:
    names = scenario_live.available()
    for name in scenario_live.SEED_SCENARIOS:
        assert scenario_live.unsupported((scenario_live.SCENARIOS_DIR / f"{name}.scn").read_text()) == [], name
    bad = scenario_live.unsupported((scenario_live.SCENARIOS_DIR / "corrupt_file_refused.scn").read_text())
    assert "corrupt_file_refused" in names and any(b.endswith(": corrupt") for b in bad)


def test_scenario_command_line_errors_exit_with_distinct_codes(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert scenario_live.main(["no_such_scenario"]) == scenario_live.EXIT_UNKNOWN_SCENARIO
    assert "no scenario named 'no_such_scenario'" in capsys.readouterr().err
    assert scenario_live.main(["corrupt_file_refused"]) == scenario_live.EXIT_UNSUPPORTED
    assert "not supported on real processes: line" in capsys.readouterr().err
    assert scenario_live.main([]) == scenario_live.EXIT_USAGE
    script = tmp_path / "bad.scn"
    script.write_text('cluster proposers=1\nexpect "p1\n')
    assert scenario_live.main(["--file", str(script)]) == scenario_live.EXIT_USAGE
    assert "No closing quotation" in capsys.readouterr().err
    assert scenario_live.main(["--file", str(tmp_path / "missing.scn")]) == scenario_live.EXIT_USAGE
    assert scenario_live.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert "* seed002_lost_messages" in listed and "simulator only (corrupt" in listed


def test_scenario_chart_options_are_checked_before_anything_runs(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for svg, why in ((tmp_path / "no" / "x.svg", "no directory"), (tmp_path, "it is a directory")):
        assert scenario_live.main(["seed002_lost_messages", "--svg", str(svg)]) == scenario_live.EXIT_CANT_CREATE
        assert f"cannot write {svg}: {why}" in capsys.readouterr().err
    assert scenario_live.main(["seed002_lost_messages", "--width", "5"]) == scenario_live.EXIT_USAGE
    assert "must be 40 to 10000 columns" in capsys.readouterr().err
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert scenario_live.main(["seed002_lost_messages", "--data-dir", str(not_a_dir)]) == scenario_live.EXIT_USAGE
    assert list(tmp_path.iterdir()) == [not_a_dir]  # nothing was created
    assert scenario_live.svg_paths(Path("out/run.svg"), 3) == [Path("out/run.svg"), Path("out/run-cluster2.svg"),
                                                              Path("out/run-cluster3.svg")]


PORTS = {"p1": 1, "a1": 2, "a2": 3, "a3": 4, "l1": 5}  # never bound: the clusters are stopped


def _traced_cluster(root: Path, lines: list[dict[str, object]]) -> scenario_live.ClusterRun:
    """A stopped cluster's directory as `paxos scenario` leaves it: its config and trace files."""
    root.mkdir(parents=True)
    path = root / "cluster.toml"
    path.write_text(render(PORTS, proposers=1, acceptors=3, learners=1))
    logs = load(path).data_dir / "logs"
    logs.mkdir(parents=True)
    for actor in PORTS:
        (logs / f"{actor}.trace").write_text("".join(json.dumps(e) + "\n" for e in lines if e["a"] == actor))
    return scenario_live.ClusterRun(path)


def test_a_script_of_several_clusters_draws_one_titled_chart_each(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    first = _traced_cluster(tmp_path / "cluster1", [
        {"ts": 1.0, "a": "p1", "e": "send", "lc": 1, "to": "a1", "m": ["Prepare b=1.1"], "dropped": True},
        {"ts": 1.1, "a": "p1", "e": "send", "lc": 2, "to": "a1", "m": ["Prepare b=2.1"]},
        {"ts": 1.2, "a": "a1", "e": "recv", "lc": 3, "from": "p1", "slc": 2, "m": ["Prepare b=2.1"]},
        {"ts": 1.3, "a": "l1", "e": "send", "lc": 4, "to": "ab12.cd34", "m": ["Reply n=1"], "ops": ["ab12.cd34:1"]},
    ])
    first.line, first.clients = "line 1: cluster proposers=1 acceptors=3 learners=1", {"ab12.cd34": "c"}
    second = _traced_cluster(tmp_path / "cluster2", [
        {"ts": 5.0, "a": "p1", "e": "send", "lc": 1, "to": "a1", "m": ["Accept b=1.1 s=1"]},
    ])
    second.line = "line 9: cluster proposers=1 acceptors=3 learners=1"
    svg = tmp_path / "run.svg"
    assert scenario_live.draw_charts("two", [first, second], True, svg, 120, 100) == 0
    out = capsys.readouterr().out
    one, two = out.split("\nchart of cluster2")
    assert "chart of cluster1 (line 1: cluster proposers=1 acceptors=3 learners=1) [1 of 2]" in one
    assert "Prepare b=1.1 (dropped)" in one and "Prepare b=2.1" in one and "Accept" not in one
    assert one.splitlines()[2].split()[:4] == ["ms", "c", "p1", "a1"]  # the script's client name, not the id
    assert "(line 9: cluster proposers=1 acceptors=3 learners=1) [2 of 2]" in two and "Accept b=1.1 s=1" in two
    assert "\x1b[" not in out  # not a terminal: no color codes
    for path in (svg, tmp_path / "run-cluster2.svg"):
        assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"
        assert f"wrote {path}" in out
    # A cluster that never wrote a trace (it did not start): said, with `paxos trace`'s code.
    empty = tmp_path / "cluster3"
    empty.mkdir()
    (empty / "cluster.toml").write_text(render(PORTS, proposers=1, acceptors=3, learners=1))
    assert scenario_live.draw_charts("none", [scenario_live.ClusterRun(empty / "cluster.toml")], True, None, None,
                                     100) == scenario_live.EXIT_NO_TRACES
    assert "paxos scenario: no chart of cluster1: " in capsys.readouterr().err


def test_what_an_acceptor_wal_holds_is_read_back_per_slot(tmp_path: Path) -> None:

    path = tmp_path / "a1.wal"
    wal, _ = Wal.open(path, "acceptor", "a1", fsync=False)
    wal.append([AcceptRecord(Ballot(1, 1), 0, ((1, Value(START, Ballot(1, 1))), (2, Value(NOOP, Ballot(1, 1)))))])
    wal.append([AcceptRecord(Ballot(2, 2), 0, ((2, Value(START, Ballot(2, 2))),))])
    wal.close()
    assert scenario_live.accepted(path) == {1: (Ballot(1, 1), "start_working@1.1"),
                                            2: (Ballot(2, 2), "start_working@2.2")}
    assert scenario_live.accepted(tmp_path / "none.wal") == {}




def test_paxos_step_without_a_running_cluster_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime import cli
    from runtime.config import render
    from runtime.harness.local import free_ports

    names = ["p1", "a1", "a2", "a3", "l1"]
    config = tmp_path / "cluster.toml"
    config.write_text(render(dict(zip(names, free_ports(len(names)), strict=True)), proposers=1, learners=1))
    assert cli.main(["step", "--config", str(config)]) == 3
    assert "is not running" in capsys.readouterr().err
    assert cli.main(["step", "hold", "--config", str(config)]) == 3
    assert not step.mode_path(tmp_path / "data" / "run").exists()  # refused: nothing changed
    with pytest.raises(SystemExit) as exit_:
        cli.main(["step", "explode", "--config", str(config)])
    assert exit_.value.code == 64
    with pytest.raises(SystemExit) as exit_:
        cli.main(["up", "--step", "--step-ticks", "sometimes", "--config", str(config)])
    assert exit_.value.code == 64


def test_released_messages_leave_through_the_shells_restamping_send_and_drops_are_reported(tmp_path: Path) -> None:
    """The shell restamps a released message with a fresh trace context (and traces it then), and
    traces a dropped one as lost: `paxos trace` of a stepped run draws the seed's picture."""
    wire, released, dropped = Wire(), Wire(), Wire()
    s = stepper(tmp_path, wire)
    s.release_send, s.on_drop = released, dropped
    for dest in ("a1", "a2"):
        s.send_peer(dest, frame(P))
    ask(tmp_path, s, {"op": "deliver", "ids": ["p1.1"]})
    ask(tmp_path, s, {"op": "drop", "ids": ["p1.2"]})
    assert released.sent == [("a1", ["prepare"])] and dropped.sent == [("a2", ["prepare"])]
    assert wire.sent == []  # nothing went around the shell's send
