"""An in-memory file system with the failure semantics that matter to us, for the simulator and
the scenario world: written bytes survive a process crash (the page cache keeps them), but a
power loss keeps of each file only what was fsynced (and maybe a torn piece of the rest), and
of the directory only the names it held at its last fsync. It implements runtime.storage's
`Storage`, so snapshots and compaction run the product's own procedures against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SimFile:
    data: bytearray = field(default_factory=bytearray)
    synced: int = 0  # bytes that survive a power loss


class SimFS:
    def __init__(self) -> None:
        self.files: dict[str, SimFile] = {}
        self.durable: dict[str, SimFile] = {}  # the directory as of its last fsync

    @staticmethod
    def _key(path: Path | str) -> str:
        return str(path)

    def file(self, path: Path | str) -> SimFile:
        """The file at `path`, created (empty, its name durable) if it does not exist."""
        key = self._key(path)
        f = self.files.get(key)
        if f is None:
            f = self.files[key] = SimFile()
            self.durable[key] = f
        return f

    # --- runtime.storage.Storage ---------------------------------------------------------

    def write(self, path: Path, data: bytes) -> None:
        self.files[self._key(path)] = SimFile(bytearray(data), 0)

    def append(self, path: Path, data: bytes | bytearray) -> None:
        self.files[self._key(path)].data += data

    def fsync(self, path: Path) -> None:
        f = self.files[self._key(path)]
        f.synced = len(f.data)

    def fsync_dir(self, path: Path) -> None:
        self.durable = dict(self.files)

    def rename(self, src: Path, dst: Path) -> None:
        self.files[self._key(dst)] = self.files.pop(self._key(src))

    def unlink(self, path: Path) -> None:
        self.files.pop(self._key(path), None)

    def read(self, path: Path, offset: int = 0, length: int = -1) -> bytes:
        data = self.files[self._key(path)].data
        return bytes(data[offset:] if length < 0 else data[offset:offset + length])

    def size(self, path: Path) -> int | None:
        f = self.files.get(self._key(path))
        return None if f is None else len(f.data)

    def listdir(self, path: Path) -> list[str]:
        prefix = self._key(path) + "/"
        return sorted(k[len(prefix):] for k in self.files if k.startswith(prefix) and "/" not in k[len(prefix):])

    # --- failures --------------------------------------------------------------------------

    def power_loss(self, rng: random.Random, tear: bool = True) -> None:
        """What the disk holds after the power fails: the names as of the last directory fsync;
        in each file its synced bytes, then maybe part of the rest, maybe torn with garbage."""
        survivors: dict[str, SimFile] = {}
        for key, f in self.durable.items():
            unsynced = len(f.data) - f.synced
            if unsynced > 0 and tear:
                keep = rng.randrange(0, unsynced + 1)
                del f.data[f.synced + keep:]
                if rng.random() < 0.5:
                    f.data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
            elif unsynced > 0:
                del f.data[f.synced:]
            survivors[key] = f
        self.files = dict(survivors)
        self.durable = dict(survivors)

    def wipe(self) -> None:
        """The disk is gone (or an operator deleted the actor's files)."""
        self.files.clear()
        self.durable.clear()
