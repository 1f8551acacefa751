"""Link faults and power losses for tests on real processes (this kernel has no `tc netem`, so
loss, duplication, delay and reordering come from our own transport).

Rules live in `<data_dir>/run/faults.json`, written by `set_rules` (`paxos faults`), and are read
by every test-mode actor (`[testing] enabled = true`, runtime/harness/actor.py); an actor checks
the file's mtime every tick, and a restarted actor reads it at start, so a partition holds
across restarts. A rule applies to frames an actor sends to one destination:

    {"a1": {"p1": {"cut": true}, "*": {"drop": 0.1, "dup": 0.1, "delay_ms": 50}}}

`cut` drops everything (one way; cut both directions for a full partition), `drop` and `dup`
are probabilities, `delay_ms` is the mean of an exponential delay (independent per frame, so
frames also reorder). "*" is the default for destinations without a rule of their own.

Power-loss tests also need each actor's durable wal length: in test mode an actor keeps it in
`<data_dir>/run/<name>.synced` (the length and the file's inode, 8 bytes little-endian each),
rewritten after every fsync through a shared map (`write_synced`), so it survives a kill -9 in
the page cache; `power_loss` (`paxos powerloss`) reads it (`read_synced`) and cuts the wal back
to it. A wal whose inode differs was replaced whole by a compaction after that (fsynced before
the rename): nothing of it is cut.

    python -m runtime.harness.faults faults RULES|--clear --config cluster.toml
    python -m runtime.harness.faults powerloss [NAME ...] [--tear] --config cluster.toml
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config import ClusterConfig, ConfigError, load
from runtime.control import ControlError, request
from runtime.program import quiet_on_broken_pipe

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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(raw))
    os.replace(tmp, path)


def set_rules(config: ClusterConfig, raw: dict[str, Any]) -> None:
    """The link faults every test-mode actor of `config` applies from its next tick on."""
    if not config.testing.enabled:
        raise ValueError(f"link faults need `[testing] enabled = true` in {config.path.name}")
    write_rules(config.run_dir / "faults.json", raw)


def clocks_path(config: ClusterConfig) -> Path:
    return config.run_dir / "clocks.json"


def set_clocks(config: ClusterConfig, rates: dict[str, float]) -> None:
    """Clock faults: each named test-mode actor's ticks run `rate` times as fast as they should
    (1.05: 5% fast) from its next few ticks on; {} sets every clock right."""
    if not config.testing.enabled:
        raise ValueError(f"clock faults need `[testing] enabled = true` in {config.path.name}")
    for name, rate in rates.items():
        if not (isinstance(rate, (int, float)) and 0.05 <= rate <= 20.0):
            raise ValueError(f"clock rate of {name} must be in [0.05, 20], got {rate!r}")
    path = clocks_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rates))
    os.replace(tmp, path)


def read_clock(path: Path, name: str) -> float:
    """This actor's clock rate from the clock-fault file (1.0 when none)."""
    try:
        rate = json.loads(path.read_text()).get(name, 1.0)
    except (OSError, ValueError, AttributeError):
        return 1.0
    return float(rate) if isinstance(rate, (int, float)) and 0.05 <= rate <= 20.0 else 1.0


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

SYNCED_BYTES = 16
_synced_maps: dict[Path, mmap.mmap] = {}  # path -> its shared map, open for the process's life


def synced_path(config: ClusterConfig, name: str) -> Path:
    return config.run_dir / f"{name}.synced"


def write_synced(path: Path, offset: int, inode: int) -> None:
    """Publish `offset` as the durable length of the wal with `inode`. The first call for a path
    creates the file (keeping what it held) and maps it; every call is then one store to the
    shared map, no system call, and what it stored survives a kill -9 of the writer."""
    synced_map = _synced_maps.get(path)
    if synced_map is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, SYNCED_BYTES)
            synced_map = _synced_maps[path] = mmap.mmap(fd, SYNCED_BYTES)
        finally:
            os.close(fd)
    synced_map[:SYNCED_BYTES] = offset.to_bytes(8, "little") + inode.to_bytes(8, "little")


def read_synced(path: Path) -> tuple[int, int]:
    """The durable wal length an actor published and that wal's inode; raises FileNotFoundError
    if it published none."""
    data = path.read_bytes()[:SYNCED_BYTES]
    return int.from_bytes(data[:8], "little"), int.from_bytes(data[8:16], "little")


def power_loss(config: ClusterConfig, names: list[str], tear: bool, rng: random.Random | None = None) -> dict[str, int]:
    """kill -9 these actors at once (through the supervisor, with no restart), cut each wal back
    to the durable length it published (what a power failure would leave), optionally tear the
    tail with garbage (a write that was under way), and start them again. Returns the bytes cut
    per actor."""
    if not config.testing.enabled:
        raise ValueError(f"powerloss needs `[testing] enabled = true` in {config.path.name}")
    rng = rng or random.Random()
    # All at once, as a power failure would: one request, the supervisor signals them together.
    reply = request(config, {"cmd": "kill", "names": names, "signal": "KILL", "restart": False, "wait": True})
    if not reply.get("ok"):
        raise ValueError(f"powerloss: {reply.get('error')}")
    victims: list[str] = reply["killed"]
    cut: dict[str, int] = {}
    for name in victims:
        wal = config.wal_path(name)
        try:
            synced, inode = read_synced(synced_path(config, name))
            stat = wal.stat()
        except (FileNotFoundError, ValueError):
            continue
        size = stat.st_size
        if stat.st_ino != inode:
            synced = size  # replaced whole by a compaction, fsynced before the rename
        if synced < size or tear:
            with open(wal, "r+b") as f:
                f.truncate(synced)
                if tear:  # a write that was under way: some of its bytes made it, garbled
                    f.seek(synced)
                    f.write(rng.randbytes(rng.randint(1, 64)))
                os.fsync(f.fileno())
        cut[name] = size - synced
    for name in victims:
        request(config, {"cmd": "start", "name": name})
    return cut


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paxos", description="Test-mode faults on a running cluster.")
    parser.add_argument("--config", default="cluster.toml")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("faults", help="set link faults (JSON rules)")
    p.add_argument("rules", nargs="?", help="JSON: actor -> destination (or *) -> {cut, drop, dup, delay_ms}")
    p.add_argument("--clear", action="store_true", help="remove every fault")
    p.add_argument("--config", default=argparse.SUPPRESS)
    p = sub.add_parser("powerloss", help="kill -9 actors (default all) and cut their files back to the last fsync")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--tear", action="store_true", help="also leave garbage after the cut (a torn write)")
    p.add_argument("--config", default=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
        if args.command == "faults":
            rules = {} if args.clear else json.loads(args.rules or "{}")
            set_rules(config, rules)
            print("faults: ok")
        else:
            for name in args.names:
                config.actor(name)
            cut = power_loss(config, args.names or list(config.actors), args.tear)
            print(f"powerloss: ok {cut}")
    except json.JSONDecodeError as exc:
        print(f"paxos: fault rules are not valid JSON: {exc}", file=sys.stderr)
        return 64
    except (ConfigError, ControlError, ValueError) as exc:
        print(f"paxos: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(quiet_on_broken_pipe(main))
