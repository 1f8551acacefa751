"""Link faults for tests on real processes (this kernel has no `tc netem`, so loss, duplication,
delay and reordering come from our own transport).

Rules live in `<data_dir>/run/faults.json`, written by the supervisor (`paxos faults`), and are
read by every actor whose config has `[testing] enabled = true`; an actor checks the file's
mtime every few ticks, and a restarted actor reads it at start, so a partition holds across
restarts. A rule applies to frames an actor sends to one destination:

    {"a1": {"p1": {"cut": true}, "*": {"drop": 0.1, "dup": 0.1, "delay_ms": 50}}}

`cut` drops everything (one way; cut both directions for a full partition), `drop` and `dup`
are probabilities, `delay_ms` is the mean of an exponential delay (independent per frame, so
frames also reorder). "*" is the default for destinations without a rule of their own.

Power-loss tests also need each actor's durable wal length: in test mode an actor keeps it in
`<data_dir>/run/<name>.synced`, 8 bytes little-endian, rewritten after every fsync through a
shared map (`write_synced`), so it survives a kill -9 in the page cache; the supervisor's
`powerloss` reads it (`read_synced`) and cuts the wal back to it.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.config import ClusterConfig

RULE_KEYS = {"cut", "drop", "dup", "delay_ms"}


@dataclass(frozen=True)
class LinkRule:
    cut: bool = False
    drop: float = 0.0
    dup: float = 0.0
    delay_ms: float = 0.0


def parse_rules(raw: Any) -> dict[str, dict[str, LinkRule]]:
    """{actor: {destination: LinkRule}}; raises ValueError naming the bad entry."""
    if not isinstance(raw, dict):
        raise ValueError("fault rules must be a map of actor -> destination -> rule")
    rules: dict[str, dict[str, LinkRule]] = {}
    for actor, links in raw.items():
        if not isinstance(links, dict):
            raise ValueError(f"{actor}: must map destinations to rules")
        rules[actor] = {}
        for dest, rule in links.items():
            if not isinstance(rule, dict) or set(rule) - RULE_KEYS:
                raise ValueError(f"{actor}.{dest}: a rule has only {sorted(RULE_KEYS)}")
            r = LinkRule(bool(rule.get("cut", False)), float(rule.get("drop", 0)), float(rule.get("dup", 0)),
                         float(rule.get("delay_ms", 0)))
            if not (0 <= r.drop <= 1 and 0 <= r.dup <= 1 and r.delay_ms >= 0):
                raise ValueError(f"{actor}.{dest}: drop and dup are probabilities, delay_ms >= 0")
            rules[actor][dest] = r
    return rules


def write_rules(path: Path, raw: dict[str, Any]) -> None:
    parse_rules(raw)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(raw))
    os.replace(tmp, path)


class FaultyLinks:
    """Sits in front of a Transport's `send_peer` for one actor."""

    def __init__(self, name: str, path: Path, send: Any) -> None:
        self.name = name
        self.path = path
        self._send = send
        self.rules: dict[str, LinkRule] = {}
        self.rng = random.Random()
        self._mtime = -1.0

    def reload(self) -> bool:
        """Re-read the rules if the file changed; returns True if they changed."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            raw = json.loads(self.path.read_text()) if mtime else {}
            self.rules = parse_rules(raw).get(self.name, {})
        except (OSError, ValueError):
            self.rules = {}
        return True

    def send_peer(self, dest: str, frame: bytes) -> None:
        rule = self.rules.get(dest) or self.rules.get("*")
        if rule is None:
            self._send(dest, frame)
            return
        rng = self.rng
        if rule.cut or (rule.drop and rng.random() < rule.drop):
            return
        copies = 2 if rule.dup and rng.random() < rule.dup else 1
        for _ in range(copies):
            if rule.delay_ms:
                asyncio.get_running_loop().call_later(rng.expovariate(1000.0 / rule.delay_ms), self._send,
                                                      dest, frame)
            else:
                self._send(dest, frame)


# --- the durable wal length, for power-loss tests ---------------------------------------------

SYNCED_BYTES = 8
_synced_maps: dict[Path, mmap.mmap] = {}  # path -> its shared map, open for the process's life


def synced_path(config: ClusterConfig, name: str) -> Path:
    return config.run_dir / f"{name}.synced"


def write_synced(path: Path, offset: int) -> None:
    """Publish `offset` as the durable wal length. The first call for a path creates the file
    (keeping what it held) and maps it; every call is then one store to the shared map, no
    system call, and what it stored survives a kill -9 of the writer."""
    synced_map = _synced_maps.get(path)
    if synced_map is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, SYNCED_BYTES)
            synced_map = _synced_maps[path] = mmap.mmap(fd, SYNCED_BYTES)
        finally:
            os.close(fd)
    synced_map[:SYNCED_BYTES] = offset.to_bytes(SYNCED_BYTES, "little")


def read_synced(path: Path) -> int:
    """The durable wal length an actor published; raises FileNotFoundError if it published none."""
    return int.from_bytes(path.read_bytes()[:SYNCED_BYTES], "little")
