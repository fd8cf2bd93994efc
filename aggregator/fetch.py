"""Fetch stage: the one HTTP client through which the aggregator reaches the network.

feedparser and trafilatura are only ever handed bytes fetched here, so timeouts, the response size
cap, redirect vetting, egress control and politeness limits are enforced in a single place.

Feed and article URLs are chosen by whoever writes the feed, so every byte that comes back is
treated as hostile:

* Egress: only http and https, and every TCP connection, for the first request and for every
  redirect hop, goes through :class:`aggregator.egress.GuardedBackend`, which connects only to vetted
  addresses (see that module). Proxies from the environment are ignored.
* Redirects: at most :data:`MAX_REDIRECTS`, each hop re-vetted.
* Deadlines: connect and read timeouts, plus one budget of ``Settings.timeout`` seconds for the whole
  fetch (all hops and the body read), so a server trickling one byte a second is cut off.
* Size: the body is read raw and decoded by :mod:`aggregator.body`, incrementally and in bounded
  pieces, so the cap on the *decompressed* size holds whatever the Content-Encoding.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

# httpx imports its command-line client (click, rich, pygments: a tenth of a second at every start) when those
# are installed; this program never runs it, and httpx falls back to a stub when the import fails.
sys.modules.setdefault("httpx._main", None)

import httpx  # noqa: E402

from aggregator.body import ACCEPT_ENCODING, BodyRefused, decode_html, read_capped  # noqa: E402
from aggregator.config import Settings  # noqa: E402
from aggregator.egress import (  # noqa: E402
    METADATA_ADDRESSES,
    REQUEST_ORIGIN,
    AddressCheck,
    EgressRefused,
    GuardedBackend,
    GuardedTransport,
    allowed_address_check,
    is_public_address,
    parse_address,
    refusal_reason,
    resolve_host,
)

# decode_html, and the egress names, live in body and egress; they stay importable from here.
__all__ = [
    "ACCEPT_ENCODING",
    "FEED_ACCEPT",
    "MAX_REDIRECTS",
    "MAX_RETRY_AFTER",
    "METADATA_ADDRESSES",
    "PAGE_ACCEPT",
    "EgressRefused",
    "FetchError",
    "FetchResult",
    "Fetcher",
    "GuardedBackend",
    "allowed_address_check",
    "decode_html",
    "is_public_address",
    "resolve_host",
]

MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 86400.0  # a server asking for a longer rest than a day is not taken at its word
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
    literal = parse_address(parsed.host)
    if literal is not None and not address_allowed(literal):
        raise FetchError(refusal_reason(literal), url)
    return parsed


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


def _basic_authorization(url: httpx.URL) -> str:
    token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode("ascii")
    return f"Basic {token}"


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

    Requests go straight to the transport, not through an ``httpx.AsyncClient``: the client's redirect
    following, authentication and cookie handling are all unused here (redirects are followed by hand in
    :meth:`_fetch`, so every hop is vetted; no cookie is ever kept or sent), and skipping them saves a good
    share of the CPU time a page costs.

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
        # Nothing from the environment either (httpx's client reads proxies and .netrc there): a proxy would
        # connect on our behalf, out of reach of the egress guard.
        self._transport = transport if transport is not None else GuardedTransport(GuardedBackend(address_allowed))
        # The headers httpx's client would send, but never a cookie: a long-lived fetcher would otherwise hoard
        # every cookie any feed sets.
        self._headers = {"Accept": "*/*", "Accept-Encoding": ACCEPT_ENCODING, "Connection": "keep-alive",
                         "User-Agent": settings.user_agent}
        # httpcore's connect, read, write and pool timeouts, which the client would attach to each request.
        self._extensions = {"timeout": httpx.Timeout(settings.timeout).as_dict()}
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
        await self._transport.aclose()

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
            except (EgressRefused, BodyRefused) as exc:
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
        sent = {**self._headers, **headers}
        if url.userinfo:  # a private feed's credentials in its address go to that hop alone, as httpx's client did
            sent["Authorization"] = _basic_authorization(url)
        request = httpx.Request("GET", url, headers=sent, extensions=self._extensions)
        origin = REQUEST_ORIGIN.set((url.raw_host.decode("ascii").lower(), url.port or _DEFAULT_PORTS[url.scheme]))
        try:
            response = await self._transport.handle_async_request(request)
        finally:
            REQUEST_ORIGIN.reset(origin)
        try:
            result = _Response(response.status_code, response.headers)
            # Only a success has a body worth reading; redirects, 304s and errors are headers only.
            if 200 <= response.status_code < 300:
                if check is not None:
                    check(response.headers, str(url))
                result.content = await read_capped(response, max_bytes)
            return result
        finally:
            await response.aclose()
