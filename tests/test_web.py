"""The web view, feeds out and HTTP API over a small database: every route, bad input and hostile strings."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from aggregator.api import Aggregator  # noqa: E402
from aggregator.config import parse_config  # noqa: E402
from aggregator.digest import clean_text  # noqa: E402
from aggregator.parse import parse_feed  # noqa: E402
from aggregator.web.app import CSP, MAX_LIMIT, create_app  # noqa: E402
from aggregator.web.render import clean  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import webdata  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> webdata.WebData:
    return webdata.build(str(tmp_path_factory.mktemp("web") / "web.db"))


@pytest.fixture(scope="module")
def client(data):
    agg = Aggregator(database=data.database, config=parse_config(webdata.FEEDS_YAML))
    with TestClient(create_app(agg)) as test_client:
        yield test_client
    agg.close()


def pages(data) -> list[str]:
    return [
        "/", "/?since=all", "/?since=all&tag=world", "/?since=all&min_sources=2", f"/stories/{data.summit_story}",
        f"/stories/{data.hostile_story}", "/digest", "/digest/2026-11-24", f"/digest/{datetime.now(UTC).date()}",
        "/feeds", "/search", "/stories/999999",
    ]


FEEDS = ["/stories.atom?since=all", "/stories.json?since=all", "/digest.atom"]


def test_every_page_renders_with_a_strict_csp(client, data):
    for url in pages(data):
        response = client.get(url)
        assert response.status_code == (404 if url.endswith("999999") else 200), url
        assert response.headers["content-security-policy"] == CSP
        assert "script-src" not in CSP and "'unsafe-inline'" not in CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in response.text.lower()
        assert 'href="/static/style.css"' in response.text


def test_the_river_shows_the_last_day_by_default_and_the_since_control_widens_it(client, data):
    page = client.get("/").text
    assert "Leaders agree to hold Budapest summit" in page
    assert "Floods force thousands" in page
    assert "Central bank raises rates" not in page  # 2026-11-24 is older than 24 h
    assert "Central bank raises rates" in client.get("/?since=all").text
    assert "Central bank raises rates" in client.get("/?since=2026-11-23T00:00:00Z").text
    assert "Central bank raises rates" not in client.get("/?since=6h").text
    # Ranked like the digest: the three-outlet story comes first.
    assert page.index("Budapest summit") < page.index("Floods force")


def test_the_river_filters_by_tag_and_minimum_sources(client, data):
    local = client.get("/?since=all&tag=local").text
    assert "Budapest summit" in local and "Floods force" in local and "tariffs" not in local
    assert "Port strike" not in local
    three = client.get("/?since=all&min_sources=3").text
    assert "Budapest summit" in three and "Floods force" not in three
    assert "No stories match" in client.get("/?since=all&tag=no-such-tag").text


@pytest.mark.parametrize("query", ["since=zzz", "page=0", "page=100000", "min_sources=0", "min_sources=x"])
def test_bad_river_parameters_are_a_clear_400_page(client, query):
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]
    assert '<p class="error">' in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize("since", ["0001-01-01T00:00%2B05:00", "9999-12-31T23:00-05:00"])
@pytest.mark.parametrize("path", ["/", "/stories.atom", "/stories.json", "/api/stories", "/api/search?q=summit"])
def test_a_since_time_out_of_range_in_utc_is_a_400_not_a_500(client, path, since):
    response = client.get(f"{path}{'&' if '?' in path else '?'}since={since}")
    assert response.status_code == 400
    assert "out of range in UTC" in response.text


@pytest.mark.parametrize("path", ["/", "/healthz", "/stories.atom", "/api/stories", "/static/style.css", "/nope"])
def test_head_is_answered_like_get_without_a_body(client, path):
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.content == b""


def test_a_story_page_folds_copies_shows_signals_and_a_timeline(client, data):
    page = client.get(f"/stories/{data.summit_story}").text
    assert "copy by" in page  # the wire copy sits under its original
    assert re.search(r"joined by story-similarity \(\d\.\d\d\)", page) and "started a story" in page
    assert "new-story" not in page
    assert "first report" in page and "new outlet" in page
    assert page.count('rel="noopener noreferrer nofollow"') >= 4


def test_a_story_page_shows_what_holds_it_together(client, data):
    page = client.get(f"/stories/{data.summit_story}").text
    assert "What holds it together" in page
    makeup = page[page.index("What holds it together"):page.index("<h2>Coverage")]
    assert re.search(r"Budapest <span class=\"meta\">×4</span>", makeup)  # three reports and a copy name it
    assert "summit" in makeup and re.search(r"\d+\.\d h from the first article to the last", makeup)
    assert "names in common: Budapest" in page


def test_a_merged_story_redirects_to_the_survivor_and_bad_ids_are_404_pages(client, data):
    response = client.get(f"/stories/{data.merged_story}", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == f"/stories/{data.summit_story}"
    for bad in ("999999", "0", "-1", "abc", "1e3", "99999999999999999999999", "%00"):
        response = client.get(f"/stories/{bad}")
        assert response.status_code == 404, bad
        assert "There is no story" in response.text and "<html" in response.text


def test_the_digest_archive_steps_between_days(client, data):
    archive = client.get("/digest").text
    assert 'href="/digest/2026-11-24"' in archive and 'href="/digest/2026-11-22"' in archive
    day = client.get("/digest/2026-11-24").text
    assert "Central bank raises rates" in day
    assert 'href="/digest/2026-11-22"' in day  # the previous day with articles
    assert re.search(r'href="/digest/20\d\d-\d\d-\d\d" rel|rel="prev" href="/digest/', day)
    assert client.get("/digest/2026-13-40").status_code == 404
    assert client.get("/digest/0001-01-01").status_code == 404
    assert "No stories for 2026-10-01" in client.get("/digest/2026-10-01").text


def test_the_feeds_page_shows_health_and_why_a_feed_is_paused(client, data):
    page = client.get("/feeds").text
    assert "Continental Press" in page and "paused" in page
    assert "Paused: &lt;script&gt;alert(1)&lt;/script&gt; paused after three unreadable bodies" in page


# ---- hostile strings --------------------------------------------------------------------------------------


def _assert_inert(markup: str, where: str) -> None:
    lowered = markup.lower()
    assert "<script" not in lowered, where
    assert "<img" not in lowered and "<svg" not in lowered and "<style>body" not in lowered, where
    # Quoted attribute values hold escaped text only (no raw quote can end them early): look outside them.
    unquoted = re.sub(r'"[^"]*"', '""', lowered)
    assert not re.search(r"<[a-z][^>]*\son\w+\s*=", unquoted), f"{where}: an event handler attribute survived"
    assert not re.search(r"<[^>]*\shref\s*=\s*[\"']?\s*javascript:", lowered), where
    assert "\x1b" not in markup and "\u202e" not in markup, where
    for anchor in re.findall(r"<a\s[^>]*href=\"https?://(?!testserver/)[^>]*>", markup):  # links out
        assert 'rel="noopener noreferrer nofollow"' in anchor, f"{where}: {anchor}"


def test_hostile_strings_are_inert_on_every_page(client, data):
    for url in pages(data):
        _assert_inert(client.get(url).text, url)
    page = client.get(f"/stories/{data.hostile_story}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text, not dropped


def test_hostile_strings_are_inert_in_every_feed_and_the_feeds_parse(client, data):
    for url in FEEDS:
        response = client.get(url)
        assert response.status_code == 200, url
        if ".json" in url:
            # feedparser 6.0 reads no JSON Feed; the project's own parser (JSON Feed 1.1) does.
            parsed = parse_feed(response.content, {"content-type": response.headers["content-type"]})
            assert parsed.entries and all(e.url is None or e.url.startswith("http") for e in parsed.entries)
            continue
        parsed = feedparser.parse(response.content)
        assert not parsed.bozo, (url, parsed.get("bozo_exception"))
        assert parsed.entries, url
        for entry in parsed.entries:
            assert not entry.get("link", "").startswith("javascript")
        # The HTML as we wrote it (feedparser sanitizes what it returns, which would hide our mistakes).
        root = ElementTree.fromstring(response.content)
        for element in root.iter():
            if element.tag.endswith("}content"):
                _assert_inert(element.text or "", url)
            if element.tag.endswith("}summary") or element.tag.endswith("}title"):
                assert element.get("type", "text") == "text"  # plain text: a reader shows it, never parses it
            assert not (element.get("href") or "https:").lower().startswith("javascript"), url
    feed = client.get("/stories.json?since=all").json()
    for item in feed["items"]:
        _assert_inert(item["content_html"], "json feed")
        assert not item.get("external_url", "https:").startswith("javascript")


def test_hostile_strings_in_the_api_are_cleaned_and_links_are_http_only(client, data):
    detail = client.get(f"/api/stories/{data.hostile_story}").json()
    for article in detail["articles"]:
        assert article["url"] is None or article["url"].startswith("http")
        assert "\x1b" not in article["title"]
    feeds = client.get("/api/feeds").json()
    assert all("\x1b" not in (f["last_error"] or "") for f in feeds)


# ---- feeds out --------------------------------------------------------------------------------------------


def test_story_feeds_take_the_river_filters_and_keep_stable_ids(client, data):
    everything = feedparser.parse(client.get("/stories.atom?since=all").content)
    three = feedparser.parse(client.get("/stories.atom?since=all&min_sources=3").content)
    assert [e.title for e in three.entries] == ["Leaders agree to hold Budapest summit on energy and security in "
                                                  "December"]
    summit = next(e for e in everything.entries if e.id == three.entries[0].id)
    assert summit.link.endswith(f"/stories/{data.summit_story}")
    assert "Meridian News" in summit.content[0].value
    assert "3+ sources" in three.feed.title
    local = feedparser.parse(client.get("/stories.atom?since=all&tag=local").content)
    assert {e.title for e in local.entries} >= {three.entries[0].title}
    json_feed = client.get("/stories.json?since=all&min_sources=3").json()
    assert json_feed["version"] == "https://jsonfeed.org/version/1.1"
    assert json_feed["items"][0]["id"] == three.entries[0].id
    assert {"id", "url", "title", "content_html", "date_modified"} <= set(json_feed["items"][0])


def test_an_entry_is_updated_not_duplicated_when_an_outlet_joins(tmp_path):
    data = webdata.build(str(tmp_path / "grow.db"))
    agg = Aggregator(database=data.database)
    client = TestClient(create_app(agg))
    before = {e.id: e for e in feedparser.parse(client.get("/stories.atom?since=all").content).entries}
    from aggregator.ingest import Incoming, Ingestor
    from aggregator.store import session_scope

    ingestor = Ingestor(agg.engine)
    ingestor.reload()
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=1)
    with session_scope(agg.engine) as session:
        stored = ingestor.ingest(session, Incoming(
            source_key="Meridian News", external_id="flood-late", source="Meridian News",
            title="Danube delta floods force thousands from their homes after heavy rain",
            text="Thousands of people were forced from their homes as the Danube delta flooded after heavy rain.",
            published=later, url="https://news.example/meridian/flood-late"))
    assert stored.story_id == data.flood_story
    after = {e.id: e for e in feedparser.parse(client.get("/stories.atom?since=all").content).entries}
    assert set(after) == set(before)
    changed = [i for i in after if after[i].updated != before[i].updated]
    assert len(changed) == 1 and "Meridian News" in after[changed[0]].content[0].value
    agg.close()


# ---- HTTP API ---------------------------------------------------------------------------------------------


def test_the_api_serves_stories_a_story_a_digest_and_feeds(client, data):
    page = client.get("/api/stories?since=all&limit=2").json()
    assert len(page["stories"]) == 2 and page["next_offset"] == 2
    assert page["stories"][0]["id"] == data.summit_story
    assert set(page["stories"][0]) == {"id", "headline", "url", "lead", "source_count", "article_count",
                                       "first_seen", "last_updated", "sources"}
    rest = client.get("/api/stories?since=all&limit=2&offset=2").json()
    assert not {s["id"] for s in rest["stories"]} & {s["id"] for s in page["stories"]}
    detail = client.get(f"/api/stories/{data.summit_story}").json()
    assert detail["story"]["source_count"] == 3 and len(detail["articles"]) == 4
    assert any(a["duplicate_of"] for a in detail["articles"])
    moved = client.get(f"/api/stories/{data.merged_story}", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == f"/api/stories/{data.summit_story}"
    missing = client.get("/api/stories/424242")
    assert missing.status_code == 404 and missing.json() == {"detail": "There is no story '424242'."}
    digest = client.get("/api/digest/2026-11-24").json()
    assert digest["date"] == "2026-11-24" and digest["stories"][0]["id"] == data.old_day_story
    assert client.get("/api/digest/yesterday").status_code in (400, 404)
    names = [f["name"] for f in client.get("/api/feeds").json()]
    assert "Continental Press" in names
    schema = client.get("/openapi.json").json()
    assert {"/api/stories", "/api/stories/{story_id}", "/api/search", "/api/digest/{day}", "/api/feeds"} <= set(
        schema["paths"])


@pytest.mark.parametrize("query", [f"limit={MAX_LIMIT + 1}", "limit=0", "offset=-1", "offset=10000000",
                                   "since=next%20week"])
def test_api_paging_is_bounded(client, query):
    response = client.get(f"/api/stories?{query}")
    assert response.status_code == 400
    assert response.json()["detail"]


# ---- search -----------------------------------------------------------------------------------------------


def test_search_groups_by_story_and_highlights_the_words(client, data):
    page = client.get("/search", params={"q": "budapest summit"}).text
    assert f'href="/stories/{data.summit_story}"' in page
    assert re.search(r"<mark>budapest</mark>", page, re.I)
    assert page.count(f'href="/stories/{data.summit_story}"') == 1  # one result per story
    assert "Floods force" not in page
    phrase = client.get("/search", params={"q": '"heavy rain"'}).text
    assert "Floods force" in phrase or "Danube" in phrase
    prefix = client.get("/search", params={"q": "danub*"}).text
    assert "<mark>" in prefix


@pytest.mark.parametrize("q", ['"', "*", "NEAR(", "-", "x" * 10_000, "a AND OR NOT", "')--", "\x00", "title:foo",
                               "NEAR(a b, 2)", '"unterminated', "^start", "a -b", "((("])
def test_search_syntax_abuse_is_never_a_500(client, q):
    for url in ("/search", "/api/search", "/stories.atom", "/api/stories"):
        response = client.get(url, params={"q": q})
        assert response.status_code in (200, 400), (url, q, response.status_code)
        assert "Traceback" not in response.text and "sqlite" not in response.text.lower()
        if response.status_code == 400:
            message = response.json()["detail"] if url.startswith("/api") else response.text
            assert message and "OperationalError" not in message


def test_search_results_are_inert_and_the_feeds_take_q(client, data):
    page = client.get("/search", params={"q": "tariffs steel"}).text
    _assert_inert(page, "search")
    assert "&lt;script&gt;" in page
    found = client.get("/api/search", params={"q": "budapest", "limit": 1}).json()
    assert found["results"][0]["story"]["id"] == data.summit_story
    assert any(seg["highlight"] for hit in found["results"][0]["hits"] for seg in hit["snippet"])
    atom = feedparser.parse(client.get("/stories.atom", params={"q": "danube", "since": "all"}).content)
    assert [e.link.rsplit("/", 1)[1] for e in atom.entries] == [str(data.flood_story)]
    assert "matching danube" in atom.feed.title


# ---- operations -------------------------------------------------------------------------------------------


def test_healthz_reports_the_database_and_the_last_poll(client, monkeypatch):
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["last_poll"].endswith("Z")
    from sqlalchemy.exc import OperationalError

    def unreachable(engine):
        raise OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    monkeypatch.setattr("aggregator.web.app.query.last_poll", unreachable)
    down = client.get("/healthz")
    assert down.status_code == 503 and down.json()["status"] == "error"


def test_metrics_count_polls_and_what_is_stored(client, data, tmp_path, demo_config_file):
    from prometheus_client.parser import text_string_to_metric_families

    from aggregator.config import load_config
    from aggregator.pipeline import poll_once
    from aggregator.store import open_database

    def values() -> dict:
        text = client.get("/metrics").text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    before = values()
    assert before[("aggregator_articles_stored", ())] == 10
    assert before[("aggregator_open_stories", ())] == len(data.stories)
    assert before[("aggregator_memory_resident_bytes", ())] > 10 * 2**20
    engine = open_database(f"sqlite:///{tmp_path}/polled.db")
    results = poll_once(engine, load_config(demo_config_file))
    engine.dispose()
    after = values()
    ok = ("aggregator_polls_total", (("status", "ok"),))
    assert after[ok] - before.get(ok, 0) == sum(r.status == "ok" for r in results) > 0
    assert after[("aggregator_fetch_duration_seconds_count", ())] > before[("aggregator_fetch_duration_seconds_count",
                                                                          ())]
    assert ("aggregator_extraction_timeouts_total", ()) in after
    assert all(name.startswith("aggregator_") for name, _ in after)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
       | st.sampled_from(webdata.XSS + ["a\u00a0b\u2003c", "x\x85y", "\x1c\x1d", "\u2028z"]))
def test_the_fast_clean_filter_matches_clean_text(text):
    assert clean(text) == clean_text(text)



def test_the_pages_feeds_and_search_on_postgres(tmp_path):
    """The same routes over PostgreSQL (skipped when no server answers on 127.0.0.1:5432)."""
    pytest.importorskip("psycopg")
    import uuid

    from sqlalchemy import create_engine, text

    admin_url = os.environ.get("AGGREGATOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"aggregator_web_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        data = webdata.build(admin_url.rsplit("/", 1)[0] + f"/{name}")
        agg = Aggregator(database=data.database, config=parse_config(webdata.FEEDS_YAML))
        with TestClient(create_app(agg)) as pg:
            for url in pages(data) + FEEDS:
                assert pg.get(url).status_code == (404 if url.endswith("999999") else 200), url
            assert 'href="/digest/2026-11-22"' in pg.get("/digest/2026-11-24").text
            assert "Budapest summit" in pg.get("/search", params={"q": "budapest"}).text
            assert "Budapest summit" in pg.get("/?since=all&tag=local").text
        agg.close()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("payload", webdata.XSS)
def test_a_hostile_query_is_shown_as_text(client, payload):
    for url in ("/search", "/?since=all&tag=", "/stories.atom", "/stories.json"):
        response = client.get(url, params={"q": payload, "tag": payload})
        assert response.status_code in (200, 400)
        if "html" in response.headers["content-type"]:
            _assert_inert(response.text, url)
        if "atom" in url and response.status_code == 200:
            assert not feedparser.parse(response.content).bozo
