"""The trace context on frames (runtime/codec.py), the clock, the sampling budget and the writer
(runtime/trace.py), the turn driver's trace events (runtime/turn.py) and the [trace] config."""

from __future__ import annotations

import errno
import json
import random
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actors.ballot import Ballot
from actors.kv import KVStore
from actors.learner import Learner
from actors.messages import COMMANDS, Accept, Accepted, Any_, Prepare, Promise, Reply, Submit, Value
from actors.proposer import LEADER, Proposer, ProposerParams
from actors.ready import Ready
from actors.records import AcceptRecord, DecidedRecord, PromiseRecord
from runtime import codec
from runtime.codec import DecodeError
from runtime.config import ConfigError, load, render
from runtime.trace import (
    FLUSH_AFTER_S,
    FLUSH_LINES,
    OPS_MAX,
    Budget,
    Clock,
    Tracer,
    label,
    labels,
    ops_of,
    record_labels,
    starts_a_trace,
    value_ops,
)
from runtime.tracechart import model
from runtime.turn import Turn

B = Ballot(3, 1)
IDS = {"p1": 1, "p2": 2}


def blob(client: str, *seqs: int) -> bytes:
    return codec.encode_client_batch(client, 0, [[s, "put", f"k{s}", "v"] for s in seqs])


# --- the wire -------------------------------------------------------------------------------


def test_a_frame_carries_its_clock_and_sampled_flag() -> None:
    data = codec.encode_frame("p1", [Prepare(B, 1)], 812, True)
    assert codec.decode_frame_ctx(data) == ("p1", [Prepare(B, 1)], 812, True)
    assert codec.decode_frame(data) == ("p1", [Prepare(B, 1)])
    assert codec.VERSION == 3


def test_a_frame_without_context_reads_as_unsampled_clock_zero() -> None:
    """Hand-made frames of tools and tests ([version, sender, messages]) stay valid."""
    data = msgpack.packb([codec.VERSION, "p1", [[1, 3, 1, 1]]])
    assert codec.decode_frame_ctx(data) == ("p1", [Prepare(B, 1)], 0, False)


def test_the_frame_encoder_shares_messages_and_stamps_each_destination() -> None:
    enc = codec.FrameEncoder("p1")
    m = [Accept(B, 0, ((1, Value(COMMANDS, B, (b"x",))),))]
    a, b = enc.encode(m, 5, False), enc.encode(m, 6, True)
    assert a == codec.encode_frame("p1", m, 5, False) and b == codec.encode_frame("p1", m, 6, True)
    assert a[:-2] == b[:-2]  # the same head and messages; only the tail differs
    assert codec.decode_frame_ctx(b)[2:] == (6, True)
    big = enc.encode(m, 2**63 - 1, False)
    assert codec.decode_frame_ctx(big)[2] == 2**63 - 1


BAD_CONTEXT = {
    "negative lc": ([codec.VERSION, "p1", [], -1, False], "lc must be an integer"),
    "lc of 2^63": ([codec.VERSION, "p1", [], 2**63, False], "lc must be an integer"),
    "bool lc": ([codec.VERSION, "p1", [], True, False], "lc must be an integer"),
    "float lc": ([codec.VERSION, "p1", [], 1.0, False], "lc must be an integer"),
    "string lc": ([codec.VERSION, "p1", [], "1", False], "lc must be an integer"),
    "int sampled": ([codec.VERSION, "p1", [], 1, 1], "sampled must be a bool"),
    "nil sampled": ([codec.VERSION, "p1", [], 1, None], "sampled must be a bool"),
    "lc without sampled": ([codec.VERSION, "p1", [], 1], "a frame is"),
    "one field too many": ([codec.VERSION, "p1", [], 1, False, 0], "a frame is"),
}


