"""Cluster configuration: `cluster.toml`, parsed with tomllib and checked strictly.

Every error names the key it is about (`limits.value_bytes_max: must be ...`) and stops
startup; unknown keys are errors too, so a typo never silently falls back to a default.
Paths in the file are relative to the file itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.bounds import WireBounds
from actors.fast import MODES, RECOVERIES, FastRules, need_acceptors
from actors.lease import ReadParams
from actors.membership import History, Membership
from actors.proposer import ProposerParams

ROLES = ("proposer", "acceptor", "learner")
_ENDPOINT = re.compile(r"^tcp://(?P<host>[A-Za-z0-9.\-]+):(?P<port>[0-9]{1,5})$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class ConfigError(ValueError):
    """A config problem; the message names the key."""


@dataclass(frozen=True)
class ClusterSection:
    data_dir: str = "data"
    fsync: bool = True
    log_level: str = "info"
    tick_ms: int = 10


_P = ProposerParams()  # the protocol defaults live there, once


@dataclass(frozen=True)
class ProtocolSection:
    heartbeat_ticks: int = _P.heartbeat_ticks
    election_ticks: int = _P.election_ticks
    backoff_max: int = _P.backoff_max
    retry_ticks: int = _P.retry_ticks
    window_slots: int = _P.window_slots
    batch_bytes_max: int = _P.batch_bytes_max
    batch_count_max: int = _P.batch_count_max
    queue_batches_max: int = _P.queue_batches_max
    # Membership change (actors/membership.py): a membership chosen at slot c decides the slots
    # from c + alpha_slots on; 0 means window_slots. The same on every node.
    alpha_slots: int = _P.alpha_slots
    fetch_ticks: int = 10
    fetch_slots_max: int = 4096
    # Fast Paxos (actors/fast.py): "classic" or "fast"; a collision is recovered by the leader
    # ("coordinated") or by the acceptors themselves ("uncoordinated").
    mode: str = "classic"
    fast_recovery: str = "coordinated"
    fallback_collisions: int = _P.fallback_collisions
    fallback_window_ticks: int = _P.fallback_window_ticks
    classic_hold_ticks: int = _P.classic_hold_ticks


@dataclass(frozen=True)
class LimitsSection:
    message_bytes_max: int = 8 * 1024 * 1024
    key_bytes_max: int = 1024
    value_bytes_max: int = 256 * 1024
    sessions_max: int = 100_000
    # Bounds on what peers say (actors/bounds.py): a ballot round at most this far above the
    # highest the receiver knows; a slot or watermark at most this far above what it can vouch for.
    ballot_round_step_max: int = _P.ballot_round_step_max
    slots_ahead_max: int = _P.slots_ahead_max


@dataclass(frozen=True)
class SnapshotSection:
    """Learners snapshot the state machine after `every_slots` decided slots or `every_bytes` of
    decided values, whichever comes first; acceptors keep the snapshot and compact their files to
    it. Transfers move `chunk_bytes` per message."""

    enabled: bool = True
    every_slots: int = 100_000
    every_bytes: int = 16 * 1024 * 1024
    chunk_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class SupervisorSection:
    restart: str = "permanent"
    restart_max: int = 5
    restart_window_s: float = 30.0
    restart_delay_s: float = 0.05
    stop_grace_s: float = 5.0


@dataclass(frozen=True)
class ClientSection:
    timeout_s: float = 10.0
    retry_s: float = 0.3
    outstanding_max: int = 100_000


@dataclass(frozen=True)
class SecuritySection:
    """`curve = true` (the default): every connection is CurveZMQ-encrypted and must prove one of
    the keys under `<data_dir>/keys` (runtime/keys.py). `false` is an explicit insecure mode for
    experiments: anyone who reaches a port may speak as any actor; every start warns about it."""

    curve: bool = True


_R = ReadParams()


@dataclass(frozen=True)
class ReadsSection:
    """Reads without a log write (actors/lease.py). `lease`: a leader answers linearizable reads
    at once while a majority's lease runs (false: each read batch waits for a heartbeat round
    instead: a read index without a lease, which no clock can break). `lease_ticks`: how long an
    acceptor's grant lasts in its own ticks (below election_ticks, so a dead leader's lease lapses
    before a follower's election fires). `clock_drift_max`: the bound on any actor's clock-rate
    error (0.05: 5%) that the leader's shorter lease allows for; in [0, 0.5)."""

    lease: bool = _R.lease
    lease_ticks: int = _R.lease_ticks
    clock_drift_max: float = _R.clock_drift_max


