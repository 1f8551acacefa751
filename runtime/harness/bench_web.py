"""`paxos bench --web`: what the live page (runtime/web/) costs a saturated cluster.

One cluster of the config, started with `paxos up --web`, saturated in alternating rounds with
the page open and closed (which goes first alternates too, so drift falls on both); medians.
"Open" is `--tabs` tabs (default 3) that do what the page's script does: one event stream each
(`/events`), read to the end of every view, and the page's periodic fetches (`PAGE_FETCHES`). The
tabs run in a thread of this process, so what is measured is what serving them costs the
cluster's processes and the web server on this machine, not a browser's rendering. The line:

    bench-web rounds=... tabs=... open_ops_per_s=... closed_ops_per_s=... open_vs_closed=...
          pair_ratio_median=... open_cpu_s_per_1k=... closed_cpu_s_per_1k=... web_cpu_share=...
          views_per_tab_s=... serving_cores_open=... serving_cores_closed=...
          cpu_us_per_op_open=... cpu_us_per_op_closed=... cpu_cost=...

`open_vs_closed` is the medians' ratio (the issue's goal: at least 0.97, under 3% apart);
`pair_ratio_median` each open round against the closed one next to it; `web_cpu_share` the web
server's and the supervisor's CPU over the cluster's while open (the supervisor answers the
server's status polls); `views_per_tab_s` the views each tab received a second (at most
1 / UPDATE_INTERVAL_S). On two saturated cores throughput moves a few percent between rounds
whatever the page does, so CPU is measured too: `serving_cores_*` the web server's and the
supervisor's cores over each round (closed: the server idles, the supervisor watches its
children), `cpu_us_per_op_*` the CPU of every process of the run (actors, supervisor, web
server, bench clients) per operation, and `cpu_cost` the median over adjacent open/closed
pairs of that per-operation CPU's ratio, minus one: what the page adds to each operation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from runtime.harness.bench import Ours, Result, proc_cpu_s, show_pair

# What the page's script fetches besides its event stream: (path, every seconds), as
# runtime/web/static/chart.js asks while the chart and the plot are on screen (ROWS,
# CHART_REFRESH_MS, PLOT_REFRESH_MS there): the tabs of this bench keep both on screen.
PAGE_FETCHES: tuple[tuple[str, float], ...] = (("/api/chart?rows=150&keepalive=0", 1.0), ("/api/plot", 2.0))


class WebOurs(Ours):
    """A bench cluster whose supervisor runs the page's server too (on a free port)."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        text = self.cluster.config_path.read_text()
        # [web] port = 0 (any free port): never the default cluster's 7180. Its section only.
        text, n = re.subn(r"(?ms)^(\[web\].*?^port\s*=\s*)\d+", r"\g<1>0", text)
        if not n:
            text += "\n[web]\nport = 0\n"
        self.cluster.config_path.write_text(text)

    def __enter__(self) -> WebOurs:
        up = self.cluster.paxos("up", "--detach", "--web", "--wait-s", "30", timeout_s=60)
        self.cluster._remember_pids()
        if up.returncode != 0:
            raise RuntimeError(f"the cluster did not start: {up.stderr.strip()}")
        info = json.loads((self.cluster.data_dir / "run" / "web.json").read_text())
        self.web_pid = int(info["pid"])
        self.url = str(info["url"])
        self.token = (self.cluster.data_dir / "web.token").read_text().strip()
        self.cluster.seen_pids.add(self.web_pid)
        return self

    def serving_pids(self) -> list[int]:
        """The web server and the supervisor (which answers the server's status polls)."""
        supervisor = self.cluster.supervisor_pid()
        return [self.web_pid, *([supervisor] if supervisor else [])]


