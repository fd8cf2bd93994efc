"""Parse stage: feed bytes to entries with a stable identity, a canonical URL and a UTC time.

feedparser reads RSS 0.9x/1.0/2.0 and Atom; JSON Feed is read here. feedparser is handed bytes in a
``BytesIO`` with the response headers, never a string (which it may take for a file path or a URL).
"""

from __future__ import annotations

import calendar
import hashlib
import html
import io
import json
import logging
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

import feedparser
from courlan import normalize_url

log = logging.getLogger(__name__)

JSON_FEED_TYPES = ("application/feed+json", "application/json")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"[ \t\r\f\v]+")
_BLOCK = re.compile(r"</?(p|div|br|li|h[1-6]|blockquote|tr|section|article)\b[^>]*>", re.I)
_DROP = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>", re.I | re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")


class ParseError(Exception):
    """The document is not a feed at all."""


@dataclass
class ParsedEntry:
    external_id: str
    title: str
    url: str | None
    canonical_url: str | None
    summary: str  # plain text
    content: str  # plain text of the entry's full content, when the feed carries it
    author: str | None
    published: datetime | None  # naive UTC


@dataclass
class ParsedFeed:
    title: str
    site_url: str | None
    format: str
    entries: list[ParsedEntry] = field(default_factory=list)
    warning: str | None = None  # why the feed is not well formed, when it still yielded entries
    skipped: int = 0  # entries that could not be read


