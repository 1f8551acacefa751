"""Where a running web server is: `<data_dir>/run/web.json` (its pid and its URL without the
token, 0600), written by the server once it listens and removed when it stops. Light on purpose
(no aiohttp): the CLI and the supervisor read it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runtime.config import ClusterConfig
from runtime.control import pid_alive


def info_path(config: ClusterConfig) -> Path:
    return config.run_dir / "web.json"


def page_url(base: str, token: str) -> str:
    """The URL to open: the server's address with the token (the page passes it on)."""
    return f"{base}/?token={token}"


def write_info(config: ClusterConfig, url: str) -> None:
    path = info_path(config)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".web.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps({"pid": os.getpid(), "url": url}).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def remove_info(config: ClusterConfig) -> None:
    """Remove the file if it is this process's (a newer server may have written its own)."""
    try:
        if json.loads(info_path(config).read_text()).get("pid") == os.getpid():
            info_path(config).unlink()
    except (OSError, ValueError, AttributeError):
        pass


def read_info(config: ClusterConfig) -> dict[str, Any] | None:
    """The running web server's pid and URL (without the token), or None."""
    try:
        info = json.loads(info_path(config).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int) or not pid_alive(info["pid"]):
        return None
    return info
