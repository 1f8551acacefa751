"""Files that are replaced whole: snapshots, and the wal when it is compacted. One set of
procedures, run against a `Storage` (the real file system here, an in-memory one with power-loss
semantics in the simulator), so the order of writes, fsyncs and renames the simulator crashes
through is the order the processes use.

Every replacement goes: write a temporary file, fsync it, rename it over the target, fsync the
directory. A crash at any point leaves the old file or the new one, complete, never neither;
the named crash points (`CRASH_POINTS`) sit before each step. A wal being compacted is replaced
the same way, by a `Rewrite` that lets appends go on while the slow part runs.

A snapshot file is `MAGIC | header length u32 | header | body`, where the header is a msgpack
map-free array `[format, version, role, name, slot, body bytes, body crc32]` and the body is the
msgpack of the state. The whole file's size and crc32 travel with the snapshot (records,
offers, chunks), so a receiver checks what it got before it keeps it.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runtime.codec import DecodeError, pack, unpack

SNAP_MAGIC = b"\xf0PXS"
SNAP_FORMAT = "paxos-snapshot"
SNAP_VERSION = 1
_LEN = struct.Struct(">I")
CRASH_POINTS = ("before_write", "after_write_before_fsync", "after_fsync_before_rename",
                "after_rename_before_dirsync")

Crash = Callable[[str], None]


def no_crash(point: str) -> None:
    """The product's crash hook: none. The simulator passes one that raises at an armed point."""


class SnapshotCorrupt(ValueError):
    pass


class Storage(Protocol):
    """The file operations the procedures below need, on one directory tree."""

    def write(self, path: Path, data: bytes) -> None: ...
    def append(self, path: Path, data: bytes | bytearray) -> None: ...
    def fsync(self, path: Path) -> None: ...
    def fsync_dir(self, path: Path) -> None: ...
    def rename(self, src: Path, dst: Path) -> None: ...
    def unlink(self, path: Path) -> None: ...
    def read(self, path: Path, offset: int = 0, length: int = -1) -> bytes: ...
    def size(self, path: Path) -> int | None: ...
    def listdir(self, path: Path) -> list[str]: ...


