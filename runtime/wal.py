"""The append-only file (`wal`) every actor keeps, and its recovery.

Layout: a sequence of frames `MAGIC | length u32 | crc32 u32 | payload`, where the crc covers
the length and the payload and the payload is a msgpack array of records. The first frame is a
header naming the format version, the role and the actor. Everything one event-loop turn
persists is one frame, written with one `write` and made durable with one `fdatasync` (group
commit).

Recovery reads the frames in order:
- a bad frame with no valid frame after it is a torn tail (a crash, or a full disk, in the
  middle of the last write): the torn bytes alone are kept aside in `<name>.wal.torn-N` (written
  and synced first), then the file is cut in place at the bad frame (`ftruncate`) and synced.
  Recovery never needs free space in proportion to the file. If even the torn bytes cannot be
  kept because the disk is full, the cut goes ahead anyway and `Recovery.torn_error` says why:
  a torn write is by definition one that never completed, so nothing in it was acknowledged
  (every reply waits for its frame to be written whole and synced), and cutting it loses
  nothing anyone was told is durable;
- a bad frame followed by a valid one is corruption in the middle of the file: recovery stops
  with `WalCorrupt`, naming the file and the offset, and changes nothing (never a silent
  truncation);
- a wrong header stops with `WalFormatError`.
A failed write or fsync, in recovery or later, is final (`WalFatal`, with the `errno`, so that
the caller can tell a full disk from a failing one): the caller must end the process, never
retry (after a failed fsync the kernel may have dropped the dirty pages, so a retry can falsely
succeed).

A wal path that is a symbolic link (an actor's file placed on a disk of its own) is resolved
once at open: the lock, the torn bytes and a compaction's temporary file live beside the real
file, on its disk, and the rename of a compaction stays on that file system.

Compaction replaces the file whole (`Wal.rewrite`, through runtime/storage.py: a temporary
file, fsync, rename, directory fsync): a crash leaves the old file or the new one. The lock is a
separate `<name>.lock` file, so it survives the rename.
"""

from __future__ import annotations

import errno as errnos
import fcntl
import gc
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from actors.records import Record
from runtime.codec import DecodeError, decode_records, encode_record_runs, encode_records, pack, unpack
from runtime.storage import DISK, Crash, Rewrite, no_crash

MAGIC = b"\xf0PXW"
HEADER = struct.Struct(">4sII")
HEADER_BYTES = HEADER.size
FORMAT = "paxos-wal"
FORMAT_VERSION = 1
FRAME_BYTES_MAX = 1 << 30


