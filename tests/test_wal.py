"""The append-only file: group-committed frames, torn tails cut in place with only the torn bytes
kept aside (and cut even when the disk is too full to keep them), mid-file corruption refused
with the file and offset, foreign files refused, failed writes fatal with their errno, a wal
symlinked onto a disk of its own; compaction's rewrite, with appends going on meanwhile,
crashes at each of its points and a failed write."""

import errno
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from actors.ballot import Ballot
from actors.records import PromiseRecord, RoundRecord
from runtime.storage import CRASH_POINTS
from runtime.wal import Wal, WalCorrupt, WalFatal, WalFormatError, WalLocked, compacted, read_records


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


def torn_file(path: Path, cut: int = 7) -> tuple[bytes, bytes]:
    """A wal of three frames and the first `cut` bytes of a fourth; returns (whole, torn bytes)."""
    write(path, promises(3))
    whole = path.read_bytes()
    write(path, [[PromiseRecord(Ballot(9, 1))]])
    assert path.stat().st_size - len(whole) > cut  # the last frame really is torn
    torn = path.read_bytes()[len(whole):len(whole) + cut]
    path.write_bytes(whole + torn)
    return whole, torn


@pytest.mark.parametrize("cut", [1, 5, 11, 16])
def test_a_torn_last_frame_is_cut_in_place_keeping_only_the_torn_bytes(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "a1.wal"
    whole, torn = torn_file(path, cut)
    inode = path.stat().st_ino
    wal, rec = Wal.open(path, "acceptor", "a1")
    assert rec.records == [r for batch in promises(3) for r in batch]
    assert rec.truncated_at == len(whole) and rec.truncated_bytes == cut
    assert rec.torn == tmp_path / "a1.wal.torn-1" and rec.torn.read_bytes() == torn and not rec.torn_error
    assert path.read_bytes() == whole and path.stat().st_ino == inode  # cut, not copied
    wal.close()
    # A second torn tail later goes beside the first, which stays.
    wal, _ = Wal.open(path, "acceptor", "a1")
    wal.append([PromiseRecord(Ballot(7, 1))])
    wal.close()
    path.write_bytes(path.read_bytes()[:-3])
    wal, rec = Wal.open(path, "acceptor", "a1")
    assert rec.torn == tmp_path / "a1.wal.torn-2" and (tmp_path / "a1.wal.torn-1").read_bytes() == torn
    wal.close()


def fail_opening(monkeypatch: pytest.MonkeyPatch, part: str, code: int) -> None:
    """`os.open` of a path with `part` in its name fails with `code` (a full disk, say)."""
    real = os.open

    def fake_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: object) -> int:
        if part in os.fspath(path):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real(path, flags, mode)

    monkeypatch.setattr("runtime.wal.os.open", fake_open)


def test_a_torn_tail_is_cut_even_when_the_disk_is_too_full_to_keep_the_torn_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a1.wal"
    whole, _ = torn_file(path)
    fail_opening(monkeypatch, ".torn-", errno.ENOSPC)
    wal, rec = Wal.open(path, "acceptor", "a1")
    wal.close()
    assert rec.torn is None and "could not be kept" in rec.torn_error and "No space left" in rec.torn_error
    assert rec.truncated_at == len(whole) and path.read_bytes() == whole
    assert not list(tmp_path.glob("*.torn-*"))
    assert rec.records == [r for batch in promises(3) for r in batch]


def test_a_torn_tail_stays_when_keeping_its_bytes_fails_for_another_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a1.wal"
    whole, torn = torn_file(path)
    fail_opening(monkeypatch, ".torn-", errno.EIO)
    with pytest.raises(WalFatal) as info:
        Wal.open(path, "acceptor", "a1")
    assert info.value.errno == errno.EIO and not info.value.no_space
    assert path.read_bytes() == whole + torn  # a failing disk: nothing is cut


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
    assert not list(tmp_path.glob("*.torn-*"))


def test_corruption_in_the_middle_is_refused_however_full_the_disk(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(5))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    fail_opening(monkeypatch, ".torn-", errno.ENOSPC)
    with pytest.raises(WalCorrupt):
        Wal.open(path, "acceptor", "a1")
    assert path.read_bytes() == bytes(data)  # never a silent truncation


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


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_write_on_a_full_disk_is_fatal_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     code: int) -> None:
    wal, _ = Wal.open(tmp_path / "p1.wal", "proposer", "p1")

    real = os.write

    def full(fd: int, data: bytes) -> int:
        if fd != wal.fd:
            return real(fd, data)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("runtime.wal.os.write", full)
    with pytest.raises(WalFatal) as info:
        wal.append([RoundRecord(1)])
    assert info.value.no_space and info.value.errno == code and info.value.path == tmp_path / "p1.wal"
    assert os.strerror(code) in str(info.value)
    wal.close()