class Tabs:
    """`n` simulated tabs in a thread of their own (an event loop there), until `stop`."""

    def __init__(self, url: str, token: str, n: int) -> None:
        self.url, self.token, self.n = url, token, n
        self.views = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.started = self.stopped = 0.0

    def __enter__(self) -> Tabs:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.stopped = time.monotonic()

    def views_per_tab_s(self) -> float:
        return self.views / max(1, self.n) / max(1e-9, self.stopped - self.started)

    async def _main(self) -> None:
        import aiohttp

        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as session:
            tasks = [asyncio.create_task(self._tab(session, headers)) for _ in range(self.n)]
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _tab(self, session: Any, headers: dict[str, str]) -> None:
        fetches = [asyncio.create_task(self._fetch(session, headers, path, every_s)) for path, every_s in PAGE_FETCHES]
        try:
            async with session.get(f"{self.url}/events", headers=headers) as r:
                if r.status != 200:
                    self.errors.append(f"/events: HTTP {r.status}")
                    return
                async for line in r.content:
                    if line.startswith(b"data: "):
                        json.loads(line[6:])  # the page parses every view
                        self.views += 1
        except Exception as exc:  # a tab's failure is reported, not raised in a thread
            if not isinstance(exc, asyncio.CancelledError):
                self.errors.append(f"/events: {exc!r}"[:200])
        finally:
            for f in fetches:
                f.cancel()

    async def _fetch(self, session: Any, headers: dict[str, str], path: str, every_s: float) -> None:
        while True:
            async with session.get(f"{self.url}{path}", headers=headers) as r:
                await r.read()
                if r.status != 200:
                    self.errors.append(f"{path}: HTTP {r.status}")
            await asyncio.sleep(every_s)


def web_bench(args: argparse.Namespace) -> int:
    d = args.duration_s
    rounds = max(2, args.rounds)
    opened: list[Result] = []
    closed: list[Result] = []
    shares: list[float] = []
    rates: list[float] = []
    cpu_open: list[float] = []  # µs of CPU per op, every process of the run (cluster, supervisor, web, clients)
    cpu_closed: list[float] = []
    serving_open: list[float] = []  # the web server's and the supervisor's cores, over the round
    serving_closed: list[float] = []
    with WebOurs(args.config) as ours:
        print(f"# web: data in {ours.root}, page at {ours.url}", file=sys.stderr)
        for rnd in range(rounds):
            print(f"# round {rnd + 1}: saturation, page open ({args.tabs} tabs) and closed", file=sys.stderr)
            for is_open in (True, False) if rnd % 2 == 0 else (False, True):
                name = f"saturation, 16 B, page {'open' if is_open else 'closed'}"
                serving0 = proc_cpu_s(ours.serving_pids())
                with Tabs(ours.url, ours.token, args.tabs if is_open else 0) as tabs:
                    result = ours.run(name, args.clients, args.tasks, d, 16, "w")
                if tabs.errors:
                    raise RuntimeError(f"a tab failed: {tabs.errors[0]}")
                serving_s = proc_cpu_s(ours.serving_pids()) - serving0
                cluster_s = (result.cpu_s_per_1k or 0) * result.ops_per_s * d / 1000
                client_s = (result.client_cpu_s_per_1k or 0) * result.ops_per_s * d / 1000
                ops = max(1.0, result.ops_per_s * d)
                (opened if is_open else closed).append(result)
                (cpu_open if is_open else cpu_closed).append((cluster_s + client_s + serving_s) / ops * 1e6)
                (serving_open if is_open else serving_closed).append(serving_s / max(1e-9, tabs.stopped - tabs.started))
                if is_open:
                    shares.append(serving_s / max(1e-9, cluster_s))
                    rates.append(tabs.views_per_tab_s())
    med_open, med_closed = show_pair("page open", opened, "page closed", closed)
    figures = {"tabs": args.tabs, "open_ops_per_s": med_open, "closed_ops_per_s": med_closed,
               "open_vs_closed": med_open / med_closed,
               "pair_ratio_median": statistics.median(a.ops_per_s / b.ops_per_s
                                                      for a, b in zip(opened, closed, strict=True)),
               "open_cpu_s_per_1k": statistics.median(r.cpu_s_per_1k or 0 for r in opened),
               "closed_cpu_s_per_1k": statistics.median(r.cpu_s_per_1k or 0 for r in closed),
               "web_cpu_share": statistics.median(shares),
               "views_per_tab_s": statistics.median(rates),
               "serving_cores_open": statistics.median(serving_open),
               "serving_cores_closed": statistics.median(serving_closed),
               "cpu_us_per_op_open": statistics.median(cpu_open),
               "cpu_us_per_op_closed": statistics.median(cpu_closed),
               "cpu_cost": statistics.median(a / b for a, b in zip(cpu_open, cpu_closed, strict=True)) - 1}
    print(f"bench-web rounds={rounds} " + " ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    return 0
