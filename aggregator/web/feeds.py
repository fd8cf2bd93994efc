"""Feeds out: stories as Atom and JSON Feed 1.1, daily digests as Atom.

One entry per story with an id that never changes (a UUID from the database and the story id), so a reader
updates the entry when outlets join rather than showing it twice. Text goes through ElementTree or json, which
escape it; the HTML content is rendered by the autoescaped templates.
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import jinja2

from ..api import Aggregator
from ..digest import clean_text, digest_title, iso_time, safe_url
from ..query import Digest, StoryEntry

ATOM = "http://www.w3.org/2005/Atom"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
DIGEST_ENTRIES = 14
# Characters XML 1.0 forbids even escaped (clean_text already drops the C0/C1 controls and surrogates).
_NOT_XML = re.compile("[\ufffe\uffff]")

ET.register_namespace("", ATOM)


def feed_title(tag: str, min_sources: int, q: str) -> str:
    parts = ["Stories"]
    if min_sources > 1:
        parts.append(f"with {min_sources}+ sources")
    if tag:
        parts.append(f"tagged {clean_text(tag)}")
    if q:
        parts.append(f"matching {clean_text(q)[:80]}")
    return " ".join(parts)


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


def entry_id(agg: Aggregator, kind: str, key: object) -> str:
    """A stable id: the same database and story (or day) always give the same URN."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{agg.engine.url}#{kind}/{key}"))


def _story_html(story: StoryEntry, env: jinja2.Environment, base: str) -> str:
    return env.get_template("feed_story.html").render(story=story, base=base)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: _xml(v) for k, v in attrs.items()})
    if text is not None:
        element.text = _xml(text)
    return element


def _atom_feed(feed_id: str, title: str, self_url: str, home: str, updated: datetime) -> ET.Element:
    feed = ET.Element(f"{{{ATOM}}}feed")
    _sub(feed, "id", feed_id)
    _sub(feed, "title", title)
    _sub(feed, "updated", iso_time(updated))
    _sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    _sub(feed, "link", rel="alternate", href=home, type="text/html")
    author = _sub(feed, "author")
    _sub(author, "name", "aggregator")
    _sub(feed, "generator", "aggregator")
    return feed


def _serialize(feed: ET.Element) -> bytes:
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def stories_atom(stories: list[StoryEntry], env: jinja2.Environment, agg: Aggregator, base: str, self_url: str,
                 title: str = "Stories") -> bytes:
    updated = max((s.last_updated for s in stories), default=_now())
    feed = _atom_feed(entry_id(agg, "stories", title), title, self_url, base + "/", updated)
    for story in stories:
        entry = _sub(feed, "entry")
        _sub(entry, "id", entry_id(agg, "story", story.id))
        _sub(entry, "title", clean_text(story.headline) or "(untitled story)")
        _sub(entry, "published", iso_time(story.first_seen))
        _sub(entry, "updated", iso_time(story.last_updated))
        _sub(entry, "link", rel="alternate", type="text/html", href=f"{base}/stories/{story.id}")
        original = safe_url(story.url)
        if original:
            _sub(entry, "link", rel="related", href=original)
        lead = clean_text(story.lead)
        if lead:
            _sub(entry, "summary", lead)
        _sub(entry, "content", _story_html(story, env, base), type="html")
    return _serialize(feed)


def stories_json_feed(stories: list[StoryEntry], env: jinja2.Environment, agg: Aggregator, base: str,
                      self_url: str, title: str = "Stories") -> bytes:
    items = []
    for story in stories:
        item = {
            "id": entry_id(agg, "story", story.id),
            "url": f"{base}/stories/{story.id}",
            "title": clean_text(story.headline) or "(untitled story)",
            "content_html": _story_html(story, env, base),
            "date_published": iso_time(story.first_seen),
            "date_modified": iso_time(story.last_updated),
        }
        if safe_url(story.url):
            item["external_url"] = safe_url(story.url)
        if clean_text(story.lead):
            item["summary"] = clean_text(story.lead)
        items.append(item)
    feed = {
        "version": JSON_FEED_VERSION, "title": title, "home_page_url": base + "/", "feed_url": self_url,
        "authors": [{"name": "aggregator"}], "items": items,
    }
    return json.dumps(feed, ensure_ascii=False, indent=1).encode("utf-8")


def digest_atom(digests: list[Digest], env: jinja2.Environment, agg: Aggregator, base: str, self_url: str) -> bytes:
    def updated_of(digest: Digest) -> datetime:
        return max((s.last_updated for s in digest.stories), default=datetime.combine(digest.day, datetime.min.time()))

    updated = max((updated_of(d) for d in digests), default=_now())
    feed = _atom_feed(entry_id(agg, "digests", "all"), "Daily digests", self_url, base + "/digest", updated)
    template = env.get_template("feed_digest.html")
    for digest in digests:
        entry = _sub(feed, "entry")
        _sub(entry, "id", entry_id(agg, "digest", digest.day.isoformat()))
        _sub(entry, "title", digest_title(digest, with_count=True))
        _sub(entry, "updated", iso_time(updated_of(digest)))
        _sub(entry, "link", rel="alternate", type="text/html", href=f"{base}/digest/{digest.day.isoformat()}")
        _sub(entry, "content", template.render(digest=digest, base=base), type="html")
    return _serialize(feed)
