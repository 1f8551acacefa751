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
