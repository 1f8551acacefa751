"""What a newcomer runs into on a real cluster: `up --detach` with an actor that cannot start,
values too large for the command line, bytes that are not UTF-8, `kill leader`, and many
clients in one process."""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from runtime.client import Client, InvalidCommand
from runtime.harness.local import LocalCluster


@contextmanager
def occupied(*ports: int) -> Iterator[None]:
    """Listen on these ports, so the actors configured on them cannot bind."""
    sockets = []
    try:
        for port in ports:
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            s.listen()
            sockets.append(s)
        yield
    finally:
        for s in sockets:
            s.close()


def paxos(c: LocalCluster, *args: str | bytes, stdin: bytes | None = None,
          timeout_s: float = 60.0) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args, "--config", str(c.config_path)],
                          input=stdin, capture_output=True, timeout=timeout_s, cwd=c.root)


def test_up_detach_serves_degraded_when_one_acceptor_cannot_start(cluster: LocalCluster) -> None:
    c = cluster
    with occupied(c.ports["a3"]):
        up = c.up()
        assert up.returncode == 0, up.stderr
        assert "cluster up" in up.stdout
        assert "serves, degraded" in up.stderr and "a3 (failed" in up.stderr
        assert "bad configuration" in up.stderr or "cannot bind" in up.stderr
        assert c.paxos("put", "k", "v").returncode == 0
        assert c.actor("a3")["state"] == "failed"


def test_up_detach_fails_at_once_when_the_cluster_cannot_serve(cluster: LocalCluster) -> None:
    c = cluster
    with occupied(c.ports["a2"], c.ports["a3"]):
        started = time.monotonic()
        up = c.up(wait_s=30)
        assert up.returncode == 1
        assert "cannot serve: 1 of 3 acceptors left, and a majority is 2" in up.stderr
        assert time.monotonic() - started < 20


def test_values_from_stdin_and_files_and_bytes_that_are_not_utf8(running: LocalCluster, tmp_path) -> None:
    c = running
    big = ("0123456789abcdef" * 12_800).encode()  # 200 KiB: more than one argument can hold
    assert paxos(c, "put", "big", "-", stdin=big).returncode == 0
    got = paxos(c, "get", "big")
    assert got.returncode == 0 and got.stdout == big + b"\n"
    path = tmp_path / "value.txt"
    path.write_bytes("línea\n".encode())
    assert paxos(c, "append", "log", "--file", str(path)).returncode == 0
    assert paxos(c, "append", "log", "-", stdin=b"more").stdout == "línea\nmore\n".encode()
    assert paxos(c, "cas", "log", "-", "--file", str(path), stdin="línea\nmore".encode()).stdout == b"true\n"
    # `paxos put bin $'\xff'`: refused at once, before anything is sent.
    started = time.monotonic()
    bad = paxos(c, "put", "bin", b"\xff")
    assert bad.returncode == 1 and time.monotonic() - started < 5
    assert b"not valid UTF-8 text: byte 0xff" in bad.stderr and b"Traceback" not in bad.stderr
    missing = paxos(c, "get", "bin")
    assert (missing.returncode, missing.stderr.strip()) == (4, b"(not found)")


def test_a_value_that_is_not_utf8_fails_alone_and_at_once(running: LocalCluster) -> None:
    async def batch() -> list[object]:
        async with Client(running.config_path, timeout_s=10) as kv:
            # One event-loop turn: these would travel in one Submit.
            return await asyncio.gather(kv.put("a", "1"), kv.put("b", "\ud800"), kv.append("a", "2"),
                                        return_exceptions=True)

    started = time.monotonic()
    ok, bad, appended = asyncio.run(batch())
    assert time.monotonic() - started < 5
    assert ok is None and appended == "12"
    assert isinstance(bad, InvalidCommand) and "lone surrogate U+D800" in str(bad)


def test_kill_leader_kills_the_proposer_that_leads(running: LocalCluster) -> None:
    c = running
    leader = c.leader()
    pid = c.actor(leader)["pid"]
    killed = c.paxos("kill", "leader")
    assert killed.returncode == 0 and killed.stdout.startswith(f"kill {leader}: ok")
    c.wait_for("a leader again, the killed one restarted",
               lambda: c.leader() and (a := c.actor(leader))["state"] == "running" and a["pid"] != pid)
    assert c.paxos("put", "after", "kill").returncode == 0


def test_down_stops_everything_once(running: LocalCluster) -> None:
    c = running
    assert c.paxos("down").returncode == 0
    events = [e["event"] for e in c.log_events("supervisor")]
    assert events.count("stopping_all") == 1
    assert events.count("child_kill_after_grace") == 0


MANY_CLIENTS = textwrap.dedent("""
    import asyncio, resource, sys
    from runtime.client import Client, ClusterUnavailable

    n, soft, hard = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    async def main():
        clients = [Client(sys.argv[1], timeout_s=20) for _ in range(n)]
        try:
            await asyncio.gather(*(kv.connect() for kv in clients))
        except ClusterUnavailable as exc:
            print("unavailable:", exc)
            return
        try:
            await asyncio.gather(*(kv.put(f"k{i}", str(i)) for i, kv in enumerate(clients)))
            got = await asyncio.gather(*(kv.get(f"k{i}") for i, kv in enumerate(clients)))
            assert got == [str(i) for i in range(n)], got
            print("ok", n, "soft", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        finally:
            await asyncio.gather(*(kv.close() for kv in clients))

    asyncio.run(main())
""")


def test_many_clients_in_one_process(running: LocalCluster) -> None:
    """300 clients of 4 sockets each: more than libzmq's default 1023 sockets per context and,
    at about 2 descriptors per socket, more than a soft limit of 1024 files."""
    c = running
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4096:
        pytest.skip("needs a hard RLIMIT_NOFILE of at least 4096")

    def run(n: int, soft: int, hard: int) -> str:
        proc = subprocess.run([sys.executable, "-c", MANY_CLIENTS, str(c.config_path), str(n), str(soft), str(hard)],
                              capture_output=True, text=True, timeout=120, cwd=c.root)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    out = run(300, 1024, 4096)
    assert out.startswith("ok 300 soft 4096"), out
    # A hard limit that does not fit: ClusterUnavailable with the reason, not a raw ZMQError
    # (whichever file the client opens first fails: a socket, or with CurveZMQ a key file).
    out = run(300, 512, 512)
    assert out.startswith("unavailable: ") and "Too many open files" in out, out
    if "cannot open the client's sockets" in out:
        assert "RLIMIT_NOFILE soft 512 hard 512" in out, out
