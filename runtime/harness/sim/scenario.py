"""Scenario scripts: the small machine seed 001 dreams of, that puts the system straight into an
extreme state and checks what it does there.

A script drives real cores on a hand-driven network (`runtime/sim/world.py`): it can craft
durable state, deliver, drop, duplicate or hold back chosen messages, crash, restart and corrupt
actors, and state expectations. Running it produces a transcript (every command, every message
delivered or dropped, every info-level event, every expectation checked); tests compare it with
a golden file reviewed in the repository (`tests/scenarios/*.golden`).

    python -m runtime.harness.sim.scenario tests/scenarios/ghost_reappearance.scn [--update]

Commands (one per line; `#` starts a comment; FILTER is any of `type=a,b from=x,y to=x,y`):

    cluster proposers=N acceptors=N learners=N [snapshot_every=K] [chunk_bytes=B] [spare_acceptors=N alpha=A window=W]
            [spare_learners=N] [mode=fast [recovery=coordinated|uncoordinated]]
                                                    first line; learners snapshot every K slots;
                                                    spare acceptors and learners outside the bootstrap membership;
                                                    mode=fast: Fast Paxos (issue 12, actors/fast.py)
    record ACTOR promise BALLOT                     crafted durable state, then the actor restarts
    record ACTOR accept BALLOT SLOT VALUE [ct=N]    VALUE: noop@B | start@B | cmd@B CLIENT/SEQ OP ARGS...;
                                                    ct: the chosen watermark the leader had sent
    record ACTOR round N
    timeout PROPOSER                                its election timer fires now
    tick [ACTOR ...] [n=K]                          K ticks of the named actors (default all)
    submit PROPOSER CLIENT/SEQ OP ARGS...           a client sends one command
    fast-submit CLIENT/SEQ OP ARGS...               (fast mode) a client sends one command straight to every
                                                    acceptor (FastAccept, queued: deliver-once to=... picks
                                                    the order in which each acceptor takes it)
    deliver [FILTER]                                deliver matching messages, and what they cause, until none match
    deliver-once [FILTER]                           deliver only the matching messages queued now
    drop [FILTER] | dup [FILTER]                    lose or duplicate queued messages
    hold [FILTER] | release [FILTER]                keep messages back (a delay), put them back in the queue
    crash ACTOR | restart ACTOR                     lose the process; rebuild it from its file
    wipe ACTOR                                      `paxos wipe`: it stops and loses every file (then restart it)
    corrupt ACTOR                                   flip a byte in the middle of its file
    run [n=K]                                       tick everything and deliver everything, K times
    expect ACTOR FIELD=VALUE ...                    compare with the actor's status()
    expect-kv LEARNER KEY=VALUE ...                 KEY= means absent
    expect-chosen SLOT BALLOT VALUE-DESCRIPTION     a majority of acceptors holds it under that ballot (a
                                                    fast quorum under a fast ballot; BALLOT R.N+1: a recovery round)
    expect-replies CLIENT SEQ=RESULT ...            RESULT: what the client was told (or `none`)
    expect-refused ACTOR                            restarting it must fail: its file is corrupt
    members PROPOSER add|add-learner|remove NAME | replace OLD NEW | set A,B,C
                                                    the operator's membership change (issue 11; add:
                                                    an acceptor; remove: any member; set: the
                                                    acceptors become exactly A,B,C, in one change)
    expect-members ACTOR SLOT a1,a2,...             the acceptors that decide SLOT, as ACTOR knows
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from actors.ballot import Ballot
from actors.fast import FastRules
from actors.membership import decode as decode_membership
from actors.messages import (
    COMMANDS,
    KIND_NAMES,
    MEMBERSHIP,
    NOOP,
    START,
    Accept,
    Accepted,
    Any_,
    FastAccept,
    Fetch,
    Fetched,
    Heartbeat,
    Message,
    Nack,
    Prepare,
    Probe,
    Probed,
    Promise,
    Recover,
    Recovered,
    Redirect,
    Repair,
    Reply,
    SnapshotChunk,
    SnapshotFetch,
    SnapshotOffer,
    Submit,
    Value,
)
from actors.ready import DEBUG, Event
from actors.records import AcceptRecord, PromiseRecord, RoundRecord
from runtime import codec
from runtime.harness.sim.world import Envelope, World, WorldConfig
from runtime.turn import PRODUCT, Kinds
from runtime.wal import WalCorrupt


class ScenarioError(Exception):
    """A script line failed (a bad command, or an expectation that did not hold)."""


def ballot(text: str) -> Ballot:
    text, _, sub = text.partition("+")
    r, n = text.split(".")
    return Ballot(int(r), int(n), int(sub or 0))


def describe_value(v: Value) -> str:
    if v.kind == MEMBERSHIP:
        return f"membership@{v.epoch}[{','.join(decode_membership(v.batches[0]).acceptor_names)}]"
    if v.kind != COMMANDS:
        return f"{KIND_NAMES[v.kind]}@{v.epoch}"
    parts = []
    for blob in v.batches:
        client, _, commands = codec.decode_client_batch(blob)
        for c in commands:
            parts.append(f"{client}/{c[0]} {' '.join(str(x) for x in c[1:])}")
    return f"cmd@{v.epoch}[{'; '.join(parts)}]"


def _batch_text(batch: bytes) -> str:
    """A client batch's commands as transcripts show them: `client/seq op args`."""
    client, _, commands = codec.decode_client_batch(batch)
    return "; ".join(f"{client}/{c[0]} {' '.join(str(x) for x in c[1:])}" for c in commands)


