"""Starting the server: is the port free, what URL to print, and a server in a thread (tests,
benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
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


#: Hosts a server answers to whatever it binds (DNS rebinding guard: no others).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def allowed_hosts(host: str, allow: Sequence[str]) -> tuple[list[str], str | None]:
    """The ``Host`` names a server bound to ``host`` answers to, and a warning to print
    when ``host`` is not the loopback interface.

    The Host check stays on for every interface (DNS rebinding): a server on
    ``0.0.0.0`` answers to the loopback names, to ``host`` and to the names given
    with ``--allow-host``, nothing else.
    """
    names = [*LOCAL_HOSTS, *(name.strip() for name in allow if name.strip())]
    if host not in ("0.0.0.0", "::"):
        names.append(host)
    if host in LOOPBACK:
        return list(dict.fromkeys(names)), None
    extra = [name for name in names if name not in LOCAL_HOSTS]
    warning = (
        f"listening on {host}: anyone who reaches this port can read the catalog. "
        f"Requests must name the server as {', '.join(['127.0.0.1', 'localhost', *extra])}"
        + ("" if allow else " (add the names others use with --allow-host NAME)")
    )
    return list(dict.fromkeys(names)), warning


def start_url(host: str, port: int, token: str | None) -> str:
    """The URL to print: with ``?token=`` when the server accepts decisions."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def server_config(app: Any, host: str, port: int, **options: Any) -> Any:
    """The uvicorn configuration every server here runs with: h11 with a bounded
    request head (414 / 431 with a message past 64 KiB, see :mod:`catalog.web.protocol`)."""
    import uvicorn

    from catalog.web.protocol import MAX_HEAD, BoundedH11Protocol

    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", http=BoundedH11Protocol,
        h11_max_incomplete_event_size=MAX_HEAD, **options,
    )  # fmt: skip


class ThreadedServer:
    """A uvicorn server for ``app`` on ``127.0.0.1:port``, in a background thread."""

    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(server_config(app, host, self.port))
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
