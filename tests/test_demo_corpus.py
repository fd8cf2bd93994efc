"""The demo corpus is consistent, and its rendered feeds and pages parse the way the pipeline needs."""

from __future__ import annotations

import io
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import feedparser
import pytest
import trafilatura

from aggregator.config import parse_config
from aggregator.demo import (
    CORPUS_PATH,
    DemoCorpus,
    article_path,
    demo_feeds_yaml,
    feed_path,
    load_corpus,
    render_site,
)

BASE = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def corpus() -> DemoCorpus:
    return load_corpus()


@pytest.fixture(scope="module")
def sites(corpus: DemoCorpus) -> dict[int, dict[str, tuple[bytes, str]]]:
    return {r: render_site(corpus, BASE, r) for r in range(1, corpus.rounds + 1)}


def _norm(text: str) -> str:
    return " ".join(text.split())


def _shingles(paragraphs: list[str], n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", " ".join(paragraphs).lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _containment(a: list[str], b: list[str]) -> float:
    """Share of ``a``'s 5-word shingles that also occur in ``b``."""
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa)


# ------------------------------------------------------------------------------------------- corpus


def test_corpus_shape(corpus: DemoCorpus) -> None:
    assert CORPUS_PATH.is_file()
    assert len(corpus.outlets) == 6
    assert Counter(o.format for o in corpus.outlets) == {"rss": 3, "atom": 2, "json": 1}
    assert [o.slug for o in corpus.outlets if not o.full_text] == ["circuit-ledger"]
    assert [o.slug for o in corpus.outlets if not o.guid_permalink] == ["continental-press"]
    assert [o.slug for o in corpus.outlets if o.link_params] == ["harbour-herald"]
    assert corpus.rounds == 3
    assert {a.round for a in corpus.articles} == {1, 2, 3}
    assert 35 <= len(corpus.articles) <= 45
    assert 8 <= len({a.story for a in corpus.articles}) <= 10


def test_articles_are_consistent(corpus: DemoCorpus) -> None:
    slugs = {o.slug for o in corpus.outlets}
    keys = [(a.outlet, a.slug) for a in corpus.articles]
    assert len(keys) == len(set(keys))
    for a in corpus.articles:
        assert a.outlet in slugs
        assert a.published.tzinfo is not None and a.published.utcoffset().total_seconds() == 0
        assert a.published.date() == datetime(2026, 11, 24, tzinfo=UTC).date()
        assert 4 <= len(a.body) <= 8, a.slug
        words = sum(len(p.split()) for p in a.body)
        assert 150 <= words <= 450, (a.slug, words)
        assert a.title and a.author and a.summary and a.story
    # later rounds are later in the day
    for r in range(1, corpus.rounds):
        assert max(a.published for a in corpus.articles if a.round == r) < min(
            a.published for a in corpus.articles if a.round == r + 1
        )


def test_story_structure(corpus: DemoCorpus) -> None:
    by_story: dict[str, list] = defaultdict(list)
    for a in corpus.articles:
        by_story[a.story].append(a)
    singles = [s for s, arts in by_story.items() if len({a.outlet for a in arts}) == 1]
    assert len(singles) >= 2
    summit = by_story["budapest-summit"]
    assert len({a.outlet for a in summit}) >= 5
    assert {a.round for a in summit} == {1, 2, 3}
    # two storms in different countries: same topic words, different stories
    storms = [s for s in by_story if s.startswith("storm-")]
    assert len(storms) == 2
    assert all(any("Storm" in a.title for a in by_story[s]) for s in storms)


def test_reprints_share_text_and_independent_pieces_do_not(corpus: DemoCorpus) -> None:
    by_key = {(a.outlet, a.slug): a for a in corpus.articles}
    wire = by_key[("continental-press", "trump-putin-budapest-summit")]
    reprints = [by_key[("harbour-herald", "budapest-to-host-trump-putin-summit")],
                by_key[("northern-chronicle", "trump-putin-set-budapest-summit")]]
    for copy in reprints:
        assert copy.title != wire.title
        assert copy.body != wire.body
        assert _containment(copy.body, wire.body) > 0.75
    own = [a for a in corpus.articles if a.story == "budapest-summit" and a.outlet != "continental-press"
           and a not in reprints]
    assert len(own) >= 2
    for piece in own:
        assert _containment(piece.body, wire.body) < 0.1, piece.slug
    # the reprints drop the wire's dateline in one case and its last paragraph in both
    assert not reprints[0].body[0].startswith("WASHINGTON")
    assert all(wire.body[-1] not in copy.body for copy in reprints)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["articles"][0].update(outlet="no-such-outlet"), "unknown outlet"),
        (lambda d: d["articles"][1].update(outlet=d["articles"][0]["outlet"], slug=d["articles"][0]["slug"]),
         "duplicate slug"),
        (lambda d: [a.update(round=3) for a in d["articles"] if a["round"] == 2], "round"),
        (lambda d: d["articles"][0].update(published="2026-11-24T07:58:00"), "no UTC offset"),
        (lambda d: d["outlets"][0].update(format="csv"), "format"),
    ],
)
def test_load_corpus_rejects_inconsistencies(tmp_path, mutate, message: str) -> None:
    data = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_corpus(path)