def describe(m: Message) -> str:
    """One line per message, readable in a transcript."""
    if isinstance(m, Prepare):
        return f"prepare {m.ballot} from_slot={m.from_slot}"
    if isinstance(m, Promise):
        votes = ", ".join(f"{v.slot}:{v.ballot}={describe_value(v.value)}" for v in m.votes)
        return (f"promise {m.ballot} chosen_through={m.chosen_through} highest={m.highest_slot}"
                + (f" votes=[{votes}]" if votes else ""))
    if isinstance(m, Nack):
        return f"nack {m.ballot} promised={m.promised}"
    if isinstance(m, Accept):
        if not m.entries:
            return f"accept {m.ballot} (heartbeat) chosen_through={m.chosen_through}"
        return f"accept {m.ballot} " + ", ".join(f"{s}:{describe_value(v)}" for s, v in m.entries)
    if isinstance(m, Accepted):
        values = f" values=[{', '.join(describe_value(v) for v in m.values)}]" if m.values else ""
        return f"accepted {m.ballot} slots={','.join(map(str, m.slots)) or '-'}{values}"
    if isinstance(m, Any_):
        return f"any {m.ballot} from_slot={m.from_slot}"
    if isinstance(m, FastAccept):
        return "fast-accept " + _batch_text(m.batch)
    if isinstance(m, Heartbeat):
        return f"heartbeat {m.ballot} chosen_through={m.chosen_through}"
    if isinstance(m, Fetch):
        return f"fetch {m.from_slot}..{m.to_slot}"
    if isinstance(m, Recover):
        return f"recover {m.ballot} {m.from_slot}..{m.to_slot} nonce={m.nonce}"
    if isinstance(m, Recovered):
        votes = ", ".join(f"{v.slot}:{v.ballot}={describe_value(v.value)}" for v in m.votes)
        return f"recovered {m.ballot} nonce={m.nonce} {m.from_slot}..{m.reported_through} votes=[{votes}]"
    if isinstance(m, Repair):
        return f"repair {m.from_slot}..{m.to_slot}"
    if isinstance(m, Fetched):
        extra = f" compacted_through={m.compacted_through} snapshot={m.snapshot_slot}" if m.compacted_through else ""
        return "fetched " + ", ".join(f"{v.slot}:{v.ballot}" for v in m.votes) + extra
    if isinstance(m, Probe):
        return "probe"
    if isinstance(m, Probed):
        return f"probed promised={m.promised} highest={m.highest_slot} chosen_through={m.chosen_through}"
    if isinstance(m, SnapshotOffer):
        return f"snapshot-offer slot={m.slot} bytes={m.size_bytes}"
    if isinstance(m, SnapshotFetch):
        return f"snapshot-fetch slot={m.slot} offset={m.offset} length={m.length}"
    if isinstance(m, SnapshotChunk):
        return f"snapshot-chunk slot={m.slot} offset={m.offset} bytes={len(m.data)} of {m.size_bytes}"
    if isinstance(m, Submit):
        return "submit " + _batch_text(m.batch)
    if isinstance(m, Reply):
        return "reply " + ", ".join(f"{seq}={'ok' if ok else 'err'}:{res}" for seq, ok, res in m.results)
    if isinstance(m, Redirect):
        return f"redirect leader={m.leader or '-'} reason={m.reason}"
    return m.TYPE


