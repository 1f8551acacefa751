"""The membership this machine runs with: cluster.toml's bootstrap membership plus the changes the
log chose (issue 11; actors/membership.py has the protocol).

What it owns: `<data_dir>/state/members.json`, a cache of the chosen changes (the History blob
that proposers, acceptors and learners relay), written atomically and fsynced by the supervisor
whenever it learns of a change (from a learner, a proposer, or a proposer's file at startup),
and read by every process that loads the config (`load`): the actors (whom they may talk to, and
their keys), the supervisor (which actors to run), the client and the CLI (whom to ask). The
file holds only facts: every change in it was chosen, so it can only lag the log, never
contradict it, and a lag is repaired by the actors themselves (a Heartbeat or a Promise carries
the newest history).

After `paxos down` and `paxos up` the cluster runs with the membership in its log, not with
cluster.toml's: `disagreement` says how they differ, and the supervisor and `paxos status` report
it.
"""

from __future__ import annotations

import json
from pathlib import Path

from actors.membership import BadMembership, History, Membership
from actors.records import MembersRecord
from runtime.config import ClusterConfig
from runtime.config import load as load_config
from runtime.storage import DISK, replace_file
from runtime.wal import WalError, read_records

FILE = "members.json"


def path(config: ClusterConfig) -> Path:
    return config.data_dir / "state" / FILE


def read(config: ClusterConfig) -> bytes:
    """The cached changes (a History blob), or b"" when there is none or it cannot be read (the
    actors then learn the changes from each other; a damaged cache is never trusted)."""
    try:
        raw = json.loads(path(config).read_text())
        blob = str(raw["changes"]).encode()
        if blob:
            History(config.membership(), 1).merge(blob)  # it parses
        return blob
    except (OSError, ValueError, KeyError, TypeError, BadMembership):
        return b""


def retired(config: ClusterConfig) -> list[str]:
    """Removed members that stopped once no slot they served was open (never started again)."""
    try:
        raw = json.loads(path(config).read_text())
        return [str(n) for n in raw.get("retired", [])]
    except (OSError, ValueError, TypeError, AttributeError):
        return []


def write(config: ClusterConfig, history: History, retired_names: list[str] | None = None) -> None:
    """Replace the cache atomically and durably (it decides what `paxos up` starts)."""
    if retired_names is None:
        retired_names = retired(config)
    target = path(config)
    current = history.latest()
    body = json.dumps({"changes": history.encode().decode(), "alpha": history.alpha,
                       "latest_slot": history.latest_change_slot(), "members": current.to_plain(),
                       "retired": sorted(set(retired_names))},
                      separators=(",", ":"))
    replace_file(DISK, target, body.encode())


def from_files(config: ClusterConfig) -> bytes:
    """The changes this machine's proposers wrote in their files (each persists every change it
    learns, `MembersRecord`): what the log chose, even if the cache above was lost."""
    h = config.known_history()
    for name, spec in config.actors.items():
        if spec.role != "proposer":
            continue
        try:
            records = read_records(config.wal_path(name))
        except (OSError, WalError):
            continue
        for record in records:
            if isinstance(record, MembersRecord):
                try:
                    h.merge(record.members)
                except BadMembership:
                    continue
    return h.encode()


def load(config_path: str | Path) -> ClusterConfig:
    """cluster.toml with the changes this machine knows the log chose."""
    config = load_config(config_path)
    return config.with_changes(read(config))


def merge(config: ClusterConfig, blob: bytes) -> tuple[ClusterConfig, bool]:
    """`config` with the changes of `blob` too; True if that is news (the caller persists it)."""
    if not blob:
        return config, False
    h = config.known_history()
    try:
        grew = h.merge(blob)
    except BadMembership:
        return config, False
    return (config.with_changes(h.encode()), True) if grew else (config, False)


def disagreement(config: ClusterConfig) -> str | None:
    """How cluster.toml's membership differs from the one in force, or None."""
    if not config.changes:
        return None
    boot, now = config.membership(), config.current()
    if boot == now:
        return None
    return (f"{config.path} lists {boot.describe()}, but the log chose {now.describe()} "
            f"(at slot {config.known_history().latest_change_slot()}); the cluster runs with the log's "
            f"(cluster.toml is the bootstrap membership only)")


def joining_leaving(config: ClusterConfig) -> tuple[set[str], set[str]]:
    """Names the newest change added (joining), and names of older memberships that the newest
    lacks (leaving, or left)."""
    h = config.known_history()
    if not h.changes:
        return set(), set()
    everyone = h.all_members()
    now = set(everyone[-1].names())
    older: set[str] = set()
    for m in everyone[:-1]:
        older.update(m.names())
    return now - set(everyone[-2].names()), older - now


def role_of(m: Membership, name: str) -> str | None:
    if name in m.proposer_ids:
        return "proposer"
    if name in m.acceptor_names:
        return "acceptor"
    if name in m.learner_names:
        return "learner"
    return None
