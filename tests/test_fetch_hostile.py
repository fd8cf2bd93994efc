"""The fetcher against servers and URLs that mean harm.

Everything runs against LocalSite on 127.0.0.1 (or a bare socket there). The autouse ``network``
fixture records every TCP connection the fetcher really opens and refuses any that would leave the
machine, so even with a guard broken on purpose no test reaches another host.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import ipaddress
import logging
import socket
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpcore
import httpx
import pytest
from sqlmodel import Session, select

import aggregator.body as body_module
import aggregator.egress as egress_module
import aggregator.fetch as fetch_module
from aggregator.config import Settings, parse_config
from aggregator.fetch import (
    ACCEPT_ENCODING,
    MAX_RETRY_AFTER,
    METADATA_ADDRESSES,
    EgressRefused,
    Fetcher,
    FetchError,
    FetchResult,
    GuardedBackend,
    allowed_address_check,
    is_public_address,
    resolve_host,
)
from aggregator.localsite import LocalSite, respond
from aggregator.models import Article
from aggregator.netstream import AsyncioBackend
from aggregator.pipeline import poll_once
from aggregator.store import open_database

CAP = 1024 * 1024
BOMB_SIZE = 100 * 1024 * 1024
STRICT = Settings(timeout=2)  # allowed_networks defaults to none
LOOSE = Settings(timeout=2, allowed_networks=["127.0.0.1/32"])
QUICK = Settings(timeout=1.5, allowed_networks=["127.0.0.1/32"])
QUICKER = Settings(timeout=0.8, allowed_networks=["127.0.0.1/32"])
CAPPED = Settings(timeout=5, allowed_networks=["127.0.0.1/32"], max_response_bytes=CAP)
LOOPBACK = ipaddress.ip_address("127.0.0.1")
METADATA_ADDRESSES_TEXT = {str(address) for address in METADATA_ADDRESSES}
WATCHDOG = 10  # seconds: with a deadline broken on purpose, a test fails instead of hanging

AddressCheck = Callable[[Any], bool]


def only_127_0_0_1(address: Any) -> bool:
    """Stands in for "public" in tests where the allowed server must itself live on loopback."""
    return address == LOOPBACK


# --- Helpers ---------------------------------------------------------------------------------------


def fetch(
    url: str, settings: Settings = LOOSE, *, address_allowed: AddressCheck | None = None, **kwargs: Any
) -> FetchResult:
    async def run() -> FetchResult:
        async with Fetcher(settings, address_allowed=address_allowed) as fetcher:
            return await fetcher.fetch(url, **kwargs)

    return asyncio.run(asyncio.wait_for(run(), WATCHDOG))


def fetch_error(url: str, settings: Settings = LOOSE, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(url, settings, **kwargs)
    assert str(caught.value).startswith("fetch: ")
    return caught.value


def timed_error(url: str, settings: Settings = LOOSE, **kwargs: Any) -> tuple[FetchError, float]:
    started = time.monotonic()
    error = fetch_error(url, settings, **kwargs)
    return error, time.monotonic() - started


def measured_error(url: str, settings: Settings) -> tuple[FetchError, float, int]:
    """Fetch expecting a FetchError; return it, the seconds taken and the peak traced memory growth."""

    async def run() -> tuple[FetchError, float, int]:
        async with Fetcher(settings) as fetcher:  # built before tracing: only the fetch itself counts
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                started = time.monotonic()
                with pytest.raises(FetchError) as caught:
                    await fetcher.fetch(url)
                elapsed = time.monotonic() - started
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        return caught.value, elapsed, peak - baseline

    return asyncio.run(asyncio.wait_for(run(), WATCHDOG))


def assert_refused(error: FetchError, address: str | None = None) -> None:
    assert error.reason.startswith(("refused to connect to private address ", "refused to connect to cloud metadata "))
    assert error.reason.endswith(("(not in allowed_networks)", "(not listed exactly in allowed_networks)"))
    if address is not None:
        assert str(ipaddress.ip_address(address)) in error.reason
    assert error.permanent is False and error.status is None


def redirect(site: LocalSite, path: str, to: str, status: int = 302) -> None:
    site.route(path, respond(status, {"Location": to}))


def write_raw(request: BaseHTTPRequestHandler, head: bytes, blocks: Iterator[bytes], pause: float = 0.0) -> None:
    """Write a response by hand (status line and headers in ``head``), block by block, until the client hangs up."""
    try:
        request.wfile.write(head)
        request.wfile.flush()
        for block in blocks:
            request.wfile.write(block)
            request.wfile.flush()
            if pause:
                time.sleep(pause)
    except OSError:
        pass  # the fetcher hung up, as it should
    request.close_connection = True


def endless(block: bytes, limit: int = 64 * 1024 * 1024) -> Iterator[bytes]:
    """``block`` over and over, up to ``limit`` bytes, in case a broken guard keeps on reading."""
    for _ in range(limit // len(block)):
        yield block


def serve_encoded(site: LocalSite, path: str, body: bytes, encoding: str) -> None:
    site.put(path, body, content_type="text/plain", headers={"Content-Encoding": encoding})


def compress_zeros(compressor: Any, size: int) -> bytes:
    compress = getattr(compressor, "compress", None) or compressor.process  # zlib, or brotli
    block = bytes(1024 * 1024)
    parts = [compress(block) for _ in range(size // len(block))]
    parts.append(compressor.flush() if hasattr(compressor, "flush") else compressor.finish())
    return b"".join(parts)


# --- Fixtures --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def network(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every real TCP connect, as (host, port); only 127.0.0.1 is actually dialled."""
    opened: list[tuple[str, int]] = []
    real = AsyncioBackend.connect_tcp

    async def recording(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        opened.append((host, port))
        if host != "127.0.0.1":
            raise httpcore.ConnectError(f"test network: {host} is out of bounds")
        return await real(self, host, port, *args, **kwargs)

    monkeypatch.setattr(AsyncioBackend, "connect_tcp", recording)
    return opened


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, letting stalled route handlers finish."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Fake DNS: names put in the returned dict resolve to the given addresses; others as usual."""
    answers: dict[str, list[str] | Callable[[], list[str]]] = {}
    real = resolve_host

    async def fake(host: str, port: int) -> list[str]:
        answer = answers.get(host)
        if answer is None:
            return await real(host, port)
        return answer() if callable(answer) else list(answer)

    monkeypatch.setattr(egress_module, "resolve_host", fake)
    return answers  # type: ignore[return-value]


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """100 MiB of zeros, compressed every way the fetcher decodes (about 100 KB each).

    One raw deflate stream, framed three ways, so it is compressed only once.
    """
    raw = compress_zeros(zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS), BOMB_SIZE)
    crc, adler = 0, 1
    block = bytes(1024 * 1024)
    for _ in range(BOMB_SIZE // len(block)):
        crc, adler = zlib.crc32(block, crc), zlib.adler32(block, adler)
    gzipped = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw + struct.pack("<II", crc, BOMB_SIZE & 0xFFFFFFFF)
    made = {
        "gzip": gzipped,
        "deflate": b"\x78\xda" + raw + struct.pack(">I", adler),
        "raw-deflate": raw,
        "gzip, gzip": gzip.compress(gzipped),  # a few hundred bytes that inflate to 100 MiB
    }
    if body_module._BROTLI is not None:
        made["br"] = compress_zeros(body_module._BROTLI.Compressor(quality=5), BOMB_SIZE)
    return made


# --- Egress: the vetting function ------------------------------------------------------------------

PRIVATE_ADDRESSES = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "fc00::1",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    # and more of the same families
    "127.0.0.1",
    "127.255.255.254",
    "255.255.255.255",
    "240.0.0.1",
    "198.18.0.1",
    "192.0.2.1",
    "192.0.0.8",
    "::",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "::ffff:169.254.169.254",
    "::7f00:1",  # IPv4-compatible ::127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo whose client is 10.0.0.1
    "2001:db8::1",
    "100::1",
]
PUBLIC_ADDRESSES = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:2800:220:1::",
    "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34",
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
]
NUMERIC_LOOPBACK_FORMS = ["2130706433", "0x7f.0.0.1", "0x7f.1", "017700000001", "127.1"]


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES)
def test_vetting_refuses_private_address(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_vetting_passes_public_address(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("host", NUMERIC_LOOPBACK_FORMS)
def test_numeric_host_forms_resolve_to_loopback_and_are_refused(host: str) -> None:
    addresses = asyncio.run(resolve_host(host, 80))  # numeric: the resolver answers without DNS
    assert addresses == ["127.0.0.1"]
    assert not any(is_public_address(ipaddress.ip_address(a)) for a in addresses)


# --- Egress: through the fetcher -------------------------------------------------------------------


def test_local_site_refused_by_default_without_reaching_it(site: LocalSite, network: list) -> None:
    site.put("/feed.xml", "<rss/>")
    error = fetch_error(site.url("/feed.xml"), STRICT)
    assert_refused(error, "127.0.0.1")
    url = site.url("/feed.xml")
    assert str(error) == f"fetch: refused to connect to private address 127.0.0.1 (not in allowed_networks): {url}"
    assert site.hits == {} and site.connections == 0 and network == []


@pytest.mark.parametrize("host", ["a" * 64 + ".example", "a..example"])
def test_a_host_name_the_resolver_cannot_encode_is_a_fetch_error(host: str, network: list) -> None:
    error = fetch_error(f"http://{host}/feed.xml", STRICT)
    assert error.reason == f"cannot connect (cannot resolve {host}: not a valid host name)"
    assert network == []


def test_localhost_name_refused_at_connect_time(site: LocalSite, network: list) -> None:
    site.put("/feed.xml", "<rss/>")
    error = fetch_error(site.url("/feed.xml").replace("127.0.0.1", "localhost"), STRICT)
    assert_refused(error)
    assert site.connections == 0 and network == []


PRIVATE_URLS = [
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://[::1]/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://2130706433/",
    "http://0x7f.0.0.1/",
    "http://[::ffff:7f00:1]/",
    "https://0x7f.1:8443/",
    "http://017700000001/",
    "http://127.1/",
    "https://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "http://[64:ff9b::a9fe:a9fe]/",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_url_refused_without_connecting(url: str, network: list) -> None:
    error = fetch_error(url, STRICT)
    assert_refused(error)
    assert error.url == url
    assert network == []


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES[:12])
def test_name_resolving_to_private_address_refused_at_connect(
    address: str, resolver: dict, network: list
) -> None:
    resolver["feed.example"] = [address]
    error = fetch_error("http://feed.example/rss", STRICT)
    assert_refused(error, address)
    assert network == []


def test_dns_rebinding_to_loopback_refused(site: LocalSite, resolver: dict, network: list) -> None:
    site.put("/feed.xml", "<rss/>")
    resolver["rebind.example"] = ["127.0.0.1"]
    url = site.url("/feed.xml").replace("127.0.0.1", "rebind.example")
    assert_refused(fetch_error(url, STRICT), "127.0.0.1")
    assert site.connections == 0 and network == []


def test_rebinding_between_connections_is_caught(site: LocalSite, resolver: dict, network: list) -> None:
    """The second connection re-resolves, gets a refused address and is vetted again."""
    site.put("/feed.xml", "<rss/>")
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])
    resolver["rebind.example"] = lambda: next(answers)
    url = site.url("/feed.xml").replace("127.0.0.1", "rebind.example")

    async def run() -> tuple[FetchResult, FetchError]:
        async with Fetcher(LOOSE, address_allowed=only_127_0_0_1) as fetcher:
            first = await fetcher.fetch(url)
            with pytest.raises(FetchError) as caught:
                await fetcher.fetch(url)
            return first, caught.value

    first, error = asyncio.run(run())
    assert first.content == b"<rss/>"
    assert_refused(error, "127.0.0.2")
    assert site.connections == 1 and [host for host, _ in network] == ["127.0.0.1"]


