"""The benchmark's own plumbing (the benchmark itself is `scripts/bench`, not a test): its
arguments are checked, and the config it derives keeps the user's settings but the ones it
must change."""

import tomllib
from pathlib import Path

import pytest

from runtime.config import load
from runtime.harness import bench
from runtime.harness.local import free_ports

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--duration-s", "-1"], ["--tasks", "x"],
                                  ["--config", "/no/such/cluster.toml"]])
def test_bad_arguments_exit_2_with_the_reason(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench.main(argv)
    assert exit_.value.code == 2
    assert "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize("acceptors,fsync", [(3, True), (7, False)])
def test_derived_config_is_valid_and_changes_only_what_it_must(tmp_path: Path, acceptors: int, fsync: bool) -> None:
    names = ["p1", "p2", *[f"a{i}" for i in range(1, acceptors + 1)], "l1", "l2"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    text = bench.config_text(ROOT / "cluster.toml", acceptors, fsync, ports)
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    config = load(path)
    raw, base = tomllib.loads(text), tomllib.loads((ROOT / "cluster.toml").read_text())
    assert len(raw["acceptors"]) == acceptors and config.cluster.fsync is fsync
    assert raw["supervisor"]["restart_max"] == 1000  # the kill loop is not a crash loop
    assert raw["protocol"] == base["protocol"] and raw["limits"] == base["limits"]
    endpoints = [a["endpoint"] for role in ("proposers", "acceptors", "learners") for a in raw[role]]
    assert len(set(endpoints)) == len(endpoints) and all(e.startswith("tcp://127.0.0.1:") for e in endpoints)


def test_by_default_it_measures_the_repositorys_own_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.ROOT / "cluster.toml" == ROOT / "cluster.toml"
    load(bench.ROOT / "cluster.toml")  # and it is a valid config


def test_membership_figures_from_buckets() -> None:
    """Throughput per 100 ms bucket: 1,000 acks per bucket (10,000 ops/s) for 4 s, nothing for
    300 ms from the change's start, then 9,500 ops/s: back within 10%, and the dip is the span
    in which the last 500 ms averaged below 9,000 ops/s."""
    b0, start = 10_000, 1000.0  # bucket 10,000 begins at t=1000.0 s
    buckets = {b0 - 40 + i: 1000 for i in range(40)}  # a second of ramp-up, then the 3 s before
    buckets |= {b0 + 3 + i: 950 for i in range(40)}
    assert bench.rate(buckets, start - 3.0, start) == pytest.approx(10_000)
    assert bench.rate(buckets, start - 3.05, start) == pytest.approx(10_000)  # whole buckets only
    assert bench.longest_gap_ms(buckets, start, start + 4.0) == 300
    figures = bench.replace_figures(buckets, start, start + 0.25, before_s=3.0, after_s=2.0)
    assert figures["ops_per_s_before"] == pytest.approx(10_000)
    assert figures["ops_per_s_after_1s"] == pytest.approx(9_500)
    assert figures["recovered_within_1s"] is True and figures["after_vs_before"] == pytest.approx(0.95)
    # The 500 ms means over buckets 0..k: below 9,000 until five buckets of 950 follow the gap.
    assert figures["dip_ms"] == 700 and figures["dip_ms_before"] == 0
    assert figures["gap_ms"] == 300 and figures["gap_ms_before"] == 0
    assert figures["change_ms"] == pytest.approx(250)
    slow = bench.replace_figures(buckets | {b0 + 13 + i: 800 for i in range(20)}, start, start + 0.25, 3.0, 2.0)
    assert slow["recovered_within_1s"] is False


def test_members_line_is_machine_readable() -> None:
    rep = {"lost": 0, "errors": {"put OutcomeUnknown": 2}, "unverified": 0, "acks": 123_456, "replaces": 3,
           "recovered": 2, "ops_per_s_before": 20_000.0, "ops_per_s_after_1s": 19_000.0, "after_vs_before": 0.95,
           "recovered_within_1s": True, "dip_ms": 300, "dip_ms_before": 100, "gap_ms": 0, "gap_ms_before": 0,
           "change_ms": 250.0}
    grow = {"grown5_ops_per_s": 15_000.0, "started5_ops_per_s": 16_000.0, "grown_vs_started": 0.9375}
    line = bench.members_line(rep, grow)
    assert line.startswith("bench-members ") and "\n" not in line
    fields = dict(kv.split("=") for kv in line.split()[1:])
    assert fields["replace_lost_acks"] == "0" and fields["replace_client_errors"] == "2"
    assert fields["recovered_within_1s"] == "true" and fields["replaces_recovered"] == "2"
    assert float(fields["ops_per_s_before"]) == 20_000 and float(fields["grown_vs_started"]) == 0.9375
    for key in ("ops_per_s_after_1s", "dip_ms", "grown5_ops_per_s", "started5_ops_per_s", "change_ms"):
        float(fields[key])


@pytest.mark.slow
def test_an_acceptor_replaced_under_load_loses_no_acknowledged_write() -> None:
    """A short real run (about 20 s): one replacement under a light load, every acknowledged
    write read back, no client error, a1 retired and a4 running."""
    rep = bench.replace_under_load(ROOT / "cluster.toml", clients=1, tasks=64, replaces=1, before_s=1.0, after_s=1.0)
    assert rep["acks"] > 0 and rep["lost"] == 0 and rep["unverified"] == 0, rep["lost_sample"]
    assert rep["errors"] == {}, rep["first_error"]
    assert rep["acceptors"]["a4"] == ("running", "") and rep["acceptors"]["a1"][1] == "removed"
    assert rep["ops_per_s_before"] > 0 and len(rep["changes"]) == 1