# ------------------------------------------------------------------------------------------- feeds


def test_site_contents_per_round(corpus: DemoCorpus, sites) -> None:
    for r, site in sites.items():
        visible = [a for a in corpus.articles if a.round <= r]
        expected = {feed_path(o) for o in corpus.outlets} | {article_path(a) for a in visible}
        assert set(site) == expected
        for path, (body, ctype) in site.items():
            assert isinstance(body, bytes) and body
            assert ctype.endswith("charset=utf-8")
            assert ctype.startswith("text/html") == path.endswith(".html")
    assert feed_path(corpus.outlet("continental-press")) == "/continental-press/feed.xml"
    assert feed_path(corpus.outlet("northern-chronicle")) == "/northern-chronicle/feed.atom"
    assert feed_path(corpus.outlet("valley-courier")) == "/valley-courier/feed.json"
    wire = next(a for a in corpus.articles if a.slug == "trump-putin-budapest-summit")
    assert article_path(wire) == "/continental-press/2026/11/24/trump-putin-budapest-summit.html"


def test_xml_feeds_parse_with_right_items(corpus: DemoCorpus, sites) -> None:
    for r, site in sites.items():
        for outlet in corpus.outlets:
            if outlet.format == "json":
                continue
            body, ctype = site[feed_path(outlet)]
            parsed = feedparser.parse(io.BytesIO(body))
            assert not parsed.bozo, (outlet.slug, parsed.get("bozo_exception"))
            assert parsed.version == ("rss20" if outlet.format == "rss" else "atom10")
            assert parsed.feed.title == outlet.name
            expected = corpus.visible(outlet, r)
            assert len(parsed.entries) == len(expected) == sum(
                1 for a in corpus.articles if a.outlet == outlet.slug and a.round <= r
            )
            assert [e.title for e in parsed.entries] == [a.title for a in expected]
            times = [datetime(*e.published_parsed[:6], tzinfo=UTC) for e in parsed.entries]
            assert times == [a.published for a in expected]
            assert times == sorted(times, reverse=True)
            for entry, article in zip(parsed.entries, expected, strict=True):
                assert entry.author == article.author
                assert entry.summary == article.summary
                link = urlsplit(entry.link)
                assert f"{link.scheme}://{link.netloc}" == BASE
                assert link.path == article_path(article) and link.path in site
                has_content = bool(entry.get("content"))
                assert has_content == (not outlet.full_text)


def test_tracking_parameters_only_on_one_outlet(corpus: DemoCorpus, sites) -> None:
    site = sites[corpus.rounds]
    for outlet in corpus.outlets:
        body = site[feed_path(outlet)][0]
        if outlet.format == "json":
            links = [item["url"] for item in json.loads(body)["items"]]
        else:
            links = [e.link for e in feedparser.parse(io.BytesIO(body)).entries]
        assert links
        queries = [parse_qs(urlsplit(link).query) for link in links]
        if outlet.slug == "harbour-herald":
            assert all(q == {"utm_source": ["rss"], "utm_medium": ["feed"]} for q in queries)
            assert b"&amp;utm_medium=feed" in body  # escaped in the XML
        else:
            assert all(q == {} for q in queries), outlet.slug


def test_guids(corpus: DemoCorpus, sites) -> None:
    site = sites[corpus.rounds]
    wire = feedparser.parse(io.BytesIO(site["/continental-press/feed.xml"][0]))
    assert b'isPermaLink="false"' in site["/continental-press/feed.xml"][0]
    assert all(not e.id.startswith("http") and not e.guidislink for e in wire.entries)
    herald_body = site["/harbour-herald/feed.xml"][0]
    assert b'isPermaLink="false"' not in herald_body
    herald = feedparser.parse(io.BytesIO(herald_body))
    assert all(e.id == e.link.split("?")[0] for e in herald.entries)
    ids = [e.id for o in corpus.outlets if o.format != "json"
           for e in feedparser.parse(io.BytesIO(site[feed_path(o)][0])).entries]
    assert len(ids) == len(set(ids))


def test_full_text_outlet_carries_the_body(corpus: DemoCorpus, sites) -> None:
    outlet = corpus.outlet("circuit-ledger")
    parsed = feedparser.parse(io.BytesIO(sites[corpus.rounds][feed_path(outlet)][0]))
    for entry, article in zip(parsed.entries, corpus.visible(outlet, corpus.rounds), strict=True):
        content = entry.content[0].value
        for paragraph in article.body:
            assert f"<p>{paragraph.replace('&', '&amp;')}</p>" in content


