"""`paxos explain SLOT`: what the files of every acceptor and learner say about one slot, read
only, with the cluster up or down.

What it owns: reading the wals (and a learner's snapshot files) without taking any lock and
without writing a byte; per acceptor its promise and its votes for the slot; whether, and under
which ballot, a quorum of the slot's membership chose a value; which learners delivered it and
whether the epoch rule skipped it; two values chosen for one slot (a safety violation); and the
files it could not use, with why. `explain(config, slot)` builds an `Explanation`; `render_text`
and `to_json` show it; runtime/cli.py runs it and exits with `Explanation.exit_code`.

The rules are the cores', read back from their files:
- a slot is chosen when a quorum of the acceptors of the membership that governs it (`History.at`,
  actors/membership.py: the config's bootstrap membership plus the changes the files record)
  voted for one value under one ballot. The quorum is a majority, except for a fast round's
  client command (a `COMMANDS` value of the fast ballot's own epoch under a fast ballot, or under
  its recovery round when acceptors recover by themselves), which needs a fast quorum: the
  learner's rule (actors/learner.py `_vote`, actors/fast.py);
- the epoch rule (seed 001, actors/learner.py `apply`): a command whose epoch is below the highest
  StartWorking epoch delivered before it is skipped. Replaying a learner's file gives that epoch
  and the slot whose StartWorking set it (from a snapshot, the epoch it holds and "at or before"
  its slot).

Files are read whole, once each, with a plain read: a running actor's appends and compactions go
on undisturbed (a compaction renames a new file into place; the one we opened stays whole). A bad
last frame is what a running actor is writing now or a crash tore; `/proc/locks` says which (the
actor holds its `<name>.wal.lock` while it runs), and neither counts as corruption. A bad frame
with a valid one after it is corruption: the file is named with the offset and left out, and
the slot is explained from the others.

What identifies a cluster in its files: nothing but names. A wal's header names its format, role
and actor; ballots name proposer ids; acceptors' and proposers' markers name the mode. So a file
from another cluster is caught only when one of those disagrees with this cluster: a header of
another actor or role, a wal of a name no membership knows, a vote under a ballot of no proposer
of this cluster, or a marker of the other mode. Another cluster with the same names and ids is
indistinguishable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from actors.ballot import ZERO, Ballot
from actors.fast import FastRules, classic_quorum, fast_quorum
from actors.invariants import InvariantViolation
from actors.kv import BadBatch, parse_batch
from actors.membership import BadMembership, History, Membership
from actors.membership import decode as decode_membership
from actors.messages import COMMANDS, KIND_NAMES, MEMBERSHIP, NOOP, START, Value
from actors.records import (
    AcceptRecord,
    DecidedRecord,
    MembersRecord,
    PromiseRecord,
    RebuildRecord,
    Record,
    SnapshotRecord,
)
from runtime.codec import DecodeError, decode_client_batch, decode_records, unpack
from runtime.config import ClusterConfig
from runtime.storage import SnapshotCorrupt, decode_snapshot
from runtime.wal import FORMAT, FORMAT_VERSION, HEADER_BYTES, MAGIC, WalCorrupt, scan

# Exit codes of `paxos explain` (the first that applies, in this order).
EXIT_EXPLAINED = 0
EXIT_VIOLATION = 3  # two different values chosen for one slot, or learners that disagree
EXIT_NOT_IN_LOG = 5  # the slot is beyond every file, or below every file's compaction point
EXIT_FILE_BAD = 6  # a file is missing, corrupt or unreadable (named, with the offset)
EXIT_FOREIGN = 7  # a file is not this cluster's (another actor's header, an unknown name, ...)

COMMANDS_SHOWN_MAX = 8  # per value, in the text; the JSON lists up to COMMANDS_JSON_MAX
COMMANDS_JSON_MAX = 100
PREVIEW_CHARS_MAX = 32
MEMBERSHIP_ROUNDS_MAX = 8  # rounds of "the files name a member we have not read yet"

OK = "ok"
TORN = "torn"  # a partial last frame: being written, or torn by a crash; its records before it count
MISSING = "missing"
CORRUPT = "corrupt"
FOREIGN = "foreign"


# --- what a file holds --------------------------------------------------------------------------


@dataclass
class FileState:
    """One file and whether its records were used (`ok`, `torn`) or not (the others)."""

    name: str
    role: str
    path: str
    status: str
    detail: str = ""
    offset: int | None = None  # where it went wrong (a torn tail, corruption)
    size_bytes: int = 0

    @property
    def usable(self) -> bool:
        return self.status in (OK, TORN)

    def describe(self) -> str:
        """One line: the path, the status and the detail (not said twice)."""
        status = "" if self.detail.startswith(self.status) or self.status == TORN else f"{self.status}: "
        return f"{self.path}: {status}{self.detail}"


@dataclass
class Loaded:
    file: FileState
    records: list[Record] = field(default_factory=list)


def file_in_use(lock_path: Path, locks_path: Path = Path("/proc/locks")) -> bool | None:
    """Whether a process holds a lock on `lock_path` (the actor is running), read from
    `/proc/locks` without taking any lock; None when that cannot be known here."""
    try:
        st = os.stat(lock_path)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        text = locks_path.read_text()
    except OSError:
        return None
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(key in line.split() for line in text.splitlines())


def load_wal(path: Path, role: str, name: str) -> Loaded:
    """The records of one wal, read only; the file's state says what could not be used and why."""
    shown = str(path)
    if path.is_symlink():
        path = path.resolve()  # its lock lives beside the real file (runtime/wal.py)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Loaded(FileState(name, role, shown, MISSING, "no such file"))
    except OSError as exc:
        return Loaded(FileState(name, role, shown, CORRUPT, f"cannot be read: {exc.strerror or exc}"))
    state = FileState(name, role, shown, OK, size_bytes=len(data))
    try:
        payloads, valid_bytes, reason = scan(path, data)
    except WalCorrupt as exc:
        state.status, state.offset, state.detail = CORRUPT, exc.offset, f"corrupt at offset {exc.offset}: {exc.reason}"
        return Loaded(state)
    if valid_bytes == 0 and data and not data.startswith(MAGIC[:min(len(data), len(MAGIC))]):
        state.status, state.offset, state.detail = FOREIGN, 0, "not a paxos wal (no frame magic at offset 0)"
        return Loaded(state)
    loaded = Loaded(state)
    if payloads:
        why = _header_mismatch(payloads[0], role, name)
        if why:
            state.status, state.offset, state.detail = FOREIGN, 0, why
            return loaded
        offset = HEADER_BYTES + len(payloads[0])
        for payload in payloads[1:]:
            try:
                loaded.records.extend(decode_records(payload))
            except DecodeError as exc:
                state.status, state.offset = CORRUPT, offset
                state.detail = f"corrupt at offset {offset}: undecodable records ({exc})"
                loaded.records = []
                return loaded
            offset += HEADER_BYTES + len(payload)
    if valid_bytes < len(data):
        state.status, state.offset = TORN, valid_bytes
        partial = f"a partial last frame of {len(data) - valid_bytes} bytes at offset {valid_bytes} ({reason})"
        running = file_in_use(path.with_name(path.name + ".lock"))
        if running:
            state.detail = f"{partial}: still being written ({name} is running); the frames before it are read"
        elif running is None:
            state.detail = f"{partial}: still being written, or torn by a crash; the frames before it are read"
        else:
            state.detail = (f"{partial}: torn by a crash ({name} is not running; it cuts the tail when it starts, "
                            f"and a torn write was never acknowledged); the frames before it are read")
    return loaded


