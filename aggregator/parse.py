"""Parse stage: feed bytes to entries with a stable identity, a canonical URL and a UTC time.

feedparser reads RSS 0.9x/1.0/2.0 and Atom; JSON Feed is read here. feedparser is handed bytes in a
``BytesIO``, never a string (which it may take for a file path or a URL).

Feed bytes are written by whoever controls the feed, so they are read as hostile: an XML document goes
through :mod:`aggregator.xmlguard` (decoded, its DTD removed, entity declarations refused, cut to bounded
work) before feedparser sees it.
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

from aggregator.xmlguard import MAX_ENTRIES, ParseError, bound_work, sanitize_xml

log = logging.getLogger(__name__)

JSON_FEED_TYPES = ("application/feed+json", "application/json")
# A tag stops at the next "<" as well as at ">": with "[^>]" alone, text full of "<" takes quadratic time.
_TAG = re.compile(r"<[^<>]+>")
_SPACE = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n")
_BLOCK = re.compile(r"</?(p|div|br|li|h[1-6]|blockquote|tr|section|article)\b[^<>]*>", re.I)
_DROP_OPEN = re.compile(r"<(script|style|noscript|template)\b", re.I)
_DROP_CLOSE = {name: re.compile(rf"</{name}\s*>", re.I) for name in ("script", "style", "noscript", "template")}
# C0 and C1 controls (tab and newline are kept by the callers' line handling), lone surrogates, non-characters.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff\ufffe\uffff\ud800-\udfff]")
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")
MAX_URL_CHARS = 8192



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


def clean_text(value: str) -> str:
    """``value`` without control characters (tab and newline kept), lone surrogates or non-characters."""
    if value.isascii() and value.isprintable():
        return value
    return _UNSAFE.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _drop_code(fragment: str) -> str:
    """``fragment`` with script, style, noscript and template elements cut out, in linear time.

    An element without its end tag is left alone (its tags go with the other tags). A failed search for
    an end tag is remembered, so that many unclosed start tags do not each scan the rest of the text.
    """
    if "<" not in fragment:
        return fragment
    pieces: list[str] = []
    pos = 0
    no_close_after: dict[str, int] = {}
    while (start := _DROP_OPEN.search(fragment, pos)) is not None:
        name = start.group(1).lower()
        close = None
        if start.end() < no_close_after.get(name, len(fragment) + 1):
            close = _DROP_CLOSE[name].search(fragment, start.end())
            if close is None:
                no_close_after[name] = start.end()
        if close is None:
            pieces.append(fragment[pos : start.end()])
            pos = start.end()
            continue
        pieces.append(fragment[pos : start.start()])
        pieces.append(" ")
        pos = close.end()
    pieces.append(fragment[pos:])
    return "".join(pieces)


def html_to_text(fragment: str | None) -> str:
    """Readable plain text of an HTML fragment, paragraphs kept on their own lines."""
    if not fragment:
        return ""
    text = _drop_code(fragment)
    text = _BLOCK.sub("\n", text)
    text = html.unescape(_TAG.sub(" ", text))
    text = _BLANK_LINES.sub("\n", _CONTROL.sub("", text))
    lines = (_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """The URL with tracking parameters and fragment removed and host lower-cased; None if not http(s)."""
    if not url or len(url) > MAX_URL_CHARS:
        return None
    url = clean_text(url).strip()
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
    except (ValueError, OverflowError):
        pass
    try:
        return _utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
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
    guid = clean_text(guid).strip() if guid else ""
    if guid:
        return guid[:500]
    if canonical:
        return canonical[:500]
    digest = hashlib.sha256(f"{title}\n{content}".encode("utf-8", "surrogatepass")).hexdigest()
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
    url = None
    if canonical:
        link = clean_text(link).strip()
        url = urljoin(base, link) if base else link
    return ParsedEntry(
        external_id=entry_identity(guid if isinstance(guid, str) else None, canonical, title, summary or content),
        title=title[:1000],
        url=url,
        canonical_url=canonical,
        summary=summary,
        content=content,
        author=(html_to_text(author) or None) if isinstance(author, str) else None,
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
    head = content.lstrip()[:200].removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<"):  # XML sent as application/json by a misconfigured server is still read
        return False
    return content_type.startswith(JSON_FEED_TYPES) or (head.startswith(b"{") and b"jsonfeed.org" in content[:2000])


def _parse_json_feed(content: bytes, base: str | None, now: datetime) -> ParsedFeed:
    try:
        doc = json.loads(content.decode("utf-8-sig", errors="replace"))
    except (ValueError, RecursionError) as exc:  # ValueError: also a number past int's digit limit
        raise ParseError(f"parse: not a JSON Feed: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise ParseError("parse: JSON document is not a JSON Feed (no jsonfeed.org version)")
    feed = ParsedFeed(
        title=html_to_text(_json_text(doc.get("title"), numbers=True))[:1000],
        site_url=canonical_url(_json_text(doc.get("home_page_url")) or None),
        format=clean_text("json" + str(doc["version"]).rsplit("/", 1)[-1])[:20],
    )
    items = doc.get("items") if isinstance(doc.get("items"), list) else []
    if not isinstance(doc.get("items"), list):
        feed.warning = f"JSON Feed without a list of items ('items' is {_json_kind(doc.get('items'))})"
    if len(items) > MAX_ENTRIES:
        feed.warning = f"feed cut after {MAX_ENTRIES} entries: more than {MAX_ENTRIES} entries"
        items = items[:MAX_ENTRIES]
    for item in items:
        try:
            if not isinstance(item, dict):
                raise ValueError("item is not an object")
            authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
            if not isinstance(authors, list):
                authors = []
            names = (_json_text(a.get("name")) for a in authors if isinstance(a, dict))
            author = ", ".join(name for name in names if name)
            content_html = _json_text(item.get("content_html")) or html.escape(_json_text(item.get("content_text")))
            feed.entries.append(
                _build_entry(
                    guid=_json_text(item.get("id"), numbers=True)[:500] or None,
                    link=_json_text(item.get("url")) or None,
                    title=_json_text(item.get("title"), numbers=True),
                    summary_html=html.escape(_json_text(item.get("summary"))),
                    content_html=content_html,
                    author=author or None,
                    published=_json_time(item.get("date_published") or item.get("date_modified")),
                    base=base,
                    now=now,
                )
            )
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            feed.skipped += 1
            log.debug("skipped a JSON Feed item: %s", exc)
    return feed


def _json_text(value: object, numbers: bool = False) -> str:
    """A JSON Feed string field as text: an object, a list, a boolean or null is no text and reads as absent
    (never as its Python repr); a number is text where ``numbers`` (ids and titles such as 2024)."""
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _json_kind(value: object) -> str:
    if value is None:
        return "missing or null"
    return {dict: "an object", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _json_time(value) -> datetime | None:
    return parse_time(value[:100]) if isinstance(value, str) else None


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
    headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    if len(content) > max_bytes:
        raise ParseError(f"parse: feed is larger than {max_bytes} bytes")
    content = _gunzip_if_compressed(content, max_bytes)
    now = datetime.now(UTC).replace(tzinfo=None)
    if _looks_like_json_feed(content, headers.get("content-type", "").lower()):
        return _parse_json_feed(content, base_url, now)
    document, version = sanitize_xml(content, headers.get("content-type", ""))
    document, cut = bound_work(document)
    # The document is UTF-8 now, whatever the response said. feedparser reads relative links against
    # Content-Location; it never fetches anything for a stream (no DTD, no entity, no relative URI).
    fp_headers = {k: v for k, v in headers.items() if k in ("content-location", "content-language")}
    fp_headers["content-type"] = "application/xml; charset=utf-8"
    if base_url and "content-location" not in fp_headers:
        fp_headers["content-location"] = base_url
    try:
        parsed = feedparser.parse(io.BytesIO(document), response_headers=fp_headers, sanitize_html=False,
                                  resolve_relative_uris=False)
    except Exception as exc:  # feedparser copes with almost anything; a hostile feed must not stop a poll
        log.warning("feedparser failed on %s: %r", base_url, exc)
        raise ParseError(f"parse: unreadable feed: {type(exc).__name__}") from None
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise ParseError(f"parse: not a feed: {clean_text(str(reason))[:200]}")
    meta = parsed.get("feed", {})
    fp_version = parsed.get("version") or "unknown"
    feed = ParsedFeed(
        title=html_to_text(meta.get("title") or "")[:1000],
        site_url=canonical_url(meta.get("link"), base_url),
        format=version if version and fp_version.startswith("rss09") else fp_version,
        warning="; ".join(filter(None, [
            cut, clean_text(str(parsed.get("bozo_exception")))[:500] if parsed.get("bozo") else None])) or None,
    )
    for entry in parsed.entries:
        try:
            feed.entries.append(_feedparser_entry(entry, base_url, now))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            feed.skipped += 1
            log.debug("skipped an entry: %s", exc)
    return feed
