"""Serving the web app with uvicorn: alone (``aggregator serve``) or inside the daemon's event loop.

The listening socket is bound here, before uvicorn starts, so a port in use is one clear error rather than
uvicorn's exit; in the daemon uvicorn leaves the signals to the daemon, which stops the server with itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket

import uvicorn

from ..api import Aggregator
from .app import create_app

log = logging.getLogger("aggregator.web")


class WebError(Exception):
    """The web view cannot listen where it was asked to."""


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handlers: whoever runs it stops it (``should_exit``)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; WebError with one line when that is not possible."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise WebError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "the port is in use" if exc.errno == 98 else exc.strerror or str(exc)
        raise WebError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock


class WebServer:
    """The web app on one bound socket; ``await serve()`` until ``stop()``."""

    def __init__(self, agg: Aggregator, host: str, port: int):
        self.socket = bind(host, port)
        self.host, self.port = host, self.socket.getsockname()[1]
        config = uvicorn.Config(create_app(agg), log_config=None, access_log=False, lifespan="off",
                                server_header=False)
        self.server = _Server(config)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def serve(self) -> None:
        log.info("web view at %s", self.url)
        if not is_loopback(self.host):
            log.warning("the web view listens on %s with no authentication: anyone who can reach it can read it",
                        self.host)
        try:
            await self.server.serve(sockets=[self.socket])
        finally:
            self.socket.close()

    def stop(self) -> None:
        self.server.should_exit = True


def serve_forever(agg: Aggregator, host: str, port: int) -> None:
    """``aggregator serve``: run until SIGINT or SIGTERM."""
    web = WebServer(agg, host, port)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, web.stop)
        await web.serve()

    asyncio.run(main())