class DiskStorage:
    """The real file system. A failed write names its file (`OSError.filename`), so that a full
    disk is reported with the path it struck."""

    def write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _named(path), open(path, "wb") as f:
            f.write(data)

    def append(self, path: Path, data: bytes | bytearray) -> None:
        with _named(path), open(path, "ab") as f:
            f.write(data)

    def fsync(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def fsync_dir(self, path: Path) -> None:
        self.fsync(path)

    def rename(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def unlink(self, path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def read(self, path: Path, offset: int = 0, length: int = -1) -> bytes:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def size(self, path: Path) -> int | None:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return None

    def listdir(self, path: Path) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []


DISK = DiskStorage()


@contextmanager
def _named(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def replace_file(storage: Storage, path: Path, data: bytes, crash: Crash = no_crash) -> None:
    """Make `path` hold `data`, atomically and durably. A failed write (a full disk) leaves the
    old file and removes the partial temporary one, which would otherwise hold on to the space."""
    rewrite = Rewrite(storage, path, crash)
    try:
        rewrite.write((data,))
        rewrite.finish()
    except OSError:
        rewrite.abandon()
        raise


class Rewrite:
    """Replacing a file that is still being appended to, without holding up the appends (the way
    Redis rewrites its append-only file): `write` puts the new content in a temporary file and
    fsyncs it, which may take seconds and may run on a worker thread, while the owner goes on
    appending to the old file and adds each appended frame to `tail`; `next_chunk` and `copy`
    move what arrived meanwhile over, in rounds, on the worker; `finish`, on the owner's thread
    with no append in between, copies the last small rest and renames. Before the rename the old
    file is whole; after it, the new one holds everything the old one did (compacted)."""

    TAIL_BYTES_FINISH = 1 << 20  # a rest this small is copied by `finish` itself
    ROUNDS_MAX = 8  # then `finish` copies whatever is left: appends outpace the disk

    def __init__(self, storage: Storage, path: Path, crash: Crash = no_crash,
                 tail_bytes_finish: int = TAIL_BYTES_FINISH) -> None:
        self.storage = storage
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.crash = crash
        self.tail_bytes_finish = tail_bytes_finish
        self.tail = bytearray()  # appended to the old file since the rewrite began, not yet copied
        self.rounds = 0
        self.size = 0  # bytes of the new file so far

    def write(self, pieces: Iterable[bytes]) -> None:
        """The new content, made and written a piece at a time, then fsynced."""
        self.crash("before_write")
        self.storage.write(self.tmp, b"")
        for piece in pieces:
            self.storage.append(self.tmp, piece)
            self.size += len(piece)
        self.crash("after_write_before_fsync")
        self.storage.fsync(self.tmp)

    def next_chunk(self) -> bytearray | None:
        """What the worker should copy next, or None: `finish` now."""
        if len(self.tail) <= self.tail_bytes_finish or self.rounds >= self.ROUNDS_MAX:
            return None
        self.rounds += 1
        chunk, self.tail = self.tail, bytearray()  # no copy: appends go on into the new one
        return chunk

    def copy(self, chunk: bytes | bytearray) -> None:
        self.storage.append(self.tmp, chunk)
        self.storage.fsync(self.tmp)
        self.size += len(chunk)

    def finish(self) -> int:
        """Copy the rest, rename, fsync the directory; returns the new file's size."""
        if self.tail:
            chunk, self.tail = self.tail, bytearray()
            self.copy(chunk)
        self.crash("after_fsync_before_rename")
        self.storage.rename(self.tmp, self.path)
        self.crash("after_rename_before_dirsync")
        self.storage.fsync_dir(self.path.parent)
        return self.size

    def abandon(self) -> None:
        """The rewrite failed (a full disk, say): the old file is whole; drop the temporary one."""
        self.storage.unlink(self.tmp)


# --- snapshot files ---------------------------------------------------------------------------


def encode_snapshot(role: str, name: str, slot: int, state: Any) -> bytes:
    body = pack(state)
    header = pack([SNAP_FORMAT, SNAP_VERSION, role, name, slot, len(body), zlib.crc32(body)])
    return SNAP_MAGIC + _LEN.pack(len(header)) + header + body


def decode_snapshot(data: bytes, slot: int) -> Any:
    """The state in a snapshot file's bytes; raises SnapshotCorrupt with the reason."""
    if data[:4] != SNAP_MAGIC or len(data) < 8:
        raise SnapshotCorrupt("not a snapshot file (no magic)")
    (n,) = _LEN.unpack_from(data, 4)
    try:
        header = unpack(data[8:8 + n], "snapshot header")
    except DecodeError as exc:
        raise SnapshotCorrupt(f"bad header ({exc})") from None
    if type(header) is not tuple or len(header) != 7 or header[0] != SNAP_FORMAT:
        raise SnapshotCorrupt("bad header")
    if header[1] != SNAP_VERSION:
        raise SnapshotCorrupt(f"snapshot format version {header[1]!r} is not supported")
    if header[4] != slot:
        raise SnapshotCorrupt(f"holds slot {header[4]!r}, not {slot}")
    body = data[8 + n:]
    if len(body) != header[5] or zlib.crc32(body) != header[6]:
        raise SnapshotCorrupt("body checksum mismatch")
    try:
        return unpack(body, "snapshot body")
    except DecodeError as exc:
        raise SnapshotCorrupt(f"bad body ({exc})") from None


@dataclass(frozen=True)
class SnapshotFile:
    slot: int
    size_bytes: int
    crc: int


class SnapshotDir:
    """One actor's snapshot files: `<slot>.snap` when complete, `<slot>-<crc>.part` while being
    received (kept across restarts, so a transfer resumes where it stopped)."""

    def __init__(self, storage: Storage, path: Path, crash: Crash = no_crash) -> None:
        self.storage = storage
        self.path = path
        self.crash = crash

    def file(self, slot: int) -> Path:
        return self.path / f"{slot:020d}.snap"

    def part(self, slot: int, crc: int) -> Path:
        return self.path / f"{slot:020d}-{crc:08x}.part"

    def write(self, role: str, name: str, slot: int, state: Any) -> SnapshotFile:
        """Write a snapshot of `state` through `slot`, durably; returns its size and crc."""
        data = encode_snapshot(role, name, slot, state)
        replace_file(self.storage, self.file(slot), data, self.crash)
        return SnapshotFile(slot, len(data), zlib.crc32(data))

    def load(self, slot: int) -> Any:
        data = self.storage.read(self.file(slot)) if self.storage.size(self.file(slot)) is not None else None
        if data is None:
            raise SnapshotCorrupt(f"{self.file(slot)}: missing")
        return decode_snapshot(data, slot)

    def read(self, slot: int, offset: int, length: int) -> bytes | None:
        if self.storage.size(self.file(slot)) is None:
            return None
        return self.storage.read(self.file(slot), offset, length)

    # receiving

    def received(self, slot: int, crc: int) -> int:
        """How much of that snapshot an earlier, interrupted transfer already has."""
        return self.storage.size(self.part(slot, crc)) or 0

    def receive(self, slot: int, crc: int, offset: int, data: bytes) -> bool:
        """Append the next contiguous chunk (the receiver orders them); False if the partial file
        is not where the transfer left it (pruned by a newer snapshot, lost to a power cut)."""
        part = self.part(slot, crc)
        if offset == 0:
            self.storage.write(part, data)
        elif self.storage.size(part) != offset:
            return False
        else:
            self.storage.append(part, data)
        return True

    def finish(self, slot: int, size_bytes: int, crc: int) -> bool:
        """Check the received file whole; if it is right, make it the durable snapshot."""
        part = self.part(slot, crc)
        data = self.storage.read(part) if self.storage.size(part) is not None else b""
        if len(data) != size_bytes or zlib.crc32(data) != crc:
            self.storage.unlink(part)
            return False
        self.crash("after_write_before_fsync")
        self.storage.fsync(part)
        self.crash("after_fsync_before_rename")
        self.storage.rename(part, self.file(slot))
        self.crash("after_rename_before_dirsync")
        self.storage.fsync_dir(self.path)
        return True

    def prune(self, keep_slot: int) -> None:
        """Delete complete snapshots older than `keep_slot` and abandoned partial ones."""
        for entry in self.storage.listdir(self.path):
            stem = entry.split(".")[0].split("-")[0]
            if not stem.isdigit():
                continue
            if int(stem) < keep_slot or (entry.endswith((".part", ".tmp")) and int(stem) <= keep_slot):
                self.storage.unlink(self.path / entry)