@dataclass(frozen=True)
class TraceSection:
    """Causal tracing (runtime/trace.py): `enabled` writes `<data_dir>/logs/<actor>.trace`;
    `frames_per_s` is each actor's sampling budget (sampled frames a second; every frame is
    sampled while under it); `file_bytes_max` rotates a trace file to `<actor>.trace.1` past this
    size (one older file kept: at most twice this on disk per actor); `clients`: the client
    library traces too, to `<data_dir>/logs/client-<pid>.trace` (off by default: every `paxos put`
    would leave a file; `paxos bench --breakdown` turns it on)."""

    enabled: bool = True
    frames_per_s: int = 200
    file_bytes_max: int = 64 * 1024 * 1024
    clients: bool = False


@dataclass(frozen=True)
class MetricsSection:
    """The Prometheus endpoint the supervisor serves for the whole cluster (runtime/metrics.py):
    off unless the config turns it on (cluster.toml does). `host` is loopback by default; any
    other address is an explicit choice that the supervisor warns about at every start, since
    the endpoint has no authentication. `port` 0 takes a free port (the URL is in `paxos up`'s
    output and `paxos status --json`)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


WEB_PORT_DEFAULT = 7180  # beside the actors' 71xx ports of cluster.toml, clear of them and of metrics' 9464


@dataclass(frozen=True)
class WebSection:
    """The browser page (`paxos web`, `paxos up --web`; runtime/web/). `bind` is loopback by
    default; any other address is an explicit choice that the web server's log warns about at
    every start (the page can kill processes: only the token in `<data_dir>/web.token` guards it
    then). `port` 0 takes a free port (the URL is printed, and written to run/web.json)."""

    bind: str = "127.0.0.1"
    port: int = WEB_PORT_DEFAULT

    @property
    def loopback(self) -> bool:
        return is_loopback(self.bind)


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP address (what the metrics, web and endpoint checks allow)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TestingSection:
    """Off in real use. `enabled` makes the supervisor run every actor as the harness's test-mode
    process (runtime/harness/actor.py: link faults from run/faults.json, the durable wal length
    published in run/<name>.synced for power-loss tests, planted bugs, injected crashes). The
    product names that module here and never imports it."""

    enabled: bool = False

    @property
    def actor_module(self) -> str:
        return "runtime.harness.actor" if self.enabled else "runtime.actor"


@dataclass(frozen=True)
class ActorSpec:
    name: str
    role: str
    endpoint: str
    id: int = 0  # proposers only: the node part of their ballots

    @property
    def host(self) -> str:
        return self.endpoint.split("//", 1)[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])


@dataclass(frozen=True)
class ClusterConfig:
    path: Path
    cluster: ClusterSection
    protocol: ProtocolSection
    limits: LimitsSection
    snapshot: SnapshotSection
    supervisor: SupervisorSection
    client: ClientSection
    testing: TestingSection
    proposers: tuple[ActorSpec, ...]
    acceptors: tuple[ActorSpec, ...]
    learners: tuple[ActorSpec, ...]
    actors: dict[str, ActorSpec] = field(repr=False)
    security: SecuritySection = SecuritySection()
    reads: ReadsSection = ReadsSection()
    trace: TraceSection = TraceSection()
    metrics: MetricsSection = MetricsSection()
    web: WebSection = WebSection()
    # The membership changes the log chose, as far as this process knows them (a History blob,
    # runtime/members.py); `actors` then names every member of every membership, and
    # `proposers`/`acceptors`/`learners` stay the bootstrap ones (the protocol starts from them).
    changes: bytes = b""

    @property
    def data_dir(self) -> Path:
        return (self.path.parent / self.cluster.data_dir).resolve()

    def actor(self, name: str) -> ActorSpec:
        try:
            return self.actors[name]
        except KeyError:
            raise ConfigError(f"no actor named {name!r} in {self.path} "
                              f"(known: {', '.join(self.actors)})") from None

    @property
    def proposer_ids(self) -> dict[str, int]:
        return {p.name: p.id for p in self.proposers}

    @property
    def wire_bounds(self) -> WireBounds:
        """The relative bounds on what peers say (actors/bounds.py), from `[limits]`."""
        return WireBounds(self.limits.ballot_round_step_max, self.limits.slots_ahead_max)

    def proposer_params(self) -> ProposerParams:
        p = self.protocol
        return ProposerParams(
            heartbeat_ticks=p.heartbeat_ticks,
            election_ticks=p.election_ticks,
            backoff_max=p.backoff_max,
            retry_ticks=p.retry_ticks,
            window_slots=p.window_slots,
            batch_bytes_max=p.batch_bytes_max,
            batch_count_max=p.batch_count_max,
            message_bytes_max=self.reply_bytes_max,
            queue_batches_max=p.queue_batches_max,
            ballot_round_step_max=self.limits.ballot_round_step_max,
            slots_ahead_max=self.limits.slots_ahead_max,
            alpha_slots=p.alpha_slots,
            fast=self.fast_rules(),
            fallback_collisions=p.fallback_collisions,
            fallback_window_ticks=p.fallback_window_ticks,
            classic_hold_ticks=p.classic_hold_ticks,
        )

    def fast_rules(self) -> FastRules:
        return FastRules(self.protocol.mode, self.protocol.fast_recovery)

    def read_params(self) -> ReadParams:
        r = self.reads
        return ReadParams(lease=r.lease, lease_ticks=r.lease_ticks, clock_drift_max=r.clock_drift_max)

    @property
    def acceptor_lease_ticks(self) -> int:
        """What an acceptor grants (0: leases off, it grants and refuses nothing)."""
        return self.reads.lease_ticks if self.reads.lease else 0

    def membership(self) -> Membership:
        """The bootstrap membership: cluster.toml's (issue 11: only until the log says otherwise)."""
        return Membership(tuple((p.name, p.id, p.endpoint) for p in self.proposers),
                          tuple((a.name, a.endpoint) for a in self.acceptors),
                          tuple((n.name, n.endpoint) for n in self.learners))

    def history(self) -> History:
        """A fresh membership history from the bootstrap membership and alpha."""
        return History(self.membership(), self.protocol.alpha_slots or self.protocol.window_slots)

    def known_history(self) -> History:
        """The bootstrap membership and every change this process knows the log chose."""
        h = self.history()
        if self.changes:
            h.merge(self.changes)
        return h

    def current(self) -> Membership:
        """The newest membership known: whom clients talk to, and what the supervisor runs."""
        return self.known_history().latest()

    def with_changes(self, changes: bytes) -> ClusterConfig:
        """This config with the log's changes: every member of every membership becomes a known
        actor (a removed one too: its files and old slots remain), in bootstrap order first."""
        if not changes:
            return self
        h = self.history()
        h.merge(changes)
        actors = dict(self.actors)
        for m in h.all_members():
            for name, node_id, endpoint in m.proposers:
                actors.setdefault(name, ActorSpec(name, "proposer", endpoint, node_id))
            for role, group in (("acceptor", m.acceptors), ("learner", m.learners)):
                for name, endpoint in group:
                    actors.setdefault(name, ActorSpec(name, role, endpoint))
        return dataclasses.replace(self, actors=actors, changes=h.encode())

    @property
    def reply_bytes_max(self) -> int:
        """Budget for the payload of one protocol message, leaving room for framing."""
        return self.limits.message_bytes_max - 64 * 1024

    def wal_path(self, name: str) -> Path:
        return self.data_dir / "wal" / f"{name}.wal"

    def snapshot_dir(self, name: str) -> Path:
        return self.data_dir / "snap" / name

    def marker_path(self, name: str) -> Path:
        """Exists once an acceptor or proposer has run: it may have voted or proposed, so if its
        wal goes missing it comes back rebuilding, never as a fresh actor."""
        return self.data_dir / "state" / f"{name}.voted"

    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.jsonl"

    def trace_path(self, name: str) -> Path:
        """An actor's trace file (runtime/trace.py), next to its log."""
        return self.data_dir / "logs" / f"{name}.trace"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"