def _header_mismatch(payload: bytes, role: str, name: str) -> str:
    try:
        header = unpack(payload, "header")
    except DecodeError as exc:
        return f"not a paxos wal ({exc})"
    if type(header) is not tuple or len(header) != 4 or header[0] != FORMAT:
        return "not a paxos wal (bad header)"
    if header[1] != FORMAT_VERSION:
        return f"wal format version {header[1]!r}, not {FORMAT_VERSION}"
    if header[2] != role or header[3] != name:
        return f"its header says it belongs to {header[2]} {header[3]!r}, not {role} {name!r}: not this file's actor"
    return ""


# --- values -------------------------------------------------------------------------------------


def value_json(v: Value) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": KIND_NAMES.get(v.kind, str(v.kind)), "epoch": str(v.epoch),
                           "batches": len(v.batches), "bytes": sum(len(b) for b in v.batches)}
    if v.kind == COMMANDS:
        out["commands"] = commands_of(v)[:COMMANDS_JSON_MAX]
    elif v.kind == MEMBERSHIP:
        try:
            out["members"] = decode_membership(v.batches[0]).describe()
        except (BadMembership, IndexError):
            out["members"] = "(undecodable)"
    return out


def commands_of(v: Value) -> list[dict[str, Any]]:
    """The client commands of a COMMANDS value, as far as they decode (a bad batch is shown as
    such: every learner skips it the same way)."""
    out: list[dict[str, Any]] = []
    for blob in v.batches:
        try:
            batch = parse_batch(decode_client_batch(blob))
        except (BadBatch, DecodeError, ValueError) as exc:
            out.append({"client": "", "seq": None, "op": "bad batch", "key": str(exc)})
            continue
        for command in batch.commands:
            seq = command[0] if command and type(command[0]) is int else None
            op = str(command[1]) if len(command) > 1 else "?"
            key = str(command[2]) if len(command) > 2 else ""
            out.append({"client": batch.client_id, "seq": seq, "op": op, "key": key})
    return out


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS_MAX else text[:PREVIEW_CHARS_MAX - 3] + "..."


