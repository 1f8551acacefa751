"""The append-only file: group-committed frames, torn tails cut after a backup, mid-file
corruption refused with the file and offset, foreign files refused."""

import os
from pathlib import Path

import pytest

from actors.ballot import Ballot
from actors.records import PromiseRecord, RoundRecord
from runtime.wal import Wal, WalCorrupt, WalFormatError, WalLocked, read_records


def write(path: Path, batches: list[list]) -> None:
    wal, _ = Wal.open(path, "acceptor", "a1")
    for batch in batches:
        wal.append(batch)
    wal.close()


def promises(n: int) -> list[list]:
    return [[PromiseRecord(Ballot(i, 1))] for i in range(1, n + 1)]


def test_records_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a1.wal"
    write(path, [[PromiseRecord(Ballot(1, 1)), PromiseRecord(Ballot(2, 1))], [PromiseRecord(Ballot(3, 1))]])
    wal, rec = Wal.open(path, "acceptor", "a1")
    assert rec.records == [PromiseRecord(Ballot(i, 1)) for i in (1, 2, 3)]
    assert rec.frames == 2 and not rec.created and rec.truncated_at is None
    assert wal.offset == path.stat().st_size == wal.synced_offset
    wal.close()


@pytest.mark.parametrize("cut", [1, 5, 11, 16])
def test_a_torn_last_frame_is_cut_after_a_backup(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(3))
    whole = path.read_bytes()
    good = len(whole)
    write(path, [[PromiseRecord(Ballot(9, 1))]])
    assert path.stat().st_size - good > cut  # the last frame really is torn
    torn = path.read_bytes()[:good + cut]
    path.write_bytes(torn)
    wal, rec = Wal.open(path, "acceptor", "a1")
    assert rec.records == [r for batch in promises(3) for r in batch]
    assert rec.truncated_at == good and rec.truncated_bytes == cut
    assert rec.backup is not None and rec.backup.read_bytes() == torn
    assert path.read_bytes() == whole
    wal.close()


def test_a_zeroed_tail_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(2))
    good = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)
    _, rec = Wal.open(path, "acceptor", "a1")
    assert rec.truncated_at == good and len(rec.records) == 2


def test_corruption_in_the_middle_stops_with_file_and_offset_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(5))
    data = bytearray(path.read_bytes())
    offset = len(data) // 2
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt) as info:
        Wal.open(path, "acceptor", "a1")
    assert str(path) in str(info.value) and info.value.offset <= offset
    assert path.read_bytes() == bytes(data)
    assert not list(tmp_path.glob("*.broken-*"))


def test_a_file_of_another_actor_or_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(1))
    with pytest.raises(WalFormatError, match="belongs to acceptor 'a1'"):
        Wal.open(path, "acceptor", "a2")
    other = tmp_path / "x.wal"
    other.write_bytes(b"hello, this is not a wal file at all")
    with pytest.raises(WalFormatError):
        Wal.open(other, "acceptor", "a1")
    assert other.read_bytes() == b"hello, this is not a wal file at all"


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "a1.wal"
    wal, _ = Wal.open(path, "acceptor", "a1")
    with pytest.raises(WalLocked):
        Wal.open(path, "acceptor", "a1")
    wal.close()


def test_one_fsync_per_appended_batch(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path / "p1.wal", "proposer", "p1")
    wal.append([RoundRecord(i) for i in range(100)])
    assert wal.fsyncs == 1
    wal.close()
    assert read_records(tmp_path / "p1.wal") == [RoundRecord(i) for i in range(100)]


def test_fsync_off_writes_without_syncing(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path / "p1.wal", "proposer", "p1", fsync=False)
    wal.append([RoundRecord(1)])
    assert wal.fsyncs == 0
    wal.close()


def test_write_failure_is_fatal(tmp_path: Path) -> None:
    from runtime.wal import WalFatal

    wal, _ = Wal.open(tmp_path / "p1.wal", "proposer", "p1")
    os.close(wal.fd)
    wal.fd = os.open(os.devnull, os.O_RDONLY)  # writes now fail with EBADF
    with pytest.raises(WalFatal):
        wal.append([RoundRecord(1)])


def test_open_can_apply_records_frame_by_frame_without_keeping_them(tmp_path: Path) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(4))
    seen: list = []
    wal, rec = Wal.open(path, "acceptor", "a1", apply=seen.append)
    assert seen == [r for batch in promises(4) for r in batch] and rec.records == [] and rec.count == 4
    wal.close()


def test_an_apply_failure_closes_the_file_and_propagates(tmp_path: Path) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(2))

    def refuse(record: object) -> None:
        raise TypeError("cannot apply")

    with pytest.raises(TypeError):
        Wal.open(path, "acceptor", "a1", apply=refuse)
    wal, rec = Wal.open(path, "acceptor", "a1")  # the lock was released: the file was closed
    assert rec.count == 2
    wal.close()
