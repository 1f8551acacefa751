"""`paxos status --watch` without a cluster: the gauge's wording (runtime/gauge.py) for 3 and 5
acceptors in classic and fast mode, the gauge following the membership in force and the acceptors
that can vote, the rates from samples, and one frame rendered to text (runtime/watch.py)."""

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from runtime import watch
from runtime.config import load, render
from runtime.gauge import DOWN, OK, WARN, fault_tolerance

PORTS = {n: 7000 + i for i, n in enumerate(["p1", "p2", "a1", "a2", "a3", "l1", "l2"])}


@pytest.mark.parametrize(("up", "level", "text"), [
    (3, OK, "3 of 3 acceptors up: tolerates 1 more failure"),
    (2, WARN, "2 of 3 acceptors up: the next acceptor failure stops writes"),
    (1, DOWN, "1 of 3 acceptors up: writes stop until one returns"),
    (0, DOWN, "0 of 3 acceptors up: writes stop until 2 more return"),
])
def test_classic_three(up: int, level: str, text: str) -> None:
    g = fault_tolerance(up, 3, "classic")
    assert (g.level, g.text) == (level, text)


@pytest.mark.parametrize(("up", "level", "text"), [
    (5, OK, "5 of 5 acceptors up: tolerates 2 more failures"),
    (4, OK, "4 of 5 acceptors up: tolerates 1 more failure"),
    (3, WARN, "3 of 5 acceptors up: the next acceptor failure stops writes"),
    (2, DOWN, "2 of 5 acceptors up: writes stop until one returns"),
])
def test_classic_five(up: int, level: str, text: str) -> None:
    g = fault_tolerance(up, 5, "classic")
    assert (g.level, g.text) == (level, text)


@pytest.mark.parametrize(("up", "level", "text"), [
    # 5 acceptors: classic quorum 3, fast quorum 4.
    (5, OK, "5 of 5 acceptors up: tolerates 1 more failure on the fast path, 2 before writes stop"),
    (4, OK, "4 of 5 acceptors up: the next failure ends fast rounds; tolerates 1 more failure before writes stop"),
    (3, WARN, "3 of 5 acceptors up: no fast quorum (writes go through classic rounds); the next acceptor "
              "failure stops writes"),
    (2, DOWN, "2 of 5 acceptors up: writes stop until one returns"),
])
def test_fast_five(up: int, level: str, text: str) -> None:
    g = fault_tolerance(up, 5, "fast")
    assert (g.level, g.text) == (level, text)


@pytest.mark.parametrize(("up", "level", "text"), [
    # 3 acceptors (a config refuses fast mode with fewer than 4; the wording still holds):
    # classic quorum 2, fast quorum 3.
    (3, OK, "3 of 3 acceptors up: the next failure ends fast rounds; tolerates 1 more failure before writes stop"),
    (2, WARN, "2 of 3 acceptors up: no fast quorum (writes go through classic rounds); the next acceptor "
              "failure stops writes"),
    (1, DOWN, "1 of 3 acceptors up: writes stop until one returns"),
])
def test_fast_three(up: int, level: str, text: str) -> None:
    g = fault_tolerance(up, 3, "fast")
    assert (g.level, g.text) == (level, text)


def test_fast_four_survives_one_failure_on_the_fast_path() -> None:
    assert fault_tolerance(4, 4, "fast").text == ("4 of 4 acceptors up: tolerates 1 more failure on the fast path, "
                                                  "1 before writes stop")
    assert fault_tolerance(3, 4, "fast").level == WARN


def test_counts_out_of_range_are_clamped_and_no_acceptors_is_said() -> None:
    assert fault_tolerance(7, 3).text.startswith("3 of 3 ")
    assert fault_tolerance(0, 0).level == DOWN


# --- the status the supervisor answers, as the view reads it -----------------------------------


def actor(name: str, role: str, sup: str = "running", pid: int | None = 100, **info: object) -> dict:
    """One actor of the supervisor's status: its supervisor state `sup`, and its StatusReply."""
    return {"name": name, "role": role, "state": sup, "pid": pid, "restarts": 0, "reason": "", "member": "",
            "info": dict(info)}


def members_json(acceptors: list[str]) -> str:
    return json.dumps([[["p1", 1, "tcp://127.0.0.1:1"]], [[a, f"tcp://127.0.0.1:{i}"] for i, a in
                                                           enumerate(acceptors, 2)], [["l1", "tcp://127.0.0.1:9"]]])


def status(*, delivered: int = 10, applied: int = 100, chosen: int = 10, acceptor_states: dict | None = None,
           members: list[str] | None = None, l1_pid: int = 201) -> dict:
    acceptor_states = acceptor_states or {}
    names = members or ["a1", "a2", "a3"]
    actors = [actor("p1", "proposer", state="leader", serving=True, ballot="3.1", chosen_through=chosen,
                    uptime_s=75.0),
              actor("p2", "proposer", state="follower", ballot="3.1", chosen_through=chosen - 1)]
    for a in names:
        how = acceptor_states.get(a, "voting")
        if how == "paused":
            actors.append(actor(a, "acceptor", sup="paused"))
        elif how == "stopped":
            actors.append(actor(a, "acceptor", sup="stopped", pid=None))
        else:
            actors.append(actor(a, "acceptor", state=how, promised="3.1", highest_slot=chosen))
    actors.append(actor("l1", "learner", pid=l1_pid, state="learning", delivered=delivered, commands_applied=applied,
                        members=members_json(names)))
    actors.append(actor("l2", "learner", pid=202, state="learning", delivered=delivered - 4, commands_applied=applied,
                        members=members_json(names)))
    return {"actors": actors, "leader": "p1", "metrics": "http://127.0.0.1:9464/metrics"}


