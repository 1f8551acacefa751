"""The nemesis's fault schedule without a cluster (runtime/harness/schedule.py): it round-trips,
a file that is not a schedule is refused with what is wrong (exit 3 from `--replay`, nothing
started), and a fault read back from the file does exactly what the drawn one did (the same
control requests, link rules, clock rates and power-loss cuts). The replay on real processes is
in tests/integration/test_nemesis_replay.py."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from runtime.harness import nemesis
from runtime.harness import schedule as sched
from runtime.harness.nemesis import FAULTS, NemesisRun, View
from runtime.harness.schedule import Fault, Schedule, ScheduleError

OPTIONS = {"duration_s": 8.0, "faults": ["kill", "pause"], "workers": 4, "mode": "classic",
           "fast_recovery": "coordinated", "acceptors": 0, "whole_cluster_share": 0.3, "clock_beyond": 0.0,
           "bugs": "", "disk_owner": ""}


def a_schedule() -> Schedule:
    return Schedule(7, dict(OPTIONS), [
        Fault(2.5, "kill", 1.25, ["a2"], {"signal": "KILL"}),
        Fault(4.0, "partition", 1.0, ["p1"], {"shape": "one_way", "rules": {"p1": {"a1": {"cut": True}}}}),
        Fault(5.5, "membership", 0.0, ["l3"], {"args": ["add", "learner", "l3", "--endpoint", "tcp://127.0.0.1:1"]},
              loop="membership", error="RuntimeError: refused"),
    ])


def test_a_schedule_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "h.schedule.json"
    original = a_schedule()
    original.save(path)
    back = sched.load(path, FAULTS)
    assert back == original
    assert all(a.same_as(b) for a, b in zip(back.faults, original.faults, strict=True))
    assert not path.with_name(path.name + ".tmp").exists()


def test_same_as_ignores_when_but_not_what() -> None:
    a = Fault(1.0, "kill", 1.5, ["a1"], {"signal": "KILL"})
    assert a.same_as(Fault(1.2, "kill", 1.5, ["a1"], {"signal": "KILL"}))
    assert not a.same_as(Fault(1.0, "kill", 1.5, ["a2"], {"signal": "KILL"}))
    assert not a.same_as(Fault(1.0, "pause", 1.5, ["a1"], {"signal": "KILL"}))


def bad(raw: Any) -> str:
    with pytest.raises(ScheduleError) as err:
        sched.parse(raw, FAULTS, "f.json")
    return str(err.value)


def test_what_is_not_a_schedule_is_refused_with_the_reason() -> None:
    good = a_schedule().to_json()
    assert "not a nemesis schedule" in bad([])
    assert "version 9 is not supported" in bad({**good, "version": 9})
    assert "\"seed\" must be an integer" in bad({**good, "seed": "7"})
    assert "options.workers is missing" in bad({**good, "options": {k: v for k, v in OPTIONS.items()
                                                                     if k != "workers"}})
    assert "options.duration_s has the wrong type" in bad({**good, "options": {**OPTIONS, "duration_s": "8"}})
    assert "unknown faults ['meteor']" in bad({**good, "options": {**OPTIONS, "faults": ["meteor"]}})
    assert "faults[0]: unknown fault kind 'meteor'" in bad({**good, "faults": [{**good["faults"][0],
                                                                               "kind": "meteor"}]})
    assert "faults[0]: at_s must be a number of seconds >= 0" in bad({**good, "faults": [{**good["faults"][0],
                                                                                         "at_s": -1}]})
    assert "faults[1]: targets must be a list" in bad({**good, "faults": [good["faults"][0],
                                                                         {**good["faults"][1], "targets": "p1"}]})


def test_replay_of_a_bad_file_exits_3_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nemesis, "run", lambda *a, **k: pytest.fail("a cluster was started"))
    path = tmp_path / "s.json"
    path.write_text("{not json")
    assert nemesis.main(["--replay", str(path)]) == nemesis.EXIT_BAD_SCHEDULE
    err = capsys.readouterr().err
    assert "nemesis: " in err and "not JSON" in err and "Traceback" not in err
    assert nemesis.main(["--replay", str(tmp_path / "missing.json")]) == nemesis.EXIT_BAD_SCHEDULE
    assert "cannot read it" in capsys.readouterr().err
    for options, why in (({"mode": "turbo"}, "options.mode must be one of"),
                         ({"workers": 0}, "options.workers must be at least 1"),
                         ({"mode": "fast", "acceptors": 3}, "fast mode needs at least 4 acceptors")):
        Schedule(1, {**OPTIONS, **options}).save(path)
        assert nemesis.main(["--replay", str(path)]) == nemesis.EXIT_BAD_SCHEDULE
        assert why in capsys.readouterr().err


def test_replay_takes_its_options_from_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.json"
    a_schedule().save(path)
    with pytest.raises(SystemExit) as exit_:
        nemesis.main(["--replay", str(path), "--seed", "3", "--duration", "5"])
    assert exit_.value.code == 2
    assert "drop --duration, --seed" in capsys.readouterr().err


def test_replay_passes_the_files_seed_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(duration_s: float, faults: list[str], history: Path, seed: int, *args: Any, **kw: Any) -> Any:
        seen.update(duration_s=duration_s, faults=faults, seed=seed, workers=args[2], replay=kw["replay"],
                    schedule=kw["schedule"])
        raise SystemExit(0)

    monkeypatch.setattr(nemesis, "run", fake_run)
    path = tmp_path / "s.json"
    a_schedule().save(path)
    with pytest.raises(SystemExit):
        nemesis.main(["--replay", str(path), "--history", str(tmp_path / "r.jsonl")])
    assert (seen["duration_s"], seen["faults"], seen["seed"], seen["workers"]) == (8.0, ["kill", "pause"], 7, 4)
    assert seen["replay"] == a_schedule()
    # A replay's own schedule never overwrites the one it replays.
    assert nemesis.schedule_path_for(tmp_path / "r.jsonl", True) == tmp_path / "r.replay.schedule.json"
    assert nemesis.schedule_path_for(tmp_path / "h.jsonl") == tmp_path / "h.schedule.json"


# --- a fault read back does what the drawn one did ------------------------------------------------


class Recording:
    """What `apply` does to the world, with the world replaced."""

    def __init__(self, nr: NemesisRun, monkeypatch: pytest.MonkeyPatch) -> None:
        self.done: list[Any] = []

        async def act(message: dict[str, Any]) -> dict[str, Any]:
            self.done.append(["control", message])
            return {"ok": True}

        nr.act = act  # type: ignore[method-assign]
        monkeypatch.setattr(nemesis, "set_rules", lambda config, rules: self.done.append(["rules", rules]))
        monkeypatch.setattr(nemesis, "set_clocks", lambda config, rates: self.done.append(["clocks", rates]))

        def power_loss(config: Any, victims: list[str], torn: bool, rng: random.Random) -> dict[str, int]:
            self.done.append(["power", victims, torn, rng.random()])  # the torn tails' generator, seeded
            return {}

        monkeypatch.setattr(nemesis, "power_loss", power_loss)


VIEW = View(["p1", "p2", "a1", "a2", "a3", "l1", "l2"], ["p1", "p2"], ["a1", "a2", "a3"], ["l1", "l2"],
            dict.fromkeys(["p1", "p2", "a1", "a2", "a3", "l1", "l2"], "running"),
            dict.fromkeys(["p1", "p2", "a1", "a2", "a3", "l1", "l2"], ""), "p1")


@pytest.mark.parametrize("kind", ["kill", "pause", "partition", "chaos", "wipe", "power", "clock", "crash"])
def test_a_fault_read_back_from_the_schedule_does_what_the_drawn_one_did(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    done = []
    for seed in range(2):  # two draws per kind: shapes and victims differ
        nr = NemesisRun(tmp_path / f"c{seed}", [kind], 5.0, tmp_path / "h.jsonl", seed, workers=1,
                        schedule_path=tmp_path / f"s{seed}.json")
        rec = Recording(nr, monkeypatch)
        step = nr.plan(kind, 0.0, VIEW)
        asyncio.run(nr.run_step(step))
        assert nr.schedule.faults[-1].same_as(step) and not nr.schedule.faults[-1].error
        back = sched.load(tmp_path / f"s{seed}.json", FAULTS).faults[-1]
        drawn = list(rec.done)
        rec.done.clear()
        asyncio.run(nr.apply(back))
        assert rec.done == drawn and drawn, (kind, drawn)
        assert json.loads(json.dumps(drawn)) == drawn  # nothing that JSON would change
        done.append(drawn)
    assert kind in ("kill", "pause", "wipe", "chaos", "crash") or done[0] != done[1]  # the seed matters