@contextmanager
def gc_paused() -> Iterator[None]:
    """Replay builds many long-lived objects that hold no cycles; the cyclic collector would scan
    them again and again while they pile up (it cost a third of replay time at 1M records).
    Collection resumes afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class WalError(RuntimeError):
    pass


class WalCorrupt(WalError):
    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt record at offset {offset}: {reason}; refusing to "
                         f"start (the file is unchanged; restore it from a replica or backup)")
        self.path = path
        self.offset = offset
        self.reason = reason


class WalFormatError(WalError):
    pass


NO_SPACE_ERRNOS = frozenset({errnos.ENOSPC, errnos.EDQUOT})


class WalFatal(WalError):
    """A write or fsync failed: the process must stop now. `errno` is the failed call's (None
    if unknown); `path` the file it was about."""

    def __init__(self, message: str, path: Path | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno

    @property
    def no_space(self) -> bool:
        """The disk (or the quota) is full: freeing space mends it, a restart alone does not."""
        return self.errno in NO_SPACE_ERRNOS

    @classmethod
    def of(cls, path: Path, what: str, exc: OSError, then: str = "stopping") -> WalFatal:
        fatal = cls(f"{path}: {what} failed: {exc.strerror or exc}; {then}", path, exc.errno)
        fatal.__cause__ = exc
        return fatal


class WalLocked(WalError):
    pass


@dataclass
class Recovery:
    records: list[Record] = field(default_factory=list)  # empty when Wal.open applied them
    count: int = 0  # records read back
    frames: int = 0
    bytes: int = 0
    created: bool = False
    truncated_at: int | None = None  # where a torn tail was cut
    truncated_bytes: int = 0
    torn: Path | None = None  # the torn bytes, kept aside before the cut
    torn_error: str = ""  # why they could not be kept (a full disk): the cut went ahead


def frame(payload: bytes) -> bytes:
    length = len(payload)
    crc = zlib.crc32(payload, zlib.crc32(length.to_bytes(4, "big")))
    return HEADER.pack(MAGIC, length, crc) + payload


def _frame_at(data: memoryview, pos: int, size: int) -> tuple[int, str]:
    """Length of the valid frame at `pos`, or (-1, reason)."""
    if size - pos < HEADER_BYTES:
        return -1, "partial frame header"
    magic, length, crc = HEADER.unpack_from(data, pos)
    if magic != MAGIC:
        return -1, "bad frame magic"
    if length == 0 or length > FRAME_BYTES_MAX:
        return -1, f"bad frame length {length}"
    end = pos + HEADER_BYTES + length
    if end > size:
        return -1, f"frame of {length} bytes runs past the end of the file"
    if zlib.crc32(data[pos + HEADER_BYTES:end], zlib.crc32(length.to_bytes(4, "big"))) != crc:
        return -1, "checksum mismatch"
    return length, ""


def _valid_frame_after(data: bytes, view: memoryview, pos: int, size: int) -> int | None:
    i = data.find(MAGIC, pos)
    while i != -1:
        if _frame_at(view, i, size)[0] > 0:
            return i
        i = data.find(MAGIC, i + 1)
    return None


class Scanner:
    """Reads the valid prefix of a wal's bytes. Its one rule, `corrupt`, is a method so that the
    harness can plant a bug in it and see the tests catch it."""

    def scan(self, path: Path, data: bytes) -> tuple[list[bytes], int, str]:
        """Payloads of the valid prefix, the length of that prefix, and why it ended ("" at a
        clean end). A bad frame with a valid one after it is corruption (`corrupt`)."""
        view = memoryview(data)
        size = len(data)
        payloads: list[bytes] = []
        pos = 0
        while pos < size:
            length, reason = _frame_at(view, pos, size)
            if length < 0:
                later = _valid_frame_after(data, view, pos + 1, size)
                if later is not None:
                    self.corrupt(path, pos, reason, later)
                return payloads, pos, reason
            payloads.append(data[pos + HEADER_BYTES:pos + HEADER_BYTES + length])
            pos += HEADER_BYTES + length
        return payloads, pos, ""

    def corrupt(self, path: Path, offset: int, reason: str, later: int) -> None:
        """Only the last write can be torn (each is synced before anything depends on it), so a
        bad frame followed by a valid one is corruption in the middle: stop, change nothing."""
        raise WalCorrupt(path, offset, f"{reason}, with valid records after it at offset {later}")


SCANNER = Scanner()


def scan(path: Path, data: bytes) -> tuple[list[bytes], int, str]:
    return SCANNER.scan(path, data)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


COMPACTED_FRAME_BYTES = 1 << 20


def compacted(path: Path, head: bytes, records: list[Record]) -> Iterator[bytes]:
    """The pieces of a wal that holds the header frame at the start of `head`, then `records` in
    frames of about `COMPACTED_FRAME_BYTES`, made one at a time (a worker thread that makes
    them never holds the interpreter for long)."""
    length, reason = _frame_at(memoryview(head), 0, len(head))
    if length < 0:
        raise WalFormatError(f"{path}: no header to keep ({reason})")
    yield head[:HEADER_BYTES + length]
    for payload in encode_record_runs(records, COMPACTED_FRAME_BYTES):
        yield frame(payload)


class Wal:
    """One actor's append-only file. Not thread-safe; one writer (guarded by flock)."""

    def __init__(self, path: Path, fd: int, offset: int, fsync: bool, lock_fd: int = -1) -> None:
        self.path = path
        self.lock_fd = lock_fd
        self.fd = fd
        self.offset = offset  # bytes written
        self.synced_offset = offset  # bytes known durable (for power-loss tests)
        self.fsync_enabled = fsync
        self.fsyncs = 0
        self.on_synced: Callable[[int], None] | None = None  # test mode: publish the durable length
        self.rewriting: Rewrite | None = None  # a compaction under way: appends go to its tail too

    @classmethod
    def open(cls, path: Path, role: str, name: str, fsync: bool = True, scanner: Scanner = SCANNER,
             apply: Callable[[Record], object] | None = None) -> tuple[Wal, Recovery]:
        """Open (or create) the wal and read back its records: into `Recovery.records`, or, with
        `apply`, through `apply` one frame at a time without keeping them (less memory, and
        faster at a million records). An exception from `apply` closes the file and propagates."""
        path = Path(path)
        if path.is_symlink():
            path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        recovery = Recovery()
        lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise WalLocked(f"{path}: in use by another process (is {name} already running?)") from None
        DISK.unlink(path.with_name(path.name + ".tmp"))  # an interrupted rewrite: the file itself is whole
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            data = _read_all(fd)
            payloads, valid_bytes, _ = scanner.scan(path, data)
            if valid_bytes == 0 and data and data.strip(b"\0") and not data.startswith(
                    MAGIC[:min(len(data), len(MAGIC))]):
                raise WalFormatError(f"{path}: not a paxos wal (no frame magic at offset 0)")
            if valid_bytes < len(data):
                recovery.truncated_at = valid_bytes
                recovery.truncated_bytes = len(data) - valid_bytes
                recovery.torn, recovery.torn_error = _keep_torn(path, data, valid_bytes)
                try:  # in place: a cut needs no free space
                    os.ftruncate(fd, valid_bytes)
                    os.fsync(fd)
                except OSError as exc:
                    raise WalFatal.of(path, f"cutting the torn tail at offset {valid_bytes}", exc) from exc
            if not payloads:
                # New (or torn while being created: nothing in it was ever acknowledged).
                header = frame(pack([FORMAT, FORMAT_VERSION, role, name]))
                try:
                    _write_all(fd, header)
                    os.fsync(fd)
                    _fsync_dir(path.parent)
                except OSError as exc:
                    raise WalFatal.of(path, "writing the header", exc) from exc
                recovery.created = True
                valid_bytes = len(header)
            else:
                _check_header(path, payloads[0], role, name)
                offset = HEADER_BYTES + len(payloads[0])
                for payload in payloads[1:]:
                    try:
                        records = decode_records(payload)
                    except DecodeError as exc:
                        raise WalCorrupt(path, offset, f"undecodable records ({exc})") from None
                    recovery.count += len(records)
                    if apply is None:
                        recovery.records.extend(records)
                    else:
                        for record in records:
                            apply(record)
                    offset += HEADER_BYTES + len(payload)
            if fsync and not recovery.created and recovery.truncated_at is None:
                # What we are about to replay may be bytes a crashed process wrote but never
                # synced: still only in the page cache. Make them durable before anything is
                # sent on their strength (a power failure would otherwise take back a promise
                # that the restarted acceptor repeated). Found by the simulator. (A cut tail
                # was fsynced above, with everything before it.)
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise WalFatal.of(path, "fsync before replay", exc) from exc
            if fsync and not recovery.created:
                # The same for the file's name: a compaction renamed this file into place and the
                # process crashed before the directory fsync; a power failure now would bring the
                # old file back, without everything appended from this start on. (The simulator,
                # fast seed 693: an acceptor restarted below a promise it had announced.)
                try:
                    _fsync_dir(path.parent)
                except OSError as exc:
                    raise WalFatal.of(path, "fsync of its directory before replay", exc) from exc
            recovery.frames = max(len(payloads) - 1, 0)
            recovery.bytes = valid_bytes
        except BaseException:
            os.close(fd)
            os.close(lock_fd)
            raise
        return cls(path, fd, valid_bytes, fsync, lock_fd), recovery

    def append(self, records: list[Record], sync: bool = True) -> None:
        """Write one frame and, if `sync` (and fsync is on), make it durable before returning."""
        data = frame(encode_records(records))
        try:
            _write_all(self.fd, data)
        except OSError as exc:
            raise WalFatal.of(self.path, "write", exc) from exc
        self.offset += len(data)
        if self.rewriting is not None:
            self.rewriting.tail += data
        if sync:
            self.sync()

    def write_torn(self, records: list[Record], keep: Callable[[int, int], int]) -> tuple[int, int]:
        """A crash point (runtime/crashpoints.py): write only the first `keep(frame_bytes,
        HEADER_BYTES)` bytes of the frame `append` would write; the caller ends the process
        next. Returns (bytes written, the frame's bytes). Recovery cuts them as a torn tail."""
        data = frame(encode_records(records))
        n = keep(len(data), HEADER_BYTES)
        try:
            _write_all(self.fd, memoryview(data)[:n])
        except OSError as exc:
            raise WalFatal.of(self.path, "write", exc) from exc
        self.offset += n
        return n, len(data)

    def sync(self) -> None:
        """fdatasync everything written so far. A failure is final (see the module docstring)."""
        if self.synced_offset == self.offset:
            return
        if self.fsync_enabled:
            try:
                os.fdatasync(self.fd)
            except OSError as exc:
                raise WalFatal.of(self.path, "fsync", exc, "stopping without retrying") from exc
            self.fsyncs += 1
        self.synced_offset = self.offset
        if self.on_synced is not None:
            self.on_synced(self.synced_offset)

    def rewrite(self, records: list[Record], crash: Crash = no_crash) -> int:
        """Replace the file by its header and `records`, atomically and durably, now; returns the
        bytes it held before."""
        rewrite, header = self.begin_rewrite(crash)
        rewrite.write(compacted(self.path, header, records))
        return self.end_rewrite()

    def begin_rewrite(self, crash: Crash = no_crash) -> tuple[Rewrite, bytes]:
        """Start replacing the file (compaction; `runtime.storage.Rewrite`): from now on every
        append also goes to the rewrite's tail. Returns it and the file's first bytes, for
        `compacted`; the caller runs `Rewrite.write` (on a worker, if it likes), then
        `end_rewrite` or `abandon_rewrite` here."""
        assert self.rewriting is None, "one rewrite at a time"
        self.rewriting = Rewrite(DISK, self.path, crash)
        return self.rewriting, os.pread(self.fd, HEADER_BYTES + 256, 0)

    def end_rewrite(self) -> int:
        """Finish the rewrite (no append may run meanwhile); returns the bytes the old file held."""
        rewrite = self.rewriting
        assert rewrite is not None
        before = self.offset
        try:
            size = rewrite.finish()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            raise WalFatal.of(self.path, "compaction", exc) from exc
        finally:
            self.rewriting = None
        os.close(self.fd)
        self.fd = fd
        self.offset = self.synced_offset = size
        if self.on_synced is not None:
            self.on_synced(self.synced_offset)
        return before

    def abandon_rewrite(self) -> None:
        """The slow part failed: keep the old file, which is whole, and drop the new one."""
        rewrite = self.rewriting
        assert rewrite is not None
        self.rewriting = None
        rewrite.abandon()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    pos = 0
    while pos < size:
        chunk = os.pread(fd, min(size - pos, 1 << 26), pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _keep_torn(path: Path, data: bytes, valid_bytes: int) -> tuple[Path | None, str]:
    """Keep the torn bytes (`data[valid_bytes:]`, at most about one write) in the first free
    `<name>.wal.torn-N`, durably, before the cut; returns it, or (None, why) when the disk is too
    full for even that (the partial file is removed). Any other failure is fatal: the cut waits."""
    n = 1
    while path.with_name(f"{path.name}.torn-{n}").exists():
        n += 1
    target = path.with_name(f"{path.name}.torn-{n}")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, memoryview(data)[valid_bytes:])
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
    except OSError as exc:
        if exc.errno not in NO_SPACE_ERRNOS:
            raise WalFatal.of(path, f"keeping the torn tail in {target.name}", exc) from exc
        try:
            os.unlink(target)
        except OSError:
            pass
        return None, (f"{len(data) - valid_bytes} torn bytes at offset {valid_bytes} could not be kept in "
                      f"{target.name} ({exc.strerror}); cut anyway: a torn write was never acknowledged")
    return target, ""


def _check_header(path: Path, payload: bytes, role: str, name: str) -> None:
    try:
        header = unpack(payload, "header")
    except DecodeError as exc:
        raise WalFormatError(f"{path}: not a paxos wal ({exc})") from None
    if type(header) is not tuple or len(header) != 4 or header[0] != FORMAT:
        raise WalFormatError(f"{path}: not a paxos wal (bad header)")
    if header[1] != FORMAT_VERSION:
        raise WalFormatError(f"{path}: wal format version {header[1]!r} is not supported "
                             f"(this build reads version {FORMAT_VERSION})")
    if header[2] != role or header[3] != name:
        raise WalFormatError(f"{path}: this file belongs to {header[2]} {header[3]!r}, "
                             f"not {role} {name!r}")


def read_records(path: Path) -> list[Record]:
    """Read-only: the records of a wal's valid prefix (for tools and tests)."""
    data = Path(path).read_bytes()
    payloads, _, _ = scan(Path(path), data)
    records: list[Record] = []
    for payload in payloads[1:]:
        records.extend(decode_records(payload))
    return records
