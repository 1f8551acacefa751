"""A full disk, without processes: the log drops and counts what it cannot write and resumes; the
actor says a full disk as such (exit 75, the path on stderr); the supervisor fails that child
with the disk's path and free space instead of restarting it, and survives its own writes
failing; `diskspace` finds the disk."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runtime import diskspace, logs
from runtime.actor import EXIT_NOSPACE, no_space, no_space_text
from runtime.config import load, render
from runtime.supervision import ChildState
from runtime.wal import WalFatal


def test_the_log_drops_what_a_full_disk_refuses_and_says_so_once_there_is_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a1.jsonl"
    log = logs.LogFile(path)
    real = os.write
    mode = ["partial"]  # part of a line fits, then the disk is full, then there is room again

    def write(fd: int, data: Any) -> int:
        if fd != log.fd or mode[0] == "room":
            return real(fd, data)
        if mode[0] == "partial":
            mode[0] = "full"
            return real(fd, bytes(data)[:5])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("runtime.logs.os.write", write)
    log.write('{"event":"one"}\n')
    log.write('{"event":"two"}\n')
    log.flush()  # must not raise
    assert log.dropped_lines == 2 and "No space left" in log.error and not log.mid_line
    assert path.read_bytes() == b""  # the five bytes of a cut line were truncated away
    mode[0] = "room"
    log.write('{"event":"three"}\n')
    log.flush()
    lines = path.read_text().splitlines()
    notice = json.loads(lines[0])  # every line is one JSON object
    assert notice["event"] == "log_lines_dropped" and notice["lines"] == 2
    assert json.loads(lines[1]) == {"event": "three"} and log.dropped_lines == 0 and len(lines) == 2
    log.close()


def test_a_cut_line_that_cannot_be_truncated_is_ended_before_the_next_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a1.jsonl"
    log = logs.LogFile(path)
    real = os.write
    mode = ["partial"]

    def write(fd: int, data: Any) -> int:
        if fd != log.fd or mode[0] == "room":
            return real(fd, data)
        if mode[0] == "partial":
            mode[0] = "full"
            return real(fd, bytes(data)[:21])  # one whole line and five bytes of the next
        raise OSError(errno.ENOSPC, "No space left on device")

    def ftruncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("runtime.logs.os.write", write)
    monkeypatch.setattr("runtime.logs.os.ftruncate", ftruncate)
    log.write('{"event":"one"}\n')
    log.write('{"event":"two"}\n')
    log.flush()
    assert log.dropped_lines == 1 and log.mid_line
    mode[0] = "room"
    log.write('{"event":"three"}\n')
    log.flush()
    lines = path.read_text().splitlines()
    assert lines[:2] == ['{"event":"one"}', '{"eve']  # the cut line, ended before the next one
    assert json.loads(lines[2])["lines"] == 1 and json.loads(lines[3]) == {"event": "three"}
    log.close()


def test_a_log_that_cannot_be_opened_counts_its_lines_instead_of_failing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log = logs.LogFile(blocker / "a1.jsonl")
    log.write("{}\n")
    log.flush()
    assert log.fd == -1 and log.dropped_lines == 1 and log.error


def test_a_full_disk_is_found_behind_a_wal_failure_or_any_os_error() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", "/d/snap/a1/x.part")
    assert no_space(exc) is exc
    fatal = WalFatal.of(Path("/d/wal/a1.wal"), "write", exc)
    assert no_space(fatal) is fatal
    assert no_space_text("a1", fatal).startswith("a1: no space left on device: /d/wal/a1.wal: ")
    wrapped = RuntimeError("in a turn")
    wrapped.__cause__ = exc
    assert no_space(wrapped) is exc
    assert no_space(OSError(errno.EIO, "I/O error")) is None
    assert no_space(WalFatal.of(Path("/d/wal/a1.wal"), "fsync", OSError(errno.EIO, "I/O error"))) is None
    assert EXIT_NOSPACE == 75


def test_a_failed_write_of_a_replaced_file_names_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from runtime.storage import DISK

    real = builtins.open

    class Full:
        def __init__(self, *args: Any, **kw: Any) -> None:
            self.f = real(*args, **kw)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    (tmp_path / "snap").mkdir()
    monkeypatch.setattr(builtins, "open", Full)
    with pytest.raises(OSError) as info:
        DISK.append(tmp_path / "snap" / "x.part", b"chunk")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "snap" / "x.part")
    assert no_space_text("a1", info.value).startswith(f"a1: no space left on device: {tmp_path}/snap/x.part: ")


def config_in(tmp_path: Path) -> Any:
    names = ["p1", "p2", "a1", "a2", "a3", "l1", "l2"]
    path = tmp_path / "cluster.toml"
    path.write_text(render({n: 7100 + i for i, n in enumerate(names)}))
    return load(path)


def test_diskspace_names_the_disk_the_actor_named_else_the_fullest_of_its_dirs(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    wal = config.wal_path("a1")
    wal.parent.mkdir(parents=True)
    wal.write_bytes(b"")
    line = f"a1: no space left on device: {wal}: {wal}: write failed: No space left on device; stopping"
    assert diskspace.named_path(line) == wal
    found = diskspace.full_disk(config, "a1", line)
    assert found is not None and found.path == str(wal) and found.total_bytes > 0
    assert Path(found.mount) in [wal, *wal.parents]
    assert "free of" in found.describe()
    assert diskspace.full_disk(config, "a1", "") is not None  # from its dirs alone
    assert diskspace.human(0) == "0 B" and diskspace.human(16_777_216) == "16.8 MB"


def test_diskspace_follows_a_symlinked_wal_to_its_own_disk(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    disk = tmp_path / "disk"
    (disk / "wal").mkdir(parents=True)
    wal = config.wal_path("a1")
    wal.parent.mkdir(parents=True)
    wal.symlink_to(disk / "wal" / "a1.wal")
    assert diskspace.actor_dirs(config, "a1")[0] == disk / "wal"


def supervisor_in(tmp_path: Path) -> Any:
    from runtime.supervisor import Supervisor

    config = config_in(tmp_path)
    (config.data_dir / "logs").mkdir(parents=True)
    return Supervisor(config)


def test_the_supervisor_fails_a_child_whose_disk_is_full_with_the_path_and_does_not_restart_it(
        tmp_path: Path) -> None:
    sup = supervisor_in(tmp_path)
    child = sup.children["a1"]
    child.record.to(ChildState.RUNNING)
    wal = sup.config.wal_path("a1")
    wal.parent.mkdir(parents=True)
    (sup.config.data_dir / "logs" / "a1.stderr").write_text(
        f"--- starting a1\na1: no space left on device: {wal.parent}: write failed\n")
    child.banner = True
    sup._decide(child, SimpleNamespace(pid=4242), EXIT_NOSPACE)
    assert child.state is ChildState.FAILED and child.restart_task is None
    assert child.record.reason.startswith(f"no space left on device: {wal.parent} (file system ")
    assert "paxos start a1" in child.record.reason
    assert child.disk_full is not None and child.disk_full.path == str(wal.parent)
    assert child.record.policy.total_restarts == 0


def test_the_supervisor_survives_a_child_stderr_it_cannot_write(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    sup = supervisor_in(tmp_path)
    child = sup.children["a1"]
    real = os.write

    def full(fd: int, data: Any) -> int:
        if b"starting a1" in bytes(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr("runtime.supervisor.os.write", full)
    fd = sup._open_stderr(child, sup.config.data_dir / "logs" / "a1.stderr")
    assert fd >= 0 and not child.banner  # opened; its tail will not be trusted for this run
    os.close(fd)
    fd = sup._open_stderr(child, tmp_path / "no" / "such" / "dir" / "a1.stderr")
    assert fd == asyncio.subprocess.DEVNULL
