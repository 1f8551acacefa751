"""The client's protocol core, the one that runtime/client.py wraps and the simulator drives:
batching, retries with the same seq, leader tracking, back-pressure, and unknown outcomes."""

from actors.client import ClientCore, ClientParams
from actors.messages import Hello, Redirect, Reply, Submit
from runtime import codec

PARAMS = ClientParams(timeout_s=5.0, retry_s=0.1, batch_bytes_max=4096)


def core(**kw) -> ClientCore:
    return ClientCore("c1", ["p1", "p2"], ["l1", "l2"], codec.encode_client_batch, kw.get("params", PARAMS))


def batches(ready) -> list[list]:
    """(destination, [(client, acked_below, commands, reply_by)]) per frame the core sends."""
    out = []
    for dest, messages, _ in ready.send:
        for m in messages:
            if isinstance(m, Submit):
                raw = codec.decode_client_batch(m.batch)
                out.append((dest, raw[0], raw[1], [list(c) for c in raw[2]], raw[3] if len(raw) > 3 else ""))
    return out


def test_everything_submitted_before_a_flush_travels_in_one_submit_to_the_believed_leader() -> None:
    c = core()
    c.submit(["put", "k", "v"], now=0.0)
    c.submit(["get", "k"], now=0.0)
    assert batches(c.flush(now=0.0)) == [("p1", "c1", 1, [[1, "put", "k", "v"], [2, "get", "k"]], "")]
    assert batches(c.flush(now=0.0)) == []  # nothing twice


def test_a_retry_reuses_the_seq_asks_every_learner_and_backs_off() -> None:
    c = core()
    c.receive("l2", Hello(), now=0.0)  # the learner that answers first attempts
    c.submit(["put", "k", "v"], now=0.0)
    assert batches(c.flush(now=0.0))[0][4] == "l2"
    c.last_reply = 0.0
    assert not c.timer(now=0.05).expired and not c.wants_flush(0.05)  # not due yet
    c.timer(now=0.11)
    (_, _, _, commands, reply_by), = batches(c.flush(now=0.11))
    assert commands == [[1, "put", "k", "v"]] and reply_by == ""  # same seq; any learner answers
    assert c.ops[1].due == 0.11 + 2 * PARAMS.retry_s  # the second resend waits twice as long
    assert c.target == 1  # nothing came back at all: try the other proposer


def test_a_reply_completes_the_operation_and_moves_the_acknowledged_prefix() -> None:
    c = core()
    for i in range(3):
        c.submit(["put", f"k{i}", "v"], now=0.0)
    c.flush(now=0.0)
    ready = c.receive("l1", Reply(((1, True, None), (2, False, "bad_command: x"))), now=0.01)
    assert [(op.seq, ok, result) for op, ok, result in ready.results] == [(1, True, None), (2, False, "bad_command: x")]
    c.submit(["get", "k0"], now=0.02)
    (_, _, acked_below, _, _), = batches(c.flush(now=0.02))
    assert acked_below == 3  # results below seq 3 are held: the session may forget them


def test_redirects_follow_the_leader_hint_and_busy_holds_back() -> None:
    c = core()
    c.submit(["put", "k", "v"], now=0.0)
    c.flush(now=0.0)
    c.receive("p1", Redirect("p2", "not_leader"), now=0.01)
    assert c.target == 1 and batches(c.flush(now=0.01))[0][0] == "p2"
    c.receive("p2", Redirect("p2", "busy"), now=0.02)
    c.submit(["put", "j", "w"], now=0.02)
    assert not c.wants_flush(0.025) and c.wants_flush(0.031)  # a 10 ms hold after "busy"
    c.receive("p1", Redirect("", "not_leader"), now=0.04)  # from a proposer we no longer use
    assert c.target == 1


def test_a_frame_that_cannot_leave_is_queued_again_for_the_next_proposer() -> None:
    c = core()
    c.submit(["put", "k", "v"], now=1.0)
    (dest, _, ops), = c.flush(now=1.0).send
    assert dest == "p1"
    c.unsent(ops, now=1.0)
    assert c.target == 1 and not c.wants_flush(1.01) and c.wants_flush(1.03)
    assert batches(c.flush(now=1.03))[0][0] == "p2"


def test_past_the_deadline_the_outcome_is_unknown_and_the_op_is_forgotten() -> None:
    c = core()
    c.submit(["put", "k", "v"], now=0.0)
    c.flush(now=0.0)
    ready = c.timer(now=5.0)
    assert [op.seq for op in ready.expired] == [1] and not c.ops
    assert c.receive("l1", Reply(((1, True, None),)), now=5.1).results == []  # too late: ignored


def test_hellos_go_to_learners_until_each_answered() -> None:
    c = core()
    assert [d for d, m, _ in c.timer(now=0.0).send] == ["l1", "l2"] and not c.connected
    c.receive("l1", Hello(), now=0.01)
    assert c.connected and [d for d, m, _ in c.timer(now=0.05).send] == ["l2"]
