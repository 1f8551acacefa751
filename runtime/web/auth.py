"""Who may use the page: the holder of the access token, from the page's own origin.

The token is 32 random bytes in hex in `<data_dir>/web.token`, mode 0600, created on first use
and kept across runs (a bookmarked URL keeps working). The page can kill processes, so every
request needs it, the page and its assets included: as `Authorization: Bearer <token>` or as
`?token=<token>` in the URL (an EventSource cannot set headers). Never a cookie: a cookie would
be sent by the browser on a request another site makes it send.

A request whose `Origin` header is present and is not the server's own origin is refused (403)
even with the right token; with a loopback bind the `Host` header must name a loopback address
too, so a DNS-rebinding page (which would pass as same-origin) is refused as well.

`RefusalLog` keeps the log of refused requests to a few lines a second however many arrive.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config import is_loopback

TOKEN_FILE = "web.token"
TOKEN_BYTES = 32
BODY_BYTES_MAX = 64 * 1024  # a put's value over the page; a bigger one is `paxos put --file`


class TokenFileError(RuntimeError):
    """The token file cannot be used as it is (too open, damaged, unreadable); says what to do."""


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def load_or_create_token(data_dir: Path) -> str:
    """The token of `<data_dir>/web.token`, created (0600) if missing. A file others may read is
    refused rather than fixed: its token may have been read already."""
    path = token_path(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _create(path)
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read the web token: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    if not stat.S_ISREG(mode):
        raise TokenFileError(f"{path}: not a regular file; remove it and a new token is made")
    if mode & 0o077:
        raise TokenFileError(f"{path}: mode {stat.S_IMODE(mode):04o} lets other users read the token; "
                             f"remove the file (a new token is made) or `chmod 600` it")
    token = data.decode("ascii", errors="replace").strip()
    if len(token) != TOKEN_BYTES * 2 or any(c not in "0123456789abcdef" for c in token):
        raise TokenFileError(f"{path}: not a web token ({TOKEN_BYTES * 2} hex digits); remove it and a new one is made")
    return token


def _create(path: Path) -> str:
    token = secrets.token_hex(TOKEN_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (token + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # not replace: two servers starting at once must agree on one token
        except FileExistsError:
            return load_or_create_token(path.parent)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot create the web token: {exc.strerror or exc}") from None
    return token


def token_ok(given: str | None, token: str) -> bool:
    """Constant-time comparison (a timing difference must not tell how much of a guess matched)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def given_token(headers: Any, query: Any) -> str | None:
    """The token a request carries: the Authorization header's bearer token, else `?token=`."""
    auth = headers.get("Authorization", "")
    if auth:
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    value = query.get("token")
    return value if isinstance(value, str) else None


def is_loopback_host(host: str) -> bool:
    """Whether a Host header (`name:port`, `[v6]:port`) names this machine's loopback."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback(name.strip("[]"))


def origin_ok(origin: str | None, host: str, scheme: str = "http") -> bool:
    """No Origin header (a top-level navigation, curl), or exactly the server's own origin."""
    return origin is None or origin == f"{scheme}://{host}"


@dataclass
class RefusalLog:
    """At most `lines_max` refusal lines per `window_s`; what is left out is counted and said in
    one line when the next window opens, so a flood of bad requests cannot flood the log."""

    logger: Any
    lines_max: int = 10
    window_s: float = 10.0
    _window_start: float = 0.0
    _lines: int = 0
    _suppressed: int = 0

    def refused(self, status: int, reason: str, **fields: Any) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.window_s:
            if self._suppressed:
                self.logger.warning("web_refusals_suppressed", count=self._suppressed, window_s=self.window_s)
            self._window_start, self._lines, self._suppressed = now, 0, 0
        if self._lines >= self.lines_max:
            self._suppressed += 1
            return
        self._lines += 1
        self.logger.warning("web_request_refused", status=status, reason=reason, **fields)
