"""Starting the server: is the port free, what URL to print, and a server in a thread (tests,
benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

from catalog.errors import CatalogError


class ServerError(CatalogError):
    """The web server cannot listen where it was asked to."""


def check_port(host: str, port: int) -> None:
    """Raise :class:`ServerError` if ``host:port`` cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            msg = f"Cannot listen on {host}:{port}: {exc.strerror or exc}"
            raise ServerError(msg) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start_url(host: str, port: int, token: str | None) -> str:
    """The URL to print: with ``?token=`` when the server accepts decisions."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


class ThreadedServer:
    """A uvicorn server for ``app`` on ``127.0.0.1:port``, in a background thread."""

    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                msg = f"The web server did not start on {self.url}"
                raise ServerError(msg)
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