@pytest.mark.parametrize("case", list(BAD_CONTEXT), ids=list(BAD_CONTEXT))
def test_a_bad_trace_context_is_a_schema_error(case: str) -> None:
    raw, detail = BAD_CONTEXT[case]
    with pytest.raises(DecodeError) as info:
        codec.decode_frame_ctx(msgpack.packb(raw))
    assert info.value.reason == "schema" and detail in info.value.detail


def test_the_version_is_checked_before_the_context() -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode_frame(msgpack.packb([2, "p1", [], -1, 7]))
    assert info.value.reason == "version"


# --- clock and budget -----------------------------------------------------------------------


def test_the_clock_moves_past_every_frame_received() -> None:
    c = Clock()
    assert c.send() == 1 and c.send() == 2
    assert c.recv(10) == 11  # max(own, frame) + 1
    assert c.recv(3) == 12  # an older frame still moves it on
    assert c.send() == 13


def test_a_forged_clock_cannot_push_ours_out_of_what_peers_decode() -> None:
    c = Clock()
    assert c.recv(2**63 - 1) == 2**32 + 1  # at most 2^32 ahead at once
    c.lc = 2**63 - 2
    assert c.recv(2**63 - 1) == 2**63 - 1 and c.send() == 2**63 - 1 and c.recv(0) == 2**63 - 1
    codec.decode_frame_ctx(codec.encode_frame("p1", [], c.send(), False))  # still a valid frame


def test_the_budget_keeps_its_lower_half_for_turns_that_follow_a_sample() -> None:
    b = Budget(10, now_s=0.0)
    new = sum(b.take(False, 0.0) for _ in range(100))
    assert new == 5  # unprompted frames stop at half the bucket
    following = sum(b.take(True, 0.0) for _ in range(100))
    assert following == 5  # the rest goes to frames that follow a sampled one
    assert not b.take(True, 0.05)  # half a token back: not yet
    assert b.take(True, 0.1)  # a token a tenth of a second
    assert sum(b.take(True, 100.0) for _ in range(100)) == 10  # never more than a second's worth


def test_heartbeats_alone_start_no_trace() -> None:
    from actors.messages import Heartbeat, LeaseRenew

    assert not starts_a_trace([Heartbeat(B, 3), LeaseRenew(B, 1)])
    assert not starts_a_trace([Accept(B, 3, ()), LeaseRenew(B, 1)]) and not starts_a_trace([Accepted(B, (), ())])
    one = Accept(B, 3, ((4, Value(COMMANDS, B, (blob("c.1", 1),))),))
    assert starts_a_trace([Heartbeat(B, 3), one]) and starts_a_trace([Prepare(B, 1)])


# --- labels and ops -------------------------------------------------------------------------


def test_labels_name_ballots_and_slot_ranges() -> None:
    v = Value(COMMANDS, B, (blob("c.1", 1, 2),))
    assert label(Accept(B, 0, ((812, v), (815, v)))) == "Accept b=3.1 s=812..815"
    assert label(Accepted(B, (812,), ())) == "Accepted b=3.1 s=812"
    # No slot: the leader's keep-alive and its answer, said so (not a bare "s=").
    assert label(Accept(B, 0, ())) == "Accept b=3.1 keep-alive"
    assert label(Accepted(B, (), ())) == "Accepted b=3.1 keep-alive"
    assert label(Promise(B, 1, 0, 0, 0, ())) == "Promise b=3.1"
    assert label(Any_(B, 40)) == "Any b=3.1 from=40"  # seed 003's Any(N, I): the round, and from where
    assert labels([Submit(blob("c.1", 4, 5, 6)), Reply(((4, True, None),))]) == ["Submit n=3", "Reply n=1"]
    assert record_labels([PromiseRecord(B), AcceptRecord(B, 0, ((7, v),)), DecidedRecord(5, v),
                          DecidedRecord(6, v), DecidedRecord(9, v)]) == \
        ["promise b=3.1", "accept b=3.1 s=7", "decided s=5..6", "decided s=9"]


