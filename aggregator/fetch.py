"""Fetch stage: the one HTTP client through which the aggregator reaches the network.

feedparser and trafilatura are only ever handed bytes fetched here, so timeouts, the response size
cap, redirect vetting and politeness limits are enforced in a single place.
"""

from __future__ import annotations

import asyncio
import codecs
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpx

from aggregator.config import Settings

MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECT_CODES = frozenset({301, 308})
_GONE_CODES = frozenset({404, 410})
_RETRY_AFTER_CODES = frozenset({429, 503})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

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
class _Response:
    """What one hop yields: status, headers and (for a 2xx) the capped body."""

    status: int
    headers: httpx.Headers
    content: bytes = b""


ContentCheck = Callable[[httpx.Headers, str], None]


def _check_url(url: str) -> httpx.URL:
    """Vet a URL before anything is sent to it: the first one and every redirect hop."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(f"invalid URL ({exc})", url) from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme {parsed.scheme or '(none)'!r}, only http and https", url)
    if not parsed.host:
        raise FetchError("URL has no host", url)
    # Private-address check belongs here: unless settings.allow_private_networks, resolve the host and
    # refuse loopback, private and link-local addresses, so a feed or a redirect cannot point the
    # fetcher at the local network. (The tests and the demo serve from 127.0.0.1.)
    return parsed


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _require_html(headers: httpx.Headers, url: str) -> None:
    """Refuse bodies that are clearly not pages (PDFs, images, feeds) before downloading them."""
    media = _media_type(headers.get("content-type"))
    if media and media not in _HTML_TYPES:
        raise FetchError(f"not an HTML page (Content-Type {media})", url)


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: either delta-seconds or an HTTP date."""
    value = (value or "").strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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


def _redirect_target(current: httpx.URL, response: _Response) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise FetchError(f"HTTP {response.status} redirect without a Location header", str(current))
    try:
        joined = str(current.join(location))
    except httpx.InvalidURL as exc:
        raise FetchError(f"invalid redirect Location ({exc})", str(current)) from None
    return _check_url(joined)


async def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    """Stream the body, counting decompressed bytes, so a small gzip bomb cannot fill memory."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"response larger than {max_bytes} bytes", url)
        chunks.append(chunk)
    return b"".join(chunks)


class Fetcher:
    """Async HTTP client with the project's limits. Use it within one event loop and close it."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._client = httpx.AsyncClient(
            transport=transport,
            headers={"User-Agent": settings.user_agent},
            timeout=httpx.Timeout(settings.timeout),
            # Followed by hand in _fetch, so every hop goes through _check_url.
            follow_redirects=False,
        )
        self._global = asyncio.Semaphore(max(1, settings.max_concurrency))
        # One per host seen, created on first use; bounded by the number of distinct hosts fetched.
        self._per_host: dict[str, asyncio.Semaphore] = {}

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
        target = _check_url(url)
        redirects: list[int] = []
        while True:
            response = await self._hop(target, headers, max_bytes, check)
            if response.status not in _REDIRECT_CODES:
                break
            redirects.append(response.status)
            if len(redirects) > MAX_REDIRECTS:
                raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})", url)
            target = _redirect_target(target, response)
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

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        slot = self._per_host.get(host)
        if slot is None:
            slot = self._per_host[host] = asyncio.Semaphore(max(1, self.settings.per_host_limit))
        return slot

    async def _hop(
        self, url: httpx.URL, headers: dict[str, str], max_bytes: int, check: ContentCheck | None
    ) -> _Response:
        """One request under the concurrency limits and a total deadline covering the body read."""
        timeout = self.settings.timeout
        # Host slot first: a task queued behind a busy host must not hold one of the global slots.
        async with self._host_slot(url.host), self._global:
            try:
                # httpx timeouts are per operation; only a total deadline stops a server that
                # trickles one byte just inside each read timeout.
                async with asyncio.timeout(timeout):
                    return await self._exchange(url, headers, max_bytes, check)
            except (TimeoutError, httpx.TimeoutException):
                raise FetchError(f"timed out after {timeout:g}s", str(url)) from None
            except httpx.HTTPError as exc:
                raise FetchError(_network_reason(exc), str(url)) from None

    async def _exchange(
        self, url: httpx.URL, headers: dict[str, str], max_bytes: int, check: ContentCheck | None
    ) -> _Response:
        request = self._client.build_request("GET", url, headers=headers)
        response = await self._client.send(request, stream=True)
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
