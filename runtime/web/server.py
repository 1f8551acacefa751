"""The web server of the live page (`paxos web`, `paxos up --web`): aiohttp on uvloop.

What it owns: the HTTP listener on `[web] bind`:`port`, `<data_dir>/run/web.json` (its pid and
URL, without the token, while it runs) and its log, `<data_dir>/logs/web.jsonl`.

Routes (every one behind runtime/web/auth.py's checks: own origin, token, body size):

- `GET /` the page, `GET /static/<file>` its assets (from the package, so an installed copy
  serves them);
- `GET /api/state` the view (runtime/web/view.py) as JSON;
- `GET /events` the view as server-sent events: one poller asks the supervisor for its status
  at most every `UPDATE_INTERVAL_S` while someone watches, and every stream sends the newest
  view when there is one, so a saturated cluster costs the page a few status requests a second
  (never one update per command), however many tabs are open;
- `POST /api/actors/<name>/<kill|pause|resume|restart>` the control requests of `paxos kill`,
  `paxos kill --signal STOP|CONT` and `paxos restart` (runtime/control.py);
- `POST /api/kv` `{"op": "put"|"get", "key": ..., "value": ...}` through runtime/client.py;
- `POST /api/links/<a>/<b>/<cut|heal>` both ways, through `paxos faults` (test mode only: the
  fault layer is the harness's, run as its own program).
- runtime/web/faultctl.py's: `POST /api/actors/<name>/crash` (`paxos kill --at`) and `POST
  /api/links/<a>/<b>/set` (a link's delay and drop rate), and the view's fields for them.
- runtime/web/stepctl.py's: step mode by click (`GET /api/step`, `POST /api/step/<op>`: the
  requests of `paxos step`) and the scenario runner (`/api/scenarios`, `/api/scenario-run`: one
  `paxos scenario NAME` at a time, its output, verdict and SVG charts).

The view carries, besides the cards, the frames a second per link (the arrows) and, in test mode,
the links cut (from `<data_dir>/run/faults.json`).

Started by the supervisor (`--supervisor-pid`), it stops when the supervisor does: SIGTERM from
it on `down`, the parent-death signal if it is killed, and a check of its pid twice a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections import deque
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from runtime import logs
from runtime.config import ClusterConfig, ConfigError
from runtime.control import (
    ControlError,
    NotRunning,
    die_with_parent,
    kill_message,
    pid_alive,
    request,
    restart_message,
)
from runtime.members import load
from runtime.web import auth, chart, faultctl, stepctl, view
from runtime.web.info import page_url, read_info, remove_info, write_info

# At most 2 views a second to every tab, whatever the cluster's load (a button's answer comes
# sooner). Each view is a supervisor status, which asks every actor: at 5 a second the page cost
# a saturated cluster 0.03 cores of the web server and the supervisor (`paxos bench --web`).
UPDATE_INTERVAL_S = 0.5
ACTION_GAP_S = 0.1  # after a button, the next view comes this soon (but never closer than this)
STATUS_TIMEOUT_S = 3.0
KEEPALIVE_S = 15.0  # an SSE comment this often, so a proxy or the browser keeps an idle stream
STREAMS_MAX = 100  # open event streams; more get 503 (each costs only a queue slot, but bounded)
CONFIG_RELOAD_S = 2.0  # the membership in force may change (runtime/members.py)
PARENT_POLL_S = 0.5
LINK_WINDOW_S = 2.0  # the arrows' frames a second are over this long (one poll apart is too noisy)
KV_TIMEOUT_S = 5.0
EXIT_CANNOT_SERVE = 1
EXIT_CONFIG = 78  # as the supervisor's
STATIC = ("index.html", "app.js", "style.css", "faultctl.js", "chart.js", "stepctl.js")
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
ACTIONS = {
    "kill": lambda name: kill_message(name, "KILL"),
    "pause": lambda name: kill_message(name, "STOP"),
    "resume": lambda name: kill_message(name, "CONT"),
    "restart": restart_message,
}
SECURITY_HEADERS = {
    # The page can kill processes: nobody may frame it, and it loads nothing from elsewhere.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",  # the URL carries the token
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class Hub:
    """The newest view, and a wake-up for every stream when a newer one is published."""

    def __init__(self) -> None:
        self.version = 0
        self.data = b"{}"
        self.streams = 0
        self.watched = asyncio.Event()  # set while a stream is open: the poller polls
        self.poke = asyncio.Event()  # a button was pressed: poll now
        self.closing = False
        self._changed = asyncio.Event()

    def publish(self, data: bytes) -> None:
        self.data = data
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def newer_than(self, version: int, timeout_s: float) -> bool:
        """Wait until a view newer than `version` is out (True) or `timeout_s` passes (False)."""
        if self.version != version or self.closing:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.closing = True
        self.publish(self.data)


class WebServer:
    def __init__(self, config: ClusterConfig, token: str, logger: Any) -> None:
        self.config = config
        self.token = token
        self.logger = logger
        self.refusals = auth.RefusalLog(logger)
        self.hub = Hub()
        self.loopback = config.web.loopback
        self._config_loaded_at = time.monotonic()
        self._faults_lock = asyncio.Lock()  # one rules file: two clicks must not lose each other's change
        self._first: asyncio.Future[None] | None = None  # the first view, shared by the streams waiting for it
        self._samples: deque[tuple[float, dict[str, Any]]] = deque()  # the arrows' rates come from these
        self._static = {name: resources.files("runtime.web").joinpath("static", name).read_bytes() for name in STATIC}

    # --- the application -------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=auth.BODY_BYTES_MAX)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._asset)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/events", self._events)
        faultctl.add_routes(app, self)  # crash points, link delay/drop: before the catch-all action routes
        app.router.add_post("/api/actors/{name}/{action}", self._action)
        app.router.add_post("/api/kv", self._kv)
        app.router.add_post("/api/links/{a}/{b}/{action}", self._link)
        chart.add_routes(app, self)  # the sequence chart, explain on click, the plot (runtime/web/chart.py)
        stepctl.add_routes(app, self)  # the scenario runner and step mode by click (runtime/web/stepctl.py)
        app.on_response_prepare.append(self._headers)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)

    async def _shutdown(self, app: web.Application) -> None:
        self.hub.close()  # every stream ends its response: the runner need not wait for them

    def _refuse(self, request: web.Request, status: int, reason: str) -> web.Response:
        # The path only: the query may hold a (wrong, or someone's right) token.
        self.refusals.refused(status, reason, method=request.method, path=request.path[:200],
                              peer=request.remote or "")
        logs.flush()
        headers = {"WWW-Authenticate": 'Bearer realm="paxos"'} if status == 401 else None
        return web.json_response({"error": reason}, status=status, headers=headers)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not auth.origin_ok(origin, request.host):
            return self._refuse(request, 403, f"origin {origin[:100]!r} is not this page's" if origin else "origin")
        if self.loopback and not auth.is_loopback_host(request.host):
            return self._refuse(request, 403, f"host {request.host[:100]!r} is not a loopback address "
                                              f"(a DNS-rebinding page, or a proxy)")
        given = auth.given_token(request.headers, request.query)
        if not auth.token_ok(given, self.token):
            why = "no token" if not given else "wrong token"
            return self._refuse(request, 401, f"{why}: the page's URL (printed by `paxos web`) carries it; "
                                              f"it is in {auth.token_path(self.config.data_dir)}")
        length = request.content_length
        if length is not None and length > auth.BODY_BYTES_MAX:
            return self._refuse(request, 413, f"body of {length} bytes, over {auth.BODY_BYTES_MAX}")
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPRequestEntityTooLarge:  # a chunked body without a length that grew too big
            return self._refuse(request, 413, f"body over {auth.BODY_BYTES_MAX} bytes")
        return response

    # --- the page --------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        # The token is hex, so it goes into the page as it is: the page's asset URLs carry it.
        html = self._static["index.html"].replace(b"__TOKEN__", self.token.encode())
        return web.Response(body=html, content_type="text/html", charset="utf-8")

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._static or name == "index.html":
            raise web.HTTPNotFound(text=f"no asset {name[:100]!r}")
        body = self._static[name]
        if name.endswith(".js"):  # a module's imports of its siblings carry the token as the page's URLs do
            body = body.replace(b"__TOKEN__", self.token.encode())
        return web.Response(body=body, content_type=CONTENT_TYPES[Path(name).suffix], charset="utf-8")

    async def _state(self, request: web.Request) -> web.Response:
        return web.Response(body=await self._view(), content_type="application/json")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.hub.streams >= STREAMS_MAX:
            return self._refuse(request, 503, f"{STREAMS_MAX} event streams are open already")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        hub = self.hub
        hub.streams += 1
        hub.watched.set()
        try:
            if hub.version == 0:
                await self._first_view()
            sent = -1
            while not hub.closing:
                if hub.version != sent:
                    sent = hub.version
                    await response.write(b"data: " + hub.data + b"\n\n")
                elif not await hub.newer_than(sent, KEEPALIVE_S):
                    await response.write(b": keepalive\n\n")
        except ConnectionError:
            pass  # the tab closed mid-stream: nothing to undo but the count below
        finally:
            hub.streams -= 1
            if not hub.streams:
                hub.watched.clear()
        return response

    # --- the buttons and the put/get box ---------------------------------------------------

    async def _action(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in ACTIONS:
            return self._refuse(request, 404, f"no action {action[:40]!r} (known: {', '.join(ACTIONS)})")
        if name not in self.config.actors:
            return self._refuse(request, 404, f"no actor named {name[:40]!r}")
        await request.read()  # any body is ignored, but one over the limit is still refused
        reply = await self.control(ACTIONS[action](name))
        if isinstance(reply, web.Response):
            return reply
        ok = bool(reply.get("ok"))
        self.logger.info("web_action", actor=name, action=action, ok=ok, error=reply.get("error") or None,
                         peer=request.remote or "")
        logs.flush()
        self.hub.poke.set()
        if not ok:
            return web.json_response({"ok": False, "error": str(reply.get("error", "failed"))}, status=409)
        return web.json_response({"ok": True, "pid": reply.get("pid")})

    async def control(self, message: dict[str, Any]) -> dict[str, Any] | web.Response:
        """The supervisor's answer to a control request (runtime/control.py), or the response
        that says why there is none: 409 not running, 502 no answer."""
        try:
            return await asyncio.to_thread(request_control, self.config, message)
        except NotRunning as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=409)
        except ControlError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=502)

    async def _kv(self, request: web.Request) -> web.Response:
        from runtime.client import (
            Client,
            ClusterUnavailable,
            CommandFailed,
            InvalidCommand,
            OutcomeUnknown,
        )

        body = await request.read()
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._refuse(request, 400, f"malformed JSON: {str(exc)[:100]}")
        fields = data if isinstance(data, dict) else {}
        op, key, value = fields.get("op"), fields.get("key"), fields.get("value")
        if op not in ("put", "get") or not isinstance(key, str) or not isinstance(value, str | None) \
                or (op == "put" and value is None):
            return self._refuse(request, 400, 'expected {"op": "put"|"get", "key": "...", "value": "..." (put)}')
        value = value if op == "put" else None  # a get ignores a value it was sent
        try:
            kv = Client(self.config, timeout_s=KV_TIMEOUT_S)
            kv.check(key, *([value] if value is not None else []))
        except InvalidCommand as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        except ClusterUnavailable as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=503)
        try:
            await kv.connect()
            if value is not None:  # a put
                await kv.put(key, value)
                return web.json_response({"ok": True, "op": op, "key": key})
            got = await kv.get(key)
            return web.json_response({"ok": True, "op": op, "key": key, "found": got is not None, "value": got})
        except OutcomeUnknown as exc:
            return web.json_response({"ok": False, "error": f"outcome unknown: {exc}"}, status=504)
        except (CommandFailed, ClusterUnavailable) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=503)
        finally:
            await kv.close()

    async def _link(self, request: web.Request) -> web.Response:
        """Cut or heal the link between two actors, both ways, through the cluster's fault layer:
        `paxos faults RULES` (runtime/harness/faults.py, run as its own program: the product never
        imports the harness), which exists only in test mode."""
        a, b, action = request.match_info["a"], request.match_info["b"], request.match_info["action"]
        if action not in ("cut", "heal"):
            return self._refuse(request, 404, f"no link action {action[:40]!r} (known: cut, heal)")
        for name in (a, b):
            if name not in self.config.actors:
                return self._refuse(request, 404, f"no actor named {name[:40]!r}")
        if a == b:
            return web.json_response({"ok": False, "error": "a link joins two different actors"}, status=400)
        await request.read()
        if not self.config.testing.enabled:
            return web.json_response({"ok": False, "error": f"link faults need `[testing] enabled = true` in "
                                                            f"{self.config.path.name} (the harness's fault layer)"},
                                     status=409)
        async with self._faults_lock:
            rules = read_fault_rules(self.config)
            for x, y in ((a, b), (b, a)):
                links = rules.setdefault(x, {})
                if action == "cut":
                    links[y] = {"cut": True}
                else:
                    links.pop(y, None)
                    if not links:
                        del rules[x]
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "runtime.cli", "faults", json.dumps(rules), "--config", str(self.config.path),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate()
        ok = proc.returncode == 0
        error = err.decode(errors="replace").strip()[-300:]
        self.logger.info("web_link", a=a, b=b, action=action, ok=ok, error=error or None, peer=request.remote or "")
        logs.flush()
        self.hub.poke.set()
        if not ok:
            return web.json_response({"ok": False, "error": error or f"paxos faults exited {proc.returncode}"},
                                     status=502)
        return web.json_response({"ok": True})

    # --- the one status gatherer -----------------------------------------------------------

    async def _first_view(self) -> None:
        """The first view, asked of the cluster once however many streams open before it is out
        (50 tabs opened together once made 50 status requests and sent each tab 50 views)."""
        if self._first is None:
            async def first() -> None:
                self.hub.publish(await self._view())

            self._first = asyncio.ensure_future(first())
        await asyncio.shield(self._first)

    async def _view(self) -> bytes:
        """The supervisor's status now, as the page's view (runtime/web/view.py)."""
        try:
            status = await asyncio.to_thread(request_control, self.config, {"cmd": "status", "digest": False},
                                           STATUS_TIMEOUT_S)
        except ControlError as exc:  # NotRunning among them
            self._samples.clear()
            built = faultctl.extend_view(view.build(self.config, None, str(exc)), None, None)
        else:
            now = time.monotonic()
            self._samples.append((now, status))
            while len(self._samples) > 2 and now - self._samples[0][0] > LINK_WINDOW_S:
                self._samples.popleft()
            rules = read_fault_rules(self.config) if self.config.testing.enabled else None
            built = faultctl.extend_view(view.build(self.config, status, links=view.link_rates(list(self._samples)),
                                                    cut=cut_links(rules) if rules is not None else None),
                                         status, rules)
        return json.dumps(built, separators=(",", ":")).encode()

    async def poll(self) -> None:
        """While a stream is open: a new view every UPDATE_INTERVAL_S (sooner after a button)."""
        while True:
            await self.hub.watched.wait()
            started = time.monotonic()
            await self._reload_config()
            self.hub.publish(await self._view())
            self.hub.poke.clear()
            await asyncio.sleep(max(0.0, ACTION_GAP_S - (time.monotonic() - started)))
            left = UPDATE_INTERVAL_S - (time.monotonic() - started)
            if left > 0:
                try:
                    await asyncio.wait_for(self.hub.poke.wait(), left)
                except TimeoutError:
                    pass

    async def _reload_config(self) -> None:
        if time.monotonic() - self._config_loaded_at < CONFIG_RELOAD_S:
            return
        self._config_loaded_at = time.monotonic()
        try:
            self.config = await asyncio.to_thread(load, self.config.path)
        except ConfigError as exc:  # edited into an error meanwhile: keep the one we run with
            self.logger.warning("web_config_unreadable", error=str(exc)[:300])


def read_fault_rules(config: ClusterConfig) -> dict[str, dict[str, Any]]:
    """The link fault rules in force (`<data_dir>/run/faults.json`, JSON: actor -> destination ->
    rule; runtime/harness/faults.py writes it), or {} when there are none or it is unreadable."""
    try:
        raw = json.loads((config.run_dir / "faults.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): dict(v) for k, v in raw.items() if isinstance(v, dict)}


def cut_links(rules: dict[str, dict[str, Any]]) -> list[list[str]]:
    """[sender, destination] of every link cut by name (a "*" rule is not drawn)."""
    return sorted([src, dst] for src, links in rules.items() for dst, rule in links.items()
                  if dst != "*" and isinstance(rule, dict) and rule.get("cut"))


def request_control(config: ClusterConfig, message: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """runtime/control.py's request (a function of its own so tests can stand in for it)."""
    return request(config, message, timeout_s)