def describe_value(v: Value) -> str:
    if v.kind == NOOP:
        return f"a no-op of epoch {v.epoch} (a new leader found the slot empty)"
    if v.kind == START:
        return f"StartWorking(epoch {v.epoch})"
    if v.kind == MEMBERSHIP:
        return f"a membership change ({value_json(v)['members']})"
    if v.kind != COMMANDS:
        return f"a value of unknown kind {v.kind} (epoch {v.epoch})"
    commands = commands_of(v)
    shown = ", ".join(f"{_preview(c['client'])}#{c['seq']} {c['op']} {_preview(c['key'])!r}"
                      for c in commands[:COMMANDS_SHOWN_MAX])
    more = f", and {len(commands) - COMMANDS_SHOWN_MAX} more" if len(commands) > COMMANDS_SHOWN_MAX else ""
    batches = f"{len(v.batches)} batch" + ("es" if len(v.batches) != 1 else "")
    return f"epoch {v.epoch}'s commands ({batches}: {shown}{more})"


# --- the explanation ------------------------------------------------------------------------------


@dataclass
class Vote:
    ballot: str
    value: dict[str, Any]
    counted: bool  # by an acceptor of the slot's membership, under a ballot of this cluster


@dataclass
class AcceptorView:
    name: str
    file: str
    status: str
    in_membership: bool
    promised: str = ""
    votes: list[Vote] = field(default_factory=list)  # for the slot, in file order
    compacted_through: int = 0  # values at or below it are folded into a snapshot (or a rebuild floor)
    watermark: int = 0  # the leaders' chosen_through, as this acceptor recorded it
    highest_slot: int = 0
    rebuilding: bool = False
    rebuild_floor: int = 0  # rebuilt after losing its file: it vouches for nothing through this slot


@dataclass
class Choice:
    ballot: str
    value: dict[str, Any]
    text: str
    voters: list[str]
    quorum: int  # votes needed
    fast: bool  # a fast quorum was needed


@dataclass
class LearnerView:
    name: str
    file: str
    status: str
    delivered_through: int = 0
    delivered: str = "no"  # "yes" (a decision in its file), "snapshot" (inside one), "no"
    value: dict[str, Any] | None = None
    outcome: str = ""  # applied, skipped, no-op, epoch started, membership, not delivered, ...
    epoch_before: str = ""  # the epoch rule's epoch when the slot was delivered
    epoch_slot: int | None = None  # the slot whose StartWorking set it (None: inside a snapshot)