def test_the_gauge_counts_only_acceptors_that_can_vote() -> None:
    s = status(acceptor_states={"a2": "paused", "a3": "rebuilding"})
    assert watch.gauge(s, ["a1", "a2", "a3"], "classic").text == "1 of 3 acceptors up: writes stop until one returns"
    s = status(acceptor_states={"a3": "stopped"})
    assert watch.gauge(s, ["a1", "a2", "a3"], "classic").level == WARN


def test_the_gauge_follows_the_membership_in_force_not_the_config() -> None:
    # The log grew the membership to five acceptors; cluster.toml still names three.
    s = status(members=["a1", "a2", "a3", "a4", "a5"], acceptor_states={"a4": "stopped"})
    g = watch.gauge(s, ["a1", "a2", "a3"], "classic")
    assert g.text == "4 of 5 acceptors up: tolerates 1 more failure"
    # With no learner answering, the config's (fallback) membership.
    s["actors"] = [a for a in s["actors"] if a["role"] != "learner"]
    assert watch.gauge(s, ["a1", "a2", "a3"], "classic").text.startswith("3 of 3 ")


def test_rates_come_from_the_watermark_and_the_commands_applied_between_samples() -> None:
    samples = [watch.Sample(10.0, status(chosen=10, delivered=10, applied=100)),
               watch.Sample(11.0, status(chosen=40, delivered=40, applied=1600)),
               watch.Sample(12.0, status(chosen=70, delivered=70, applied=3100))]
    assert watch.rates(samples) == (30.0, 1500.0)


def test_a_learner_restart_leaves_it_out_and_one_sample_gives_no_rate() -> None:
    first, last = status(applied=5000, l1_pid=201), status(chosen=20, applied=10, l1_pid=999)
    samples = [watch.Sample(10.0, first), watch.Sample(12.0, last)]
    slots, commands = watch.rates(samples)
    assert slots == 5.0 and commands is None  # l1 restarted and l2's count went back as well
    last["actors"][-1]["info"]["commands_applied"] = 5400  # l2, the same process all along
    assert watch.rates(samples) == (5.0, 200.0)
    assert watch.rates(samples[:1]) == (None, None)
    assert watch.rates([watch.Sample(1.0, None, "down"), samples[0]]) == (None, None)


def test_uptime_reads_well() -> None:
    assert [watch.uptime(x) for x in (3.25, 75, 3 * 3600 + 125, None, -1)] == ["3.2s", "1m15s", "3h02m", "-", "-"]


def config(tmp_path: Path):
    path = tmp_path / "cluster.toml"
    path.write_text(render(PORTS))
    return load(path)


def text_of(renderable: object, width: int = 160) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(renderable)
    return buf.getvalue()


def test_a_frame_shows_actors_leader_watermark_lag_rates_and_gauge(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    samples = [watch.Sample(10.0, status(chosen=10, delivered=10, applied=100)),
               watch.Sample(12.0, status(chosen=50, delivered=46, applied=4100, acceptor_states={"a3": "stopped"}))]
    out = text_of(watch.frame(cfg, samples, 0.3))
    for col in ("name", "role", "state", "pid", "uptime", "restarts"):
        assert col in out
    assert "p1 (ballot 3.1)" in out
    assert "chosen through   50" in out
    assert "l1 46 (lag 4), l2 42 (lag 8)" in out
    assert "20 slots/s, 2,000 commands/s" in out
    assert "2 of 3 acceptors up: the next acceptor failure stops writes" in out
    assert "1m15s" in out and "stopped" in out
    assert "metrics at http://127.0.0.1:9464/metrics" in out


def test_a_frame_of_a_cluster_that_is_not_running_says_so(tmp_path: Path) -> None:
    out = text_of(watch.frame(config(tmp_path), [watch.Sample(1.0, None, "the cluster is not running")], 0.3))
    assert "the cluster is not running" in out


def test_not_on_a_terminal_one_frame_and_a_word_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    buf = io.StringIO()
    code = watch.watch(config(tmp_path), 0.3, console=Console(file=buf, width=120))
    assert code == 3  # as `paxos status`: not running
    assert "not running" in buf.getvalue()
    assert "not a terminal" in capsys.readouterr().err


def test_watch_and_json_together_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.cli import main

    config(tmp_path)
    assert main(["status", "--watch", "--json", "--config", str(tmp_path / "cluster.toml")]) == 64
    assert "--watch and --json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["status", "--watch", "--interval-s", "0", "--config", str(tmp_path / "cluster.toml")])
    assert exc.value.code == 64