def html_to_text(fragment: str | None) -> str:
    """Readable plain text of an HTML fragment, paragraphs kept on their own lines."""
    if not fragment:
        return ""
    text = _DROP.sub(" ", fragment)
    text = _BLOCK.sub("\n", text)
    text = html.unescape(_TAG.sub(" ", text))
    text = _CONTROL.sub("", text)
    lines = (_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """The URL with tracking parameters and fragment removed and host lower-cased; None if not http(s)."""
    if not url:
        return None
    url = url.strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # urljoin resolves dot segments, which courlan leaves alone.
    url = urljoin(url, parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        cleaned = normalize_url(url, strict=False)
    except (ValueError, AttributeError):
        return None
    parts = urlsplit(cleaned)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def parse_time(value: str | None) -> datetime | None:
    """A naive UTC datetime from an ISO 8601 or RFC 822 string; None when unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        pass
    try:
        return _utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


def _struct_time_to_utc(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return None


def _plausible(dt: datetime | None, now: datetime) -> datetime | None:
    """Drop times before 1995 or more than a day in the future: a feed's typo, not news."""
    if dt is None or dt.year < 1995 or (dt - now).total_seconds() > 86400:
        return None
    return dt


def entry_identity(guid: str | None, canonical: str | None, title: str, content: str) -> str:
    """GUID, else canonical link, else a hash of title and content."""
    if guid and guid.strip():
        return guid.strip()[:500]
    if canonical:
        return canonical[:500]
    digest = hashlib.sha256(f"{title}\n{content}".encode()).hexdigest()
    return f"sha256:{digest}"


def _build_entry(guid, link, title, summary_html, content_html, author, published, base, now) -> ParsedEntry:
    title = html_to_text(title).replace("\n", " ")
    summary = html_to_text(summary_html)
    content = html_to_text(content_html)
    if content and summary and content.startswith(summary[:200]) and len(summary) >= len(content):
        content = ""
    canonical = canonical_url(link, base)
    if not title and not summary and not content and not canonical:
        raise ValueError("entry has no title, link or text")
    return ParsedEntry(
        external_id=entry_identity(guid, canonical, title, summary or content),
        title=title[:1000],
        url=canonical and (urljoin(base, link.strip()) if base else link.strip()),
        canonical_url=canonical,
        summary=summary,
        content=content,
        author=(html_to_text(author) or None) if author else None,
        published=_plausible(published, now),
    )


def _feedparser_entry(entry, base: str | None, now: datetime) -> ParsedEntry:
    content_html = ""
    for part in entry.get("content") or []:
        if len(part.get("value") or "") > len(content_html):
            content_html = part.get("value") or ""
    # Reading a missing "updated_parsed" makes feedparser warn and alias it; ask only for keys that exist.
    keys = entry.keys()
    published = _struct_time_to_utc(
        (entry["published_parsed"] if "published_parsed" in keys else None)
        or (entry["updated_parsed"] if "updated_parsed" in keys else None)
    )
    return _build_entry(
        guid=entry.get("id"),
        link=entry.get("link"),
        title=entry.get("title") or "",
        summary_html=entry.get("summary") or "",
        content_html=content_html,
        author=entry.get("author"),
        published=published,
        base=base,
        now=now,
    )


def _looks_like_json_feed(content: bytes, content_type: str) -> bool:
    head = content.lstrip()[:200]
    return content_type.startswith(JSON_FEED_TYPES) or (head.startswith(b"{") and b"jsonfeed.org" in content[:2000])


def _parse_json_feed(content: bytes, base: str | None, now: datetime) -> ParsedFeed:
    try:
        doc = json.loads(content.decode("utf-8-sig", errors="replace"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ParseError(f"parse: not a JSON Feed: {exc}") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise ParseError("parse: JSON document is not a JSON Feed (no jsonfeed.org version)")
    feed = ParsedFeed(
        title=html_to_text(str(doc.get("title") or "")),
        site_url=canonical_url(doc.get("home_page_url") if isinstance(doc.get("home_page_url"), str) else None),
        format="json" + str(doc["version"]).rsplit("/", 1)[-1],
    )
    items = doc.get("items") if isinstance(doc.get("items"), list) else []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise ValueError("item is not an object")
            authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
            author = ", ".join(a.get("name", "") for a in authors if isinstance(a, dict) and a.get("name"))
            summary = item.get("summary") or ""
            content_html = item.get("content_html") or html.escape(item.get("content_text") or "")
            feed.entries.append(
                _build_entry(
                    guid=str(item["id"]) if item.get("id") is not None else None,
                    link=item.get("url") if isinstance(item.get("url"), str) else None,
                    title=str(item.get("title") or ""),
                    summary_html=html.escape(summary) if isinstance(summary, str) else "",
                    content_html=content_html if isinstance(content_html, str) else "",
                    author=author or None,
                    published=parse_time(item.get("date_published") or item.get("date_modified")),
                    base=base,
                    now=now,
                )
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            feed.skipped += 1
            log.debug("skipped a JSON Feed item: %s", exc)
    return feed


def _gunzip_if_compressed(content: bytes, limit: int) -> bytes:
    """Some servers send a .gz file as the body itself; inflate it, never past ``limit`` bytes."""
    if not content.startswith(b"\x1f\x8b"):
        return content
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(content, limit + 1)
    except zlib.error as exc:
        raise ParseError(f"parse: broken gzip body: {exc}") from None
    if len(data) > limit:
        raise ParseError(f"parse: gzip body inflates past {limit} bytes")
    return data


def parse_feed(
    content: bytes,
    headers: dict[str, str] | None = None,
    base_url: str | None = None,
    max_bytes: int = 15 * 1024 * 1024,
) -> ParsedFeed:
    """Entries of an RSS, Atom or JSON Feed document; raises ParseError when it is no feed at all."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    content = _gunzip_if_compressed(content, max_bytes)
    now = datetime.now(UTC).replace(tzinfo=None)
    if _looks_like_json_feed(content, headers.get("content-type", "").lower()):
        return _parse_json_feed(content, base_url, now)
    # feedparser uses response headers for the charset and for relative links.
    fp_headers = {k: v for k, v in headers.items() if k in ("content-type", "content-location", "content-language")}
    fp_headers.setdefault("content-type", "application/xml")
    if base_url and "content-location" not in fp_headers:
        fp_headers["content-location"] = base_url
    parsed = feedparser.parse(io.BytesIO(content), response_headers=fp_headers, sanitize_html=False,
                              resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise ParseError(f"parse: not a feed: {reason}")
    meta = parsed.get("feed", {})
    feed = ParsedFeed(
        title=html_to_text(meta.get("title") or ""),
        site_url=canonical_url(meta.get("link"), base_url),
        format=parsed.get("version") or "unknown",
        warning=str(parsed.get("bozo_exception")) if parsed.get("bozo") else None,
    )
    for entry in parsed.entries:
        try:
            feed.entries.append(_feedparser_entry(entry, base_url, now))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            feed.skipped += 1
            log.debug("skipped an entry: %s", exc)
    return feed
