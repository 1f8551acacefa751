"""The `paxos` command's argument checks and the Python client's own checks, without a cluster:
what is refused at once (exit 64 for usage, 1 for a value the cluster cannot take), values read
from stdin or a file, --help and --version."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from runtime import cli
from runtime import client as client_mod
from runtime.client import Client, ClusterUnavailable, InvalidCommand
from runtime.config import SECTIONS, ClusterConfig, load, render
from runtime.harness.local import free_ports

NAMES = ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
# Nothing listens here: these tests never reach a cluster.
INSECURE = "[security]\ncurve = false\n" if "security" in SECTIONS else ""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(render(dict(zip(NAMES, free_ports(len(NAMES)), strict=True)), extra=INSECURE))
    return path


@pytest.fixture
def config(config_path: Path) -> ClusterConfig:
    return load(config_path)


def run(config_path: Path, *args: str) -> int:
    return cli.main([*args, "--config", str(config_path)])


# --- usage errors exit 64 --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "-0.5", "nan", "inf", "abc", "1e9"])
def test_timeouts_must_be_positive_seconds(config_path: Path, value: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(config_path, "get", "k", "--timeout-s", value)
    assert exit_.value.code == cli.EXIT_USAGE
    assert "--timeout-s" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        run(config_path, "up", "--detach", "--wait-s", value)
    assert exit_.value.code == cli.EXIT_USAGE


def test_seconds_accepts_what_makes_sense() -> None:
    assert cli.seconds("0.25") == 0.25 and cli.seconds("30") == 30.0 and cli.seconds("86400") == 86400.0


@pytest.mark.parametrize("command", [["kill", "p9"], ["kill", "p9", "--signal", "STOP"], ["start", "p9"],
                                     ["restart", "nobody"], ["wipe", "x1"], ["logs", "a1", "p9"]])
def test_an_unknown_actor_is_a_usage_error(config_path: Path, command: list[str], capsys: Any) -> None:
    assert run(config_path, *command) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "no actor named" in err and "known: p1, p2, a1" in err


def test_kill_leader_needs_a_running_cluster(config_path: Path, capsys: Any) -> None:
    assert run(config_path, "kill", "leader") == 1
    assert "not running" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["put", "k"], ["put", "k", "v", "--file", "f"], ["append", "k"],
                                     ["cas", "k", "old"], ["cas", "k", "-", "-"],
                                     ["cas", "k", "-", "--file", "-"]])
def test_a_value_given_twice_or_not_at_all_is_a_usage_error(config_path: Path, command: list[str],
                                                           capsys: Any) -> None:
    assert run(config_path, *command) == cli.EXIT_USAGE
    assert "value" in capsys.readouterr().err


def test_a_misplaced_harness_command_is_a_usage_error(config_path: Path) -> None:
    args = cli.build_parser().parse_args(["nemesis"])
    assert args.func(None, args) == cli.EXIT_USAGE


# --- help and version ------------------------------------------------------------------------


def test_version(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("paxos ") and out.split()[1][0].isdigit()
    assert cli.version() == out.split()[1]


@pytest.mark.parametrize("command", ["up", "down", "status", "kill", "start", "restart", "wipe", "logs",
                                     "put", "get", "cas", "append", "delete"])
def test_every_command_has_a_description_and_examples(command: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"paxos {command}" in text.split("examples:")[1]
    description = text.split("\n\n")[1]
    assert len(description) > 30, description


def test_help_shows_defaults_and_exit_codes(capsys: Any) -> None:
    for command, wanted in (("up", "default: 30"), ("kill", "default: KILL"), ("get", "4  `get`: no such key"),
                            ("put", "stdin")):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert wanted in capsys.readouterr().out, command
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "64 a usage error" in capsys.readouterr().out


# --- values from stdin and files -------------------------------------------------------------


def test_values_from_stdin_and_files_are_read_verbatim(config: ClusterConfig, tmp_path: Path,
                                                       monkeypatch: Any) -> None:
    big = "é" * 100_000 + "\n"  # 200 kB: more than one command-line argument can hold
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(big.encode())))
    args = cli.build_parser().parse_args(["put", "k", "-"])
    assert cli.client_values(config, args) == [big]
    path = tmp_path / "value"
    path.write_bytes(b"from a file\n")
    args = cli.build_parser().parse_args(["append", "k", "--file", str(path)])
    assert cli.client_values(config, args) == ["from a file\n"]
    args = cli.build_parser().parse_args(["cas", "k", "old", "--file", str(path)])
    assert cli.client_values(config, args) == ["old", "from a file\n"]
    args = cli.build_parser().parse_args(["cas", "k", "-", "new", "--absent"])  # OLD is ignored: not read
    assert cli.client_values(config, args) == [None, "new"]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"old from stdin")))
    args = cli.build_parser().parse_args(["cas", "k", "-", "new"])
    assert cli.client_values(config, args) == ["old from stdin", "new"]
    args = cli.build_parser().parse_args(["put", "k", "plain"])
    assert cli.client_values(config, args) == ["plain"]


def test_a_value_source_that_is_too_large_unreadable_or_not_text_fails(config: ClusterConfig,
                                                                       tmp_path: Path) -> None:
    limit = config.limits.value_bytes_max
    with pytest.raises(cli.ValueSourceError, match=f"larger than {limit} bytes"):
        cli.read_value(config, "-", "value", stdin=io.BytesIO(b"x" * (limit + 1)))
    assert cli.read_value(config, "-", "value", stdin=io.BytesIO(b"x" * limit)) == "x" * limit
    with pytest.raises(cli.ValueSourceError, match=r"not valid UTF-8 text: byte 0xff at offset 2"):
        cli.read_value(config, "-", "value", stdin=io.BytesIO(b"ab\xffcd"))
    with pytest.raises(cli.ValueSourceError, match=r"cannot read the value from .*missing"):
        cli.read_value(config, str(tmp_path / "missing"), "value")


def test_a_bad_value_file_exits_1(config_path: Path, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\x00\xfe\xff")
    assert run(config_path, "put", "k", "--file", str(path)) == 1
    assert "not valid UTF-8" in capsys.readouterr().err


# --- the client's own checks -----------------------------------------------------------------


def test_a_key_or_value_that_is_not_utf8_is_refused_before_anything_is_batched(config: ClusterConfig) -> None:
    kv = Client(config)
    with pytest.raises(InvalidCommand, match=r"lone surrogate U\+D800 at character 1"):
        kv.check("k", "a\ud800")
    with pytest.raises(ValueError, match=r"key is not valid UTF-8 text: byte 0xff \(not UTF-8\)"):
        kv.check("\udcff")  # how sys.argv carries the byte 0xff (surrogateescape)
    with pytest.raises(InvalidCommand, match="old value"):
        asyncio.run(kv.cas("k", "\udcfe", "new"))
    for call in (kv.put("k", "\ud800"), kv.append("k", "\udfff"), kv.get("\ud800"), kv.delete("\ud800")):
        with pytest.raises(InvalidCommand):
            asyncio.run(call)
    assert not kv.core.ops and not kv.core.to_send  # nothing queued: the rest of a batch is unaffected
    kv.check("ключ", "значение 🎉", None)  # any Unicode text is fine


def test_the_limits_and_types_are_checked(config: ClusterConfig) -> None:
    kv = Client(config)
    with pytest.raises(InvalidCommand, match="non-empty"):
        kv.check("")
    with pytest.raises(InvalidCommand, match="key larger than"):
        kv.check("k" * (config.limits.key_bytes_max + 1))
    with pytest.raises(InvalidCommand, match="value larger than"):
        kv.check("k", "é" * (config.limits.value_bytes_max // 2 + 1))  # bytes, not characters
    with pytest.raises(InvalidCommand, match="must be a string"):
        kv.check("k", b"bytes")  # type: ignore[arg-type]


def test_the_cli_refuses_a_non_utf8_argument_at_once(config_path: Path, capsys: Any) -> None:
    started = time.monotonic()
    assert run(config_path, "put", "bin", "\udcff") == 1  # `paxos put bin $'\xff'`
    assert time.monotonic() - started < 1.0
    err = capsys.readouterr().err
    assert "put failed: value is not valid UTF-8 text: byte 0xff" in err and "Traceback" not in err


def test_without_a_supervisor_a_client_command_says_at_once_that_the_cluster_is_not_running(
        config_path: Path, capsys: Any) -> None:
    started = time.monotonic()
    assert run(config_path, "get", "k") == 1
    assert time.monotonic() - started < cli.PROBE_S + 1.5
    assert "is not running: no supervisor" in capsys.readouterr().err


def test_before_the_first_up_a_client_command_says_not_running_rather_than_missing_keys(
        tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(render(dict(zip(NAMES, free_ports(len(NAMES)), strict=True))))  # CurveZMQ on, no keys yet
    assert run(path, "get", "k") == 1
    err = capsys.readouterr().err
    assert "is not running: no supervisor" in err and "creates its keys" in err


# --- file descriptors ------------------------------------------------------------------------


def test_clients_share_one_context_whose_socket_limit_is_raised(config: ClusterConfig) -> None:
    a, b = Client(config), Client(config)
    assert a._ctx is b._ctx is client_mod.shared_context()
    assert a._ctx.get(zmq.MAX_SOCKETS) > 1023  # libzmq's default


def test_the_soft_fd_limit_is_raised_once_when_needed(monkeypatch: Any) -> None:
    calls: list[tuple[int, int]] = []
    limits = [256, 4096]
    monkeypatch.setattr(client_mod, "_nofile_raised", False)
    monkeypatch.setattr(client_mod, "_open_fds", lambda: 100)
    monkeypatch.setattr(client_mod.resource, "getrlimit", lambda _: tuple(limits))

    def setrlimit(_: int, value: tuple[int, int]) -> None:
        calls.append(value)
        limits[0] = value[0]

    monkeypatch.setattr(client_mod.resource, "setrlimit", setrlimit)
    client_mod.ensure_fds(40)  # 100 open + 2 per socket + a margin fit under 256
    assert calls == []
    client_mod.ensure_fds(100)
    assert calls == [(4096, 4096)]
    client_mod.ensure_fds(4000)  # once only
    assert calls == [(4096, 4096)]


def test_running_out_of_sockets_is_cluster_unavailable_with_the_reason(config: ClusterConfig) -> None:
    class Exhausted:
        def socket(self, *_: Any) -> Any:
            raise zmq.ZMQError(errno.EMFILE)

    kv = Client(config)
    kv._ctx = Exhausted()  # type: ignore[assignment]

    async def connect() -> None:
        await kv.connect()

    with pytest.raises(ClusterUnavailable, match=r"cannot open the client's sockets .* files open, RLIMIT_NOFILE"):
        asyncio.run(connect())


@pytest.mark.parametrize("args", [["--help"], ["scenario", "--list"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(args: list[str]) -> None:
    """`paxos explain 6 --json | head`: the pipe is closed before the command writes (here before
    it even starts), so every write fails with EPIPE; `paxos` itself and a harness command it runs
    as its own program both end with exit 0 and no traceback."""
    import subprocess
    import sys

    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # the reader has gone before the first byte
    try:
        proc = subprocess.run([sys.executable, "-m", "runtime.cli", *args], stdout=write_fd,
                              stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write_fd)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
