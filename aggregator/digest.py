"""Digest stage: render a :class:`~aggregator.query.Digest` as text, markdown, html or json.

Every string that comes from a feed (headline, lead, outlet name, article title, URL) is treated as
hostile: control characters and ANSI escapes are stripped, markup is escaped for the target format,
and only ``http``/``https`` URLs ever become links.
"""

from __future__ import annotations

import html
import json
import re
import textwrap
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # annotations only: the CLI's text helpers here do not need the database layer
    from .query import Digest, StoryEntry, StorySource

FORMATS = ("text", "markdown", "html", "json")

TEXT_WIDTH = 78
MAX_COPY_DEPTH = 8

# ANSI / VT100 escape sequences: CSI (ESC [ or the 8-bit 0x9b), OSC (ESC ] ... BEL or ST),
# DCS/SOS/PM/APC strings, and the remaining two-character ESC sequences.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]?"
)
# Unicode format characters that reorder or hide text in terminals and browsers.
_INVISIBLE = dict.fromkeys(
    [0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF]
    + list(range(0x202A, 0x202F))
    + list(range(0x2066, 0x206A)),
    None,
)
_WHITESPACE = re.compile(r"\s+")


def clean_text(value: object) -> str:
    """``value`` as one line of printable text: no ANSI escapes, control or bidi characters."""
    if value is None:
        return ""
    text = _ANSI.sub("", str(value)).translate(_INVISIBLE)
    text = "".join(
        " " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cs")
    )
    return _WHITESPACE.sub(" ", text).strip()


def safe_url(url: object) -> str | None:
    """``url`` if it is an http(s) URL with a host and nothing unprintable in it, else ``None``."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return url


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def local_time(value: datetime | None, tz: str = "UTC") -> datetime | None:
    """``value`` as an aware time in zone ``tz`` (an IANA name such as ``Europe/Berlin``); naive is UTC."""
    value = _utc(value)
    return value.astimezone(ZoneInfo(tz)) if value else None


def format_time(value: datetime | None, tz: str = "UTC") -> str:
    """``2026-11-24 08:58 CET``: the time in zone ``tz`` with the zone's abbreviation, for people to read.

    Every human-facing output shows times this way, in the configured ``timezone``; machine outputs (JSON,
    export) use :func:`iso_time`. Naive datetimes are taken as UTC, as they are stored.
    """
    value = local_time(value, tz)
    return value.strftime("%Y-%m-%d %H:%M %Z") if value else "unknown time"


def iso_time(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix, to the second."""
    value = _utc(value)
    if value is None:
        return None
    return value.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _story_count(digest: Digest) -> str:
    return "1 story" if len(digest.stories) == 1 else f"{len(digest.stories)} stories"


def all_copies(source: StorySource, depth: int = 0) -> Iterator[StorySource]:
    """Every copy folded under ``source``, copies of copies included."""
    if depth >= MAX_COPY_DEPTH:
        return
    for copy in source.copies:
        yield copy
        yield from all_copies(copy, depth + 1)


def _headline(story: StoryEntry) -> str:
    return clean_text(story.headline) or "(untitled story)"


def _outlet(source: StorySource) -> str:
    return clean_text(source.source) or "(unknown source)"


def _distinct_title(source: StorySource, headline: str) -> str:
    """The article's title, or ``""`` when it says the same as the story headline."""
    title = clean_text(source.title)
    return "" if title.casefold() == headline.casefold() else title


def digest_title(digest: Digest, with_count: bool = False) -> str:
    """The digest's title (``News digest — 2026-11-30``), with its number of stories for a mail subject or a
    feed entry."""
    title = f"News digest \u2014 {digest.day.isoformat()}"
    if with_count:
        count = len(digest.stories)
        title += f" ({count} stor{'y' if count == 1 else 'ies'})"
    return title


def _empty(digest: Digest) -> str:
    return f"No stories for {digest.day.isoformat()}."


def _meta(story: StoryEntry, tz: str) -> str:
    return (
        f"{_plural(story.source_count, 'source')} \u00b7 first seen {format_time(story.first_seen, tz)}"
        f" \u00b7 updated {format_time(story.last_updated, tz)}"
    )


# --------------------------------------------------------------------------- text


def _wrap(text: str, indent: str, subsequent: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        width=TEXT_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent if subsequent is None else subsequent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent.rstrip()]