def _check_fields(section: str, raw: Any, cls: type) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{section}: must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    value: Any
    for key, value in raw.items():
        f = fields.get(key)
        if f is None:
            raise ConfigError(f"{section}.{key}: unknown key (known: {', '.join(fields)})")
        want: Any = f.type if isinstance(f.type, type) else {"int": int, "float": float,
                                                              "bool": bool, "str": str}[f.type]
        if want is float and type(value) is int:
            value = float(value)
        if type(value) is not want:
            raise ConfigError(f"{section}.{key}: must be {want.__name__}, got {value!r}")
        if want in (int, float) and value <= 0 and key not in ("restart_max", "clock_drift_max") \
                and (section, key) not in (("metrics", "port"), ("web", "port")):
            raise ConfigError(f"{section}.{key}: must be positive, got {value!r}")
        if want is int and key == "restart_max" and value < 0:
            raise ConfigError(f"{section}.{key}: must be 0 or more, got {value!r}")
        values[key] = value
    return cls(**values)


def _actors(raw: dict[str, Any], table: str, role: str) -> tuple[ActorSpec, ...]:
    items = raw.get(table, [])
    if not isinstance(items, list):
        raise ConfigError(f"{table}: must be an array of tables ([[{table}]])")
    specs = []
    for i, item in enumerate(items):
        where = f"{table}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: must be a table")
        allowed = {"name", "endpoint"} | ({"id"} if role == "proposer" else set())
        for key in item:
            if key not in allowed:
                raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(sorted(allowed))})")
        name = item.get("name")
        if type(name) is not str or not _NAME.match(name):
            raise ConfigError(f"{where}.name: must match {_NAME.pattern}, got {name!r}")
        endpoint = item.get("endpoint")
        if type(endpoint) is not str:
            raise ConfigError(f"{where}.endpoint: missing or not a string")
        m = _ENDPOINT.match(endpoint)
        if not m or not 1 <= int(m["port"]) <= 65535:
            raise ConfigError(f"{where}.endpoint: must look like tcp://127.0.0.1:7101, got {endpoint!r}")
        try:
            ipaddress.ip_address(m["host"])
        except ValueError:
            if m["host"] != "localhost":
                raise ConfigError(f"{where}.endpoint: host must be an IP address or localhost, "
                                  f"got {m['host']!r}") from None
        node_id: Any = 0
        if role == "proposer":
            node_id = item.get("id")
            if type(node_id) is not int or not 1 <= node_id <= 1_000_000:
                raise ConfigError(f"{where}.id: must be an integer from 1 to 1000000, got {node_id!r}")
        specs.append(ActorSpec(name=name, role=role, endpoint=endpoint, id=node_id))
    return tuple(specs)