@dataclass
class Explanation:
    slot: int
    mode: str
    membership: list[str]
    membership_chosen_at: int  # 0: cluster.toml's bootstrap membership
    alpha: int
    verdict: str  # chosen, not_chosen, delivered, beyond_log, compacted, violation
    summary: str
    chosen: list[Choice] = field(default_factory=list)
    acceptors: list[AcceptorView] = field(default_factory=list)
    learners: list[LearnerView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    files: list[FileState] = field(default_factory=list)
    exit_code: int = EXIT_EXPLAINED


# --- reading the cluster -------------------------------------------------------------------------


@dataclass
class _Acceptor:
    view: AcceptorView
    votes: list[tuple[Ballot, Value]]  # for the slot
    starts: dict[int, list[tuple[Ballot, Value]]]  # StartWorking votes per slot (the epoch rule ahead)


def _read_acceptor(loaded: Loaded, slot: int, in_membership: bool) -> _Acceptor:
    """Replay one acceptor's records the way `Acceptor.apply` does, keeping every vote for `slot`
    (not only the last: a quorum may have chosen it under an earlier ballot) and the StartWorking
    votes of other slots (the epoch rule ahead of the learners)."""
    view = AcceptorView(loaded.file.name, loaded.file.path, loaded.file.status, in_membership)
    votes: list[tuple[Ballot, Value]] = []
    starts: dict[int, list[tuple[Ballot, Value]]] = {}
    promised = ZERO
    for r in loaded.records:
        if type(r) is AcceptRecord:
            promised = max(promised, r.ballot.base())  # a recovery round's vote promises its base
            for s, v in r.entries:
                if s == slot:
                    votes.append((r.ballot, v))
                elif v.kind == START:
                    starts.setdefault(s, []).append((r.ballot, v))
                view.highest_slot = max(view.highest_slot, s)
            view.watermark = max(view.watermark, min(r.chosen_through, view.highest_slot))
        elif type(r) is PromiseRecord:
            promised = max(promised, r.ballot)
        elif type(r) is SnapshotRecord:
            view.compacted_through = max(view.compacted_through, r.slot)
            view.highest_slot = max(view.highest_slot, r.slot)
        elif type(r) is RebuildRecord:
            view.rebuilding = not r.done
            view.rebuild_floor = max(view.rebuild_floor, r.floor)
            view.compacted_through = max(view.compacted_through, r.floor)
    view.promised = str(promised) if promised != ZERO else ""
    return _Acceptor(view, votes, starts)


def snapshot_path(config: ClusterConfig, name: str, slot: int) -> Path:
    return config.snapshot_dir(name) / f"{slot:020d}.snap"  # runtime/storage.py SnapshotDir.file


def _snapshot_epoch(path: Path, slot: int) -> tuple[Ballot | None, str]:
    """The epoch rule's epoch a learner's snapshot of `slot` holds, or (None, why not)."""
    try:
        state = decode_snapshot(path.read_bytes(), slot)
    except FileNotFoundError:
        return None, "missing, and the learner's wal names it"
    except (OSError, SnapshotCorrupt) as exc:
        return None, str(exc)
    if type(state) not in (list, tuple) or len(state) < 5 or type(state[1]) is not int or type(state[2]) is not int:
        return None, "not a learner snapshot"
    return Ballot(state[1], state[2]), ""


@dataclass
class _LearnerRead:
    view: LearnerView
    value: Value | None  # what it delivered at the slot (None: not, or inside a snapshot)
    members: list[tuple[int, Value]]  # the membership changes it delivered
    epoch: Ballot  # the epoch rule's epoch at the end of its file ...
    epoch_slot: int  # ... the slot that set it ...
    from_snapshot: bool  # ... or a snapshot at or after which it was set


def _read_learner(config: ClusterConfig, loaded: Loaded, slot: int, problems: list[FileState]) -> _LearnerRead:
    """Replay one learner's decisions the way `Learner.apply` does, noting the epoch rule at
    `slot`."""
    view = LearnerView(loaded.file.name, loaded.file.path, loaded.file.status)
    delivered = 0
    epoch, epoch_slot = ZERO, 0  # the epoch rule's epoch and the slot that set it (0: none yet)
    from_snapshot = False  # the epoch came from a snapshot: set at or before epoch_slot
    value: Value | None = None
    members: list[tuple[int, Value]] = []
    for r in loaded.records:
        if type(r) is SnapshotRecord:
            if r.slot <= delivered:
                continue  # the decisions before it brought the learner there already
            path = snapshot_path(config, view.name, r.slot)
            snap_epoch, why = _snapshot_epoch(path, r.slot)
            if snap_epoch is None:
                problems.append(FileState(view.name, "learner", str(path), CORRUPT,
                                          f"{why}: the epoch rule's epoch at slot {r.slot} is unknown"))
                snap_epoch = ZERO
            delivered, epoch, epoch_slot, from_snapshot = r.slot, snap_epoch, r.slot, True
            if r.slot >= slot and value is None:
                view.delivered = "snapshot"
                view.outcome = f"delivered inside its snapshot of slot {r.slot} (the value is not in its file)"
            continue
        if type(r) is not DecidedRecord:
            continue
        if r.slot != delivered + 1:
            # The learner itself would refuse to start on this file (an invariant): say so.
            problems.append(FileState(view.name, "learner", view.file, CORRUPT,
                                      f"decides slot {r.slot} after slot {delivered}: a gap or a repeat"))
            break
        delivered = r.slot
        v = r.value
        if r.slot == slot:
            value = v
            view.delivered = "yes"
            view.value = value_json(v)
            view.epoch_before = str(epoch) if epoch != ZERO else ""
            view.epoch_slot = None if from_snapshot or not epoch_slot else epoch_slot
            view.outcome = _outcome(slot, v, epoch, epoch_slot, from_snapshot)
        if v.kind == START and v.epoch > epoch:
            epoch, epoch_slot, from_snapshot = v.epoch, r.slot, False
        elif v.kind == MEMBERSHIP:
            members.append((r.slot, v))
    view.delivered_through = delivered
    if view.delivered == "no":
        view.outcome = f"not delivered yet (delivered through slot {delivered})"
    return _LearnerRead(view, value, members, epoch, epoch_slot, from_snapshot)


def _outcome(slot: int, v: Value, epoch: Ballot, epoch_slot: int, from_snapshot: bool) -> str:
    if v.kind == COMMANDS:
        if v.epoch < epoch:
            where = (f"at or before slot {epoch_slot} (its snapshot holds the epoch)" if from_snapshot
                     else f"at slot {epoch_slot}")
            return (f"skipped by the epoch rule: slot {slot} holds epoch {v.epoch}'s command, skipped: epoch "
                    f"{epoch} started {where} (seed 001: a command of an epoch below the highest StartWorking "
                    f"before it is a ghost of a superseded leader)")
        return "applied to the key-value state" + (f" (epoch {epoch} in force)" if epoch != ZERO else "")
    if v.kind == START:
        return (f"epoch {v.epoch} started here" if v.epoch > epoch
                else f"a StartWorking of epoch {v.epoch}, below epoch {epoch} in force: it changes nothing")
    if v.kind == NOOP:
        return "a no-op: nothing applied"
    if v.kind == MEMBERSHIP:
        return "a membership change, learned as a fact"
    return "a value of an unknown kind: nothing applied"


def _need(rules: FastRules, b: Ballot, v: Value, n: int) -> tuple[int, bool]:
    """Votes that choose `v` under `b` among `n` acceptors, and whether that is a fast quorum: the
    learner's rule (a fast round's client command needs a fast quorum; the leader's own proposals,
    a StartWorking or a value Phase 1 found, a majority)."""
    if rules.enabled and rules.is_fast(b) and v.kind == COMMANDS and v.epoch == b.base():
        return fast_quorum(n), True
    return classic_quorum(n), False


def _choices(rules: FastRules, members: Membership, ids: set[int],
             votes: Iterable[tuple[str, Ballot, Value]]) -> tuple[list[Choice], list[Value], list[str]]:
    """The (ballot, value) pairs a quorum of `members` voted for, lowest ballot first, with their
    values, and notes on fast-round values that only a majority took."""
    names = set(members.acceptor_names)
    n = len(names)
    groups: dict[tuple[Ballot, Value], list[str]] = {}
    for acceptor, b, v in votes:
        if acceptor in names and b.node in ids:
            voters = groups.setdefault((b, v), [])
            if acceptor not in voters:
                voters.append(acceptor)
    chosen: list[Choice] = []
    values: list[Value] = []
    near: list[str] = []
    for (b, v), voters in sorted(groups.items(), key=lambda kv: kv[0][0]):
        need, fast = _need(rules, b, v, n)
        if len(voters) >= need:
            chosen.append(Choice(str(b), value_json(v), describe_value(v), sorted(voters), need, fast))
            values.append(v)
        elif fast and len(voters) >= classic_quorum(n):
            near.append(f"under fast ballot {b}, {', '.join(sorted(voters))} ({len(voters)} of {n}) voted for "
                        f"{describe_value(v)}: a majority but not the fast quorum of {need}; chosen only if the "
                        f"leader proposed it itself under that ballot (the files do not say)")
    return chosen, values, near


def _epoch_ahead(slot: int, value: Value, learner: _LearnerRead, acceptors: list[_Acceptor], rules: FastRules,
                 history: History, ids: set[int]) -> str:
    """What the epoch rule will do with a chosen command no learner delivered yet: the epoch of
    the most advanced learner, raised by every StartWorking the acceptors' votes chose between."""
    epoch, epoch_slot, from_snapshot = learner.epoch, learner.epoch_slot, learner.from_snapshot
    between = sorted({s for a in acceptors for s in a.starts if learner.view.delivered_through < s < slot})
    for s in between:
        votes = [(a.view.name, b, v) for a in acceptors for b, v in a.starts.get(s, [])]
        _, started, _ = _choices(rules, history.at(s), ids, votes)
        for v in started:
            if v.epoch > epoch:
                epoch, epoch_slot, from_snapshot = v.epoch, s, False
    head = (f"no learner delivered slot {slot} yet ({learner.view.name} is the furthest, through slot "
            f"{learner.view.delivered_through}); as far as the files show, ")
    if value.epoch < epoch:
        where = f"at or before slot {epoch_slot} (a snapshot)" if from_snapshot else f"at slot {epoch_slot}"
        return (head + f"the epoch rule will skip it: slot {slot} holds epoch {value.epoch}'s command, and epoch "
                f"{epoch} started {where}")
    return head + "it will be applied" + (f" (epoch {epoch} in force before it)" if epoch != ZERO else "")


def _history(config: ClusterConfig, blobs: list[bytes], notes: list[str]) -> History:
    history = config.known_history()
    for blob in blobs:
        try:
            history.merge(blob)
        except (BadMembership, InvariantViolation) as exc:
            notes.append(f"a membership history in a file could not be read ({exc}); ignored")
    return history


def _check_marker(config: ClusterConfig, file: FileState) -> None:
    """An acceptor whose mode marker names the other mode: its votes mean other quorums."""
    if not file.usable:
        return
    try:
        mode = config.marker_path(file.name).read_text().strip() or "classic"  # an old, empty marker: classic
    except OSError:
        return
    if mode != config.protocol.mode:
        file.status = FOREIGN
        file.detail = (f"its marker {config.marker_path(file.name)} says it ran in {mode} mode, and {config.path} "
                       f"says mode = {config.protocol.mode!r}: its votes mean other quorums")


def explain(config: ClusterConfig, slot: int) -> Explanation:
    """Read every acceptor's and learner's file (and the proposers', for the membership) and
    explain `slot`. Never writes, never locks."""
    notes: list[str] = []
    files: list[FileState] = []
    wal_dir = config.data_dir / "wal"
    actors = {name: spec.role for name, spec in config.actors.items()}
    loaded: dict[str, Loaded] = {}
    problems: list[FileState] = []
    reads: dict[str, _LearnerRead] = {}
    # The files name members cluster.toml may not (a change the log chose, with no members.json
    # cache left): read theirs too, until no file names anyone new (each round adds a membership).
    for _ in range(MEMBERSHIP_ROUNDS_MAX):
        for name, role in actors.items():
            if name not in loaded:
                loaded[name] = load_wal(config.wal_path(name), role, name)
                if role == "acceptor":
                    _check_marker(config, loaded[name].file)
                if role == "learner" and loaded[name].file.usable:
                    reads[name] = _read_learner(config, loaded[name], slot, problems)
        blobs = [r.members for name, ld in loaded.items() if actors[name] != "learner" and ld.file.usable
                 for r in ld.records if type(r) is MembersRecord]
        history = _history(config, blobs, [])
        for read in reads.values():
            for s, v in read.members:
                try:
                    history.learn(s, decode_membership(v.batches[0]))
                except (BadMembership, IndexError, InvariantViolation):
                    pass
        grew = False
        for m in history.all_members():
            for name, role in [*((p, "proposer") for p in m.proposer_ids), *((a, "acceptor") for a in m.acceptor_names),
                               *((n, "learner") for n in m.learner_names)]:
                if name not in actors:
                    actors[name], grew = role, True
        if not grew:
            break
    history = _history(config, blobs, notes)  # again, keeping the notes once
    for read in reads.values():
        for s, v in read.members:
            try:
                history.learn(s, decode_membership(v.batches[0]))
            except (BadMembership, IndexError, InvariantViolation) as exc:
                notes.append(f"slot {s} holds a membership change that cannot be taken ({exc}); ignored")
    # Wals of names no membership knows: another cluster's files mixed in.
    try:
        strays = sorted(p for p in wal_dir.glob("*.wal") if p.stem not in actors)
    except OSError:
        strays = []
    for p in strays:
        files.append(FileState(p.stem, "", str(p), FOREIGN, f"no actor named {p.stem!r} in {config.path} or in "
                                                           f"the log's memberships: not this cluster's file"))
    acceptors: list[_Acceptor] = []
    acceptor_loads = [ld for name, ld in loaded.items() if actors[name] == "acceptor"]
    learner_rows: list[tuple[LearnerView, Value | None]] = []
    for name, ld in loaded.items():
        if actors[name] != "learner":
            continue
        if name in reads:
            learner_rows.append((reads[name].view, reads[name].value))
        else:
            learner_rows.append((LearnerView(name, ld.file.path, ld.file.status, outcome="its file is not read"), None))
    ends = list(reads.values())
    members, chosen_at = history.in_force(slot)
    ids = {i for m in history.all_members() for i in m.proposer_ids.values()}
    everyone = {a for m in history.all_members() for a in m.acceptor_names}
    for ld in acceptor_loads:
        name = ld.file.name
        if ld.file.usable:
            acceptors.append(_read_acceptor(ld, slot, name in members.acceptor_names))
        elif name in everyone:
            acceptors.append(_Acceptor(AcceptorView(name, ld.file.path, ld.file.status,
                                                    name in members.acceptor_names), [], {}))
    rules = config.fast_rules()
    # Votes under a ballot of no proposer of this cluster: another cluster's votes.
    for acc in acceptors:
        foreign = sorted({str(b) for b, _ in acc.votes if b.node not in ids})
        if foreign:
            files.append(FileState(acc.view.name, "acceptor", acc.view.file, FOREIGN,
                                   f"votes for slot {slot} under ballot(s) {', '.join(foreign)}, of no proposer of "
                                   f"this cluster (ids {', '.join(str(i) for i in sorted(ids))}); not counted"))
        acc.view.votes = [Vote(str(b), value_json(v), acc.view.in_membership and b.node in ids) for b, v in acc.votes]
    chosen, chosen_values, near = _choices(rules, members, ids,
                                           ((a.view.name, b, v) for a in acceptors for b, v in a.votes))
    notes.extend(near)
    out = Explanation(slot, config.protocol.mode, members.acceptor_names, chosen_at, history.alpha, "", "",
                      chosen=chosen, acceptors=[a.view for a in acceptors],
                      learners=[view for view, _ in learner_rows], notes=notes)
    files[:0] = [ld.file for ld in loaded.values() if ld.file.status != OK
                 and not (actors[ld.file.name] == "proposer" and ld.file.status == MISSING)]
    files.extend(problems)
    out.files = files
    _judge(out, acceptors, learner_rows, rules, members, ids, history)
    if out.verdict == "chosen" and chosen_values[0].kind == COMMANDS and ends and all(
            r.view.delivered == "no" for r in ends):
        out.notes.append(_epoch_ahead(slot, chosen_values[0], max(ends, key=lambda r: r.view.delivered_through),
                                      acceptors, rules, history, ids))
    return out


def _judge(out: Explanation, acceptors: list[_Acceptor], learners: list[tuple[LearnerView, Value | None]],
           rules: FastRules, members: Membership, ids: set[int], history: History) -> None:
    """The verdict, the violations and the exit code."""
    slot = out.slot
    values = {json.dumps(c.value, sort_keys=True): c for c in out.chosen}
    if len(values) > 1:
        out.violations.append(f"safety violation: slot {slot} has {len(values)} different values chosen: " + "; ".join(
            f"{c.text} under ballot {c.ballot} by {', '.join(c.voters)}" for c in values.values()))
    delivered = [(view, value) for view, value in learners if value is not None]
    by_value: dict[str, tuple[list[str], Value]] = {}
    for view, value in delivered:
        assert value is not None
        by_value.setdefault(json.dumps(value_json(value), sort_keys=True), ([], value))[0].append(view.name)
    if len(by_value) > 1:
        out.violations.append(f"safety violation: learners delivered different values for slot {slot}: " + "; ".join(
            f"{', '.join(names)}: {describe_value(v)}" for names, v in by_value.values()))
    elif by_value and values and next(iter(by_value)) not in values:
        names, v = next(iter(by_value.values()))
        out.violations.append(f"safety violation: the acceptors' votes chose {next(iter(values.values())).text}, "
                              f"and {', '.join(names)} delivered {describe_value(v)}")
    skips = {view.name: view.outcome.startswith("skipped") for view, value in delivered}
    if not out.violations and len(set(skips.values())) > 1:
        out.violations.append(f"safety violation: learners delivered the same value for slot {slot} but disagree on "
                              f"the epoch rule (skipped by {', '.join(n for n, k in skips.items() if k)}, applied "
                              f"by {', '.join(n for n, k in skips.items() if not k)}): their logs before it differ")
    highest = max([a.view.highest_slot for a in acceptors] + [view.delivered_through for view, _ in learners] + [0])
    compacted = [a.view for a in acceptors if a.view.compacted_through >= slot]
    any_votes = any(a.votes for a in acceptors)
    in_files = any(v is not None for _, v in learners) or any_votes
    bad = [f for f in out.files if f.status in (MISSING, CORRUPT)]
    foreign = [f for f in out.files if f.status == FOREIGN]
    quorum = f"a majority of {members.majority()} of {len(members.acceptor_names)}"
    if rules.enabled:
        quorum += (f" (a fast round's client command: a fast quorum of {fast_quorum(len(members.acceptor_names))})")
    if out.violations:
        out.verdict, out.exit_code = "violation", EXIT_VIOLATION
        out.summary = out.violations[0]
    elif slot > highest:
        holder = _highest_holder(acceptors, learners, highest)
        out.verdict, out.exit_code = "beyond_log", EXIT_NOT_IN_LOG
        out.summary = (f"slot {slot} is beyond the log: the highest slot any file holds is {highest}"
                       + (f" ({holder})" if holder else ""))
    elif not in_files and compacted:
        out.verdict, out.exit_code = "compacted", EXIT_NOT_IN_LOG
        where = ", ".join(f"{a.name} through {a.compacted_through}" for a in compacted)
        snaps = [view for view, _ in learners if view.delivered == "snapshot"]
        out.summary = f"slot {slot} is below the compaction point ({where}): its value lives only inside snapshots"
        if snaps:
            out.summary += f"; delivered by {', '.join(v.name for v in snaps)} (inside their snapshots)"
    elif out.chosen:
        c = out.chosen[0]
        out.verdict = "chosen"
        fast = "a fast quorum" if c.fast else "a majority"
        out.summary = (f"slot {slot} chose {c.text} under ballot {c.ballot}: {', '.join(c.voters)} voted for it "
                       f"under that ballot, {fast} ({c.quorum} of {len(members.acceptor_names)} needed)")
    elif delivered:
        view, v = delivered[0]
        assert v is not None
        out.verdict = "delivered"
        out.summary = (f"slot {slot} was delivered ({describe_value(v)}) by "
                       f"{', '.join(vw.name for vw, _ in delivered)}, but no quorum of votes for it under one ballot "
                       f"is left in the acceptors' files (compacted, superseded by a later ballot, or in a file "
                       f"that is not read)")
    else:
        out.verdict = "not_chosen"
        voted = [a.view.name for a in acceptors if a.votes]
        out.summary = (f"slot {slot} is not chosen: " + (
            f"{', '.join(voted)} voted for it, fewer than {quorum} under one ballot" if voted
            else "no acceptor's file holds a vote for it"))
    if out.verdict in ("chosen", "not_chosen", "delivered"):
        if not any_votes and compacted:
            out.notes.append("acceptors " + ", ".join(f"{a.name} (through {a.compacted_through})" for a in compacted)
                             + f" folded slot {slot} into a snapshot")
        skipped = [view for view, _ in learners if view.outcome.startswith("skipped")]
        if skipped:
            out.summary += f"; {skipped[0].outcome}"
    if out.exit_code == EXIT_EXPLAINED and bad:
        out.exit_code = EXIT_FILE_BAD
    if out.exit_code == EXIT_EXPLAINED and foreign:
        out.exit_code = EXIT_FOREIGN
    out.notes.append(f"membership of slot {slot}: acceptors {', '.join(members.acceptor_names)} ("
                     + (f"chosen at slot {out.membership_chosen_at}, in force from slot "
                        f"{out.membership_chosen_at + history.alpha}" if out.membership_chosen_at
                        else "cluster.toml's bootstrap membership")
                     + f"); {out.mode} mode: {quorum} chooses")


def _highest_holder(acceptors: list[_Acceptor], learners: list[tuple[LearnerView, Value | None]], highest: int) -> str:
    for a in acceptors:
        if a.view.highest_slot == highest and highest:
            return a.view.name
    for view, _ in learners:
        if view.delivered_through == highest and highest:
            return view.name
    return ""


# --- showing it ---------------------------------------------------------------------------------


def to_json(e: Explanation) -> str:
    return json.dumps(asdict(e), indent=2, sort_keys=False)


def _vote_text(v: Vote) -> str:
    kind = v.value["kind"]
    extra = f" x{v.value['batches']}" if kind == "commands" else ""
    return f"{v.ballot}: {kind}@{v.value['epoch']}{extra}" + ("" if v.counted else " (not counted)")


def render_text(e: Explanation) -> str:
    lines = [e.summary]
    for c in e.chosen[1:]:
        lines.append(f"  also chosen under ballot {c.ballot} by {', '.join(c.voters)}: {c.text}")
    for v in e.violations[1:]:
        lines.append(v)
    if e.chosen:
        lines.append(f"value: {e.chosen[0].text}")
    lines.append("acceptors:")
    for a in e.acceptors:
        if a.status not in (OK, TORN):
            lines.append(f"  {a.name}: its file is {a.status} (see files below)")
            continue
        parts = [f"promised {a.promised or 'nothing'}"]
        if a.votes:
            parts.append("voted " + "; ".join(_vote_text(v) for v in a.votes))
        elif a.rebuild_floor >= e.slot:
            parts.append(f"no vote: rebuilt after losing its file, it vouches for nothing through slot "
                         f"{a.rebuild_floor}")
        elif a.compacted_through >= e.slot:
            parts.append(f"no vote: compacted through slot {a.compacted_through} (its value is inside a snapshot)")
        else:
            parts.append(f"no vote for slot {e.slot} (its highest slot is {a.highest_slot})")
        if a.watermark:
            parts.append(f"leaders' watermark {a.watermark}")
        if not a.in_membership:
            parts.append(f"not in slot {e.slot}'s membership: its votes count nowhere here")
        if a.rebuilding:
            parts.append("rebuilding: it votes on nothing yet")
        if a.status == TORN:
            parts.append("read up to its partial last frame (see files below)")
        lines.append(f"  {a.name}: " + ", ".join(parts))
    lines.append("learners:")
    for lv in e.learners:
        lines.append(f"  {lv.name}: {lv.outcome}" + (f" (delivered through {lv.delivered_through})"
                                                     if lv.delivered != "no" and lv.status in (OK, TORN) else ""))
    for note in e.notes:
        lines.append(f"note: {note}")
    if e.files:
        lines.append("files:")
        for f in e.files:
            lines.append(f"  {f.name}: {f.describe()}")
    return "\n".join(lines)