def _render_text(digest: Digest) -> str:
    title = digest_title(digest)
    lines = [title, "=" * len(title)]
    if not digest.stories:
        lines += ["", _empty(digest)]
        return "\n".join(lines) + "\n"
    tz = digest.timezone
    lines.append(f"Generated {format_time(digest.generated_at, tz)} \u00b7 {_story_count(digest)}")
    for number, story in enumerate(digest.stories, 1):
        headline = _headline(story)
        prefix = f"{number}. "
        pad = " " * len(prefix)
        lines.append("")
        lines += _wrap(headline, prefix, pad)
        url = safe_url(story.url)
        if url:
            lines.append(pad + url)
        lines += _wrap(_meta(story, tz), pad)
        lead = clean_text(story.lead)
        if lead:
            lines.append("")
            lines += _wrap(lead, pad)
        if story.sources:
            lines.append("")
        for source in story.sources:
            entry = _outlet(source)
            title = _distinct_title(source, headline)
            if title:
                entry += f": {title}"
            entry += f" ({format_time(source.published, tz)})"
            lines += _wrap(entry, pad + "- ", pad + "  ")
            link = safe_url(source.url)
            if link:
                lines.append(pad + "  " + link)
            copies = list(all_copies(source))
            if copies:
                carried = ", ".join(_outlet(c) + (f" <{safe_url(c.url)}>" if safe_url(c.url) else "") for c in copies)
                lines += _wrap(f"also carried by: {carried}", pad + "  ", pad + "    ")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]()<>|~])")


def md_escape(value: object) -> str:
    """Feed text made inert in markdown: cleaned, metacharacters backslash-escaped."""
    text = _MD_SPECIAL.sub(r"\\\1", clean_text(value))
    if text.startswith("#"):
        text = "\\" + text
    return text


def _md_link(label: str, url: object) -> str:
    """``[label](url)`` for an http(s) URL; the bare (already escaped) label otherwise."""
    href = safe_url(url)
    if not href:
        return label
    href = href.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
    return f"[{label}]({href})"


def _render_markdown(digest: Digest) -> str:
    out = [f"# {digest_title(digest)}", ""]
    if not digest.stories:
        out += [_empty(digest)]
        return "\n".join(out) + "\n"
    tz = digest.timezone
    out += [f"*Generated {format_time(digest.generated_at, tz)} \u00b7 {_story_count(digest)}*"]
    for number, story in enumerate(digest.stories, 1):
        headline = _headline(story)
        out += ["", f"## {number}. {_md_link(md_escape(headline), story.url)}", ""]
        out += [
            f"**{_plural(story.source_count, 'source')}** \u00b7 first seen {format_time(story.first_seen, tz)}"
            f" \u00b7 updated {format_time(story.last_updated, tz)}"
        ]
        lead = md_escape(story.lead)
        if lead:
            out += ["", lead]
        if story.sources:
            out.append("")
        for source in story.sources:
            outlet = f"**{md_escape(_outlet(source))}**"
            title = _distinct_title(source, headline)
            if title:
                item = f"{outlet} \u2014 {_md_link(md_escape(title), source.url)}"
            else:
                item = _md_link(outlet, source.url)
            out.append(f"- {item} \u00b7 {format_time(source.published, tz)}")
            copies = list(all_copies(source))
            if copies:
                carried = ", ".join(_md_link(md_escape(_outlet(c)), c.url) for c in copies)
                out.append(f"  - also carried by: {carried}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- html

_CSS = """
:root { color-scheme: light dark; --fg: #1d1d1f; --muted: #6b6b70; --bg: #fdfdfb; --line: #e3e3df;
  --link: #0b57d0; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8e3; --muted: #a0a09a; --bg: #17171a;
  --line: #2e2e33; --link: #8ab4f8; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 17px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 46rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
header h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
.meta, .sources, time { color: var(--muted); }
.meta { font-size: .9rem; margin: .25rem 0 .75rem; }
article { border-top: 1px solid var(--line); padding: 1.25rem 0 .5rem; }
article h2 { font-size: 1.25rem; line-height: 1.3; margin: 0; }
a { color: var(--link); text-decoration: none; overflow-wrap: anywhere; }
a:hover, a:focus { text-decoration: underline; }
.lead { margin: .5rem 0 .75rem; }
.sources { list-style: none; padding: 0; margin: 0; font-size: .92rem; }
.sources li { margin: .35rem 0; }
.outlet { color: var(--fg); font-weight: 600; }
.copies { display: block; font-size: .85rem; padding-left: 1rem; }
.empty { font-size: 1.1rem; color: var(--muted); }
@media (max-width: 480px) { body { font-size: 16px; } header h1 { font-size: 1.35rem; } }
""".strip()


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _html_link(label_html: str, url: object, cls: str = "") -> str:
    """An anchor around already-escaped ``label_html`` for an http(s) URL; the label alone otherwise."""
    href = safe_url(url)
    if not href:
        return f'<span class="{cls}">{label_html}</span>' if cls else label_html
    cls_attr = f' class="{cls}"' if cls else ""
    return f'<a{cls_attr} href="{_e(href)}" rel="noopener noreferrer">{label_html}</a>'


def _html_time(value: datetime | None, tz: str) -> str:
    iso = iso_time(value)  # the machine-readable attribute stays UTC; the text is in the digest's zone
    if iso is None:
        return "<time>unknown time</time>"
    return f'<time datetime="{iso}">{_e(format_time(value, tz))}</time>'


def _render_html(digest: Digest) -> str:
    title = _e(digest_title(digest))
    tz = digest.timezone
    body: list[str] = [f"<header><h1>{title}</h1>"]
    if digest.stories:
        generated = _html_time(digest.generated_at, tz)
        body.append(f'<p class="meta">Generated {generated} \u00b7 {_story_count(digest)}</p>')
    body.append("</header>")
    if not digest.stories:
        body.append(f'<p class="empty">{_e(_empty(digest))}</p>')
    for story in digest.stories:
        headline = _headline(story)
        body.append(f'<article id="story-{int(story.id)}">')
        body.append(f"<h2>{_html_link(_e(headline), story.url)}</h2>")
        body.append(
            f'<p class="meta">{_e(_plural(story.source_count, "source"))} \u00b7 first seen '
            f"{_html_time(story.first_seen, tz)} \u00b7 updated {_html_time(story.last_updated, tz)}</p>"
        )
        lead = clean_text(story.lead)
        if lead:
            body.append(f'<p class="lead">{_e(lead)}</p>')
        if story.sources:
            body.append('<ul class="sources">')
            for source in story.sources:
                outlet = f'<span class="outlet">{_e(_outlet(source))}</span>'
                title_text = _distinct_title(source, headline)
                if title_text:
                    item = f"{outlet} \u2014 {_html_link(_e(title_text), source.url)}"
                else:
                    item = _html_link(outlet, source.url)
                item += f" \u00b7 {_html_time(source.published, tz)}"
                copies = list(all_copies(source))
                if copies:
                    carried = ", ".join(_html_link(_e(_outlet(c)), c.url) for c in copies)
                    item += f'<span class="copies">also carried by: {carried}</span>'
                body.append(f"<li>{item}</li>")
            body.append("</ul>")
        body.append("</article>")
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>{title}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        "<main>",
    ]
    return "\n".join(head + body + ["</main>", "</body>", "</html>"]) + "\n"