def test_json_feed(corpus: DemoCorpus, sites) -> None:
    outlet = corpus.outlet("valley-courier")
    for r, site in sites.items():
        body, ctype = site[feed_path(outlet)]
        assert ctype.startswith("application/feed+json")
        feed = json.loads(body)
        assert feed["version"] == "https://jsonfeed.org/version/1.1"
        assert feed["feed_url"] == BASE + feed_path(outlet)
        expected = corpus.visible(outlet, r)
        assert len(feed["items"]) == len(expected)
        for item, article in zip(feed["items"], expected, strict=True):
            assert item["url"] == BASE + article_path(article)
            assert item["title"] == article.title and item["summary"] == article.summary
            assert item["authors"] == [{"name": article.author}]
            assert datetime.fromisoformat(item["date_published"]) == article.published
            assert "content_html" in item or "content_text" in item


def test_rss_dates_are_rfc822(sites) -> None:
    body = sites[1]["/continental-press/feed.xml"][0].decode()
    dates = re.findall(r"<pubDate>(.*?)</pubDate>", body)
    assert dates and all(parsedate_to_datetime(d).tzinfo is not None for d in dates)
    assert "<pubDate>Tue, 24 Nov 2026 07:58:00 GMT</pubDate>" in body


def test_text_is_escaped(corpus: DemoCorpus) -> None:
    """Markup-like text in the corpus must come out as text, never as markup."""
    hostile = load_corpus()
    victim = hostile.articles[0]
    victim.title = 'Bonds & <b>"bold"</b> moves'
    victim.summary = "a < b && c > d"
    victim.body = [*victim.body[:-1], "<script>alert('x')</script> & more"]
    site = render_site(hostile, BASE, hostile.rounds)
    outlet = hostile.outlet(victim.outlet)
    feed = feedparser.parse(io.BytesIO(site[feed_path(outlet)][0]))
    assert not feed.bozo
    entry = next(e for e in feed.entries if urlsplit(e.link).path == article_path(victim))
    assert entry.title == victim.title
    page = site[article_path(victim)][0].decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>" not in page


# ------------------------------------------------------------------------------------------- pages


def test_article_pages_have_boilerplate_and_metadata(corpus: DemoCorpus, sites) -> None:
    article = next(a for a in corpus.articles if a.slug == "trump-putin-budapest-summit")
    page = sites[1][article_path(article)][0].decode()
    assert page.startswith("<!DOCTYPE html>")
    for marker in ('property="og:title"', 'name="description"', 'property="article:published_time"',
                   'content="2026-11-24T07:58:00Z"', 'id="cookie-banner"', "<nav", "<article>", "<h1>",
                   "<time datetime=", "Related stories", "<footer", "All rights reserved"):
        assert marker in page, marker
    related = re.search(r'<aside class="related".*?</aside>', page, re.S).group(0)
    assert 3 <= related.count("<li>") <= 4


def test_trafilatura_extracts_the_article_only(corpus: DemoCorpus, sites) -> None:
    site = sites[corpus.rounds]
    # one article per outlet, plus a reprint
    chosen = {a.outlet: a for a in corpus.articles}
    chosen["reprint"] = next(a for a in corpus.articles if a.slug == "budapest-to-host-trump-putin-summit")
    for article in chosen.values():
        page = site[article_path(article)][0].decode()
        text = trafilatura.extract(page)
        assert text, article.slug
        flat = _norm(text)
        assert _norm(article.body[0]) in flat
        assert _norm(article.body[-1]) in flat
        related = re.search(r'<aside class="related".*?</aside>', page, re.S).group(0)
        titles = re.findall(r'<a href="[^"]*">([^<]+)</a>', related)
        assert titles
        for title in titles:
            assert _norm(title) not in flat, (article.slug, title)
        for boiler in ("All rights reserved", "Accept all cookies", "We use cookies", "morning briefing",
                       "Related stories", "Share this story", "Privacy policy"):
            assert boiler not in text, (article.slug, boiler)


# ------------------------------------------------------------------------------------------- config


def test_demo_feeds_yaml_is_a_valid_config(corpus: DemoCorpus) -> None:
    config = parse_config(demo_feeds_yaml(corpus, BASE + "/"), "demo-feeds.yaml")
    assert config.settings.allowed_networks == ["127.0.0.1/32"]
    assert [f.name for f in config.feeds] == [o.name for o in corpus.outlets]
    for feed, outlet in zip(config.feeds, corpus.outlets, strict=True):
        assert feed.url == BASE + feed_path(outlet)
        assert feed.interval == 15 * 60
        assert feed.full_text == outlet.full_text
        assert feed.tags == outlet.tags and feed.tags