def test_ops_are_client_and_seq_of_every_command_carried() -> None:
    v = Value(COMMANDS, B, (blob("c.1", 1, 2), blob("d.2", 7)))
    assert value_ops(v.batches).listed == ["c.1:1", "c.1:2", "d.2:7"]
    assert ops_of([Accept(B, 0, ((1, v),))]).listed == []  # the leader's assign lists them, once
    assert ops_of([Submit(blob("c.1", 3))]).listed == ["c.1:3"]
    assert ops_of([Reply(((3, True, None), (4, False, "no")))], "c.1").listed == ["c.1:3", "c.1:4"]
    for bad in (b"\xc1 not msgpack", b"", codec.pack([1, 2]), codec.pack(["c.1", 0, [[1, "put"]]])[:-3]):
        assert ops_of([Submit(bad)]).listed == []  # a bad batch has none; it is not our job


def test_ops_past_the_cap_are_counted_not_listed() -> None:
    many = [blob("c.1", *range(1, 51)), blob("d.2", *range(1, 51)), blob("e.3", 1)]
    ops = value_ops(many)
    assert ops.more and len(ops.listed) == 64 and ops.listed[-1] == "d.2:14"
    exact = value_ops([blob("c.1", *range(1, 65))])
    assert len(exact.listed) == 64 and not exact.more
    reply = ops_of([Reply(tuple((i, True, None) for i in range(1, 201)))], "c.1")
    assert reply.more and reply.listed[-1] == "c.1:64"


def test_a_large_command_is_read_past_the_first_bytes() -> None:
    big = codec.encode_client_batch("c.1", 0, [[s, "put", "k", "v" * 5000] for s in range(1, 11)])
    assert value_ops([big]).listed == [f"c.1:{s}" for s in range(1, 11)]


# --- the writer -----------------------------------------------------------------------------


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_writer_buffers_a_turn_and_writes_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "a1.trace"
    t = Tracer(path, "a1", clock=lambda: 1234.5)
    t.send("l1", 7, [Accepted(B, (812,), ())])
    t.recv("c.1", 4, 8, [Submit(blob("c.1", 9))])
    t.event("fsync", 8, dur_us=250)
    assert not path.exists()  # nothing before the end of the turn
    t.flush()
    assert read(path) == [
        {"ts": 1234.5, "a": "a1", "e": "send", "lc": 7, "to": "l1", "m": ["Accepted b=3.1 s=812"]},
        {"ts": 1234.5, "a": "a1", "e": "recv", "lc": 8, "from": "c.1", "slc": 4, "m": ["Submit n=1"],
         "ops": ["c.1:9"]},
        {"ts": 1234.5, "a": "a1", "e": "fsync", "lc": 8, "dur_us": 250},
    ]
    assert t.lines == 3 and t.last_ballot == ""


