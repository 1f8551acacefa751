"""The acceptor's fast path (actors/acceptor.py, fast mode): FastAccepts need an open fast round,
go into the next free slot, are admitted only for the sender's own session, and an acceptor that
recovers a collision by itself never votes below a promise it made since."""

from actors.acceptor import Acceptor
from actors.ballot import Ballot
from actors.fast import COORDINATED, FAST, UNCOORDINATED, FastRules
from actors.messages import COMMANDS, Accept, Accepted, Any_, FastAccept, Prepare, Redirect, Value
from actors.ready import Ready
from actors.records import AcceptRecord
from runtime import codec
from runtime.turn import Turn

IDS = {"p1": 1, "p2": 2}
ACCEPTORS = ["a1", "a2", "a3", "a4"]
B = Ballot(1, 1)  # round 1: a fast ballot in fast mode


def acceptor(recovery: str = COORDINATED) -> Acceptor:
    return Acceptor("a1", IDS, ["l1"], 1 << 20, acceptors=ACCEPTORS, fast=FastRules(FAST, recovery))


def step(a: Acceptor, sender: str, message) -> Ready:
    out = a.step(sender, message)
    a.invariants()
    return out


def batch(client: str, seq: int = 0) -> bytes:
    return codec.encode_client_batch(client, seq, [[seq, "put", "k", client]])


def opened(recovery: str = COORDINATED, from_slot: int = 2) -> Acceptor:
    a = acceptor(recovery)
    step(a, "p1", Prepare(B, 1))
    step(a, "p1", Any_(B, from_slot))
    assert a.any == Any_(B, from_slot)
    return a


def test_without_an_any_a_fast_accept_is_redirected_no_fast_round() -> None:
    a = acceptor()
    out = step(a, "c1", FastAccept(batch("c1")))
    assert out.persist == [] and out.send == [("c1", Redirect("", "no_fast_round"))]
    # A promise alone opens nothing either; nor does an Any under a classic (even) round.
    step(a, "p1", Prepare(Ballot(2, 1), 1))
    step(a, "p1", Any_(Ballot(2, 1), 1))
    out = step(a, "c1", FastAccept(batch("c1")))
    assert [m.reason for _, m in out.send] == ["no_fast_round"] and a.any is None


def test_an_any_below_the_promise_opens_nothing() -> None:
    a = acceptor()
    step(a, "p2", Prepare(Ballot(3, 2), 1))
    step(a, "p1", Any_(B, 1))
    out = step(a, "c1", FastAccept(batch("c1")))
    assert [m.reason for _, m in out.send] == ["no_fast_round"]
    assert out.send[0][1].leader == "p2"  # the owner of the promised ballot


def test_fast_accepts_go_into_the_next_free_slots_from_the_any_on() -> None:
    a = opened(from_slot=2)
    first = step(a, "c1", FastAccept(batch("c1")))
    value = Value(COMMANDS, B, (batch("c1"),))
    assert first.persist == [AcceptRecord(B, 0, ((2, value),))]
    assert ("p1", Accepted(B, (2,), (value,))) in first.send and ("l1", Accepted(B, (2,), (value,))) in first.send
    second = step(a, "c2", FastAccept(batch("c2")))
    assert second.persist[0].entries[0][0] == 3
    # A slot the leader filled above them (a classic Accept) is skipped too.
    step(a, "p1", Accept(B, 0, ((7, Value(COMMANDS, B, (batch("c3"),))),)))
    third = step(a, "c1", FastAccept(batch("c1", 1)))
    assert third.persist[0].entries[0][0] == 8 and a.fast_accepts == 3


def test_a_new_any_of_the_same_ballot_never_moves_the_slots_back() -> None:
    a = opened(from_slot=5)
    step(a, "p1", Any_(B, 3))
    assert a.any == Any_(B, 5)
    assert step(a, "c1", FastAccept(batch("c1"))).persist[0].entries[0][0] == 5


def test_an_uncoordinated_recovery_never_votes_below_a_later_promise() -> None:
    # a1 voted X at slot 2; a2 and a3 voted Y and Z: no value can reach 3 of 4 any more. Had a1
    # promised a later ballot meanwhile, voting in the old round's recovery would break it
    # (fast simulator seed 127, uncoordinated).
    ys = [Value(COMMANDS, B, (batch(c),)) for c in ("c2", "c3")]

    def peers(a: Acceptor) -> list[Ready]:
        return [step(a, peer, Accepted(B, (2,), (y,))) for peer, y in zip(("a2", "a3"), ys, strict=True)]

    a = opened(UNCOORDINATED)
    step(a, "c1", FastAccept(batch("c1")))
    recovery = [r for out in peers(a) for r in out.persist if isinstance(r, AcceptRecord)]
    assert [r.ballot for r in recovery] == [B.recovery()] and a.accepted[2][0] == B.recovery()
    assert a.promised == B  # a recovery round's vote promises only its fast ballot

    late = opened(UNCOORDINATED)
    step(late, "c1", FastAccept(batch("c1")))
    step(late, "p2", Prepare(Ballot(2, 2), 1))
    assert all(out.persist == [] for out in peers(late)) and late.accepted[2][0] == B


class Shell:
    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple]] = []
        self.events: list[tuple] = []

    def persist(self, records, durable) -> None:
        pass

    def send(self, dest, messages) -> None:
        self.sent.append((dest, tuple(messages)))

    def sync(self) -> None:
        pass

    def log(self, events) -> None:
        self.events.extend(events)

    def act(self, actions) -> None:
        pass

    def status(self) -> dict:
        return {}


def test_the_turn_driver_admits_a_client_fast_accept_only_for_its_own_session() -> None:
    core = opened()
    shell = Shell()
    turn = Turn(core, shell, ["p1", "p2", "a2", "a3", "a4", "l1"])
    turn.frames([[b"c1.x", codec.encode_frame("c1.x", [FastAccept(batch("c2.y"))])]])
    assert core.fast_accepts == 0 and turn.frames_rejected == 1
    assert [e[2]["reason"] for e in shell.events if e[1] == "frame_rejected"] == ["session_not_yours"]
    turn.frames([[b"c1.x", codec.encode_frame("c1.x", [FastAccept(batch("c1.x"))])]])
    assert core.fast_accepts == 1 and any(d == "l1" for d, _ in shell.sent)


def test_in_classic_mode_an_acceptor_takes_no_client_frame() -> None:
    core = Acceptor("a1", IDS, ["l1"], 1 << 20, acceptors=ACCEPTORS)
    shell = Shell()
    turn = Turn(core, shell, ["p1", "p2", "a2", "a3", "a4", "l1"])
    turn.frames([[b"c1.x", codec.encode_frame("c1.x", [FastAccept(batch("c1.x"))])]])
    assert turn.frames_rejected == 1 and shell.sent == []