def test_any_refused_address_among_several_refuses_the_host(site: LocalSite, resolver: dict, network: list) -> None:
    site.put("/feed.xml", "<rss/>")
    resolver["mixed.example"] = ["127.0.0.1", "10.0.0.1"]
    url = site.url("/feed.xml").replace("127.0.0.1", "mixed.example")
    assert_refused(fetch_error(url, LOOSE, address_allowed=only_127_0_0_1), "10.0.0.1")
    assert site.connections == 0 and network == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_to_metadata_address_refused_before_connecting(site: LocalSite, network: list, status: int) -> None:
    target = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    redirect(site, "/hop", target, status)
    asked: list[Any] = []

    def allowed(address: Any) -> bool:
        asked.append(address)
        return only_127_0_0_1(address)

    error = fetch_error(site.url("/hop"), LOOSE, address_allowed=allowed)
    assert_refused(error, "169.254.169.254")
    assert error.url == target
    assert site.hits == {"/hop": 1}
    assert ipaddress.ip_address("169.254.169.254") in asked
    assert {host for host, _ in network} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("name", "address"), [("metadata.example", "169.254.169.254"), ("intranet.example", "10.1.2.3")]
)
def test_redirect_to_name_resolving_private_refused(
    site: LocalSite, resolver: dict, network: list, name: str, address: str
) -> None:
    resolver[name] = [address]
    redirect(site, "/hop", f"http://{name}/latest/meta-data", 301)
    error = fetch_error(site.url("/hop"), LOOSE, address_allowed=only_127_0_0_1)
    assert_refused(error, address)
    assert {host for host, _ in network} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("location", "address"),
    [
        ("http://2852039166/latest/meta-data", "169.254.169.254"),  # decimal
        ("http://0xa9.0xfe.0xa9.0xfe/latest/meta-data", "169.254.169.254"),  # hex
        ("http://[::ffff:a9fe:a9fe]/latest/meta-data", "169.254.169.254"),  # IPv4-mapped
        ("http://0x7f.0.0.2/", "127.0.0.2"),
    ],
)
def test_redirect_to_disguised_private_address_refused(
    site: LocalSite, network: list, location: str, address: str
) -> None:
    redirect(site, "/hop", location)
    error = fetch_error(site.url("/hop"), LOOSE, address_allowed=only_127_0_0_1)
    assert_refused(error, address)
    assert {host for host, _ in network} == {"127.0.0.1"}


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/pub/file",
        "gopher://127.0.0.1:70/_GET%20/",
        "dict://127.0.0.1:11211/stats",
        "data:text/html,<p>hi</p>",
        "javascript:alert(1)",
    ],
)
def test_redirect_to_other_scheme_refused(site: LocalSite, location: str) -> None:
    redirect(site, "/hop", location)
    error = fetch_error(site.url("/hop"))
    assert error.reason.startswith(("unsupported URL scheme", "invalid redirect Location"))
    assert site.hits == {"/hop": 1}


