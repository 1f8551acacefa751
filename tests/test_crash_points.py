"""Crash points without a cluster (runtime/crashpoints.py): which points exist and for which
roles, `paxos kill --at`'s refusals (exit 5, the valid points listed), the request file, and the
actor shell's arming and its end at each point, on a real wal in a temporary directory (the
process's exit replaced by an exception). The real-process test is
tests/integration/test_crash_points.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors.ballot import Ballot
from actors.records import PromiseRecord, Record, RoundRecord
from runtime import actor as actor_module
from runtime import cli, crashpoints
from runtime.actor import ActorShell
from runtime.config import SECTIONS, load, render
from runtime.harness.local import free_ports
from runtime.supervision import Restart, RestartPolicy, describe_exit
from runtime.wal import HEADER_BYTES, Wal, read_records

NAMES = ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
INSECURE = "[security]\ncurve = false\n" if "security" in SECTIONS else ""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(render(dict(zip(NAMES, free_ports(len(NAMES)), strict=True)), extra=INSECURE))
    return path


# --- which points, for whom --------------------------------------------------------------------


def test_every_point_applies_to_acceptors_and_proposers_and_all_but_one_to_learners() -> None:
    for role in ("acceptor", "proposer"):
        assert [crashpoints.check(p, role) for p in crashpoints.POINTS] == list(crashpoints.POINTS)
    for p in crashpoints.POINTS:
        if p != crashpoints.AFTER_FSYNC:
            assert crashpoints.check(p, "learner") == p
    with pytest.raises(crashpoints.CrashPointError, match="does not apply to a learner: a learner's replies do "
                                                          "not wait for an fsync"):
        crashpoints.check(crashpoints.AFTER_FSYNC, "learner")


def test_an_unknown_point_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(crashpoints.CrashPointError) as err:
        crashpoints.check("after-lunch", "acceptor")
    assert "unknown crash point 'after-lunch'" in str(err.value)
    assert all(p in str(err.value) for p in crashpoints.POINTS)


@pytest.mark.parametrize("frame_bytes", [HEADER_BYTES + 1, HEADER_BYTES + 2, 40, 1 << 20])
def test_a_torn_write_keeps_the_header_and_part_of_the_payload(frame_bytes: int) -> None:
    n = crashpoints.torn_length(frame_bytes, HEADER_BYTES)
    assert HEADER_BYTES <= n < frame_bytes


def test_the_request_is_taken_once_and_a_withdrawn_one_is_never_taken(tmp_path: Path) -> None:
    assert crashpoints.take_request(tmp_path, "a1") is None
    crashpoints.write_request(tmp_path, "a1", "torn-write")
    assert crashpoints.take_request(tmp_path, "a2") is None  # another actor's
    assert crashpoints.take_request(tmp_path, "a1") == "torn-write"
    assert crashpoints.take_request(tmp_path, "a1") is None
    assert not crashpoints.withdraw_request(tmp_path, "a1")  # it was taken: the supervisor knows
    crashpoints.write_request(tmp_path, "a1", "after-reply")
    assert crashpoints.withdraw_request(tmp_path, "a1")
    assert crashpoints.take_request(tmp_path, "a1") is None


def test_the_supervisor_restarts_an_actor_that_ended_at_a_crash_point() -> None:
    assert isinstance(RestartPolicy().on_exit(1.0, crashpoints.EXIT_CRASH_POINT, False), Restart)
    assert "crash point" in describe_exit(crashpoints.EXIT_CRASH_POINT)


# --- paxos kill --at: refusals -------------------------------------------------------------------


def test_kill_at_an_unknown_point_exits_5_and_lists_the_points(config_path: Path, capsys: Any) -> None:
    # Refused before anything is asked of the cluster (none runs here).
    assert cli.main(["kill", "a1", "--at", "after-lunch", "--config", str(config_path)]) == cli.EXIT_BAD_CRASH_POINT
    err = capsys.readouterr().err
    assert "unknown crash point 'after-lunch'" in err and all(p in err for p in crashpoints.POINTS)
    assert "Traceback" not in err


def test_kill_at_a_point_a_learner_lacks_exits_5_with_the_reason(config_path: Path, capsys: Any) -> None:
    code = cli.main(["kill", "l1", "--at", crashpoints.AFTER_FSYNC, "--config", str(config_path)])
    assert code == cli.EXIT_BAD_CRASH_POINT
    err = capsys.readouterr().err
    assert "l1: crash point 'after-fsync-before-reply' does not apply to a learner" in err
    assert "valid for a learner: before-persist, after-write-before-fsync, after-reply, torn-write" in err


def test_kill_at_with_a_signal_is_a_usage_error(config_path: Path, capsys: Any) -> None:
    code = cli.main(["kill", "a1", "--at", "torn-write", "--signal", "STOP", "--config", str(config_path)])
    assert code == cli.EXIT_USAGE
    assert "--at and --signal do not go together" in capsys.readouterr().err


def test_kill_at_a_valid_point_with_no_cluster_says_it_is_not_running(config_path: Path, capsys: Any) -> None:
    assert cli.main(["kill", "a1", "--at", "torn-write", "--config", str(config_path)]) == cli.EXIT_FAILED
    assert "not running" in capsys.readouterr().err


# --- the actor shell: arming, and its end at each point -----------------------------------------


class Exited(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_exit(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(actor_module.os, "_exit", fake_exit)


def shell_of(config_path: Path, name: str) -> ActorShell:
    shell = ActorShell(load(config_path), name, console=False)
    shell.recover()
    return shell


def events(shell: ActorShell, kind: str) -> list[dict[str, Any]]:
    lines = shell.config.log_path(shell.name).read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == kind]


def arm(shell: ActorShell, point: str) -> None:
    """Ask, and tick until it looks (every CRASH_POLL_TICKS ticks)."""
    crashpoints.write_request(shell.config.run_dir, shell.name, point)
    for _ in range(actor_module.CRASH_POLL_TICKS):
        assert shell._crash_point is None
        shell._take_crash_request()
    assert not crashpoints.request_path(shell.config.run_dir, shell.name).exists()


RECORD: Record = PromiseRecord(Ballot(3, 1))


@pytest.mark.parametrize("point", [crashpoints.BEFORE_PERSIST, crashpoints.AFTER_WRITE, crashpoints.AFTER_FSYNC,
                                   crashpoints.TORN_WRITE])
def test_an_acceptor_ends_at_its_point_with_the_file_as_that_point_leaves_it(
        config_path: Path, exits: None, point: str) -> None:
    shell = shell_of(config_path, "a1")
    assert shell.wal is not None
    shell.persist([RECORD], True)  # unarmed: a plain append
    before = shell.wal.offset
    arm(shell, point)
    assert [e["point"] for e in events(shell, "crash_point_armed")] == [point]
    with pytest.raises(Exited) as exited:
        shell.persist([RECORD], True)
    assert exited.value.code == crashpoints.EXIT_CRASH_POINT == actor_module.EXIT_CRASH_POINT
    (reached,) = events(shell, "crash_point_reached")
    assert reached["point"] == point and reached["kinds"] == ["PromiseRecord"]
    path = shell.config.wal_path("a1")
    size = path.stat().st_size
    if point == crashpoints.BEFORE_PERSIST:
        assert size == before
    elif point == crashpoints.TORN_WRITE:
        assert before < size < before + reached["frame_bytes"] and size == before + reached["torn_bytes"]
    else:
        assert size == reached["wal_bytes"] > before
        assert (reached["wal_synced_bytes"] == size) == (point == crashpoints.AFTER_FSYNC)
    shell.wal.close()
    # What the restart reads back: the torn frame is cut (its bytes kept aside), the others stay.
    wal, recovery = Wal.open(path, "acceptor", "a1")
    wal.close()
    if point == crashpoints.TORN_WRITE:
        assert recovery.truncated_at == before and recovery.torn is not None
        assert recovery.torn.stat().st_size == reached["torn_bytes"]
    else:
        assert recovery.truncated_at is None
    assert len(read_records(path)) == (1 if point in (crashpoints.BEFORE_PERSIST, crashpoints.TORN_WRITE) else 2)


def test_after_reply_ends_after_the_turn_not_at_the_persist(config_path: Path, exits: None) -> None:
    shell = shell_of(config_path, "p1")
    arm(shell, crashpoints.AFTER_REPLY)
    shell._after_turn()  # a turn that persisted nothing: not the one
    shell.persist([RoundRecord(4)], True)  # returns: the turn goes on to its sends
    assert shell.wal is not None and shell.wal.synced_offset == shell.wal.offset
    assert events(shell, "crash_point_reached") == []
    with pytest.raises(Exited):
        shell._after_turn()
    assert [e["point"] for e in events(shell, "crash_point_reached")] == [crashpoints.AFTER_REPLY]


def test_a_learner_refuses_a_point_it_lacks_and_takes_the_others(config_path: Path, exits: None) -> None:
    shell = shell_of(config_path, "l1")
    arm(shell, crashpoints.AFTER_FSYNC)  # written by hand: the supervisor would have refused it
    (refused,) = events(shell, "crash_point_refused")
    assert "does not apply to a learner" in refused["reason"]
    assert shell._crash_point is None
    shell.persist([RoundRecord(1)], False)  # not armed: nothing happens
    arm(shell, crashpoints.AFTER_WRITE)
    with pytest.raises(Exited):
        shell.persist([RoundRecord(2)], False)