# --------------------------------------------------------------------------- json


def source_to_dict(source: StorySource, depth: int = 0) -> dict:
    """One source of a story as JSON-ready data, its copies nested (to MAX_COPY_DEPTH)."""
    copies = source.copies if depth < MAX_COPY_DEPTH else []
    return {
        "article_id": source.article_id,
        "source": clean_text(source.source),
        "title": clean_text(source.title),
        "url": safe_url(source.url),
        "published": iso_time(source.published),
        "copies": [source_to_dict(c, depth + 1) for c in copies],
    }


def story_to_dict(story: StoryEntry) -> dict:
    """One story as JSON-ready data: the shape the digest file, ``stories --format json`` and the HTTP API share."""
    return {
        "id": story.id,
        "headline": clean_text(story.headline),
        "url": safe_url(story.url),
        "lead": clean_text(story.lead),
        "source_count": story.source_count,
        "article_count": story.article_count,
        "first_seen": iso_time(story.first_seen),
        "last_updated": iso_time(story.last_updated),
        "sources": [source_to_dict(s) for s in story.sources],
    }


def digest_to_dict(digest: Digest) -> dict:
    """The digest as JSON-ready data: cleaned strings, http(s) URLs only, ISO 8601 UTC times."""
    return {
        "date": digest.day.isoformat(),
        "generated_at": iso_time(digest.generated_at),
        "stories": [story_to_dict(story) for story in digest.stories],
    }


def _render_json(digest: Digest) -> str:
    return json.dumps(digest_to_dict(digest), ensure_ascii=False, indent=2) + "\n"


_RENDERERS = {
    "text": _render_text,
    "markdown": _render_markdown,
    "html": _render_html,
    "json": _render_json,
}


def render_digest(digest: Digest, fmt: str = "text") -> str:
    """Render ``digest`` in ``fmt`` (one of :data:`FORMATS`), stories in the order given."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown digest format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
    return renderer(digest)
