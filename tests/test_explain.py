"""`paxos explain SLOT` on crafted files, written through the real wal writer and codec: a slot
a majority chose, one a minority voted for, one the epoch rule skipped (with the numbers, checked
against the learner core itself), two values chosen (exit 3), a slot beyond the log and one below
compaction (exit 5), a corrupt file in the middle (named with its offset, the rest explained,
exit 6), a torn tail (still being written, not corruption), files of another cluster (exit 7),
fast-mode and membership quorums, and that explaining writes nothing and takes no lock."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from actors.ballot import Ballot
from actors.kv import KVStore
from actors.learner import Learner
from actors.membership import encode as encode_membership
from actors.messages import COMMANDS, MEMBERSHIP, NOOP, START, Value
from actors.records import AcceptRecord, DecidedRecord, PromiseRecord, Record, SnapshotRecord
from runtime import cli, codec
from runtime.config import ClusterConfig, render
from runtime.explain import (
    EXIT_EXPLAINED,
    EXIT_FILE_BAD,
    EXIT_FOREIGN,
    EXIT_NOT_IN_LOG,
    EXIT_VIOLATION,
    explain,
    file_in_use,
    render_text,
)
from runtime.members import load
from runtime.storage import DISK, SnapshotDir
from runtime.wal import HEADER_BYTES, Wal, frame, scan

pytestmark = pytest.mark.fast

B11, B22, B31, B42 = Ballot(1, 1), Ballot(2, 2), Ballot(3, 1), Ballot(4, 2)


def make_config(tmp_path: Path, acceptors: int = 3, extra: str = "") -> ClusterConfig:
    names = ["p1", "p2", *(f"a{i}" for i in range(1, acceptors + 1)), "l1", "l2"]
    ports = {n: 7000 + i for i, n in enumerate(names)}  # never bound: nothing runs here
    path = tmp_path / "cluster.toml"
    path.write_text(render(ports, acceptors=acceptors, extra="[security]\ncurve = false\n" + extra))
    return load(path)


def write(config: ClusterConfig, name: str, frames: list[list[Record]]) -> Path:
    role = config.actor(name).role
    wal, _ = Wal.open(config.wal_path(name), role, name, fsync=False)
    for records in frames:
        wal.append(records, sync=False)
    wal.close()
    return config.wal_path(name)


def cmd(epoch: Ballot, client: str = "c1", seq: int = 1, key: str = "k") -> Value:
    return Value(COMMANDS, epoch, (codec.encode_client_batch(client, 0, [[seq, "put", key, "v"]]),))


def start(epoch: Ballot) -> Value:
    return Value(START, epoch)


def vote(ballot: Ballot, slot: int, value: Value, chosen_through: int = 0) -> list[Record]:
    return [AcceptRecord(ballot, chosen_through, ((slot, value),))]


def decided(log: dict[int, Value], through: int) -> list[list[Record]]:
    return [[DecidedRecord(s, log[s])] for s in range(1, through + 1)]


# A small log: StartWorking of epoch 1.1, then two commands.
LOG = {1: start(B11), 2: cmd(B11, seq=1, key="a"), 3: cmd(B11, seq=2, key="greeting")}


def cluster_of(config: ClusterConfig, voters: dict[str, list[int]], l1: int = 3, l2: int = 2,
               log: dict[int, Value] = LOG) -> None:
    """Acceptors vote under 1.1 for the slots given; the learners delivered through l1 and l2."""
    for a in config.acceptors:
        slots = voters.get(a.name, [])
        write(config, a.name, [[PromiseRecord(B11)], *(vote(B11, s, log[s]) for s in slots)])
    write(config, "l1", decided(log, l1))
    write(config, "l2", decided(log, l2))


def run(config: ClusterConfig, *args: str) -> int:
    return cli.main(["explain", *args, "--config", str(config.path)])


def as_json(config: ClusterConfig, slot: int, capsys: Any) -> tuple[int, dict[str, Any]]:
    code = run(config, str(slot), "--json")
    return code, json.loads(capsys.readouterr().out)


# --- chosen or not -----------------------------------------------------------------------------


def test_a_slot_a_majority_chose(tmp_path: Path, capsys: Any) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2]})
    code, out = as_json(config, 3, capsys)
    assert code == EXIT_EXPLAINED and out["exit_code"] == 0
    assert out["verdict"] == "chosen"
    [choice] = out["chosen"]
    assert choice["ballot"] == "1.1" and choice["voters"] == ["a1", "a2"] and choice["quorum"] == 2
    assert choice["value"]["commands"] == [{"client": "c1", "seq": 2, "op": "put", "key": "greeting"}]
    acceptors = {a["name"]: a for a in out["acceptors"]}
    assert acceptors["a1"]["promised"] == "1.1" and [v["ballot"] for v in acceptors["a1"]["votes"]] == ["1.1"]
    assert acceptors["a3"]["votes"] == [] and acceptors["a3"]["highest_slot"] == 2
    learners = {lv["name"]: lv for lv in out["learners"]}
    assert learners["l1"]["delivered"] == "yes" and learners["l1"]["outcome"].startswith("applied")
    assert learners["l2"]["delivered"] == "no" and "delivered through slot 2" in learners["l2"]["outcome"]
    assert out["files"] == []
    assert run(config, "3") == 0
    text = capsys.readouterr().out
    assert "chose epoch 1.1's commands" in text and "a majority (2 of 3 needed)" in text and "'greeting'" in text


def test_a_slot_only_a_minority_accepted_is_not_chosen(tmp_path: Path, capsys: Any) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2], "a3": [1, 2]}, l1=2)
    code, out = as_json(config, 3, capsys)
    assert code == EXIT_EXPLAINED
    assert out["verdict"] == "not_chosen" and out["chosen"] == []
    assert "a1 voted for it, fewer than a majority of 2 of 3" in out["summary"]
    assert all(lv["delivered"] == "no" for lv in out["learners"])


def test_votes_under_different_ballots_do_not_add_up(tmp_path: Path, capsys: Any) -> None:
    # a1 under 1.1 and a2 under 2.2: one vote each per ballot, no quorum under either.
    config = make_config(tmp_path)
    write(config, "a1", [vote(B11, 1, start(B11))])
    write(config, "a2", [vote(B22, 1, start(B11))])
    write(config, "a3", [[PromiseRecord(B22)]])
    write(config, "l1", [])
    write(config, "l2", [])
    code, out = as_json(config, 1, capsys)
    assert code == EXIT_EXPLAINED and out["verdict"] == "not_chosen"


# --- the epoch rule ------------------------------------------------------------------------------


def ghost_log() -> dict[int, Value]:
    """Seed 001's ghost: epoch 3.1's command at slot 9, after epoch 4.2 started at slot 7."""
    log = {1: start(B11), 2: cmd(B11, seq=1), 3: start(B31), 4: cmd(B31, seq=2), 5: Value(NOOP, B31),
           6: cmd(B31, seq=3), 7: start(B42), 8: cmd(B42, seq=4), 9: cmd(B31, "c2", 1, "ghost")}
    return log


def test_a_command_the_epoch_rule_skipped_is_explained_with_the_numbers(tmp_path: Path, capsys: Any) -> None:
    config = make_config(tmp_path)
    log = ghost_log()
    slots = list(log)
    cluster_of(config, {"a1": slots, "a2": slots, "a3": slots}, l1=9, l2=9, log=log)
    code, out = as_json(config, 9, capsys)
    assert code == EXIT_EXPLAINED and out["verdict"] == "chosen"
    learners = {lv["name"]: lv for lv in out["learners"]}
    rule = "slot 9 holds epoch 3.1's command, skipped: epoch 4.2 started at slot 7"
    assert rule in learners["l1"]["outcome"] and learners["l1"]["epoch_before"] == "4.2"
    assert learners["l1"]["epoch_slot"] == 7
    assert rule in out["summary"]
    # The same verdict as the learner core's own rule, replaying the same decisions.
    core = Learner("l1", ["a1", "a2", "a3"], codec.decode_client_batch, KVStore(1024, 1024))
    ghosts = [s for s in slots if core.apply(DecidedRecord(s, log[s])).ghost]
    assert ghosts == [9]
    # A StartWorking and a command of the epoch in force are not skipped.
    assert explain(config, 7).learners[0].outcome == "epoch 4.2 started here"
    assert explain(config, 8).learners[0].outcome.startswith("applied")


def test_the_epoch_rule_after_a_snapshot_names_the_snapshot(tmp_path: Path, capsys: Any) -> None:
    # l1 restored a snapshot of slot 6 holding epoch 4.2; slot 7 holds epoch 3.1's command.
    config = make_config(tmp_path)
    ghost = cmd(B31, "c2", 1, "ghost")
    for a in ("a1", "a2", "a3"):
        write(config, a, [[SnapshotRecord(6, 10, 0)], vote(B42, 7, ghost)])
    snaps = SnapshotDir(DISK, config.snapshot_dir("l1"))
    f = snaps.write("learner", "l1", 6, [6, 4, 2, 0, []])
    write(config, "l1", [[SnapshotRecord(6, f.size_bytes, f.crc)], [DecidedRecord(7, ghost)]])
    write(config, "l2", [])
    out = explain(config, 7)
    assert out.exit_code == EXIT_EXPLAINED
    assert ("slot 7 holds epoch 3.1's command, skipped: epoch 4.2 started at or before slot 6"
            in out.learners[0].outcome)
    assert out.learners[0].epoch_slot is None


# --- safety violations ---------------------------------------------------------------------------


def test_two_values_chosen_for_one_slot_is_a_violation_exit_3(tmp_path: Path, capsys: Any) -> None:
    config = make_config(tmp_path)
    first, second = cmd(B11, "c1", 1, "x"), cmd(B22, "c2", 1, "y")
    write(config, "a1", [vote(B11, 1, first)])
    write(config, "a2", [vote(B11, 1, first), vote(B22, 1, second)])  # P2c broken: a second value
    write(config, "a3", [vote(B22, 1, second)])
    write(config, "l1", [[DecidedRecord(1, first)]])
    write(config, "l2", [])
    code, out = as_json(config, 1, capsys)
    assert code == EXIT_VIOLATION and out["verdict"] == "violation"
    assert [(c["ballot"], c["voters"]) for c in out["chosen"]] == [("1.1", ["a1", "a2"]), ("2.2", ["a2", "a3"])]
    assert "2 different values chosen" in out["violations"][0]
    assert run(config, "1") == EXIT_VIOLATION
    assert "safety violation" in capsys.readouterr().err


def test_learners_that_delivered_different_values_are_a_violation(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    for a in ("a1", "a2", "a3"):
        write(config, a, [[PromiseRecord(B11)]])
    write(config, "l1", [[DecidedRecord(1, cmd(B11, key="x"))]])
    write(config, "l2", [[DecidedRecord(1, cmd(B11, key="y"))]])
    out = explain(config, 1)
    assert out.exit_code == EXIT_VIOLATION
    assert "learners delivered different values for slot 1" in out.violations[0]


def test_a_learner_that_delivered_what_the_acceptors_did_not_choose_is_a_violation(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    for a in ("a1", "a2"):
        write(config, a, [vote(B11, 1, cmd(B11, key="x"))])
    write(config, "a3", [])
    write(config, "l1", [[DecidedRecord(1, cmd(B11, key="y"))]])
    write(config, "l2", [])
    out = explain(config, 1)
    assert out.exit_code == EXIT_VIOLATION and "l1 delivered" in out.violations[0]


# --- not in the log --------------------------------------------------------------------------------


def test_a_slot_beyond_the_log_exit_5(tmp_path: Path, capsys: Any) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2]})
    assert run(config, "100") == EXIT_NOT_IN_LOG
    captured = capsys.readouterr()
    assert "slot 100 is beyond the log: the highest slot any file holds is 3 (a1)" in captured.out
    assert "beyond the log" in captured.err


def test_a_slot_below_the_compaction_point_says_which(tmp_path: Path, capsys: Any) -> None:
    config = make_config(tmp_path)
    for a in ("a1", "a2", "a3"):
        write(config, a, [[SnapshotRecord(50, 10, 0)], [PromiseRecord(B11)], vote(B11, 51, cmd(B11))])
    snaps = SnapshotDir(DISK, config.snapshot_dir("l1"))
    f = snaps.write("learner", "l1", 50, [50, 1, 1, 0, []])
    write(config, "l1", [[SnapshotRecord(50, f.size_bytes, f.crc)]])
    write(config, "l2", [])
    code, out = as_json(config, 10, capsys)
    assert code == EXIT_NOT_IN_LOG and out["verdict"] == "compacted"
    assert "slot 10 is below the compaction point (a1 through 50, a2 through 50, a3 through 50)" in out["summary"]
    assert "delivered by l1 (inside their snapshots)" in out["summary"]
    # The slot after it is still explained (a majority of one ballot).
    assert explain(config, 51).verdict == "chosen"


# --- damaged files -------------------------------------------------------------------------------


def test_a_corrupt_file_in_the_middle_is_named_with_its_offset_and_the_rest_explained(tmp_path: Path,
                                                                                      capsys: Any) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2, 3]})
    path = config.wal_path("a2")
    data = bytearray(path.read_bytes())
    # The frame of slot 2's vote: after the header, the promise and slot 1's vote.
    payloads, _, _ = scan(path, bytes(data))
    write_at = sum(HEADER_BYTES + len(p) for p in payloads[:3])
    data[write_at + 14] ^= 0xFF  # a flipped bit inside that frame, with valid frames after it
    path.write_bytes(bytes(data))
    code, out = as_json(config, 3, capsys)
    assert code == EXIT_FILE_BAD
    [bad] = out["files"]
    assert bad["name"] == "a2" and bad["status"] == "corrupt" and bad["offset"] == write_at
    assert bad["path"] == str(path) and f"corrupt at offset {write_at}" in bad["detail"]
    # Explained from a1 and a3.
    assert out["verdict"] == "chosen" and out["chosen"][0]["voters"] == ["a1", "a3"]
    assert run(config, "3") == EXIT_FILE_BAD
    err = capsys.readouterr().err
    assert str(path) in err and f"offset {write_at}" in err


def test_a_missing_file_is_named_and_the_rest_explained(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2, 3]})
    config.wal_path("l2").unlink()
    out = explain(config, 3)
    assert out.exit_code == EXIT_FILE_BAD and out.verdict == "chosen"
    assert [(f.name, f.status) for f in out.files] == [("l2", "missing")]


def torn(path: Path) -> int:
    """Append the first 9 bytes of one more frame (a write cut short); returns where it starts."""
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(frame(codec.encode_records([PromiseRecord(B22)]))[:9])
    return size


def test_a_torn_tail_is_still_being_written_not_corruption(tmp_path: Path, capsys: Any) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2]})
    at = torn(config.wal_path("a1"))
    code, out = as_json(config, 3, capsys)
    assert code == EXIT_EXPLAINED and out["verdict"] == "chosen" and out["chosen"][0]["voters"] == ["a1", "a2"]
    [f] = out["files"]
    assert f["status"] == "torn" and f["offset"] == at
    assert f"a partial last frame of 9 bytes at offset {at}" in f["detail"] and "torn by a crash" in f["detail"]
    # With the actor running (it holds its lock), the same bytes are being written.
    wal, _ = Wal.open(config.wal_path("a2"), "acceptor", "a2", fsync=False)
    try:
        at2 = torn(config.wal_path("a2"))
        assert file_in_use(config.wal_path("a2").with_name("a2.wal.lock")) in (True, None)
        out2 = explain(config, 3)
        [f2] = [f for f in out2.files if f.name == "a2"]
        assert f2.status == "torn" and f2.offset == at2 and "still being written" in f2.detail
        assert out2.exit_code == EXIT_EXPLAINED and out2.verdict == "chosen"
    finally:
        wal.close()


# --- another cluster's files ------------------------------------------------------------------------


def test_a_file_of_another_actor_is_foreign_and_left_out(tmp_path: Path, capsys: Any) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2]})
    config.wal_path("a3").write_bytes(config.wal_path("a1").read_bytes())  # a1's file under a3's name
    code, out = as_json(config, 3, capsys)
    assert code == EXIT_FOREIGN
    [f] = out["files"]
    assert f["name"] == "a3" and f["status"] == "foreign" and "belongs to acceptor 'a1'" in f["detail"]
    assert out["verdict"] == "chosen" and out["chosen"][0]["voters"] == ["a1", "a2"]


def test_a_wal_of_no_member_and_votes_of_no_proposer_are_foreign(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2]})
    stray, _ = Wal.open(config.wal_path("zz"), "acceptor", "zz", fsync=False)
    stray.close()
    out = explain(config, 3)
    assert out.exit_code == EXIT_FOREIGN and [(f.name, f.status) for f in out.files] == [("zz", "foreign")]
    config.wal_path("zz").unlink()
    # a3 holds a vote under ballot 5.9: no proposer of this cluster has id 9.
    write(config, "a3", [vote(Ballot(5, 9), 3, cmd(Ballot(5, 9), key="other"))])
    out = explain(config, 3)
    assert out.exit_code == EXIT_FOREIGN and out.verdict == "chosen"
    [f] = out.files
    assert f.name == "a3" and "of no proposer of this cluster (ids 1, 2)" in f.detail
    assert [v.counted for v in out.acceptors[2].votes] == [False]


def test_a_file_written_in_the_other_mode_is_foreign(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2, 3]})
    marker = config.marker_path("a3")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("fast")
    out = explain(config, 3)
    assert out.exit_code == EXIT_FOREIGN and "ran in fast mode" in out.files[0].detail
    assert out.chosen[0].voters == ["a1", "a2"]


# --- quorums: fast mode and membership -------------------------------------------------------------


def test_fast_mode_needs_a_fast_quorum_for_a_clients_command(tmp_path: Path) -> None:
    config = make_config(tmp_path, acceptors=5, extra='[protocol]\nmode = "fast"\n')
    fast = Ballot(1, 1)  # odd round: a fast ballot
    command = cmd(fast)
    for a in ("a1", "a2", "a3"):
        write(config, a, [vote(fast, 1, start(fast)), vote(fast, 2, command)])
    for a in ("a4", "a5"):
        write(config, a, [[PromiseRecord(fast)]])
    write(config, "l1", [])
    write(config, "l2", [])
    one = explain(config, 1)  # the leader's own StartWorking: a majority (3 of 5) chooses it
    assert one.verdict == "chosen" and not one.chosen[0].fast and one.chosen[0].quorum == 3
    two = explain(config, 2)  # a client's FastAccept: 3 of 5 is not the fast quorum of 4
    assert two.verdict == "not_chosen" and any("not the fast quorum of 4" in n for n in two.notes)
    write(config, "a4", [vote(fast, 2, command)])
    two = explain(config, 2)
    assert two.verdict == "chosen" and two.chosen[0].fast and two.chosen[0].quorum == 4
    assert two.chosen[0].voters == ["a1", "a2", "a3", "a4"]


def test_the_slots_membership_decides_whose_votes_count(tmp_path: Path) -> None:
    config = make_config(tmp_path, acceptors=4, extra="[protocol]\nwindow_slots = 4\nalpha_slots = 4\n")
    # cluster.toml lists a1..a4; slot 1 chose a membership of a1, a2, a3 only: from slot 5 on,
    # a4's votes count nowhere and a majority is 2 of 3.
    members = config.membership()
    three = type(members)(members.proposers, members.acceptors[:3], members.learners)
    change = Value(MEMBERSHIP, B11, (encode_membership(three),))
    for a in ("a1", "a2", "a3", "a4"):
        write(config, a, [vote(B11, 1, change)])
    write(config, "a1", [vote(B11, 6, cmd(B11))])
    write(config, "a4", [vote(B11, 6, cmd(B11))])
    write(config, "l1", [[DecidedRecord(1, change)]])
    write(config, "l2", [])
    out = explain(config, 6)
    assert out.membership == ["a1", "a2", "a3"] and out.membership_chosen_at == 1
    assert out.verdict == "not_chosen"  # a1 and a4: only a1 counts for slot 6
    a4 = next(a for a in out.acceptors if a.name == "a4")
    assert not a4.in_membership and [v.counted for v in a4.votes] == [False]
    # Slot 3 is still the bootstrap membership's: a1 and a4 are 2 of 4, below its majority of 3.
    assert explain(config, 1).verdict == "chosen" and explain(config, 1).membership_chosen_at == 0


# --- read only ---------------------------------------------------------------------------------------


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_explain_writes_nothing_and_takes_no_lock(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2]})
    torn(config.wal_path("a3"))
    before = tree(tmp_path)
    # Every actor "running": they hold their locks; explaining neither waits for them nor fails.
    wals = [Wal.open(config.wal_path(n), config.actor(n).role, n, fsync=False)[0] for n in ("a1", "a2", "l1", "l2")]
    try:
        out = explain(config, 3)
    finally:
        for w in wals:
            w.close()
    assert out.verdict == "chosen" and out.files[0].status == "torn"
    assert tree(tmp_path) == before
    assert not (config.data_dir / "wal" / "a3.wal.torn-1").exists()


def test_render_text_names_every_acceptor_and_learner(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    cluster_of(config, {"a1": [1, 2, 3], "a2": [1, 2, 3], "a3": [1, 2]})
    text = render_text(explain(config, 3))
    for name in ("a1:", "a2:", "a3:", "l1:", "l2:"):
        assert f"  {name}" in text
    assert "a3: promised 1.1, no vote for slot 3 (its highest slot is 2)" in text


@pytest.mark.parametrize("slot", ["0", "-1", "abc", str((1 << 62) + 1)])
def test_a_bad_slot_is_a_usage_error(tmp_path: Path, slot: str, capsys: Any) -> None:
    config = make_config(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run(config, slot)
    assert exit_.value.code == cli.EXIT_USAGE
    assert "argument SLOT" in capsys.readouterr().err


def test_no_files_at_all_is_a_slot_beyond_the_log(tmp_path: Path, capsys: Any) -> None:
    config = make_config(tmp_path)
    out = explain(config, 1)
    assert out.exit_code == EXIT_NOT_IN_LOG and "highest slot any file holds is 0" in out.summary
    assert {f.status for f in out.files} == {"missing"}
    assert not config.data_dir.exists()  # and it created nothing


def test_the_file_in_use_check_reads_proc_locks(tmp_path: Path) -> None:
    lock = tmp_path / "x.wal.lock"
    assert file_in_use(lock) is False  # no lock file: nobody runs
    lock.write_bytes(b"")
    st = os.stat(lock)
    held = tmp_path / "locks"
    held.write_text(f"1: FLOCK  ADVISORY  WRITE 99 {os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "
                    f"0 EOF\n")
    assert file_in_use(lock, held) is True
    held.write_text("")
    assert file_in_use(lock, held) is False
    assert file_in_use(lock, tmp_path / "nothing") is None


def test_the_epoch_rule_ahead_of_every_learner_is_predicted_from_the_votes(tmp_path: Path) -> None:
    # The learners delivered through slot 6; the acceptors chose 7 (epoch 4.2 starts) and 9.
    config = make_config(tmp_path)
    log = ghost_log()
    slots = list(log)
    cluster_of(config, {"a1": slots, "a2": slots, "a3": slots}, l1=6, l2=5, log=log)
    out = explain(config, 9)
    assert out.verdict == "chosen" and out.exit_code == EXIT_EXPLAINED
    assert any("no learner delivered slot 9 yet (l1 is the furthest, through slot 6)" in n
               and "the epoch rule will skip it: slot 9 holds epoch 3.1's command, and epoch 4.2 started at slot 7"
               in n for n in out.notes), out.notes
    assert any("it will be applied (epoch 4.2 in force before it)" in n for n in explain(config, 8).notes)


def test_a_learners_missing_snapshot_is_named(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    for a in ("a1", "a2", "a3"):
        write(config, a, [[SnapshotRecord(6, 10, 0)], vote(B42, 7, cmd(B42))])
    write(config, "l1", [[SnapshotRecord(6, 10, 0)], [DecidedRecord(7, cmd(B42))]])
    write(config, "l2", [])
    out = explain(config, 7)
    assert out.exit_code == EXIT_FILE_BAD and out.verdict == "chosen"
    [f] = out.files
    assert f.path == str(config.snapshot_dir("l1") / f"{6:020d}.snap") and "missing" in f.detail


def test_learners_that_disagree_on_the_epoch_rule_are_a_violation(tmp_path: Path) -> None:
    # Both delivered epoch 1.1's command at slot 2; l2's slot 1 was StartWorking(2.2), l1's a no-op.
    config = make_config(tmp_path)
    for a in ("a1", "a2", "a3"):
        write(config, a, [vote(B11, 2, cmd(B11))])
    write(config, "l1", [[DecidedRecord(1, Value(NOOP, B11))], [DecidedRecord(2, cmd(B11))]])
    write(config, "l2", [[DecidedRecord(1, start(B22))], [DecidedRecord(2, cmd(B11))]])
    out = explain(config, 2)
    assert out.exit_code == EXIT_VIOLATION and "disagree on the epoch rule (skipped by l2, applied by l1)" in \
        out.violations[0]
    assert explain(config, 1).exit_code == EXIT_VIOLATION  # and slot 1 itself shows the root: two values


def test_a_slot_delivered_with_its_votes_compacted_is_explained_from_the_learner(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    for a in ("a1", "a2", "a3"):
        write(config, a, [[SnapshotRecord(5, 10, 0)], [PromiseRecord(B11)]])
    write(config, "l1", decided({s: cmd(B11, seq=s) for s in range(1, 6)}, 5))
    write(config, "l2", [])
    out = explain(config, 3)
    assert out.exit_code == EXIT_EXPLAINED and out.verdict == "delivered"
    assert "delivered (epoch 1.1's commands" in out.summary and "by l1" in out.summary
    assert any("folded slot 3 into a snapshot" in n for n in out.notes)


def test_an_acceptor_only_the_log_names_is_read_not_taken_for_a_stranger(tmp_path: Path) -> None:
    # cluster.toml lists a1..a3; slot 1 chose a1..a4 (no members.json cache): a4's file is a member's.
    config = make_config(tmp_path, extra="[protocol]\nwindow_slots = 4\nalpha_slots = 4\n")
    members = config.membership()
    four = type(members)(members.proposers, (*members.acceptors, ("a4", "tcp://127.0.0.1:7999")), members.learners)
    change = Value(MEMBERSHIP, B11, (encode_membership(four),))
    for a in ("a1", "a2", "a3"):
        write(config, a, [vote(B11, 1, change)])
    wal, _ = Wal.open(config.wal_path("a4"), "acceptor", "a4", fsync=False)
    wal.append(vote(B11, 6, cmd(B11)))
    wal.close()
    write(config, "a1", [vote(B11, 6, cmd(B11))])
    write(config, "l1", [[DecidedRecord(1, change)]])
    write(config, "l2", [])
    out = explain(config, 6)
    assert out.files == [] and out.exit_code == EXIT_EXPLAINED
    assert out.membership == ["a1", "a2", "a3", "a4"] and out.verdict == "not_chosen"  # 2 of 4, majority 3
    write(config, "a2", [vote(B11, 6, cmd(B11))])
    out = explain(config, 6)
    assert out.verdict == "chosen" and out.chosen[0].voters == ["a1", "a2", "a4"] and out.chosen[0].quorum == 3