# --- running it -----------------------------------------------------------------------------


def exposure(config: ClusterConfig) -> str:
    """Why a non-loopback bind is worth a warning at every start, or "" for a loopback one."""
    if config.web.loopback:
        return ""
    return (f"web.bind = {config.web.bind!r} in {config.path}: anyone who can reach it and holds the token may "
            f"kill the cluster's processes, and the traffic (the token too) is not encrypted")


async def serve(config: ClusterConfig, supervisor_pid: int | None = None, console: bool = False,
                announce: bool = True) -> int:
    logger = logs.configure("web", "web", config.log_path("web"), console, config.cluster.log_level)
    try:
        token = auth.load_or_create_token(config.data_dir)
    except auth.TokenFileError as exc:
        logger.error("web_failed", reason=str(exc))
        logs.flush()
        print(f"paxos web: {exc}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    running = read_info(config)
    if running is not None:
        print(f"paxos web: a web server (pid {running['pid']}) already serves the page of {config.path}: "
              f"{page_url(str(running.get('url')), token)}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    server = WebServer(config, token, logger)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    w = config.web
    site = web.TCPSite(runner, w.bind, w.port, shutdown_timeout=2.0)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        reason = f"cannot serve the page on {w.bind}:{w.port}: {exc.strerror or exc} (see [web] in {config.path})"
        logger.error("web_failed", reason=reason)
        logs.flush()
        print(f"paxos web: {reason}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    port = int(runner.addresses[0][1])
    host = "127.0.0.1" if w.bind in ("0.0.0.0", "::") else w.bind
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    exposed = exposure(config)
    if exposed:
        logger.warning("web_exposed", bind=w.bind, port=port, reason=exposed)
    logger.info("web_serving", url=base, supervisor_pid=supervisor_pid)  # never the token: logs are 0644
    logs.flush()
    write_info(config, base)
    if announce:
        print(f"the page of {config.path}: {page_url(base, token)}", flush=True)
        print("(the token is in " + str(auth.token_path(config.data_dir)) + "; Ctrl-C stops the server)",
              file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    poller = asyncio.create_task(server.poll())
    orphan = asyncio.create_task(_watch_parent(supervisor_pid, stop)) if supervisor_pid else None
    await stop.wait()
    why = "the supervisor is gone" if orphan is not None and orphan.done() else "asked to stop"
    poller.cancel()
    if orphan is not None:
        orphan.cancel()
    await runner.cleanup()
    remove_info(config)
    logger.info("web_stopped", reason=why)
    logs.flush()
    return 0


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    while pid_alive(pid) and os.getppid() == pid:
        await asyncio.sleep(PARENT_POLL_S)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.web.server",
                                     description="Serve the live page of a cluster (see `paxos web --help`).")
    parser.add_argument("--config", default="cluster.toml")
    parser.add_argument("--supervisor-pid", type=int, default=None,
                        help="run as the supervisor's child: stop when that process is gone")
    parser.add_argument("--console", action="store_true", help="also print its own events on stderr")
    args = parser.parse_args(argv)
    if args.supervisor_pid:
        die_with_parent(signal.SIGTERM)  # the supervisor's kill -9 ends us too
        if os.getppid() != args.supervisor_pid:
            return 0  # it is already gone
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    import uvloop

    return uvloop.run(serve(config, args.supervisor_pid, console=args.console,
                            announce=args.supervisor_pid is None))


if __name__ == "__main__":
    sys.exit(main())