SECTIONS = {
    "cluster": ClusterSection,
    "protocol": ProtocolSection,
    "limits": LimitsSection,
    "snapshot": SnapshotSection,
    "supervisor": SupervisorSection,
    "client": ClientSection,
    "testing": TestingSection,
    "security": SecuritySection,
    "reads": ReadsSection,
    "trace": TraceSection,
    "metrics": MetricsSection,
    "web": WebSection,
}
ACTOR_TABLES = {"proposers": "proposer", "acceptors": "acceptor", "learners": "learner"}


def parse(raw: dict[str, Any], path: Path) -> ClusterConfig:
    for key in raw:
        if key not in SECTIONS and key not in ACTOR_TABLES:
            raise ConfigError(f"{key}: unknown key (known: {', '.join([*SECTIONS, *ACTOR_TABLES])})")
    sections = {name: _check_fields(name, raw.get(name, {}), cls) for name, cls in SECTIONS.items()}
    groups = {table: _actors(raw, table, role) for table, role in ACTOR_TABLES.items()}
    proposers, acceptors, learners = groups["proposers"], groups["acceptors"], groups["learners"]
    if len(acceptors) < 3:
        raise ConfigError(f"acceptors: at least 3 are needed to survive a failure, got {len(acceptors)}")
    if not proposers:
        raise ConfigError("proposers: at least 1 is needed")
    if not learners:
        raise ConfigError("learners: at least 1 is needed")
    actors: dict[str, ActorSpec] = {}
    endpoints: dict[str, str] = {}
    ids: dict[int, str] = {}
    for spec in (*proposers, *acceptors, *learners):
        if spec.name in actors or spec.name == "supervisor":
            raise ConfigError(f"{spec.role}s: duplicate actor name {spec.name!r}")
        actors[spec.name] = spec
        if spec.endpoint in endpoints:
            raise ConfigError(f"{spec.role}s: {spec.name} and {endpoints[spec.endpoint]} share "
                              f"endpoint {spec.endpoint}")
        endpoints[spec.endpoint] = spec.name
        if spec.role == "proposer":
            if spec.id in ids:
                raise ConfigError(f"proposers: {spec.name} and {ids[spec.id]} share id {spec.id}")
            ids[spec.id] = spec.name
    cl: ClusterSection = sections["cluster"]
    if cl.log_level not in ("debug", "info", "warning"):
        raise ConfigError(f"cluster.log_level: must be debug, info or warning, got {cl.log_level!r}")
    sup: SupervisorSection = sections["supervisor"]
    if sup.restart not in ("permanent", "transient", "temporary"):
        raise ConfigError(f"supervisor.restart: must be permanent, transient or temporary, "
                          f"got {sup.restart!r}")
    lim: LimitsSection = sections["limits"]
    proto: ProtocolSection = sections["protocol"]
    one_command = lim.key_bytes_max + lim.value_bytes_max + 256
    if proto.batch_bytes_max < one_command:
        raise ConfigError(f"protocol.batch_bytes_max: must hold one command of the largest key and "
                          f"value ({one_command} bytes), got {proto.batch_bytes_max}")
    if lim.message_bytes_max < proto.batch_bytes_max + 128 * 1024:
        raise ConfigError(f"limits.message_bytes_max: must exceed protocol.batch_bytes_max by at "
                          f"least 128 KiB, got {lim.message_bytes_max}")
    if lim.slots_ahead_max < proto.window_slots:
        raise ConfigError(f"limits.slots_ahead_max: must be at least protocol.window_slots ({proto.window_slots}), "
                          f"got {lim.slots_ahead_max}")
    if proto.alpha_slots and proto.alpha_slots < proto.window_slots:
        raise ConfigError(f"protocol.alpha_slots: must be 0 (window_slots) or at least protocol.window_slots "
                          f"({proto.window_slots}), got {proto.alpha_slots}")
    if proto.mode not in MODES:
        raise ConfigError(f"protocol.mode: must be {' or '.join(MODES)}, got {proto.mode!r}")
    if proto.fast_recovery not in RECOVERIES:
        raise ConfigError(f"protocol.fast_recovery: must be {' or '.join(RECOVERIES)}, got {proto.fast_recovery!r}")
    why = need_acceptors(proto.mode, len(acceptors))
    if why:
        raise ConfigError(f"protocol.mode: {why}")
    if proto.fallback_collisions < 1 or proto.fallback_window_ticks < 1 or proto.classic_hold_ticks < 1:
        raise ConfigError("protocol.fallback_collisions, fallback_window_ticks and classic_hold_ticks: "
                          "must be at least 1")
    if proto.heartbeat_ticks * 2 > proto.election_ticks:
        raise ConfigError("protocol.election_ticks: must be at least twice heartbeat_ticks")
    reads: ReadsSection = sections["reads"]
    if not 0.0 <= reads.clock_drift_max < 0.5:
        raise ConfigError(f"reads.clock_drift_max: must be in [0, 0.5), got {reads.clock_drift_max!r}")
    if reads.lease and reads.lease_ticks >= proto.election_ticks:
        raise ConfigError(f"reads.lease_ticks: must be below protocol.election_ticks ({proto.election_ticks}), so a "
                          f"dead leader's lease lapses before a follower's election fires, got {reads.lease_ticks}")
    if reads.lease and reads.lease_ticks < 2:
        raise ConfigError(f"reads.lease_ticks: must be at least 2, got {reads.lease_ticks}")
    trace: TraceSection = sections["trace"]
    if trace.frames_per_s > 1_000_000:
        raise ConfigError(f"trace.frames_per_s: must be at most 1000000, got {trace.frames_per_s}")
    if trace.file_bytes_max < 1024 * 1024:
        raise ConfigError(f"trace.file_bytes_max: must be at least 1 MiB (1048576), got {trace.file_bytes_max}")
    _check_metrics(sections["metrics"])
    _check_web(sections["web"], sections["metrics"], actors)
    snap: SnapshotSection = sections["snapshot"]
    if snap.chunk_bytes > lim.message_bytes_max - 64 * 1024:
        raise ConfigError(f"snapshot.chunk_bytes: must leave 64 KiB of limits.message_bytes_max for framing, "
                          f"got {snap.chunk_bytes}")
    return ClusterConfig(
        path=path, cluster=cl, protocol=proto, limits=lim, snapshot=snap, supervisor=sup,
        client=sections["client"], testing=sections["testing"], proposers=proposers, acceptors=acceptors,
        learners=learners,
        actors=actors, security=sections["security"], reads=reads, trace=trace, metrics=sections["metrics"],
        web=sections["web"],
    )


