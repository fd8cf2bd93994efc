"""The fetcher's network backend on asyncio streams: reads, writes, time limits and errors as httpcore expects."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import httpcore
import pytest

from aggregator.netstream import AsyncioBackend

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def with_server(handler: Handler, test: Callable[[int], Awaitable[None]]) -> None:
    """Run ``test(port)`` against a local server answering each connection with ``handler``."""

    async def run() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        try:
            await asyncio.wait_for(test(server.sockets[0].getsockname()[1]), 10)
        finally:
            server.close()

    asyncio.run(run())


def test_round_trip_and_a_peer_hanging_up_reads_as_readable() -> None:
    async def echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5))
        await writer.drain()
        await reader.read()  # until the client's next word...
        writer.close()

    async def test(port: int) -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        await stream.write(b"hello", timeout=5)
        assert await stream.read(100, timeout=5) == b"hello"
        assert stream.get_extra_info("is_readable") is False  # idle, open: reusable
        assert stream.get_extra_info("server_addr")[1] == port
        assert stream.get_extra_info("ssl_object") is None
        stream._writer.write_eof()  # ...which is the end: the server hangs up
        await asyncio.sleep(0.2)
        assert stream.get_extra_info("is_readable") is True
        assert await stream.read(100, timeout=5) == b""
        await stream.aclose()

    with_server(echo_once, test)


def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def test(port: int) -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(100, timeout=0.2)
        await stream.aclose()

    with_server(silent, test)


def test_a_stalled_tls_handshake_is_a_connect_timeout_and_a_reset_one_a_connect_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def stalled(port: int) -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        with pytest.raises(httpcore.ConnectTimeout):
            await stream.start_tls(ssl.create_default_context(), "example.org", timeout=0.2)

    async def reset(port: int) -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        with pytest.raises(httpcore.ConnectError):
            await stream.start_tls(ssl.create_default_context(), "example.org", timeout=5)

    with_server(silent, stalled)
    with_server(hang_up, reset)


def test_nothing_listening_is_a_connect_error() -> None:
    async def run() -> None:
        with pytest.raises(httpcore.ConnectError):
            await AsyncioBackend().connect_tcp("127.0.0.1", 1, timeout=5)
        with pytest.raises(httpcore.ConnectError):
            await AsyncioBackend().connect_unix_socket("/tmp/anything")

    asyncio.run(run())