def test_a_symlinked_wal_keeps_its_lock_and_torn_bytes_on_its_own_disk(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    link = tmp_path / "wal" / "a1.wal"
    link.parent.mkdir()
    link.symlink_to(disk / "a1.wal")
    write(link, promises(2))
    real = disk / "a1.wal"
    assert real.exists() and (disk / "a1.wal.lock").exists() and not (tmp_path / "wal" / "a1.wal.lock").exists()
    real.write_bytes(real.read_bytes() + b"\xf0PXW\x00")
    wal, rec = Wal.open(link, "acceptor", "a1")
    assert rec.torn == disk / "a1.wal.torn-1" and len(rec.records) == 2
    wal.append([RoundRecord(1)])
    wal.rewrite([RoundRecord(2)])  # the compacted file replaces the real one, on its disk
    wal.close()
    assert link.is_symlink() and read_records(link) == [RoundRecord(2)]


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


# --- compaction: a rewrite that lets appends go on ---------------------------------------------


def test_a_rewrite_keeps_every_frame_appended_while_it_ran(tmp_path: Path) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(50))
    wal, _ = Wal.open(path, "acceptor", "a1")
    checkpoint = [PromiseRecord(Ballot(50, 1))]
    rewrite, header = wal.begin_rewrite()
    rewrite.tail_bytes_finish = 0  # every append made meanwhile goes over in a round of its own
    with ThreadPoolExecutor(1) as worker:
        step = worker.submit(rewrite.write, compacted(path, header, checkpoint))
        later = [PromiseRecord(Ballot(i, 1)) for i in range(51, 56)]
        wal.append([later[0]])  # while the new file is being written
        step.result()
        rounds = 0
        for record in later[1:]:
            wal.append([record])
            chunk = rewrite.next_chunk()
            assert chunk is not None
            worker.submit(rewrite.copy, chunk).result()
            rounds += 1
        wal.append([RoundRecord(7)])  # left for end_rewrite itself
    before = wal.end_rewrite()
    assert rounds == 4 and before > wal.offset == path.stat().st_size == wal.synced_offset
    wal.append([RoundRecord(8)])  # and the file goes on after the switch
    wal.close()
    assert read_records(path) == [*checkpoint, *later, RoundRecord(7), RoundRecord(8)]
    assert not path.with_name(path.name + ".tmp").exists()


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_anywhere_in_a_rewrite_leaves_the_old_file_or_the_whole_new_one(tmp_path: Path,
                                                                               point: str) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(20))
    old = read_records(path)

    def crash(at: str) -> None:
        if at == point:
            raise RuntimeError(f"crashed at {at}")

    wal, _ = Wal.open(path, "acceptor", "a1")
    rewrite, header = wal.begin_rewrite(crash)
    with pytest.raises(RuntimeError, match=point):
        rewrite.write(compacted(path, header, [PromiseRecord(Ballot(20, 1))]))
        wal.append([RoundRecord(3)])
        wal.end_rewrite()
    wal.close()
    reopened, rec = Wal.open(path, "acceptor", "a1")  # drops a leftover temporary file
    reopened.close()
    if point == "after_rename_before_dirsync":  # the new file, with what was appended meanwhile
        assert rec.records == [PromiseRecord(Ballot(20, 1)), RoundRecord(3)]
    elif point == "after_fsync_before_rename":  # the old file, with the append too
        assert rec.records == [*old, RoundRecord(3)]
    else:  # the new file was never whole: the old one, as it was
        assert rec.records == old
    assert not path.with_name(path.name + ".tmp").exists()


def test_a_failed_rewrite_keeps_the_old_file_and_drops_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "a1.wal"
    write(path, promises(5))
    wal, _ = Wal.open(path, "acceptor", "a1")
    rewrite, header = wal.begin_rewrite()

    def pieces() -> Iterator[bytes]:
        yield from compacted(path, header, [PromiseRecord(Ballot(5, 1))])
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        rewrite.write(pieces())
    wal.abandon_rewrite()
    wal.append([RoundRecord(9)])
    wal.close()
    assert read_records(path) == [*(r for batch in promises(5) for r in batch), RoundRecord(9)]
    assert not path.with_name(path.name + ".tmp").exists()
