"""The learner under fast ballots (actors/learner.py, fast mode): a client's command needs a fast
quorum of votes for it; the leader's own proposal there (and any value no FastAccept can make) a
majority."""

from actors.ballot import Ballot
from actors.fast import FAST, FastRules
from actors.kv import KVStore
from actors.learner import Learner
from actors.messages import COMMANDS, START, Accept, Accepted, Fetched, Value, Vote
from runtime import codec

IDS = {"p1": 1}
ACCEPTORS = ["a1", "a2", "a3", "a4", "a5"]  # fast quorum 4, majority 3
B = Ballot(1, 1)


def learner() -> Learner:
    return Learner("l1", ACCEPTORS, codec.decode_client_batch, KVStore(64, 64), proposer_ids=IDS,
                   fast=FastRules(FAST))


def cmd(client: str) -> Value:
    return Value(COMMANDS, B, (codec.encode_client_batch(client, 0, [[1, "put", "k", client]]),))


def test_a_fast_rounds_value_needs_a_fast_quorum() -> None:
    lr = learner()
    x, y = cmd("c1"), cmd("c2")
    for a in ("a1", "a2", "a3"):
        lr.step(a, Accepted(B, (2,), (x,)))
    lr.step("a4", Accepted(B, (2,), (y,)))
    assert 2 not in lr.chosen  # a majority of one value is not chosen under a fast ballot
    lr.step("a5", Accepted(B, (2,), (x,)))
    assert lr.chosen[2] == x


def test_the_leaders_own_proposal_under_a_fast_ballot_needs_a_majority() -> None:
    lr = learner()
    sw = Value(START, B)
    lr.step("p1", Accept(B, 0, ((1, sw),)))
    for a in ("a1", "a2", "a3"):
        lr.step(a, Accepted(B, (1,), ()))
    assert lr.delivered == 1


def test_a_start_working_fetched_from_a_majority_is_learned_without_the_leaders_accept() -> None:
    # Simulator, fast seed 843: the leader's Accept lost, the votes fetched from the acceptors.
    lr = learner()
    sw = Value(START, B)
    for a in ("a1", "a2", "a3"):
        lr.step(a, Fetched(0, (Vote(1, B, sw),)))
    assert lr.delivered == 1
