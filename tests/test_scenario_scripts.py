"""Every scenario script runs, its expectations hold, and its transcript matches the reviewed
golden file. After a deliberate change: `python -m runtime.harness.sim.scenario tests/scenarios/*.scn
--update`, then review the diff of the .golden files."""

from pathlib import Path

import pytest

from actors.messages import COMMANDS, START
from runtime.harness.sim.scenario import run_file
from runtime.harness.sim.world import World

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.scn"))


def test_there_is_a_scenario_for_every_design_scenario_and_corner_case() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"seed002_lost_messages", "seed002_pick_a_value", "dueling_proposers", "ghost_reappearance",
            "minority_slot_recovery", "seed000_ballot_numbers", "stale_leader_resumes",
            "hole_during_leader_change", "duplicate_accepted_after_restart", "late_learner",
            "snapshot_compaction", "learner_wiped", "acceptor_rebuild", "acceptor_far_behind",
            # Issue 11's cases: a change just before a leader change, a removed acceptor that comes
            # back and answers old ballots, an added acceptor that crashes before catching up, an
            # acceptor that lost its file once the bootstrap ones are replaced, a learner added then.
            "membership_grow_shrink", "membership_leader_change", "membership_removed_acceptor_returns",
            "membership_new_acceptor_crashes", "membership_acceptor_rebuild", "membership_learner_added",
            # Issue 12, seed 003's three sequences: the basic fast round, a collision recovered by
            # the leader, and one recovered by the acceptors themselves.
            "seed003_fast_round", "seed003_fast_collision_coordinated",
            "seed003_fast_collision_uncoordinated"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_matches_its_golden_transcript(path: Path) -> None:
    golden = path.with_suffix(".golden")
    assert golden.exists(), f"no golden transcript for {path.name}"
    transcript = run_file(path)
    assert transcript == golden.read_text(), (
        f"{path.name}: the transcript changed; if that is intended, regenerate with "
        f"`python -m runtime.harness.sim.scenario {path} --update` and review the diff")


def test_the_world_replays_disks_through_the_real_framing() -> None:
    w = World()
    w.elect("p1")
    w.submit("p1", "c", [[1, "put", "k", "v"]])
    w.deliver()
    before = dict(w.acceptor("a1").accepted)
    assert {v.kind for _, v in before.values()} == {START, COMMANDS}  # StartWorking and the put
    w.crash("a1")
    assert w.restart("a1").accepted == before
    # What a learner wrote without waiting for the disk is lost with it; what was synced is not.
    learner_disk = w.disks["l1"]
    assert learner_disk.synced < len(learner_disk.data)
    w.tick(["l1"], n=10)  # the driver's deferred sync (runtime/turn.py)
    assert learner_disk.synced == len(learner_disk.data)