def script_lines(text: str, out: Callable[[str], None]) -> Iterator[tuple[int, str]]:
    """A script's command lines, numbered, for either executor: a comment line is echoed to
    the transcript as it stands, a command as `> LINE` before it runs, blank lines are skipped."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if raw.strip().startswith("#"):
            out(raw.rstrip())
            continue
        if not line:
            continue
        out(f"> {line}")
        yield number, line


def parse_value(tokens: list[str]) -> Value:
    head = tokens[0]
    kind_text, _, epoch_text = head.partition("@")
    epoch = ballot(epoch_text)
    if kind_text == "noop":
        return Value(NOOP, epoch)
    if kind_text == "start":
        return Value(START, epoch)
    if kind_text != "cmd" or len(tokens) < 3:
        raise ScenarioError(f"a value is noop@B, start@B or cmd@B CLIENT/SEQ OP ARGS..., not {' '.join(tokens)}")
    client, seq = tokens[1].split("/")
    command = [int(seq), *tokens[2:]]
    return Value(COMMANDS, epoch, (codec.encode_client_batch(client, 0, [command]),))


def parse_command(tokens: list[str]) -> tuple[str, list[Any]]:
    client, seq = tokens[0].split("/")
    return client, [int(seq), *(None if t == "-" else t for t in tokens[1:])]


def make_filter(args: list[str]) -> Callable[[Envelope], bool]:
    types: set[str] | None = None
    sources: set[str] | None = None
    dests: set[str] | None = None
    for arg in args:
        key, _, value = arg.partition("=")
        items = set(value.split(","))
        if key == "type":
            types = items
        elif key == "from":
            sources = items
        elif key == "to":
            dests = items
        else:
            raise ScenarioError(f"a filter is type=, from= or to=, not {arg!r}")
    return lambda e: ((types is None or e.message.TYPE in types) and (sources is None or e.src in sources)
                      and (dests is None or e.dst in dests))


class Scenario:
    def __init__(self, kinds: Kinds = PRODUCT) -> None:
        self.kinds = kinds
        self.world: World | None = None
        self.lines: list[str] = []
        self.held: list[Envelope] = []

    @property
    def w(self) -> World:
        if self.world is None:
            raise ScenarioError("the first command must be `cluster ...`")
        return self.world

    def out(self, text: str) -> None:
        self.lines.append(text)

    # --- running ---------------------------------------------------------------------------

    def run(self, text: str, source: str = "<scenario>") -> str:
        for number, line in script_lines(text, self.out):
            try:
                self.execute(shlex.split(line))
            except ScenarioError as exc:
                raise ScenarioError(f"{source}:{number}: {line}: {exc}") from None
        return "\n".join(self.lines) + "\n"

    def execute(self, tokens: list[str]) -> None:
        op, args = tokens[0], tokens[1:]
        handler = getattr(self, "do_" + op.replace("-", "_"), None)
        if handler is None:
            raise ScenarioError(f"unknown command {op!r}")
        handler(args)

    def _on_events(self, name: str, events: list[Event]) -> None:
        for level, event, fields in events:
            if level == DEBUG or event in ("accepted",):
                continue
            shown = " ".join(f"{k}={v}" for k, v in fields.items())
            self.out(f"    {name}: {event} {shown}".rstrip())

    def _show(self, verb: str, envelopes: list[Envelope]) -> None:
        for e in envelopes:
            self.out(f"  {verb} {e.src} -> {e.dst}: {describe(e.message)}")

    def _deliver(self, pred: Callable[[Envelope], bool], cascade: bool) -> None:
        w = self.w
        for _ in range(10_000):
            batch = w.take(pred)
            if not batch:
                return
            for e in batch:
                self._show("deliver", [e])
                w.step(e.dst, e.src, e.message)
            if not cascade:
                return
        raise ScenarioError("deliver: no end in sight (a livelock?)")

    # --- commands --------------------------------------------------------------------------

    def do_cluster(self, args: list[str]) -> None:
        sizes = dict(a.split("=") for a in args)
        self.world = World(WorldConfig(proposers=int(sizes.get("proposers", 2)),
                                       acceptors=int(sizes.get("acceptors", 3)),
                                       learners=int(sizes.get("learners", 1)),
                                       snapshot_every_slots=int(sizes.get("snapshot_every", 0)),
                                       snapshot_chunk_bytes=int(sizes.get("chunk_bytes", 1 << 20)),
                                       spare_acceptors=int(sizes.get("spare_acceptors", 0)),
                                       spare_learners=int(sizes.get("spare_learners", 0)),
                                       alpha=int(sizes.get("alpha", 0)),
                                       fast=FastRules(sizes.get("mode", "classic"),
                                                      sizes.get("recovery", "coordinated")),
                                       params=dataclasses.replace(WorldConfig().params, window_slots=int(
                                           sizes.get("window", WorldConfig().params.window_slots)))),
                           seed=int(sizes.get("seed", 0)), kinds=self.kinds)
        self.world.on_events = self._on_events

    def do_record(self, args: list[str]) -> None:
        name, record = args[0], parse_record(args[1], args[2:])
        self.w.disks[name].append([record])
        self.w.restart(name)

    def do_members(self, args: list[str]) -> None:
        w = self.w
        p = w.proposer(args[0])
        current = p.history.latest()
        try:
            if args[1] == "add":
                new = current.with_acceptor(args[2], f"sim://{args[2]}")
            elif args[1] == "add-learner":
                new = current.with_learner(args[2], f"sim://{args[2]}")
            elif args[1] == "remove":
                new = current.without(args[2])
            elif args[1] == "replace":
                new = current.without(args[2]).with_acceptor(args[3], f"sim://{args[3]}")
            elif args[1] == "set":  # the acceptors become exactly these, in one change
                names = args[2].split(",")
                for old in current.acceptor_names:
                    if old not in names:
                        current = current.without(old)
                for name in names:
                    if name not in current.acceptor_names:
                        current = current.with_acceptor(name, f"sim://{name}")
                new = current
            else:
                raise ScenarioError(f"members PROPOSER add|add-learner|remove|replace|set, not {args[1]!r}")
        except ValueError as exc:
            self.out(f"    refused: {exc}")
            return
        outcome: list[str | None] = []
        w.perform(args[0], lambda ready: outcome.append(p.propose_membership(new, ready)))
        self.out(f"    refused: {outcome[0]}" if outcome and outcome[0] else "    proposed")

    def do_expect_members(self, args: list[str]) -> None:
        core: Any = self.w.cores[args[0]]
        got = ",".join(core.history.at(int(args[1])).acceptor_names)
        if got != args[2]:
            raise ScenarioError(f"{args[0]} has slot {args[1]} decided by {got}, not {args[2]}")
        self.out(f"  ok: slot {args[1]} decided by {got} at {args[0]}")

    def do_timeout(self, args: list[str]) -> None:
        self.w.perform(args[0], self.w.proposer(args[0]).campaign)

    def do_tick(self, args: list[str]) -> None:
        names = [a for a in args if "=" not in a] or None
        n = int(next((a.split("=")[1] for a in args if a.startswith("n=")), 1))
        self.w.tick(names, n)

    def do_submit(self, args: list[str]) -> None:
        client, command = parse_command(args[1:])
        self.w.submit(args[0], client, [command])

    def do_fast_submit(self, args: list[str]) -> None:
        w = self.w
        client, command = parse_command(args)
        message = FastAccept(codec.encode_client_batch(client, 0, [command]))
        for a in w.initial_acceptors:
            w._ids += 1
            w.queue.append(Envelope(client, a, message, w._ids, w.now))

    def do_deliver(self, args: list[str]) -> None:
        self._deliver(make_filter(args), cascade=True)

    def do_deliver_once(self, args: list[str]) -> None:
        self._deliver(make_filter(args), cascade=False)

    def do_drop(self, args: list[str]) -> None:
        self._show("drop", self.w.take(make_filter(args)))

    def do_dup(self, args: list[str]) -> None:
        pred = make_filter(args)
        copies = [e for e in self.w.queue if pred(e)]
        for e in copies:
            self.w._ids += 1
            self.w.queue.append(Envelope(e.src, e.dst, e.message, self.w._ids))
        self._show("dup", copies)

    def do_hold(self, args: list[str]) -> None:
        taken = self.w.take(make_filter(args))
        self.held += taken
        self._show("hold", taken)

    def do_release(self, args: list[str]) -> None:
        pred = make_filter(args)
        back = [e for e in self.held if pred(e)]
        self.held = [e for e in self.held if not pred(e)]
        self.w.queue += back
        self._show("release", back)

    def do_crash(self, args: list[str]) -> None:
        self.w.crash(args[0])
        self.held = [e for e in self.held if e.dst != args[0]]

    def do_restart(self, args: list[str]) -> None:
        try:
            core = self.w.restart(args[0])
        except WalCorrupt as exc:
            raise ScenarioError(f"restart failed: {exc}") from None
        self.out(f"    {args[0]}: recovered {_brief(core.status())}")

    def do_wipe(self, args: list[str]) -> None:
        self.w.wipe(args[0])
        self.held = [e for e in self.held if e.dst != args[0]]
        self.out(f"    {args[0]}: every file gone")

    def do_corrupt(self, args: list[str]) -> None:
        disk = self.w.disks[args[0]]
        middle = len(disk.data) // 2
        disk.data[middle] ^= 0xFF
        self.out(f"    {args[0]}: flipped the byte at offset {middle} of {len(disk.data)}")

    def do_expect_refused(self, args: list[str]) -> None:
        before = bytes(self.w.disks[args[0]].data)
        try:
            self.w.restart(args[0])
        except WalCorrupt as exc:
            if bytes(self.w.disks[args[0]].data) != before:
                raise ScenarioError("the file changed while refusing") from None
            self.out(f"    refused: {str(exc).split(': ', 1)[1].split(';')[0]}")
            self.w.down.add(args[0])
            return
        raise ScenarioError(f"{args[0]} started from a corrupt file")

    def do_run(self, args: list[str]) -> None:
        n = int(args[0].split("=")[1]) if args else 100
        quiet = self.lines[:]
        for _ in range(n):
            self.w.tick()
            self._deliver(lambda e: True, cascade=True)
        # A free run is long; keep only what matters for a reader.
        self.lines = quiet + [ln for ln in self.lines[len(quiet):] if not ln.startswith("  deliver")
                              and "heartbeat" not in ln]

    def do_expect(self, args: list[str]) -> None:
        status = self.w.cores[args[0]].status()
        for item in args[1:]:
            key, _, want = item.partition("=")
            got = str(status.get(key))
            if got != want:
                raise ScenarioError(f"expected {args[0]}.{key}={want}, got {got}")
        self.out("  ok")

    def do_expect_kv(self, args: list[str]) -> None:
        data = self.w.learner(args[0]).kv.data
        for item in args[1:]:
            key, _, want = item.partition("=")
            got = data.get(key)
            if (got or "") != want or (want == "" and got is not None):
                raise ScenarioError(f"expected {key}={want or '(absent)'} on {args[0]}, got {got!r}")
        self.out("  ok")

    def do_expect_chosen(self, args: list[str]) -> None:
        slot, want_ballot, want = int(args[0]), ballot(args[1]), " ".join(args[2:])
        w = self.w
        counts: dict[tuple[Ballot, str], int] = {}
        for a in w.acceptor_names:
            got = w.acceptor(a).accepted.get(slot) if a not in w.down else None
            if got is not None:
                k = (got[0], describe_value(got[1]))
                counts[k] = counts.get(k, 0) + 1
        n_acceptors = len(w.acceptor_names)
        need = {b: w.config.fast.quorum(b, n_acceptors) for b, _ in counts}
        chosen = [(b, d) for (b, d), n in counts.items() if n >= need[b]]
        if (want_ballot, want) not in chosen:
            raise ScenarioError(f"slot {slot}: expected {want} chosen, acceptors hold {counts}")
        self.out("  ok")

    def do_expect_replies(self, args: list[str]) -> None:
        got: dict[int, str] = {}
        for seq, ok, result in self.w.replies(args[0]):
            got.setdefault(seq, f"{'ok' if ok else 'err'}:{result}")  # the first answer counts
        for item in args[1:]:
            seq_text, _, want = item.partition("=")
            have = got.get(int(seq_text), "none")
            if have != want:
                raise ScenarioError(f"expected {args[0]}/{seq} to be answered {want}, got {have}")
        self.out("  ok")


def _brief(status: dict[str, Any]) -> str:
    keep = ("state", "promised", "highest_slot", "round", "delivered", "epoch", "snapshot_slot", "compacted_through")
    return " ".join(f"{k}={status[k]}" for k in keep if k in status
                    and not (k in ("snapshot_slot", "compacted_through") and not status[k]))


def run_file(path: Path, kinds: Kinds = PRODUCT) -> str:
    return Scenario(kinds).run(path.read_text(), str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.harness.sim.scenario")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--update", action="store_true", help="write the transcripts as the new golden files")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.files:
        golden = path.with_suffix(".golden")
        try:
            transcript = run_file(path)
        except ScenarioError as exc:
            print(f"FAIL {exc}")
            failed += 1
            continue
        if args.update:
            golden.write_text(transcript)
            print(f"wrote {golden}")
        elif not golden.exists() or golden.read_text() != transcript:
            print(f"FAIL {path}: the transcript differs from {golden} (run with --update after review)")
            failed += 1
        else:
            print(f"ok {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())


def parse_record(kind: str, rest: list[str]) -> Any:
    """A `record ACTOR KIND ...` line's crafted record (both executors of the scripts use it)."""
    if kind == "promise":
        return PromiseRecord(ballot(rest[0]))
    if kind == "accept":
        ct = int(rest.pop()[3:]) if rest[-1].startswith("ct=") else 0
        return AcceptRecord(ballot(rest[0]), ct, ((int(rest[1]), parse_value(rest[2:])),))
    if kind == "round":
        return RoundRecord(int(rest[0]))
    raise ScenarioError(f"record promise|accept|round, not {kind!r}")
