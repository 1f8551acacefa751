"""Issue 14 on real processes, one cluster for both halves: the Prometheus endpoint scraped after
a few puts (parsed by prometheus_client's own parser), and `paxos status --watch` in a real
terminal (tmux: capture-pane reads the screen, send-keys types Ctrl-C), where killing an
acceptor moves the fault-tolerance gauge. The tmux server runs on a socket of its own and is
stopped by this test."""

import asyncio
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.ballot import Ballot
from actors.messages import Prepare
from runtime import codec
from runtime.client import Client
from runtime.harness.local import LocalCluster

TMUX = shutil.which("tmux")


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list, name: str, **labels: str) -> float | None:
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return None


class Terminal:
    """A detached tmux session on a private server socket, 160x40."""

    def __init__(self, root: Path) -> None:
        assert TMUX is not None
        self.base = [TMUX, "-L", f"paxos-watch-{id(self)}", "-f", "/dev/null"]
        self.root = root

    def start(self, command: str) -> None:
        # After the command the shell says how it ended and stays a while, so the screen keeps it. The
        # size is the terminal's own: pytest's COLUMNS and LINES (80x24) would override it in rich.
        subprocess.run([*self.base, "new-session", "-d", "-s", "w", "-x", "160", "-y", "40", "-c", str(self.root),
                        f"env -u COLUMNS -u LINES {command}; echo watch-exited=$?; sleep 30"], check=True, timeout=10)

    def screen(self) -> str:
        proc = subprocess.run([*self.base, "capture-pane", "-p", "-t", "w"], capture_output=True, text=True,
                              timeout=10)
        return proc.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "w", *keys], check=True, timeout=10)

    def wait(self, *texts: str, timeout_s: float = 10.0) -> str:
        """The screen once it shows every one of `texts`; polled, bounded in time."""
        deadline = time.monotonic() + timeout_s
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"after {timeout_s:g}s the screen does not show {texts}:\n{screen}")

    def stop(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal | None]:
    """A terminal, or None without tmux (the scrape is checked all the same, then the test skips)."""
    if TMUX is None:
        yield None
        return
    t = Terminal(tmp_path)
    try:
        yield t
    finally:
        t.stop()


def test_metrics_endpoint_and_the_live_view_in_a_terminal(tmp_path: Path, terminal: Terminal | None) -> None:
    c = LocalCluster(tmp_path, extra="[metrics]\nenabled = true\nport = 0\n")
    try:
        up = c.up()
        assert up.returncode == 0, up.stderr
        lines = [ln for ln in up.stdout.splitlines() if ln.startswith("metrics: ")]
        assert lines and lines[0].startswith("metrics: http://127.0.0.1:"), up.stdout
        url = lines[0].split(" ", 1)[1]
        assert c.status()["metrics"] == url

        async def puts() -> None:
            async with Client(c.config_path, timeout_s=10.0) as kv:
                await asyncio.gather(*(kv.put(f"k{i}", "v") for i in range(20)))
                for i in range(5):
                    await kv.put(f"one{i}", "v")
        asyncio.run(puts())
        claim = c.dealer("a1", "p1", key="client")  # the client key speaking as p1: refused
        claim.send(codec.encode_frame("p1", [Prepare(Ballot(10**6, 1), 1)]))
        try:
            m = c.wait_for("a rejection counted", lambda: (lambda s: s if value(
                s["paxos_rejected_messages"], "paxos_rejected_messages_total", actor="a1",
                reason="claim_not_allowed") else None)(scrape(url)), timeout_s=10)
        finally:
            claim.close()
        leader = c.leader()
        assert leader is not None
        for name in ("paxos_actor_up", "paxos_restarts", "paxos_slots_chosen", "paxos_elections", "paxos_leader",
                     "paxos_rejected_messages", "paxos_fsync_seconds", "paxos_batch_size", "paxos_batch_bytes"):
            assert name in m, name
        actors = {s.labels["actor"]: s.labels["role"] for s in m["paxos_actor_up"]}
        assert actors == {"p1": "proposer", "p2": "proposer", "a1": "acceptor", "a2": "acceptor",
                          "a3": "acceptor", "l1": "learner", "l2": "learner"}
        assert all(s.value == 1 for s in m["paxos_actor_up"])
        # 25 client operations in at least 6 slots (the gather's batch, then 5 one by one).
        for learner in ("l1", "l2"):
            assert (value(m["paxos_slots_chosen"], "paxos_slots_chosen_total", actor=learner) or 0) >= 6
        for acceptor in ("a1", "a2", "a3"):
            n = value(m["paxos_fsync_seconds"], "paxos_fsync_seconds_count", actor=acceptor)
            inf = value(m["paxos_fsync_seconds"], "paxos_fsync_seconds_bucket", actor=acceptor, le="+Inf")
            assert n is not None and n >= 6 and inf == n
        assert (value(m["paxos_batch_size"], "paxos_batch_size_count", actor=leader) or 0) >= 6
        assert (value(m["paxos_elections"], "paxos_elections_total", actor=leader) or 0) >= 1
        assert value(m["paxos_leader"], "paxos_leader", actor=leader) == 1

        if terminal is None:
            pytest.skip("tmux is not installed (.ci/run installs it with apt-get): the live view was not checked")
        cli = f"{shlex.quote(sys.executable)} -m runtime.cli status --watch --config {shlex.quote(str(c.config_path))}"
        terminal.start(cli)
        screen = terminal.wait("3 of 3 acceptors up: tolerates 1 more failure", f"{leader} (ballot", timeout_s=20)
        for col in ("name", "role", "state", "pid", "uptime", "restarts", "chosen through", "(lag "):
            assert col in screen, screen
        assert c.paxos("kill", "a3", "--no-restart").returncode == 0
        assert c.paxos("kill", "l2").returncode == 0  # restarted by the supervisor
        terminal.wait("2 of 3 acceptors up: the next acceptor failure stops writes", timeout_s=15)
        c.wait_for("l2's restart counted", lambda: value(scrape(url)["paxos_restarts"], "paxos_restarts_total",
                                                         actor="l2") == 1, timeout_s=15)
        terminal.keys("C-c")
        terminal.wait("watch-exited=0", timeout_s=10)  # Ctrl-C ends it, with exit 0
    finally:
        c.down()
