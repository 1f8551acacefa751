"""A small disk for one actor's files, to fill and free: the `disk-full` fault of the Jepsen-style
runs (runtime/harness/nemesis.py) and the real-process full-disk test.

`SmallDisk` mounts a tmpfs of a few MB (mount(2) needs root or CAP_SYS_ADMIN; without it,
`MountUnavailable` says why and callers skip), `place`s an actor's wal and snapshot directory on
it (the paths of runtime/config.py stay where they are, as symbolic links into the disk: the wal
resolves them, so its lock, torn bytes and compactions stay on the small disk), `fill`s it with
a filler file until the kernel says ENOSPC, and `free`s it by deleting that file. `close`
unmounts what `mount` mounted, and only that; use it as a context manager so a failure unmounts
too. Linux only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from runtime.config import ClusterConfig

MNT_DETACH = 2
FILLER = "filler"


class MountUnavailable(RuntimeError):
    """This process may not mount a file system here (no root/CAP_SYS_ADMIN, or not Linux)."""


def _libc() -> ctypes.CDLL:
    if not sys.platform.startswith("linux"):
        raise MountUnavailable(f"mounting a small disk needs Linux (this is {sys.platform})")
    return ctypes.CDLL(None, use_errno=True)


def mount_unavailable() -> str:
    """Why a small disk cannot be mounted here ("" if it can): tries one, and unmounts it."""
    probe = Path(tempfile.mkdtemp(prefix="paxos-mount-probe-"))
    try:
        with SmallDisk(probe / "disk", 1 << 20):
            pass
    except MountUnavailable as exc:
        return str(exc)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return ""


class SmallDisk:
    def __init__(self, path: Path, size_bytes: int = 8 << 20) -> None:
        self.path = Path(path)
        self.size_bytes = size_bytes
        self.mounted = False
        self.placed: list[tuple[Path, Path]] = []  # (link in the data dir, target on this disk)

    # --- mount and unmount -----------------------------------------------------------------

    def mount(self) -> SmallDisk:
        libc = _libc()
        self.path.mkdir(parents=True, exist_ok=True)
        options = f"size={self.size_bytes},mode=0755".encode()
        if libc.mount(b"tmpfs", os.fsencode(self.path), b"tmpfs", 0, options) != 0:
            code = ctypes.get_errno()
            why = ("needs root or CAP_SYS_ADMIN" if code in (errno.EPERM, errno.EACCES)
                   else os.strerror(code))
            raise MountUnavailable(f"cannot mount a {self.size_bytes}-byte tmpfs at {self.path}: "
                                   f"{os.strerror(code)} (mounting {why})")
        self.mounted = True
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Unmount it, if this object mounted it: retried while busy (a process still closing
        its files), then detached so that nothing is left mounted."""
        if not self.mounted:
            return
        libc = _libc()
        deadline = time.monotonic() + timeout_s
        while libc.umount2(os.fsencode(self.path), 0) != 0:
            code = ctypes.get_errno()
            if code == errno.EINVAL:  # not mounted any more
                break
            if code != errno.EBUSY or time.monotonic() > deadline:
                if libc.umount2(os.fsencode(self.path), MNT_DETACH) != 0:
                    raise OSError(ctypes.get_errno(), f"cannot unmount {self.path}")
                break
            time.sleep(0.05)
        self.mounted = False

    def __enter__(self) -> SmallDisk:
        return self.mount()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- an actor's files on it ------------------------------------------------------------

    def place(self, config: ClusterConfig, name: str) -> None:
        """Put actor `name`'s wal and snapshots on this disk (it must not be running): what it
        has is moved over, and its paths become symbolic links to the disk."""
        wal, snap = config.wal_path(name), config.snapshot_dir(name)
        for link, target in ((wal, self.path / "wal" / wal.name), (snap, self.path / "snap" / name)):
            target.parent.mkdir(parents=True, exist_ok=True)
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_dir() and not link.is_symlink():
                shutil.copytree(link, target)
                shutil.rmtree(link)
            elif link.exists() and not link.is_symlink():
                shutil.copy2(link, target)
                link.unlink()
            elif link == snap:
                target.mkdir(exist_ok=True)
            link.symlink_to(target)
            self.placed.append((link, target))

    def restore(self) -> None:
        """Copy the placed files back where the links are (the actor must not be running), so
        that the data dir is whole again before `close` unmounts the disk. Best effort: a file
        that cannot be copied is left to go with the disk."""
        for link, target in reversed(self.placed):
            if not link.is_symlink():
                continue
            link.unlink()
            try:
                if target.is_dir():
                    shutil.copytree(target, link)
                elif target.exists():
                    shutil.copy2(target, link)
                    for extra in target.parent.glob(f"{target.name}.torn-*"):
                        shutil.copy2(extra, link.with_name(extra.name))
            except OSError:
                continue
        self.placed.clear()

    # --- fill and free ---------------------------------------------------------------------

    @property
    def filler(self) -> Path:
        return self.path / FILLER

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self) -> int:
        """Write a filler file until the disk is full (ENOSPC); returns the bytes it took."""
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for chunk in (1 << 16, 1 << 12, 1):
                block = b"\0" * chunk
                while True:
                    try:
                        n = os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
                    written += n
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        """Delete the filler: the space it held is free again."""
        try:
            self.filler.unlink()
        except FileNotFoundError:
            pass
