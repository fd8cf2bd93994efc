import gzip
import json
from pathlib import Path

import pytest

from aggregator.parse import ParseError, canonical_url, entry_identity, html_to_text, parse_feed, parse_time

SHARED_FEEDS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Example &amp; Co</title><link>https://example.com/</link>
<item><title>First &lt;b&gt;story&lt;/b&gt;</title>
  <link>https://Example.com/a/1?utm_source=rss&amp;id=7#comments</link>
  <guid isPermaLink="false">urn:ex:1</guid><pubDate>Tue, 24 Nov 2026 09:30:00 +0100</pubDate>
  <dc:creator>Ann Author</dc:creator><description>&lt;p&gt;Summary &lt;i&gt;one&lt;/i&gt;&lt;/p&gt;</description>
  <content:encoded><![CDATA[<p>Para one.</p><script>alert(1)</script><p>Para two.</p>]]></content:encoded></item>
<item><title>No guid</title><link>https://example.com/b?fbclid=xyz</link></item>
<item><title>Only a title</title></item>
<item></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom example</title>
<link rel="alternate" href="https://atom.example/"/><id>urn:feed</id><updated>2026-11-24T10:00:00Z</updated>
<entry><id>urn:entry:1</id><title type="html">Atom &amp;amp; entry</title>
<link rel="alternate" href="/posts/1"/><updated>2026-11-24T10:00:00Z</updated>
<author><name>Bo</name></author><summary>Short</summary><content type="html">&lt;p&gt;Long body&lt;/p&gt;</content>
</entry></feed>"""

JSON_FEED = json.dumps({
    "version": "https://jsonfeed.org/version/1.1", "title": "JSON example", "home_page_url": "https://json.example/",
    "items": [
        {"id": "j1", "url": "https://json.example/1", "title": "JSON one", "summary": "Sum",
         "content_html": "<p>Body</p>", "date_published": "2026-11-24T08:00:00-05:00",
         "authors": [{"name": "Cy"}]},
        {"id": 2, "title": "Broken url", "url": 5},
        "not an object",
    ],
}).encode()


def test_rss_entries_identity_url_and_time():
    feed = parse_feed(RSS, {"content-type": "application/rss+xml"}, "https://example.com/feed")
    assert feed.title == "Example & Co"
    first, second, third = feed.entries
    assert first.external_id == "urn:ex:1"
    assert first.canonical_url == "https://example.com/a/1?id=7"
    assert first.title == "First story"
    assert first.summary == "Summary one"
    assert first.content == "Para one.\nPara two."
    assert first.author == "Ann Author"
    assert first.published.isoformat() == "2026-11-24T08:30:00"
    assert second.external_id == "https://example.com/b"  # no guid: the canonical link
    assert third.external_id.startswith("sha256:")  # neither: a hash of title and content
    assert feed.skipped == 1  # the empty item is dropped, the feed is not


def test_atom_relative_link_resolved():
    feed = parse_feed(ATOM, {"content-type": "application/atom+xml"}, "https://atom.example/feed.atom")
    (entry,) = feed.entries
    assert entry.canonical_url == "https://atom.example/posts/1"
    assert entry.title == "Atom & entry"
    assert entry.content == "Long body"
    assert entry.author == "Bo"


def test_json_feed_items_and_broken_items():
    feed = parse_feed(JSON_FEED, {"content-type": "application/feed+json"}, "https://json.example/feed.json")
    assert feed.format == "json1.1"
    assert [e.external_id for e in feed.entries] == ["j1", "2"]
    assert feed.entries[0].published.isoformat() == "2026-11-24T13:00:00"
    assert feed.entries[0].author == "Cy"
    assert feed.entries[1].url is None
    assert feed.skipped == 1


def test_not_a_feed_is_a_clear_error():
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(b"<html><body>hello</body></html>", {"content-type": "text/html"})
    with pytest.raises(ParseError):
        parse_feed(b'{"version": "1"}', {"content-type": "application/json"})


def test_gzipped_body_is_inflated_within_a_cap():
    feed = parse_feed(gzip.compress(RSS))
    assert len(feed.entries) == 3
    with pytest.raises(ParseError, match="inflates past"):
        parse_feed(gzip.compress(RSS + b" " * 5000), max_bytes=1000)


def test_canonical_url_rules():
    assert canonical_url("javascript:alert(1)") is None
    assert canonical_url("HTTPS://News.Example.COM/x/../y/?b=2&a=1&utm_medium=feed#top") == (
        "https://news.example.com/y/?a=1&b=2"
    )
    assert canonical_url("/rel", "https://h.example/feed") == "https://h.example/rel"


def test_helpers():
    assert html_to_text("<p>a &amp; b</p><style>x{}</style><p>c</p>") == "a & b\nc"
    assert parse_time("2026-11-24T10:00:00+02:00").isoformat() == "2026-11-24T08:00:00"
    assert parse_time("Tue, 24 Nov 2026 10:00:00 GMT").isoformat() == "2026-11-24T10:00:00"
    assert parse_time("yesterday") is None
    assert entry_identity(" g ", "u", "t", "c") == "g"


@pytest.mark.skipif(not SHARED_FEEDS.exists(), reason="shared corpus not present")
@pytest.mark.parametrize("path", sorted(p for p in SHARED_FEEDS.rglob("*") if p.suffix in (".xml", ".rss", ".atom")),
                         ids=lambda p: p.name)
def test_real_feeds_parse(path):
    """Every real feed yields entries with an identity and a title or link (gzipped and broken ones too)."""
    try:
        feed = parse_feed(path.read_bytes(), {}, "https://feed.example/")
    except ParseError:
        pytest.fail(f"{path.name} did not parse")
    assert feed.entries, path.name
    for entry in feed.entries:
        assert entry.external_id
        assert entry.title or entry.canonical_url
        if entry.canonical_url:
            assert entry.canonical_url.startswith(("http://", "https://"))


def test_stray_ampersands_and_html_entities_keep_the_strict_parser():
    """"AT&T", an unescaped query string and HTML entity names would stop expat; they are repaired first."""
    document = (b'<rss version="2.0"><channel><title>AT&T &amp; Co&nbsp;News</title>'
                b"<item><title>Caf&eacute; &bogus; &#150; ok</title><link>https://ex.example/a?x=1&y=2</link>"
                b"<description><![CDATA[a & b &nbsp;]]></description></item></channel></rss>")
    feed = parse_feed(document)
    assert feed.warning is None  # read by the strict parser
    assert feed.title == "AT&T & Co\xa0News"
    (entry,) = feed.entries
    assert entry.title == "Café &bogus; – ok"
    assert entry.url == "https://ex.example/a?x=1&y=2"
    assert entry.summary == "a & b"  # CDATA left alone


def test_entity_declarations_refused():
    with pytest.raises(ParseError, match="declares entities"):
        parse_feed(b'<!DOCTYPE rss [<!ENTITY a "b">]><rss version="2.0"><channel><title>&a;</title></channel></rss>')


def test_json_feed_fields_that_are_not_text_read_as_absent_never_as_a_repr():
    doc = json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": {"a": 1}, "home_page_url": ["https://x.example/"],
        "items": [
            {"id": {"a": 1}, "url": "https://json.example/1", "title": {"a": 1}, "summary": ["s"],
             "content_html": {"html": "<p>x</p>"}, "content_text": "Plain body", "date_published": 1700000000,
             "authors": [{"name": {"first": "Cy"}}, {"name": "Di"}, {"name": ["Ed"]}]},
            {"id": 7, "title": 2024, "summary": True, "content_text": {"a": 1}, "url": {"href": "https://x/"},
             "author": {"name": 5}},
        ],
    }).encode()
    feed = parse_feed(doc, {"content-type": "application/feed+json"}, "https://json.example/feed.json")
    assert feed.title == "" and feed.site_url is None
    first, second = feed.entries
    assert first.external_id == "https://json.example/1"  # the object id is no id: the link stands in
    assert first.title == "" and first.summary == "" and first.content == "Plain body"
    assert first.author == "Di" and first.published is None
    assert second.external_id == "7" and second.title == "2024"
    assert second.summary == second.content == "" and second.url is None and second.author is None
    for entry in feed.entries:
        assert "{" not in repr((entry.title, entry.summary, entry.content, entry.author, entry.external_id))


def test_json_feed_without_a_list_of_items_says_so():
    doc = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": {"id": "1"}}).encode()
    feed = parse_feed(doc, {"content-type": "application/feed+json"})
    assert feed.entries == [] and feed.warning == "JSON Feed without a list of items ('items' is an object)"
    doc = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T"}).encode()
    assert "'items' is missing" in parse_feed(doc, {"content-type": "application/feed+json"}).warning


def test_an_rss_document_labelled_json_is_read_as_rss():
    feed = parse_feed(RSS, {"content-type": "application/json"}, "https://example.com/feed")
    assert feed.title == "Example & Co" and len(feed.entries) == 3
    with pytest.raises(ParseError, match="not a JSON Feed"):
        parse_feed(b"[1, 2]", {"content-type": "application/json"})
