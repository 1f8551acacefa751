"""The one turn driver (runtime/turn.py): admission, invariants after every step, the end-of-turn
flush, the safe order of a commit and the sync policy, with a shell that records what it is
asked to do."""

import random

import pytest

from actors.acceptor import Acceptor
from actors.ballot import Ballot
from actors.invariants import InvariantViolation
from actors.kv import KVStore
from actors.learner import Learner
from actors.messages import (
    COMMANDS,
    Accept,
    Accepted,
    Hello,
    Prepare,
    Promise,
    StatusQuery,
    StatusReply,
    Submit,
    Value,
)
from actors.proposer import LEADER, Proposer, ProposerParams
from actors.ready import Ready
from actors.records import AcceptRecord, PromiseRecord
from runtime import codec
from runtime.turn import SYNC_EVERY_TICKS, Turn

IDS = {"p1": 1, "p2": 2}
PEERS = ["p1", "p2", "a1", "a2", "a3", "l1"]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def persist(self, records, durable) -> None:
        self.calls.append(("persist", tuple(records), durable))

    def send(self, dest, messages) -> None:
        self.calls.append(("send", dest, tuple(messages)))

    def sync(self) -> None:
        self.calls.append(("sync",))

    def log(self, events) -> None:
        self.calls.append(("log", tuple(e for _, e, _ in events)))

    def act(self, actions) -> None:
        self.calls.append(("act", tuple(actions)))

    def status(self) -> dict:
        return {"pid": 42}


def acceptor_turn() -> tuple[Turn, Recorder, Acceptor]:
    core = Acceptor("a1", IDS, ["l1"], 1 << 20)
    shell = Recorder()
    return Turn(core, shell, [p for p in PEERS if p != "a1"]), shell, core


def frame(sender: str, *messages, identity: str | None = None) -> list[bytes]:
    return [(identity or sender).encode(), codec.encode_frame(sender, list(messages))]


def test_a_turn_persists_then_sends_one_frame_per_destination_then_logs() -> None:
    turn, shell, _ = acceptor_turn()
    b = Ballot(1, 1)
    turn.frames([frame("p1", Prepare(b, 1)), frame("p2", Prepare(Ballot(1, 2), 1))])
    kinds = [c[0] for c in shell.calls]
    assert kinds == ["persist", "send", "send", "log"]  # one write for the whole turn
    assert shell.calls[0] == ("persist", (PromiseRecord(b), PromiseRecord(Ballot(1, 2))), True)
    assert [c[1] for c in shell.calls[1:3]] == ["p1", "p2"]
    assert isinstance(shell.calls[1][2][0], Promise)


def test_admission_rejects_what_is_not_from_where_it_claims_or_not_of_this_cluster() -> None:
    turn, shell, core = acceptor_turn()
    turn.frames([
        frame("p1", Prepare(Ballot(1, 1), 1), identity="p2"),  # claims another name
        frame("mallory", Accept(Ballot(9, 1), 0, ())),  # not an actor of the cluster
        frame("c9", Submit(b"x")),  # a client's Submit is for proposers only
        [b"p1", b"\xc1garbage"],
        [b"p1"],
    ])
    assert core.promised == Ballot(0, 0) and turn.frames_rejected == 5
    assert [c[0] for c in shell.calls] == ["log"]  # nothing persisted, nothing sent
    assert shell.calls[0][1] == ("frame_rejected",) * 5


def test_anyone_may_say_hello_or_ask_for_status_and_the_driver_answers_itself() -> None:
    turn, shell, _ = acceptor_turn()
    turn.frames([frame("c1", Hello(), StatusQuery())])
    (_, dest, (hello, status)), = shell.calls
    assert dest == "c1" and isinstance(hello, Hello) and isinstance(status, StatusReply)
    info = dict(status.info)
    assert info["role"] == "acceptor" and info["pid"] == 42 and info["frames_rejected"] == 0


