"""The page's server as a process, without a browser (issue 15): `paxos web` in the foreground
prints the URL with the token, serves the page of a cluster that is not running (every actor
down) and stops on Ctrl-C with exit 0; a port that is taken is exit 1 with the reason, no
traceback, and nothing written; the server `paxos up --web` starts keeps 50 tabs at once (half
closed mid-stream, bad requests among them) at about five views a second each, and ends on its
own within a second or two when its supervisor is killed with SIGKILL (no `down` to stop it); the one of
`paxos up --web` in the foreground stops with it on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from runtime.control import pid_alive
from runtime.harness.local import LocalCluster, free_ports
from runtime.web.server import UPDATE_INTERVAL_S


def get_json(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def test_paxos_web_in_the_foreground(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    c = LocalCluster(tmp_path / "cluster", extra=f"[web]\nport = {port}\n")
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "web", "--config", str(c.config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=c.root)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first line is the URL (it blocks until the server listens)
        m = re.search(rf"(http://127\.0\.0\.1:{port}/\?token=([0-9a-f]{{64}}))$", line.strip())
        assert m, line
        token = m[2]
        assert (c.data_dir / "web.token").read_text().strip() == token
        state = get_json(f"http://127.0.0.1:{port}/api/state", token)
        assert not state["running"] and "not running" in state["error"]
        assert {card["state"] for row in state["rows"].values() for card in row} == {"down"}

        # A second one on the same data dir is refused, and says where the first one serves.
        again = subprocess.run([sys.executable, "-m", "runtime.cli", "web", "--config", str(c.config_path)],
                               capture_output=True, text=True, timeout=30, cwd=c.root)
        assert again.returncode == 1 and "already serves the page" in again.stderr and token in again.stderr
        assert "Traceback" not in again.stderr

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert not (c.data_dir / "run" / "web.json").exists()  # it cleans up after itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_that_is_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        c = LocalCluster(tmp_path / "cluster", extra=f"[web]\nport = {port}\n")
        proc = subprocess.run([sys.executable, "-m", "runtime.cli", "web", "--config", str(c.config_path)],
                              capture_output=True, text=True, timeout=30, cwd=c.root)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot serve the page on 127.0.0.1:{port}" in proc.stderr and "[web]" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (c.data_dir / "run" / "web.json").exists()
    c.config_path.write_text(c.config_path.read_text().replace(f"port = {port}", 'port = "x"'))
    cfg = subprocess.run([sys.executable, "-m", "runtime.cli", "web", "--config", str(c.config_path)],
                         capture_output=True, text=True, timeout=30, cwd=c.root)
    assert cfg.returncode == 1 and "config error: web.port: must be int" in cfg.stderr
    assert "Traceback" not in cfg.stderr


TABS = 50
TAB_WATCH_S = 3.0


async def fifty_tabs(base: str, token: str) -> dict[str, Any]:
    """Open TABS event streams at once, read each one's views for TAB_WATCH_S while half of them
    are dropped mid-stream (the connection aborted, as a closed tab does), and meanwhile send the
    server malformed, oversized and unauthenticated requests and a put and a get through it."""
    auth = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=30)
    views: list[int] = [0] * TABS
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def tab(i: int) -> None:
            async with session.get(f"{base}/events", headers=auth) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
                started = time.monotonic()
                async for line in r.content:
                    if line.startswith(b"data: "):
                        json.loads(line[6:])  # every update is a whole view
                        views[i] += 1
                    if i % 2 and views[i] >= 2:
                        r.connection.transport.abort()  # type: ignore[union-attr]  # a tab closed mid-stream
                        return
                    if time.monotonic() - started > TAB_WATCH_S:
                        return

        tabs = [asyncio.create_task(tab(i)) for i in range(TABS)]
        await asyncio.sleep(0.5)
        abuse = {}
        async with session.post(f"{base}/api/kv", headers=auth, data=b"{not json") as r:
            abuse["bad json"] = r.status
        async with session.post(f"{base}/api/kv", headers=auth, data=b"x" * (1 << 20)) as r:
            abuse["oversized"] = r.status
        async with session.get(f"{base}/api/state") as r:
            abuse["no token"] = r.status
        async with session.get(f"{base}/api/state", headers={**auth, "Origin": "http://evil.example"}) as r:
            abuse["other origin"] = r.status
        async with session.post(f"{base}/api/kv", headers=auth, json={"op": "put", "key": "tabs", "value": "50"}) as r:
            put = await r.json()
        async with session.post(f"{base}/api/kv", headers=auth, json={"op": "get", "key": "tabs"}) as r:
            got = await r.json()
        await asyncio.gather(*tabs)
        async with session.get(f"{base}/api/state", headers=auth) as r:
            state = await r.json()
    return {"views": views, "abuse": abuse, "put": put, "got": got, "state": state}


def test_fifty_tabs_then_the_web_server_ends_with_a_killed_supervisor(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    c = LocalCluster(tmp_path / "cluster", extra=f"[web]\nport = {port}\n")
    try:
        proc = c.paxos("up", "--detach", "--web", "--wait-s", "30", timeout_s=60)
        c._remember_pids()
        assert proc.returncode == 0, proc.stderr
        assert f"page: http://127.0.0.1:{port}/?token=" in proc.stdout
        web_pid = json.loads((c.data_dir / "run" / "web.json").read_text())["pid"]
        c.seen_pids.add(web_pid)
        token = (c.data_dir / "web.token").read_text().strip()

        # 50 tabs at once, half of them closed mid-stream, with bad requests among them: every
        # stream gets whole views, at most one per UPDATE_INTERVAL_S (one poll of the cluster for
        # all tabs, never one update per command), every bad request its 4xx, and the cluster
        # and the server go on serving.
        out = asyncio.run(fifty_tabs(f"http://127.0.0.1:{port}", token))
        kept = [n for i, n in enumerate(out["views"]) if i % 2 == 0]
        assert min(out["views"]) >= 1, out["views"]
        assert max(kept) <= TAB_WATCH_S / UPDATE_INTERVAL_S + 3, kept  # plus the first and a button's
        assert out["abuse"] == {"bad json": 400, "oversized": 413, "no token": 401, "other origin": 403}, out["abuse"]
        assert out["put"].get("ok") and out["got"].get("value") == "50", (out["put"], out["got"])
        assert out["state"]["running"] and out["state"]["leader"], out["state"]
        assert pid_alive(web_pid)
        log = (c.data_dir / "logs" / "web.jsonl").read_text()
        assert "oversized" in log or "413" in log or "over 65536" in log, "a refusal without a reason in the log"

        supervisor = c.supervisor_pid()
        assert supervisor is not None
        os.kill(supervisor, signal.SIGKILL)
        deadline = time.monotonic() + 3.0
        while pid_alive(web_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(web_pid), "the web server outlived its supervisor by 3 s"
    finally:
        c.down()


def test_paxos_up_web_in_the_foreground_stops_its_web_server_on_ctrl_c(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    c = LocalCluster(tmp_path / "cluster", extra=f"[web]\nport = {port}\n")
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "up", "--web", "--config", str(c.config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=c.root)
    web_pid = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:  # the merged logs come first; the URL among them
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(rf"page: (http://127\.0\.0\.1:{port}/\?token=[0-9a-f]{{64}})", line)
            url = m[1] if m else None
        assert url, "no page URL within 30 s"
        c._remember_pids()  # the actors too, for `down`'s kill by pid should Ctrl-C fail
        web_pid = json.loads((c.data_dir / "run" / "web.json").read_text())["pid"]
        c.seen_pids.add(web_pid)
        token = url.rsplit("=", 1)[1]
        assert get_json(f"http://127.0.0.1:{port}/api/state", token)["running"]
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the supervisor stops everything it started
        proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert not pid_alive(web_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        c.down()
