"""Which disk is full: the file systems that hold an actor's files, and their free space.

An actor whose disk is full exits 75 (runtime/actor.py) with a last stderr line
`NAME: no space left on device: PATH: ...`. The supervisor then asks `full_disk` which file
system that was (the path the actor named, else the fullest of the ones its files live on:
its wal's directory, its snapshots, its marker), for the child's reason and for `paxos status`.
Files that are symbolic links (an actor's wal placed on a disk of its own) count where they
point. Read-only: `os.statvfs` and `os.stat`, nothing written.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runtime.config import ClusterConfig

_NAMED = re.compile(r"no space left on device: (?P<path>/[^:]*)")


@dataclass(frozen=True)
class DiskFull:
    path: str  # the file (or directory) the write failed on, or the fullest of the actor's dirs
    mount: str  # the mount point of the file system that holds it
    free_bytes: int  # what an unprivileged writer may still use, as statvfs says now
    total_bytes: int

    def describe(self) -> str:
        return f"{self.path} (file system {self.mount}: {human(self.free_bytes)} free of {human(self.total_bytes)})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def human(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def actor_dirs(config: ClusterConfig, name: str) -> list[Path]:
    """The directories an actor writes its own files to, symbolic links followed."""
    wal = config.wal_path(name)
    wal_dir = wal.resolve().parent if wal.is_symlink() else wal.parent
    return [wal_dir, config.snapshot_dir(name).resolve(), config.marker_path(name).parent]


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_point(path: Path) -> Path:
    path = _existing(path.resolve())
    dev = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


def usage(path: Path) -> DiskFull:
    """The free space of the file system holding `path` (or its nearest existing ancestor)."""
    where = _existing(path)
    st = os.statvfs(where)
    return DiskFull(str(path), str(mount_point(where)), st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)


def named_path(stderr_line: str) -> Path | None:
    """The path in an actor's `no space left on device: PATH: ...` line, if there is one."""
    m = _NAMED.search(stderr_line)
    return Path(m["path"].strip()) if m else None


def full_disk(config: ClusterConfig, name: str, stderr_line: str = "") -> DiskFull | None:
    """The disk that is full for actor `name`: the one its last stderr line names, else the
    fullest file system among its directories; None if none can be examined."""
    named = named_path(stderr_line)
    if named is not None:
        try:
            return usage(named)
        except OSError:
            pass
    found: list[DiskFull] = []
    for path in actor_dirs(config, name):
        try:
            found.append(usage(path))
        except OSError:
            continue
    return min(found, key=lambda d: d.free_bytes) if found else None
