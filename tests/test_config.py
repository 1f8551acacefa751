"""Config errors stop startup with a message that names the key."""

from pathlib import Path

import pytest

from runtime.config import ConfigError, load, render

PORTS = {n: 7000 + i for i, n in enumerate(["p1", "p2", "a1", "a2", "a3", "l1", "l2"])}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return path


def test_the_default_config_loads() -> None:
    config = load(Path(__file__).resolve().parent.parent / "cluster.toml")
    assert [len(config.proposers), len(config.acceptors), len(config.learners)] == [2, 3, 2]
    assert config.cluster.fsync is True
    assert all(s.host == "127.0.0.1" for s in config.actors.values())


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load(write(tmp_path, render(PORTS, data_dir="state")))
    assert config.data_dir == tmp_path / "state"


@pytest.mark.parametrize("mutate,key", [
    (lambda t: t.replace('name = "a2"', 'name = "a1"'), "duplicate actor name 'a1'"),
    (lambda t: t.replace(f"{PORTS['a2']}", f"{PORTS['a1']}"), "share endpoint"),
    (lambda t: t.replace(f"tcp://127.0.0.1:{PORTS['l1']}", "udp://x"), "learners[0].endpoint"),
    (lambda t: t.replace(f":{PORTS['l1']}", ":70000"), "learners[0].endpoint"),
    (lambda t: t.replace('data_dir = "data"', 'data_dir = "data"\ndatadir = "x"'), "cluster.datadir: unknown key"),
    (lambda t: t + "\n[limits]\nvalue_bytes_max = -1\n", "limits.value_bytes_max"),
    (lambda t: t + "\n[limits]\nvalue_bytes_max = true\n", "limits.value_bytes_max"),
    (lambda t: t + "\n[cluster2]\n", "cluster2: unknown key"),
    (lambda t: t.replace("id = 2", "id = 1"), "share id 1"),
    (lambda t: t.replace("id = 2", "id = 0"), "proposers[1].id"),
    (lambda t: t + "\n[supervisor]\nrestart = \"sometimes\"\n", "supervisor.restart"),
    (lambda t: t.replace('name = "p1"', 'name = "P 1"'), "proposers[0].name"),
    (lambda t: t.replace('[[proposers]]\nname = "p1"', '[[proposers]]\nnam = "p1"'), "proposers[0].nam"),
])
def test_config_errors_name_the_key(tmp_path: Path, mutate, key: str) -> None:
    text = mutate(render(PORTS))
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    assert key in str(info.value)


def test_fewer_than_three_acceptors_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"acceptors: at least 3"):
        load(write(tmp_path, render(PORTS, acceptors=2)))


def test_limits_must_fit_together(tmp_path: Path) -> None:
    extra = "[limits]\nvalue_bytes_max = 2000000"
    with pytest.raises(ConfigError, match=r"protocol\.batch_bytes_max"):
        load(write(tmp_path, render(PORTS, extra=extra)))


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[cluster\n"))
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.toml")


def test_the_wire_bounds_of_the_config_reach_every_core(tmp_path) -> None:
    import random

    from runtime.actor import build_core

    names = ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
    path = tmp_path / "cluster.toml"
    path.write_text(render(dict(zip(names, range(7101, 7108), strict=True)),
                           extra="[limits]\nballot_round_step_max = 77\nslots_ahead_max = 999"))
    config = load(path)
    for name in ("a1", "p1"):
        core = build_core(config, name, random.Random(1))
        assert (core.bounds.round_step_max, core.bounds.slots_ahead_max) == (77, 999), name
