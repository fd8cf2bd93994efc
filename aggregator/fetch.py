"""Fetch stage: the one HTTP client through which the aggregator reaches the network.

feedparser and trafilatura are only ever handed bytes fetched here, so timeouts, the response size
cap, redirect vetting, egress control and politeness limits are enforced in a single place.

Feed and article URLs are chosen by whoever writes the feed, so every byte that comes back is
treated as hostile:

* Egress: only http and https, and every TCP connection, for the first request and for every
  redirect hop, goes through :class:`GuardedBackend`. It resolves the host itself and connects to the
  vetted IP literal, so the address checked is the address used (no DNS-rebinding gap). Loopback,
  private, link-local, CGNAT, multicast, reserved and similar addresses are refused unless they lie in
  one of ``Settings.allowed_networks``; cloud metadata addresses are refused unless listed there one by
  one. Proxies from the environment are ignored.
* Redirects: at most :data:`MAX_REDIRECTS`, each hop re-vetted.
* Deadlines: connect and read timeouts, plus one budget of ``Settings.timeout`` seconds for the whole
  fetch (all hops and the body read), so a server trickling one byte a second is cut off.
* Size: the body is read raw and decoded here, incrementally and in bounded pieces, so the cap on the
  *decompressed* size holds for gzip, deflate and (when a bounded decoder is installed) brotli.
"""

from __future__ import annotations

import asyncio
import codecs
import contextvars
import functools
import importlib
import ipaddress
import math
import re
import socket
import ssl
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import Cookie, DefaultCookiePolicy
from types import ModuleType, TracebackType
from typing import Any, Protocol

# httpx imports its command-line client (click, rich, pygments: a tenth of a second at every start) when those
# are installed; this program never runs it, and httpx falls back to a stub when the import fails.
sys.modules.setdefault("httpx._main", None)

import httpcore  # noqa: E402
import httpx  # noqa: E402

from aggregator.config import Settings  # noqa: E402

MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 86400.0  # a server asking for a longer rest than a day is not taken at its word
MAX_CONTENT_ENCODINGS = 3  # "gzip, gzip" is decoded; a deeper stack is refused
_DECODE_PIECE = 64 * 1024  # most bytes any decoder produces per step, so inflating stays bounded
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECT_CODES = frozenset({301, 308})
_GONE_CODES = frozenset({404, 410})
_RETRY_AFTER_CODES = frozenset({429, 503})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, application/json;q=0.7, */*;q=0.1"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressCheck = Callable[[IPAddress], bool]


class FetchError(Exception):
    """A fetch that produced no usable response; ``str()`` reads ``fetch: <reason>: <url>``."""

    def __init__(
        self,
        reason: str,
        url: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(f"fetch: {reason}: {url}")
        self.reason = reason
        self.url = url
        self.status = status
        self.retry_after = retry_after  # seconds the server asked us to wait (429/503)
        self.permanent = permanent  # the resource is gone (404/410): retrying soon is pointless


class EgressRefused(Exception):
    """Raised by :class:`GuardedBackend` instead of opening a connection it must not open."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class FetchResult:
    url: str  # final URL after redirects
    status: int
    content: bytes  # b"" on 304
    headers: dict[str, str]  # lower-case keys
    etag: str | None
    last_modified: str | None
    not_modified: bool
    permanent_redirect: str | None  # the new URL when every hop was 301/308
    elapsed: float  # seconds, including waits for a concurrency slot


@dataclass
class _HostSlots:
    semaphore: asyncio.Semaphore
    users: int = 0  # fetches holding or waiting for a slot


@dataclass
class _Response:
    """What one hop yields: status, headers and (for a 2xx) the capped body."""

    status: int
    headers: httpx.Headers
    content: bytes = b""


ContentCheck = Callable[[httpx.Headers, str], None]


# --- Egress control --------------------------------------------------------------------------------

# IPv4 ranges that are not publicly routable (IANA special-purpose registry). Listed explicitly rather
# than taken from ipaddress.is_global, whose answers have changed between Python releases.
_NON_PUBLIC_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", including the unspecified address 0.0.0.0
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, home of cloud metadata services (169.254.169.254)
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including the broadcast address 255.255.255.255
    )
)
# Public IPv6 unicast lives in 2000::/3; everything outside it (loopback, ULA fc00::/7, link-local
# fe80::/10, site-local, multicast ff00::/8, unspecified, reserved) is refused, except the forms below
# that embed an IPv4 address, which are judged by that address.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NON_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments (Teredo, 2001::/32, is judged by its embedded addresses)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)
_NAT64_V6 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: reaches the embedded IPv4
_COMPATIBLE_V6 = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible form


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo)."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if (address in _COMPATIBLE_V6 and int(address) > 1) or address in _NAT64_V6:  # :: and ::1 are themselves
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo  # (server, client)
    return ()


def is_public_address(address: IPAddress) -> bool:
    """Whether connecting to ``address`` reaches the public internet rather than a private network."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded:
            return all(is_public_address(inner) for inner in embedded)
        return address in _GLOBAL_UNICAST_V6 and not any(address in net for net in _NON_PUBLIC_V6)
    return not any(address in net for net in _NON_PUBLIC_V4)


# Cloud metadata and credential endpoints: reaching one from a server hands out the machine's secrets.
# Refused even inside an allowed network (169.254.0.0/16 for a link-local device, say); only an entry
# naming the very address opens one.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean, Hetzner and others
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS Pod Identity agent
        "169.254.0.23",  # Tencent Cloud
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
        "168.63.129.16",  # Azure WireServer: a public address, reachable only from inside Azure
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
        "fd20:ce::254",  # GCP metadata over IPv6
    )
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_address_check(networks: Iterable[str | IPNetwork]) -> AddressCheck:
    """The address check for ``Settings.allowed_networks``: public addresses, plus those in ``networks``.

    A cloud metadata address (:data:`METADATA_ADDRESSES`) passes only when ``networks`` names it exactly
    (``169.254.169.254`` or ``169.254.169.254/32``), never through a range that contains it. IPv6 forms
    that embed IPv4 addresses (mapped, NAT64, 6to4, Teredo) are judged by those addresses.
    """
    allowed = tuple(ipaddress.ip_network(net, strict=False) for net in networks)
    named = frozenset(net.network_address for net in allowed if net.num_addresses == 1)

    def address_allowed(address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded:
                return all(address_allowed(inner) for inner in embedded)
        if address in METADATA_ADDRESSES:
            return address in named
        return is_public_address(address) or any(address in net for net in allowed)

    return address_allowed


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for ``host``, in its order, without duplicates.

    Numeric hosts in any form the resolver accepts (``2130706433``, ``0x7f.1``, ``127.1``) come back
    as ordinary IP literals, so they are vetted like any other address.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _refusal(address: IPAddress) -> str:
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else ()
    shown = f"{address} ({', '.join(map(str, embedded))})" if embedded else str(address)
    if METADATA_ADDRESSES.intersection((address, *embedded)):
        return f"refused to connect to cloud metadata address {shown} (not listed exactly in allowed_networks)"
    return f"refused to connect to private address {shown} (not in allowed_networks)"


# The (host, port) the request being sent names; GuardedBackend connects nowhere else. A context
# variable reaches the connect call because httpcore opens connections in the requesting task.
_ORIGIN: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("fetch_origin", default=None)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that vets the address of every TCP connection it opens.

    It resolves the host itself, refuses the connection when any address is not allowed (before
    connecting anywhere), and hands the inner backend the vetted IP literal, so the address checked is
    the address connected to. TLS is layered on by httpcore afterwards with the original host name as
    SNI and for certificate checks.
    """

    def __init__(self, address_allowed: AddressCheck, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.address_allowed = address_allowed
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        origin = _ORIGIN.get()
        if origin is not None and (host.lower(), port) != origin:
            raise EgressRefused(f"refused to connect to {host}:{port}, not the host and port of the URL")
        try:
            async with asyncio.timeout(timeout):
                candidates = await resolve_host(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        except UnicodeError:  # the idna codec refuses a label that is empty or over 63 characters
            raise httpcore.ConnectError(f"cannot resolve {host}: not a valid host name") from None
        addresses = []
        for candidate in candidates:
            address = _parse_address(candidate)
            if address is None:
                raise EgressRefused(f"refused to connect to unrecognised address {candidate!r}")
            if not self.address_allowed(address):
                raise EgressRefused(_refusal(address))
            addresses.append(address)
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("refused to connect to a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once: loading the CA bundle costs tens of milliseconds."""
    return httpx.create_ssl_context()


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, over an httpcore pool whose every connection goes through GuardedBackend."""

    def __init__(self, backend: GuardedBackend) -> None:
        ssl_context = _shared_ssl_context()
        limits = httpx.Limits()
        super().__init__(verify=ssl_context, limits=limits)
        if not isinstance(self._pool, httpcore.AsyncConnectionPool):  # pragma: no cover - httpx internals moved
            raise RuntimeError("httpx transport layout changed: cannot install the egress guard")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def _check_url(url: str, address_allowed: AddressCheck) -> httpx.URL:
    """Vet a URL before anything is sent to it: the first one and every redirect hop.

    A host written as a plain IP literal is refused here already; every other host (names, and
    numeric forms such as ``2130706433``) is vetted on the resolved address at connect time.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(f"invalid URL ({exc})", url) from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme {parsed.scheme or '(none)'!r}, only http and https", url)
    if not parsed.host:
        raise FetchError("URL has no host", url)
    literal = _parse_address(parsed.host)
    if literal is not None and not address_allowed(literal):
        raise FetchError(_refusal(literal), url)
    return parsed


# --- Bounded content decoding ----------------------------------------------------------------------


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class _ZlibDecoder:
    """gzip, or HTTP "deflate" (zlib-wrapped, or raw as some servers send it), inflated in bounded steps.

    Anything after the end of the first compressed stream is ignored, as httpx and browsers do.
    """

    def __init__(self, gzip: bool) -> None:
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16) if gzip else None
        self._head = b""  # "deflate": the first bytes, until there are enough to tell zlib from raw

    def _start(self, data: bytes) -> bytes:
        data, self._head = self._head + data, b""
        if len(data) < 2:
            self._head = data
            return b""
        zlib_header = data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and int.from_bytes(data[:2], "big") % 31 == 0
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        return data

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inflater is None:
            data = self._start(data)
            if self._inflater is None:
                return
        inflater = self._inflater
        while not inflater.eof:
            piece = inflater.decompress(data, _DECODE_PIECE)
            data = inflater.unconsumed_tail
            if piece:
                yield piece
            if not data and len(piece) < _DECODE_PIECE:
                break  # all input used and nothing held back: wait for more

    def flush(self) -> Iterator[bytes]:
        if self._inflater is not None and not self._inflater.eof:
            # Every input byte went through decompress() already, so this is at most the window.
            tail = self._inflater.flush()
            if tail:
                yield tail


class _BrotliDecoder:
    """brotli, decoded in bounded steps (needs the ``output_buffer_limit`` of brotli >= 1.2)."""

    def __init__(self, module: ModuleType) -> None:
        self._decompressor = module.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        decompressor = self._decompressor
        if decompressor.is_finished():
            return  # trailing bytes after the end of the stream are ignored, as for gzip
        piece = decompressor.process(data, output_buffer_limit=_DECODE_PIECE)
        while piece:
            yield piece
            # The decoder may hold more output for input it already took: drain it before new input.
            piece = decompressor.process(b"", output_buffer_limit=_DECODE_PIECE)

    def flush(self) -> Iterator[bytes]:
        return iter(())


def _bounded_brotli() -> ModuleType | None:
    """A brotli module whose decoder can limit its output per step (brotli >= 1.2), or None.

    Without one, ``br`` is not offered in Accept-Encoding, and a server sending it anyway is refused
    rather than decoded in one unbounded step.
    """
    for name in ("brotli", "brotlicffi"):
        try:
            module = importlib.import_module(name)
            decompressor = module.Decompressor()
            decompressor.process(b"", output_buffer_limit=1)
            decompressor.can_accept_more_data()
        except Exception:  # not installed, or an older API without bounded output
            continue
        return module
    return None


_BROTLI = _bounded_brotli()
ACCEPT_ENCODING = "gzip, deflate, br" if _BROTLI else "gzip, deflate"
_DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error,)
if _BROTLI is not None and isinstance(getattr(_BROTLI, "error", None), type):
    _DECODE_ERRORS += (_BROTLI.error,)


def _decoder(encoding: str) -> _Decoder | None:
    if encoding in ("gzip", "x-gzip"):
        return _ZlibDecoder(gzip=True)
    if encoding == "deflate":
        return _ZlibDecoder(gzip=False)
    if encoding == "br" and _BROTLI is not None:
        return _BrotliDecoder(_BROTLI)
    return None


def _decoders(headers: httpx.Headers, url: str) -> list[_Decoder]:
    """Decoders for Content-Encoding, outermost first (the coding listed last was applied last)."""
    codings = [c.strip().lower() for c in headers.get("content-encoding", "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > MAX_CONTENT_ENCODINGS:
        raise FetchError(f"too many content encodings ({len(codings)}, at most {MAX_CONTENT_ENCODINGS})", url)
    decoders = []
    for coding in reversed(codings):
        decoder = _decoder(coding)
        if decoder is None:
            raise FetchError(f"unsupported Content-Encoding {coding!r}", url)
        decoders.append(decoder)
    return decoders


def _decode(decoders: list[_Decoder], data: bytes, *, final: bool = False) -> Iterator[bytes]:
    """Push ``data`` through the decoder chain lazily, so no stage ever holds more than one piece."""
    if not decoders:
        if data:
            yield data
        return
    outer, rest = decoders[0], decoders[1:]
    for piece in outer.feed(data):
        yield from _decode(rest, piece)
    if final:
        for piece in outer.flush():
            yield from _decode(rest, piece)
        yield from _decode(rest, b"", final=True)


def _too_large(max_bytes: int, url: str, detail: str = "") -> FetchError:
    return FetchError(f"response larger than {max_bytes} bytes{detail}", url)


async def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    """Read the raw body and decode it here, so ``max_bytes`` bounds the decompressed size and memory.

    The compressed size counts against the cap too: a stream that inflates to nothing cannot be
    used to keep the connection busy for free.
    """
    length = (response.headers.get("content-length") or "").strip()
    if length.isascii() and length.isdigit() and (len(length) > 19 or int(length) > max_bytes):
        raise _too_large(max_bytes, url, f" (Content-Length {length[:24]})")
    decoders = _decoders(response.headers, url)
    body = bytearray()
    received = 0
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(max_bytes, url)
            for piece in _decode(decoders, chunk):
                if len(body) + len(piece) > max_bytes:
                    raise _too_large(max_bytes, url, " once decompressed" if decoders else "")
                body += piece
        for piece in _decode(decoders, b"", final=True):
            if len(body) + len(piece) > max_bytes:
                raise _too_large(max_bytes, url, " once decompressed")
            body += piece
    except _DECODE_ERRORS as exc:
        raise FetchError(f"cannot decode the response body ({exc})", url) from None
    return bytes(body)


# --- Responses -------------------------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _require_html(headers: httpx.Headers, url: str) -> None:
    """Refuse bodies that are clearly not pages (PDFs, images, feeds) before downloading them."""
    media = _media_type(headers.get("content-type"))
    if media and media not in _HTML_TYPES:
        raise FetchError(f"not an HTML page (Content-Type {media})", url)


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now, clamped to [0, one day]: delta-seconds or an HTTP date.

    Anything else (negative numbers, garbage, absurdly long values) is ignored: None.
    """
    value = (value or "").strip()
    if not value or len(value) > 64:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)  # a long digit string becomes a huge float or inf, clamped below
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _status_error(response: _Response, url: str) -> FetchError:
    status = response.status
    phrase = httpx.codes.get_reason_phrase(status)  # "" for codes it does not know
    retry_after = _parse_retry_after(response.headers.get("retry-after")) if status in _RETRY_AFTER_CODES else None
    return FetchError(
        f"HTTP {status} {phrase}".rstrip(),
        url,
        status=status,
        retry_after=retry_after,
        permanent=status in _GONE_CODES,
    )


def _network_reason(exc: httpx.HTTPError) -> str:
    """A short, readable reason for a transport failure (no traceback, no nested reprs)."""
    detail = (str(exc) or type(exc).__name__)[:200]
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({detail})"
    if isinstance(exc, httpx.DecodingError):
        return f"cannot decode the response body ({detail})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"server broke the HTTP protocol ({detail})"
    return f"network error ({detail})"


def _redirect_target(current: httpx.URL, response: _Response, address_allowed: AddressCheck) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise FetchError(f"HTTP {response.status} redirect without a Location header", str(current))
    try:
        joined = str(current.join(location))
    except httpx.InvalidURL as exc:
        raise FetchError(f"invalid redirect Location ({exc})", str(current)) from None
    return _check_url(joined, address_allowed)


class _RefuseCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return False


class _Budget:
    """The time one fetch may spend on the network, shared by all of its redirect hops."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.spent = 0.0

    @property
    def left(self) -> float:
        return self.seconds - self.spent


class Fetcher:
    """Async HTTP client with the project's limits. Use it within one event loop and close it.

    ``address_allowed`` decides which IP addresses may be connected to; by default public ones and those in
    ``settings.allowed_networks`` (:func:`allowed_address_check`). A custom
    ``transport`` (tests) replaces the guarded one, so then only IP literals in URLs are vetted.
    """

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        address_allowed: AddressCheck | None = None,
    ) -> None:
        self.settings = settings
        if address_allowed is None:
            address_allowed = allowed_address_check(settings.allowed_networks)
        self.address_allowed = address_allowed
        if transport is None:
            transport = _GuardedTransport(GuardedBackend(address_allowed))
        self._client = httpx.AsyncClient(
            transport=transport,
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(settings.timeout),
            # Followed by hand in _fetch, so every hop goes through _check_url.
            follow_redirects=False,
            # No proxies (nor .netrc) from the environment: a proxy would connect on our behalf, out of
            # reach of the egress guard.
            trust_env=False,
        )
        # No cookies kept: a long-lived fetcher would otherwise hoard every cookie any feed sets.
        self._client.cookies.jar.set_policy(_RefuseCookies())
        self._global = asyncio.Semaphore(max(1, settings.max_concurrency))
        # Per host being fetched from: created on first use, dropped when its last fetch ends (see _host_slot).
        self._per_host: dict[str, _HostSlots] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
        max_bytes: int | None = None,
    ) -> FetchResult:
        """GET ``url``; a 304 comes back as ``not_modified``, HTTP errors and failures raise FetchError."""
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        limit = self.settings.max_response_bytes if max_bytes is None else max_bytes
        return await self._fetch(url, headers, limit, None)

    async def fetch_feed(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        return await self.fetch(url, etag=etag, last_modified=last_modified, accept=FEED_ACCEPT)

    async def fetch_page(self, url: str) -> FetchResult:
        """GET an article page; raises FetchError when the server says it is not HTML."""
        headers = {"Accept": PAGE_ACCEPT}
        return await self._fetch(url, headers, self.settings.max_response_bytes, _require_html)

    async def _fetch(
        self, url: str, headers: dict[str, str], max_bytes: int, check: ContentCheck | None
    ) -> FetchResult:
        started = time.monotonic()
        target = _check_url(url, self.address_allowed)
        budget = _Budget(self.settings.timeout)
        redirects: list[int] = []
        while True:
            response = await self._hop(target, headers, max_bytes, check, budget)
            if response.status not in _REDIRECT_CODES:
                break
            redirects.append(response.status)
            if len(redirects) > MAX_REDIRECTS:
                raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})", url)
            target = _redirect_target(target, response, self.address_allowed)
        final = str(target)
        if response.status >= 400:
            raise _status_error(response, final)
        if response.status >= 300 and response.status != 304:
            raise FetchError(f"unexpected HTTP {response.status}", final, status=response.status)
        return self._result(final, response, headers, redirects, time.monotonic() - started)

    @staticmethod
    def _result(
        url: str, response: _Response, sent: dict[str, str], redirects: list[int], elapsed: float
    ) -> FetchResult:
        not_modified = response.status == 304
        # A 304 may omit the validators; the ones we sent are still the current ones then.
        etag = response.headers.get("etag") or (sent.get("If-None-Match") if not_modified else None)
        modified = response.headers.get("last-modified") or (sent.get("If-Modified-Since") if not_modified else None)
        # Only reached when the final URL passed every check and answered, so it is safe to remember.
        permanent = bool(redirects) and all(code in _PERMANENT_REDIRECT_CODES for code in redirects)
        return FetchResult(
            url=url,
            status=response.status,
            content=response.content,
            headers={name.lower(): value for name, value in response.headers.items()},
            etag=etag,
            last_modified=modified,
            not_modified=not_modified,
            permanent_redirect=url if permanent else None,
            elapsed=elapsed,
        )

    @asynccontextmanager
    async def _host_slot(self, host: str) -> AsyncIterator[None]:
        """One of the host's per_host_limit slots; a host nobody is fetching from keeps no entry (feeds and
        pages name a new host every day, and the table would otherwise grow with every one ever seen)."""
        entry = self._per_host.get(host)
        if entry is None:
            entry = self._per_host[host] = _HostSlots(asyncio.Semaphore(max(1, self.settings.per_host_limit)))
        entry.users += 1
        try:
            async with entry.semaphore:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._per_host[host]

    async def _hop(
        self, url: httpx.URL, headers: dict[str, str], max_bytes: int, check: ContentCheck | None, budget: _Budget
    ) -> _Response:
        """One request under the concurrency limits, within what is left of the fetch's time budget.

        Waiting for a concurrency slot does not count against the budget; connecting, waiting for
        the answer and reading the body, on every hop, do.
        """
        # Host slot first: a task queued behind a busy host must not hold one of the global slots.
        async with self._host_slot(url.host), self._global:
            begun = time.monotonic()
            try:
                if budget.left <= 0:
                    raise TimeoutError
                # httpx timeouts are per operation; only a total deadline stops a server that
                # trickles one byte just inside each read timeout.
                async with asyncio.timeout(budget.left):
                    return await self._exchange(url, headers, max_bytes, check)
            except (TimeoutError, httpx.TimeoutException):
                raise FetchError(f"timed out after {budget.seconds:g}s", str(url)) from None
            except EgressRefused as exc:
                raise FetchError(exc.reason, str(url)) from None
            except httpx.InvalidURL as exc:
                # httpx works out the next URL of every 3xx even when not following it, and some
                # Locations (``javascript:alert(1)``) make it raise this instead of an HTTPError.
                raise FetchError(f"invalid redirect Location ({exc})", str(url)) from None
            except httpx.HTTPError as exc:
                raise FetchError(_network_reason(exc), str(url)) from None
            finally:
                budget.spent += time.monotonic() - begun

    async def _exchange(
        self, url: httpx.URL, headers: dict[str, str], max_bytes: int, check: ContentCheck | None
    ) -> _Response:
        request = self._client.build_request("GET", url, headers=headers)
        origin = _ORIGIN.set((url.raw_host.decode("ascii").lower(), url.port or _DEFAULT_PORTS[url.scheme]))
        try:
            response = await self._client.send(request, stream=True)
        finally:
            _ORIGIN.reset(origin)
        try:
            result = _Response(response.status_code, response.headers)
            # Only a success has a body worth reading; redirects, 304s and errors are headers only.
            if 200 <= response.status_code < 300:
                if check is not None:
                    check(response.headers, str(url))
                result.content = await _read_capped(response, max_bytes, str(url))
            return result
        finally:
            await response.aclose()


# A BOM is authoritative (it beats the header, as in browsers).
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
# Browsers read these labels as windows-1252, and pages labelled latin-1 rely on its curly quotes.
_WINDOWS_1252_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii"})


def _codec(label: str | None) -> str | None:
    """A Python codec name for a charset label, or None when the label is unknown."""
    if not label:
        return None
    label = label.strip().lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _meta_charset(content: bytes) -> str | None:
    match = _META_CHARSET.search(content[:2048])
    if not match:
        return None
    label = match.group(1).decode("ascii").lower()
    # The tag was readable as ASCII, so the bytes cannot really be UTF-16 (the HTML spec's rule).
    return "utf-8" if label.startswith("utf-16") else label


def decode_html(result: FetchResult) -> str:
    """Page bytes to text: BOM, else Content-Type charset, else <meta> charset, else UTF-8."""
    content = result.content
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, errors="replace")
    header = _HEADER_CHARSET.search(result.headers.get("content-type", ""))
    for label in (header.group(1) if header else None, _meta_charset(content)):
        encoding = _codec(label)
        if encoding:
            return content.decode(encoding, errors="replace")
    return content.decode("utf-8", errors="replace")