def _check_listen(section: str, host_key: str, host: str, port: int) -> None:
    """A port to listen on (0: any free one) and an address to bind it to."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"{section}.port: must be from 0 (any free port) to 65535, got {port}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"{section}.{host_key}: must be an IP address or localhost, got {host!r}") from None


def _check_metrics(m: MetricsSection) -> None:
    _check_listen("metrics", "host", m.host, m.port)


def _check_web(w: WebSection, m: MetricsSection, actors: dict[str, ActorSpec]) -> None:
    _check_listen("web", "bind", w.bind, w.port)
    if w.port == 0:
        return
    # Said here rather than as "address in use" at the first `paxos up --web`.
    if m.enabled and m.port == w.port:
        raise ConfigError(f"web.port: {w.port} is metrics.port too; give the page a port of its own")
    for spec in actors.values():
        same_host = spec.host == w.bind or w.bind in ("0.0.0.0", "::") or (is_loopback(spec.host)
                                                                           and is_loopback(w.bind))
        if spec.port == w.port and same_host:
            raise ConfigError(f"web.port: {w.port} is the port of actor {spec.name} ({spec.endpoint}); "
                              f"give the page a port of its own")


def load(path: str | Path) -> ClusterConfig:
    path = Path(path).resolve()
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(raw, path)


def render(
    ports: dict[str, int],
    *,
    proposers: int = 2,
    acceptors: int = 3,
    learners: int = 2,
    host: str = "127.0.0.1",
    data_dir: str = "data",
    extra: str = "",
) -> str:
    """A config text for a local cluster; `ports` maps actor names to ports (tests and
    benchmarks pick free ones)."""
    lines = ["[cluster]", f'data_dir = "{data_dir}"', ""]
    if extra:
        lines += [extra.strip(), ""]
    for i in range(1, proposers + 1):
        lines += ["[[proposers]]", f'name = "p{i}"', f"id = {i}",
                  f'endpoint = "tcp://{host}:{ports[f"p{i}"]}"', ""]
    for i in range(1, acceptors + 1):
        lines += ["[[acceptors]]", f'name = "a{i}"', f'endpoint = "tcp://{host}:{ports[f"a{i}"]}"', ""]
    for i in range(1, learners + 1):
        lines += ["[[learners]]", f'name = "l{i}"', f'endpoint = "tcp://{host}:{ports[f"l{i}"]}"', ""]
    return "\n".join(lines)