def test_a_brief_status_query_skips_the_cores_status_which_hashes_a_learners_store() -> None:
    lr = Learner("l1", ["a1", "a2", "a3"], codec.decode_client_batch, KVStore(64, 64), proposer_ids=IDS)
    shell = Recorder()
    turn = Turn(lr, shell, ["p1", "p2", "a1", "a2", "a3"])
    turn.frames([frame("c1", StatusQuery())])
    (_, _, (full,)), = shell.calls
    assert "digest" in dict(full.info)
    shell.calls.clear()
    lr.status = lambda: pytest.fail("a brief query computed the whole status")  # type: ignore[method-assign]
    turn.frames([frame("c1", StatusQuery(brief=True))])
    (_, dest, (brief,)), = shell.calls
    assert dest == "c1" and isinstance(brief, StatusReply) and "digest" not in dict(brief.info)


def test_a_status_query_without_digest_never_hashes_a_learners_store() -> None:
    """The supervisor's watch and the live page ask several times a second: a learner hashing
    its 100k keys each time (tens of ms) cost a saturated cluster more than the page itself."""
    lr = Learner("l1", ["a1", "a2", "a3"], codec.decode_client_batch, KVStore(64, 64), proposer_ids=IDS)
    shell = Recorder()
    turn = Turn(lr, shell, ["p1", "p2", "a1", "a2", "a3"])
    lr.kv.digest = lambda: pytest.fail("a query without digest hashed the store")  # type: ignore[method-assign]
    turn.frames([frame("c1", StatusQuery(digest=False))])
    (_, _, (reply,)), = shell.calls
    info = dict(reply.info)
    assert info["role"] == "learner" and "delivered" in info and "digest" not in info


def test_a_client_submit_reaches_a_proposer_and_is_batched_at_the_end_of_the_turn() -> None:
    p = Proposer("p1", 1, IDS, ["a1", "a2", "a3"], ["l1"], ProposerParams(), random.Random(1))
    shell = Recorder()
    turn = Turn(p, shell, [n for n in PEERS if n != "p1"])
    p.campaign(Ready())
    for a in ("a1", "a2"):
        turn.receive(a, [Promise(p.ballot, 1, 0, 0, 0, ())])
    assert p.state is LEADER
    shell.calls.clear()
    blob = codec.encode_client_batch("c1", 0, [[1, "put", "k", "v"]])
    turn.frames([frame("c1", Submit(blob), Submit(blob))])
    accepts = [m for c in shell.calls if c[0] == "send" for m in c[2] if isinstance(m, Accept)]
    assert accepts and all(len(a.entries) == 1 and a.entries[0][1].batches == (blob, blob) for a in accepts)


def test_the_cores_invariants_are_checked_after_every_step() -> None:
    turn, shell, core = acceptor_turn()
    core.accepted_ballot_max = Ballot(5, 1)  # a state no rule produces: our bug
    with pytest.raises(InvariantViolation, match="an accepted ballot is also promised"):
        turn.frames([frame("p1", Prepare(Ballot(1, 1), 1))])
    assert shell.calls == []  # it stopped before committing anything


def test_a_learner_writes_without_waiting_and_syncs_every_few_ticks() -> None:
    lr = Learner("l1", ["a1", "a2", "a3"], codec.decode_client_batch, KVStore(64, 64), proposer_ids=IDS)
    shell = Recorder()
    turn = Turn(lr, shell, ["p1", "p2", "a1", "a2", "a3"])
    b = Ballot(1, 1)
    blob = codec.encode_client_batch("c1", 0, [[1, "put", "k", "v"]])
    value = Value(COMMANDS, b, (blob,))
    for a in ("a1", "a2"):
        turn.receive(a, [Accepted(b, (1,), (value,))])
    persisted = [c for c in shell.calls if c[0] == "persist"]
    assert len(persisted) == 1 and persisted[0][2] is False  # not durable before the reply
    shell.calls.clear()
    for _ in range(SYNC_EVERY_TICKS):
        turn.tick()
    assert shell.calls.count(("sync",)) == 1


def test_an_acceptor_record_is_durable_before_its_answer() -> None:
    turn, shell, _ = acceptor_turn()
    turn.receive("p1", [Accept(Ballot(1, 1), 0, ())])
    assert shell.calls[0] == ("persist", (AcceptRecord(Ballot(1, 1), 0, ()),), True)
    assert shell.calls[1][0] == "send"