def test_tls_uses_the_host_name_while_tcp_goes_to_the_vetted_address(
    resolver: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket is opened to the IP literal that was checked; SNI and the certificate check keep the name."""
    resolver["secure.example"] = ["93.184.216.34"]
    seen: dict[str, Any] = {}

    class Stream(httpcore.AsyncNetworkStream):  # stands in for the socket: nothing leaves the machine
        async def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: Any = None) -> Any:
            seen["server_hostname"] = server_hostname
            seen["check_hostname"] = ssl_context.check_hostname
            raise httpcore.ConnectError("stand-in stream: no TLS here")

        async def aclose(self) -> None:
            pass

    async def connect(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Stream:
        seen["connect"] = (host, port)
        return Stream()

    monkeypatch.setattr(AsyncioBackend, "connect_tcp", connect)
    error = fetch_error("https://secure.example/feed.xml", STRICT)
    assert "cannot connect" in error.reason
    assert seen == {"connect": ("93.184.216.34", 443), "server_hostname": "secure.example", "check_hostname": True}


def test_literal_private_address_refused_before_any_transport() -> None:
    """IP literals are vetted up front, so even a stand-in transport is never asked to send."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=b"metadata")

    async def run() -> None:
        async with Fetcher(STRICT, transport=httpx.MockTransport(handler)) as fetcher:
            await fetcher.fetch("http://169.254.169.254/latest/meta-data/")

    with pytest.raises(FetchError) as caught:
        asyncio.run(run())
    assert_refused(caught.value, "169.254.169.254")
    assert sent == []


def test_credentials_in_the_address_go_to_that_hop_only(site: LocalSite) -> None:
    """A private feed's user and password in its URL are sent as Basic authentication, and not to the next hop."""
    redirect(site, "/private.xml", site.url("/public.xml"))
    site.put("/public.xml", "<rss/>")
    assert fetch(site.url("/private.xml").replace("://", "://reader:s%C3%A9same@")).content == b"<rss/>"
    (first, sent), (second, then) = site.requests
    assert (first, second) == ("/private.xml", "/public.xml")
    assert sent["Authorization"] == "Basic " + base64.b64encode("reader:sésame".encode()).decode()
    assert "Authorization" not in then
    assert sent["User-Agent"] == LOOSE.user_agent and "Cookie" not in sent


def test_cookies_set_by_a_feed_are_not_kept(site: LocalSite) -> None:
    site.route("/set", respond(302, {"Location": "/echo", "Set-Cookie": "track=1; Path=/"}))
    site.put("/echo", "ok")

    async def run() -> None:
        async with Fetcher(LOOSE) as fetcher:
            await fetcher.fetch(site.url("/set"))
            await fetcher.fetch(site.url("/echo"))

    asyncio.run(run())
    assert [path for path, _ in site.requests] == ["/set", "/echo", "/echo"]
    assert not any("Cookie" in headers for _, headers in site.requests)


def test_environment_proxy_is_not_used(site: LocalSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.put("/feed.xml", "<rss/>")
    with LocalSite() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.base_url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        assert fetch(site.url("/feed.xml")).content == b"<rss/>"
        assert proxy.connections == 0
    assert site.hits == {"/feed.xml": 1}


def test_backend_connects_only_to_the_urls_host_and_port(site: LocalSite, network: list) -> None:
    backend = GuardedBackend(lambda address: True)
    port = int(site.base_url.rsplit(":", 1)[1])

    async def run() -> None:
        token = egress_module.REQUEST_ORIGIN.set(("127.0.0.1", port))
        try:
            with pytest.raises(EgressRefused, match="not the host and port of the URL"):
                await backend.connect_tcp("127.0.0.1", port + 1)
            with pytest.raises(EgressRefused, match="not the host and port of the URL"):
                await backend.connect_tcp("proxy.example", port)
        finally:
            egress_module.REQUEST_ORIGIN.reset(token)
        with pytest.raises(EgressRefused, match="unix socket"):
            await backend.connect_unix_socket("/var/run/docker.sock")

    asyncio.run(run())
    assert network == [] and site.connections == 0


# --- Egress: allowed_networks ----------------------------------------------------------------------

# (metadata address, a broad range containing it): the range alone never opens the address
METADATA_IN_RANGES = [
    ("169.254.169.254", "169.254.0.0/16"),
    ("169.254.170.2", "169.254.0.0/16"),
    ("169.254.170.23", "169.254.170.0/24"),
    ("169.254.0.23", "169.254.0.0/16"),
    ("100.100.100.200", "100.64.0.0/10"),
    ("192.0.0.192", "192.0.0.0/24"),
    ("168.63.129.16", "168.63.0.0/16"),
    ("fd00:ec2::254", "fd00::/8"),
    ("fd00:ec2::23", "fc00::/7"),
    ("fd20:ce::254", "fd20::/16"),
]
# IPv6 forms that reach 169.254.169.254, judged by the IPv4 address they embed
METADATA_DISGUISED = ["::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::a9fe:a9fe"]


def allowed_by(networks: list[str], address: str) -> bool:
    settings = Settings(allowed_networks=networks)
    return allowed_address_check(settings.allowed_networks)(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("::ffff:127.0.0.1", True),  # the same host, judged by its IPv4 address
        ("127.0.0.2", False),
        ("10.0.0.1", False),
        ("192.168.1.20", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("fd12:3456::1", False),
        ("93.184.216.34", True),  # public addresses stay allowed
        ("2606:2800:220:1::", True),
    ],
)
def test_allowed_network_admits_its_addresses_only(address: str, allowed: bool) -> None:
    assert allowed_by(["127.0.0.1/32"], address) is allowed


def test_bare_address_and_ranges_admit_what_they_cover() -> None:
    networks = ["192.168.1.20", "10.8.0.0/16", "fd00:1234::/32"]
    assert allowed_by(networks, "192.168.1.20") and not allowed_by(networks, "192.168.1.21")
    assert allowed_by(networks, "10.8.200.1") and not allowed_by(networks, "10.9.0.1")
    assert allowed_by(networks, "fd00:1234::99") and not allowed_by(networks, "fd00:1235::1")
    assert not allowed_by(networks, "127.0.0.1")


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES + PUBLIC_ADDRESSES)
def test_no_allowed_networks_means_public_only(address: str) -> None:
    assert allowed_by([], address) is is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(("address", "network"), METADATA_IN_RANGES)
def test_metadata_address_refused_inside_an_allowed_range(address: str, network: str) -> None:
    assert address in METADATA_ADDRESSES_TEXT
    assert not allowed_by([network], address)
    assert not allowed_by(["0.0.0.0/0", "::/0"], address)  # not even when every network is allowed
    assert allowed_by([network], str(next(ipaddress.ip_network(network).hosts())))  # its neighbours are


@pytest.mark.parametrize(("address", "network"), METADATA_IN_RANGES)
def test_metadata_address_allowed_when_listed_exactly(address: str, network: str) -> None:
    prefix = 32 if ipaddress.ip_address(address).version == 4 else 128
    assert allowed_by([address], address)
    assert allowed_by([network, f"{address}/{prefix}"], address)


@pytest.mark.parametrize("address", METADATA_DISGUISED)
def test_metadata_address_in_ipv6_form_refused_unless_listed(address: str) -> None:
    assert not allowed_by(["169.254.0.0/16"], address)
    assert not allowed_by(["0.0.0.0/0", "::/0"], address)
    assert allowed_by(["169.254.169.254"], address)


def test_every_metadata_address_is_tested() -> None:
    assert {address for address, _ in METADATA_IN_RANGES} == METADATA_ADDRESSES_TEXT


def test_public_metadata_address_refused_by_default(network: list) -> None:
    error = fetch_error("http://168.63.129.16/machine?comp=goalstate", STRICT)
    assert error.reason == (
        "refused to connect to cloud metadata address 168.63.129.16 (not listed exactly in allowed_networks)"
    )
    assert network == []


@pytest.mark.parametrize("location", ["http://127.0.0.2:{port}/", "http://[::1]:{port}/", "http://10.0.0.1/"])
def test_allowed_feed_redirecting_outside_the_allowed_networks_refused(
    site: LocalSite, network: list, location: str
) -> None:
    """The feed's own host is allowed; a hop elsewhere is vetted again and refused before connecting."""
    port = int(site.base_url.rsplit(":", 1)[1])
    redirect(site, "/hop", location.format(port=port))
    error = fetch_error(site.url("/hop"), LOOSE)
    assert_refused(error)
    assert site.hits == {"/hop": 1}
    assert {host for host, _ in network} == {"127.0.0.1"}


def test_allowed_feed_redirecting_to_a_name_outside_the_allowed_networks_refused(
    site: LocalSite, resolver: dict, network: list
) -> None:
    resolver["nas.example"] = ["192.168.1.20"]
    redirect(site, "/hop", "http://nas.example/admin")
    assert_refused(fetch_error(site.url("/hop"), LOOSE), "192.168.1.20")
    assert {host for host, _ in network} == {"127.0.0.1"}


def test_allowed_feed_redirecting_to_another_allowed_network_is_followed(
    site: LocalSite, resolver: dict, network: list
) -> None:
    """Both hosts listed: the hop passes vetting and is dialled (the test network then refuses it)."""
    resolver["nas.example"] = ["192.168.1.20"]
    redirect(site, "/hop", "http://nas.example/feed.xml")
    settings = Settings(timeout=2, allowed_networks=["127.0.0.1/32", "192.168.1.20"])
    error = fetch_error(site.url("/hop"), settings)
    assert "cannot connect" in error.reason
    assert [host for host, _ in network] == ["127.0.0.1", "192.168.1.20"]


def test_redirect_to_metadata_refused_inside_an_allowed_link_local_range(site: LocalSite, network: list) -> None:
    redirect(site, "/hop", "http://169.254.169.254/latest/meta-data/")
    settings = Settings(timeout=2, allowed_networks=["127.0.0.1/32", "169.254.0.0/16"])
    error = fetch_error(site.url("/hop"), settings)
    assert error.reason.startswith("refused to connect to cloud metadata address 169.254.169.254")
    assert {host for host, _ in network} == {"127.0.0.1"}


def test_redirect_to_metadata_listed_exactly_is_followed(site: LocalSite, network: list) -> None:
    redirect(site, "/hop", "http://169.254.169.254/latest/meta-data/")
    settings = Settings(timeout=2, allowed_networks=["127.0.0.1/32", "169.254.169.254"])
    error = fetch_error(site.url("/hop"), settings)
    assert "cannot connect" in error.reason  # vetted and dialled; the test network refuses it
    assert [host for host, _ in network] == ["127.0.0.1", "169.254.169.254"]


def test_article_links_outside_the_allowed_networks_are_not_fetched(
    site: LocalSite, resolver: dict, network: list, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A feed on an allowed host cannot send the article fetches elsewhere: each page is vetted on its own."""
    resolver["nas.example"] = ["192.168.1.20"]
    port = int(site.base_url.rsplit(":", 1)[1])
    links = {
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "router": "http://192.168.1.1/",
        "loopback": f"http://127.0.0.2:{port}/page",
        "nas": "http://nas.example/admin",
    }
    items = "".join(
        f"<item><title>Story {name}</title><link>{link}</link><guid>{name}</guid>"
        f"<description>The feed's own text about {name}.</description></item>"
        for name, link in links.items()
    )
    site.put("/feed.xml", f"<rss version='2.0'><channel><title>Local</title>{items}</channel></rss>",
             content_type="application/rss+xml")
    config = parse_config(
        f"settings:\n  allowed_networks: [127.0.0.1/32]\nfeeds:\n  - name: Local\n    url: {site.url('/feed.xml')}\n"
    )
    engine = open_database(f"sqlite:///{tmp_path}/net.db")
    with caplog.at_level(logging.DEBUG, logger="aggregator"):
        results = poll_once(engine, config)
    assert [(r.status, r.new_entries) for r in results] == [("ok", 4)]
    with Session(engine) as session:
        assert set(session.exec(select(Article.text_source)).all()) == {"feed"}
    refused = [r.getMessage() for r in caplog.records if "refused to connect" in r.getMessage()]
    assert len(refused) == 4
    assert site.hits == {"/feed.xml": 1}
    assert {host for host, _ in network} == {"127.0.0.1"}
    engine.dispose()


# --- Redirect limits -------------------------------------------------------------------------------


def test_six_redirects_refused(site: LocalSite) -> None:
    for hop in range(6):
        redirect(site, f"/r{hop}", f"/r{hop + 1}", 301)
    site.put("/r6", "never served")
    error = fetch_error(site.url("/r0"))
    assert "too many redirects" in error.reason
    assert "/r6" not in site.hits and sum(site.hits.values()) == 6


def test_redirect_loop_refused(site: LocalSite) -> None:
    redirect(site, "/a", "/b", 301)
    redirect(site, "/b", site.url("/a"), 308)
    started = time.monotonic()
    error = fetch_error(site.url("/a"))
    assert "too many redirects" in error.reason
    assert site.hits == {"/a": 3, "/b": 3}
    assert time.monotonic() - started < 2


# --- Deadlines -------------------------------------------------------------------------------------


def test_slow_loris_body_cut_at_total_deadline(site: LocalSite) -> None:
    head = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"
    site.route("/slow", lambda request: write_raw(request, head, endless(b"x", 100), pause=0.3))
    error, elapsed = timed_error(site.url("/slow"), QUICK)
    assert "timed out after 1.5s" in error.reason
    assert elapsed < 3


def test_slow_loris_headers_cut_at_total_deadline(site: LocalSite) -> None:
    head = b"HTTP/1.0 200 OK\r\n"
    site.route("/slow", lambda request: write_raw(request, head, endless(b"X", 100), pause=0.2))
    error, elapsed = timed_error(site.url("/slow"), QUICKER)
    assert "timed out after 0.8s" in error.reason
    assert elapsed < 1.6


def test_server_that_never_answers(site: LocalSite, release: threading.Event) -> None:
    site.route("/silent", lambda request: release.wait(10))
    error, elapsed = timed_error(site.url("/silent"), QUICK)
    assert "timed out after 1.5s" in error.reason
    assert elapsed < 3
    assert site.hits == {"/silent": 1}


def test_socket_that_never_accepts(network: list) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
        port = listener.getsockname()[1]
        error, elapsed = timed_error(f"http://127.0.0.1:{port}/", QUICKER)
    assert "timed out after 0.8s" in error.reason
    assert elapsed < 1.6
    assert network == [("127.0.0.1", port)]


def test_one_deadline_covers_all_redirect_hops(site: LocalSite) -> None:
    """Each hop answers well inside the timeout; together they do not."""

    def slow_redirect(to: str):
        def handler(request: BaseHTTPRequestHandler) -> None:
            time.sleep(0.3)
            respond(302, {"Location": to})(request)

        return handler

    for hop in range(4):
        site.route(f"/h{hop}", slow_redirect(f"/h{hop + 1}"))
    site.put("/h4", "too late")
    error, elapsed = timed_error(site.url("/h0"), QUICKER)
    assert "timed out after 0.8s" in error.reason
    assert elapsed < 1.6
    assert "/h4" not in site.hits and site.hits["/h2"] == 1


def test_content_length_over_cap_refused_before_reading(site: LocalSite, release: threading.Event) -> None:
    head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000000000\r\n\r\n"

    def huge(request: BaseHTTPRequestHandler) -> None:
        write_raw(request, head, iter([b"x" * 100]))
        release.wait(10)  # and then nothing: only a fetcher that reads would wait here

    site.route("/huge", huge)
    error, elapsed = timed_error(site.url("/huge"), CAPPED)
    assert f"larger than {CAP} bytes (Content-Length 1000000000000)" in error.reason
    assert elapsed < 1


# --- Size caps and decompression bombs ------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate", "br", "gzip, gzip"])
def test_decompression_bomb_stops_at_cap(site: LocalSite, bombs: dict[str, bytes], encoding: str) -> None:
    if encoding not in bombs:
        pytest.skip("no brotli decoder with bounded output installed")
    header = "deflate" if encoding == "raw-deflate" else encoding
    serve_encoded(site, "/bomb", bombs[encoding], header)
    error, elapsed, growth = measured_error(site.url("/bomb"), CAPPED)
    print(f"{encoding} bomb: {elapsed:.3f}s, peak memory growth {growth / 2**20:.2f} MiB")
    assert f"larger than {CAP} bytes once decompressed" in error.reason
    assert elapsed < 2
    assert growth < 8 * 2**20


ENCODINGS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send it
    ("gzip, gzip", lambda data: gzip.compress(gzip.compress(data))),
    ("deflate, gzip", lambda data: gzip.compress(zlib.compress(data))),
    ("GZIP , identity", gzip.compress),
]
if body_module._BROTLI is not None:
    brotli_compress = body_module._BROTLI.compress
    ENCODINGS += [("br", brotli_compress), ("br, gzip", lambda data: gzip.compress(brotli_compress(data)))]


@pytest.mark.parametrize(("encoding", "encode"), ENCODINGS)
def test_encoded_body_under_cap_decoded(site: LocalSite, encoding: str, encode: Callable[[bytes], bytes]) -> None:
    body = b"".join(b"<item>%d</item>\n" % n for n in range(60_000))  # ~1 MB, compressible
    serve_encoded(site, "/feed.xml", encode(body), encoding)
    result = fetch(site.url("/feed.xml"), CAPPED.model_copy(update={"max_response_bytes": len(body)}))
    assert result.content == body


def test_chunked_body_without_length_over_cap(site: LocalSite) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
    site.route("/chunked", lambda request: write_raw(request, head, endless(chunk)))
    error, elapsed, growth = measured_error(site.url("/chunked"), CAPPED)
    print(f"chunked: {elapsed:.3f}s, peak memory growth {growth / 2**20:.2f} MiB")
    assert f"larger than {CAP} bytes" in error.reason
    assert elapsed < 2 and growth < 8 * 2**20


def test_close_delimited_body_over_cap(site: LocalSite) -> None:
    head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    site.route("/stream", lambda request: write_raw(request, head, endless(b"y" * 65536)))
    error, elapsed, growth = measured_error(site.url("/stream"), CAPPED)
    print(f"close-delimited: {elapsed:.3f}s, peak memory growth {growth / 2**20:.2f} MiB")
    assert f"larger than {CAP} bytes" in error.reason
    assert elapsed < 2 and growth < 8 * 2**20


def test_compressed_stream_that_inflates_to_nothing_is_capped(site: LocalSite) -> None:
    """Empty stored blocks forever: no output at all, so only the cap on bytes received stops it."""
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03"
    head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n\r\n" + gzip_header
    site.route("/empty", lambda request: write_raw(request, head, endless(b"\x00\x00\x00\xff\xff" * 13107)))
    error, elapsed = timed_error(site.url("/empty"), CAPPED)
    assert f"larger than {CAP} bytes" in error.reason
    assert elapsed < 2


def test_too_many_nested_encodings_refused(site: LocalSite) -> None:
    body = b"<rss/>"
    for _ in range(4):
        body = gzip.compress(body)
    serve_encoded(site, "/deep", body, "gzip, gzip, gzip, gzip")
    assert "too many content encodings" in fetch_error(site.url("/deep")).reason


UNSUPPORTED = ["zstd", "compress", "x-something"] + ([] if body_module._BROTLI else ["br"])


@pytest.mark.parametrize("encoding", UNSUPPORTED)
def test_unsupported_encoding_refused_not_decoded(site: LocalSite, encoding: str) -> None:
    serve_encoded(site, "/odd", b"\x8b\x7f" * 1000, encoding)
    assert f"unsupported Content-Encoding '{encoding}'" in fetch_error(site.url("/odd")).reason


def test_accept_encoding_offers_only_what_is_decoded_with_bounds(site: LocalSite) -> None:
    site.put("/feed.xml", "<rss/>")
    fetch(site.url("/feed.xml"))
    sent = site.requests[-1][1]["Accept-Encoding"]
    assert sent == ACCEPT_ENCODING
    assert ("br" in sent) == (body_module._BROTLI is not None)
    assert "zstd" not in sent


def test_corrupt_gzip_is_a_fetch_error(site: LocalSite) -> None:
    serve_encoded(site, "/bad", b"\x1f\x8b\x08\x00garbage-not-deflate" * 10, "gzip")
    assert "cannot decode the response body" in fetch_error(site.url("/bad")).reason


# --- Retry-After -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("-5", None),
        ("99999999999", MAX_RETRY_AFTER),
        ("9" * 60, MAX_RETRY_AFTER),
        ("9" * 5000, None),  # absurdly long: ignored
        ("1e9", None),
        ("soon", None),
        ("", None),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        ("Mon, 99 Foo 2024 25:61:61 GMT", None),
    ],
)
def test_retry_after_values_are_clamped(value: str, expected: float | None) -> None:
    assert fetch_module._parse_retry_after(value) == expected


def test_huge_retry_after_from_server_clamped_to_a_day(site: LocalSite) -> None:
    site.route("/busy", respond(429, {"Retry-After": "31536000000"}))
    error = fetch_error(site.url("/busy"))
    assert error.status == 429 and error.retry_after == MAX_RETRY_AFTER