def test_a_dropped_send_says_so_and_the_chart_model_takes_it(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "p1.trace"
    t = Tracer(path, "p1", clock=lambda: 1234.5)
    t.send("a2", 9, [Accepted(B, (812,), ())], dropped=True)
    t.send("a3", 10, [Accepted(B, (812,), ())])
    t.flush()
    lines = read(path)
    assert [line.get("dropped") for line in lines] == [True, None]
    chart = model.build(model.check_all(lines), traced={"p1"})  # a2 and a3 write no trace here
    arrows = [r for r in chart.rows if isinstance(r, model.Arrow)]
    # A dropped message never left: lost even to a peer that writes no trace.
    assert [(a.dst, a.status, a.dropped) for a in arrows] == [("a2", "lost", True), ("a3", "ok", False)]


def test_ops_are_capped_with_their_count(tmp_path: Path) -> None:
    t = Tracer(tmp_path / "p1.trace", "p1")
    t.recv("c.1", 1, 2, [Submit(blob("c.1", *range(1, 101)))])
    t.flush()
    (line,) = read(tmp_path / "p1.trace")
    assert len(line["ops"]) == 64 and line["ops_more"] is True and line["m"] == ["Submit n=100"]


def test_the_writer_rotates_past_its_cap_and_keeps_one_older_file(tmp_path: Path) -> None:
    path = tmp_path / "a1.trace"
    t = Tracer(path, "a1", bytes_max=1000)
    for i in range(100):
        t.event("fsync", i, dur_us=i)
        t.flush()
    older = path.with_name("a1.trace.1")
    assert older.exists() and path.stat().st_size <= 1100 and older.stat().st_size <= 1100
    assert read(path)[-1]["lc"] == 99 and t.lines == 100


def test_a_trace_that_cannot_be_written_is_dropped_never_raised(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where the directory should be")
    t = Tracer(tmp_path / "logs" / "a1.trace", "a1")
    t.event("start", 0, pid=1)
    t.flush()
    assert t.dropped == 1 and t.lines == 0 and t.buf == []


def test_a_busy_turn_waits_for_company_before_writing_but_never_long(tmp_path: Path) -> None:
    path = tmp_path / "a1.trace"
    t = Tracer(path, "a1", clock=lambda: 1.0)
    t.event("fsync", 1, dur_us=5)
    t.flush_due(100.0)
    assert not path.exists()  # one line: kept for the next turns
    t.event("fsync", 2, dur_us=5)
    t.flush_due(100.0 + FLUSH_AFTER_S / 2)
    assert not path.exists()
    t.flush_due(100.0 + FLUSH_AFTER_S * 1.5)  # the oldest has waited long enough (a tick ends a turn)
    assert [e["lc"] for e in read(path)] == [1, 2]
    for i in range(FLUSH_LINES):
        t.event("fsync", 3 + i, dur_us=5)
    t.flush_due(200.0)  # a full buffer goes at once
    assert len(read(path)) == 2 + FLUSH_LINES and t.buf == []


def test_a_line_cut_short_by_a_full_disk_is_truncated_away(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a1.trace"
    t = Tracer(path, "a1", clock=lambda: 1.0)
    t.event("start", 0, pid=1)
    t.flush()
    whole = path.read_bytes()
    real_open = Path.open

    class Cut:  # a file that takes ten bytes, then the disk is full
        def __init__(self, f: Any) -> None:
            self.f = f

        def tell(self) -> int:
            return int(self.f.tell())

        def write(self, data: str) -> int:
            self.f.write(data[:10])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.f.close()

    t.close()
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Cut(real_open(self, *a, **k)))
    t.event("fsync", 1, dur_us=5)
    t.flush()
    monkeypatch.undo()
    assert t.dropped == 1 and path.read_bytes() == whole  # no broken line for the reader to trip on


# --- the turn driver ------------------------------------------------------------------------


class Shell:
    def __init__(self, turn_of: list[Turn]) -> None:
        self.turn_of = turn_of
        self.sent: list[tuple[str, int]] = []

    def persist(self, records, durable) -> None: ...

    def send(self, dest, messages) -> None:
        self.sent.append((dest, self.turn_of[0].clock.send()))

    def sync(self) -> None: ...

    def log(self, events) -> None: ...

    def act(self, actions) -> None: ...

    def status(self) -> dict:
        return {}


def frame(sender: str, lc: int, sampled: bool, *messages) -> list[bytes]:
    return [sender.encode(), codec.encode_frame(sender, list(messages), lc, sampled)]


def leader(tmp_path: Path) -> tuple[Turn, Tracer, Shell]:
    p = Proposer("p1", 1, IDS, ["a1", "a2", "a3"], ["l1"], ProposerParams(), random.Random(1))
    cell: list[Turn] = []
    shell = Shell(cell)
    turn = Turn(p, shell, ["p2", "a1", "a2", "a3", "l1"])
    cell.append(turn)
    p.campaign(Ready())
    for a in ("a1", "a2"):
        turn.receive(a, [Promise(p.ballot, 1, 0, 0, 0, ())])
    assert p.state is LEADER
    tracer = Tracer(tmp_path / "p1.trace", "p1")
    turn.tracer = tracer
    shell.sent.clear()
    return turn, tracer, shell


def test_a_sampled_submit_is_traced_from_its_receive_to_its_slot(tmp_path: Path) -> None:
    turn, tracer, shell = leader(tmp_path)
    turn.frames([frame("c.1", 40, True, Submit(blob("c.1", 1, 2)))])
    assert turn.traced and tracer.spent_s > 0  # what StatusReply's trace_s and the bench's share count
    tracer.flush()
    lines = read(tmp_path / "p1.trace")
    recv = lines[0]
    assert (recv["e"], recv["from"], recv["slc"], recv["ops"]) == ("recv", "c.1", 40, ["c.1:1", "c.1:2"])
    assert recv["lc"] == 41  # past the frame's clock
    (assign,) = [e for e in lines if e["e"] == "assign"]
    assert assign["ops"] == ["c.1:1", "c.1:2"] and isinstance(assign["s"], int)
    assert shell.sent and all(lc > 41 for _, lc in shell.sent)  # every frame it sent follows the receive


def test_a_sampled_batch_assigned_in_a_later_turn_is_still_traced(tmp_path: Path) -> None:
    """The window is full when it arrives: the turn that assigns it (an unsampled one) is traced."""
    p = Proposer("p1", 1, IDS, ["a1", "a2", "a3"], ["l1"], ProposerParams(window_slots=1), random.Random(1))
    cell: list[Turn] = []
    shell = Shell(cell)
    turn = Turn(p, shell, ["p2", "a1", "a2", "a3", "l1"])
    cell.append(turn)
    p.campaign(Ready())
    for a in ("a1", "a2"):
        turn.receive(a, [Promise(p.ballot, 1, 0, 0, 0, ())])
    for a in ("a1", "a2"):  # the StartWorking slot is chosen: the window is free for one slot
        turn.receive(a, [Accepted(p.ballot, (1,), ())])
    tracer = turn.tracer = Tracer(tmp_path / "p1.trace", "p1")
    turn.frames([frame("c.1", 1, False, Submit(blob("c.1", 1)))])  # takes the one slot
    turn.frames([frame("c.1", 2, True, Submit(blob("c.1", 2)))])  # waits: the window is full
    assert not [e for e in tracer.buf if '"assign"' in e]
    tracer.buf.clear()
    turn.frames([frame("a1", 9, False, Accepted(p.ballot, (2,), ())),
                 frame("a2", 9, False, Accepted(p.ballot, (2,), ()))])  # slot 2 chosen: c.1:2 goes out
    assert turn.traced
    assigns = [json.loads(e) for e in tracer.buf if '"assign"' in e]
    assert [(e["s"], e["ops"]) for e in assigns] == [(3, ["c.1:2"])]


def test_a_pipelined_turn_lists_at_most_one_events_worth_of_ops_over_all_its_slots(tmp_path: Path) -> None:
    """A turn assigning dozens of full slots would parse every batch: the turn shares one cap."""
    turn, tracer, _ = leader(tmp_path)
    full = [(s, Value(COMMANDS, B, (blob(f"c{s}.1", *range(1, 41)),))) for s in (5, 6, 7)]
    turn.trace_assigns([Accept(B, 0, tuple(full))])
    assigns = [json.loads(e) for e in tracer.buf if '"assign"' in e]
    assert [(e["s"], len(e["ops"]), e.get("ops_more", False)) for e in assigns] == [(5, 40, False), (6, 24, True)]
    assert sum(len(e["ops"]) for e in assigns) == OPS_MAX


def test_an_unsampled_frame_moves_the_clock_but_traces_nothing(tmp_path: Path) -> None:
    turn, tracer, _ = leader(tmp_path)
    before = turn.clock.lc
    turn.frames([frame("c.1", before + 100, False, Submit(blob("c.1", 1)))])
    assert not turn.traced and tracer.buf == []
    assert turn.clock.lc > before + 100
    turn.tick()
    assert not turn.traced


def test_a_learner_traces_what_it_decides_and_delivers(tmp_path: Path) -> None:
    lr = Learner("l1", ["a1", "a2", "a3"], codec.decode_client_batch, KVStore(64, 64), proposer_ids=IDS)
    cell: list[Turn] = []
    shell = Shell(cell)
    turn = Turn(lr, shell, ["p1", "p2", "a1", "a2", "a3"])
    cell.append(turn)
    tracer = turn.tracer = Tracer(tmp_path / "l1.trace", "l1")
    v1, v2 = Value(COMMANDS, B, (blob("c.1", 1),)), Value(COMMANDS, B, (blob("c.1", 2),))
    # Slot 2 is chosen first: decided, not deliverable (slot 1 is missing).
    turn.frames([frame("a1", 5, True, Accepted(B, (2,), (v2,))), frame("a2", 6, True, Accepted(B, (2,), (v2,)))])
    turn.frames([frame("a1", 7, True, Accepted(B, (1,), (v1,))), frame("a2", 8, True, Accepted(B, (1,), (v1,)))])
    tracer.flush()
    lines = [e for e in read(tmp_path / "l1.trace") if e["e"] in ("decide", "deliver")]
    assert [(e["e"], e["s"]) for e in lines] == [("decide", "2"), ("decide", "1"), ("deliver", "1..2")]
    assert lines[0]["b"] == "3.1" and lines[2]["ops"] == ["c.1:1", "c.1:2"]


# --- config ---------------------------------------------------------------------------------


PORTS = {n: 7000 + i for i, n in enumerate(["p1", "p2", "a1", "a2", "a3", "l1", "l2"])}


def test_the_default_config_traces_with_a_budget() -> None:
    config = load(Path(__file__).resolve().parent.parent / "cluster.toml")
    assert config.trace.enabled and config.trace.frames_per_s == 200 and not config.trace.clients
    assert config.trace_path("a1") == config.data_dir / "logs" / "a1.trace"


@pytest.mark.parametrize("text, key", [
    ("[trace]\nframes_per_s = 0", "trace.frames_per_s: must be positive"),
    ("[trace]\nframes_per_s = 2000000", "trace.frames_per_s: must be at most"),
    ("[trace]\nframes_per_s = 1.5", "trace.frames_per_s: must be int"),
    ("[trace]\nenabled = 1", "trace.enabled: must be bool"),
    ("[trace]\nfile_bytes_max = 1000", "trace.file_bytes_max: must be at least 1 MiB"),
    ("[trace]\nsample = 3", "trace.sample: unknown key"),
])
def test_trace_config_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(render(PORTS, extra=text))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(path)


def test_the_bench_sets_tracing_apart_from_snapshots() -> None:
    """config_text's `snapshots=False` rewrites `enabled = true` lines: never [trace]'s."""
    import tomllib

    from runtime.config import parse
    from runtime.harness.bench import config_text

    base = Path(__file__).resolve().parent.parent / "cluster.toml"
    for trace, enabled, clients in (("", True, False), ("off", False, False), ("clients", True, True)):
        text = config_text(base, 3, True, PORTS, snapshots=False, trace=trace)
        config = parse(tomllib.loads(text), base)
        assert (config.trace.enabled, config.trace.clients, config.snapshot.enabled) == (enabled, clients, False)


def test_a_frame_of_status_answers_is_never_traced() -> None:
    """The supervisor asks every actor for its status several times a second; an answer sent in
    a traced turn was traced, and a scenario's chart drew the supervisor's session as a client."""
    from actors.messages import Hello, StatusReply
    from runtime.trace import status_only

    assert status_only([StatusReply((("role", "acceptor"),))])
    assert not status_only([StatusReply(()), Hello()])  # with anything else in it, the frame may be
